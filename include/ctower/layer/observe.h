/* ct_observe_t: a middleware that counts the calls through it (requests,
 * answers, errors by kind, calls in flight, latency) and calls a pair of
 * tracing hooks around each one. It changes nothing of a call.
 *
 * Put it where the numbers are wanted: on top of a client stack, they are
 * the client's as its users see them (retries and waits included); over one
 * endpoint under a balancer, that endpoint's. The metrics live in the layer
 * (ct_observe_metrics_t, stats.h's single-writer kind) and are registered
 * under names of the caller's choice with ct_observe_add_stats().
 *
 * A call ends for the layer when its caller is answered: by the inner
 * service's answer, or by a cancel (counted as an error of kind
 * "canceled"; the inner call's late answer is then freed, as other layers
 * do). Latency is the time from ct_service_call() to that answer, on
 * uv_hrtime's clock (two clock reads per call).
 *
 * Tracing: with hooks, on_start runs as each call starts, with the call's
 * op (its context, op->ctx, carries the trace id when the caller gave one)
 * and request, and returns a pointer of the user's (a span); on_end runs
 * once with that pointer when the caller is answered, before the caller's
 * callback, with the status and cause, the response (still the caller's to
 * get: read it, do not keep it) and the duration. on_called, if set, runs
 * when the inner service's call returns, the span still open: between
 * on_start and on_called the span is the one being called on this stack
 * (a tracer's "current span", its scope), so that a layer below that
 * starts a call synchronously may take it for its parent. None of them may
 * call into the stack. A user emits spans to the tracer of their choice
 * from there; ctower takes no dependency on one.
 *
 * Readiness, shutdown and close are the inner service's.
 */
#ifndef CTOWER_LAYER_OBSERVE_H
#define CTOWER_LAYER_OBSERVE_H

#include "ctower/error.h"
#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the observing layer counts and times. */
typedef struct ct_observe_metrics {
    ct_counter_t requests;              /* calls started */
    ct_counter_t responses;             /* calls answered with a response */
    ct_counter_t errors[CT_KIND_COUNT]; /* calls answered with an error, by kind */
    ct_gauge_t in_flight;               /* calls whose caller waits */
    ct_histogram_t latency;             /* of every answered call, in ns */
} ct_observe_metrics_t;

/* A call starts: returns the span of the caller's tracer (may be NULL). */
typedef void *(*ct_observe_start_fn)(void *ctx, const ct_op_t *op, const void *request);
/* It is answered (status, cause, response) after duration_ns, or canceled. */
typedef void (*ct_observe_end_fn)(void *ctx, void *span, const ct_op_t *op, int status, int cause,
                                  const void *response, uint64_t duration_ns);
/* The synchronous part of the call is over: span is no longer current. */
typedef void (*ct_observe_called_fn)(void *ctx, void *span);

/* The observing layer's bound and hooks. */
typedef struct ct_observe_config {
    size_t max_in_flight; /* calls in flight at most (0: 1024); PENDING beyond */
    /* The tracing hooks; any may be NULL. */
    ct_observe_start_fn on_start;
    ct_observe_end_fn on_end;
    ct_observe_called_fn on_called;
    void *hooks_ctx;
    /* Frees a response that arrives after its caller canceled. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_observe_config_t;

struct ct_observe_entry;

/* The observing layer: a service over the one it watches. */
typedef struct ct_observe {
    ct_service_t service;         /* first: the layer is a service */
    ct_observe_metrics_t metrics; /* read them (ct_counter_read ...) or register them */
    /* private */
    ct_service_t *inner;
    ct_observe_config_t cfg;
    struct ct_observe_entry *entries;
    struct ct_observe_entry **free_entries; /* a stack */
    size_t nfree;
    ct_waitq_t waiters;
} ct_observe_t;

/* Wraps inner (on loop, wrapped by no other layer), which the layer owns
 * from now on. Returns 0, CT_EINVAL or UV_ENOMEM; on error inner is still
 * the caller's. */
int ct_observe_init(ct_observe_t *layer, ct_loop_t *loop, ct_service_t *inner,
                    const ct_observe_config_t *cfg);

/* Registers the layer's metrics in stats under prefix (e.g.
 * "ctower_client"): PREFIX_requests_total, PREFIX_responses_total,
 * PREFIX_errors_total{kind=...} (one per kind), PREFIX_in_flight and
 * PREFIX_latency_seconds, each with labels (may be NULL) before the kind.
 * prefix must outlive stats (a literal). Returns 0 or ct_stats_add_*'s
 * error. */
int ct_observe_add_stats(ct_observe_t *layer, ct_stats_t *stats, const char *prefix,
                         const char *labels);

#ifdef __cplusplus
}
#endif
#endif
