/* reconnect: a client that outlives its server's restart.
 *
 * An echo server listens on loopback; a reconnecting client (ct_reconnect_t)
 * sends it a request every 20 ms. After a few answers the server goes away
 * for 300 ms: the requests of that time fail at once with CT_ECONNECT (the
 * client pauses between connects instead of hammering the port), and once
 * the server is back on the same port the client connects again by itself
 * and the answers resume. Every request completes exactly once. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { ANSWERS_BEFORE = 5, ANSWERS_AFTER = 5, MAX_REQUESTS = 500 };

typedef struct app {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_length_codec_t codec;
    ct_stream_config_t wire;
    ct_service_fn_t echo;
    ct_listener_t listener;
    char address[128];
    ct_reconnect_t client;
    ct_shutdown_t shutdown;
    uv_timer_t tick, restart;
    ct_op_t op;
    int sent, answered_before, failed, answered_after, exit_code;
    int listening, finishing;
} app_t;

static int listen_on(app_t *app, const char *address);

/* The end, in one call: the listener (if it is up), the client, the echo
 * function and the loop. */
static void finish(app_t *app) {
    if (app->finishing) return;
    app->finishing = 1;
    uv_timer_stop(&app->tick);
    uv_close((uv_handle_t *)&app->tick, NULL);
    uv_close((uv_handle_t *)&app->restart, NULL);
    ct_shutdown_init(&app->shutdown, &app->ct);
    if (app->listening) ct_shutdown_add_listener(&app->shutdown, &app->listener);
    ct_shutdown_add_service(&app->shutdown, &app->client.service);
    ct_shutdown_add_service(&app->shutdown, &app->echo.service);
    ct_shutdown_start(&app->shutdown, 1000, NULL);
}

static void on_restart(uv_timer_t *timer) {
    app_t *app = timer->data;
    if (listen_on(app, app->address) != 0) {
        app->exit_code = 1;
        finish(app);
        return;
    }
    printf("server is back on %s\n", app->address);
}

static void on_server_stopped(ct_listener_t *listener) {
    app_t *app = listener->data;
    app->listening = 0;
    if (!app->finishing) uv_timer_start(&app->restart, on_restart, 300, 0);
}

static void on_response(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    if (status != 0) { /* the first one says why; the summary counts them */
        if (app->failed++ == 0)
            printf("request %d failed: %s (%s), and so on while it is down\n", app->sent,
                   ct_strerror(status), op->cause ? ct_strerror(op->cause) : "-");
        return;
    }
    ct_buf_pool_put(&app->pool, response);
    if (app->failed == 0) {
        if (++app->answered_before == ANSWERS_BEFORE) {
            printf("%d answers; the server stops\n", ANSWERS_BEFORE);
            ct_listener_shutdown(&app->listener, 0, on_server_stopped);
        }
    } else if (++app->answered_after == ANSWERS_AFTER) {
        ct_reconnect_counts_t counts = ct_reconnect_counts(&app->client);
        printf("%d requests failed; %d answers after the restart, over connection %llu "
               "(%llu connects failed)\n",
               app->failed, ANSWERS_AFTER, (unsigned long long)counts.connects,
               (unsigned long long)counts.connect_failures);
        if (counts.connects != 2) app->exit_code = 1;
        finish(app);
    }
}

/* One request at a time, so that the log reads in order. */
static void on_tick(uv_timer_t *timer) {
    app_t *app = timer->data;
    ct_buf_t *request;
    if (ct_op_is_pending(&app->op)) return;
    if (app->sent == MAX_REQUESTS) {
        fprintf(stderr, "the client never got going again\n");
        app->exit_code = 1;
        finish(app);
        return;
    }
    request = ct_buf_pool_get(&app->pool, 5);
    if (!request) return;
    memcpy(request->base, "hello", 5);
    request->len = 5;
    if (ct_service_call(&app->client.service, request, &app->op) != 0) {
        ct_buf_pool_put(&app->pool, request);
        return;
    }
    app->sent++;
}

static int listen_on(app_t *app, const char *address) {
    ct_listener_config_t cfg;
    int r;
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = app->wire;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &app->pool;
    r = ct_listener_init(&app->listener, &app->ct, address, &app->echo.service, &cfg);
    if (r != 0) return fprintf(stderr, "listen on %s: %s\n", address, ct_strerror(r)), r;
    app->listener.data = app;
    app->listening = 1;
    return 0;
}

int main(void) {
    static app_t app;
    ct_reconnect_config_t cfg;
    ct_address_t bound;
    int r;

    signal(SIGPIPE, SIG_IGN); /* see the README */
    if (uv_loop_init(&app.uv) != 0 || ct_loop_init(&app.ct, &app.uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 64, 64);
    ct_length_codec_init(&app.codec, NULL);
    app.wire.codec = &app.codec.codec;
    app.wire.pool = &app.pool;
    ct_echo_service_init(&app.echo, &app.ct);
    app.echo.service.data = &app;
    if (listen_on(&app, "tcp://127.0.0.1:0") != 0) return 1;
    ct_listener_address(&app.listener, &bound); /* the port the system chose */
    ct_address_format(&bound, app.address, sizeof app.address);

    memset(&cfg, 0, sizeof cfg);
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &app.pool;
    cfg.backoff_min_ms = 50; /* then 100, 200 ms between connects while it is down */
    cfg.backoff_max_ms = 200;
    r = ct_reconnect_init(&app.client, &app.ct, app.address, &app.wire, &cfg);
    if (r != 0) return fprintf(stderr, "client: %s\n", ct_strerror(r)), 1;
    app.client.service.data = &app;
    ct_op_init(&app.op, on_response);
    app.op.data = &app;

    uv_timer_init(&app.uv, &app.tick);
    uv_timer_init(&app.uv, &app.restart);
    app.tick.data = app.restart.data = &app;
    uv_timer_start(&app.tick, on_tick, 20, 20);
    uv_run(&app.uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&app.uv) != 0) return fprintf(stderr, "handles left open\n"), 1;
    if (app.answered_after != ANSWERS_AFTER || app.failed == 0) {
        fprintf(stderr, "answers %d before, %d after; %d failed\n", app.answered_before,
                app.answered_after, app.failed);
        return 1;
    }
    return app.exit_code;
}
