/* ct_reconnect_t: a client that keeps one connection to an address and makes
 * a new one when it breaks (tower's Reconnect); a service.
 *
 * Over each connection it runs a pipeline or a multiplex client (client.h),
 * connected through its own connector (connector.h). The first call, or
 * poll_ready, starts connecting; calls made meanwhile wait (within
 * max_in_flight) and go out in call order once the connection is up.
 *
 * When the connection breaks, the ops in flight on it fail as on any client
 * (CT_ESENDBROKEN or CT_ERECVBROKEN, the cause in op->cause): their requests
 * may have reached the server, so nothing is sent twice. The next call or
 * poll_ready starts a new connection; a call that meets the dead connection
 * before its request left waits for the new one instead of failing.
 *
 * When a connect fails, the calls waiting for it fail with CT_ECONNECT and
 * the connect's error in op->cause (UV_ECONNREFUSED, UV_ETIMEDOUT past
 * connect_timeout_ms, UV_EAI_NONAME, ...). Then, for a pause (from
 * backoff_min_ms, doubling with each failure in a row up to backoff_max_ms,
 * each drawn at random between half and all of that), calls fail at once the
 * same way and poll_ready is READY: a server that is down fails its callers
 * fast instead of holding them. After the pause the next call or poll_ready
 * tries again. ct_reconnect_last_error() tells the last connect's error.
 *
 * A call whose context has a deadline (op->ctx, context.h) that leaves time
 * for the next connect waits instead: through the failed connects and their
 * pauses (the next connect starts when a pause ends), and it fails only
 * once a pause would end at or past its deadline (CT_ECONNECT, as above),
 * or goes out as the connection comes up. The caller said how long it
 * waits: a restart shorter than that loses none of its calls (gRPC's
 * wait-for-ready, bounded by the caller's time). A timeout layer above ends
 * such a call at its deadline to the millisecond; a call that is still
 * waiting when the connection comes up after its deadline fails with
 * CT_ETIMEDOUT, cause CT_EDEADLINE, and is not sent.
 *
 * poll_ready: PENDING while connecting (the waker wakes when the connect
 * ends, either way), the client's own answer while connected, READY during a
 * pause; PENDING too while max_in_flight calls are under way.
 *
 * ct_service_shutdown(): calls waiting for a connection wait for it, then the
 * client drains as client.h says; the callback gets CT_ECONNECT if that
 * connect failed. ct_service_close(): a connect under way is canceled, every
 * op fails (one still waiting for a connection with CT_ECLOSED), and the close
 * callback runs once the connection and the timer are closed.
 */
#ifndef CTOWER_LAYER_RECONNECT_H
#define CTOWER_LAYER_RECONNECT_H

#include "ctower/client.h"
#include "ctower/connector.h"
#include "ctower/http2.h"
#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/tag_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The reconnecting client's protocol, bound, connect timeout and pauses between connects. */
typedef struct ct_reconnect_config {
    /* 0: a pipeline client; otherwise a multiplex client with a slab tag
     * store (tag_store.h) per connection, reading and writing tags through
     * get_tag and set_tag (both NULL: ct_buf_get_tag and ct_buf_set_tag). */
    int multiplex;
    ct_tag_get_fn get_tag;
    ct_tag_set_fn set_tag;
    /* Calls under way at most, waiting for a connection or in flight on it
     * (0: CT_CLIENT_DEFAULT_IN_FLIGHT), and never more than the codec's
     * max_pending (HTTP/1.1: CT_HTTP_MAX_PENDING). It is also each client's
     * bound. */
    size_t max_in_flight;
    /* Frees a request that fails before it was sent, and a response that
     * nobody waits for any more. May be NULL if messages need no freeing. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    /* Bounds each connect, name lookup included (0: the kernel's bound). */
    uint64_t connect_timeout_ms;
    /* The pause after a failed connect (0: 100 ms and 1 s: a backend that
     * comes back is used again within about a second, and one that stays
     * down gets about one connect a second). */
    uint64_t backoff_min_ms;
    uint64_t backoff_max_ms;
    /* Non-NULL: each connection speaks HTTP/2 (http2.h) over its stream,
     * whose codec must then be the raw codec; the client is then a
     * multiplex one, whatever multiplex says. The configuration is copied,
     * its server flag ignored. */
    const ct_http2_config_t *http2;
} ct_reconnect_config_t;

/* Connections made and connects failed (ct_reconnect_counts()). */
typedef struct ct_reconnect_counts {
    uint64_t connects;         /* connections made */
    uint64_t connect_failures; /* connects that failed */
} ct_reconnect_counts_t;

/* The same, as the layer counts them (stats.h: read them from any thread,
 * register them with ct_reconnect_add_stats). */
typedef struct ct_reconnect_metrics {
    ct_counter_t connects;         /* connections made */
    ct_counter_t connect_failures; /* connects that failed */
} ct_reconnect_metrics_t;

struct ct_reconnect_entry;
struct ct_reconnect_conn;

/* A client that keeps one connection to an address and makes a new one when it breaks: a service.
 */
typedef struct ct_reconnect {
    ct_service_t service; /* first: a reconnecting client is a service */
    /* private */
    ct_connector_t connector;
    ct_reconnect_config_t cfg;
    ct_http2_config_t http2;        /* cfg.http2's copy */
    struct ct_reconnect_conn *conn; /* connecting or up; NULL when neither */
    struct ct_reconnect_entry *entries;
    struct ct_reconnect_entry **free_entries; /* a stack, max_in_flight - busy deep */
    ct_link_t waiting;                        /* calls waiting for a connection, in call order */
    size_t busy;                              /* calls waiting for a connection */
    size_t conns_closing;
    int state;
    int last_error;
    int drain_status;
    int client_drained;
    unsigned failures_in_a_row;
    uint32_t rng; /* for the backoff's jitter */
    uv_timer_t timer;
    int timer_closing;
    ct_waitq_t waiters;
    ct_reconnect_metrics_t metrics;
} ct_reconnect_t;

/* Initializes rc to connect to address (see address.h) with streams
 * configured by stream_cfg, and cfg (NULL for the defaults). Nothing connects
 * until the first call or poll_ready. Returns 0, CT_EBADADDR, CT_EINVAL (a
 * configuration the connector or the client would refuse; only get_tag or
 * only set_tag; backoff_max_ms below backoff_min_ms) or UV_ENOMEM. */
int ct_reconnect_init(ct_reconnect_t *rc, ct_loop_t *loop, const char *address,
                      const ct_stream_config_t *stream_cfg, const ct_reconnect_config_t *cfg);

/* The error of the last connect if it failed (UV_ECONNREFUSED, ...), 0 if
 * it succeeded or none was tried. */
int ct_reconnect_last_error(const ct_reconnect_t *rc);

/* Non-zero while a connection is up and its client has seen nothing break
 * (a peer's close is seen when it arrives, not when it is sent). */
int ct_reconnect_is_up(const ct_reconnect_t *rc);

/* Connections made and connects failed so far. */
ct_reconnect_counts_t ct_reconnect_counts(const ct_reconnect_t *rc);

/* Registers the layer's counters in stats (of its loop) with labels (may be
 * NULL): ctower_reconnect_connects_total, ctower_reconnect_connect_failures_total. Returns 0 or
 * ct_stats_add_counter's error. */
int ct_reconnect_add_stats(ct_reconnect_t *layer, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
