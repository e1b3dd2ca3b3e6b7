/* The hedge layer. Each call takes an entry, which holds its two attempts
 * (the first, and the backup if one goes), the copy kept for the backup,
 * and its place in the list of calls waiting for their delay, which one
 * timer serves (every call waits the same delay, so the list is in call
 * order). An entry goes back when every attempt it started has called
 * back, even if its caller was answered earlier. */
#include "ctower/layer/hedge.h"
#include "ctower/context.h"
#include "ctower/error.h"
#include "../core/list.h"

#include <stdlib.h>
#include <string.h>

enum { BUDGET_CAP_MILLI = 10 * 1000 }; /* at most 10 backups banked */

typedef struct ct_hedge_entry {
    ct_op_t attempt[2]; /* the first attempt, and the backup */
    ct_op_t *outer;     /* NULL once the caller has been answered */
    void *original;     /* the copy the backup is made from; NULL: none */
    int live;           /* attempts whose callback is still due */
    uint64_t deadline;
    ct_link_t link; /* in by_deadline while the backup is not due yet */
    size_t index;
    ct_hedge_t *layer;
    ct_context_t backup_ctx; /* the caller's, one attempt further, if it gave one */
} entry_t;

static void free_msg(ct_hedge_t *h, void *msg) {
    if (msg && h->cfg.free_msg) h->cfg.free_msg(msg, h->cfg.free_ctx);
}

/* The entry is done with: it goes back, and a shutdown waiting for the
 * calls under way goes on when it was the last. */
static void release(ct_hedge_t *h, entry_t *e) {
    free_msg(h, e->original);
    e->original = NULL;
    h->free_entries[h->nfree++] = e;
    h->busy--;
    if (!ct_waitq_empty(&h->waiters)) ct_waitq_wake_all(&h->waiters);
    if (h->busy == 0 && ct_service_is_shutting_down(&h->service) && !h->closing)
        ct_service_shutdown_inner_later(&h->service, h->inner);
}

/* ---- the backups ------------------------------------------------------------------- */

static void on_timer(uv_timer_t *timer);

static void arm(ct_hedge_t *h) {
    entry_t *first;
    uint64_t now;
    if (ct_list_empty(&h->by_deadline)) {
        uv_timer_stop(&h->timer);
        return;
    }
    first = CT_CONTAINER_OF(h->by_deadline.next, entry_t, link);
    now = uv_now(h->service.loop->uv);
    uv_timer_start(&h->timer, on_timer, first->deadline > now ? first->deadline - now : 0, 0);
}

/* e's delay is over and its first attempt still runs: a backup, if the
 * budget allows and a copy can be made. */
static void send_backup(ct_hedge_t *h, entry_t *e) {
    void *copy;
    if (h->budget_milli < 1000) {
        ct_counter_add(&h->metrics.budget_refusals, 1);
        return;
    }
    copy = h->cfg.copy(e->original, h->cfg.copy_ctx);
    if (!copy) return;
    /* the caller's context, one attempt further (its caller still waits:
     * an entry leaves the delay's list when its call ends) */
    e->attempt[1].ctx = NULL;
    if (e->outer->ctx) {
        e->backup_ctx = *e->outer->ctx;
        if (e->backup_ctx.attempt < 255) e->backup_ctx.attempt++;
        e->attempt[1].ctx = &e->backup_ctx;
    }
    if (ct_service_call(h->inner, copy, &e->attempt[1]) < 0) {
        free_msg(h, copy); /* refused at once: the first attempt goes on alone */
        return;
    }
    h->budget_milli -= 1000;
    ct_counter_add(&h->metrics.backups, 1);
    e->live++;
}

static void on_timer(uv_timer_t *timer) {
    ct_hedge_t *h = CT_CONTAINER_OF(timer, ct_hedge_t, timer);
    uint64_t now = uv_now(timer->loop);
    while (!ct_list_empty(&h->by_deadline)) {
        entry_t *e = CT_CONTAINER_OF(h->by_deadline.next, entry_t, link);
        if (e->deadline > now) break;
        ct_list_remove(&e->link);
        send_backup(h, e);
        free_msg(h, e->original); /* no further use */
        e->original = NULL;
    }
    arm(h);
}

/* ---- attempts ---------------------------------------------------------------------- */

/* An attempt called back. The first answer, or the last error, ends the
 * call; the entry goes back once no attempt is left. This runs on a stack
 * no caller of the layer is on, so the caller's callback runs right here,
 * after the entry is back if it can go (see timeout.c). */
static void on_attempt_done(ct_op_t *op, int status, void *response) {
    entry_t *e = op->data; /* (both attempts point to their entry) */
    ct_hedge_t *h = e->layer;
    ct_op_t *outer = NULL;
    int backup = op == &e->attempt[1];
    e->live--;
    if (e->outer && (status == 0 || e->live == 0)) { /* it ends the call */
        outer = e->outer;
        e->outer = NULL;
        ct_list_remove(&e->link); /* (if its delay was still running) */
        if (status == 0 && backup) ct_counter_add(&h->metrics.backups_won, 1);
        if (e->live > 0) ct_op_cancel(&e->attempt[!backup]); /* it calls back later */
    } else if (!e->outer) {
        free_msg(h, response); /* the call already ended: this one lost */
    }                          /* (else an error while the other attempt still runs: it decides) */
    if (e->live == 0) release(h, e);
    if (outer) ct_op_complete_now(outer, status, op->cause, response);
}

/* ---- the service -------------------------------------------------------------------- */

static int hedge_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_hedge_t *h = (ct_hedge_t *)svc;
    if (h->nfree == 0) {
        if (waker) ct_waitq_add(&h->waiters, waker);
        return CT_PENDING;
    }
    return ct_service_poll_ready(h->inner, waker);
}

static int hedge_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_hedge_t *h = (ct_hedge_t *)svc;
    entry_t *e;
    int r;
    if (h->nfree == 0) {
        free_msg(h, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e = h->free_entries[--h->nfree];
    /* no backup for a caller whose deadline comes before the delay ends */
    e->original = ct_context_remaining(op->ctx, uv_now(svc->loop->uv)) > h->cfg.delay_ms
                      ? h->cfg.copy(request, h->cfg.copy_ctx)
                      : NULL; /* NULL: no backup */
    e->attempt[0].ctx = op->ctx;
    r = ct_service_call(h->inner, request, &e->attempt[0]);
    if (r < 0) { /* nothing started: the request is still the caller's */
        free_msg(h, e->original);
        e->original = NULL;
        h->free_entries[h->nfree++] = e;
        return r;
    }
    e->outer = op;
    e->live = 1;
    op->slot = e->index;
    h->busy++;
    ct_counter_add(&h->metrics.calls, 1);
    h->budget_milli += h->cfg.budget_percent * 10; /* percent of a call */
    if (h->budget_milli > BUDGET_CAP_MILLI) h->budget_milli = BUDGET_CAP_MILLI;
    if (e->original) {
        e->deadline = uv_now(svc->loop->uv) + h->cfg.delay_ms;
        ct_list_push_back(&h->by_deadline, &e->link);
        if (!uv_is_active((uv_handle_t *)&h->timer)) arm(h);
    }
    return 0;
}

static void hedge_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_hedge_t *h = (ct_hedge_t *)svc;
    entry_t *e = &h->entries[op->slot];
    e->outer = NULL;
    ct_list_remove(&e->link);
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
    ct_op_cancel(&e->attempt[0]); /* (each one that is pending) */
    ct_op_cancel(&e->attempt[1]);
}

static void hedge_release(ct_service_t *svc) {
    ct_service_release(((ct_hedge_t *)svc)->inner);
}

/* The calls under way finish first, backups included. */
static int hedge_shutdown(ct_service_t *svc) {
    ct_hedge_t *h = (ct_hedge_t *)svc;
    if (h->busy > 0) return 0; /* release() shuts the inner service down */
    return ct_service_shutdown(h->inner, ct_service_shutdown_done_owner);
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_hedge_t *h = CT_CONTAINER_OF(handle, ct_hedge_t, timer);
    free(h->entries);
    h->entries = NULL;
    ct_service_closed(&h->service);
}

/* The inner service completed every attempt before its close callback, so
 * every entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_hedge_t *h = inner->owner;
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

static void hedge_close(ct_service_t *svc) {
    ct_hedge_t *h = (ct_hedge_t *)svc;
    h->closing = 1;
    uv_timer_stop(&h->timer);
    while (!ct_list_empty(&h->by_deadline)) /* no backups from now on */
        ct_list_remove(h->by_deadline.next);
    ct_waitq_wake_all(&h->waiters);
    if (ct_service_close(h->inner, on_inner_closed) < 0) on_inner_closed(h->inner);
}

/* No call_sync: an answer given at once needs no backup, and the servers
 * call the ordinary way. */
static const ct_service_vtable_t hedge_vtable = {
    hedge_poll_ready, hedge_call, hedge_cancel, hedge_release, hedge_shutdown, hedge_close, NULL,
};

int ct_hedge_init(ct_hedge_t *h, ct_loop_t *loop, ct_service_t *inner,
                  const ct_hedge_config_t *cfg) {
    ct_hedge_config_t c;
    size_t i, n;
    int r;
    if (!h || !loop || !inner || inner->owner || !cfg) return CT_EINVAL;
    c = *cfg;
    if (!c.copy || c.delay_ms == 0 || c.budget_percent > 100) return CT_EINVAL;
    if (c.budget_percent == 0) c.budget_percent = 10;
    if (c.max_in_flight == 0) c.max_in_flight = 1024;
    memset(h, 0, sizeof *h);
    n = c.max_in_flight;
    h->entries = calloc(n, sizeof *h->entries + sizeof *h->free_entries);
    if (!h->entries) return UV_ENOMEM;
    h->free_entries = (entry_t **)(h->entries + n);
    if ((r = uv_timer_init(loop->uv, &h->timer)) != 0) {
        free(h->entries);
        h->entries = NULL;
        return r;
    }
    ct_service_init(&h->service, loop, &hedge_vtable);
    h->inner = inner;
    inner->owner = h;
    h->cfg = c;
    h->budget_milli = BUDGET_CAP_MILLI;
    ct_list_init(&h->by_deadline);
    ct_waitq_init(&h->waiters);
    for (i = 0; i < n; i++) {
        entry_t *e = &h->entries[n - 1 - i];
        e->layer = h;
        e->index = n - 1 - i;
        ct_op_init(&e->attempt[0], on_attempt_done);
        ct_op_init(&e->attempt[1], on_attempt_done);
        e->attempt[0].data = e->attempt[1].data = e;
        ct_list_init(&e->link);
        h->free_entries[h->nfree++] = e;
    }
    return 0;
}

ct_hedge_counts_t ct_hedge_counts(const ct_hedge_t *h) {
    ct_hedge_counts_t out;
    out.calls = ct_counter_read(&h->metrics.calls);
    out.backups = ct_counter_read(&h->metrics.backups);
    out.backups_won = ct_counter_read(&h->metrics.backups_won);
    out.budget_refusals = ct_counter_read(&h->metrics.budget_refusals);
    return out;
}

int ct_hedge_add_stats(ct_hedge_t *h, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_counter(s, "ctower_hedge_calls_total", labels, "Calls started.",
                                  &h->metrics.calls)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_hedge_backups_total", labels, "Backup copies sent.",
                                  &h->metrics.backups)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_hedge_backups_won_total", labels,
                                  "Calls answered by their backup.", &h->metrics.backups_won)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_hedge_budget_refusals_total", labels,
                                  "Backups the budget did not allow.",
                                  &h->metrics.budget_refusals)))
        return r;
    return 0;
}
