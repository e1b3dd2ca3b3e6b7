/* ct_timeout_t: a middleware that fails a call with CT_ETIMEDOUT when the
 * inner service has not answered within a fixed time.
 *
 * On expiry the caller's op completes with CT_ETIMEDOUT at once and the inner
 * op is canceled, so the inner service releases what it held (a pipeline
 * client keeps a tombstone and discards the late answer). Every call has the
 * same timeout, so deadlines expire in call order: one timer serves them all,
 * and the per-call state comes from a pool allocated at init.
 *
 * A call whose context (op->ctx, context.h) has a deadline earlier than the
 * layer's timeout ends at that deadline instead, with CT_ETIMEDOUT and cause
 * CT_EDEADLINE (a call ended by the layer's own timeout has cause 0). The
 * context goes on to the inner service as a copy whose deadline is the
 * earlier of the two, so that the next hop is told when this one gives up
 * (a call without a context gets none).
 */
#ifndef CTOWER_LAYER_TIMEOUT_H
#define CTOWER_LAYER_TIMEOUT_H

#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The timeout layer's time, bound, and how it frees late answers. */
typedef struct ct_timeout_config {
    uint64_t timeout_ms; /* must be > 0 */
    /* Calls in flight at most (0: 1024); poll_ready is PENDING beyond. */
    size_t max_in_flight;
    /* Frees a response that arrives after its call timed out or was
     * canceled. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_timeout_config_t;

/* What the layer counts (stats.h; ct_timeout_add_stats registers them). */
typedef struct ct_timeout_metrics {
    ct_counter_t timeouts;  /* calls ended by the layer's timeout */
    ct_counter_t deadlines; /* calls ended by their caller's earlier deadline */
} ct_timeout_metrics_t;

struct ct_timeout_entry;

/* The timeout layer: a service over the one it times. */
typedef struct ct_timeout {
    ct_service_t service;         /* first: a timeout layer is a service */
    ct_timeout_metrics_t metrics; /* its counts (ct_timeout_add_stats()) */
    /* private */
    ct_service_t *inner;
    struct ct_timeout_entry *entries;
    size_t cap;
    ct_link_t free_entries;
    ct_link_t by_deadline; /* entries whose caller still waits, oldest first */
    size_t busy;           /* entries whose inner op has not called back */
    uint64_t timeout_ms;
    uv_timer_t timer;
    ct_msg_free_fn free_msg;
    void *free_ctx;
    ct_waitq_t waiters;
} ct_timeout_t;

/* Wraps inner (which the layer owns from now on: closing the layer closes it).
 * Returns 0, CT_EINVAL or UV_ENOMEM. */
int ct_timeout_init(ct_timeout_t *layer, ct_loop_t *loop, ct_service_t *inner,
                    const ct_timeout_config_t *cfg);

/* Registers the layer's counters in stats (of its loop) with labels (may be
 * NULL): ctower_timeout_timeouts_total, ctower_timeout_deadlines_total. Returns 0 or
 * ct_stats_add_counter's error. */
int ct_timeout_add_stats(ct_timeout_t *layer, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
