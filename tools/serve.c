/* `ctower serve ADDR`: an echo server until SIGINT or SIGTERM, then a
 * graceful shutdown (5 s deadline). */
#include "serve.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct server {
    ct_loop_t ct;
    wire_t wire;
    ct_service_fn_t echo;
    ct_listener_t listener;
    uv_signal_t sigint, sigterm;
} server_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_echo_closed(ct_service_t *svc) {
    server_t *s = svc->data;
    ct_loop_close(&s->ct, on_loop_closed);
}

static void on_listener_closed(ct_listener_t *l) {
    server_t *s = l->data;
    ct_service_close(&s->echo.service, on_echo_closed);
}

static void on_signal(uv_signal_t *sig, int signum) {
    server_t *s = sig->data;
    fprintf(stderr, "ctower serve: %s, shutting down\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    ct_listener_shutdown(&s->listener, 5000, on_listener_closed);
}

int serve_main(const options_t *o) {
    static server_t s;
    uv_loop_t uv;
    ct_listener_config_t cfg;
    ct_address_t bound;
    char text[160];
    int r;
    if (!o->address) {
        fprintf(stderr,
                "usage: ctower serve ADDR [--mode pipeline|multiplex] [--codec length|line]\n");
        return 2;
    }
    if (o->multiplex && o->line_codec) {
        fprintf(stderr, "ctower serve: multiplex needs the length codec (tags are binary)\n");
        return 2;
    }
    uv_loop_init(&uv);
    ct_loop_init(&s.ct, &uv);
    wire_init(&s.wire, o);
    ct_echo_service_init(&s.echo, &s.ct);
    s.echo.service.data = &s;
    memset(&cfg, 0, sizeof cfg);
    cfg.multiplex = o->multiplex;
    cfg.stream = s.wire.stream;
    cfg.server.max_in_flight = 128; /* per connection; beyond it the server stops reading */
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &s.wire.pool;
    r = ct_listener_init(&s.listener, &s.ct, o->address, &s.echo.service, &cfg);
    if (r != 0) {
        fprintf(stderr, "ctower serve: cannot listen on %s: %s\n", o->address, ct_strerror(r));
        return 1;
    }
    s.listener.data = &s;
    ct_listener_address(&s.listener, &bound);
    ct_address_format(&bound, text, sizeof text);
    fprintf(stderr, "ctower serve: %s echo on %s (%s codec)\n",
            o->multiplex ? "multiplex" : "pipeline", text, o->line_codec ? "line" : "length");
    uv_signal_init(&uv, &s.sigint);
    uv_signal_init(&uv, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_run(&uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&s.wire.pool);
    return uv_loop_close(&uv) == 0 ? 0 : 1;
}
