/* proxy: a load-balancing proxy is a listener whose service is a client
 * stack.
 *
 * Two echo servers are the backends. The proxy's listener hands every
 * request it reads to a ct_stack_t over both (a balancer, retries on the
 * other backend, a timeout per attempt), and sends back what it answers:
 * that is all `ctower proxy` is, with options. A client stack calls the
 * proxy 2,000 times at once; then the first backend goes away, and the
 * next 2,000 calls are all answered by the second, the retries hiding the
 * loss. One ct_shutdown_t closes everything. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { CALLS = 2000 };

typedef struct app {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_length_codec_t codec;
    ct_stream_config_t wire;
    ct_service_fn_t echo[2];
    ct_listener_t backend[2], front;
    char backend_addr[2][64], front_addr[64];
    ct_stack_t to_backends, client;
    ct_shutdown_t shutdown;
    ct_op_t ops[CALLS];
    int answered, failed, round;
} app_t;

static int listen_on(app_t *app, ct_listener_t *l, ct_service_t *svc, char *name) {
    ct_listener_config_t cfg = {0};
    ct_address_t a;
    int r;
    cfg.stream = app->wire;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &app->pool;
    if ((r = ct_listener_init(l, &app->ct, "tcp://127.0.0.1:0", svc, &cfg)) != 0) return r;
    ct_listener_address(l, &a);
    ct_address_format(&a, name, 64);
    return 0;
}

static void call_all(app_t *app);

static void on_backend_gone(ct_listener_t *l) {
    app_t *app = l->data;
    printf("backend %s stopped\n", app->backend_addr[0]);
    call_all(app);
}

static void on_answer(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    if (status == 0)
        ct_buf_pool_put(&app->pool, response);
    else if (app->failed++ == 0)
        printf("a call failed: %s\n", ct_strerror(status));
    if (++app->answered < CALLS) return;
    printf("round %d: %d answered, %d failed\n", app->round, CALLS - app->failed, app->failed);
    if (app->round++ == 0 && !app->failed) {
        app->backend[0].data = app; /* the first backend goes: calls go on */
        ct_listener_shutdown(&app->backend[0], 0, on_backend_gone);
        return;
    }
    ct_shutdown_start(&app->shutdown, 1000, NULL);
}

static void call_all(app_t *app) {
    int i;
    app->answered = 0;
    for (i = 0; i < CALLS; i++) {
        ct_buf_t *req = ct_buf_pool_get(&app->pool, 16);
        req->len = (size_t)sprintf(req->base, "hello %d", i);
        ct_op_init(&app->ops[i], on_answer);
        app->ops[i].data = app;
        if (ct_service_call(app->client.service, req, &app->ops[i]) != 0) return;
    }
}

int main(void) {
    static app_t app;
    static const ct_retry_config_t retry = {.copy = ct_buf_pool_copy_msg, .copy_ctx = &app.pool};
    const char *backends[2] = {app.backend_addr[0], app.backend_addr[1]};
    const char *front[1] = {app.front_addr};
    ct_stack_config_t cfg = {0};
    int i;

    signal(SIGPIPE, SIG_IGN); /* see the README */
    if (uv_loop_init(&app.uv) != 0 || ct_loop_init(&app.ct, &app.uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 64, 1024);
    ct_length_codec_init(&app.codec, NULL);
    app.wire.codec = &app.codec.codec;
    app.wire.pool = &app.pool;
    for (i = 0; i < 2; i++) {
        ct_echo_service_init(&app.echo[i], &app.ct);
        if (listen_on(&app, &app.backend[i], &app.echo[i].service, app.backend_addr[i]) != 0)
            return 1;
    }

    /* the proxy: a stack over the backends, behind a listener */
    cfg.endpoints = backends;
    cfg.n_endpoints = 2;
    cfg.stream = &app.wire;
    cfg.timeout_ms = 1000;
    cfg.retry = &retry;
    cfg.shed = 1; /* the listener's servers wait for readiness: no queue */
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &app.pool;
    if (ct_stack_init(&app.to_backends, &app.ct, &cfg) != 0) return 1;
    if (listen_on(&app, &app.front, app.to_backends.service, app.front_addr) != 0) return 1;
    printf("proxy on %s, to %s and %s\n", app.front_addr, backends[0], backends[1]);

    /* its client */
    cfg.endpoints = front;
    cfg.n_endpoints = 1;
    cfg.retry = NULL;
    cfg.shed = 0;
    cfg.max_queued = CALLS;
    if (ct_stack_init(&app.client, &app.ct, &cfg) != 0) return 1;

    ct_shutdown_init(&app.shutdown, &app.ct);
    ct_shutdown_add_listener(&app.shutdown, &app.front);
    ct_shutdown_add_listener(&app.shutdown, &app.backend[1]);
    ct_shutdown_add_stack(&app.shutdown, &app.client);
    ct_shutdown_add_stack(&app.shutdown, &app.to_backends);
    ct_shutdown_add_service(&app.shutdown, &app.echo[0].service);
    ct_shutdown_add_service(&app.shutdown, &app.echo[1].service);

    call_all(&app);
    uv_run(&app.uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&app.uv) != 0) return fprintf(stderr, "handles left open\n"), 1;
    return app.round == 2 && app.failed == 0 ? 0 : 1;
}
