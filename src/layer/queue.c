/* The queueing layer. Each call takes an entry, which waits in the queue
 * (in the order calls came) until the inner service is READY, then holds
 * the inner op until the answer goes back to the caller. */
#include "ctower/layer/queue.h"
#include "ctower/context.h"
#include "ctower/error.h"
#include "../core/list.h"
#include "entry.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_queue_entry {
    ct_op_t inner;
    ct_op_t *outer; /* NULL once the caller has been answered */
    void *request;  /* while it waits (a request may be NULL) */
    ct_link_t link; /* in queue->waiting while it waits */
    int waiting;    /* it is */
    ct_queue_t *queue;
} entry_t;

static void pump(ct_queue_t *q);

static void free_request(ct_queue_t *q, void *request) {
    if (request && q->cfg.free_msg) q->cfg.free_msg(request, q->cfg.free_ctx);
}

/* An entry is free again: a caller that found the queue full may come. */
static void put_entry(ct_queue_t *q, entry_t *e) {
    q->free_entries[q->nfree++] = e;
    if (!ct_waitq_empty(&q->callers)) ct_waitq_wake_all(&q->callers);
}

static int is_full(const ct_queue_t *q) {
    return q->nwaiting >= q->cfg.max_queued && q->in_flight >= q->cfg.max_in_flight;
}

/* ---- waiting calls --------------------------------------------------------- */

/* A waiting call fails (its request freed, its entry free again). */
static void fail_waiting(ct_queue_t *q, entry_t *e, int status, int cause) {
    ct_op_t *op = e->outer;
    ct_list_remove(&e->link);
    e->waiting = 0;
    q->nwaiting--;
    ct_gauge_add(&q->metrics.waiting, -1);
    free_request(q, e->request);
    e->request = NULL;
    e->outer = NULL;
    put_entry(q, e);
    ct_op_complete(op, status, cause, NULL);
}

static void fail_all_waiting(ct_queue_t *q, int status) {
    while (!ct_list_empty(&q->waiting))
        fail_waiting(q, CT_CONTAINER_OF(q->waiting.next, entry_t, link), status, 0);
}

static void on_deadline(uv_timer_t *timer);

static void start_deadline_timer(ct_queue_t *q) {
    uint64_t now = uv_now(q->service.loop->uv);
    uv_timer_start(&q->deadline_timer, on_deadline,
                   q->next_deadline > now ? q->next_deadline - now : 0, 0);
}

/* Fails the waiting calls whose deadline has come, and sets the timer for
 * the next one. */
static void on_deadline(uv_timer_t *timer) {
    ct_queue_t *q = CT_CONTAINER_OF(timer, ct_queue_t, deadline_timer);
    uint64_t now = uv_now(q->service.loop->uv), next = 0;
    ct_link_t *l = q->waiting.next;
    q->next_deadline = 0;
    while (l != &q->waiting) {
        entry_t *e = CT_CONTAINER_OF(l, entry_t, link);
        const ct_context_t *ctx = e->outer->ctx;
        l = l->next;
        if (!ctx || !ctx->deadline_ms) continue;
        if (ct_context_expired(ctx, now)) {
            ct_counter_add(&q->metrics.expired, 1);
            fail_waiting(q, e, CT_ETIMEDOUT, CT_EDEADLINE);
        } else if (!next || ctx->deadline_ms < next) {
            next = ctx->deadline_ms;
        }
    }
    if (next) {
        q->next_deadline = next;
        start_deadline_timer(q);
    }
}

/* ---- issuing --------------------------------------------------------------- */

/* Issues e's call (after a READY). */
static void issue(ct_queue_t *q, entry_t *e) {
    void *request = e->request;
    int r;
    e->request = NULL;
    e->inner.ctx = e->outer->ctx;
    q->in_flight++;
    ct_gauge_add(&q->metrics.in_flight, 1);
    r = ct_service_call(q->inner, request, &e->inner);
    if (r < 0) { /* nothing started: the request is still ours */
        ct_op_t *op = e->outer;
        q->in_flight--;
        ct_gauge_add(&q->metrics.in_flight, -1);
        free_request(q, request);
        e->outer = NULL;
        put_entry(q, e);
        ct_op_complete(op, r, 0, NULL);
    }
}

/* Issues waiting calls while the inner service is READY and has room. */
static void pump(ct_queue_t *q) {
    while (!ct_list_empty(&q->waiting) && q->in_flight < q->cfg.max_in_flight) {
        int r = ct_service_poll_ready(q->inner, &q->ready);
        entry_t *e;
        if (r == CT_PENDING) break;
        if (r < 0) {
            fail_all_waiting(q, r);
            break;
        }
        e = CT_CONTAINER_OF(ct_list_pop_front(&q->waiting), entry_t, link);
        e->waiting = 0;
        q->nwaiting--;
        ct_gauge_add(&q->metrics.waiting, -1);
        issue(q, e);
    }
    if (q->draining && ct_list_empty(&q->waiting)) {
        q->draining = 0;
        ct_service_shutdown_inner_later(&q->service, q->inner);
    }
}

static void on_ready(ct_waker_t *waker) {
    pump(CT_CONTAINER_OF(waker, ct_queue_t, ready));
}

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_queue_t *q = e->queue;
    ct_op_t *outer = e->outer;
    int cause = op->cause; /* (the entry may carry the next call below) */
    q->in_flight--;
    ct_gauge_add(&q->metrics.in_flight, -1);
    e->outer = NULL;
    put_entry(q, e);
    if (!ct_list_empty(&q->waiting) && !q->closing) pump(q);
    /* last: the caller's callback may call, cancel or close */
    if (outer)
        ct_op_complete_now(outer, status, cause, response);
    else /* canceled: nobody waits for it */
        free_request(q, response);
}

/* ---- the service ------------------------------------------------------------ */

static int queue_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_queue_t *q = (ct_queue_t *)svc;
    if (!is_full(q)) return CT_READY;
    if (waker) ct_waitq_add(&q->callers, waker);
    return CT_PENDING;
}

static int queue_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_queue_t *q = (ct_queue_t *)svc;
    entry_t *e;
    if (is_full(q) || q->nfree == 0) {
        free_request(q, request);
        ct_counter_add(&q->metrics.refused, 1);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    ct_counter_add(&q->metrics.calls, 1);
    e = q->free_entries[--q->nfree];
    e->outer = op;
    e->request = request;
    op->slot = (size_t)(e - q->entries);
    ct_list_push_back(&q->waiting, &e->link);
    e->waiting = 1;
    q->nwaiting++;
    ct_gauge_add(&q->metrics.waiting, 1);
    if (op->ctx && op->ctx->deadline_ms &&
        (!q->next_deadline || op->ctx->deadline_ms < q->next_deadline)) {
        q->next_deadline = op->ctx->deadline_ms; /* the earliest of those waiting */
        start_deadline_timer(q);
    }
    pump(q);
    return 0;
}

static void queue_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_queue_t *q = (ct_queue_t *)svc;
    entry_t *e = &q->entries[op->slot];
    if (e->waiting) {
        fail_waiting(q, e, CT_ECANCELED, 0);
        return;
    }
    ct_entry_cancel(&e->outer, &e->inner); /* its callback gives the entry back */
}

static int queue_shutdown(ct_service_t *svc) {
    ct_queue_t *q = (ct_queue_t *)svc;
    if (ct_list_empty(&q->waiting))
        return ct_service_shutdown(q->inner, ct_service_shutdown_done_owner);
    q->draining = 1; /* pump shuts the inner service down after the last one */
    return 0;
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_queue_t *q = CT_CONTAINER_OF(handle, ct_queue_t, deadline_timer);
    free(q->entries);
    q->entries = NULL;
    ct_service_closed(&q->service);
}

/* The inner service completed every op before its close callback, so every
 * entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_queue_t *q = inner->owner;
    uv_close((uv_handle_t *)&q->deadline_timer, on_timer_closed);
}

static void queue_close(ct_service_t *svc) {
    ct_queue_t *q = (ct_queue_t *)svc;
    q->closing = 1;
    q->draining = 0;
    uv_timer_stop(&q->deadline_timer);
    ct_waker_cancel(&q->ready);
    fail_all_waiting(q, CT_ECLOSED);
    ct_waitq_wake_all(&q->callers);
    if (ct_service_close(q->inner, on_inner_closed) < 0) on_inner_closed(q->inner);
}

static const ct_service_vtable_t queue_vtable = {
    queue_poll_ready, queue_call, queue_cancel, NULL, queue_shutdown, queue_close, NULL,
};

int ct_queue_init(ct_queue_t *q, ct_loop_t *loop, ct_service_t *inner,
                  const ct_queue_config_t *cfg) {
    ct_queue_config_t c = {0};
    size_t i, n;
    int r;
    if (!q || !loop || !inner || inner->owner) return CT_EINVAL;
    if (cfg) c = *cfg;
    if (c.max_queued == 0) c.max_queued = 1024;
    if (c.max_in_flight == 0) c.max_in_flight = 1024;
    if (c.max_queued > SIZE_MAX / 4 || c.max_in_flight > SIZE_MAX / 4) return CT_EINVAL;
    memset(q, 0, sizeof *q);
    n = c.max_queued + c.max_in_flight;
    /* the entries, then the stack of free ones, in one block */
    if (!(q->entries = calloc(n, sizeof *q->entries + sizeof *q->free_entries))) return UV_ENOMEM;
    q->free_entries = (entry_t **)(q->entries + n);
    if ((r = uv_timer_init(loop->uv, &q->deadline_timer)) != 0) {
        free(q->entries);
        return r;
    }
    ct_service_init(&q->service, loop, &queue_vtable);
    q->cfg = c;
    q->inner = inner;
    inner->owner = q;
    ct_list_init(&q->waiting);
    ct_waitq_init(&q->callers);
    ct_waker_init(&q->ready, loop, on_ready);
    for (i = 0; i < n; i++) {
        entry_t *e = &q->entries[n - 1 - i];
        e->queue = q;
        ct_op_init(&e->inner, on_inner_done); /* reusable after each callback */
        q->free_entries[q->nfree++] = e;
    }
    return 0;
}

int ct_queue_add_stats(ct_queue_t *q, ct_stats_t *s, const char *labels) {
    ct_queue_metrics_t *m = &q->metrics;
    int r;
    if ((r = ct_stats_add_counter(s, "ctower_queue_calls_total", labels, "Calls taken.",
                                  &m->calls)) ||
        (r = ct_stats_add_counter(s, "ctower_queue_refused_total", labels,
                                  "Calls refused: the queue was full.", &m->refused)) ||
        (r = ct_stats_add_counter(s, "ctower_queue_expired_total", labels,
                                  "Calls whose deadline passed while they waited.", &m->expired)) ||
        (r = ct_stats_add_gauge(s, "ctower_queue_waiting", labels, "Calls waiting their turn.",
                                &m->waiting)))
        return r;
    return ct_stats_add_gauge(s, "ctower_queue_in_flight", labels,
                              "Calls issued to the inner service, not yet answered.",
                              &m->in_flight);
}
