/* ct_limit_t: a middleware that bounds the calls in flight in the service
 * it wraps (tower's ConcurrencyLimit), the calls started per second
 * (tower's RateLimit), or both.
 *
 * The bounds act through readiness: poll_ready is PENDING while
 * max_in_flight calls are in flight, or while the rate allows no call yet,
 * and the caller is woken when a call completes or the rate allows one.
 * Under a listener, that is back-pressure: the servers stop reading until
 * the service has room, for every connection at once. A READY holds a
 * permit for the next call (a slot, a token of the rate); the call uses it,
 * or ct_service_release() gives it back.
 *
 * A call made without a READY while a bound is reached fails with
 * CT_EOVERLOADED, and its request is freed (DESIGN.md: a service at capacity
 * does not crash). A retry layer above may try it again later.
 *
 * The rate is a token bucket: rate_per_s tokens a second, banked up to
 * burst (so after a quiet time, burst calls may start at once), one per
 * call, counted in loop time (ms).
 *
 * Cancel: the call is canceled in the inner service; its slot comes back
 * when that completes. Shutdown and close: those of the inner service.
 */
#ifndef CTOWER_LAYER_LIMIT_H
#define CTOWER_LAYER_LIMIT_H

#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The limit layer's bounds: calls in flight, calls started per second. */
typedef struct ct_limit_config {
    /* Calls in flight at most (0: no bound). */
    size_t max_in_flight;
    /* Calls started per second at most (0: no bound), and how many may be
     * banked while fewer come (0: a tenth of a second's worth, at least 1). */
    uint32_t rate_per_s;
    uint32_t burst;
    /* Frees the request of a call refused with CT_EOVERLOADED. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_limit_config_t;

/* The limit layer's counts, read at once (ct_limit_counts()). */
typedef struct ct_limit_counts {
    uint64_t calls;   /* calls passed to the inner service */
    uint64_t refused; /* calls refused with CT_EOVERLOADED */
} ct_limit_counts_t;

/* The same, as the layer counts them (stats.h: read them from any thread,
 * register them with ct_limit_add_stats). */
typedef struct ct_limit_metrics {
    ct_counter_t calls;   /* calls let through */
    ct_counter_t refused; /* calls refused with CT_EOVERLOADED */
} ct_limit_metrics_t;

struct ct_limit_entry;

/* The limit layer: a service over the one it bounds. */
typedef struct ct_limit {
    ct_service_t service; /* first: a limit is a service */
    /* private */
    ct_service_t *inner;
    ct_limit_config_t cfg;
    struct ct_limit_entry *entries;       /* max_in_flight of them, or none */
    struct ct_limit_entry **free_entries; /* a stack */
    size_t nfree;
    int reserved;          /* a READY's permit, not yet used */
    uint64_t tokens_milli; /* the rate's bucket, in thousandths of a call */
    uint64_t refilled_ms;  /* loop time of the last refill */
    uv_timer_t timer;      /* wakes the waiters when a token is due */
    ct_waitq_t waiters;
    ct_limit_metrics_t metrics;
} ct_limit_t;

/* Wraps inner (which the layer owns from now on: closing the layer closes
 * it). Returns 0, CT_EINVAL (no bound at all, inner already wrapped) or
 * UV_ENOMEM. */
int ct_limit_init(ct_limit_t *l, ct_loop_t *loop, ct_service_t *inner,
                  const ct_limit_config_t *cfg);

/* Calls passed on and refused so far. */
ct_limit_counts_t ct_limit_counts(const ct_limit_t *l);

/* Registers the layer's counters in stats (of its loop) with labels (may be
 * NULL): ctower_limit_calls_total, ctower_limit_refused_total. Returns 0 or ct_stats_add_counter's
 * error. */
int ct_limit_add_stats(ct_limit_t *layer, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
