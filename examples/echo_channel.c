/* echo_channel: a pipeline server running the echo service on one end of an
 * in-memory channel pair, a pipeline client on the other, one request.
 *
 * It shows the whole life of a ctower program: set up the loop, wire a
 * transport to a client and a server, call, shut down gracefully, close
 * everything and check that the loop closes clean. */
#include <ctower/ctower.h>

#include <stdio.h>
#include <string.h>

typedef struct app {
    ct_loop_t ct;
    ct_channel_t client_end, server_end;
    ct_service_fn_t echo;
    ct_client_t client;
    ct_server_t server;
    ct_op_t op;
    int exit_code;
} app_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_echo_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    ct_loop_close(&app->ct, on_loop_closed);
}

/* The server ends when the client closes its side; then the service can go. */
static void on_server_closed(ct_server_t *srv, int status) {
    app_t *app = srv->data;
    if (status != 0) fprintf(stderr, "server ended: %s\n", ct_strerror(status));
    ct_service_close(&app->echo.service, on_echo_closed);
}

static void on_client_drained(ct_service_t *svc, int status) {
    if (status != 0) fprintf(stderr, "shutdown: %s\n", ct_strerror(status));
    ct_service_close(svc, NULL);
}

static void on_response(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    ct_buf_t *buf = response;
    if (status != 0) {
        fprintf(stderr, "request failed: %s\n", ct_strerror(status));
        app->exit_code = 1;
    } else {
        printf("%.*s\n", (int)buf->len, buf->base);
        if (buf->len != strlen("Hello, ctower") || memcmp(buf->base, "Hello, ctower", buf->len))
            app->exit_code = 1;
        ct_buf_free(buf);
    }
    ct_service_shutdown(&app->client.service, on_client_drained);
}

int main(void) {
    uv_loop_t uv;
    app_t app;
    ct_client_config_t client_cfg = {0};
    ct_server_config_t server_cfg = {0};
    ct_buf_t *request;
    int r;

    memset(&app, 0, sizeof app);
    app.exit_code = 1;
    if (uv_loop_init(&uv) != 0 || ct_loop_init(&app.ct, &uv) != 0) return 1;

    r = ct_channel_pair_init(&app.ct, &app.client_end, &app.server_end, 16, ct_buf_free_msg, NULL);
    if (r != 0) return fprintf(stderr, "channel: %s\n", ct_strerror(r)), 1;

    ct_echo_service_init(&app.echo, &app.ct);
    app.echo.service.data = &app;
    server_cfg.free_msg = ct_buf_free_msg;
    app.server.data = &app;
    r = ct_pipeline_server_init(&app.server, &app.ct, &app.server_end.transport, &app.echo.service,
                                &server_cfg, on_server_closed);
    if (r != 0) return fprintf(stderr, "server: %s\n", ct_strerror(r)), 1;

    client_cfg.free_msg = ct_buf_free_msg;
    r = ct_pipeline_client_init(&app.client, &app.ct, &app.client_end.transport, &client_cfg);
    if (r != 0) return fprintf(stderr, "client: %s\n", ct_strerror(r)), 1;

    request = ct_buf_from("Hello, ctower", strlen("Hello, ctower"));
    ct_op_init(&app.op, on_response);
    app.op.data = &app;
    app.exit_code = 0;
    r = ct_service_call(&app.client.service, request, &app.op);
    if (r != 0) return fprintf(stderr, "call: %s\n", ct_strerror(r)), 1;

    uv_run(&uv, UV_RUN_DEFAULT);
    if (uv_loop_close(&uv) != 0) {
        fprintf(stderr, "loop still has handles open\n");
        return 1;
    }
    return app.exit_code;
}
