/* ct_hedge_t: a middleware that sends a backup copy of a call that has not
 * been answered after a delay, and takes whichever answer comes first
 * (Finagle's backup requests, tower's Hedge).
 *
 * A few slow answers (a server pausing for garbage collection, a lost
 * packet) set a service's tail latency. Over a balancer, the backup
 * usually goes to another server, and the call's latency becomes the
 * faster of two. The cost is the backups: a budget bounds them to
 * budget_percent of the calls (10% by default), so that a slow service is
 * not sent twice its load.
 *
 * Only for requests that may run twice (reads, or writes that set a value):
 * both copies may run.
 *
 * The first answer ends the call: the other attempt is canceled, and its
 * answer, if one still comes, is freed. An error does not end the call
 * while the other attempt is still in flight; when both fail, the caller
 * gets the last error. A call answered or failed before the delay sends no
 * backup. The request is copied at the call (cfg.copy), since the first
 * attempt takes the original; a call whose copy cannot be made goes
 * without a backup.
 *
 * The caller's context (op->ctx, context.h) goes with both attempts, the
 * backup's one attempt further. A call whose deadline comes before its
 * delay would end sends no backup, and none starts once the deadline has
 * passed.
 *
 * Cancel: both attempts are canceled; the caller's op completes with
 * CT_ECANCELED at once. Shutdown: no new calls; those under way go on
 * (backups included), then the inner service shuts down. Close: the inner
 * service's close completes every attempt.
 */
#ifndef CTOWER_LAYER_HEDGE_H
#define CTOWER_LAYER_HEDGE_H

#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* When a backup is sent, within what budget, and how requests are copied. */
typedef struct ct_hedge_config {
    /* Copies a request (required): ct_buf_copy_msg, ct_buf_pool_copy_msg. */
    ct_msg_copy_fn copy;
    void *copy_ctx;
    /* Frees the kept copies and the answers that lost (required when
     * messages need freeing). */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    /* How long a call waits for its answer before its backup goes (> 0):
     * about the inner service's 95th percentile of latency. */
    uint64_t delay_ms;
    /* Backups at most, in percent of the calls (0: 10; at most 100). */
    unsigned budget_percent;
    /* Calls under way at most (0: 1024). */
    size_t max_in_flight;
} ct_hedge_config_t;

/* The hedge layer's counts, read at once (ct_hedge_counts()). */
typedef struct ct_hedge_counts {
    uint64_t calls;           /* calls started */
    uint64_t backups;         /* backup copies sent */
    uint64_t backups_won;     /* calls answered by their backup */
    uint64_t budget_refusals; /* backups the budget did not allow */
} ct_hedge_counts_t;

/* The same, as the layer counts them (stats.h: read them from any thread,
 * register them with ct_hedge_add_stats). */
typedef struct ct_hedge_metrics {
    ct_counter_t calls;           /* calls taken */
    ct_counter_t backups;         /* backup copies sent */
    ct_counter_t backups_won;     /* calls a backup answered first */
    ct_counter_t budget_refusals; /* backups the budget did not allow */
} ct_hedge_metrics_t;

struct ct_hedge_entry;

/* The hedging layer: a service over the one it sends backups to. */
typedef struct ct_hedge {
    ct_service_t service; /* first: a hedge layer is a service */
    /* private */
    ct_service_t *inner;
    ct_hedge_config_t cfg;
    struct ct_hedge_entry *entries;
    struct ct_hedge_entry **free_entries; /* a stack, nfree deep */
    size_t nfree;
    size_t busy;           /* entries taken */
    ct_link_t by_deadline; /* calls whose backup is not due yet, oldest first */
    uint64_t budget_milli; /* backups allowed, in thousandths */
    uv_timer_t timer;
    ct_waitq_t waiters;
    int closing;
    ct_hedge_metrics_t metrics;
} ct_hedge_t;

/* Wraps inner (which the layer owns from now on: closing the layer closes
 * it). Returns 0, CT_EINVAL (no copy function, delay_ms 0, budget_percent
 * over 100, inner already wrapped) or UV_ENOMEM. */
int ct_hedge_init(ct_hedge_t *layer, ct_loop_t *loop, ct_service_t *inner,
                  const ct_hedge_config_t *cfg);

/* Calls, backups sent, backups that won, and backups refused, so far. */
ct_hedge_counts_t ct_hedge_counts(const ct_hedge_t *layer);

/* Registers the layer's counters in stats (of its loop) with labels (may be
 * NULL): ctower_hedge_calls_total, ctower_hedge_backups_total, ctower_hedge_backups_won_total,
 * ctower_hedge_budget_refusals_total. Returns 0 or ct_stats_add_counter's error. */
int ct_hedge_add_stats(ct_hedge_t *layer, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
