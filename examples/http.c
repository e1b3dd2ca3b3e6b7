/* http: an HTTP/1.1 server and a pipelined HTTP/1.1 client over TCP on
 * loopback, in one program and one loop.
 *
 * The server is a plain function (ct_service_fn_t) that reads each request
 * as a view (ct_http_parse_request) and answers it with one call
 * (ct_http_respond): GET /hello?NAME greets NAME, POST /echo sends
 * the body back, anything else is 404. The client keeps 8 requests in flight
 * on one connection, a HEAD among them, and checks every answer: HTTP/1.1
 * answers in order, and the codec knows that the answer to a HEAD has no
 * body although it says how long the body would be. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { REQUESTS = 1000, IN_FLIGHT = 8, KINDS = 4 };

typedef struct call {
    ct_op_t op;
    int number; /* which request this op carries */
} call_t;

typedef struct app {
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_http_codec_t server_codec, client_codec;
    ct_service_fn_t handler;
    ct_listener_t listener;
    ct_connector_t connector;
    ct_stream_t stream;
    ct_client_t client;
    call_t calls[IN_FLIGHT];
    int sent, answered, exit_code, closing;
} app_t;

static int is(ct_http_str_t s, const char *text) {
    return s.len == strlen(text) && memcmp(s.p, text, s.len) == 0;
}

/* The server: one response for one request, both in buffers of the pool. */
static int handle(void *ctx, void *request, void **response) {
    ct_buf_pool_t *pool = ctx;
    ct_buf_t *req = request;
    ct_http_message_t m;
    char body[128];
    size_t body_len = 0;
    int status = 404, r = ct_http_parse_request((uint8_t *)req->base, req->len, &m);
    if (r == 0 && (is(m.method, "GET") || is(m.method, "HEAD")) && m.target.len > 7 &&
        memcmp(m.target.p, "/hello?", 7) == 0) {
        status = 200;
        body_len = (size_t)snprintf(body, sizeof body, "hello, %.*s", (int)m.target.len - 7,
                                    m.target.p + 7);
    } else if (r == 0 && is(m.method, "POST") && is(m.target, "/echo") &&
               m.body.len < sizeof body) {
        status = 200;
        memcpy(body, m.body.p, m.body.len);
        body_len = m.body.len;
    }
    /* sized, formatted, Connection: close if the request ends its
     * connection; a HEAD's answer says the length of the body a GET would
     * get and has none: the client's codec knows not to wait for one */
    r = ct_http_respond(pool, r == 0 ? &m : NULL, status, NULL, body, body_len, response);
    ct_buf_pool_put(pool, req);
    return r;
}

/* Request n: GET /hello?n, HEAD /hello?n, POST /echo with "n", GET /nowhere. */
static void send_request(app_t *app, call_t *call) {
    char target[32], body[16];
    const char *method = "GET";
    size_t size = 0, body_len = 0;
    int n = app->sent;
    ct_buf_t *request;
    snprintf(target, sizeof target, "/hello?%d", n);
    if (n % KINDS == 1) method = "HEAD";
    if (n % KINDS == 2) {
        method = "POST";
        strcpy(target, "/echo");
        body_len = (size_t)snprintf(body, sizeof body, "%d", n);
    }
    if (n % KINDS == 3) strcpy(target, "/nowhere");
    ct_http_format_request(NULL, 0, method, target, "Host: example\r\n", body, body_len, &size);
    request = ct_buf_pool_get(&app->pool, size);
    if (!request || ct_http_format_request((uint8_t *)request->base, size, method, target,
                                           "Host: example\r\n", body, body_len, &request->len)) {
        if (request) ct_buf_pool_put(&app->pool, request);
        app->exit_code = 1;
        return;
    }
    call->number = n;
    call->op.data = app;
    if (ct_service_call(&app->client.service, request, &call->op) != 0) {
        ct_buf_pool_put(&app->pool, request);
        app->exit_code = 1;
        return;
    }
    app->sent++;
}

/* What the answer to request n must be. */
static int answer_is_right(int n, const ct_http_message_t *m) {
    char want[32];
    const ct_http_str_t *length;
    switch (n % KINDS) {
    case 0:
        snprintf(want, sizeof want, "hello, %d", n);
        return m->status == 200 && is(m->body, want);
    case 1:
        snprintf(want, sizeof want, "%zu", strlen("hello, ") + (size_t)snprintf(NULL, 0, "%d", n));
        length = ct_http_field(m, "content-length");
        return m->status == 200 && m->body.len == 0 && length && is(*length, want);
    case 2:
        snprintf(want, sizeof want, "%d", n);
        return m->status == 200 && is(m->body, want);
    default:
        return m->status == 404 && m->body.len == 0;
    }
}

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_handler_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    ct_loop_close(&app->ct, on_loop_closed);
}

static void on_listener_closed(ct_listener_t *listener) {
    app_t *app = listener->data;
    ct_service_close(&app->handler.service, on_handler_closed);
}

static void on_client_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    ct_listener_shutdown(&app->listener, 1000, on_listener_closed);
}

static void on_client_drained(ct_service_t *svc, int status) {
    if (status != 0) fprintf(stderr, "client shutdown: %s\n", ct_strerror(status));
    ct_service_close(svc, on_client_closed);
}

/* The first thing wrong ends the run: the client closes (failing what is
 * in flight), then the listener. */
static void give_up(app_t *app) {
    app->exit_code = 1;
    if (app->closing) return;
    app->closing = 1;
    ct_service_close(&app->client.service, on_client_closed);
}

static void on_response(ct_op_t *op, int status, void *response) {
    call_t *call = CT_CONTAINER_OF(op, call_t, op);
    app_t *app = op->data;
    ct_buf_t *answer = response;
    ct_http_message_t m;
    int right;
    if (status != 0) {
        if (!app->closing)
            fprintf(stderr, "request %d failed: %s\n", call->number, ct_strerror(status));
        give_up(app);
        return;
    }
    right = ct_http_parse_response((uint8_t *)answer->base, answer->len, call->number % KINDS == 1,
                                   &m) == 0 &&
            answer_is_right(call->number, &m);
    if (!right)
        fprintf(stderr, "answer %d is '%.*s'\n", call->number, (int)answer->len, answer->base);
    ct_buf_pool_put(&app->pool, answer);
    if (!right) {
        give_up(app);
        return;
    }
    if (++app->answered == REQUESTS) {
        printf("%d HTTP/1.1 requests answered over one pipelined connection\n", REQUESTS);
        ct_service_shutdown(&app->client.service, on_client_drained);
    } else if (app->sent < REQUESTS) {
        send_request(app, call);
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
        ct_op_init(&app->calls[i].op, on_response);
        send_request(app, &app->calls[i]);
    }
}

int main(void) {
    static app_t app;
    uv_loop_t uv;
    ct_listener_config_t lcfg;
    ct_stream_config_t client_wire;
    ct_address_t bound;
    char address[128];
    int r;

    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&uv) != 0 || ct_loop_init(&app.ct, &uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 64, 1024);
    /* one codec for each side: the server's reads requests, the client's
     * responses */
    ct_http_codec_init_server(&app.server_codec, 0);
    ct_http_codec_init_client(&app.client_codec, 0);

    ct_service_fn_init(&app.handler, &app.ct, handle, &app.pool);
    app.handler.service.data = &app;
    memset(&lcfg, 0, sizeof lcfg);
    lcfg.stream.codec = &app.server_codec.codec;
    lcfg.stream.pool = &app.pool;
    lcfg.server.free_msg = ct_buf_pool_free_msg;
    lcfg.server.free_ctx = &app.pool;
    r = ct_listener_init(&app.listener, &app.ct, "tcp://127.0.0.1:0", &app.handler.service, &lcfg);
    if (r != 0) return fprintf(stderr, "listen: %s\n", ct_strerror(r)), 1;
    app.listener.data = &app;
    ct_listener_address(&app.listener, &bound);
    ct_address_format(&bound, address, sizeof address);

    memset(&client_wire, 0, sizeof client_wire);
    client_wire.codec = &app.client_codec.codec;
    client_wire.pool = &app.pool;
    r = ct_connector_init(&app.connector, &app.ct, address, &client_wire);
    if (r == 0) r = ct_connector_connect(&app.connector, &app.stream, on_connected);
    if (r != 0) {
        fprintf(stderr, "connect: %s\n", ct_strerror(r));
        return 1;
    }

    uv_run(&uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&uv) != 0) {
        fprintf(stderr, "handles left open\n");
        return 1;
    }
    if (app.answered != REQUESTS) app.exit_code = 1;
    return app.exit_code;
}
