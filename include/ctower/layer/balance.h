/* ct_balance_t: a middleware that spreads calls over several services, its
 * endpoints (typically one reconnecting client per server), by the power of
 * two choices: of two endpoints drawn at random, the one with fewer calls in
 * flight takes the call.
 *
 * Two random endpoints instead of the least loaded of all: each pick costs
 * the same whatever the number of endpoints, and when several balancers
 * share servers they do not all pile onto the same "least loaded" one
 * (Mitzenmacher's result; tower's p2c and Finagle's default balancer work
 * this way).
 *
 * An endpoint that fails a call as a broken endpoint does is left out for a
 * pause: it could not connect (CT_ECONNECT), its connection broke
 * (CT_ESENDBROKEN, CT_ERECVBROKEN), it sent an answer to nothing
 * (CT_EDESYNC), the call timed out (CT_ETIMEDOUT, from a timeout layer
 * over the endpoint), or its circuit breaker is open (CT_EOPEN). cfg.is_failure decides instead
 * when given. The pause doubles with each failure in a row, from pause_min_ms up to pause_max_ms,
 * drawn between half and all of that; then the endpoint takes calls again,
 * and its first answer that is not a failure ends the run. Without this, an
 * endpoint that fails fast would always look the least loaded and draw most
 * of the calls. While every endpoint is left out, the calls go to them all
 * the same: their failure is the answer, and a retry layer above can try
 * again later.
 *
 * Load: by default an endpoint's calls in flight. With
 * CT_BALANCE_PEAK_EWMA (Finagle's and tower's latency-aware load), the
 * calls in flight + 1 times the endpoint's round-trip time: an average of
 * its answers' times that jumps to any time above it at once (a server
 * turning slow is avoided at once) and forgets with time (decay_ms), so a
 * server that was slow once is tried again. Among two endpoints with no
 * call in flight, the faster takes the call, which counting alone cannot
 * tell apart.
 *
 * Readiness: poll_ready polls the less loaded of the two drawn endpoints,
 * then the other; when neither is ready, every endpoint, taking the least
 * loaded that is ready. The endpoint chosen keeps its readiness (and what it
 * reserved) for the next call; ct_service_release() gives it back. PENDING
 * when none is ready: the layer is woken when any of them may be. A call
 * made without a READY goes to the less loaded of two, unpolled.
 *
 * An endpoint whose poll_ready returns an error is dead and takes no more
 * calls; once all are, poll_ready and call return the last one's error.
 *
 * The set of endpoints may change while the layer runs (tower's Discover):
 * ct_balance_add() gives it one more, ct_balance_remove() takes one out of
 * the picking at once and hands it back once its calls in flight have
 * called back, so that nothing in flight is lost. With no endpoint at all,
 * poll_ready is PENDING until one is added, and a call made without a READY
 * fails with CT_ENOENDPOINT.
 *
 * Cancel: the call is canceled in its endpoint. Shutdown: no new calls, and
 * no endpoints added; every endpoint shuts down, and the layer is done when
 * all are (with the first error any of them reported) and every endpoint
 * being removed has been handed back. Close: every endpoint, those being
 * removed too (their removal callbacks do not run), is closed; the calls in
 * flight complete with what their endpoint's close gives them.
 */
#ifndef CTOWER_LAYER_BALANCE_H
#define CTOWER_LAYER_BALANCE_H

#include "ctower/error.h"
#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How an endpoint's load is measured (ct_balance_config_t.load). */
typedef enum ct_balance_load {
    CT_BALANCE_IN_FLIGHT = 0, /* its calls in flight */
    CT_BALANCE_PEAK_EWMA = 1  /* (its calls in flight + 1) x its round-trip time */
} ct_balance_load_t;

/* Whether a call's error (status < 0, and its cause) says its endpoint
 * failed. Asked about every error but CT_ECANCELED; an answer is never a
 * failure. */
typedef int (*ct_balance_failure_fn)(void *ctx, int status, int cause);

/* The balancer's first endpoints, bound, failure rule, pauses and load measure. */
typedef struct ct_balance_config {
    /* The first endpoints (none: ct_balance_add() brings them), each a
     * distinct service that no layer wraps yet. The layer owns them from a
     * successful init on: closing the layer closes them. Their ids are
     * 0 .. n_endpoints - 1. The array itself may go once init returns. */
    ct_service_t **endpoints;
    size_t n_endpoints;
    /* Calls in flight at most, over all endpoints (0: 1024); poll_ready is
     * PENDING beyond, and a call beyond fails with CT_EOVERLOADED. */
    size_t max_in_flight;
    /* Frees a request that the layer refuses and a response that nobody
     * waits for any more (its call was canceled). May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    /* NULL: the failures listed above. */
    ct_balance_failure_fn is_failure;
    void *is_failure_ctx;
    /* The pause of an endpoint after a failure (0: 100 ms and 10 s). */
    uint64_t pause_min_ms;
    uint64_t pause_max_ms;
    /* CT_BALANCE_PEAK_EWMA: the round-trip time's memory (the time over
     * which an old measure weighs 1/e; 0: 10 s), and the time assumed for
     * an endpoint before its first answer (0: 1 ms). */
    ct_balance_load_t load;
    uint64_t decay_ms;
    uint64_t initial_rtt_us;
} ct_balance_config_t;

/* What an endpoint has done so far (ct_balance_endpoint_stats). */
typedef struct ct_balance_endpoint_stats {
    uint64_t calls;    /* calls given to it */
    uint64_t failures; /* calls that failed as a broken endpoint does */
    size_t in_flight;  /* its calls that have not called back yet */
    int left_out;      /* 1 while it pauses after a failure */
    int dead;          /* 1 once its poll_ready returned an error */
    int removing;      /* 1 while it drains after ct_balance_remove() */
    uint64_t rtt_us;   /* CT_BALANCE_PEAK_EWMA: its round-trip time as estimated now */
} ct_balance_endpoint_stats_t;

/* What the balancer counts, all endpoints together (stats.h;
 * ct_balance_add_stats registers them). */
typedef struct ct_balance_metrics {
    ct_gauge_t endpoints;   /* endpoints that take calls */
    ct_counter_t added;     /* endpoints added (those of the config included) */
    ct_counter_t removed;   /* endpoints removed */
    ct_counter_t ejections; /* failures that left an endpoint out for a pause */
} ct_balance_metrics_t;

/* What the balancer counts of one endpoint (ct_balance_endpoint_add_stats). */
typedef struct ct_balance_endpoint_metrics {
    ct_counter_t calls;                 /* calls given to the endpoint */
    ct_counter_t errors[CT_KIND_COUNT]; /* its calls that failed, by kind (error.h) */
    ct_counter_t ejections;             /* failures that left it out for a pause */
    ct_gauge_t in_flight;               /* the count its load is weighed by */
} ct_balance_endpoint_metrics_t;

struct ct_balance_endpoint;
struct ct_balance_entry;
typedef struct ct_balance ct_balance_t;

/* A removed endpoint's service, the caller's again: to close, or to use
 * elsewhere. ctx is ct_balance_remove()'s. */
typedef void (*ct_balance_removed_cb)(ct_balance_t *b, ct_service_t *endpoint, void *ctx);

/* The balancing layer: a service over a set of endpoints. */
struct ct_balance {
    ct_service_t service;         /* first: a balancer is a service */
    ct_balance_metrics_t metrics; /* its counts (ct_balance_add_stats()) */
    /* private */
    ct_balance_config_t cfg;
    struct ct_balance_endpoint **slots;  /* by id; NULL: a free id */
    size_t nslots;                       /* ids in use or ever used */
    struct ct_balance_endpoint **active; /* those that take calls */
    size_t n;                            /* how many do */
    size_t cap;                          /* of slots and of active */
    size_t draining;                     /* removed endpoints not yet handed back */
    struct ct_balance_entry *entries;
    struct ct_balance_entry **free_entries; /* a stack */
    size_t nfree;
    struct ct_balance_endpoint *chosen; /* the endpoint a READY chose */
    size_t alive;                       /* active endpoints not dead */
    size_t shutting;                    /* endpoints whose shutdown has not called back */
    size_t closing;                     /* endpoints whose close has not called back */
    int shut_down;                      /* ct_service_shutdown() has started */
    int closed;                         /* ct_service_close() has started */
    int last_error;
    int shutdown_status;
    uint32_t rng;
    uint64_t now_ns; /* CT_BALANCE_PEAK_EWMA: the clock at the last call or answer */
    ct_waitq_t waiters;
};

/* Initializes b over cfg->endpoints. Returns 0, CT_EINVAL (one listed twice
 * or already wrapped, pause_max_ms < pause_min_ms) or UV_ENOMEM; on error
 * the endpoints are still the caller's. */
int ct_balance_init(ct_balance_t *b, ct_loop_t *loop, const ct_balance_config_t *cfg);

/* Adds endpoint (a service on the layer's loop that no layer wraps yet),
 * which the layer owns from now on and gives calls at once. Returns its id
 * (>= 0: the lowest free one), or CT_EINVAL, CT_ESHUTDOWN or CT_ECLOSING
 * (the layer is shutting down or closing) or UV_ENOMEM, and then endpoint
 * is still the caller's. */
int ct_balance_add(ct_balance_t *b, ct_service_t *endpoint);

/* Takes endpoint id out: it gets no more calls, and once its calls in
 * flight have called back (their callers get their answers as usual), cb
 * runs from a fresh stack with the endpoint, which is the caller's again;
 * the id is then free. Returns 0, or CT_EINVAL (no such id, or it is being
 * removed already), CT_ESHUTDOWN (the layer is shutting down, and the
 * endpoint with it) or CT_ECLOSING. */
int ct_balance_remove(ct_balance_t *b, size_t id, ct_balance_removed_cb cb, void *ctx);

/* Endpoint id's figures (ids: cfg->endpoints' order, then ct_balance_add's).
 * Returns 0, or CT_EINVAL if there is no endpoint id. */
int ct_balance_endpoint_stats(const ct_balance_t *b, size_t id, ct_balance_endpoint_stats_t *out);

/* Registers the balancer's metrics in stats (of its loop) with labels (may
 * be NULL): ctower_balance_endpoints, ctower_balance_added_total,
 * ctower_balance_removed_total, ctower_balance_ejections_total. Returns 0
 * or ct_stats_add_*'s error. */
int ct_balance_add_stats(ct_balance_t *b, ct_stats_t *stats, const char *labels);

/* Endpoint id's metrics (NULL: no such id): valid until the endpoint is
 * handed back after ct_balance_remove(), or the layer closes. */
const ct_balance_endpoint_metrics_t *ct_balance_endpoint_metrics(const ct_balance_t *b, size_t id);

/* Registers endpoint id's metrics in stats with labels (may be NULL; say,
 * 'backend="ADDRESS"'): ctower_balance_endpoint_calls_total,
 * ctower_balance_endpoint_in_flight, ctower_balance_endpoint_ejections_total,
 * ctower_balance_endpoint_errors_total{kind=...}. Before removing the
 * endpoint, take them out of stats: ct_stats_remove(stats,
 * ct_balance_endpoint_metrics(b, id), sizeof (ct_balance_endpoint_metrics_t)).
 * Returns 0, CT_EINVAL (no such id) or ct_stats_add_*'s error. */
int ct_balance_endpoint_add_stats(ct_balance_t *b, size_t id, ct_stats_t *stats,
                                  const char *labels);

#ifdef __cplusplus
}
#endif
#endif
