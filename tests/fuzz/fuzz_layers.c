/* Model-based fuzz target for the balancing, sharding, breaker, limit and
 * queueing layers. The input is a script played against a stack of a queue
 * (or not) over a limit layer (or not) over a circuit breaker (or not) over
 * a balancer (or a sharding layer)
 * over 1-4 endpoints that the script steers: polls, calls
 * (with or without a READY), cancels, releases, endpoints that answer,
 * fail, fill up, free up or die, endpoints added and removed, shutdowns
 * and loop turns. Whatever the script, every op that started completes
 * exactly once, with its own request's answer or an error, no callback
 * runs inside a call, no endpoint is asked to release what it did not
 * reserve, a removed endpoint is handed back only once it holds no call
 * (and never after the layer closed it), a shutdown is done only once
 * every call has been answered, nothing leaks, and the loop closes
 * clean. */
#include <ctower/ctower.h>

#include <stdlib.h>
#include <string.h>

enum { OPS = 32, EPS = 8, HELD = 64 };

static void must(int cond) {
    if (!cond) abort();
}

/* ---- messages ------------------------------------------------------------------------ */

static long live;

static void *new_msg(uint32_t id) {
    uint32_t *m = malloc(sizeof *m);
    must(m != NULL);
    *m = id;
    live++;
    return m;
}

static void free_msg(void *m, void *ctx) {
    (void)ctx;
    if (!m) return;
    live--;
    free(m);
}

/* ---- endpoints the script steers -------------------------------------------------------- */

typedef struct ep {
    ct_service_t service;
    ct_op_t *ops[HELD];
    void *reqs[HELD];
    int n;
    int capacity; /* PENDING while n >= capacity (0: never) */
    int dead;     /* poll_ready fails */
    int reserved;
    int closed;
    int id;       /* in the balancer, or -1 */
    int removing; /* ct_balance_remove() said yes; not handed back yet */
    ct_waitq_t waiters;
} ep_t;

static struct {
    uv_loop_t uv;
    ct_loop_t ct;
    ep_t eps[EPS];
    int neps;
    ct_balance_t balance;
    ct_shard_t shard; /* instead of the balancer, in some runs */
    int sharded;
    ct_breaker_t breaker; /* over either, in some runs */
    ct_limit_t limit;
    ct_queue_t queue; /* on top, in some runs */
    ct_service_t *top;
    struct rec {
        ct_op_t op;
        int started, calls;
        uint32_t id;
    } recs[OPS];
    uint32_t next_id;
    int nested, top_closed, shut;
    ct_waker_t waker;
} S;

static void ep_answer(ep_t *e, int i, int status) {
    ct_op_t *op = e->ops[i];
    void *req = e->reqs[i];
    memmove(&e->ops[i], &e->ops[i + 1], (size_t)(e->n - i - 1) * sizeof *e->ops);
    memmove(&e->reqs[i], &e->reqs[i + 1], (size_t)(e->n - i - 1) * sizeof *e->reqs);
    e->n--;
    if (status == 0) {
        ct_op_complete(op, 0, 0, req);
    } else {
        free_msg(req, NULL);
        ct_op_complete(op, status, 0, NULL);
    }
    ct_waitq_wake_all(&e->waiters);
    if (e->n == 0 && ct_service_is_shutting_down(&e->service))
        ct_service_shutdown_done(&e->service, 0);
}

static int ep_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ep_t *e = (ep_t *)svc;
    if (e->dead) return CT_ECLOSED;
    if (e->capacity && e->n >= e->capacity) {
        if (waker) ct_waitq_add(&e->waiters, waker);
        return CT_PENDING;
    }
    e->reserved = 1;
    return CT_READY;
}

static int ep_call(ct_service_t *svc, void *req, ct_op_t *op) {
    ep_t *e = (ep_t *)svc;
    e->reserved = 0;
    if (e->n == HELD || e->dead) {
        free_msg(req, NULL);
        ct_op_complete(op, e->dead ? CT_ECLOSED : CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e->ops[e->n] = op;
    e->reqs[e->n++] = req;
    return 0;
}

static void ep_cancel(ct_service_t *svc, ct_op_t *op) {
    ep_t *e = (ep_t *)svc;
    int i;
    for (i = 0; i < e->n; i++)
        if (e->ops[i] == op) {
            ep_answer(e, i, CT_ECANCELED);
            return;
        }
    abort(); /* canceled an op it does not hold */
}

static void ep_release(ct_service_t *svc) {
    ep_t *e = (ep_t *)svc;
    must(e->reserved); /* nothing to give back */
    e->reserved = 0;
}

static int ep_shutdown(ct_service_t *svc) {
    ep_t *e = (ep_t *)svc;
    if (e->n == 0) ct_service_shutdown_done(svc, 0);
    return 0;
}

static void ep_close(ct_service_t *svc) {
    ep_t *e = (ep_t *)svc;
    while (e->n > 0)
        ep_answer(e, 0, CT_ECLOSED);
    ct_waitq_wake_all(&e->waiters);
    e->closed = 1;
    ct_service_closed(svc);
}

static const ct_service_vtable_t ep_vtable = {
    ep_poll_ready, ep_call, ep_cancel, ep_release, ep_shutdown, ep_close, NULL,
};

/* ---- the caller --------------------------------------------------------------------------- */

static void on_done(ct_op_t *op, int status, void *response) {
    struct rec *r = (struct rec *)op;
    must(S.nested == 0); /* never from inside a call */
    must(r->started);
    r->calls++;
    must(r->calls == 1);
    if (status == 0) {
        must(response != NULL && *(uint32_t *)response == r->id);
        free_msg(response, NULL);
    } else {
        must(response == NULL);
    }
}

static void on_woken(ct_waker_t *w) {
    (void)w;
}

static void on_top_closed(ct_service_t *svc) {
    (void)svc;
    S.top_closed = 1;
}

/* A graceful shutdown is done once every call has been answered. */
static void on_shutdown(ct_service_t *svc, int status) {
    int k;
    (void)svc;
    if (status == CT_ECANCELED) return; /* the close cut it short */
    for (k = 0; k < OPS; k++)
        must(!S.recs[k].started || S.recs[k].calls == 1);
}

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void call(int k, int poll_first) {
    struct rec *r = &S.recs[k];
    void *m;
    int rc;
    if (ct_op_is_pending(&r->op) || (r->started && r->calls == 0)) return;
    if (poll_first && ct_service_poll_ready(S.top, &S.waker) != CT_READY) return;
    memset(r, 0, sizeof *r);
    ct_op_init(&r->op, on_done);
    r->id = ++S.next_id;
    m = new_msg(r->id);
    S.nested++;
    rc = ct_service_call(S.top, m, &r->op);
    S.nested--;
    if (rc < 0) {
        free_msg(m, NULL); /* nothing started: still ours */
        return;
    }
    r->started = 1;
}

static void ep_init(ep_t *e) {
    ct_service_init(&e->service, &S.ct, &ep_vtable);
    ct_waitq_init(&e->waiters);
}

static void on_ep_closed(ct_service_t *svc) {
    (void)svc;
}

static void on_removed(ct_balance_t *b, ct_service_t *svc, void *ctx) {
    ep_t *e = (ep_t *)svc;
    must(b == &S.balance && ctx == e);
    must(S.nested == 0);
    must(e->removing && e->id >= 0 && !e->closed);
    must(e->n == 0);          /* its calls have all called back */
    must(svc->owner == NULL); /* the caller's again */
    e->removing = 0;
    e->id = -1;
    must(ct_service_close(svc, on_ep_closed) == 0); /* ours to close */
}

static void add_endpoint(void) {
    ep_t *e;
    int r;
    if (S.neps == EPS || S.sharded) return;
    e = &S.eps[S.neps++];
    ep_init(e);
    r = ct_balance_add(&S.balance, &e->service);
    must(r >= 0 || (r == CT_ESHUTDOWN && S.shut));
    e->id = r;
    if (r < 0) must(ct_service_close(&e->service, on_ep_closed) == 0);
}

static void remove_endpoint(ep_t *e) {
    int r;
    if (e->id < 0 || e->removing || S.sharded) return;
    r = ct_balance_remove(&S.balance, (size_t)e->id, on_removed, e);
    must(r == 0 || (r == CT_ESHUTDOWN && S.shut));
    e->removing = r == 0;
}

/* The shard of a request: its id's. */
static int key_of(void *ctx, const void *request, uint64_t *hash) {
    uint32_t id = *(const uint32_t *)request;
    (void)ctx;
    if (id % 17 == 0) return CT_SERVICE_ERROR(1); /* a key the layer refuses */
    *hash = ct_shard_hash(&id, sizeof id);
    return 0;
}

static void shard_over(ct_service_t **list, size_t bound) {
    ct_shard_config_t sc;
    memset(&sc, 0, sizeof sc);
    sc.shards = list;
    sc.n_shards = (size_t)S.neps;
    sc.key = key_of;
    sc.max_in_flight = bound;
    sc.free_msg = free_msg;
    must(ct_shard_init(&S.shard, &S.ct, &sc) == 0);
    S.sharded = 1;
}

/* shape: endpoints (bits 0-1), the bound (2-5), a limit layer (6) with a
 * rate (7); mode: a balancer (that weighs round-trip times, or counts
 * calls) or a sharding layer over the endpoints. */
static void setup(uint8_t shape, int mode, int breaker, int queue) {
    ct_service_t *list[EPS];
    ct_balance_config_t bc;
    int i;
    memset(&S, 0, sizeof S);
    must(uv_loop_init(&S.uv) == 0);
    must(ct_loop_init(&S.ct, &S.uv) == 0);
    S.neps = 1 + (shape & 3);
    for (i = 0; i < S.neps; i++) {
        ep_init(&S.eps[i]);
        S.eps[i].id = i;
        list[i] = &S.eps[i].service;
    }
    memset(&bc, 0, sizeof bc);
    bc.endpoints = list;
    bc.n_endpoints = (size_t)S.neps;
    bc.max_in_flight = 1 + (size_t)((shape >> 2) & 15);
    bc.free_msg = free_msg;
    bc.pause_min_ms = bc.pause_max_ms = 1;
    bc.load = mode == 1 ? CT_BALANCE_PEAK_EWMA : CT_BALANCE_IN_FLIGHT;
    if (mode == 2) {
        shard_over(list, bc.max_in_flight);
        S.top = &S.shard.service;
    } else {
        must(ct_balance_init(&S.balance, &S.ct, &bc) == 0);
        S.top = &S.balance.service;
    }
    if (breaker) { /* opens after 2 failures, probes after 1-2 ms */
        ct_breaker_config_t kc;
        memset(&kc, 0, sizeof kc);
        kc.failures_to_open = 2;
        kc.pause_min_ms = 1;
        kc.pause_max_ms = 2;
        kc.max_in_flight = 8;
        kc.free_msg = free_msg;
        must(ct_breaker_init(&S.breaker, &S.ct, S.top, &kc) == 0);
        S.top = &S.breaker.service;
    }
    if (shape & 0x40) {
        ct_limit_config_t lc = {1 + (size_t)(shape >> 7) * 4, (shape & 0x80) ? 100000 : 0, 0,
                                free_msg, NULL};
        must(ct_limit_init(&S.limit, &S.ct, S.top, &lc) == 0);
        S.top = &S.limit.service;
    }
    if (queue) { /* calls wait their turn: a few, a few in flight */
        ct_queue_config_t qc;
        memset(&qc, 0, sizeof qc);
        qc.max_queued = 1 + (shape & 7);
        qc.max_in_flight = 1 + ((shape >> 3) & 7);
        qc.free_msg = free_msg;
        must(ct_queue_init(&S.queue, &S.ct, S.top, &qc) == 0);
        S.top = &S.queue.service;
    }
    ct_waker_init(&S.waker, &S.ct, on_woken);
}

static void step(uint8_t op, uint8_t arg) {
    static const int statuses[] = {
        0, 0, 0, CT_ECONNECT, CT_ERECVBROKEN, CT_EOVERLOADED, CT_SERVICE_ERROR(2), CT_ETIMEDOUT};
    ep_t *e = &S.eps[arg % S.neps];
    switch (op % 12) {
    case 0:
        call(arg % OPS, 1);
        break;
    case 1:
        call(arg % OPS, 0);
        break;
    case 2:
        if (ct_op_is_pending(&S.recs[arg % OPS].op)) ct_op_cancel(&S.recs[arg % OPS].op);
        break;
    case 3:
        if (e->n > 0) ep_answer(e, (arg >> 2) % e->n, statuses[(arg >> 4) & 7]);
        break;
    case 4:
        e->capacity = (arg >> 2) & 7;
        ct_waitq_wake_all(&e->waiters);
        break;
    case 5:
        if ((arg >> 2) % 5 == 0) e->dead = 1;
        break;
    case 6:
        ct_service_release(S.top);
        break;
    case 7:
        if (!S.shut) {
            S.shut = 1;
            ct_service_shutdown(S.top, on_shutdown);
        }
        break;
    case 8:
        ct_service_poll_ready(S.top, &S.waker); /* a READY the script may release */
        break;
    case 9:
        add_endpoint();
        break;
    case 10:
        remove_endpoint(e);
        break;
    default:
        uv_run(&S.uv, UV_RUN_NOWAIT);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t i;
    int k, j;
    if (size < 1) return 0;
    /* (the script's length picks the layers) */
    setup(data[0], (int)(size % 3), (int)((size / 3) % 2), (int)((size / 6) % 2));
    for (i = 1; i + 1 < size && i < 1 + 2 * 400; i += 2)
        step(data[i], data[i + 1]);
    for (j = 0; j < S.neps; j++) /* the endpoints answer what they hold */
        while (S.eps[j].n > 0)
            ep_answer(&S.eps[j], 0, 0);
    uv_run(&S.uv, UV_RUN_NOWAIT);
    ct_waker_cancel(&S.waker);
    must(ct_service_close(S.top, on_top_closed) == 0);
    while (!S.top_closed)
        uv_run(&S.uv, UV_RUN_ONCE);
    for (k = 0; k < OPS; k++)
        must(!S.recs[k].started || S.recs[k].calls == 1);
    for (j = 0; j < S.neps; j++)
        must(S.eps[j].closed);
    must(ct_loop_close(&S.ct, on_loop_closed) == 0);
    uv_run(&S.uv, UV_RUN_DEFAULT);
    must(uv_loop_close(&S.uv) == 0);
    must(live == 0);
    return 0;
}
