/* `ctower proxy LISTEN BACKEND [BACKEND...]`: accepts connections on LISTEN
 * and sends the requests of all of them to BACKEND over one shared
 * connection, each answer going back to the connection its request came
 * from. Given several backends, it spreads the requests over them, one
 * shared connection each.
 *
 * It is a ctower service stack put together as a user would: a listener
 * whose service is a reconnecting client (ct_reconnect_t) under a timeout
 * layer (each attempt must be answered within --timeout, 5 s by default),
 * itself under a retry layer with --retry, and with --max-in-flight or
 * --rate under a limit layer (ct_limit_t) that bounds the requests of all
 * clients together: when it is full, the clients' connections wait, unread,
 * for room. With several backends, each has
 * its client and timeout layer, and a balancer (ct_balance_t) over them
 * picks one per request: of two drawn at random, the one with fewer
 * requests in flight; a backend that cannot be reached, breaks or times out
 * is left out for a while. The backends must be interchangeable (replicas,
 * or stateless servers): two requests of one client may go to different
 * ones, and run in either order there. The shared connection is
 * pipelined or multiplexed (--mode, as the backend speaks); in multiplex
 * mode each client's tags are kept by its connection's server and put back
 * on the answers, while the backend connection tags requests its own way.
 * With the codecs that have no way to say "error" (length, line), a request
 * that fails on the way to the backend closes its client's connection after
 * the answers before it.
 *
 * With --codec resp it is a Redis proxy:
 *  - a command that fails on the way to the backend (down, refused, broken)
 *    is answered with an error reply, "-ERR ctower proxy: ...", and the
 *    client's connection stays;
 *  - clients may send commands only: arrays of bulk strings, what Redis's
 *    clients send, or inline commands, which the proxy turns into arrays.
 *    Anything else ends that client's connection instead of reaching the
 *    shared one, where Redis would answer it with no reply, or two, and
 *    shift every later reply onto the wrong request
 *    (ct_resp_codec_init_commands);
 *  - for the same reason the commands that do that, or that would take the
 *    shared connection over (SUBSCRIBE, MONITOR, MULTI, SELECT, BLPOP, ...),
 *    are answered with an error reply by the proxy itself (redis_filter.h),
 *    as other pooling proxies do.
 *
 * With --backends-file the backends are the addresses in a file, one per
 * line, read again on SIGHUP: those gone from it are removed once their
 * requests in flight are answered, new ones are added (backends.h).
 *
 * SIGINT or SIGTERM: stop accepting, answer what was read (5 s at most),
 * then close the backend connections. SIGUSR1, and the stop, print a line
 * per backend: its connects, and with several backends its requests,
 * failures, requests in flight, and whether it is left out. */
#include "proxy.h"
#include "access_log.h"
#include "admin.h"
#include "context_block.h"
#include "backends.h"
#include "http_echo.h"
#include "http_filter.h"
#include "redis_filter.h"
#include "trim.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { POOL_BUF = 512, PER_CONNECTION = 128, TOP_IN_FLIGHT = 16384 };

typedef struct proxy {
    uv_loop_t uv;
    ct_loop_t ct;
    wire_t wire;
    ct_resp_codec_t commands; /* --codec resp: what clients may send */
    backend_set_t backends;
    ct_limit_t limit;      /* --max-in-flight, --rate */
    filter_t filter;       /* --codec resp or http */
    ct_observe_t observe;  /* --access-log: the top, whose hooks write the log */
    ct_service_t *service; /* the top of the stack so far */
    ct_listener_t listener;
    uv_signal_t sigint, sigterm, sigusr1, sighup;
    const options_t *options;
    ct_budget_t budget; /* --memory-budget */
    trimmer_t trim;
    context_reader_t contexts; /* HTTP's fields, or --context's block */
    ct_stats_t stats;          /* for --admin */
    admin_t admin;
    int admin_up;
    access_log_t log;                    /* --access-log */
    ct_stream_stats_t connector_streams; /* the backends' connections */
    ct_http2_stats_t connector_http2;
} proxy_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_service_closed(ct_service_t *svc) {
    proxy_t *p = svc->data;
    if (p->options->access_log) access_log_close(&p->log); /* every request answered, logged */
    ct_loop_close(&p->ct, on_loop_closed);
}

/* What the backends and the retry layer did so far (SIGUSR1, and at the end). */
static void report(const proxy_t *p) {
    backend_set_report(&p->backends);
    if (p->options->retry) {
        ct_retry_counts_t c = backend_set_retries(&p->backends);
        fprintf(stderr,
                "ctower proxy: retry: %llu retries, %llu refused by the budget, %llu out of "
                "attempts, %llu ended by the caller's deadline\n",
                (unsigned long long)c.retries, (unsigned long long)c.budget_refusals,
                (unsigned long long)c.exhausted, (unsigned long long)c.deadline_refusals);
    }
}

static void on_admin_closed(admin_t *a) {
    proxy_t *p = a->data;
    ct_service_close(p->service, on_service_closed);
}

static void on_listener_closed(ct_listener_t *l) {
    proxy_t *p = l->data;
    report(p);
    if (p->contexts.refused)
        fprintf(stderr,
                "ctower proxy: %llu requests carried a context that did not read (ignored)\n",
                (unsigned long long)p->contexts.refused);
    if (p->admin_up) { /* the last to go: it says "draining" until then */
        admin_close(&p->admin, on_admin_closed);
        return;
    }
    ct_service_close(p->service, on_service_closed);
}

static void on_signal(uv_signal_t *sig, int signum) {
    proxy_t *p = sig->data;
    if (signum == SIGUSR1) {
        report(p);
        return;
    }
    if (signum == SIGHUP) {
        backend_set_reload(&p->backends); /* (a bad file is said, and changes nothing) */
        return;
    }
    fprintf(stderr, "ctower proxy: %s, shutting down\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    if (p->admin_up) admin_draining(&p->admin);
    uv_close((uv_handle_t *)&p->sigint, NULL);
    uv_close((uv_handle_t *)&p->sigterm, NULL);
    uv_close((uv_handle_t *)&p->sigusr1, NULL);
    uv_close((uv_handle_t *)&p->sighup, NULL);
    trimmer_stop(&p->trim);
    ct_listener_shutdown(&p->listener, 5000, on_listener_closed);
}

/* A failed command, as the error reply a Redis client expects in its place. */
static int resp_error_reply(ct_server_t *srv, int status, void **response) {
    char text[160];
    int n = status == REDIS_CROSS_SHARD
                ? snprintf(text, sizeof text,
                           "-ERR ctower proxy: keys in different shards (give keys used together "
                           "one {hash tag})\r\n")
                : snprintf(text, sizeof text, "-ERR ctower proxy: backend: %s (%s)\r\n",
                           ct_strerror(status), ct_err_name(status));
    (void)srv;
    if (n < 0 || (size_t)n >= sizeof text) return status;
    *response = ct_buf_from(text, (size_t)n);
    return *response ? 0 : status;
}

/* The backends (one, a balancer over several, or shards), with a retry
 * layer on top with --retry: a client stack (backends.h); 0 or -1, said. */
static int backends_init(proxy_t *p, const options_t *o) {
    if (backend_set_init(&p->backends, &p->ct, o, &p->wire, &p->stats,
                         o->access_log ? &p->log : NULL) != 0)
        return -1;
    p->service = p->backends.service;
    return 0;
}

/* With --max-in-flight or --rate, a limit layer on top: the clients'
 * requests wait for room (their connections stop being read), whatever
 * happens below. */
static int limit_init(proxy_t *p, const options_t *o) {
    ct_limit_config_t cfg = {0};
    int r;
    if (!o->max_in_flight && !o->rate_per_s) return 0;
    cfg.max_in_flight = (size_t)o->max_in_flight;
    cfg.rate_per_s = (uint32_t)o->rate_per_s;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &p->wire.pool;
    r = ct_limit_init(&p->limit, &p->ct, p->service, &cfg);
    if (r != 0) fprintf(stderr, "ctower proxy: limit layer: %s\n", ct_strerror(r));
    if (r != 0) return r;
    p->service = &p->limit.service;
    return ct_limit_add_stats(&p->limit, &p->stats, NULL);
}

/* With --access-log, on top of everything, an observing layer whose hooks
 * write the log (and which counts ctower_proxy_*). Without it the
 * listener's servers count the requests, errors and latency, for less. */
static int observe_init(proxy_t *p, const options_t *o) {
    ct_observe_config_t cfg = {0};
    int r;
    if (!o->access_log) return 0;
    cfg.max_in_flight = TOP_IN_FLIGHT;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &p->wire.pool;
    if (access_log_open(&p->log, &p->uv, o->access_log, TOP_IN_FLIGHT, o->http) != 0) return -1;
    cfg.on_start = access_log_start;
    cfg.on_called = access_log_called;
    cfg.on_end = access_log_end;
    cfg.hooks_ctx = &p->log;
    if ((r = ct_observe_init(&p->observe, &p->ct, p->service, &cfg)) != 0) {
        fprintf(stderr, "ctower proxy: observing layer: %s\n", ct_strerror(r));
        return r;
    }
    p->service = &p->observe.service;
    return ct_observe_add_stats(&p->observe, &p->stats, "ctower_proxy", NULL);
}

/* The whole stack under the listener: for Redis and HTTP, the filter on
 * top, and over it the observing layer. */
static int stack_init(proxy_t *p, const options_t *o) {
    int r = backends_init(p, o);
    if (r == 0) r = limit_init(p, o);
    if (r != 0) return r;
    /* (HTTP/2 has no fields of one connection to drop, nghttp2 refuses
     * them; the filter carries its requests' contexts on) */
    if (o->resp || o->http || o->context) {
        filter_init(&p->filter, &p->ct, p->service, &p->wire.pool,
                    o->resp   ? redis_filter_rule
                    : o->http ? http_filter_rule
                              : block_filter_rule,
                    o->multiplex ? 4 : 0);
        p->service = &p->filter.service;
    }
    return observe_init(p, o);
}

static int listener_init(proxy_t *p, const options_t *o) {
    ct_listener_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.multiplex = o->multiplex;
    cfg.stream = p->wire.listen_stream;
    cfg.stream.tls = o->server_tls;
    cfg.http2 = o->http2 ? &p->wire.h2_server : NULL;
    options_listener(o, &cfg, &p->budget);
    if (o->resp) {
        ct_resp_codec_init_commands(&p->commands, p->wire.resp.codec.max_payload, 1);
        cfg.stream.codec = &p->commands.codec;
    }
    cfg.server.max_in_flight = PER_CONNECTION;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &p->wire.pool;
    if (o->resp) cfg.server.on_error = resp_error_reply;
    if (o->http) cfg.server.on_error = o->http2 ? http2_error_reply : http_error_reply;
    /* the filter writes the context on for the next hop */
    p->contexts.room = o->multiplex ? 4 : 0;
    if (o->http || o->context) {
        cfg.server.read_context = o->http ? http_read_context : block_read_context;
        cfg.server.context_ctx = &p->contexts;
    }
    if (o->context)
        cfg.server.on_error = o->multiplex ? block_error_reply_tagged : block_error_reply;
    if (o->multiplex) { /* the backend client writes tags of its own */
        cfg.server.get_tag = ct_buf_get_tag;
        cfg.server.set_tag = ct_buf_set_tag;
    }
    return ct_listener_init(&p->listener, &p->ct, o->address, p->service, &cfg);
}

static int check_options(const options_t *o) {
    if (!o->address || (o->nbackends == 0) == !o->backends_file) {
        fprintf(
            stderr,
            "usage: ctower proxy LISTEN (BACKEND [BACKEND...] | --backends-file FILE)"
            " [--mode pipeline|multiplex] [--codec length|line|crlf|resp|http|http2] [--timeout S]"
            " [--retry] [--max-in-flight N] [--rate N]\n");
        return 2;
    }
    if (o->shard && (!o->resp || o->backends_file || o->peak_ewma)) {
        fprintf(stderr, "ctower proxy: --shard needs --codec resp and the backends as arguments "
                        "(their order is the partitioning)\n");
        return 2;
    }
    return 0;
}

int proxy_main(const options_t *o) {
    static proxy_t p;
    ct_address_t bound;
    char text[160];
    int i, r, failed = 0;
    if ((r = check_options(o)) != 0) return r;
    uv_loop_init(&p.uv);
    ct_loop_init(&p.ct, &p.uv);
    wire_init(&p.wire, o, POOL_BUF);
    p.wire.stream.tls = o->client_tls; /* the backends' */
    p.options = o;
    ct_stats_init(&p.stats);
    p.wire.stream.stats = &p.connector_streams;
    p.wire.h2_client.stats = &p.connector_http2;
    ct_stream_add_stats(&p.connector_streams, &p.stats, "ctower_connector", NULL);
    if (o->http2) ct_http2_add_stats(&p.connector_http2, &p.stats, "ctower_connector_http2", NULL);
    if (stack_init(&p, o) != 0) return 2;
    p.service->data = &p;
    if ((r = listener_init(&p, o)) != 0) {
        fprintf(stderr, "ctower proxy: cannot listen on %s: %s\n", o->address, ct_strerror(r));
        ct_service_close(p.service, on_service_closed);
        uv_run(&p.uv, UV_RUN_DEFAULT);
        wire_destroy(&p.wire);
        return 1;
    }
    p.listener.data = &p;
    uv_signal_init(&p.uv, &p.sigint);
    uv_signal_init(&p.uv, &p.sigterm);
    uv_signal_init(&p.uv, &p.sigusr1);
    uv_signal_init(&p.uv, &p.sighup);
    p.sigint.data = p.sigterm.data = p.sigusr1.data = p.sighup.data = &p;
    p.options = o;
    uv_signal_start(&p.sigint, on_signal, SIGINT);
    uv_signal_start(&p.sigterm, on_signal, SIGTERM);
    uv_signal_start(&p.sigusr1, on_signal, SIGUSR1);
    uv_signal_start(&p.sighup, on_signal, SIGHUP); /* --backends-file: read it again */
    trimmer_start(&p.trim, &p.uv, &p.wire.pool, &p.wire.bytes_pool);
    ct_listener_add_stats(&p.listener, &p.stats, "listener=\"main\"");
    if (o->admin) {
        const ct_stats_t *loops[1] = {&p.stats};
        if (admin_start(&p.admin, &p.ct, o, loops, 1) != 0) {
            raise(SIGTERM); /* what was made closes gracefully; the exit says it failed */
            failed = 1;
        } else {
            p.admin.data = &p;
            p.admin_up = 1;
            fprintf(stderr, "ctower proxy: admin (/metrics, /healthz) on %s\n", o->admin);
        }
    }
    ct_listener_address(&p.listener, &bound);
    ct_address_format(&bound, text, sizeof text);
    fprintf(stderr, "ctower proxy: %s on %s to ", o->multiplex ? "multiplex" : "pipeline", text);
    for (i = 0; i < o->nbackends; i++)
        fprintf(stderr, "%s%s", i ? ", " : "", o->backends[i]);
    if (o->backends_file) fprintf(stderr, "the backends in %s", o->backends_file);
    fprintf(stderr, " (%s codec, %g s timeout%s%s", codec_name(o), o->timeout_s,
            p.backends.stack.has_balance ? ", balanced"
            : p.backends.stack.has_shard ? ", sharded"
                                         : "",
            o->retry ? ", retrying" : "");
    if (o->max_in_flight) fprintf(stderr, ", %ld in flight at most", o->max_in_flight);
    if (o->rate_per_s) fprintf(stderr, ", %ld requests/s at most", o->rate_per_s);
    if (o->server_tls) fprintf(stderr, ", TLS to clients");
    if (o->client_tls) fprintf(stderr, ", TLS to backends");
    if (o->context) fprintf(stderr, ", a context block before each request");
    if (o->access_log) fprintf(stderr, ", access log in %s", o->access_log);
    fprintf(stderr, ")\n");
    uv_run(&p.uv, UV_RUN_DEFAULT);
    ct_stats_free(&p.stats);
    wire_destroy(&p.wire);
    return uv_loop_close(&p.uv) == 0 && !failed ? 0 : 1;
}
