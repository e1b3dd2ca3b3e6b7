/* The sharding layer. Each call takes an entry, which holds the call while
 * it waits for its shard and its op once sent; an entry whose caller was
 * answered early (canceled) goes back only once that op has called back.
 * A shard that is not ready holds its own calls in a queue, woken by its
 * waker, so that the others go on. */
#include "ctower/layer/shard.h"
#include "ctower/error.h"
#include "entry.h"
#include "../core/list.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_shard_part {
    ct_service_t *svc;
    ct_waker_t waker; /* given to svc's poll_ready while calls wait */
    ct_shard_t *layer;
    ct_link_t queue; /* entries waiting, in call order */
    size_t nwaiting, in_flight;
    uint64_t calls;
    int error; /* its poll_ready failed: every call to it fails so */
} part_t;

typedef struct ct_shard_entry {
    ct_op_t inner;  /* the call in its shard */
    ct_op_t *outer; /* NULL once the caller has been answered */
    void *request;  /* while waiting */
    part_t *part;
    ct_link_t link; /* in part->queue while waiting */
    size_t index;   /* in layer->entries */
    ct_shard_t *layer;
    int waiting;
} entry_t;

/* ---- keys --------------------------------------------------------------------- */

uint64_t ct_shard_hash(const void *bytes, size_t len) {
    const unsigned char *p = bytes;
    uint64_t h = 14695981039346656037ull; /* FNV-1a's offset basis */
    size_t i;
    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull; /* FNV's 64-bit prime */
    }
    return h;
}

/* Lamping and Veach's jump: the key walks a pseudo-random sequence of
 * shard counts at which it would move; the last one below n is its shard. */
size_t ct_shard_jump(uint64_t key, size_t n) {
    int64_t b = -1, j = 0;
    while (j < (int64_t)n) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (size_t)b;
}

/* ---- entries ------------------------------------------------------------------- */

static void free_msg(ct_shard_t *s, void *msg) {
    if (msg && s->cfg.free_msg) s->cfg.free_msg(msg, s->cfg.free_ctx);
}

static void give_back(ct_shard_t *s, entry_t *e) {
    s->free_entries[s->nfree++] = e;
    if (!ct_waitq_empty(&s->waiters)) ct_waitq_wake_all(&s->waiters);
}

static void maybe_shut_shards(ct_shard_t *s);

/* A call that will not be sent: its request freed, its caller told. */
static void fail_call(ct_shard_t *s, entry_t *e, int status) {
    ct_op_t *outer = e->outer;
    free_msg(s, e->request);
    e->request = NULL;
    e->outer = NULL;
    give_back(s, e);
    /* refused for its deadline while it waited: the caller's time ran out */
    ct_op_complete(outer, status, status == CT_ETIMEDOUT ? CT_EDEADLINE : 0, NULL);
}

static void dequeue(entry_t *e) {
    part_t *p = e->part;
    ct_list_remove(&e->link);
    e->waiting = 0;
    p->nwaiting--;
    p->layer->waiting--;
}

static void send_call(ct_shard_t *s, entry_t *e) {
    part_t *p = e->part;
    int r = ct_service_call(p->svc, e->request, &e->inner);
    if (r < 0) { /* nothing started: the request is still ours */
        fail_call(s, e, r);
        return;
    }
    e->request = NULL;
    p->in_flight++;
    p->calls++;
}

/* Sends the calls waiting for p while it is ready; a poll_ready error
 * fails them all. Runs from the waker, on a fresh stack. */
static void drain(part_t *p) {
    ct_shard_t *s = p->layer;
    while (!ct_list_empty(&p->queue)) {
        int r = ct_service_poll_ready(p->svc, &p->waker);
        entry_t *e;
        if (r == CT_PENDING) return;
        e = CT_CONTAINER_OF(p->queue.next, entry_t, link);
        dequeue(e);
        if (r < 0) {
            p->error = r;
            fail_call(s, e, r);
        } else {
            send_call(s, e);
        }
    }
    maybe_shut_shards(s);
}

static void on_part_ready(ct_waker_t *waker) {
    drain(waker->data);
}

/* ---- the service ------------------------------------------------------------- */

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_shard_t *s = e->layer;
    e->part->in_flight--;
    give_back(s, e);
    ct_entry_answer(&e->outer, op, status, response, s->cfg.free_msg, s->cfg.free_ctx);
}

static int shard_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_shard_t *s = (ct_shard_t *)svc;
    if (s->held) return CT_READY;
    if (s->nfree > 0) {
        s->held = s->free_entries[--s->nfree];
        return CT_READY;
    }
    if (waker) ct_waitq_add(&s->waiters, waker);
    return CT_PENDING;
}

static int shard_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_shard_t *s = (ct_shard_t *)svc;
    entry_t *e = s->held ? s->held : s->nfree > 0 ? s->free_entries[--s->nfree] : NULL;
    uint64_t hash = 0;
    part_t *p;
    int r;
    s->held = NULL;
    if (!e) {
        free_msg(s, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e->outer = op;
    e->request = request;
    e->inner.ctx = op->ctx;
    op->slot = e->index;
    if ((r = s->cfg.key(s->cfg.key_ctx, request, &hash)) < 0) {
        fail_call(s, e, r);
        return 0;
    }
    p = e->part = &s->parts[ct_shard_jump(hash, s->n)];
    if (p->error) {
        fail_call(s, e, p->error);
        return 0;
    }
    if (ct_list_empty(&p->queue) && (r = ct_service_poll_ready(p->svc, &p->waker)) != CT_PENDING) {
        if (r < 0) {
            p->error = r;
            fail_call(s, e, r);
        } else {
            send_call(s, e);
        }
        return 0;
    }
    /* its shard is full (the waker is registered), or others wait before it */
    ct_list_push_back(&p->queue, &e->link);
    e->waiting = 1;
    p->nwaiting++;
    s->waiting++;
    return 0;
}

static void shard_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_shard_t *s = (ct_shard_t *)svc;
    entry_t *e = &s->entries[op->slot];
    if (e->waiting) {
        dequeue(e);
        fail_call(s, e, CT_ECANCELED);
        maybe_shut_shards(s);
        return;
    }
    ct_entry_cancel(&e->outer, &e->inner);
}

static void shard_release(ct_service_t *svc) {
    ct_shard_t *s = (ct_shard_t *)svc;
    if (!s->held) return;
    s->free_entries[s->nfree++] = s->held;
    s->held = NULL;
}

/* ---- shutdown and close ------------------------------------------------------ */

static void part_shut_down(ct_shard_t *s, int status) {
    if (status < 0 && s->shutdown_status == 0) s->shutdown_status = status;
    if (--s->shutting == 0) ct_service_shutdown_done(&s->service, s->shutdown_status);
}

static void on_part_shutdown(ct_service_t *inner, int status) {
    part_shut_down(inner->owner, status);
}

/* Once shutting down with no call left waiting: every shard shuts down
 * (once); one that refuses at once counts as done with its error. */
static void maybe_shut_shards(ct_shard_t *s) {
    size_t i;
    int r;
    if (s->shut_down != 1 || s->waiting > 0) return;
    s->shut_down = 2;
    s->shutting = s->n + 1; /* + 1: not done before the last one is asked */
    for (i = 0; i < s->n; i++)
        if ((r = ct_service_shutdown(s->parts[i].svc, on_part_shutdown)) < 0) part_shut_down(s, r);
    part_shut_down(s, 0);
}

static int shard_shutdown(ct_service_t *svc) {
    ct_shard_t *s = (ct_shard_t *)svc;
    s->shut_down = 1;
    s->shutdown_status = 0;
    maybe_shut_shards(s);
    return 0;
}

static void one_closed(ct_shard_t *s) {
    if (--s->closing > 0) return;
    free(s->parts);
    s->parts = NULL;
    s->entries = NULL;
    ct_service_closed(&s->service);
}

static void on_part_closed(ct_service_t *inner) {
    one_closed(inner->owner);
}

/* The calls waiting fail; every shard completes its calls before its close
 * callback, so every entry has come home when the last one has closed. */
static void shard_close(ct_service_t *svc) {
    ct_shard_t *s = (ct_shard_t *)svc;
    size_t i;
    shard_release(svc);
    for (i = 0; i < s->n; i++) {
        part_t *p = &s->parts[i];
        ct_waker_cancel(&p->waker);
        while (!ct_list_empty(&p->queue)) {
            entry_t *e = CT_CONTAINER_OF(p->queue.next, entry_t, link);
            dequeue(e);
            fail_call(s, e, CT_ECLOSED);
        }
    }
    ct_waitq_wake_all(&s->waiters);
    s->closing = s->n + 1;
    for (i = 0; i < s->n; i++)
        if (ct_service_close(s->parts[i].svc, on_part_closed) < 0) one_closed(s);
    one_closed(s);
}

/* No call_sync: a shard may have to wait, and the answer would skip the
 * counts. */
static const ct_service_vtable_t shard_vtable = {
    shard_poll_ready, shard_call, shard_cancel, shard_release, shard_shutdown, shard_close, NULL,
};

/* ---- setup ------------------------------------------------------------------- */

static int check_config(ct_shard_config_t *c) {
    size_t i, j;
    if (!c->shards || c->n_shards == 0 || !c->key) return CT_EINVAL;
    for (i = 0; i < c->n_shards; i++) {
        if (!c->shards[i] || c->shards[i]->owner) return CT_EINVAL;
        for (j = 0; j < i; j++)
            if (c->shards[j] == c->shards[i]) return CT_EINVAL;
    }
    if (c->max_in_flight == 0) c->max_in_flight = 1024;
    return 0;
}

/* The shards, the entries and the stack of free entries, in one block. */
static int allocate(ct_shard_t *s, size_t n, size_t cap) {
    size_t parts = n * sizeof(part_t);
    size_t entry_at = (parts + _Alignof(entry_t) - 1) / _Alignof(entry_t) * _Alignof(entry_t);
    char *block = calloc(1, entry_at + cap * (sizeof(entry_t) + sizeof(entry_t *)));
    if (!block) return UV_ENOMEM;
    s->parts = (part_t *)block;
    s->entries = (entry_t *)(block + entry_at);
    s->free_entries = (entry_t **)(s->entries + cap);
    return 0;
}

int ct_shard_init(ct_shard_t *s, ct_loop_t *loop, const ct_shard_config_t *cfg) {
    ct_shard_config_t c;
    size_t i, cap;
    int r;
    if (!s || !loop || !cfg) return CT_EINVAL;
    c = *cfg;
    if ((r = check_config(&c)) != 0) return r;
    memset(s, 0, sizeof *s);
    cap = c.max_in_flight;
    if ((r = allocate(s, c.n_shards, cap)) != 0) return r;
    ct_service_init(&s->service, loop, &shard_vtable);
    s->cfg = c;
    s->cfg.shards = NULL; /* the caller's array may go */
    s->n = c.n_shards;
    ct_waitq_init(&s->waiters);
    for (i = 0; i < s->n; i++) {
        part_t *p = &s->parts[i];
        p->svc = c.shards[i];
        p->svc->owner = s;
        p->layer = s;
        ct_list_init(&p->queue);
        ct_waker_init(&p->waker, loop, on_part_ready);
        p->waker.data = p;
    }
    for (i = 0; i < cap; i++) {
        entry_t *e = &s->entries[i];
        e->layer = s;
        e->index = i;
        ct_op_init(&e->inner, on_inner_done);                   /* reusable after each callback */
        s->free_entries[s->nfree++] = &s->entries[cap - 1 - i]; /* entry 0 on top */
    }
    return 0;
}

int ct_shard_stats(const ct_shard_t *s, size_t i, ct_shard_stats_t *out) {
    const part_t *p;
    if (!s || !out || !s->parts || i >= s->n) return CT_EINVAL;
    p = &s->parts[i];
    out->calls = p->calls;
    out->waiting = p->nwaiting;
    out->in_flight = p->in_flight;
    return 0;
}
