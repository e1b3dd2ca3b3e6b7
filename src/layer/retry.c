/* The retry layer. Each call takes an entry, which keeps the caller's op,
 * the request's copy and the attempt count until the op completes; between
 * attempts it waits in a list ordered by when its next attempt is due, which
 * one timer serves. An entry whose caller was answered early (canceled) goes
 * back only once its attempt in flight has called back, as in the timeout
 * layer. */
#include "ctower/layer/retry.h"
#include "ctower/context.h"
#include "ctower/error.h"
#include "../core/backoff.h"
#include "../core/list.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_retry_entry {
    ct_op_t inner;  /* the attempt in flight */
    ct_op_t *outer; /* NULL once the caller has been answered */
    void *original; /* what each further attempt is copied from; NULL: no retries */
    size_t index;   /* in layer->entries */
    unsigned attempts;
    int waiting;     /* in layer->waiting, for the next attempt */
    int last_status; /* the outcome of the attempt that is being tried again */
    int last_cause;
    uint64_t due;   /* while waiting: when the next attempt starts */
    uint64_t seq;   /* call order */
    ct_link_t link; /* in waiting, or alone */
    ct_retry_t *layer;
    ct_context_t ctx; /* the caller's, with this attempt's number, if it gave one */
} entry_t;

static void on_timer(uv_timer_t *timer);
static void on_inner_done(ct_op_t *op, int status, void *response);

static void free_msg(ct_retry_t *t, void *msg) {
    if (msg && t->cfg.free_msg) t->cfg.free_msg(msg, t->cfg.free_ctx);
}

/* ---- the budget ------------------------------------------------------------ */

/* The bucket of the current second, emptied if it last counted an older
 * one. Every call counts in one: the second is worked out only when the
 * last one is over. */
static size_t bucket(ct_retry_t *t) {
    uint64_t now = uv_now(t->service.loop->uv), second;
    size_t i;
    if (now < t->bucket_end_ms) return t->bucket_now;
    second = now / 1000;
    i = (size_t)(second % CT_RETRY_WINDOW_S);
    if (t->bucket_second[i] != second) {
        t->bucket_second[i] = second;
        t->bucket_calls[i] = 0;
        t->bucket_retries[i] = 0;
    }
    t->bucket_now = i;
    t->bucket_end_ms = (second + 1) * 1000;
    return i;
}

/* Takes a retry from the budget if it has one left. */
static int budget_allows(ct_retry_t *t) {
    size_t i, current = bucket(t);
    uint64_t s = t->bucket_second[current], calls = 0, retries = 0;
    for (i = 0; i < CT_RETRY_WINDOW_S; i++) {
        if (t->bucket_second[i] + CT_RETRY_WINDOW_S <= s) continue; /* out of the window */
        calls += t->bucket_calls[i];
        retries += t->bucket_retries[i];
    }
    if (retries * 100 >=
        calls * t->cfg.budget_percent + (uint64_t)t->cfg.budget_min_per_s * CT_RETRY_WINDOW_S * 100)
        return 0;
    t->bucket_retries[current]++;
    return 1;
}

/* ---- entries ---------------------------------------------------------------- */

/* Answers the caller (through the loop's queue: from inside cancel or
 * close); the entry stays taken until release(). */
static void answer(entry_t *e, int status, int cause, void *response) {
    ct_op_t *outer = e->outer;
    e->outer = NULL;
    ct_op_complete(outer, status, cause, response);
}

static void release(entry_t *e) {
    ct_retry_t *t = e->layer;
    free_msg(t, e->original);
    e->original = NULL;
    t->free_entries[t->nfree++] = e;
    t->busy--;
    if (!ct_waitq_empty(&t->waiters)) ct_waitq_wake_all(&t->waiters);
    if (t->busy == 0 && ct_service_is_shutting_down(&t->service) && !t->closing)
        ct_service_shutdown_inner_later(&t->service, t->inner);
}

/* Ends e's call: the entry goes back, then the caller's callback runs at
 * once (the callback may call again, and find the entry free). Only from a
 * stack no caller is on: an inner op's callback, the timer's. This saves the
 * trip through the loop's queue that answer() takes. */
static void finish(entry_t *e, int status, int cause, void *response) {
    ct_op_t *outer = e->outer;
    e->outer = NULL;
    release(e);
    ct_op_complete_now(outer, status, cause, response);
}

static void arm(ct_retry_t *t) {
    entry_t *first;
    uint64_t now;
    if (ct_list_empty(&t->waiting)) {
        uv_timer_stop(&t->timer);
        return;
    }
    first = CT_CONTAINER_OF(t->waiting.next, entry_t, link);
    now = uv_now(t->service.loop->uv);
    uv_timer_start(&t->timer, on_timer, first->due > now ? first->due - now : 0, 0);
}

/* Whether a waits behind b: by when it is due, or with keep_order by call
 * order (on_timer then stops at the first call not due yet, and the ones
 * behind it wait for it). */
static int behind(const ct_retry_t *t, const entry_t *a, const entry_t *b) {
    return t->cfg.keep_order ? a->seq > b->seq : a->due >= b->due;
}

/* Puts e in the waiting list, due at the given time, in its place (it
 * usually goes last). */
static void wait_until(ct_retry_t *t, entry_t *e, uint64_t due) {
    ct_link_t *at = t->waiting.prev;
    e->due = due;
    while (at != &t->waiting && !behind(t, e, CT_CONTAINER_OF(at, entry_t, link)))
        at = at->prev;
    ct_list_push_back(at->next, &e->link); /* before at's successor: after at */
    e->waiting = 1;
    if (t->waiting.next == &e->link) arm(t);
}

/* ---- attempts --------------------------------------------------------------- */

static int retryable(ct_retry_t *t, const entry_t *e, int status, int cause, const void *response) {
    if (t->cfg.policy)
        return t->cfg.policy(t->cfg.policy_ctx, e->original, status, cause, response);
    switch (status) {
    case CT_ECONNECT:
    case CT_EOVERLOADED:
        return 1;
    case CT_ESENDBROKEN:
    case CT_ERECVBROKEN:
    case CT_ETIMEDOUT:
        return t->cfg.retry_on == CT_RETRY_IDEMPOTENT;
    default:
        return 0;
    }
}

/* Whether another attempt, after a pause of ms, would start past the
 * caller's deadline: then the caller hears of its deadline now. */
static int no_time_for(const entry_t *e, uint64_t ms) {
    const ct_context_t *ctx = e->outer->ctx;
    return ctx && ct_context_remaining(ctx, uv_now(e->layer->service.loop->uv)) <= ms;
}

/* An attempt ended: the caller gets its outcome, or e waits for another. */
static void attempt_ended(entry_t *e, int status, int cause, void *response) {
    ct_retry_t *t = e->layer;
    uint64_t pause;
    int again;
    if (status == 0 && !t->cfg.policy) { /* the common case, first */
        finish(e, 0, 0, response);
        return;
    }
    if (status != 0 && no_time_for(e, 0)) { /* whatever failed, the caller's time is up */
        free_msg(t, response);
        ct_counter_add(&t->metrics.deadline_refusals, 1);
        finish(e, CT_ETIMEDOUT, CT_EDEADLINE, NULL);
        return;
    }
    again = !t->closing && e->original && retryable(t, e, status, cause, response);
    if (again && e->attempts >= t->cfg.max_attempts) {
        ct_counter_add(&t->metrics.exhausted, 1);
        again = 0;
    } else if (again && !budget_allows(t)) {
        ct_counter_add(&t->metrics.budget_refusals, 1);
        again = 0;
    }
    if (!again) {
        finish(e, status, cause, response);
        return;
    }
    pause = ct_backoff_ms(&t->rng, t->cfg.backoff_min_ms, t->cfg.backoff_max_ms, e->attempts);
    free_msg(t, response);
    if (no_time_for(e, pause)) { /* it would wake past the deadline */
        ct_counter_add(&t->metrics.deadline_refusals, 1);
        finish(e, CT_ETIMEDOUT, CT_EDEADLINE, NULL);
        return;
    }
    e->last_status = status;
    e->last_cause = cause;
    wait_until(t, e, uv_now(t->service.loop->uv) + pause);
}

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    if (!e->outer) { /* canceled: nobody waits for it */
        free_msg(e->layer, response);
        release(e);
        return;
    }
    attempt_ended(e, status, op->cause, response);
}

/* Starts the next attempt of e, with a fresh copy of its request. */
static void attempt(ct_retry_t *t, entry_t *e) {
    void *request = t->cfg.copy(e->original, t->cfg.copy_ctx);
    int r;
    if (!request) { /* the previous attempt's outcome stands */
        finish(e, e->last_status, e->last_cause, NULL);
        return;
    }
    if (e->attempts++ > 0)
        ct_counter_add(&t->metrics.retries, 1); /* (0: a call queued by keep_order) */
    e->ctx.attempt = (uint8_t)(e->attempts - 1 > 255 ? 255 : e->attempts - 1);
    r = ct_service_call(t->inner, request, &e->inner);
    if (r < 0) { /* nothing started, and the copy is still ours */
        free_msg(t, request);
        attempt_ended(e, r, 0, NULL);
    }
}

static void on_timer(uv_timer_t *timer) {
    ct_retry_t *t = CT_CONTAINER_OF(timer, ct_retry_t, timer);
    uint64_t now = uv_now(timer->loop);
    /* An attempt refused at once waits again, due at least 1 ms from now:
     * the loop ends. */
    while (!ct_list_empty(&t->waiting)) {
        entry_t *e = CT_CONTAINER_OF(t->waiting.next, entry_t, link);
        if (e->due > now) break;
        ct_list_remove(&e->link);
        e->waiting = 0;
        attempt(t, e);
    }
    arm(t);
}

/* ---- the service ------------------------------------------------------------ */

static int retry_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_retry_t *t = (ct_retry_t *)svc;
    if (t->nfree == 0) {
        if (waker) ct_waitq_add(&t->waiters, waker);
        return CT_PENDING;
    }
    return ct_service_poll_ready(t->inner, waker);
}

/* The attempts carry a copy of the caller's context, which counts them. */
static void take_context(entry_t *e, const ct_op_t *op) {
    if (!op->ctx) {
        e->inner.ctx = NULL;
        return;
    }
    e->ctx = *op->ctx;
    e->ctx.attempt = 0;
    e->inner.ctx = &e->ctx;
}

/* keep_order, with calls waiting: a new call waits behind them, its request
 * kept as the one its attempts are copied from. */
static int queue_behind(ct_retry_t *t, entry_t *e, void *request, ct_op_t *op) {
    t->bucket_calls[bucket(t)]++;
    e->original = request;
    e->outer = op;
    e->attempts = 0;
    e->last_status = UV_ENOMEM; /* what it ends with if no copy can be made */
    e->last_cause = 0;
    e->seq = t->next_seq++;
    op->slot = e->index;
    t->busy++;
    take_context(e, op);
    wait_until(t, e, uv_now(t->service.loop->uv));
    return 0;
}

static int retry_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_retry_t *t = (ct_retry_t *)svc;
    entry_t *e;
    int r;
    if (t->nfree == 0) {
        free_msg(t, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e = t->free_entries[--t->nfree];
    if (t->cfg.keep_order && !ct_list_empty(&t->waiting)) return queue_behind(t, e, request, op);
    e->original = t->cfg.max_attempts > 1 ? t->cfg.copy(request, t->cfg.copy_ctx) : NULL;
    take_context(e, op);
    r = ct_service_call(t->inner, request, &e->inner);
    if (r < 0) {
        free_msg(t, e->original);
        e->original = NULL;
        t->free_entries[t->nfree++] = e;
        return r;
    }
    t->bucket_calls[bucket(t)]++;
    e->outer = op;
    e->attempts = 1;
    e->seq = t->next_seq++;
    op->slot = e->index;
    t->busy++;
    return 0;
}

static void retry_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_retry_t *t = (ct_retry_t *)svc;
    entry_t *e = &t->entries[op->slot];
    if (e->waiting) {
        ct_list_remove(&e->link);
        e->waiting = 0;
        answer(e, CT_ECANCELED, 0, NULL);
        release(e);
        arm(t);
        return;
    }
    answer(e, CT_ECANCELED, 0, NULL);
    ct_op_cancel(&e->inner); /* its callback releases e */
}

static void retry_release(ct_service_t *svc) {
    ct_service_release(((ct_retry_t *)svc)->inner);
}

/* The calls under way finish first, retries included: the inner service
 * must still take their attempts. */
static int retry_shutdown(ct_service_t *svc) {
    ct_retry_t *t = (ct_retry_t *)svc;
    if (t->busy > 0) return 0; /* release() shuts the inner service down */
    return ct_service_shutdown(t->inner, ct_service_shutdown_done_owner);
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_retry_t *t = CT_CONTAINER_OF(handle, ct_retry_t, timer);
    free(t->entries);
    t->entries = NULL;
    ct_service_closed(&t->service);
}

/* The inner service completed every attempt before its close callback, so
 * every entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_retry_t *t = inner->owner;
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}

static void retry_close(ct_service_t *svc) {
    ct_retry_t *t = (ct_retry_t *)svc;
    t->closing = 1;
    uv_timer_stop(&t->timer);
    while (!ct_list_empty(&t->waiting)) {
        entry_t *e = CT_CONTAINER_OF(t->waiting.next, entry_t, link);
        ct_list_remove(&e->link);
        e->waiting = 0;
        answer(e, CT_ECLOSED, 0, NULL);
        release(e);
    }
    ct_waitq_wake_all(&t->waiters);
    if (ct_service_close(t->inner, on_inner_closed) < 0) on_inner_closed(t->inner);
}

/* No call_sync: an answer given at once could not be tried again. */
static const ct_service_vtable_t retry_vtable = {
    retry_poll_ready, retry_call, retry_cancel, retry_release, retry_shutdown, retry_close, NULL,
};

/* The defaults filled in; CT_EINVAL for what cannot work. */
static int check_config(ct_retry_config_t *c) {
    if (!c->copy || (c->retry_on != CT_RETRY_UNSENT && c->retry_on != CT_RETRY_IDEMPOTENT))
        return CT_EINVAL;
    if (c->max_attempts == 0) c->max_attempts = 3;
    if (c->backoff_min_ms == 0) c->backoff_min_ms = 10;
    if (c->backoff_max_ms == 0)
        c->backoff_max_ms = c->backoff_min_ms > 1000 ? c->backoff_min_ms : 1000;
    if (c->backoff_max_ms < c->backoff_min_ms) return CT_EINVAL;
    if (c->budget_percent == 0) c->budget_percent = 20;
    if (c->budget_percent > 1000) return CT_EINVAL;
    if (c->budget_min_per_s == 0) c->budget_min_per_s = 10;
    if (c->max_in_flight == 0) c->max_in_flight = 1024;
    return 0;
}

int ct_retry_init(ct_retry_t *t, ct_loop_t *loop, ct_service_t *inner,
                  const ct_retry_config_t *cfg) {
    ct_retry_config_t c;
    size_t i;
    int r;
    if (!t || !loop || !inner || inner->owner || !cfg) return CT_EINVAL;
    c = *cfg;
    if ((r = check_config(&c)) != 0) return r;
    memset(t, 0, sizeof *t);
    /* the entries, then the stack of free ones, in one block */
    t->entries = calloc(c.max_in_flight, sizeof *t->entries + sizeof *t->free_entries);
    if (!t->entries) return UV_ENOMEM;
    t->free_entries = (entry_t **)(t->entries + c.max_in_flight);
    if ((r = uv_timer_init(loop->uv, &t->timer)) != 0) {
        free(t->entries);
        t->entries = NULL;
        return r;
    }
    ct_service_init(&t->service, loop, &retry_vtable);
    t->inner = inner;
    inner->owner = t;
    t->cfg = c;
    t->rng = ct_backoff_seed(t);
    ct_list_init(&t->waiting);
    ct_waitq_init(&t->waiters);
    for (i = 0; i < c.max_in_flight; i++) {
        t->entries[i].layer = t;
        t->entries[i].index = i;
        ct_op_init(&t->entries[i].inner, on_inner_done); /* reusable after each callback */
        ct_list_init(&t->entries[i].link);
        t->free_entries[t->nfree++] = &t->entries[c.max_in_flight - 1 - i]; /* entry 0 on top */
    }
    return 0;
}

ct_retry_counts_t ct_retry_counts(const ct_retry_t *t) {
    ct_retry_counts_t out;
    out.retries = ct_counter_read(&t->metrics.retries);
    out.budget_refusals = ct_counter_read(&t->metrics.budget_refusals);
    out.exhausted = ct_counter_read(&t->metrics.exhausted);
    out.deadline_refusals = ct_counter_read(&t->metrics.deadline_refusals);
    return out;
}

int ct_retry_add_stats(ct_retry_t *t, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_counter(s, "ctower_retry_retries_total", labels,
                                  "Attempts after the first.", &t->metrics.retries)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_retry_budget_refusals_total", labels,
                                  "Retries the budget did not allow.",
                                  &t->metrics.budget_refusals)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_retry_exhausted_total", labels,
                                  "Calls that failed after their last attempt.",
                                  &t->metrics.exhausted)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_retry_deadline_refusals_total", labels,
                                  "Calls ended because the caller's deadline came first.",
                                  &t->metrics.deadline_refusals)))
        return r;
    return 0;
}
