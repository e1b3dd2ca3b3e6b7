/* The limit layer. With max_in_flight, each call takes an entry, which holds
 * the call's op in the inner service, so the entries are the slots: a call
 * has one until its inner op calls back (even if its caller was answered
 * earlier, canceled). With only a rate, calls pass the caller's op straight
 * to the inner service: nothing needs to be counted on the way back. */
#include "ctower/layer/limit.h"
#include "ctower/error.h"
#include "entry.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_limit_entry {
    ct_op_t inner;
    ct_op_t *outer; /* NULL once the caller has been answered */
    size_t index;   /* in layer->entries */
    ct_limit_t *layer;
} entry_t;

/* ---- the rate's bucket -------------------------------------------------------- */

static uint64_t bucket_size(const ct_limit_t *l) {
    return (uint64_t)l->cfg.burst * 1000;
}

/* Whether a token is there, the bucket topped up first: a top-up left for
 * later would be capped later, after calls had taken from a bucket that
 * should have been full, and let one call too many through. */
static int token_ready(ct_limit_t *l) {
    uint64_t now;
    if (l->cfg.rate_per_s == 0) return 1;
    now = uv_now(l->service.loop->uv);
    if (now > l->refilled_ms) { /* a token a second is a thousandth a ms */
        l->tokens_milli += (now - l->refilled_ms) * l->cfg.rate_per_s;
        if (l->tokens_milli > bucket_size(l)) l->tokens_milli = bucket_size(l);
        l->refilled_ms = now;
    }
    return l->tokens_milli >= 1000;
}

static void take_token(ct_limit_t *l) {
    if (l->cfg.rate_per_s) l->tokens_milli -= 1000;
}

static void give_token(ct_limit_t *l) {
    if (l->cfg.rate_per_s && (l->tokens_milli += 1000) > bucket_size(l))
        l->tokens_milli = bucket_size(l);
}

static void on_timer(uv_timer_t *timer) {
    ct_limit_t *l = CT_CONTAINER_OF(timer, ct_limit_t, timer);
    ct_waitq_wake_all(&l->waiters);
}

/* Wakes the waiters when the next token is due (1 ms at least). */
static void wait_for_token(ct_limit_t *l) {
    uint64_t missing = 1000 - l->tokens_milli;
    uint64_t ms = (missing + l->cfg.rate_per_s - 1) / l->cfg.rate_per_s;
    if (!uv_is_active((uv_handle_t *)&l->timer))
        uv_timer_start(&l->timer, on_timer, ms ? ms : 1, 0);
}

/* ---- calls ---------------------------------------------------------------------- */

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_limit_t *l = e->layer;
    l->free_entries[l->nfree++] = e;
    if (!ct_waitq_empty(&l->waiters)) ct_waitq_wake_all(&l->waiters);
    ct_entry_answer(&e->outer, op, status, response, l->cfg.free_msg, l->cfg.free_ctx);
}

/* Whether a call may start now; PENDING if not, with waker registered. */
static int room(ct_limit_t *l, ct_waker_t *waker) {
    if (l->entries && l->nfree == 0) {
        if (waker) ct_waitq_add(&l->waiters, waker);
        return CT_PENDING;
    }
    if (!token_ready(l)) {
        if (waker) ct_waitq_add(&l->waiters, waker);
        wait_for_token(l);
        return CT_PENDING;
    }
    return CT_READY;
}

static int limit_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_limit_t *l = (ct_limit_t *)svc;
    int r;
    if (l->reserved) return CT_READY;
    if ((r = room(l, waker)) != CT_READY) return r;
    if ((r = ct_service_poll_ready(l->inner, waker)) != CT_READY) return r;
    l->reserved = 1; /* a slot (the entry on top of the stack) and a token */
    take_token(l);
    return CT_READY;
}

static int refuse(ct_limit_t *l, void *request, ct_op_t *op) {
    if (request && l->cfg.free_msg) l->cfg.free_msg(request, l->cfg.free_ctx);
    ct_counter_add(&l->metrics.refused, 1);
    ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
    return 0;
}

static int limit_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_limit_t *l = (ct_limit_t *)svc;
    entry_t *e;
    int r;
    if (!l->reserved) {
        if (room(l, NULL) != CT_READY) return refuse(l, request, op);
        take_token(l);
    }
    l->reserved = 0;
    if (!l->entries) { /* only a rate: the caller's op goes straight in */
        r = l->inner->vtable->call(l->inner, request, op);
    } else {
        e = l->free_entries[--l->nfree];
        e->inner.ctx = op->ctx;
        r = ct_service_call(l->inner, request, &e->inner);
        if (r >= 0) {
            e->outer = op;
            op->slot = e->index;
        } else {
            l->free_entries[l->nfree++] = e;
        }
    }
    if (r < 0) { /* nothing started: the token is not spent */
        give_token(l);
        return r;
    }
    ct_counter_add(&l->metrics.calls, 1);
    return 0;
}

/* An answer given at once takes no slot: it is never in flight. */
static int limit_call_sync(ct_service_t *svc, void *request, int *status, void **response) {
    ct_limit_t *l = (ct_limit_t *)svc;
    if (!l->reserved) {
        if (room(l, NULL) != CT_READY) return 0; /* call refuses it */
        take_token(l);
    }
    if (!ct_service_call_sync(l->inner, request, status, response)) {
        if (!l->reserved) give_token(l);
        return 0;
    }
    l->reserved = 0;
    ct_counter_add(&l->metrics.calls, 1);
    return 1;
}

static void limit_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_limit_t *l = (ct_limit_t *)svc;
    entry_t *e;
    if (!l->entries) {
        l->inner->vtable->cancel(l->inner, op);
        return;
    }
    e = &l->entries[op->slot];
    ct_entry_cancel(&e->outer, &e->inner);
}

static void limit_release(ct_service_t *svc) {
    ct_limit_t *l = (ct_limit_t *)svc;
    if (!l->reserved) return;
    l->reserved = 0;
    give_token(l);
    ct_service_release(l->inner);
}

/* ---- shutdown and close ---------------------------------------------------------- */

static int limit_shutdown(ct_service_t *svc) {
    return ct_service_shutdown(((ct_limit_t *)svc)->inner, ct_service_shutdown_done_owner);
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_limit_t *l = CT_CONTAINER_OF(handle, ct_limit_t, timer);
    free(l->entries);
    l->entries = NULL;
    ct_service_closed(&l->service);
}

/* The inner service completed every op before its close callback, so every
 * entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_limit_t *l = inner->owner;
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
}

static void limit_close(ct_service_t *svc) {
    ct_limit_t *l = (ct_limit_t *)svc;
    uv_timer_stop(&l->timer);
    ct_waitq_wake_all(&l->waiters);
    if (ct_service_close(l->inner, on_inner_closed) < 0) on_inner_closed(l->inner);
}

static const ct_service_vtable_t limit_vtable = {
    limit_poll_ready, limit_call,  limit_cancel,    limit_release,
    limit_shutdown,   limit_close, limit_call_sync,
};

/* ---- setup ------------------------------------------------------------------------ */

int ct_limit_init(ct_limit_t *l, ct_loop_t *loop, ct_service_t *inner,
                  const ct_limit_config_t *cfg) {
    size_t i, n;
    int r;
    if (!l || !loop || !inner || inner->owner || !cfg) return CT_EINVAL;
    if (cfg->max_in_flight == 0 && cfg->rate_per_s == 0) return CT_EINVAL;
    memset(l, 0, sizeof *l);
    l->cfg = *cfg;
    if (l->cfg.rate_per_s && l->cfg.burst == 0)
        l->cfg.burst = l->cfg.rate_per_s >= 10 ? l->cfg.rate_per_s / 10 : 1;
    n = l->cfg.max_in_flight;
    if (n) { /* the entries, then the stack of free ones, in one block */
        l->entries = calloc(n, sizeof *l->entries + sizeof *l->free_entries);
        if (!l->entries) return UV_ENOMEM;
        l->free_entries = (entry_t **)(l->entries + n);
    }
    if ((r = uv_timer_init(loop->uv, &l->timer)) != 0) {
        free(l->entries);
        l->entries = NULL;
        return r;
    }
    ct_service_init(&l->service, loop, &limit_vtable);
    l->inner = inner;
    inner->owner = l;
    l->tokens_milli = bucket_size(l); /* a full bucket to start */
    l->refilled_ms = uv_now(loop->uv);
    ct_waitq_init(&l->waiters);
    for (i = 0; i < n; i++) {
        entry_t *e = &l->entries[n - 1 - i];
        e->layer = l;
        e->index = n - 1 - i;
        ct_op_init(&e->inner, on_inner_done); /* reusable after each callback */
        l->free_entries[l->nfree++] = e;
    }
    return 0;
}

ct_limit_counts_t ct_limit_counts(const ct_limit_t *l) {
    ct_limit_counts_t out;
    out.calls = ct_counter_read(&l->metrics.calls);
    out.refused = ct_counter_read(&l->metrics.refused);
    return out;
}

int ct_limit_add_stats(ct_limit_t *l, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_counter(s, "ctower_limit_calls_total", labels,
                                  "Calls passed to the inner service.", &l->metrics.calls)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_limit_refused_total", labels,
                                  "Calls refused with CT_EOVERLOADED.", &l->metrics.refused)))
        return r;
    return 0;
}
