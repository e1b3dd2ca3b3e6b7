/* The balancing layer. Each call takes an entry, which holds the op of the
 * call in its endpoint; an entry whose caller was answered early (canceled)
 * goes back only once that op has called back, as in the timeout layer.
 * An endpoint's load is its calls in flight, counted here: the layer sees
 * every call go out and come back. */
#include "ctower/layer/balance.h"
#include "ctower/error.h"
#include "entry.h"
#include "../core/backoff.h"
#include "failure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

typedef struct ct_balance_endpoint {
    ct_service_t *svc;
    ct_waker_t waker; /* given to svc's poll_ready: wakes the layer's waiters */
    ct_balance_t *layer;
    ct_balance_endpoint_metrics_t metrics; /* its in_flight is the load's count */
    uint64_t out_until;                    /* loop time before which it is left out */
    unsigned failures_in_a_row;
    int dead;
    uint64_t failures;
    double rtt_ns;      /* CT_BALANCE_PEAK_EWMA: the estimate, as of rtt_stamp */
    uint64_t rtt_stamp; /* ns */
    size_t id;          /* its place in layer->slots */
    size_t pos;         /* its place in layer->active, while it takes calls */
    /* set by ct_balance_remove(): it drains, then goes back to the caller */
    ct_balance_removed_cb removed_cb;
    void *removed_ctx;
    ct_task_t removed_task;
} endpoint_t;

typedef struct ct_balance_entry {
    ct_op_t inner;  /* the call in its endpoint */
    ct_op_t *outer; /* NULL once the caller has been answered */
    endpoint_t *endpoint;
    uint64_t sent_ns; /* CT_BALANCE_PEAK_EWMA */
    size_t index;     /* in layer->entries */
    ct_balance_t *layer;
} entry_t;

static void free_msg(ct_balance_t *b, void *msg) {
    if (msg && b->cfg.free_msg) b->cfg.free_msg(msg, b->cfg.free_ctx);
}

static uint64_t now_ms(const ct_balance_t *b) {
    return uv_now(b->service.loop->uv);
}

/* ---- endpoints ------------------------------------------------------------ */

/* Counts an error of a call to ep: a failure leaves it out for a while,
 * anything else ends a run of failures (as an answer does, in the caller). */
static __attribute__((noinline)) void note_error(ct_balance_t *b, endpoint_t *ep, int status,
                                                 int cause) {
    int failed = b->cfg.is_failure ? b->cfg.is_failure(b->cfg.is_failure_ctx, status, cause)
                                   : ct_failure_default(status);
    uint64_t pause;
    if (!failed) {
        ep->failures_in_a_row = 0;
        return;
    }
    ep->failures++;
    ep->failures_in_a_row++;
    ct_counter_add(&b->metrics.ejections, 1);
    ct_counter_add(&ep->metrics.ejections, 1);
    pause = ct_backoff_ms(&b->rng, b->cfg.pause_min_ms, b->cfg.pause_max_ms, ep->failures_in_a_row);
    ep->out_until = now_ms(b) + pause;
}

/* Whether ep may be given calls: alive, and not paused unless paused ones
 * count too. A pause that is over is cleared, so that the clock is read
 * only while one runs. */
static int eligible(const ct_balance_t *b, endpoint_t *ep, int with_paused) {
    if (ep->dead) return 0;
    if (ep->out_until == 0 || with_paused) return 1;
    if (ep->out_until > now_ms(b)) return 0;
    ep->out_until = 0;
    return 1;
}

static int any_eligible(ct_balance_t *b) {
    size_t i;
    for (i = 0; i < b->n; i++)
        if (eligible(b, b->active[i], 0)) return 1;
    return 0;
}

/* Polls ep (its waker is registered if it is not ready); an error makes it
 * dead. */
static int poll_endpoint(ct_balance_t *b, endpoint_t *ep) {
    int r = ct_service_poll_ready(ep->svc, &ep->waker);
    if (r < 0) {
        ep->dead = 1;
        b->alive--;
        b->last_error = r;
        ct_waker_cancel(&ep->waker);
    }
    return r;
}

static void on_endpoint_waker(ct_waker_t *waker) {
    endpoint_t *ep = waker->data;
    ct_waitq_wake_all(&ep->layer->waiters);
}

/* ---- load ------------------------------------------------------------------------ */

/* ep's round-trip estimate at time now: what it was, faded by the time
 * since (tower's PeakEwma: an estimate nothing refreshes fades away, so a
 * server once slow is tried again). */
static double rtt_at(const ct_balance_t *b, const endpoint_t *ep, uint64_t now) {
    double age = now > ep->rtt_stamp ? (double)(now - ep->rtt_stamp) : 0;
    return ep->rtt_ns * exp(-age / ((double)b->cfg.decay_ms * 1e6));
}

/* An answer after rtt ns: a time above the estimate replaces it (the
 * peak), one below is averaged in, weighted by how long ago the last was. */
static void observe_rtt(ct_balance_t *b, endpoint_t *ep, uint64_t sent) {
    uint64_t now = uv_hrtime();
    double rtt = now > sent ? (double)(now - sent) : 0, est = rtt_at(b, ep, now), w;
    b->now_ns = now;
    if (rtt > est) {
        ep->rtt_ns = rtt;
    } else {
        w = exp(-(double)(now - ep->rtt_stamp) / ((double)b->cfg.decay_ms * 1e6));
        ep->rtt_ns = est * w + rtt * (1 - w);
    }
    ep->rtt_stamp = now;
}

/* Whether a is less loaded than c. */
static inline int lighter(const ct_balance_t *b, const endpoint_t *a, const endpoint_t *c) {
    if (b->cfg.load == CT_BALANCE_IN_FLIGHT)
        return a->metrics.in_flight.value < c->metrics.in_flight.value;
    return rtt_at(b, a, b->now_ns) * (double)(a->metrics.in_flight.value + 1) <
           rtt_at(b, c, b->now_ns) * (double)(c->metrics.in_flight.value + 1);
}

/* ---- picking ----------------------------------------------------------------- */

/* Two distinct active endpoints at random (the same one twice if there is
 * only one), from one draw of the generator. */
static inline void draw_two(ct_balance_t *b, endpoint_t **first, endpoint_t **second) {
    uint32_t r = b->rng;
    size_t i, j;
    r ^= r << 13;
    r ^= r >> 17;
    r ^= r << 5;
    b->rng = r;
    if (b->n <= 2) {
        i = b->n == 1 ? 0 : r & 1;
        j = b->n == 1 ? 0 : i ^ 1;
    } else {
        i = (r & 0xffff) % b->n;
        j = (r >> 16) % (b->n - 1);
        if (j >= i) ++j;
    }
    *first = b->active[i];
    *second = b->active[j];
}

/* Whether ep can take the call: eligible, and ready when polling. */
static int can_take(ct_balance_t *b, endpoint_t *ep, int poll, int with_paused) {
    if (!eligible(b, ep, with_paused)) return 0;
    return !poll || poll_endpoint(b, ep) == CT_READY;
}

/* The least loaded of all that can take the call, or NULL. When polling,
 * each one better than the best so far is polled, and the best so far
 * released when a better one is ready; when none is ready, all have been
 * polled, so each has its waker. */
static endpoint_t *least_loaded(ct_balance_t *b, int poll, int with_paused) {
    endpoint_t *best = NULL;
    size_t i;
    for (i = 0; i < b->n; i++) {
        endpoint_t *ep = b->active[i];
        if (best && !lighter(b, ep, best)) continue;
        if (!can_take(b, ep, poll, with_paused)) continue;
        if (best && poll) ct_service_release(best->svc);
        best = ep;
    }
    return best;
}

/* Two endpoints at random, the less loaded first; if neither can take the
 * call, the least loaded of all. Only the one picked is left polled READY. */
static endpoint_t *pick(ct_balance_t *b, int poll, int with_paused) {
    endpoint_t *i, *j;
    if (b->n >= 2) {
        draw_two(b, &i, &j);
        if (lighter(b, j, i)) {
            endpoint_t *t = i;
            i = j;
            j = t;
        }
        if (can_take(b, i, poll, with_paused)) return i;
        if (can_take(b, j, poll, with_paused)) return j;
    }
    return least_loaded(b, poll, with_paused);
}

/* An endpoint not left out if any is usable, else any alive one. */
static __attribute__((noinline)) endpoint_t *pick_any(ct_balance_t *b, int poll) {
    endpoint_t *ep = pick(b, poll, 0);
    if (!ep && b->alive > 0 && !any_eligible(b)) ep = pick(b, poll, 1);
    return ep;
}

/* The common case, in line: the less loaded of two endpoints drawn at
 * random, or else the other, if it is alive, not paused, and (when polling)
 * ready. NULL sends the caller to pick_any, which sorts out the rest (no
 * endpoint ready among the two, a poll_ready error, no endpoint at all). */
static inline endpoint_t *pick_fast(ct_balance_t *b, int poll) {
    endpoint_t *i, *j;
    int k;
    if (b->n == 0) return NULL;
    draw_two(b, &i, &j);
    if (lighter(b, j, i)) {
        endpoint_t *t = i;
        i = j;
        j = t;
    }
    for (k = 0; k < 2; k++, i = j) {
        int r;
        if (!eligible(b, i, 0)) continue;
        if (!poll || (r = ct_service_poll_ready(i->svc, &i->waker)) == CT_READY) return i;
        if (r < 0) break; /* pick_any marks it dead */
    }
    return NULL;
}

/* ---- calls ------------------------------------------------------------------- */

static void give_back(ct_balance_t *b, entry_t *e) {
    b->free_entries[b->nfree++] = e;
    if (!ct_waitq_empty(&b->waiters)) ct_waitq_wake_all(&b->waiters);
}

/* The call's endpoint answered. This runs on a stack no caller of the layer
 * is on, so the caller's callback runs right here, after the entry is back
 * (the callback may call again). */
static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_balance_t *b = e->layer;
    endpoint_t *ep = e->endpoint;
    ct_gauge_add(&ep->metrics.in_flight, -1);
    if (b->cfg.load == CT_BALANCE_PEAK_EWMA && status != CT_ECANCELED)
        observe_rtt(b, ep, e->sent_ns); /* (a failure's time says something too) */
    if (status == 0)
        ep->failures_in_a_row = 0;
    else if (status != CT_ECANCELED) /* (which says nothing of the endpoint) */
        note_error(b, ep, status, op->cause);
    if (status < 0) ct_counter_add(&ep->metrics.errors[ct_error_kind(status)], 1);
    if (ep->removed_cb && ep->metrics.in_flight.value == 0 &&
        !b->closed) /* (closing: the layer closes it) */
        ct_task_post(b->service.loop, &ep->removed_task);
    give_back(b, e);
    ct_entry_answer(&e->outer, op, status, response, b->cfg.free_msg, b->cfg.free_ctx);
}

static int balance_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_balance_t *b = (ct_balance_t *)svc;
    endpoint_t *ep;
    if (b->chosen) return CT_READY;
    if (b->nfree > 0) {
        if (!(ep = pick_fast(b, 1))) ep = pick_any(b, 1);
        if (ep) {
            b->chosen = ep;
            return CT_READY;
        }
        if (b->alive == 0 && b->n > 0) return b->last_error; /* all dead, or found so now */
    }
    if (waker) ct_waitq_add(&b->waiters, waker);
    return CT_PENDING;
}

/* Why a call without a READY found no endpoint. */
static __attribute__((noinline)) int no_endpoint(const ct_balance_t *b) {
    return b->n == 0 ? CT_ENOENDPOINT : b->last_error; /* none, or all dead */
}

static int balance_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_balance_t *b = (ct_balance_t *)svc;
    endpoint_t *ep = b->chosen;
    entry_t *e;
    int r;
    if (b->nfree == 0) {
        free_msg(b, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    b->chosen = NULL;
    if (!ep && !(ep = pick_fast(b, 0)) && !(ep = pick_any(b, 0))) return no_endpoint(b);
    e = b->free_entries[--b->nfree];
    e->inner.ctx = op->ctx;
    r = ct_service_call(ep->svc, request, &e->inner);
    if (r < 0) { /* nothing started: the request is still the caller's */
        note_error(b, ep, r, 0);
        b->free_entries[b->nfree++] = e;
        return r;
    }
    e->outer = op;
    e->endpoint = ep;
    if (b->cfg.load == CT_BALANCE_PEAK_EWMA) e->sent_ns = b->now_ns = uv_hrtime();
    op->slot = e->index;
    ct_gauge_add(&ep->metrics.in_flight, 1);
    ct_counter_add(&ep->metrics.calls, 1);
    return 0;
}

static void balance_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_balance_t *b = (ct_balance_t *)svc;
    entry_t *e = &b->entries[op->slot];
    ct_entry_cancel(&e->outer, &e->inner);
}

static void balance_release(ct_service_t *svc) {
    ct_balance_t *b = (ct_balance_t *)svc;
    endpoint_t *ep = b->chosen;
    b->chosen = NULL;
    if (ep) ct_service_release(ep->svc);
}

/* ---- the set of endpoints -------------------------------------------------------- */

/* Room for one more id and one more active endpoint. */
static int make_room(ct_balance_t *b) {
    endpoint_t **slots, **active;
    size_t cap = b->cap ? b->cap * 2 : 4;
    if (b->nslots < b->cap) return 0;
    if (!(slots = realloc(b->slots, cap * sizeof *slots))) return UV_ENOMEM;
    b->slots = slots;
    if (!(active = realloc(b->active, cap * sizeof *active))) return UV_ENOMEM;
    b->active = active;
    memset(b->slots + b->cap, 0, (cap - b->cap) * sizeof *slots);
    b->cap = cap;
    return 0;
}

static void on_removed(ct_task_t *task);

/* Makes svc an endpoint that takes calls, with the lowest free id. Returns
 * the id or UV_ENOMEM. */
static int add_endpoint(ct_balance_t *b, ct_service_t *svc) {
    endpoint_t *ep;
    size_t id;
    for (id = 0; id < b->nslots && b->slots[id]; id++)
        ;
    if (id == b->nslots && make_room(b) != 0) return UV_ENOMEM;
    if (!(ep = calloc(1, sizeof *ep))) return UV_ENOMEM;
    ep->svc = svc;
    ep->layer = b;
    ep->id = id;
    ct_waker_init(&ep->waker, b->service.loop, on_endpoint_waker);
    ep->waker.data = ep;
    ct_task_init(&ep->removed_task, on_removed);
    ep->rtt_ns = (double)b->cfg.initial_rtt_us * 1e3;
    ep->rtt_stamp = b->now_ns;
    svc->owner = b;
    b->slots[id] = ep;
    if (id == b->nslots) b->nslots++;
    ep->pos = b->n;
    b->active[b->n++] = ep;
    b->alive++;
    ct_counter_add(&b->metrics.added, 1);
    ct_gauge_set(&b->metrics.endpoints, (int64_t)b->n);
    return (int)id;
}

/* Takes ep out of the picking. */
static void deactivate(ct_balance_t *b, endpoint_t *ep) {
    endpoint_t *last = b->active[--b->n];
    b->active[ep->pos] = last;
    last->pos = ep->pos;
    if (!ep->dead) b->alive--;
    if (b->chosen == ep) balance_release(&b->service);
    ct_waker_cancel(&ep->waker);
}

static void endpoint_shut_down(ct_balance_t *b, int status);

/* A removed endpoint has drained: it goes back to the caller. */
static void on_removed(ct_task_t *task) {
    endpoint_t *ep = CT_CONTAINER_OF(task, endpoint_t, removed_task);
    ct_balance_t *b = ep->layer;
    ct_service_t *svc = ep->svc;
    ct_balance_removed_cb cb = ep->removed_cb;
    void *ctx = ep->removed_ctx;
    b->slots[ep->id] = NULL;
    b->draining--;
    free(ep);
    svc->owner = NULL;
    cb(b, svc, ctx);
    if (b->shut_down) endpoint_shut_down(b, 0); /* one fewer to wait for */
}

int ct_balance_add(ct_balance_t *b, ct_service_t *svc) {
    int id;
    if (!b || !svc || svc->owner || svc == &b->service || svc->loop != b->service.loop)
        return CT_EINVAL;
    if (b->closed) return CT_ECLOSING;
    if (b->shut_down) return CT_ESHUTDOWN;
    if ((id = add_endpoint(b, svc)) >= 0 && !ct_waitq_empty(&b->waiters))
        ct_waitq_wake_all(&b->waiters); /* one more that may be ready */
    return id;
}

int ct_balance_remove(ct_balance_t *b, size_t id, ct_balance_removed_cb cb, void *ctx) {
    endpoint_t *ep;
    if (!b || !cb || id >= b->nslots || !(ep = b->slots[id]) || ep->removed_cb) return CT_EINVAL;
    if (b->closed) return CT_ECLOSING;
    if (b->shut_down) return CT_ESHUTDOWN; /* it is shutting down with the rest */
    deactivate(b, ep);
    ct_counter_add(&b->metrics.removed, 1);
    ct_gauge_set(&b->metrics.endpoints, (int64_t)b->n);
    ep->removed_cb = cb;
    ep->removed_ctx = ctx;
    b->draining++;
    if (ep->metrics.in_flight.value == 0) ct_task_post(b->service.loop, &ep->removed_task);
    return 0;
}

/* ---- shutdown and close ------------------------------------------------------ */

static void endpoint_shut_down(ct_balance_t *b, int status) {
    if (status < 0 && b->shutdown_status == 0) b->shutdown_status = status;
    if (--b->shutting == 0) ct_service_shutdown_done(&b->service, b->shutdown_status);
}

static void on_endpoint_shutdown(ct_service_t *inner, int status) {
    endpoint_shut_down(inner->owner, status);
}

/* Every active endpoint shuts down, and each one being removed counts
 * until it is handed back; one that refuses at once counts as done with its
 * error. If all refuse (and none is being removed), nothing started. */
static int balance_shutdown(ct_service_t *svc) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i, refused = 0;
    int r, first = 0;
    b->shutting = b->n + b->draining + 1; /* + 1: not done before the last one is asked */
    b->shutdown_status = 0;
    for (i = 0; i < b->n; i++) {
        r = ct_service_shutdown(b->active[i]->svc, on_endpoint_shutdown);
        if (r < 0) {
            refused++;
            if (!first) first = r;
            b->shutting--;
            if (b->shutdown_status == 0) b->shutdown_status = r;
        }
    }
    if (refused == b->n && b->n > 0 && b->draining == 0) return first;
    b->shut_down = 1;
    endpoint_shut_down(b, 0);
    return 0;
}

static void one_closed(ct_balance_t *b) {
    size_t i;
    if (--b->closing > 0) return;
    for (i = 0; i < b->nslots; i++)
        free(b->slots[i]);
    free(b->slots);
    free(b->active);
    free(b->entries); /* the block of entries and the free stack */
    b->slots = b->active = NULL;
    b->entries = NULL;
    ct_service_closed(&b->service);
}

static void on_endpoint_closed(ct_service_t *inner) {
    one_closed(inner->owner);
}

/* Every endpoint, those being removed too, completes its calls before its
 * close callback, so every entry has come home when the last one has
 * closed. With no endpoint at all, nothing is in flight. */
static void balance_close(ct_service_t *svc) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i, n = 0;
    b->chosen = NULL;
    b->closed = 1;
    for (i = 0; i < b->nslots; i++)
        if (b->slots[i]) {
            ct_waker_cancel(&b->slots[i]->waker);
            ct_task_cancel(&b->slots[i]->removed_task);
            n++;
        }
    b->closing = n + 1; /* + 1: not done before the last one is asked */
    ct_waitq_wake_all(&b->waiters);
    for (i = 0; i < b->nslots; i++) {
        ct_service_t *inner = b->slots[i] ? b->slots[i]->svc : NULL;
        if (inner && ct_service_close(inner, on_endpoint_closed) < 0) on_endpoint_closed(inner);
    }
    one_closed(b);
}

/* No call_sync: the answer would skip the load count, and a balancer's
 * endpoints are clients, which answer later anyway. */
static const ct_service_vtable_t balance_vtable = {
    balance_poll_ready, balance_call,  balance_cancel, balance_release,
    balance_shutdown,   balance_close, NULL,
};

/* ---- setup ------------------------------------------------------------------- */

/* The defaults filled in; CT_EINVAL for what cannot work. */
static int check_config(ct_balance_config_t *c) {
    size_t i, j;
    if (c->n_endpoints > 0 && !c->endpoints) return CT_EINVAL;
    for (i = 0; i < c->n_endpoints; i++) {
        if (!c->endpoints[i] || c->endpoints[i]->owner) return CT_EINVAL;
        for (j = 0; j < i; j++)
            if (c->endpoints[j] == c->endpoints[i]) return CT_EINVAL;
    }
    if (c->max_in_flight == 0) c->max_in_flight = 1024;
    if (c->pause_min_ms == 0) c->pause_min_ms = 100;
    if (c->pause_max_ms == 0) c->pause_max_ms = c->pause_min_ms > 10000 ? c->pause_min_ms : 10000;
    if (c->pause_max_ms < c->pause_min_ms) return CT_EINVAL;
    if (c->load != CT_BALANCE_IN_FLIGHT && c->load != CT_BALANCE_PEAK_EWMA) return CT_EINVAL;
    if (c->decay_ms == 0) c->decay_ms = 10000;
    if (c->initial_rtt_us == 0) c->initial_rtt_us = 1000;
    return 0;
}

/* The entries and the stack of free entries, in one block. */
static int allocate_entries(ct_balance_t *b, size_t cap) {
    char *block = calloc(1, cap * (sizeof(entry_t) + sizeof(entry_t *)));
    if (!block) return UV_ENOMEM;
    b->entries = (entry_t *)block;
    b->free_entries = (entry_t **)(b->entries + cap);
    return 0;
}

static void free_endpoints(ct_balance_t *b) {
    size_t i;
    for (i = 0; i < b->nslots; i++)
        if (b->slots[i]) {
            b->slots[i]->svc->owner = NULL;
            free(b->slots[i]);
        }
    free(b->slots);
    free(b->active);
}

int ct_balance_init(ct_balance_t *b, ct_loop_t *loop, const ct_balance_config_t *cfg) {
    ct_balance_config_t c;
    size_t i, cap;
    int r;
    if (!b || !loop || !cfg) return CT_EINVAL;
    c = *cfg;
    if ((r = check_config(&c)) != 0) return r;
    memset(b, 0, sizeof *b);
    cap = c.max_in_flight;
    if ((r = allocate_entries(b, cap)) != 0) return r;
    ct_service_init(&b->service, loop, &balance_vtable);
    b->cfg = c;
    b->cfg.endpoints = NULL; /* the caller's array may go */
    b->rng = ct_backoff_seed(b);
    b->now_ns = uv_hrtime();
    ct_waitq_init(&b->waiters);
    for (i = 0; i < c.n_endpoints; i++)
        if ((r = add_endpoint(b, c.endpoints[i])) < 0) {
            free_endpoints(b);
            free(b->entries);
            return r;
        }
    for (i = 0; i < cap; i++) {
        entry_t *e = &b->entries[i];
        e->layer = b;
        e->index = i;
        ct_op_init(&e->inner, on_inner_done);                   /* reusable after each callback */
        b->free_entries[b->nfree++] = &b->entries[cap - 1 - i]; /* entry 0 on top */
    }
    return 0;
}

int ct_balance_endpoint_stats(const ct_balance_t *b, size_t id, ct_balance_endpoint_stats_t *out) {
    const endpoint_t *ep;
    if (!b || !out || id >= b->nslots || !(ep = b->slots[id])) return CT_EINVAL;
    out->calls = ct_counter_read(&ep->metrics.calls);
    out->failures = ep->failures;
    out->in_flight = (size_t)ep->metrics.in_flight.value;
    out->left_out = !ep->dead && ep->out_until > now_ms(b);
    out->dead = ep->dead;
    out->removing = ep->removed_cb != NULL;
    out->rtt_us =
        b->cfg.load == CT_BALANCE_PEAK_EWMA ? (uint64_t)(rtt_at(b, ep, uv_hrtime()) / 1e3) : 0;
    return 0;
}

int ct_balance_add_stats(ct_balance_t *b, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_gauge(s, "ctower_balance_endpoints", labels, "Endpoints that take calls.",
                                &b->metrics.endpoints)) ||
        (r = ct_stats_add_counter(s, "ctower_balance_added_total", labels, "Endpoints added.",
                                  &b->metrics.added)) ||
        (r = ct_stats_add_counter(s, "ctower_balance_removed_total", labels,
                                  "Endpoints removed (each drains first).", &b->metrics.removed)))
        return r;
    return ct_stats_add_counter(s, "ctower_balance_ejections_total", labels,
                                "Failures that left an endpoint out for a while.",
                                &b->metrics.ejections);
}

const ct_balance_endpoint_metrics_t *ct_balance_endpoint_metrics(const ct_balance_t *b, size_t id) {
    return b && id < b->nslots && b->slots[id] ? &b->slots[id]->metrics : NULL;
}

int ct_balance_endpoint_add_stats(ct_balance_t *b, size_t id, ct_stats_t *s, const char *labels) {
    const ct_balance_endpoint_metrics_t *m = ct_balance_endpoint_metrics(b, id);
    char with_kind[512];
    int r, k;
    if (!m) return CT_EINVAL;
    if (!labels) labels = "";
    if ((r = ct_stats_add_counter(s, "ctower_balance_endpoint_calls_total", labels,
                                  "Calls given to the endpoint.", &m->calls)) ||
        (r = ct_stats_add_gauge(s, "ctower_balance_endpoint_in_flight", labels,
                                "The endpoint's calls not answered yet.", &m->in_flight)) ||
        (r = ct_stats_add_counter(s, "ctower_balance_endpoint_ejections_total", labels,
                                  "Failures that left the endpoint out for a while.",
                                  &m->ejections)))
        return r;
    for (k = 0; k < CT_KIND_COUNT; k++) {
        int n = snprintf(with_kind, sizeof with_kind, "%s%skind=\"%s\"", labels,
                         labels[0] ? "," : "", ct_error_kind_name((ct_error_kind_t)k));
        if (n < 0 || (size_t)n >= sizeof with_kind) return CT_EINVAL;
        if ((r = ct_stats_add_counter(s, "ctower_balance_endpoint_errors_total", with_kind,
                                      "The endpoint's calls that failed, by kind.", &m->errors[k])))
            return r;
    }
    return 0;
}
