/* The observing layer. Each call takes an entry, which holds the caller's
 * op, the call's start time and the hooks' span, so that the answer can be
 * counted and timed on its way back. */
#include "ctower/layer/observe.h"
#include "ctower/error.h"
#include "entry.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_observe_entry {
    ct_op_t inner;
    ct_op_t *outer; /* NULL once the caller has been answered */
    uint64_t start_ns;
    void *span;
    ct_observe_t *layer;
} entry_t;

/* The caller is answered (or has canceled): the call ends here for the
 * layer, whatever the inner op does later. */
static void end_call(ct_observe_t *o, entry_t *e, int status, int cause, const void *response) {
    ct_observe_metrics_t *m = &o->metrics;
    uint64_t took = uv_hrtime() - e->start_ns;
    if (status == 0)
        ct_counter_add(&m->responses, 1);
    else
        ct_counter_add(&m->errors[ct_error_kind(status)], 1);
    ct_gauge_add(&m->in_flight, -1);
    ct_histogram_record(&m->latency, took);
    if (o->cfg.on_end)
        o->cfg.on_end(o->cfg.hooks_ctx, e->span, e->outer, status, cause, response, took);
}

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_observe_t *o = e->layer;
    if (e->outer) end_call(o, e, status, op->cause, response);
    o->free_entries[o->nfree++] = e;
    if (!ct_waitq_empty(&o->waiters)) ct_waitq_wake_all(&o->waiters);
    ct_entry_answer(&e->outer, op, status, response, o->cfg.free_msg, o->cfg.free_ctx);
}

static int observe_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_observe_t *o = (ct_observe_t *)svc;
    if (o->nfree == 0) {
        if (waker) ct_waitq_add(&o->waiters, waker);
        return CT_PENDING;
    }
    return ct_service_poll_ready(o->inner, waker);
}

static int observe_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_observe_t *o = (ct_observe_t *)svc;
    entry_t *e;
    int r;
    if (o->nfree == 0) {
        if (o->cfg.free_msg) o->cfg.free_msg(request, o->cfg.free_ctx);
        ct_counter_add(&o->metrics.requests, 1);
        ct_counter_add(&o->metrics.errors[CT_KIND_OVERLOADED], 1);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e = o->free_entries[--o->nfree];
    e->inner.ctx = op->ctx;
    e->outer = op;
    e->start_ns = uv_hrtime();
    /* (before the call: the request is the inner service's after it) */
    e->span = o->cfg.on_start ? o->cfg.on_start(o->cfg.hooks_ctx, op, request) : NULL;
    r = ct_service_call(o->inner, request, &e->inner);
    if (o->cfg.on_called) o->cfg.on_called(o->cfg.hooks_ctx, e->span);
    if (r < 0) {
        /* nothing started: the span ends with the refusal, uncounted */
        if (o->cfg.on_end) o->cfg.on_end(o->cfg.hooks_ctx, e->span, op, r, 0, NULL, 0);
        e->outer = NULL;
        o->free_entries[o->nfree++] = e;
        return r;
    }
    ct_counter_add(&o->metrics.requests, 1);
    ct_gauge_add(&o->metrics.in_flight, 1);
    op->slot = (size_t)(e - o->entries);
    return 0;
}

static void observe_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_observe_t *o = (ct_observe_t *)svc;
    entry_t *e = &o->entries[op->slot];
    end_call(o, e, CT_ECANCELED, 0, NULL);
    ct_entry_cancel(&e->outer, &e->inner);
}

static void observe_release(ct_service_t *svc) {
    ct_service_release(((ct_observe_t *)svc)->inner);
}

static int observe_shutdown(ct_service_t *svc) {
    return ct_service_shutdown(((ct_observe_t *)svc)->inner, ct_service_shutdown_done_owner);
}

/* The inner service completed every op before its close callback, so every
 * entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_observe_t *o = inner->owner;
    free(o->entries);
    o->entries = NULL;
    ct_service_closed(&o->service);
}

static void observe_close(ct_service_t *svc) {
    ct_observe_t *o = (ct_observe_t *)svc;
    ct_waitq_wake_all(&o->waiters);
    if (ct_service_close(o->inner, on_inner_closed) < 0) on_inner_closed(o->inner);
}

/* No call_sync: an answer given at once would skip the count. */
static const ct_service_vtable_t observe_vtable = {
    observe_poll_ready, observe_call,  observe_cancel, observe_release,
    observe_shutdown,   observe_close, NULL,
};

int ct_observe_init(ct_observe_t *o, ct_loop_t *loop, ct_service_t *inner,
                    const ct_observe_config_t *cfg) {
    ct_observe_config_t c;
    size_t i, n;
    if (!o || !loop || !inner || inner->owner || !cfg) return CT_EINVAL;
    c = *cfg;
    if (c.max_in_flight == 0) c.max_in_flight = 1024;
    memset(o, 0, sizeof *o);
    n = c.max_in_flight;
    /* the entries, then the stack of free ones, in one block */
    if (!(o->entries = calloc(n, sizeof *o->entries + sizeof *o->free_entries))) return UV_ENOMEM;
    o->free_entries = (entry_t **)(o->entries + n);
    ct_service_init(&o->service, loop, &observe_vtable);
    ct_histogram_init(&o->metrics.latency);
    o->cfg = c;
    o->inner = inner;
    inner->owner = o;
    ct_waitq_init(&o->waiters);
    for (i = 0; i < n; i++) {
        entry_t *e = &o->entries[n - 1 - i];
        e->layer = o;
        ct_op_init(&e->inner, on_inner_done); /* reusable after each callback */
        o->free_entries[o->nfree++] = e;
    }
    return 0;
}

/* ---- registration ----------------------------------------------------------------- */

static int add_named(ct_stats_t *s, const char *prefix, const char *suffix, const char *labels,
                     const char *help, ct_stats_kind_t kind, const void *metric) {
    return ct_stats_add_named(s, kind, prefix, suffix, labels, help, 1e-9, metric);
}

int ct_observe_add_stats(ct_observe_t *o, ct_stats_t *s, const char *prefix, const char *labels) {
    ct_observe_metrics_t *m = &o->metrics;
    char with_kind[256];
    int r, k;
    if (!labels) labels = "";
    if ((r = add_named(s, prefix, "requests_total", labels, "Calls started.", CT_STATS_COUNTER,
                       &m->requests)) ||
        (r = add_named(s, prefix, "responses_total", labels, "Calls answered with a response.",
                       CT_STATS_COUNTER, &m->responses)) ||
        (r = add_named(s, prefix, "in_flight", labels, "Calls whose caller waits.", CT_STATS_GAUGE,
                       &m->in_flight)) ||
        (r = add_named(s, prefix, "latency_seconds", labels,
                       "From the call to its answer (response or error).", CT_STATS_HISTOGRAM,
                       &m->latency)))
        return r;
    for (k = 0; k < CT_KIND_COUNT; k++) {
        int n = snprintf(with_kind, sizeof with_kind, "%s%skind=\"%s\"", labels,
                         labels[0] ? "," : "", ct_error_kind_name((ct_error_kind_t)k));
        if (n < 0 || (size_t)n >= sizeof with_kind) return CT_EINVAL;
        if ((r = add_named(s, prefix, "errors_total", with_kind,
                           "Calls answered with an error, by kind.", CT_STATS_COUNTER,
                           &m->errors[k])))
            return r;
    }
    return 0;
}
