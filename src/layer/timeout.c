/* The timeout layer. Each call borrows an entry that holds the inner op; the
 * entry returns to the pool only when the inner op has called back, even if
 * the caller was answered earlier (timed out or canceled).
 *
 * The callers waiting are kept in order of their deadlines, which one timer
 * serves. With the layer's own timeout alone they come in that order, and a
 * call goes last; a context's deadline earlier than that is put in its
 * place from the back, a walk as long as the calls it overtakes. */
#include "ctower/layer/timeout.h"
#include "ctower/context.h"
#include "ctower/error.h"
#include "../core/list.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_timeout_entry {
    ct_op_t inner;
    ct_op_t *outer; /* NULL once the caller has been answered */
    uint64_t deadline;
    int caller_deadline; /* 1: the context's deadline, not the layer's timeout */
    ct_link_t link;      /* in free_entries, in by_deadline, or alone */
    ct_context_t ctx;    /* the caller's, its deadline the earlier of the two */
    ct_timeout_t *layer;
} entry_t;

static void on_timer(uv_timer_t *timer);

static void arm(ct_timeout_t *t) {
    entry_t *first;
    uint64_t now, due;
    if (ct_list_empty(&t->by_deadline)) {
        uv_timer_stop(&t->timer);
        return;
    }
    first = CT_CONTAINER_OF(t->by_deadline.next, entry_t, link);
    now = uv_now(t->service.loop->uv);
    due = first->deadline > now ? first->deadline - now : 0;
    uv_timer_start(&t->timer, on_timer, due, 0);
}

/* Answers the caller now; the entry waits for its inner op to call back. */
static void answer(entry_t *e, int status, int cause, void *response) {
    ct_op_t *outer = e->outer;
    e->outer = NULL;
    ct_list_remove(&e->link);
    ct_op_complete(outer, status, cause, response);
}

static void on_timer(uv_timer_t *timer) {
    ct_timeout_t *t = CT_CONTAINER_OF(timer, ct_timeout_t, timer);
    uint64_t now = uv_now(timer->loop);
    while (!ct_list_empty(&t->by_deadline)) {
        entry_t *e = CT_CONTAINER_OF(t->by_deadline.next, entry_t, link);
        if (e->deadline > now) break;
        ct_counter_add(e->caller_deadline ? &t->metrics.deadlines : &t->metrics.timeouts, 1);
        answer(e, CT_ETIMEDOUT, e->caller_deadline ? CT_EDEADLINE : 0, NULL);
        ct_op_cancel(&e->inner);
    }
    arm(t);
}

/* The inner op's callback runs on a stack no caller of the layer is on, so
 * the caller's callback runs right here (ct_op_complete_now), after the
 * entry is back: it may call again. The timer is left as it is unless
 * nothing is left to time: if it fires for a deadline that is gone, on_timer
 * finds nothing expired and sets it for the next one, which is cheaper than
 * setting it again at every answer. */
static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_timeout_t *t = e->layer;
    ct_op_t *outer = e->outer;
    if (outer) {
        e->outer = NULL;
        ct_list_remove(&e->link);
        if (ct_list_empty(&t->by_deadline)) uv_timer_stop(&t->timer);
    } else if (response && t->free_msg) {
        t->free_msg(response, t->free_ctx); /* nobody waits for it any more */
    }
    ct_list_push_back(&t->free_entries, &e->link);
    t->busy--;
    if (!ct_waitq_empty(&t->waiters)) ct_waitq_wake_all(&t->waiters);
    if (outer) ct_op_complete_now(outer, status, op->cause, response);
}

static int timeout_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_timeout_t *t = (ct_timeout_t *)svc;
    if (ct_list_empty(&t->free_entries)) {
        if (waker) ct_waitq_add(&t->waiters, waker);
        return CT_PENDING;
    }
    return ct_service_poll_ready(t->inner, waker);
}

/* Puts e among the callers waiting, in deadline order. */
static void wait_in_order(ct_timeout_t *t, entry_t *e) {
    ct_link_t *at = t->by_deadline.prev;
    while (at != &t->by_deadline && CT_CONTAINER_OF(at, entry_t, link)->deadline > e->deadline)
        at = at->prev;
    ct_list_push_back(at->next, &e->link); /* after at */
}

static int timeout_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_timeout_t *t = (ct_timeout_t *)svc;
    ct_link_t *node = ct_list_pop_front(&t->free_entries);
    entry_t *e;
    int r;
    if (!node) {
        if (t->free_msg) t->free_msg(request, t->free_ctx);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e = CT_CONTAINER_OF(node, entry_t, link);
    ct_op_init(&e->inner, on_inner_done);
    e->deadline = uv_now(svc->loop->uv) + t->timeout_ms;
    e->caller_deadline = op->ctx && op->ctx->deadline_ms && op->ctx->deadline_ms < e->deadline;
    if (op->ctx) { /* the inner service is told when this layer gives up */
        e->ctx = *op->ctx;
        if (!e->caller_deadline) e->ctx.deadline_ms = e->deadline;
        e->inner.ctx = &e->ctx;
    }
    r = ct_service_call(t->inner, request, &e->inner);
    if (r < 0) {
        ct_list_push_back(&t->free_entries, &e->link);
        return r;
    }
    e->outer = op;
    op->slot = (size_t)(e - t->entries);
    t->busy++;
    if (e->caller_deadline) {
        e->deadline = op->ctx->deadline_ms;
        wait_in_order(t, e);
        if (t->by_deadline.next == &e->link) arm(t); /* now the first due */
        return 0;
    }
    ct_list_push_back(&t->by_deadline, &e->link);
    if (!uv_is_active((uv_handle_t *)&t->timer)) arm(t);
    return 0;
}

static void timeout_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_timeout_t *t = (ct_timeout_t *)svc;
    entry_t *e = &t->entries[op->slot];
    answer(e, CT_ECANCELED, 0, NULL);
    ct_op_cancel(&e->inner);
    arm(t);
}

static void timeout_release(ct_service_t *svc) {
    ct_service_release(((ct_timeout_t *)svc)->inner);
}

static int timeout_shutdown(ct_service_t *svc) {
    ct_timeout_t *t = (ct_timeout_t *)svc;
    return ct_service_shutdown(t->inner, ct_service_shutdown_done_owner);
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_timeout_t *t = CT_CONTAINER_OF(handle, ct_timeout_t, timer);
    free(t->entries);
    t->entries = NULL;
    ct_service_closed(&t->service);
}

/* The inner service completed every op before its close callback, so every
 * entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_timeout_t *t = inner->owner;
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}

static void timeout_close(ct_service_t *svc) {
    ct_timeout_t *t = (ct_timeout_t *)svc;
    uv_timer_stop(&t->timer);
    ct_waitq_wake_all(&t->waiters);
    if (ct_service_close(t->inner, on_inner_closed) < 0) on_inner_closed(t->inner);
}

/* An answer given at once cannot be late: the inner service's own. */
static int timeout_call_sync(ct_service_t *svc, void *request, int *status, void **response) {
    return ct_service_call_sync(((ct_timeout_t *)svc)->inner, request, status, response);
}

static const ct_service_vtable_t timeout_vtable = {
    timeout_poll_ready, timeout_call,  timeout_cancel,    timeout_release,
    timeout_shutdown,   timeout_close, timeout_call_sync,
};

int ct_timeout_init(ct_timeout_t *t, ct_loop_t *loop, ct_service_t *inner,
                    const ct_timeout_config_t *cfg) {
    size_t i, cap;
    int r;
    if (!t || !loop || !inner || inner->owner || !cfg || cfg->timeout_ms == 0) return CT_EINVAL;
    cap = cfg->max_in_flight ? cfg->max_in_flight : 1024;
    memset(&t->metrics, 0, sizeof t->metrics);
    t->entries = calloc(cap, sizeof *t->entries);
    if (!t->entries) return UV_ENOMEM;
    if ((r = uv_timer_init(loop->uv, &t->timer)) != 0) {
        free(t->entries);
        return r;
    }
    ct_service_init(&t->service, loop, &timeout_vtable);
    t->inner = inner;
    inner->owner = t;
    t->cap = cap;
    t->busy = 0;
    t->timeout_ms = cfg->timeout_ms;
    t->free_msg = cfg->free_msg;
    t->free_ctx = cfg->free_ctx;
    ct_list_init(&t->free_entries);
    ct_list_init(&t->by_deadline);
    ct_waitq_init(&t->waiters);
    for (i = 0; i < cap; i++) {
        t->entries[i].layer = t;
        ct_list_push_back(&t->free_entries, &t->entries[i].link);
    }
    return 0;
}

int ct_timeout_add_stats(ct_timeout_t *t, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_counter(s, "ctower_timeout_timeouts_total", labels,
                                  "Calls ended by the layer's timeout.", &t->metrics.timeouts)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_timeout_deadlines_total", labels,
                                  "Calls ended by their caller's deadline.",
                                  &t->metrics.deadlines)))
        return r;
    return 0;
}
