/* `ctower serve ADDR`: an echo server until SIGINT or SIGTERM, then a
 * graceful shutdown (5 s deadline). With --threads N, N loops in N threads
 * each run a listener on the same address (SO_REUSEPORT), and the kernel
 * spreads the connections over them. */
#include "serve.h"
#include "admin.h"
#include "context_block.h"
#include "http_echo.h"
#include "trim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct server {
    uv_loop_t uv;
    ct_loop_t ct;
    wire_t wire;
    ct_service_fn_t echo;
    ct_listener_t listener;
    uv_async_t stop; /* the one handle another thread may touch */
    uv_thread_t thread;
    ct_budget_t budget; /* this loop's part of --memory-budget */
    trimmer_t trim;
    context_reader_t contexts; /* --context */
    ct_stats_t stats;          /* this loop's, for --admin */
    admin_t *admin;            /* server 0's, with --admin */
} server_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_echo_closed(ct_service_t *svc) {
    server_t *s = svc->data;
    ct_loop_close(&s->ct, on_loop_closed);
}

static void on_admin_closed(admin_t *a) {
    server_t *s = a->data;
    ct_service_close(&s->echo.service, on_echo_closed);
}

static void on_listener_closed(ct_listener_t *l) {
    server_t *s = l->data;
    if (s->admin) { /* the last to go: it says "draining" until then */
        admin_close(s->admin, on_admin_closed);
        return;
    }
    ct_service_close(&s->echo.service, on_echo_closed);
}

static void on_stop(uv_async_t *stop) {
    server_t *s = stop->data;
    uv_close((uv_handle_t *)stop, NULL);
    trimmer_stop(&s->trim);
    ct_listener_shutdown(&s->listener, 5000, on_listener_closed);
}

typedef struct signals {
    uv_signal_t sigint, sigterm;
    server_t *servers;
    int n;
} signals_t;

static void on_signal(uv_signal_t *sig, int signum) {
    signals_t *g = sig->data;
    int i;
    if (g->servers[0].admin) admin_draining(g->servers[0].admin);
    fprintf(stderr, "ctower serve: %s, shutting down\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&g->sigint, NULL);
    uv_close((uv_handle_t *)&g->sigterm, NULL);
    for (i = 0; i < g->n; i++)
        uv_async_send(&g->servers[i].stop);
}

/* One server's loop, listener and service; on error, what was made is closed
 * (the loop is left to run dry and close). */
static int server_init(server_t *s, const options_t *o, const char *address, int reuse_port) {
    ct_listener_config_t cfg;
    int r;
    uv_loop_init(&s->uv);
    ct_loop_init(&s->ct, &s->uv);
    wire_init(&s->wire, o, (size_t)o->size);
    if (o->http)
        http_echo_init(&s->echo, &s->ct, &s->wire.pool, o->http2);
    else
        ct_echo_service_init(&s->echo, &s->ct);
    s->echo.service.data = s;
    memset(&cfg, 0, sizeof cfg);
    cfg.multiplex = o->multiplex;
    cfg.stream = s->wire.listen_stream;
    cfg.stream.tls = o->server_tls;
    cfg.http2 = o->http2 ? &s->wire.h2_server : NULL;
    cfg.server.max_in_flight = 128; /* per connection; beyond it the server stops reading */
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &s->wire.pool;
    if (o->http) cfg.server.on_error = o->http2 ? http2_error_reply : http_error_reply;
    if (o->context) { /* the echo has no use for it, but the server reads it */
        s->contexts.room = o->multiplex ? 4 : 0;
        s->contexts.refused = 0;
        cfg.server.read_context = block_read_context;
        cfg.server.context_ctx = &s->contexts;
        cfg.server.on_error = o->multiplex ? block_error_reply_tagged : block_error_reply;
    }
    cfg.reuse_port = reuse_port;
    options_listener(o, &cfg, &s->budget);
    r = ct_listener_init(&s->listener, &s->ct, address, &s->echo.service, &cfg);
    if (r != 0) {
        ct_service_close(&s->echo.service, on_echo_closed);
        return r;
    }
    s->listener.data = s;
    ct_stats_init(&s->stats);
    /* the same labels on every loop: the exposition sums them */
    ct_listener_add_stats(&s->listener, &s->stats, "listener=\"main\"");
    uv_async_init(&s->uv, &s->stop, on_stop);
    s->stop.data = s;
    trimmer_start(&s->trim, &s->uv, &s->wire.pool, &s->wire.bytes_pool);
    return 0;
}

/* Runs s's loop to its end; 0 if it closed cleanly. */
static int server_run(server_t *s) {
    uv_run(&s->uv, UV_RUN_DEFAULT);
    ct_stats_free(&s->stats);
    wire_destroy(&s->wire);
    return uv_loop_close(&s->uv) == 0 ? 0 : 1;
}

static void server_thread(void *arg) {
    server_t *s = arg;
    if (server_run(s) != 0) fprintf(stderr, "ctower serve: a loop closed with handles open\n");
}

static int check_options(const options_t *o) {
    ct_address_t a;
    if (!o->address) {
        fprintf(stderr, "usage: ctower serve ADDR [--mode pipeline|multiplex] [--codec "
                        "length|line|crlf|resp|http|http2]"
                        " [--threads N]\n");
        return 2;
    }
    if (o->threads > 1 && ct_address_parse(o->address, &a) == 0 && a.kind == CT_ADDRESS_UNIX) {
        fprintf(stderr, "ctower serve: --threads needs a TCP address\n");
        return 2;
    }
    return 0;
}

/* Servers 1..n-1 on the address server 0 bound (its port, if it was 0). */
static void start_others(server_t *servers, int n, const options_t *o, const char *bound) {
    int i, r;
    for (i = 1; i < n; i++) {
        if ((r = server_init(&servers[i], o, bound, 1)) != 0) {
            fprintf(stderr, "ctower serve: cannot listen on %s again: %s\n", bound, ct_strerror(r));
            exit(1); /* the servers already started run in other threads */
        }
        uv_thread_create(&servers[i].thread, server_thread, &servers[i]);
    }
}

/* --admin on server 0's loop, for every loop's stats. */
static int start_admin(server_t *servers, int n, const options_t *o) {
    admin_t *admin = calloc(1, sizeof *admin); /* freed by serve_main */
    const ct_stats_t *loops[64];
    int i;
    for (i = 0; i < n && i < 64; i++)
        loops[i] = &servers[i].stats;
    if (!admin || admin_start(admin, &servers[0].ct, o, loops, (size_t)i) != 0) return 1;
    admin->data = &servers[0];
    servers[0].admin = admin;
    fprintf(stderr, "ctower serve: admin (/metrics, /healthz) on %s\n", o->admin);
    return 0;
}

int serve_main(const options_t *o) {
    int n = o->threads, i, r;
    server_t *servers;
    signals_t g;
    ct_address_t bound;
    char text[160];
    if ((r = check_options(o)) != 0) return r;
    servers = calloc((size_t)n, sizeof *servers);
    if (!servers) return fprintf(stderr, "ctower serve: out of memory\n"), 1;
    if ((r = server_init(&servers[0], o, o->address, n > 1)) != 0) {
        fprintf(stderr, "ctower serve: cannot listen on %s: %s\n", o->address, ct_strerror(r));
        server_run(&servers[0]);
        free(servers);
        return 1;
    }
    /* Before the line that says it is ready: a script that signals as soon
     * as it reads that line must get the graceful shutdown. */
    g.servers = servers;
    g.n = n;
    uv_signal_init(&servers[0].uv, &g.sigint);
    uv_signal_init(&servers[0].uv, &g.sigterm);
    g.sigint.data = g.sigterm.data = &g;
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    ct_listener_address(&servers[0].listener, &bound);
    ct_address_format(&bound, text, sizeof text);
    start_others(servers, n, o, text);
    if (o->admin && start_admin(servers, n, o) != 0)
        exit(1); /* the servers already started run in other threads */
    fprintf(stderr, "ctower serve: %s echo on %s (%s codec%s, %d thread%s)\n",
            o->multiplex ? "multiplex" : "pipeline", text, codec_name(o),
            o->server_tls ? ", TLS" : "", n, n > 1 ? "s" : "");
    r = server_run(&servers[0]);
    for (i = 1; i < n; i++)
        uv_thread_join(&servers[i].thread);
    free(servers[0].admin);
    free(servers);
    return r;
}
