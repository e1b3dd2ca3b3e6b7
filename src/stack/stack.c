/* The stack builder: the layers of stack.h, from the bottom up, each over
 * the one below with the same bound. */
#include "ctower/stack.h"
#include "ctower/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ct_stack_endpoint {
    ct_reconnect_t client;
    ct_timeout_t timeout;
    ct_breaker_t breaker;
    ct_service_t *top;     /* the endpoint as a service: the caller's layer, or ours */
    ct_service_t *wrapped; /* the caller's layer (wrap_endpoint), or NULL */
    int id;
    int removing;
    char address[256];
    ct_stack_t *stack;
    int made; /* built whole: endpoint_gone is told when it goes */
    /* (the stack's endpoint_gone, kept here: a half-built or failed
     * stack's endpoints close after the stack's memory may have gone) */
    void (*gone)(void *ctx, ct_stack_t *stack, const char *address, ct_service_t *wrapped,
                 int removed);
    void *gone_ctx;
    struct ct_stack_endpoint *next;
} endpoint_t;

static void unlink_endpoint(ct_stack_t *s, endpoint_t *ep) {
    endpoint_t **p = &s->endpoints;
    while (*p && *p != ep)
        p = &(*p)->next;
    if (*p) *p = ep->next;
}

/* An endpoint's memory goes, and with it the caller's layer over it
 * (stack NULL: a build that failed, whose stack may be gone). */
static void endpoint_free(endpoint_t *ep, ct_stack_t *s, int removed) {
    if (ep->made && ep->gone) ep->gone(ep->gone_ctx, s, ep->address, ep->wrapped, removed);
    free(ep);
}

static void free_endpoints(ct_stack_t *s) {
    while (s->endpoints) {
        endpoint_t *ep = s->endpoints;
        s->endpoints = ep->next;
        endpoint_free(ep, s, 0);
    }
}

/* An endpoint that failed half-built is closed from its top; its memory
 * goes when that close calls back. */
static void on_half_built_closed(ct_service_t *svc) {
    endpoint_free(svc->data, NULL, 0);
}

static void close_half_built(ct_service_t *top, endpoint_t *ep) {
    top->data = ep;
    ct_service_close(top, on_half_built_closed);
}

/* An endpoint: its client, under a timeout layer and a breaker if asked
 * for. Returns it, or NULL with *err. */
static endpoint_t *endpoint_new(ct_stack_t *s, const char *address, int *err) {
    const ct_stack_config_t *c = &s->cfg;
    ct_reconnect_config_t rc = {0};
    endpoint_t *ep;
    int r;
    if (strlen(address) >= sizeof ep->address) return *err = CT_EBADADDR, NULL;
    if (!(ep = calloc(1, sizeof *ep))) return *err = UV_ENOMEM, NULL;
    ep->gone = c->endpoint_gone;
    ep->gone_ctx = c->endpoint_ctx;
    rc.multiplex = c->multiplex;
    rc.get_tag = c->get_tag;
    rc.set_tag = c->set_tag;
    rc.http2 = c->http2;
    rc.max_in_flight = c->max_in_flight;
    rc.free_msg = c->free_msg;
    rc.free_ctx = c->free_ctx;
    rc.connect_timeout_ms = c->connect_timeout_ms ? c->connect_timeout_ms : 5000;
    if ((r = ct_reconnect_init(&ep->client, s->loop, address, c->stream, &rc)) != 0) {
        free(ep);
        return *err = r, NULL;
    }
    ep->top = &ep->client.service;
    if (c->timeout_ms) {
        ct_timeout_config_t t = {c->timeout_ms, c->max_in_flight, c->free_msg, c->free_ctx};
        if ((r = ct_timeout_init(&ep->timeout, s->loop, ep->top, &t)) != 0) {
            close_half_built(ep->top, ep);
            return *err = r, NULL;
        }
        ep->top = &ep->timeout.service;
    }
    if (s->has_breaker) {
        if ((r = ct_breaker_init(&ep->breaker, s->loop, ep->top, &s->breaker_cfg)) != 0) {
            close_half_built(ep->top, ep);
            return *err = r, NULL;
        }
        ep->top = &ep->breaker.service;
    }
    snprintf(ep->address, sizeof ep->address, "%s", address);
    ep->stack = s;
    if (c->wrap_endpoint) {
        ct_service_t *w = c->wrap_endpoint(c->endpoint_ctx, s, ep->address, ep->top);
        if (!w) { /* not taken: ours to close */
            close_half_built(ep->top, ep);
            return *err = CT_EINVAL, NULL;
        }
        if (w != ep->top) ep->wrapped = ep->top = w;
    }
    ep->made = 1;
    ep->next = s->endpoints;
    s->endpoints = ep;
    return ep;
}

/* ---- the layers above the endpoints ------------------------------------------- */

static int build_balance(ct_stack_t *s, const char *const *addresses, size_t n) {
    ct_balance_config_t b = {0};
    size_t i;
    int r;
    /* every endpoint may take the whole bound: the balancer waits, per
     * endpoint, for the one it chose */
    b.max_in_flight = s->cfg.max_in_flight;
    b.free_msg = s->cfg.free_msg;
    b.free_ctx = s->cfg.free_ctx;
    b.load = s->cfg.load;
    if ((r = ct_balance_init(&s->balance, s->loop, &b)) != 0) return r;
    s->has_balance = 1;
    s->top = &s->balance.service;
    for (i = 0; i < n; i++)
        if ((r = ct_stack_add(s, addresses[i])) < 0) return r;
    return 0;
}

/* The endpoints as shards, in the order given. */
static int build_shard(ct_stack_t *s, const char *const *addresses, size_t n) {
    ct_service_t **list = calloc(n, sizeof *list);
    ct_shard_config_t c = {0};
    size_t i;
    int r = 0, err = 0;
    if (!list) return UV_ENOMEM;
    for (i = 0; i < n && r == 0; i++) {
        endpoint_t *ep = endpoint_new(s, addresses[i], &err);
        if (!ep)
            r = err;
        else {
            ep->id = (int)i;
            list[i] = ep->top;
        }
    }
    if (r == 0) {
        c.shards = list;
        c.n_shards = n;
        c.key = s->cfg.shard_key;
        c.key_ctx = s->cfg.shard_key_ctx;
        c.max_in_flight = s->cfg.max_in_flight;
        c.free_msg = s->cfg.free_msg;
        c.free_ctx = s->cfg.free_ctx;
        r = ct_shard_init(&s->shard, s->loop, &c);
    }
    if (r != 0) { /* the endpoints made close by themselves */
        endpoint_t *ep;
        while ((ep = s->endpoints)) {
            s->endpoints = ep->next;
            close_half_built(ep->top, ep);
        }
    } else {
        s->has_shard = 1;
        s->top = &s->shard.service;
    }
    free(list);
    return r;
}

static int build_retry(ct_stack_t *s) {
    int r;
    if (!s->cfg.retry) return 0;
    s->retry_cfg = *s->cfg.retry;
    if (!s->retry_cfg.copy) return CT_EINVAL;
    s->retry_cfg.max_in_flight = s->cfg.max_in_flight;
    s->retry_cfg.free_msg = s->cfg.free_msg;
    s->retry_cfg.free_ctx = s->cfg.free_ctx;
    if ((r = ct_retry_init(&s->retry, s->loop, s->top, &s->retry_cfg)) != 0) return r;
    s->has_retry = 1;
    s->top = &s->retry.service;
    return 0;
}

static int build_limit(ct_stack_t *s) {
    ct_limit_config_t l = {0};
    int r;
    if (!s->cfg.rate_per_s) return 0;
    l.rate_per_s = s->cfg.rate_per_s;
    l.free_msg = s->cfg.free_msg;
    l.free_ctx = s->cfg.free_ctx;
    if ((r = ct_limit_init(&s->limit, s->loop, s->top, &l)) != 0) return r;
    s->has_limit = 1;
    s->top = &s->limit.service;
    return 0;
}

static int build_queue(ct_stack_t *s) {
    ct_queue_config_t q = {0};
    int r;
    if (s->cfg.shed) return 0;
    q.max_in_flight = s->cfg.max_in_flight;
    q.max_queued = s->cfg.max_queued ? s->cfg.max_queued : 8 * s->cfg.max_in_flight;
    q.free_msg = s->cfg.free_msg;
    q.free_ctx = s->cfg.free_ctx;
    if ((r = ct_queue_init(&s->queue, s->loop, s->top, &q)) != 0) return r;
    s->has_queue = 1;
    s->top = &s->queue.service;
    return 0;
}

/* What a failed build leaves to close: it must not need the stack, whose
 * memory the caller may free as soon as init returns. */
typedef struct failed_build {
    endpoint_t *endpoints;
} failed_build_t;

static void on_failed_build_closed(ct_service_t *svc) {
    failed_build_t *f = svc->data;
    while (f->endpoints) {
        endpoint_t *ep = f->endpoints;
        f->endpoints = ep->next;
        endpoint_free(ep, NULL, 0);
    }
    free(f);
}

static void close_failed_build(ct_stack_t *s) {
    failed_build_t *f = malloc(sizeof *f);
    if (!f) { /* (out of memory twice over: the endpoints' memory is lost) */
        ct_service_close(s->top, NULL);
        return;
    }
    f->endpoints = s->endpoints;
    s->endpoints = NULL;
    s->top->data = f;
    ct_service_close(s->top, on_failed_build_closed);
}

static const ct_service_vtable_t front_vtable;

int ct_stack_init(ct_stack_t *s, ct_loop_t *loop, const ct_stack_config_t *cfg) {
    int r = 0, err = 0;
    if (!s || !loop || !cfg || !cfg->stream) return CT_EINVAL;
    if (cfg->n_endpoints == 0 && !cfg->balance) return CT_EINVAL;
    if (cfg->n_endpoints && !cfg->endpoints) return CT_EINVAL;
    if (cfg->retry && !cfg->retry->copy) return CT_EINVAL;
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.endpoints = NULL;
    s->cfg.n_endpoints = 0;
    if (!s->cfg.max_in_flight) s->cfg.max_in_flight = 1024;
    if (cfg->breaker) {
        s->breaker_cfg = *cfg->breaker;
        s->breaker_cfg.max_in_flight = s->cfg.max_in_flight;
        s->breaker_cfg.free_msg = cfg->free_msg;
        s->breaker_cfg.free_ctx = cfg->free_ctx;
        s->has_breaker = 1;
    }
    if (cfg->shard_key) {
        if (cfg->n_endpoints == 0 || cfg->balance) return CT_EINVAL;
        if ((r = build_shard(s, cfg->endpoints, cfg->n_endpoints)) != 0) return r;
    } else if (cfg->balance || cfg->n_endpoints > 1) {
        r = build_balance(s, cfg->endpoints, cfg->n_endpoints);
        if (r != 0 && !s->has_balance) return r;
    } else if (!(s->single = endpoint_new(s, cfg->endpoints[0], &err))) {
        return err;
    } else {
        s->top = s->single->top;
    }
    if (r == 0) r = build_retry(s);
    if (r == 0) r = build_limit(s);
    if (r == 0) r = build_queue(s);
    if (r != 0) { /* what was built closes, from its top, and its endpoints go */
        close_failed_build(s);
        return r;
    }
    s->cfg.retry = NULL; /* copied: the caller's may go (has_retry, has_breaker say) */
    s->cfg.breaker = NULL;
    ct_service_init(&s->front, loop, &front_vtable);
    s->top->owner = &s->front;
    s->service = &s->front;
    return 0;
}

/* ---- endpoints that come and go ----------------------------------------------- */

static int register_endpoint(ct_stack_t *s, endpoint_t *ep);
static void unregister_endpoint(ct_stack_t *s, endpoint_t *ep);

int ct_stack_add(ct_stack_t *s, const char *address) {
    endpoint_t *ep;
    int id, r, err = 0;
    if (!s || !address || !s->has_balance) return CT_EINVAL;
    if (!(ep = endpoint_new(s, address, &err))) return err;
    if ((id = ct_balance_add(&s->balance, ep->top)) < 0) {
        unlink_endpoint(s, ep);
        close_half_built(ep->top, ep);
        return id;
    }
    ep->id = id;
    if (s->stats && (r = register_endpoint(s, ep)) != 0) { /* (no memory) it runs, unseen */
        unregister_endpoint(s, ep);
    }
    return id;
}

static endpoint_t *find(const ct_stack_t *s, int id) {
    endpoint_t *ep;
    for (ep = s->endpoints; ep; ep = ep->next)
        if (ep->id == id && !ep->removing && (s->has_balance || s->has_shard || ep == s->single))
            return ep;
    return NULL;
}

int ct_stack_find(const ct_stack_t *s, const char *address) {
    const endpoint_t *ep;
    if (!s || !address) return CT_EINVAL;
    for (ep = s->endpoints; ep; ep = ep->next)
        if (!ep->removing && strcmp(ep->address, address) == 0) return ep->id;
    return CT_EINVAL;
}

ct_reconnect_t *ct_stack_client(ct_stack_t *s, int id) {
    endpoint_t *ep = find(s, id);
    return ep ? &ep->client : NULL;
}

ct_breaker_t *ct_stack_breaker(ct_stack_t *s, int id) {
    endpoint_t *ep = find(s, id);
    return ep && s->has_breaker ? &ep->breaker : NULL;
}

static int listed(const char *const *addresses, size_t n, const char *address) {
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(addresses[i], address) == 0) return 1;
    return 0;
}

int ct_stack_apply(ct_stack_t *s, const char *const *addresses, size_t n, size_t *added,
                   size_t *removed) {
    endpoint_t *ep;
    ct_address_t a;
    size_t i, nadded = 0, nremoved = 0;
    int r, first_error = 0;
    if (added) *added = 0;
    if (removed) *removed = 0;
    if (!s || !s->has_balance || n == 0 || !addresses) return CT_EINVAL;
    for (i = 0; i < n; i++) /* whole, or not at all */
        if (!addresses[i] || strlen(addresses[i]) >= sizeof ep->address ||
            ct_address_parse(addresses[i], &a) != 0)
            return CT_EBADADDR;
    for (ep = s->endpoints; ep; ep = ep->next)
        if (!ep->removing && !listed(addresses, n, ep->address) && ct_stack_remove(s, ep->id) == 0)
            nremoved++;
    for (i = 0; i < n; i++) {
        if (listed(addresses, i, addresses[i]) || ct_stack_find(s, addresses[i]) >= 0) continue;
        if ((r = ct_stack_add(s, addresses[i])) < 0) {
            if (!first_error) first_error = r;
            continue;
        }
        nadded++;
    }
    if (added) *added = nadded;
    if (removed) *removed = nremoved;
    return first_error;
}

size_t ct_stack_endpoints(const ct_stack_t *s) {
    const endpoint_t *ep;
    size_t n = 0;
    for (ep = s->endpoints; ep; ep = ep->next)
        n++;
    return n;
}

const char *ct_stack_address(const ct_stack_t *s, int id) {
    endpoint_t *ep = find(s, id);
    return ep ? ep->address : NULL;
}

static void maybe_closed(ct_stack_t *s) {
    endpoint_t *ep;
    if (!s->closed || s->closing_endpoints) return;
    if (s->stats) { /* the registry forgets what is about to go */
        for (ep = s->endpoints; ep; ep = ep->next)
            ct_stats_remove(s->stats, ep, sizeof *ep);
        ct_stats_remove(s->stats, s, sizeof *s);
    }
    free_endpoints(s);
    ct_service_closed(&s->front); /* last: its callback may free s */
}

static void on_removed_closed(ct_service_t *svc) {
    endpoint_t *ep = svc->data;
    ct_stack_t *s = ep->stack;
    unlink_endpoint(s, ep);
    endpoint_free(ep, s, 1);
    s->closing_endpoints--;
    maybe_closed(s);
}

static void on_removed(ct_balance_t *b, ct_service_t *endpoint, void *ctx) {
    endpoint_t *ep = ctx;
    (void)b;
    if (ep->stack->stats) ct_stats_remove(ep->stack->stats, ep, sizeof *ep);
    endpoint->data = ep;
    ep->stack->closing_endpoints++;
    ct_service_close(endpoint, on_removed_closed);
}

int ct_stack_remove(ct_stack_t *s, int id) {
    endpoint_t *ep;
    int r;
    if (!s || !s->has_balance || !(ep = find(s, id))) return CT_EINVAL;
    /* (the balancer's counts of it go with the id) */
    if (s->stats)
        ct_stats_remove(s->stats, ct_balance_endpoint_metrics(&s->balance, (size_t)id),
                        sizeof(ct_balance_endpoint_metrics_t));
    if ((r = ct_balance_remove(&s->balance, (size_t)id, on_removed, ep)) != 0) {
        if (s->stats) register_endpoint(s, ep); /* refused: it stays, and is seen */
        return r;
    }
    ep->removing = 1;
    return 0;
}

/* ---- the front: the stack as one service ---------------------------------------------- */

static ct_stack_t *of_front(ct_service_t *svc) {
    return CT_CONTAINER_OF(svc, ct_stack_t, front);
}

static int front_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    return ct_service_poll_ready(of_front(svc)->top, waker);
}

/* The caller's op goes to the top layer as it is: it completes, and is
 * canceled, there. */
static int front_call(ct_service_t *svc, void *request, ct_op_t *op) {
    return ct_service_forward(of_front(svc)->top, request, op);
}

static void front_cancel(ct_service_t *svc, ct_op_t *op) {
    (void)svc; /* (never: a forwarded op is the top layer's) */
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
}

static void front_release(ct_service_t *svc) {
    ct_service_release(of_front(svc)->top);
}

static int front_shutdown(ct_service_t *svc) {
    return ct_service_shutdown(of_front(svc)->top, ct_service_shutdown_done_owner);
}

static void on_top_closed(ct_service_t *top) {
    ct_stack_t *s = of_front(top->owner);
    s->closed = 1;
    maybe_closed(s);
}

/* Closed by ct_stack_close() or by a layer over the stack: the balancer
 * frees its endpoints' counts as it closes them, so the registry forgets
 * them first (the rest lives until the close is done). */
static void front_close(ct_service_t *svc) {
    ct_stack_t *s = of_front(svc);
    endpoint_t *ep;
    if (s->stats && s->has_balance)
        for (ep = s->endpoints; ep; ep = ep->next)
            if (!ep->removing)
                ct_stats_remove(s->stats, ct_balance_endpoint_metrics(&s->balance, (size_t)ep->id),
                                sizeof(ct_balance_endpoint_metrics_t));
    if (ct_service_close(s->top, on_top_closed) < 0) on_top_closed(s->top);
}

/* No call_sync: under every stack are reconnecting clients, which never
 * answer at once, and a server asks call_sync first for every request. */
static const ct_service_vtable_t front_vtable = {
    front_poll_ready, front_call, front_cancel, front_release, front_shutdown, front_close, NULL,
};

static void on_front_drained(ct_service_t *svc, int status) {
    ct_stack_t *s = of_front(svc);
    ct_stack_shutdown_cb cb = s->shutdown_cb;
    s->shutdown_cb = NULL;
    if (cb) cb(s, status);
}

int ct_stack_shutdown(ct_stack_t *s, ct_stack_shutdown_cb cb) {
    int r;
    if (!s || !s->service) return CT_EINVAL;
    s->shutdown_cb = cb;
    if ((r = ct_service_shutdown(&s->front, on_front_drained)) != 0) s->shutdown_cb = NULL;
    return r;
}

static void on_front_closed(ct_service_t *svc) {
    ct_stack_t *s = of_front(svc);
    if (s->close_cb) s->close_cb(s); /* last: it may free s */
}

int ct_stack_close(ct_stack_t *s, ct_stack_close_cb cb) {
    int r;
    if (!s || !s->service) return CT_EINVAL;
    s->close_cb = cb;
    if ((r = ct_service_close(&s->front, on_front_closed)) != 0) return r;
    return 0;
}

/* ---- metrics ---------------------------------------------------------------------- */

/* Endpoint ep's metrics, labelled with the stack's labels and its address. */
static int register_endpoint(ct_stack_t *s, endpoint_t *ep) {
    char labels[512];
    int n = snprintf(labels, sizeof labels, "%s%s%s=\"%s\"", s->labels, s->labels[0] ? "," : "",
                     s->cfg.endpoint_label ? s->cfg.endpoint_label : "endpoint", ep->address);
    int r;
    if (n < 0 || (size_t)n >= sizeof labels) return CT_EINVAL;
    if ((r = ct_reconnect_add_stats(&ep->client, s->stats, labels)) ||
        (s->cfg.timeout_ms && (r = ct_timeout_add_stats(&ep->timeout, s->stats, labels))) ||
        (s->has_breaker && (r = ct_breaker_add_stats(&ep->breaker, s->stats, labels))))
        return r;
    return s->has_balance
               ? ct_balance_endpoint_add_stats(&s->balance, (size_t)ep->id, s->stats, labels)
               : 0;
}

static void unregister_endpoint(ct_stack_t *s, endpoint_t *ep) {
    ct_stats_remove(s->stats, ep, sizeof *ep);
    if (s->has_balance)
        ct_stats_remove(s->stats, ct_balance_endpoint_metrics(&s->balance, (size_t)ep->id),
                        sizeof(ct_balance_endpoint_metrics_t));
}

int ct_stack_add_stats(ct_stack_t *s, ct_stats_t *stats, const char *labels) {
    const char *l = labels ? labels : "";
    endpoint_t *ep;
    int r;
    if (!s || !stats || s->stats || strlen(l) >= sizeof s->labels) return CT_EINVAL;
    s->stats = stats;
    snprintf(s->labels, sizeof s->labels, "%s", l);
    if ((s->has_queue && (r = ct_queue_add_stats(&s->queue, stats, labels))) ||
        (s->has_limit && (r = ct_limit_add_stats(&s->limit, stats, labels))) ||
        (s->has_retry && (r = ct_retry_add_stats(&s->retry, stats, labels))) ||
        (s->has_balance && (r = ct_balance_add_stats(&s->balance, stats, labels))))
        return r;
    for (ep = s->endpoints; ep; ep = ep->next)
        if (!ep->removing && (r = register_endpoint(s, ep)) != 0) return r;
    return 0;
}
