/* The balancing layer. Each call takes an entry, which holds the op of the
 * call in its endpoint; an entry whose caller was answered early (canceled)
 * goes back only once that op has called back, as in the timeout layer.
 * An endpoint's load is its calls in flight, counted here: the layer sees
 * every call go out and come back. */
#include "ctower/layer/balance.h"
#include "ctower/error.h"
#include "../core/backoff.h"

#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

typedef struct ct_balance_endpoint {
    ct_service_t *svc;
    ct_waker_t waker; /* given to svc's poll_ready: wakes the layer's waiters */
    ct_balance_t *layer;
    size_t in_flight;
    uint64_t out_until; /* loop time before which it is left out */
    unsigned failures_in_a_row;
    int dead;
    uint64_t calls;
    uint64_t failures;
} endpoint_t;

typedef struct ct_balance_entry {
    ct_op_t inner;  /* the call in its endpoint */
    ct_op_t *outer; /* NULL once the caller has been answered */
    size_t endpoint;
    size_t index; /* in layer->entries */
    ct_balance_t *layer;
} entry_t;

static void free_msg(ct_balance_t *b, void *msg) {
    if (msg && b->cfg.free_msg) b->cfg.free_msg(msg, b->cfg.free_ctx);
}

static uint64_t now_ms(const ct_balance_t *b) {
    return uv_now(b->service.loop->uv);
}

/* ---- endpoints ------------------------------------------------------------ */

static int default_is_failure(int status) {
    switch (status) {
    case CT_ECONNECT:
    case CT_ESENDBROKEN:
    case CT_ERECVBROKEN:
    case CT_EDESYNC:
    case CT_ETIMEDOUT:
        return 1;
    default:
        return 0;
    }
}

/* Counts an error of a call to ep: a failure leaves it out for a while,
 * anything else ends a run of failures (as an answer does, in the caller). */
static __attribute__((noinline)) void note_error(ct_balance_t *b, endpoint_t *ep, int status,
                                                 int cause) {
    int failed = b->cfg.is_failure ? b->cfg.is_failure(b->cfg.is_failure_ctx, status, cause)
                                   : default_is_failure(status);
    uint64_t pause;
    if (!failed) {
        ep->failures_in_a_row = 0;
        return;
    }
    ep->failures++;
    ep->failures_in_a_row++;
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
        if (eligible(b, &b->endpoints[i], 0)) return 1;
    return 0;
}

/* Polls endpoint i (its waker is registered if it is not ready); an error
 * makes it dead. */
static int poll_endpoint(ct_balance_t *b, size_t i) {
    endpoint_t *ep = &b->endpoints[i];
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

/* ---- picking ----------------------------------------------------------------- */

/* Two distinct endpoints at random (the same one twice if there is only
 * one), from one draw of the generator. */
static inline void draw_two(ct_balance_t *b, size_t *i, size_t *j) {
    uint32_t r = b->rng;
    r ^= r << 13;
    r ^= r >> 17;
    r ^= r << 5;
    b->rng = r;
    if (b->n <= 2) {
        if (b->n == 1) {
            *i = *j = 0;
            return;
        }
        *i = r & 1;
        *j = *i ^ 1;
        return;
    }
    *i = (r & 0xffff) % b->n;
    *j = (r >> 16) % (b->n - 1);
    if (*j >= *i) ++*j;
}

/* Whether endpoint i can take the call: eligible, and ready when polling. */
static int can_take(ct_balance_t *b, size_t i, int poll, int with_paused) {
    if (!eligible(b, &b->endpoints[i], with_paused)) return 0;
    return !poll || poll_endpoint(b, i) == CT_READY;
}

/* The least loaded of all that can take the call, or NONE. When polling,
 * each one better than the best so far is polled, and the best so far
 * released when a better one is ready; when none is ready, all have been
 * polled, so each has its waker. */
static size_t least_loaded(ct_balance_t *b, int poll, int with_paused) {
    size_t i, best = NONE;
    for (i = 0; i < b->n; i++) {
        if (best != NONE && b->endpoints[i].in_flight >= b->endpoints[best].in_flight) continue;
        if (!can_take(b, i, poll, with_paused)) continue;
        if (best != NONE && poll) ct_service_release(b->endpoints[best].svc);
        best = i;
    }
    return best;
}

/* Two endpoints at random, the less loaded first; if neither can take the
 * call, the least loaded of all. Only the one picked is left polled READY. */
static size_t pick(ct_balance_t *b, int poll, int with_paused) {
    size_t i, j;
    if (b->n >= 2) {
        draw_two(b, &i, &j);
        if (b->endpoints[j].in_flight < b->endpoints[i].in_flight) {
            size_t t = i;
            i = j;
            j = t;
        }
        if (can_take(b, i, poll, with_paused)) return i;
        if (can_take(b, j, poll, with_paused)) return j;
    }
    return least_loaded(b, poll, with_paused);
}

/* An endpoint not left out if any is usable, else any alive one. */
static __attribute__((noinline)) size_t pick_any(ct_balance_t *b, int poll) {
    size_t i = pick(b, poll, 0);
    if (i == NONE && b->alive > 0 && !any_eligible(b)) i = pick(b, poll, 1);
    return i;
}

/* The common case, in line: the less loaded of two endpoints drawn at
 * random, or else the other, if it is alive, not paused, and (when polling)
 * ready. NONE sends the caller to pick_any, which sorts out the rest (no
 * endpoint ready among the two, a poll_ready error). */
static inline size_t pick_fast(ct_balance_t *b, int poll) {
    size_t i, j, k;
    draw_two(b, &i, &j);
    if (b->endpoints[j].in_flight < b->endpoints[i].in_flight) {
        k = i;
        i = j;
        j = k;
    }
    for (k = 0; k < 2; k++, i = j) {
        endpoint_t *ep = &b->endpoints[i];
        int r;
        if (!eligible(b, ep, 0)) continue;
        if (!poll || (r = ct_service_poll_ready(ep->svc, &ep->waker)) == CT_READY) return i;
        if (r < 0) break; /* pick_any marks it dead */
    }
    return NONE;
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
    endpoint_t *ep = &b->endpoints[e->endpoint];
    ct_op_t *outer = e->outer;
    ep->in_flight--;
    if (status == 0)
        ep->failures_in_a_row = 0;
    else if (status != CT_ECANCELED) /* (which says nothing of the endpoint) */
        note_error(b, ep, status, op->cause);
    give_back(b, e);
    if (!outer) {
        free_msg(b, response); /* canceled: nobody waits for it */
        return;
    }
    e->outer = NULL;
    ct_op_complete_now(outer, status, op->cause, response);
}

static int balance_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i;
    if (b->chosen != NONE) return CT_READY;
    if (b->nfree > 0) {
        if ((i = pick_fast(b, 1)) == NONE) i = pick_any(b, 1);
        if (i != NONE) {
            b->chosen = i;
            return CT_READY;
        }
        if (b->alive == 0) return b->last_error; /* all dead, or found so now */
    }
    if (waker) ct_waitq_add(&b->waiters, waker);
    return CT_PENDING;
}

static int balance_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i = b->chosen;
    endpoint_t *ep;
    entry_t *e;
    int r;
    if (b->nfree == 0) {
        free_msg(b, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    b->chosen = NONE;
    if (i == NONE && (i = pick_fast(b, 0)) == NONE && (i = pick_any(b, 0)) == NONE)
        return b->last_error; /* all dead */
    ep = &b->endpoints[i];
    e = b->free_entries[--b->nfree];
    r = ct_service_call(ep->svc, request, &e->inner);
    if (r < 0) { /* nothing started: the request is still the caller's */
        note_error(b, ep, r, 0);
        b->free_entries[b->nfree++] = e;
        return r;
    }
    e->outer = op;
    e->endpoint = i;
    op->slot = e->index;
    ep->in_flight++;
    ep->calls++;
    return 0;
}

static void balance_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_balance_t *b = (ct_balance_t *)svc;
    entry_t *e = &b->entries[op->slot];
    e->outer = NULL;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
    ct_op_cancel(&e->inner); /* its callback gives the entry back */
}

static void balance_release(ct_service_t *svc) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i = b->chosen;
    b->chosen = NONE;
    if (i != NONE) ct_service_release(b->endpoints[i].svc);
}

/* ---- shutdown and close ------------------------------------------------------ */

static void endpoint_shut_down(ct_balance_t *b, int status) {
    if (status < 0 && b->shutdown_status == 0) b->shutdown_status = status;
    if (--b->shutting == 0) ct_service_shutdown_done(&b->service, b->shutdown_status);
}

static void on_endpoint_shutdown(ct_service_t *inner, int status) {
    endpoint_shut_down(inner->owner, status);
}

/* Every endpoint shuts down; one that refuses at once counts as done with
 * its error. If all refuse, nothing started. */
static int balance_shutdown(ct_service_t *svc) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i, refused = 0;
    int r, first = 0;
    b->shutting = b->n + 1; /* + 1: not done before the last one is asked */
    b->shutdown_status = 0;
    for (i = 0; i < b->n; i++) {
        r = ct_service_shutdown(b->endpoints[i].svc, on_endpoint_shutdown);
        if (r < 0) {
            refused++;
            if (!first) first = r;
            b->shutting--;
            if (b->shutdown_status == 0) b->shutdown_status = r;
        }
    }
    if (refused == b->n) return first;
    endpoint_shut_down(b, 0);
    return 0;
}

static void on_endpoint_closed(ct_service_t *inner) {
    ct_balance_t *b = inner->owner;
    if (--b->closing > 0) return;
    free(b->endpoints);
    b->endpoints = NULL;
    b->entries = NULL;
    ct_service_closed(&b->service);
}

/* Every endpoint completes its calls before its close callback, so every
 * entry has come home when the last one has closed. */
static void balance_close(ct_service_t *svc) {
    ct_balance_t *b = (ct_balance_t *)svc;
    size_t i, n = b->n;
    b->chosen = NONE;
    b->closing = n;
    for (i = 0; i < n; i++)
        ct_waker_cancel(&b->endpoints[i].waker);
    ct_waitq_wake_all(&b->waiters);
    for (i = 0; i < n; i++) {
        ct_service_t *inner = b->endpoints[i].svc;
        if (ct_service_close(inner, on_endpoint_closed) < 0) on_endpoint_closed(inner);
    }
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
    if (!c->endpoints || c->n_endpoints == 0) return CT_EINVAL;
    for (i = 0; i < c->n_endpoints; i++) {
        if (!c->endpoints[i] || c->endpoints[i]->owner) return CT_EINVAL;
        for (j = 0; j < i; j++)
            if (c->endpoints[j] == c->endpoints[i]) return CT_EINVAL;
    }
    if (c->max_in_flight == 0) c->max_in_flight = 1024;
    if (c->pause_min_ms == 0) c->pause_min_ms = 100;
    if (c->pause_max_ms == 0) c->pause_max_ms = c->pause_min_ms > 10000 ? c->pause_min_ms : 10000;
    if (c->pause_max_ms < c->pause_min_ms) return CT_EINVAL;
    return 0;
}

/* The endpoints, the entries and the stack of free entries, in one block. */
static int allocate(ct_balance_t *b, size_t n, size_t cap) {
    size_t ep_bytes = n * sizeof(endpoint_t);
    size_t entry_at = (ep_bytes + _Alignof(entry_t) - 1) / _Alignof(entry_t) * _Alignof(entry_t);
    char *block = calloc(1, entry_at + cap * (sizeof(entry_t) + sizeof(entry_t *)));
    if (!block) return UV_ENOMEM;
    b->endpoints = (endpoint_t *)block;
    b->entries = (entry_t *)(block + entry_at);
    b->free_entries = (entry_t **)(b->entries + cap);
    return 0;
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
    if ((r = allocate(b, c.n_endpoints, cap)) != 0) return r;
    ct_service_init(&b->service, loop, &balance_vtable);
    b->cfg = c;
    b->cfg.endpoints = NULL; /* the caller's array may go */
    b->n = b->alive = c.n_endpoints;
    b->chosen = NONE;
    b->rng = ct_backoff_seed(b);
    ct_waitq_init(&b->waiters);
    for (i = 0; i < b->n; i++) {
        endpoint_t *ep = &b->endpoints[i];
        ep->svc = c.endpoints[i];
        ep->svc->owner = b;
        ep->layer = b;
        ct_waker_init(&ep->waker, loop, on_endpoint_waker);
        ep->waker.data = ep;
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

int ct_balance_endpoint_stats(const ct_balance_t *b, size_t i, ct_balance_endpoint_stats_t *out) {
    const endpoint_t *ep;
    if (!b || !out || !b->endpoints || i >= b->n) return CT_EINVAL;
    ep = &b->endpoints[i];
    out->calls = ep->calls;
    out->failures = ep->failures;
    out->in_flight = ep->in_flight;
    out->left_out = !ep->dead && ep->out_until > now_ms(b);
    out->dead = ep->dead;
    return 0;
}
