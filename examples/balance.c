/* balance: one client, three servers, and one of them going away.
 *
 * Three servers listen on loopback, each answering every request with its
 * own name. The client is a balancer (ct_balance_t) over one reconnecting
 * client per server, under a retry layer (ct_retry_t). It sends 600
 * requests, 16 at a time, and counts who answered. Halfway through, server
 * b shuts down: the next call that goes to b fails to connect, the balancer
 * leaves b out, the retry layer sends that request again, to a or c, and
 * they share the rest. Every request is answered, and one ct_shutdown_t
 * closes the rest. (examples/proxy.c builds such a client with ct_stack_t
 * in one description; this one puts the layers together by hand.) */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { SERVERS = 3, REQUESTS = 600, DEPTH = 16 };

typedef struct app {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_length_codec_t codec;
    ct_stream_config_t wire;
    ct_service_fn_t named[SERVERS]; /* server i answers with its name */
    ct_listener_t listeners[SERVERS];
    ct_reconnect_t clients[SERVERS];
    ct_balance_t balance;
    ct_retry_t retry;
    ct_op_t ops[DEPTH];
    int limit;              /* requests to send before the next step */
    ct_shutdown_t shutdown; /* at the end: a and c, their functions, the client */
    int sent, answered, failed, by_server[SERVERS], exit_code;
} app_t;

static const char names[SERVERS] = {'a', 'b', 'c'};

static int answer_with_name(void *ctx, void *request, void **response) {
    ct_buf_t *buf = request;
    buf->base[0] = *(const char *)ctx;
    buf->len = 1;
    *response = buf;
    return 0;
}

static void send_request(app_t *app, ct_op_t *op);

static void on_b_closed(ct_service_t *svc) {
    (void)svc;
}

/* b is gone: its function goes too, and the second half starts. */
static void on_b_stopped(ct_listener_t *listener) {
    app_t *app = listener->data;
    int i;
    ct_service_close(&app->named[1].service, on_b_closed);
    app->limit = REQUESTS;
    for (i = 0; i < DEPTH; i++)
        send_request(app, &app->ops[i]);
}

static void report(app_t *app, const char *when) {
    int i;
    printf("%s: %d answers (", when, app->answered);
    for (i = 0; i < SERVERS; i++)
        printf("%s%c %d", i ? ", " : "", names[i], app->by_server[i]);
    printf(")\n");
    for (i = 0; i < SERVERS; i++) /* b answers in the first half only */
        if ((app->by_server[i] == 0) != (i == 1 && app->limit == REQUESTS)) app->exit_code = 1;
    memset(app->by_server, 0, sizeof app->by_server);
}

static void report_b(app_t *app) {
    ct_balance_endpoint_stats_t b;
    ct_balance_endpoint_stats(&app->balance, 1, &b);
    printf("b: %llu calls, %llu failed; %s; %llu retries\n", (unsigned long long)b.calls,
           (unsigned long long)b.failures, b.left_out ? "left out" : "in use",
           (unsigned long long)ct_retry_counts(&app->retry).retries);
    if (b.failures == 0) app->exit_code = 1;
}

static void on_response(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    if (status != 0) {
        printf("a request failed: %s\n", ct_strerror(status));
        app->failed++;
    } else {
        ct_buf_t *buf = response;
        const char *at = memchr(names, buf->base[0], SERVERS);
        if (at) app->by_server[at - names]++;
        app->answered++;
        ct_buf_pool_put(&app->pool, buf);
    }
    if (app->answered + app->failed == REQUESTS / 2) {
        report(app, "first half, three servers");
        printf("server b shuts down\n");
        ct_listener_shutdown(&app->listeners[1], 1000, on_b_stopped);
    } else if (app->answered + app->failed == REQUESTS) {
        report(app, "second half, b gone");
        report_b(app);
        ct_shutdown_start(&app->shutdown, 1000, NULL); /* everything else, in one call */
    } else {
        send_request(app, op);
    }
}

static void send_request(app_t *app, ct_op_t *op) {
    ct_buf_t *request;
    if (app->sent == app->limit) return;
    request = ct_buf_pool_get(&app->pool, 8);
    if (!request) return;
    memcpy(request->base, "hello", 5);
    request->len = 5;
    if (ct_service_call(&app->retry.service, request, op) != 0) {
        ct_buf_pool_put(&app->pool, request);
        app->failed++;
        return;
    }
    app->sent++;
}

/* Server i on a free loopback port; its address goes in address. */
static int start_server(app_t *app, int i, char *address, size_t size) {
    ct_listener_config_t cfg;
    ct_address_t bound;
    int r;
    ct_service_fn_init(&app->named[i], &app->ct, answer_with_name, (void *)&names[i]);
    app->named[i].service.data = app;
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = app->wire;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &app->pool;
    r = ct_listener_init(&app->listeners[i], &app->ct, "tcp://127.0.0.1:0", &app->named[i].service,
                         &cfg);
    if (r != 0) return fprintf(stderr, "listen: %s\n", ct_strerror(r)), r;
    app->listeners[i].data = app;
    ct_listener_address(&app->listeners[i], &bound);
    return ct_address_format(&bound, address, size);
}

/* The client stack: a retry layer over a balancer over one reconnecting
 * client per server. */
static int start_client(app_t *app, char addresses[SERVERS][128]) {
    ct_service_t *endpoints[SERVERS];
    ct_reconnect_config_t rc;
    ct_balance_config_t bc;
    ct_retry_config_t qc;
    int i, r;
    memset(&rc, 0, sizeof rc);
    rc.free_msg = ct_buf_pool_free_msg;
    rc.free_ctx = &app->pool;
    for (i = 0; i < SERVERS; i++) {
        r = ct_reconnect_init(&app->clients[i], &app->ct, addresses[i], &app->wire, &rc);
        if (r != 0) return r;
        endpoints[i] = &app->clients[i].service;
    }
    memset(&bc, 0, sizeof bc);
    bc.endpoints = endpoints;
    bc.n_endpoints = SERVERS;
    bc.free_msg = ct_buf_pool_free_msg;
    bc.free_ctx = &app->pool;
    if ((r = ct_balance_init(&app->balance, &app->ct, &bc)) != 0) return r;
    memset(&qc, 0, sizeof qc);
    qc.copy = ct_buf_pool_copy_msg;
    qc.copy_ctx = &app->pool;
    qc.free_msg = ct_buf_pool_free_msg;
    qc.free_ctx = &app->pool;
    if ((r = ct_retry_init(&app->retry, &app->ct, &app->balance.service, &qc)) != 0) return r;
    app->retry.service.data = app;
    return 0;
}

int main(void) {
    static app_t app;
    static char addresses[SERVERS][128];
    int i, r;

    signal(SIGPIPE, SIG_IGN); /* see the README */
    if (uv_loop_init(&app.uv) != 0 || ct_loop_init(&app.ct, &app.uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 64, 256);
    ct_length_codec_init(&app.codec, NULL);
    app.wire.codec = &app.codec.codec;
    app.wire.pool = &app.pool;
    for (i = 0; i < SERVERS; i++)
        if (start_server(&app, i, addresses[i], sizeof addresses[i]) != 0) return 1;
    if ((r = start_client(&app, addresses)) != 0)
        return fprintf(stderr, "client: %s\n", ct_strerror(r)), 1;
    ct_shutdown_init(&app.shutdown, &app.ct);
    ct_shutdown_add_listener(&app.shutdown, &app.listeners[0]);
    ct_shutdown_add_listener(&app.shutdown, &app.listeners[2]);
    ct_shutdown_add_service(&app.shutdown, &app.retry.service); /* and all below it */
    ct_shutdown_add_service(&app.shutdown, &app.named[0].service);
    ct_shutdown_add_service(&app.shutdown, &app.named[2].service);
    app.limit = REQUESTS / 2;
    for (i = 0; i < DEPTH; i++) {
        ct_op_init(&app.ops[i], on_response);
        app.ops[i].data = &app;
        send_request(&app, &app.ops[i]);
    }
    uv_run(&app.uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&app.uv) != 0) return fprintf(stderr, "handles left open\n"), 1;
    if (app.answered != REQUESTS || app.failed != 0) return 1;
    return app.exit_code;
}
