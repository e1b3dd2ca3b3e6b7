/* ct_stream_t: a transport over a libuv stream (TCP or a Unix socket) with a
 * codec between bytes and messages. Messages are ct_buf_t, taken from and
 * returned to a ct_buf_pool_t.
 *
 * Reads land in the loop's shared read buffer (see ct_loop_lend_buffer) and
 * are decoded in batches; only a frame still arriving, or frames left while
 * the reader stopped, move to a buffer of the stream's own. Likewise what is
 * sent during the stream's own read callback is encoded into the loop's
 * shared write buffer and written at the end of it; only what the socket
 * does not take moves to a buffer of the stream's own. An idle connection
 * holds neither buffer. Messages sent
 * are encoded into one output buffer, which is written once (uv_try_write
 * first, then uv_write for what the socket did not take): at the end of the
 * read whose frames made them (a server's answers, a client's next requests),
 * otherwise just before the loop polls. send_ready is PENDING while the output
 * buffered exceeds the high watermark and wakes below the low one. After
 * warm-up no allocation happens per message: buffers only grow to the
 * largest burst.
 *
 * Receive errors: UV_EOF (the peer closed cleanly), CT_ETRUNCATED (it closed
 * in the middle of a frame), CT_EFRAMETOOLARGE or CT_EMALFORMED (the codec
 * refused the bytes), CT_ETLS (TLS refused a record or the handshake), or
 * libuv's error (UV_ECONNRESET, ...). A write error breaks the send side and
 * also ends the receive side with that error.
 *
 * With cfg.tls (tls.h), the bytes on the socket are TLS records: reads are
 * decrypted into a buffer of the stream's own (not the loop's) and decoded
 * as above; what is sent is encoded as above and encrypted as one whole
 * when flushed, so a batch of messages is still one write.
 *
 * Streams are made by a connector (connector.h) or a listener (listener.h).
 */
#ifndef CTOWER_STREAM_H
#define CTOWER_STREAM_H

#include "ctower/budget.h"
#include "ctower/buf.h"
#include "ctower/codec.h"
#include "ctower/codec/http.h"
#include "ctower/codec/length.h"
#include "ctower/codec/line.h"
#include "ctower/stats.h"
#include "ctower/tls.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What streams count (stats.h), shared by the streams of one loop that
 * name it (a listener's, a connector's). Bytes are those on the wire
 * (ciphertext with TLS), added per read and per write, not per message. */
typedef struct ct_stream_stats {
    ct_counter_t bytes_read;     /* bytes read from the socket */
    ct_counter_t bytes_written;  /* bytes written to it */
    ct_counter_t tls_handshakes; /* handshakes that succeeded */
    ct_counter_t tls_failures;   /* handshakes that failed (refused, not TLS, a bad certificate) */
} ct_stream_stats_t;

/* How a stream frames, pools, bounds, encrypts and counts. */
typedef struct ct_stream_config {
    /* A codec to copy for this stream (each stream keeps its own state).
     * Its size must fit ct_codec_storage_t. */
    const ct_codec_t *codec;
    /* Where received messages come from and sent ones go back to. */
    ct_buf_pool_t *pool;
    size_t read_buffer; /* own read buffer when one is needed, bytes (0: 64 KiB) */
    size_t high_water;  /* output bytes above which send_ready is PENDING (0: 1 MiB) */
    size_t low_water;   /* ... and below which it is READY again (0: high / 4) */
    /* TCP: keepalive probes after this many idle seconds, so that a peer
     * that vanished without a word (a host gone, a cable cut) ends the
     * connection with UV_ETIMEDOUT instead of leaving it open forever.
     * 0: off. */
    unsigned keepalive_s;
    /* TLS (tls.h), or NULL for plain bytes. Copied by pointer: it must
     * outlive the connectors and listeners that use this configuration. */
    const ct_tls_config_t *tls;
    /* Output not yet written counts against it (budget.h; NULL: none):
     * once it is spent, send_ready is PENDING while any is left. */
    ct_budget_t *budget;
    /* Where the stream counts (NULL: nowhere; a listener points its
     * streams at its own, ct_listener_add_stats). */
    ct_stream_stats_t *stats;
} ct_stream_config_t;

/* Room for any built-in codec, or a user codec of up to 128 bytes. */
typedef union ct_codec_storage {
    ct_codec_t base;          /* what every codec begins with */
    ct_length_codec_t length; /* the built-in ones */
    ct_line_codec_t line;     /* ... */
    ct_http_codec_t http;     /* ... */
    char custom[128];         /* a user's codec */
} ct_codec_storage_t;

/* A libuv stream handle that is a TCP socket or a pipe, with views of it as
 * a handle and as a stream (for streams and listeners; private). */
typedef union ct_uv_stream {
    uv_handle_t handle; /* as a handle (uv_close) */
    uv_stream_t stream; /* as a stream (reads, writes) */
    uv_tcp_t tcp;       /* a TCP socket */
    uv_pipe_t pipe;     /* a Unix socket */
} ct_uv_stream_t;

/* A transport over a TCP or Unix socket, with a codec. */
typedef struct ct_stream {
    ct_transport_t transport; /* first: a ct_stream_t * is a ct_transport_t * */
    /* private */
    ct_uv_stream_t h;
    ct_codec_storage_t codec;
    ct_stream_config_t cfg;
    uint8_t *rbuf; /* the loop's shared buffer during a read, else our own */
    size_t rcap, rstart, rlen;
    uint8_t *rown; /* our own, while rbuf is the loop's */
    size_t rown_cap;
    int rshared;
    uint8_t *wown; /* likewise for wbuf */
    size_t wown_cap;
    int wshared;
    uint8_t *wbuf, *wbusy; /* accumulating, and being written */
    size_t wcap, wlen, wbusy_cap, wbusy_len;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    ct_task_t flush_task;
    ct_task_t decode_task;
    ct_waitq_t send_waiters;
    uint64_t last_read_ms;
    uint64_t partial_since_ms; /* a frame still arriving since then (0: none) */
    size_t budgeted;           /* of the output, counted in cfg.budget */
    int writing, reading, uv_reading, ended, send_error, shut_pending;
    /* The codec's last message began the shutdown (CT_CODEC_LAST): nobody
     * waits for it until the owner asks for one too. */
    int shut_by_codec, shut_asked, shut_finished, shut_status;
    int handle_open;
    void *connecting;           /* the connector's attempt, while one is under way */
    struct ct_tls_session *tls; /* with cfg.tls, once ct_stream_tls_start() made it */
    void (*secure_cb)(struct ct_stream *stream, int status);
} ct_stream_t;

/* 0, or CT_EINVAL for a configuration ct_stream_init() would refuse (no
 * codec or pool, a codec too large to copy): connectors and listeners check
 * it at init, rather than fail every connection later. */
int ct_stream_config_check(const ct_stream_config_t *cfg);

/* Registers st's counters in stats as PREFIX_bytes_read_total,
 * PREFIX_bytes_written_total, PREFIX_tls_handshakes_total and
 * PREFIX_tls_failures_total, with labels (may be NULL). Returns 0 or
 * ct_stats_add_named's error. */
int ct_stream_add_stats(const ct_stream_stats_t *st, ct_stats_t *stats, const char *prefix,
                        const char *labels);

/* For connectors and listeners: initializes stream with a TCP (ipc = -1) or
 * pipe handle. Returns 0, CT_EINVAL or a libuv error. */
int ct_stream_init(ct_stream_t *stream, ct_loop_t *loop, int is_pipe,
                   const ct_stream_config_t *cfg);

/* For connectors and listeners: sets a connected TCP stream's options
 * (TCP_NODELAY, keepalive_s). Returns 0 or a libuv error. */
int ct_stream_connected(ct_stream_t *stream);

/* For connectors and listeners, on a connected stream whose configuration
 * has TLS: starts its TLS session. A client (is_server 0) checks the
 * server's certificate against peer_name (cfg.tls->server_name first; NULL:
 * no name) and starts the handshake at once, reading as it needs to; cb
 * runs once with its outcome (0, CT_ETLSVERIFY, CT_ETLS or the connection's
 * error), unless the stream is closed first. A server's handshake runs as it
 * reads; cb may be NULL. Returns 0, CT_EINVAL, CT_ETLS or UV_ENOMEM. */
int ct_stream_tls_start(ct_stream_t *stream, int is_server, const char *peer_name,
                        void (*cb)(ct_stream_t *stream, int status));

/* The application protocol the TLS handshake agreed on (ALPN, see
 * ct_tls_context_alpn()): its name, *len bytes long and not 0-terminated,
 * or NULL (no TLS, a handshake not done yet, or none agreed). */
const char *ct_stream_tls_protocol(const ct_stream_t *stream, size_t *len);

/* The libuv stream underneath (for uv_accept, uv_tcp_connect, options). */
uv_stream_t *ct_stream_uv(ct_stream_t *stream);

/* uv_now() at the last byte received. */
uint64_t ct_stream_last_read(const ct_stream_t *stream);

/* uv_now() at the read that brought the first byte of a frame still
 * arriving while the reader waits for it, or 0 if there is none; *in_header
 * (may be NULL) gets whether its head is still arriving (ct_codec_t's
 * in_header). For the listener's header and body timeouts. */
uint64_t ct_stream_partial_since(const ct_stream_t *stream, int *in_header);

#ifdef __cplusplus
}
#endif
#endif
