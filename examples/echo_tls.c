/* echo_tls: a TLS echo server and two clients over TCP on loopback, in one
 * program and one loop.
 *
 * The server's certificate is made at start (ct_tls_self_signed), for the
 * name "echo.example". The first client trusts only the system's CAs, so
 * its requests fail: the connect is refused with CT_ETLSVERIFY, and a
 * reconnecting client reports it as CT_ECONNECT with that cause. The
 * second trusts the certificate and asks for that name: its requests are
 * echoed. Then both close, and the listener shuts down. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { REQUESTS = 1000, IN_FLIGHT = 16 };

typedef struct app {
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_length_codec_t codec;
    struct ssl_ctx_st *server_ctx, *trusting_ctx, *system_ctx;
    ct_tls_config_t server_tls, trusting_tls, system_tls;
    ct_service_fn_t echo;
    ct_listener_t listener;
    ct_reconnect_t trusting, untrusting;
    ct_op_t ops[IN_FLIGHT];
    ct_op_t refused_op;
    int refused_done, refused_status, refused_cause;
    ct_shutdown_t shutdown;
    int sent, answered, finishing, exit_code;
} app_t;

/* Both clients are done: the refused one's answer came, and every echo.
 * The listener, the clients, the echo function and the loop close in one
 * call. */
static void finish_if_done(app_t *app) {
    if (!app->refused_done || app->answered < REQUESTS || app->finishing) return;
    app->finishing = 1;
    ct_shutdown_init(&app->shutdown, &app->ct);
    ct_shutdown_add_listener(&app->shutdown, &app->listener);
    ct_shutdown_add_service(&app->shutdown, &app->untrusting.service);
    ct_shutdown_add_service(&app->shutdown, &app->trusting.service);
    ct_shutdown_add_service(&app->shutdown, &app->echo.service);
    ct_shutdown_start(&app->shutdown, 1000, NULL);
}

static int call(app_t *app, ct_reconnect_t *client, ct_op_t *op, const char *text) {
    size_t n = strlen(text);
    ct_buf_t *request = ct_buf_pool_get(&app->pool, n);
    if (!request) return UV_ENOMEM;
    memcpy(request->base, text, n);
    request->len = n;
    op->data = app;
    if (ct_service_call(&client->service, request, op) != 0) {
        ct_buf_pool_put(&app->pool, request);
        return CT_EINVAL;
    }
    return 0;
}

static void on_refused(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    app->refused_done = 1;
    app->refused_status = status;
    app->refused_cause = op->cause;
    if (status == 0) ct_buf_pool_put(&app->pool, response);
    printf("a client that does not trust the certificate: %s (%s)\n", ct_err_name(status),
           ct_strerror(op->cause));
    if (status != CT_ECONNECT || op->cause != CT_ETLSVERIFY) app->exit_code = 1;
    finish_if_done(app);
}

static void send_echo(app_t *app, ct_op_t *op) {
    char text[32];
    snprintf(text, sizeof text, "request %d", app->sent);
    if (call(app, &app->trusting, op, text) != 0) {
        app->exit_code = 1;
        return;
    }
    app->sent++;
}

static void on_echo(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    ct_buf_t *answer = response;
    char expected[32];
    int n = snprintf(expected, sizeof expected, "request %d", app->answered);
    if (status != 0) {
        fprintf(stderr, "request %d: %s (%s)\n", app->answered, ct_strerror(status),
                ct_strerror(op->cause));
        app->exit_code = 1;
        app->answered = REQUESTS; /* stop here */
        finish_if_done(app);
        return;
    }
    if (answer->len != (size_t)n || memcmp(answer->base, expected, (size_t)n) != 0)
        app->exit_code = 1;
    ct_buf_pool_put(&app->pool, answer);
    if (++app->answered == REQUESTS) {
        printf("%d requests echoed over TLS, in order\n", REQUESTS);
        finish_if_done(app);
    } else if (app->sent < REQUESTS) {
        send_echo(app, op);
    }
}

/* A reconnecting client of address over TLS with tls. */
static int client_init(app_t *app, ct_reconnect_t *client, const char *address,
                       const ct_tls_config_t *tls) {
    ct_stream_config_t wire = {0};
    ct_reconnect_config_t cfg = {0};
    int r;
    wire.codec = &app->codec.codec;
    wire.pool = &app->pool;
    wire.tls = tls;
    cfg.max_in_flight = IN_FLIGHT;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &app->pool;
    cfg.connect_timeout_ms = 5000;
    if ((r = ct_reconnect_init(client, &app->ct, address, &wire, &cfg)) == 0)
        client->service.data = app;
    return r;
}

static int start(app_t *app) {
    ct_listener_config_t lcfg;
    ct_address_t bound;
    char address[128];
    int i, r;
    memset(&lcfg, 0, sizeof lcfg);
    lcfg.stream.codec = &app->codec.codec;
    lcfg.stream.pool = &app->pool;
    lcfg.stream.tls = &app->server_tls;
    lcfg.server.free_msg = ct_buf_pool_free_msg;
    lcfg.server.free_ctx = &app->pool;
    r = ct_listener_init(&app->listener, &app->ct, "tcp://127.0.0.1:0", &app->echo.service, &lcfg);
    if (r != 0) return r;
    app->listener.data = app;
    ct_listener_address(&app->listener, &bound);
    ct_address_format(&bound, address, sizeof address);
    if ((r = client_init(app, &app->untrusting, address, &app->system_tls)) != 0 ||
        (r = client_init(app, &app->trusting, address, &app->trusting_tls)) != 0)
        return r;
    ct_op_init(&app->refused_op, on_refused);
    if ((r = call(app, &app->untrusting, &app->refused_op, "hello")) != 0) return r;
    for (i = 0; i < IN_FLIGHT; i++) {
        ct_op_init(&app->ops[i], on_echo);
        send_echo(app, &app->ops[i]);
    }
    return 0;
}

int main(void) {
    static app_t app; /* large: not on the stack */
    uv_loop_t uv;
    int r;

    signal(SIGPIPE, SIG_IGN); /* a peer's reset ends a connection, not the process */
    if (uv_loop_init(&uv) != 0 || ct_loop_init(&app.ct, &uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 64, 1024);
    ct_length_codec_init(&app.codec, NULL);
    /* The server's certificate, and a client context that trusts it. */
    r = ct_tls_self_signed(&app.server_ctx, &app.trusting_ctx, "echo.example");
    if (r == 0) r = ct_tls_client_context(&app.system_ctx, NULL);
    if (r != 0) return fprintf(stderr, "TLS contexts: %s\n", ct_strerror(r)), 1;
    app.server_tls.ctx = app.server_ctx;
    app.trusting_tls.ctx = app.trusting_ctx;
    app.trusting_tls.server_name = "echo.example"; /* we connect to 127.0.0.1 */
    app.system_tls.ctx = app.system_ctx;
    app.system_tls.server_name = "echo.example";

    ct_echo_service_init(&app.echo, &app.ct);
    app.echo.service.data = &app;
    if ((r = start(&app)) != 0) return fprintf(stderr, "start: %s\n", ct_strerror(r)), 1;

    uv_run(&uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    ct_tls_context_free(app.server_ctx);
    ct_tls_context_free(app.trusting_ctx);
    ct_tls_context_free(app.system_ctx);
    if (uv_loop_close(&uv) != 0) return fprintf(stderr, "loop still has handles open\n"), 1;
    if (app.answered != REQUESTS || app.refused_status != CT_ECONNECT) return 1;
    return app.exit_code;
}
