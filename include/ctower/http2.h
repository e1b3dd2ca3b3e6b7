/* ct_http2_t: HTTP/2 over a byte transport, as a transport of whole HTTP
 * messages for the multiplex client and server (multiplex.h).
 *
 * Below it: any transport that carries bytes in order, such as a stream
 * with the raw codec (codec/raw.h) over TCP or a Unix socket, in the clear
 * or with TLS. In the clear the peer must know it speaks HTTP/2 from the
 * first byte ("prior knowledge", h2c: there is no upgrade from HTTP/1.1);
 * over TLS, clients such as curl speak HTTP/2 once the handshake agreed on
 * "h2" (ct_tls_context_alpn() with CT_TLS_ALPN_H2, tls.h).
 *
 * Above it: each message is one HTTP request or response, as HTTP/1.1
 * writes it (start line, fields, then the body with its Content-Length),
 * after a 4-byte big-endian tag (ct_buf_get_tag(), ct_buf_set_tag()). So a
 * service written for the HTTP/1.1 codec, reading with
 * ct_http_parse_request() and answering with ct_http_format_response() past
 * the tag, serves HTTP/2 as it is.
 *
 * - The client side sends requests tagged by the multiplex client (a slab
 *   tag store over ct_buf_get_tag and ct_buf_set_tag). Each request opens
 *   a stream; its response comes back with the request's tag.
 * - The server side delivers each request tagged with its stream, and sends
 *   a response on the stream its tag names (a multiplex server with get_tag
 *   and set_tag copies the tag from request to response).
 *
 * What the translation does:
 * - Host becomes :authority and back; the method, target and status become
 *   their pseudo-header fields; field names are lowercased.
 * - Fields that belong to one HTTP/1.1 connection (Connection, Keep-Alive,
 *   Proxy-Connection, Transfer-Encoding, Upgrade) are not sent.
 * - A message received gets a Content-Length with its body's length (the
 *   answer to a HEAD keeps the one it came with); trailers received make it
 *   chunked, with the trailers after the last chunk. Interim (1xx)
 *   responses received are dropped.
 * - A message sent must be one whole message of its side, or the send is
 *   refused with CT_EINVAL (the transport goes on). A chunked message's
 *   trailers (ct_http_message_t.nheaders tells them apart) follow its body
 *   as HTTP/2 trailers, as gRPC's status does.
 *
 * Errors:
 * - A stream that ends without its response (the server resets it, refuses
 *   it, or goes away before it) is answered by the transport itself: status
 *   502 with the field "x-ctower-error", naming the HTTP/2 error code
 *   ("REFUSED_STREAM": not processed, safe to send again). The same for a
 *   response over max_message (the stream is reset: "CANCEL").
 * - On the server side, a request over max_message resets its stream; a
 *   response whose stream the client has reset is dropped.
 * - A connection that breaks the protocol ends the receive side with
 *   CT_EMALFORMED (a GOAWAY goes to the peer first); the end of the bytes
 *   below ends it with UV_EOF, as any transport.
 *
 * What one connection may cost (hostile peers):
 * - Input waits while the output does: once the transport below has no
 *   room (the peer does not read) and nghttp2 holds more than
 *   CT_HTTP2_MAX_QUEUED_FRAMES frames to send (refusals, resets, answers
 *   to PING and SETTINGS), nothing more is read until the peer reads. So a
 *   peer that opens streams, or asks, and never reads costs at most the
 *   transport's high watermark and that queue.
 * - Frames that do no work (empty DATA without END_STREAM, PRIORITY,
 *   RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, empty CONTINUATION, streams
 *   refused over max_streams, invalid frames) spend a budget of
 *   CT_HTTP2_FLOOD_BURST, which refills by CT_HTTP2_FLOOD_RATE a second and
 *   by each request opened and DATA frame sent. A peer that spends it all
 *   gets GOAWAY ENHANCE_YOUR_CALM and the receive side ends with CT_EFLOOD.
 *   (nghttp2 itself ends a flood of unanswered PING and SETTINGS, rapid
 *   resets and endless CONTINUATION frames, as CT_EMALFORMED.)
 */
#ifndef CTOWER_HTTP2_H
#define CTOWER_HTTP2_H

#include "ctower/buf.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CT_HTTP2_MAX_QUEUED_FRAMES = 256, /* frames nghttp2 may hold while the peer reads nothing */
    CT_HTTP2_FLOOD_BURST = 1000,      /* frames that do no work, at once */
    CT_HTTP2_FLOOD_RATE = 100         /* ... and a second, after that */
};

/* What sessions count (stats.h), shared by the sessions of one loop that
 * name it. */
typedef struct ct_http2_stats {
    ct_counter_t streams;          /* streams closed (answered, reset or cut) */
    ct_counter_t resets_received;  /* RST_STREAM frames from the peer */
    ct_counter_t resets_sent;      /* streams this side reset */
    ct_counter_t goaways_received; /* GOAWAY frames from the peer */
    ct_counter_t goaways_sent;     /* GOAWAY frames sent */
    ct_counter_t floods;           /* sessions ended for frames that do no work (CT_EFLOOD) */
} ct_http2_stats_t;

/* An HTTP/2 session's side, bounds and settings. */
typedef struct ct_http2_config {
    int server;                /* 0: the client side */
    ct_buf_pool_t *pool;       /* messages come from it (required) */
    ct_buf_pool_t *bytes_pool; /* the transport below's: the chunks it delivers go back
                                * to it, the chunks sent to it come from it (NULL: pool) */
    size_t max_message;        /* bytes of one message, at most (0: 1 MiB) */
    uint32_t max_streams;      /* server: streams a client may open at once (0: 100) */
    const char *scheme;        /* client: the requests' :scheme (NULL: "http") */
    ct_http2_stats_t *stats;   /* where the session counts (NULL: nowhere) */
} ct_http2_config_t;

struct ct_http2_stream;
struct nghttp2_session;

/* nghttp2's memory for one session: freed blocks kept by size for reuse
 * (private; see src/transport/http2_mem.c). */
enum { CT_HTTP2_MEM_CLASSES = 10 };
/* The allocator of one loop's HTTP/2 sessions: size classes of freed blocks, kept for reuse. */
typedef struct ct_http2_mem {
    void *free[CT_HTTP2_MEM_CLASSES]; /* freed blocks of each size class, a list each */
    size_t cached;                    /* bytes kept */
} ct_http2_mem_t;

/* A transport of HTTP messages over HTTP/2, on a transport of bytes. */
typedef struct ct_http2 {
    ct_transport_t transport; /* first: a ct_http2_t * is a ct_transport_t * */
    /* private */
    ct_transport_t *bytes; /* the transport below, owned */
    struct nghttp2_session *session;
    ct_http2_config_t cfg;
    ct_http2_mem_t mem;
    ct_link_t streams;                    /* every stream with state of ours */
    struct ct_http2_stream *free_streams; /* for reuse */
    ct_buf_t **ready;                     /* messages waiting for the reader */
    size_t ready_head, ready_count, ready_cap;
    ct_buf_t *partial;      /* output being gathered for the transport below */
    ct_buf_t *stalled;      /* output the transport below had no room for */
    ct_waker_t bytes_ready; /* room below: the output goes on */
    ct_task_t pump_task;    /* sends what nghttp2 has to send */
    ct_task_t deliver_task; /* delivers what waits, from a fresh stack */
    int reading;            /* the reader takes messages */
    int bytes_reading;      /* the transport below delivers (from the first start on) */
    int32_t last_delivered; /* server: the last request's stream the reader took */
    size_t sending;         /* messages submitted whose stream is still open */
    int end_status;         /* the receive side's end, once known (0: not yet) */
    int end_delivered;
    int send_error;
    int broken;       /* the peer broke the protocol: CT_EMALFORMED (or UV_ENOMEM) */
    int shut_pending; /* 1: waiting for the output to drain; 2: below */
    ct_buf_t *input;  /* bytes read below that nghttp2 has not had yet */
    size_t input_off;
    int held;              /* input waits for the peer to read (the output is full) */
    int flooded;           /* the flood budget is spent */
    int goodbye;           /* a broken connection's GOAWAY: 1 being written, 2 done */
    double flood_budget;   /* frames that do no work the peer may still send */
    uint64_t flood_at_ms;  /* when the budget was last refilled */
    uint32_t peer_streams; /* streams the peer has open with state of ours */
} ct_http2_t;

/* Initializes h2 over bytes (which it owns from now on: closing h2 closes
 * it) and starts the session: the client's preface, or the server's
 * settings, go out at once. Returns 0, CT_EINVAL (no pool, or bytes already
 * driven by someone) or UV_ENOMEM; on error bytes is still the caller's. */
int ct_http2_init(ct_http2_t *h2, ct_loop_t *loop, ct_transport_t *bytes,
                  const ct_http2_config_t *cfg);

/* Registers st's counters in stats as PREFIX_streams_total,
 * PREFIX_resets_received_total, PREFIX_resets_sent_total,
 * PREFIX_goaways_received_total, PREFIX_goaways_sent_total and
 * PREFIX_floods_total (e.g. "ctower_http2"), with labels (may be NULL).
 * Returns 0 or ct_stats_add_named's error. */
int ct_http2_add_stats(const ct_http2_stats_t *st, ct_stats_t *stats, const char *prefix,
                       const char *labels);

#ifdef __cplusplus
}
#endif
#endif
