/* ct_breaker_t: a circuit breaker over a service (Finagle's failure accrual
 * and fail-fast, which tower's users build by hand).
 *
 * Closed, calls pass. When failures_to_open calls in a row fail as a
 * broken service does (could not connect, connection broken, an answer to
 * nothing, timed out, or an inner breaker open: CT_ECONNECT,
 * CT_ESENDBROKEN, CT_ERECVBROKEN, CT_EDESYNC, CT_ETIMEDOUT, CT_EOPEN; or
 * what is_failure says), the breaker opens: for a pause, every call fails at
 * once with CT_EOPEN, instead of waiting on a service that does not answer
 * (a timeout each) or piling onto one that is down. After the pause the
 * next call goes through as a probe (half-open) while the others still
 * fail at once; the probe's answer closes the breaker, its failure opens it
 * again for a pause twice as long (pause_min_ms doubling up to
 * pause_max_ms, drawn between half and all of that). An answer, or an
 * error that is not a failure, ends a run of failures.
 *
 * Readiness: the inner service's while closed (or for the probe); READY
 * while open, since the call then fails at once: failing fast is the
 * point. A READY holds the inner service's reservation when it polled it;
 * ct_service_release() gives it back. A balancer over breakers leaves out
 * an endpoint whose breaker is open (CT_EOPEN is one of its failures).
 *
 * Cancel: the call is canceled in the inner service (a canceled call counts
 * neither way). Shutdown and close: those of the inner service.
 */
#ifndef CTOWER_LAYER_BREAKER_H
#define CTOWER_LAYER_BREAKER_H

#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a call's error (status < 0, and its cause) is a failure of the
 * service. Asked about every error but CT_ECANCELED. */
typedef int (*ct_breaker_failure_fn)(void *ctx, int status, int cause);

/* When the breaker opens, for how long, and what counts as a failure. */
typedef struct ct_breaker_config {
    unsigned failures_to_open;        /* failures in a row that open it (0: 5) */
    uint64_t pause_min_ms;            /* the first pause (0: 1 s) */
    uint64_t pause_max_ms;            /* the longest (0: 30 s, or pause_min_ms if longer) */
    size_t max_in_flight;             /* calls in flight at most (0: 1024) */
    ct_breaker_failure_fn is_failure; /* NULL: the failures listed above */
    void *is_failure_ctx;             /* is_failure's first argument */
    /* Frees a request the breaker refuses, and a response nobody waits for
     * any more. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_breaker_config_t;

/* Where the breaker is: calls go through, fail at once, or one probes. */
typedef enum ct_breaker_state {
    CT_BREAKER_CLOSED = 0,
    CT_BREAKER_OPEN = 1,
    CT_BREAKER_HALF_OPEN = 2 /* the pause is over: the next call probes */
} ct_breaker_state_t;

/* The breaker's state and counts (ct_breaker_stats()). */
typedef struct ct_breaker_stats {
    ct_breaker_state_t state;   /* closed, open or half-open */
    unsigned failures_in_a_row; /* since the last answer */
    uint64_t opens;             /* times it opened */
    uint64_t rejected;          /* calls failed at once with CT_EOPEN */
} ct_breaker_stats_t;

/* What the breaker counts (stats.h; ct_breaker_add_stats registers them). */
typedef struct ct_breaker_metrics {
    ct_gauge_t open;       /* 1 while open or half-open, 0 closed */
    ct_counter_t opens;    /* transitions to open */
    ct_counter_t closes;   /* transitions back to closed (a probe answered) */
    ct_counter_t rejected; /* calls failed at once with CT_EOPEN */
} ct_breaker_metrics_t;

struct ct_breaker_entry;

/* The circuit breaker: a service over the one it guards. */
typedef struct ct_breaker {
    ct_service_t service; /* first: a breaker is a service */
    /* private */
    ct_service_t *inner;
    ct_breaker_config_t cfg;
    struct ct_breaker_entry *entries;
    struct ct_breaker_entry **free_entries; /* a stack */
    size_t nfree;
    int reserved; /* 1: a READY holds the inner service's reservation */
    int open;     /* open, or half-open once open_until has passed */
    int probing;  /* half-open: the probe is in flight */
    uint64_t open_until;
    unsigned failures_in_a_row, opens_in_a_row;
    ct_breaker_metrics_t metrics;
    uint32_t rng;
    ct_waitq_t waiters;
} ct_breaker_t;

/* Wraps inner (on loop, wrapped by no other layer), which b owns from now
 * on. Returns 0, CT_EINVAL (pause_max_ms < pause_min_ms) or UV_ENOMEM; on
 * error inner is still the caller's. */
int ct_breaker_init(ct_breaker_t *b, ct_loop_t *loop, ct_service_t *inner,
                    const ct_breaker_config_t *cfg);

/* The breaker's state and counts into *out. */
void ct_breaker_stats(const ct_breaker_t *b, ct_breaker_stats_t *out);

/* Registers the breaker's metrics in stats (of its loop) with labels (may
 * be NULL): ctower_breaker_open, ctower_breaker_opens_total,
 * ctower_breaker_closes_total, ctower_breaker_rejected_total. Returns 0 or
 * ct_stats_add_*'s error. */
int ct_breaker_add_stats(ct_breaker_t *b, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
