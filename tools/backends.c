#include "backends.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BACKEND_IN_FLIGHT = 4096, FILE_IN_FLIGHT = 4 * BACKEND_IN_FLIGHT };

static void on_client_closed(ct_service_t *svc) {
    free(svc->data); /* the backend_t it is in */
}

/* With --breaker N, a circuit breaker over the timeout layer: a backend
 * that times out N times in a row fails its requests at once for a while.
 * Returns 0, or the error (the timeout layer and client are then closing,
 * and b goes with them). */
static int add_breaker(backend_set_t *s, backend_t *b) {
    ct_breaker_config_t cfg = {0};
    int r;
    b->top = &b->timeout.service;
    if (!s->o->breaker) return 0;
    cfg.failures_to_open = (unsigned)s->o->breaker;
    cfg.max_in_flight = BACKEND_IN_FLIGHT;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &s->wire->pool;
    if ((r = ct_breaker_init(&b->breaker, s->ct, &b->timeout.service, &cfg)) != 0) {
        b->timeout.service.data = b;
        ct_service_close(&b->timeout.service, on_client_closed);
        return r;
    }
    b->top = &b->breaker.service;
    return 0;
}

/* --access-log: the request on the stack goes to this backend. */
static void *on_backend_call(void *ctx, const ct_op_t *op, const void *request) {
    backend_t *b = ctx;
    (void)op;
    (void)request;
    access_log_backend(b->set->log, b->address);
    return NULL;
}

/* --access-log: over the rest, an observing layer whose hook tells the
 * log which backend each request goes to (and counts the backend's
 * requests, errors and latency: ctower_backend_*). Without a log there is
 * none: the balancer counts each backend's calls and errors for less. */
static int add_observe(backend_set_t *s, backend_t *b) {
    ct_observe_config_t cfg = {0};
    int r;
    if (!s->log) return 0;
    cfg.max_in_flight = BACKEND_IN_FLIGHT;
    cfg.on_start = on_backend_call;
    cfg.hooks_ctx = b;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &s->wire->pool;
    if ((r = ct_observe_init(&b->observe, s->ct, b->top, &cfg)) != 0) {
        b->top->data = b;
        ct_service_close(b->top, on_client_closed);
        return r;
    }
    b->top = &b->observe.service;
    return 0;
}

/* The backend's metrics, labelled with its address (checked by
 * ct_address_parse: no quote or backslash to escape). */
static int register_stats(backend_set_t *s, backend_t *b) {
    char labels[300];
    int r;
    if (!s->stats) return 0;
    snprintf(labels, sizeof labels, "backend=\"%s\"", b->address);
    if ((s->log && (r = ct_observe_add_stats(&b->observe, s->stats, "ctower_backend", labels))) ||
        (r = ct_reconnect_add_stats(&b->client, s->stats, labels)) ||
        (r = ct_timeout_add_stats(&b->timeout, s->stats, labels)))
        return r;
    return s->o->breaker ? ct_breaker_add_stats(&b->breaker, s->stats, labels) : 0;
}

/* A backend's client under its timeout layer (and a breaker), or NULL
 * after saying why. */
static backend_t *backend_new(backend_set_t *s, const char *address) {
    const options_t *o = s->o;
    ct_reconnect_config_t rc = {0};
    ct_timeout_config_t timeout = {0};
    backend_t *b = calloc(1, sizeof *b);
    int r = b ? 0 : UV_ENOMEM;
    rc.multiplex = o->multiplex;
    rc.http2 = o->http2 ? &s->wire->h2_client : NULL;
    /* the layer keeps HTTP/1.1's to CT_HTTP_MAX_PENDING by itself */
    rc.max_in_flight = BACKEND_IN_FLIGHT;
    rc.free_msg = ct_buf_pool_free_msg;
    rc.free_ctx = &s->wire->pool;
    rc.connect_timeout_ms = 5000;
    if (r == 0) r = ct_reconnect_init(&b->client, s->ct, address, &s->wire->stream, &rc);
    if (r == 0) {
        timeout.timeout_ms = (uint64_t)(o->timeout_s * 1000 + 0.5);
        timeout.max_in_flight = BACKEND_IN_FLIGHT;
        timeout.free_msg = ct_buf_pool_free_msg;
        timeout.free_ctx = &s->wire->pool;
        if ((r = ct_timeout_init(&b->timeout, s->ct, &b->client.service, &timeout)) != 0) {
            b->client.service.data = b;
            ct_service_close(&b->client.service, on_client_closed);
            b = NULL;
        } else if ((r = add_breaker(s, b)) != 0 || (r = add_observe(s, b)) != 0) {
            b = NULL;
        }
    } else {
        free(b);
        b = NULL;
    }
    if (r != 0) {
        fprintf(stderr, "ctower proxy: backend %s: %s\n", address, ct_strerror(r));
        return NULL;
    }
    snprintf(b->address, sizeof b->address, "%s", address);
    b->set = s;
    b->top->data = b;
    if ((r = register_stats(s, b)) != 0) /* (no memory: it runs, unseen) */
        fprintf(stderr, "ctower proxy: backend %s: its metrics: %s\n", address, ct_strerror(r));
    return b;
}

/* ---- reading the file ------------------------------------------------------ */

/* The addresses in the file, one per line ('#' starts a comment), into
 * out (texts in buf). Returns how many, or -1 after saying why. */
static int read_file(const char *path, char buf[][256], int max) {
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0, lineno = 0;
    ct_address_t a;
    if (!f) {
        perror(path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *p = line, *end;
        lineno++;
        if ((end = strchr(p, '#'))) *end = 0;
        while (isspace((unsigned char)*p))
            p++;
        end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1]))
            *--end = 0;
        if (!*p) continue;
        if (n == max || strlen(p) >= 256 || ct_address_parse(p, &a) != 0) {
            fprintf(stderr, "ctower proxy: %s:%d: %s\n", path, lineno,
                    n == max ? "too many backends" : "not an address");
            fclose(f);
            return -1;
        }
        strcpy(buf[n++], p);
    }
    fclose(f);
    return n;
}

/* ---- the set ------------------------------------------------------------------ */

static int named(char names[][256], int n, const char *address) {
    int i;
    for (i = 0; i < n; i++)
        if (strcmp(names[i], address) == 0) return 1;
    return 0;
}

static int in_use(const backend_set_t *s, const char *address) {
    int i;
    for (i = 0; i < s->n; i++)
        if (!s->list[i]->removing && strcmp(s->list[i]->address, address) == 0) return 1;
    return 0;
}

static void on_backend_closed(ct_service_t *svc);

/* The balancer's counts of backend b (calls, errors by kind, in flight,
 * ejections), under its address. */
static void register_endpoint(backend_set_t *s, backend_t *b) {
    char labels[300];
    int r;
    if (!s->stats) return;
    snprintf(labels, sizeof labels, "backend=\"%s\"", b->address);
    if ((r = ct_balance_endpoint_add_stats(&s->balance, (size_t)b->id, s->stats, labels)) != 0)
        fprintf(stderr, "ctower proxy: backend %s: its metrics: %s\n", b->address, ct_strerror(r));
}

/* Before the balancer lets go of b's endpoint (its counts go with it). */
static void unregister_endpoint(backend_set_t *s, backend_t *b) {
    if (s->stats)
        ct_stats_remove(s->stats, ct_balance_endpoint_metrics(&s->balance, (size_t)b->id),
                        sizeof(ct_balance_endpoint_metrics_t));
}

/* Adds a backend for address to the balancer. */
static int add(backend_set_t *s, const char *address) {
    backend_t *b;
    if (s->n == OPTIONS_MAX_BACKENDS) {
        fprintf(stderr, "ctower proxy: %d backends at most: %s left out\n", OPTIONS_MAX_BACKENDS,
                address);
        return -1;
    }
    if (!(b = backend_new(s, address))) return -1;
    if ((b->id = ct_balance_add(&s->balance, b->top)) < 0) {
        fprintf(stderr, "ctower proxy: backend %s: %s\n", address, ct_strerror(b->id));
        if (s->stats) ct_stats_remove(s->stats, b, sizeof *b);
        ct_service_close(b->top, on_backend_closed); /* and the layers under it */
        return -1;
    }
    s->list[s->n++] = b;
    register_endpoint(s, b);
    return 0;
}

/* A removed backend's connection is closed; then it is forgotten. */
static void on_backend_closed(ct_service_t *svc) {
    backend_t *b = svc->data;
    backend_set_t *s = b->set;
    int i;
    for (i = 0; i < s->n; i++)
        if (s->list[i] == b) s->list[i] = s->list[--s->n];
    free(b);
}

static void on_removed(ct_balance_t *balance, ct_service_t *svc, void *ctx) {
    backend_t *b = ctx;
    (void)balance;
    fprintf(stderr, "ctower proxy: backend %s removed, its requests answered\n", b->address);
    if (b->set->stats) ct_stats_remove(b->set->stats, b, sizeof *b);
    ct_service_close(svc, on_backend_closed);
}

int backend_set_reload(backend_set_t *s) {
    static char names[OPTIONS_MAX_BACKENDS][256];
    int n = read_file(s->o->backends_file, names, OPTIONS_MAX_BACKENDS), i, added = 0, removed = 0;
    if (n < 0) {
        fprintf(stderr, "ctower proxy: backends unchanged\n");
        return -1;
    }
    for (i = 0; i < s->n; i++) {
        backend_t *b = s->list[i];
        if (b->removing || named(names, n, b->address)) continue;
        unregister_endpoint(s, b); /* while the balancer still has it */
        if (ct_balance_remove(&s->balance, (size_t)b->id, on_removed, b) == 0) {
            b->removing = 1;
            removed++;
        } else {
            register_endpoint(s, b); /* refused (shutting down): it stays */
        }
    }
    for (i = 0; i < n; i++)
        if (!in_use(s, names[i]) && add(s, names[i]) == 0) added++;
    fprintf(stderr, "ctower proxy: backends from %s: %d added, %d removed, %d in use\n",
            s->o->backends_file, added, removed, n);
    return 0;
}

static int balance_init(backend_set_t *s) {
    ct_balance_config_t cfg = {0};
    int r;
    cfg.max_in_flight = s->o->backends_file ? FILE_IN_FLIGHT : (size_t)BACKEND_IN_FLIGHT * s->n;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &s->wire->pool;
    cfg.load = s->o->peak_ewma ? CT_BALANCE_PEAK_EWMA : CT_BALANCE_IN_FLIGHT;
    if ((r = ct_balance_init(&s->balance, s->ct, &cfg)) != 0) {
        fprintf(stderr, "ctower proxy: balancer: %s\n", ct_strerror(r));
        return -1;
    }
    s->balanced = 1;
    s->service = &s->balance.service;
    if (s->stats && (r = ct_balance_add_stats(&s->balance, s->stats, NULL)) != 0)
        fprintf(stderr, "ctower proxy: balancer's metrics: %s\n", ct_strerror(r));
    return 0;
}

/* --shard: the backends, in the order given, are the shards. */
static int shard_init(backend_set_t *s) {
    ct_service_t *list[OPTIONS_MAX_BACKENDS];
    ct_shard_config_t cfg = {0};
    int i, r;
    for (i = 0; i < s->n; i++)
        list[i] = s->list[i]->top;
    cfg.shards = list;
    cfg.n_shards = (size_t)s->n;
    cfg.key = redis_key_hash;
    cfg.max_in_flight = (size_t)BACKEND_IN_FLIGHT * (size_t)s->n;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &s->wire->pool;
    if ((r = ct_shard_init(&s->shard, s->ct, &cfg)) != 0) {
        fprintf(stderr, "ctower proxy: sharding layer: %s\n", ct_strerror(r));
        return -1;
    }
    s->sharded = 1;
    s->service = &s->shard.service;
    return 0;
}

int backend_set_init(backend_set_t *s, ct_loop_t *ct, const options_t *o, wire_t *wire,
                     ct_stats_t *stats, access_log_t *log) {
    int i;
    memset(s, 0, sizeof *s);
    s->stats = stats;
    s->log = log;
    s->ct = ct;
    s->o = o;
    s->wire = wire;
    if (o->backends_file) {
        return balance_init(s) == 0 ? backend_set_reload(s) : -1;
    }
    for (i = 0; i < o->nbackends; i++)
        if (!(s->list[s->n++] = backend_new(s, o->backends[i]))) return -1;
    if (o->shard) return shard_init(s);
    if (s->n == 1) {
        s->service = s->list[0]->top;
        return 0;
    }
    if (balance_init(s) != 0) return -1;
    for (i = 0; i < s->n; i++) {
        if ((s->list[i]->id = ct_balance_add(&s->balance, s->list[i]->top)) < 0) return -1;
        register_endpoint(s, s->list[i]);
    }
    return 0;
}

void backend_set_report(const backend_set_t *s) {
    int i;
    for (i = 0; i < s->n; i++) {
        const backend_t *b = s->list[i];
        ct_reconnect_counts_t c = ct_reconnect_counts(&b->client);
        ct_balance_endpoint_stats_t st;
        fprintf(stderr, "ctower proxy: backend %s: %llu connects, %llu failed", b->address,
                (unsigned long long)c.connects, (unsigned long long)c.connect_failures);
        if (s->o->breaker) {
            static const char *const states[] = {"closed", "open", "half-open"};
            ct_breaker_stats_t k;
            ct_breaker_stats(&b->breaker, &k);
            fprintf(stderr, "; breaker %s, opened %llu times, %llu refused", states[k.state],
                    (unsigned long long)k.opens, (unsigned long long)k.rejected);
        }
        ct_shard_stats_t sh;
        if (s->sharded && ct_shard_stats(&s->shard, (size_t)i, &sh) == 0)
            fprintf(stderr, "; shard %d: %llu requests, %zu waiting, %zu in flight", i,
                    (unsigned long long)sh.calls, sh.waiting, sh.in_flight);
        if (s->balanced && ct_balance_endpoint_stats(&s->balance, (size_t)b->id, &st) == 0) {
            fprintf(stderr, "; %llu requests, %llu failures, %zu in flight",
                    (unsigned long long)st.calls, (unsigned long long)st.failures, st.in_flight);
            if (s->o->peak_ewma)
                fprintf(stderr, ", %llu us round trip", (unsigned long long)st.rtt_us);
            fprintf(stderr, "%s%s%s", st.left_out ? ", left out" : "", st.dead ? ", dead" : "",
                    st.removing ? ", being removed" : "");
        }
        fprintf(stderr, "\n");
    }
}

void backend_set_free(backend_set_t *s) {
    int i;
    for (i = 0; i < s->n; i++)
        free(s->list[i]);
    s->n = 0;
}
