/* ct_listener_t: accepts connections on an address and runs one server
 * (pipeline or multiplex) per connection, all calling the same service, or
 * each its own (new_service).
 *
 * At max_connections it stops accepting (the kernel's backlog holds the
 * next ones) and resumes as connections close. With idle_timeout_ms, a
 * connection with nothing in flight and no request read for that long is
 * shut down gracefully; with header_timeout_ms and body_timeout_ms, a
 * request that arrives too slowly (slowloris) is refused. ct_listener_shutdown() stops accepting,
 * lets every server finish what it has read, aborts those still running at the deadline, and calls
 * back once everything is closed.
 *
 * One listener runs on one loop. To use more cores, run a loop per thread,
 * each with its own listener on the same address (reuse_port) and its own
 * service stack; examples/echo_threads.c does so.
 */
#ifndef CTOWER_LISTENER_H
#define CTOWER_LISTENER_H

#include "ctower/address.h"
#include "ctower/codec/raw.h"
#include "ctower/http2.h"
#include "ctower/server.h"
#include "ctower/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_listener ct_listener_t;
/* What ct_listener_shutdown() calls back, once everything is closed. */
typedef void (*ct_listener_close_cb)(ct_listener_t *listener);

/* A service of its own for each connection (tower's MakeService), for state
 * that belongs to one client: a session, a login, a per-client limit.
 * new_service is called for each accepted connection, with its stream (for
 * the peer's address: ct_stream_uv() and uv_tcp_getpeername()); it returns
 * the connection's service, or NULL to refuse the connection (it is closed
 * and counted among the accept errors). done_service is called once that
 * connection's server has closed and no longer uses the service, which is
 * then the user's to close. */
typedef ct_service_t *(*ct_listener_new_service_fn)(ct_listener_t *listener, ct_stream_t *conn);
typedef void (*ct_listener_done_service_fn)(ct_listener_t *listener, ct_service_t *service);

/* With TLS in cfg->stream, each connection does its handshake as its server
 * reads; a connection whose handshake fails ends alone, its server seeing
 * CT_ETLS or CT_ETLSVERIFY as the receive error. */
typedef struct ct_listener_config {
    int multiplex;             /* 0: a pipeline server per connection */
    ct_server_config_t server; /* each connection's server */
    ct_stream_config_t stream; /* each connection's transport */
    size_t max_connections;    /* 0: no limit */
    /* Idle: nothing in flight and no request read for this long (counted
     * from the last request, not the last byte); shut down gracefully.
     * 0: never. */
    uint64_t idle_timeout_ms;
    /* A request's head (HTTP/1.1: start line and fields; codecs that tell
     * no head from body: none) must arrive within header_timeout_ms of its
     * first byte, the whole request within body_timeout_ms; past either,
     * the connection is refused with CT_EREQTIMEOUT (ct_server_refuse():
     * an HTTP server's on_error answers 408). 0: no limit. Not for HTTP/2,
     * whose own streams are bounded by the flood budget (http2.h). */
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    int backlog; /* 0: 511 */
    /* 1: other listeners may bind the same TCP address (SO_REUSEPORT), each
     * on its own loop and thread, and the kernel spreads new connections
     * over them: the way to serve one address from several cores. Every
     * listener on the address must set it. A Unix address is CT_EINVAL. */
    int reuse_port;
    /* Both or neither; with them, ct_listener_init() takes no service. */
    ct_listener_new_service_fn new_service;
    ct_listener_done_service_fn done_service;
    /* Non-NULL: every connection speaks HTTP/2 (http2.h, prior knowledge),
     * under a multiplex server whatever multiplex says. stream.codec must
     * then be NULL (the listener hands the bytes on as they come, in chunks
     * of stream.pool's buffers); http2's pool may be NULL (stream.pool) and
     * its bytes_pool and server flag are the listener's to set; the
     * server copies each request's tag into its response (get_tag and
     * set_tag default to ct_buf_get_tag and ct_buf_set_tag), so a service
     * writes its responses after 4 bytes of room. */
    const ct_http2_config_t *http2;
} ct_listener_config_t;

/* What a listener counts, its servers' counts with it (stats.h). */
typedef struct ct_listener_stats {
    ct_counter_t accepted;      /* connections accepted */
    ct_counter_t accept_errors; /* accepts that failed */
    ct_counter_t closed_idle;   /* shut down by idle_timeout_ms */
    ct_counter_t refused_slow;  /* by header_timeout_ms or body_timeout_ms */
    ct_gauge_t connections;     /* open */
    ct_server_stats_t servers;  /* what its servers count, together */
    ct_stream_stats_t streams;  /* bytes, TLS handshakes */
    ct_http2_stats_t http2;     /* with HTTP/2: streams, resets, GOAWAYs */
} ct_listener_stats_t;

/* A listener: accepts connections on an address and serves each. */
struct ct_listener {
    void *data;            /* for the user */
    ct_loop_t *loop;       /* the loop it runs on */
    ct_service_t *service; /* the service each connection's server calls */
    /* private */
    ct_listener_config_t cfg;
    ct_http2_config_t http2;
    ct_raw_codec_t bytes_codec; /* with HTTP/2 */
    ct_address_t address;
    ct_uv_stream_t h;
    uv_timer_t timer;
    ct_link_t conns;
    size_t nconns;
    ct_listener_stats_t stats;
    int accept_paused;
    int closing;
    int handles_open;
    ct_listener_close_cb close_cb;
};

/* Binds address and starts accepting. The host must be numeric or
 * "localhost" (see address.h). A Unix socket file that no server answers on
 * any more (left by a process that died) is replaced; one a server still
 * answers on is UV_EADDRINUSE; a missing directory is UV_ENOENT.
 * service serves every connection, or is NULL with cfg->new_service.
 * Returns 0, CT_EBADADDR, CT_EINVAL (also for a stream or server
 * configuration every connection would refuse) or a libuv error
 * (UV_EADDRINUSE, ...);
 * on error nothing is left open, and listener may be initialized again at
 * once (with another address, say). */
int ct_listener_init(ct_listener_t *listener, ct_loop_t *loop, const char *address,
                     ct_service_t *service, const ct_listener_config_t *cfg);

/* The address actually bound (with the port the system chose for port 0). */
int ct_listener_address(ct_listener_t *listener, ct_address_t *out);

/* Connections open now. */
size_t ct_listener_connections(const ct_listener_t *listener);

/* Connections accepted since init, and accepts that failed (the kernel's
 * accept, or setting up the connection's stream and server). Either pointer
 * may be NULL. Out of descriptors (EMFILE), libuv closes the connection it
 * cannot take without telling the listener: that one is in neither count. */
void ct_listener_counts(const ct_listener_t *listener, size_t *accepted, size_t *accept_errors);

/* Adds the listener's metrics to stats (a registry of its loop's), each
 * with labels (NULL: none; 'listener="admin"', say) and these names:
 *   ctower_listener_connections_accepted_total, ..._accept_errors_total,
 *   ..._closed_idle_total, ..._refused_slow_total (counters),
 *   ctower_listener_connections (gauge: open now),
 *   ctower_server_requests_total, ctower_server_responses_total,
 *   ctower_server_errors_total (its servers', counters),
 *   ctower_listener_bytes_read_total, ..._bytes_written_total,
 *   ..._tls_handshakes_total, ..._tls_failures_total (its streams'),
 *   and with HTTP/2 ctower_listener_http2_streams_total, ..._resets_received_total,
 *   ..._resets_sent_total, ..._goaways_received_total, ..._goaways_sent_total,
 *   ..._floods_total (its sessions', http2.h).
 * Returns 0, or ct_stats_add_*'s error. */
int ct_listener_add_stats(ct_listener_t *listener, ct_stats_t *stats, const char *labels);

/* The address of the client of srv, one of a listener's servers (its
 * connection's peer, read once at accept), into out: CT_ADDRESS_TCP with
 * the peer's sa, or CT_ADDRESS_UNIX (path empty: a Unix socket's client
 * has no name). Returns 0, or CT_EINVAL when srv is not a listener's. With
 * ct_server_of_call(), what an access log writes as "client". */
int ct_listener_peer(const ct_server_t *srv, ct_address_t *out);

/* Graceful shutdown (see above); deadline_ms 0 waits as long as it takes.
 * cb runs once every connection and handle is closed. CT_ECLOSING if called
 * twice. */
int ct_listener_shutdown(ct_listener_t *listener, uint64_t deadline_ms, ct_listener_close_cb cb);

#ifdef __cplusplus
}
#endif
#endif
