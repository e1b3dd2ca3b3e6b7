#include "backends.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every layer's bound (a backend's client keeps HTTP/1.1's within
 * CT_HTTP_MAX_PENDING by itself). */
enum { BACKEND_IN_FLIGHT = 4096 };

/* ---- --access-log: a layer over each backend that names it ---------------------- */

typedef struct backend_log {
    ct_observe_t observe; /* its requests, errors and latency: ctower_backend_* */
    backend_set_t *set;
    char address[256];
} backend_log_t;

/* The request on the stack goes to this backend. */
static void *on_backend_call(void *ctx, const ct_op_t *op, const void *request) {
    backend_log_t *b = ctx;
    (void)op;
    (void)request;
    access_log_backend(b->set->log, b->address);
    return NULL;
}

/* With --access-log, over each backend an observing layer whose hook tells
 * the log which backend each request goes to. Without a log there is none:
 * the balancer counts each backend's calls and errors for less. */
static ct_service_t *wrap_backend(void *ctx, ct_stack_t *stack, const char *address,
                                  ct_service_t *backend) {
    backend_set_t *s = ctx;
    ct_observe_config_t cfg = {0};
    backend_log_t *b;
    char labels[300];
    int r;
    (void)stack;
    if (!s->log) return backend;
    if (!(b = calloc(1, sizeof *b))) return NULL;
    b->set = s;
    snprintf(b->address, sizeof b->address, "%s", address);
    cfg.max_in_flight = BACKEND_IN_FLIGHT;
    cfg.on_start = on_backend_call;
    cfg.hooks_ctx = b;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &s->wire->pool;
    if ((r = ct_observe_init(&b->observe, s->ct, backend, &cfg)) != 0) {
        fprintf(stderr, "ctower proxy: backend %s: %s\n", address, ct_strerror(r));
        free(b);
        return NULL;
    }
    /* (checked by ct_address_parse: no quote or backslash to escape) */
    snprintf(labels, sizeof labels, "backend=\"%s\"", address);
    if (s->stats && ct_observe_add_stats(&b->observe, s->stats, "ctower_backend", labels) != 0)
        fprintf(stderr, "ctower proxy: backend %s: its metrics: out of memory\n", address);
    return &b->observe.service;
}

static void backend_gone(void *ctx, ct_stack_t *stack, const char *address, ct_service_t *wrapped,
                         int removed) {
    backend_set_t *s = ctx;
    (void)stack;
    if (removed)
        fprintf(stderr, "ctower proxy: backend %s removed, its requests answered\n", address);
    if (wrapped) {
        backend_log_t *b = CT_CONTAINER_OF(wrapped, backend_log_t, observe.service);
        if (s->stats) ct_stats_remove(s->stats, b, sizeof *b);
        free(b);
    }
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

int backend_set_reload(backend_set_t *s) {
    static char names[OPTIONS_MAX_BACKENDS][256];
    const char *set[OPTIONS_MAX_BACKENDS];
    int n = read_file(s->o->backends_file, names, OPTIONS_MAX_BACKENDS), i, r;
    size_t added = 0, removed = 0;
    if (n < 0) {
        fprintf(stderr, "ctower proxy: backends unchanged\n");
        return -1;
    }
    for (i = 0; i < n; i++)
        set[i] = names[i];
    /* the set, whole: the new ones added, those gone drained and closed */
    if (n > 0 && (r = ct_stack_apply(&s->stack, set, (size_t)n, &added, &removed)) != 0)
        fprintf(stderr, "ctower proxy: backends from %s: %s\n", s->o->backends_file,
                ct_strerror(r));
    if (n == 0) fprintf(stderr, "ctower proxy: %s names no backend: kept\n", s->o->backends_file);
    s->n = 0; /* the backends in use, for the report */
    for (i = 0; i < n; i++)
        if (ct_stack_find(&s->stack, names[i]) >= 0 && !named(s->names, s->n, names[i]))
            snprintf(s->names[s->n++], sizeof s->names[0], "%s", names[i]);
    fprintf(stderr, "ctower proxy: backends from %s: %zu added, %zu removed, %d in use\n",
            s->o->backends_file, added, removed, s->n);
    return 0;
}

/* The stack's description, from the options. */
static ct_stack_config_t description(backend_set_t *s) {
    const options_t *o = s->o;
    ct_stack_config_t c = {0};
    c.endpoints = o->backends_file ? NULL : o->backends;
    c.n_endpoints = o->backends_file ? 0 : (size_t)o->nbackends;
    c.balance = o->backends_file != NULL;
    c.load = o->peak_ewma ? CT_BALANCE_PEAK_EWMA : CT_BALANCE_IN_FLIGHT;
    c.shard_key = o->shard ? redis_key_hash : NULL;
    c.stream = &s->wire->stream;
    c.multiplex = o->multiplex;
    c.http2 = o->http2 ? &s->wire->h2_client : NULL;
    c.connect_timeout_ms = 5000;
    c.max_in_flight = BACKEND_IN_FLIGHT;
    c.shed = 1; /* the listener's servers wait for readiness: nothing queues */
    c.timeout_ms = (uint64_t)(o->timeout_s * 1000 + 0.5);
    if (o->retry) {
        s->retry.copy = ct_buf_pool_copy_msg;
        s->retry.copy_ctx = &s->wire->pool;
        /* a pipelined client's commands may depend on the ones before them */
        s->retry.keep_order = !o->multiplex;
        c.retry = &s->retry;
    }
    if (o->breaker) {
        s->breaker.failures_to_open = (unsigned)o->breaker;
        c.breaker = &s->breaker;
    }
    c.free_msg = ct_buf_pool_free_msg;
    c.free_ctx = &s->wire->pool;
    c.endpoint_label = "backend";
    c.wrap_endpoint = wrap_backend;
    c.endpoint_gone = backend_gone;
    c.endpoint_ctx = s;
    return c;
}

int backend_set_init(backend_set_t *s, ct_loop_t *ct, const options_t *o, wire_t *wire,
                     ct_stats_t *stats, access_log_t *log) {
    ct_stack_config_t c;
    ct_address_t a;
    int i, r;
    memset(s, 0, sizeof *s);
    s->stats = stats;
    s->log = log;
    s->ct = ct;
    s->o = o;
    s->wire = wire;
    for (i = 0; i < o->nbackends; i++) { /* which one is wrong, before building */
        if ((r = ct_address_parse(o->backends[i], &a)) != 0) {
            fprintf(stderr, "ctower proxy: backend %s: %s\n", o->backends[i], ct_strerror(r));
            return -1;
        }
        snprintf(s->names[s->n++], sizeof s->names[0], "%s", o->backends[i]);
    }
    c = description(s);
    if ((r = ct_stack_init(&s->stack, ct, &c)) != 0) {
        fprintf(stderr, "ctower proxy: backends: %s\n", ct_strerror(r));
        return -1;
    }
    s->service = s->stack.service;
    if (stats && (r = ct_stack_add_stats(&s->stack, stats, NULL)) != 0)
        fprintf(stderr, "ctower proxy: the backends' metrics: %s\n", ct_strerror(r));
    return o->backends_file ? backend_set_reload(s) : 0;
}

ct_retry_counts_t backend_set_retries(const backend_set_t *s) {
    ct_retry_counts_t none = {0};
    return s->stack.has_retry ? ct_retry_counts(&s->stack.retry) : none;
}

void backend_set_report(const backend_set_t *s) {
    ct_stack_t *stack = (ct_stack_t *)&s->stack; /* (reads its layers' counts) */
    int i;
    for (i = 0; i < s->n; i++) {
        const char *address = s->names[i];
        int id = ct_stack_find(stack, address);
        ct_reconnect_t *rc = ct_stack_client(stack, id);
        ct_breaker_t *breaker = ct_stack_breaker(stack, id);
        ct_reconnect_counts_t c;
        ct_balance_endpoint_stats_t st;
        ct_shard_stats_t sh;
        if (!rc) continue;
        c = ct_reconnect_counts(rc);
        fprintf(stderr, "ctower proxy: backend %s: %llu connects, %llu failed", address,
                (unsigned long long)c.connects, (unsigned long long)c.connect_failures);
        if (breaker) {
            static const char *const states[] = {"closed", "open", "half-open"};
            ct_breaker_stats_t k;
            ct_breaker_stats(breaker, &k);
            fprintf(stderr, "; breaker %s, opened %llu times, %llu refused", states[k.state],
                    (unsigned long long)k.opens, (unsigned long long)k.rejected);
        }
        if (stack->has_shard && ct_shard_stats(&stack->shard, (size_t)id, &sh) == 0)
            fprintf(stderr, "; shard %d: %llu requests, %zu waiting, %zu in flight", id,
                    (unsigned long long)sh.calls, sh.waiting, sh.in_flight);
        if (stack->has_balance &&
            ct_balance_endpoint_stats(&stack->balance, (size_t)id, &st) == 0) {
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
