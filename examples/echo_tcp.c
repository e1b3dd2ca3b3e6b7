/* echo_tcp: an echo server and a pipeline client over TCP on loopback, in one
 * program and one loop.
 *
 * It shows the network side of ctower: a listener serving a service on every
 * connection it accepts, a connector making a connected stream for a client,
 * requests pipelined on that connection, then a graceful end: the client
 * drains and closes, the listener stops accepting and drains its servers. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { REQUESTS = 1000, IN_FLIGHT = 16 };

typedef struct app {
    ct_loop_t ct;
    ct_buf_pool_t pool; /* every message comes from here and goes back here */
    ct_length_codec_t codec;
    ct_stream_config_t wire;
    ct_service_fn_t echo;
    ct_listener_t listener;
    ct_connector_t connector;
    ct_stream_t stream;
    ct_client_t client;
    ct_op_t ops[IN_FLIGHT];
    int sent, answered, exit_code;
} app_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_echo_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    ct_loop_close(&app->ct, on_loop_closed);
}

static void on_listener_closed(ct_listener_t *listener) {
    app_t *app = listener->data;
    ct_service_close(&app->echo.service, on_echo_closed);
}

static void on_client_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    /* The server side drains what is left, then closes (1 s at most). */
    ct_listener_shutdown(&app->listener, 1000, on_listener_closed);
}

static void on_client_drained(ct_service_t *svc, int status) {
    if (status != 0) fprintf(stderr, "client shutdown: %s\n", ct_strerror(status));
    ct_service_close(svc, on_client_closed);
}

/* Request i carries its number as text; the echo must carry it back. */
static void send_request(app_t *app, ct_op_t *op) {
    char text[32];
    int n = snprintf(text, sizeof text, "request %d", app->sent);
    ct_buf_t *request = ct_buf_pool_get(&app->pool, (size_t)n);
    if (!request) {
        app->exit_code = 1;
        return;
    }
    memcpy(request->base, text, (size_t)n);
    request->len = (size_t)n;
    op->data = app;
    if (ct_service_call(&app->client.service, request, op) != 0) {
        ct_buf_pool_put(&app->pool, request);
        app->exit_code = 1;
        return;
    }
    app->sent++;
}

static void on_response(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    ct_buf_t *answer = response;
    char expected[32];
    int n = snprintf(expected, sizeof expected, "request %d", app->answered);
    if (status != 0) {
        fprintf(stderr, "request %d failed: %s\n", app->answered, ct_strerror(status));
        app->exit_code = 1;
        return;
    }
    /* A pipeline answers in request order. */
    if (answer->len != (size_t)n || memcmp(answer->base, expected, (size_t)n) != 0) {
        fprintf(stderr, "answer %d is '%.*s'\n", app->answered, (int)answer->len, answer->base);
        app->exit_code = 1;
    }
    ct_buf_pool_put(&app->pool, answer);
    if (++app->answered == REQUESTS) {
        printf("%d requests echoed over TCP, in order\n", REQUESTS);
        ct_service_shutdown(&app->client.service, on_client_drained);
    } else if (app->sent < REQUESTS) {
        send_request(app, op); /* the op is reusable inside its own callback */
    }
}

static void on_connected(ct_stream_t *stream, int status) {
    app_t *app = CT_CONTAINER_OF(stream, app_t, stream);
    ct_client_config_t cfg = {0};
    int i;
    if (status != 0) {
        fprintf(stderr, "connect: %s\n", ct_strerror(status));
        app->exit_code = 1;
        ct_listener_shutdown(&app->listener, 0, on_listener_closed);
        return;
    }
    cfg.max_in_flight = IN_FLIGHT;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &app->pool;
    if (ct_pipeline_client_init(&app->client, &app->ct, &stream->transport, &cfg) != 0) {
        app->exit_code = 1;
        ct_transport_close(&stream->transport, NULL);
        ct_listener_shutdown(&app->listener, 0, on_listener_closed);
        return;
    }
    app->client.service.data = app;
    for (i = 0; i < IN_FLIGHT; i++) {
        ct_op_init(&app->ops[i], on_response);
        send_request(app, &app->ops[i]);
    }
}

int main(void) {
    static app_t app; /* large: not on the stack */
    uv_loop_t uv;
    ct_listener_config_t lcfg;
    ct_address_t bound;
    char address[128];
    int r;

    /* A peer that resets a connection while a write is pending must end that
     * connection, not the process (see the README). */
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&uv) != 0 || ct_loop_init(&app.ct, &uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 64, 1024);
    ct_length_codec_init(&app.codec, NULL); /* 4-byte big-endian length */
    app.wire.codec = &app.codec.codec;
    app.wire.pool = &app.pool;

    ct_echo_service_init(&app.echo, &app.ct);
    app.echo.service.data = &app;
    memset(&lcfg, 0, sizeof lcfg);
    lcfg.stream = app.wire;
    lcfg.server.free_msg = ct_buf_pool_free_msg;
    lcfg.server.free_ctx = &app.pool;
    /* Port 0: the system picks a free one, which the listener then reports. */
    r = ct_listener_init(&app.listener, &app.ct, "tcp://127.0.0.1:0", &app.echo.service, &lcfg);
    if (r != 0) return fprintf(stderr, "listen: %s\n", ct_strerror(r)), 1;
    app.listener.data = &app;
    ct_listener_address(&app.listener, &bound);
    ct_address_format(&bound, address, sizeof address);

    r = ct_connector_init(&app.connector, &app.ct, address, &app.wire);
    if (r == 0) r = ct_connector_connect(&app.connector, &app.stream, on_connected);
    if (r != 0) return fprintf(stderr, "connect to %s: %s\n", address, ct_strerror(r)), 1;

    uv_run(&uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&uv) != 0) {
        fprintf(stderr, "loop still has handles open\n");
        return 1;
    }
    if (app.answered != REQUESTS) {
        fprintf(stderr, "%d of %d requests answered\n", app.answered, REQUESTS);
        return 1;
    }
    return app.exit_code;
}
