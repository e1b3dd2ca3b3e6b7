/* ct_retry_t: a middleware that tries a call again when an attempt fails in
 * a way that allows it (tower's Retry), within a retry budget (Finagle's
 * RetryBudget), after a pause.
 *
 * A request's ownership moves to the inner service at each attempt, so the
 * layer keeps a copy of every request (made by cfg.copy at the call) until
 * its op completes, and sends a fresh copy for each further attempt. A call
 * whose copy cannot be made (no memory) goes without retries.
 *
 * Which outcomes are tried again:
 *  - by default (CT_RETRY_UNSENT) the failures where the request never reached
 *    a server: CT_ECONNECT (a reconnecting client could not connect) and
 *    CT_EOVERLOADED (refused at capacity). Safe for every request.
 *  - CT_RETRY_IDEMPOTENT adds the failures after which the server may have
 *    run the request: a broken connection (CT_ESENDBROKEN, CT_ERECVBROKEN)
 *    and a time-out (CT_ETIMEDOUT, from a timeout layer below this one). For
 *    requests that may run twice: reads, or writes that set a value.
 *  - cfg.policy, when given, decides instead, for every attempt's outcome,
 *    answers included (a Redis "-LOADING" reply, say).
 *
 * An attempt is tried again only if attempts remain (max_attempts in all)
 * and the budget allows: retries over the last 10 seconds stay under
 * budget_percent of the calls made in them, plus budget_min_per_s per second
 * (so that a client that makes few calls can still retry). When a server is
 * down, the budget keeps retries from multiplying its load. A refused retry
 * completes the op with the attempt's own outcome.
 *
 * The n-th retry of a call waits backoff_min_ms doubled n - 1 times (at most
 * backoff_max_ms), drawn between half and all of that. The caller's op
 * completes once, with the last attempt's outcome; op->cause is that
 * attempt's cause.
 *
 * The caller's deadline (op->ctx, context.h) bounds it all: an attempt that
 * fails once the deadline has come, or whose pause would end at or past it,
 * is not tried again, and the op completes with CT_ETIMEDOUT, cause
 * CT_EDEADLINE. Each attempt carries a copy of the caller's context whose
 * attempt field counts it (0, 1, ...), so a server can tell a retry.
 *
 * Retried calls do not keep their order by default: each waits its own
 * pause. With keep_order they do, for requests that depend on the ones
 * before them (over a pipeline, a GET after its SET): the calls waiting for
 * their next attempt go out in call order, each once its own pause is over
 * and those before it have gone, and a call made while any waits queues
 * behind them instead of going out first. That can hold a call back for as
 * long as the pause of the one before it.
 *
 * Cost: a copy of every request, and the layer's bookkeeping. `ctower bench
 * --retry` measures it (bench/RESULTS.md).
 *
 * Cancel: an attempt in flight is canceled in the inner service; a call
 * waiting for its next attempt ends at once. Both complete with CT_ECANCELED.
 * Shutdown: no new calls; the calls under way go on, retries included, then
 * the inner service shuts down. Close: calls waiting for their next attempt
 * complete with CT_ECLOSED, attempts in flight with what the inner service's
 * close gives them, and no attempt starts any more.
 */
#ifndef CTOWER_LAYER_RETRY_H
#define CTOWER_LAYER_RETRY_H

#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Non-zero to try the request again after an attempt that ended with status
 * (0 or a negative error), cause (op->cause) and response (NULL unless
 * status is 0; the layer frees it if the attempt is tried again). */
typedef int (*ct_retry_policy_fn)(void *ctx, const void *request, int status, int cause,
                                  const void *response);

/* Which failures the retry layer tries again (without a policy). */
typedef enum ct_retry_on {
    CT_RETRY_UNSENT = 0,
    CT_RETRY_IDEMPOTENT = 1,
} ct_retry_on_t;

/* What the retry layer tries again, how often, after what pause, within what budget. */
typedef struct ct_retry_config {
    /* Copies a request (required): ct_buf_copy_msg, ct_buf_pool_copy_msg. */
    ct_msg_copy_fn copy;
    void *copy_ctx;
    /* Frees the copies, and an answer that an attempt tried again gave
     * (required when messages need freeing; NULL otherwise). */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    ct_retry_on_t retry_on;
    ct_retry_policy_fn policy; /* instead of retry_on when not NULL */
    void *policy_ctx;
    unsigned max_attempts;     /* the first included (0: 3; 1: no retries) */
    uint64_t backoff_min_ms;   /* 0: 10 ms */
    uint64_t backoff_max_ms;   /* 0: 1 s (or backoff_min_ms if larger) */
    unsigned budget_percent;   /* 0: 20; at most 1000 */
    unsigned budget_min_per_s; /* 0: 10 */
    size_t max_in_flight;      /* calls under way at most (0: 1024) */
    int keep_order;            /* 1: attempts go out in call order (above) */
} ct_retry_config_t;

/* The retry layer's counts, read at once (ct_retry_counts()). */
typedef struct ct_retry_counts {
    uint64_t retries;           /* attempts after the first */
    uint64_t budget_refusals;   /* retries the budget did not allow */
    uint64_t exhausted;         /* calls that failed after max_attempts */
    uint64_t deadline_refusals; /* calls ended because the caller's deadline came first */
} ct_retry_counts_t;

/* The same, as the layer counts them (stats.h: read them from any thread,
 * register them with ct_retry_add_stats). */
typedef struct ct_retry_metrics {
    ct_counter_t retries;           /* attempts after the first */
    ct_counter_t budget_refusals;   /* retries the budget did not allow */
    ct_counter_t exhausted;         /* calls failed after their last attempt */
    ct_counter_t deadline_refusals; /* retries the caller's deadline left no time for */
} ct_retry_metrics_t;

enum { CT_RETRY_WINDOW_S = 10 };

struct ct_retry_entry;

/* The retry layer: a service over the one it tries again. */
typedef struct ct_retry {
    ct_service_t service; /* first: a retry layer is a service */
    /* private */
    ct_service_t *inner;
    ct_retry_config_t cfg;
    struct ct_retry_entry *entries;
    struct ct_retry_entry **free_entries; /* a stack, nfree deep */
    size_t nfree;
    ct_link_t waiting; /* calls waiting for their next attempt, soonest first */
    size_t busy;       /* entries taken: an attempt in flight or waiting */
    uint64_t next_seq; /* call order, for keep_order */
    int closing;
    uint32_t rng; /* for the pauses' jitter */
    uv_timer_t timer;
    ct_waitq_t waiters;
    /* The budget: calls and retries per second over the last
     * CT_RETRY_WINDOW_S seconds, each bucket stamped with its second. */
    uint64_t bucket_end_ms; /* when the current second's bucket is over */
    size_t bucket_now;      /* the current second's bucket */
    uint64_t bucket_second[CT_RETRY_WINDOW_S];
    uint64_t bucket_calls[CT_RETRY_WINDOW_S];
    uint64_t bucket_retries[CT_RETRY_WINDOW_S];
    ct_retry_metrics_t metrics;
} ct_retry_t;

/* Wraps inner (which the layer owns from now on: closing the layer closes
 * it). Returns 0, CT_EINVAL (no copy function, a retry_on that is neither
 * value, backoff_max_ms below backoff_min_ms, budget_percent over 1000) or
 * UV_ENOMEM. */
int ct_retry_init(ct_retry_t *layer, ct_loop_t *loop, ct_service_t *inner,
                  const ct_retry_config_t *cfg);

/* Retries made, refused by the budget, and calls out of attempts, so far. */
ct_retry_counts_t ct_retry_counts(const ct_retry_t *layer);

/* Registers the layer's counters in stats (of its loop) with labels (may be
 * NULL): ctower_retry_retries_total, ctower_retry_budget_refusals_total,
 * ctower_retry_exhausted_total, ctower_retry_deadline_refusals_total. Returns 0 or
 * ct_stats_add_counter's error. */
int ct_retry_add_stats(ct_retry_t *layer, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
