/* echo_multiplex: a multiplexed echo over an in-memory channel pair. The
 * service answers each request after its own delay, so responses come back
 * out of order, and each still reaches the request it answers: the tag that
 * the client's slab tag store wrote into the request comes back in the
 * response.
 *
 * The delays are a fixed shuffle of distinct values, so the output is the
 * same every run. */
#include <ctower/ctower.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 8 };

/* The message format: a tag field for the tag store, and a payload. */
typedef struct msg {
    uint32_t tag;
    int id;
} msg_t;

static uint32_t get_tag(const void *m) {
    return ((const msg_t *)m)->tag;
}
static void set_tag(void *m, uint32_t tag) {
    ((msg_t *)m)->tag = tag;
}
static void free_msg(void *m, void *ctx) {
    (void)ctx;
    free(m);
}

/* ---- a service that echoes after a delay ---------------------------------- */

typedef struct delayed {
    uv_timer_t timer;
    ct_op_t *op;
    msg_t *request;
} delayed_t;

typedef struct delay_service {
    ct_service_t service;
    uint64_t delays_ms[N];
    size_t calls;
    size_t pending;
} delay_service_t;

static void on_delayed_closed(uv_handle_t *handle) {
    free(handle->data);
}

static void on_delay(uv_timer_t *timer) {
    delayed_t *d = timer->data;
    delay_service_t *svc = (delay_service_t *)d->op->svc;
    svc->pending--;
    ct_op_complete(d->op, 0, 0, d->request);
    uv_close((uv_handle_t *)timer, on_delayed_closed);
}

static int delay_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    (void)svc;
    (void)waker;
    return CT_READY;
}

static int delay_call(ct_service_t *svc, void *request, ct_op_t *op) {
    delay_service_t *s = (delay_service_t *)svc;
    delayed_t *d = malloc(sizeof *d);
    if (!d) return UV_ENOMEM;
    d->op = op;
    d->request = request;
    uv_timer_init(svc->loop->uv, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, s->delays_ms[s->calls++ % N], 0);
    s->pending++;
    return 0;
}

/* The example never cancels; a real service would stop the timer here. */
static void delay_cancel(ct_service_t *svc, ct_op_t *op) {
    (void)svc;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
}

static void delay_close(ct_service_t *svc) {
    ct_service_closed(svc);
}

static const ct_service_vtable_t delay_vtable = {
    delay_poll_ready, delay_call, delay_cancel, NULL, NULL, delay_close, NULL,
};

/* ---- the program ------------------------------------------------------------ */

typedef struct request {
    ct_op_t op;
    int id;
} request_t;

typedef struct app {
    ct_loop_t ct;
    ct_channel_t client_end, server_end;
    delay_service_t service;
    ct_slab_tags_t tags;
    ct_client_t client;
    ct_server_t server;
    request_t requests[N];
    int answered;
    int out_of_order;
    int last_id;
    int failed;
} app_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_service_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    ct_loop_close(&app->ct, on_loop_closed);
}

static void on_server_closed(ct_server_t *srv, int status) {
    app_t *app = srv->data;
    if (status != 0) fprintf(stderr, "server ended: %s\n", ct_strerror(status)), app->failed = 1;
    ct_service_close(&app->service.service, on_service_closed);
}

static void on_client_closed(ct_service_t *svc) {
    app_t *app = svc->data;
    ct_slab_tags_free(&app->tags);
}

static void on_drained(ct_service_t *svc, int status) {
    if (status != 0) fprintf(stderr, "shutdown: %s\n", ct_strerror(status));
    ct_service_close(svc, on_client_closed);
}

static void on_response(ct_op_t *op, int status, void *response) {
    request_t *req = CT_CONTAINER_OF(op, request_t, op);
    app_t *app = op->data;
    msg_t *m = response;
    if (status != 0) {
        fprintf(stderr, "request %d failed: %s\n", req->id, ct_strerror(status));
        app->failed = 1;
        return;
    }
    if (m->id != req->id) app->failed = 1;
    if (m->id < app->last_id) app->out_of_order++;
    app->last_id = m->id;
    printf("response %d: request %d answered (tag 0x%08x)\n", ++app->answered, m->id,
           (unsigned)m->tag);
    free(m);
    if (app->answered == N) ct_service_shutdown(&app->client.service, on_drained);
}

int main(void) {
    static const uint64_t delays[N] = {40, 10, 70, 20, 80, 30, 60, 50};
    uv_loop_t uv;
    app_t app;
    ct_client_config_t client_cfg = {0};
    ct_server_config_t server_cfg = {0};
    int i, r;

    memset(&app, 0, sizeof app);
    if (uv_loop_init(&uv) != 0 || ct_loop_init(&app.ct, &uv) != 0) return 1;
    r = ct_channel_pair_init(&app.ct, &app.client_end, &app.server_end, 16, free_msg, NULL);
    if (r == 0) r = ct_slab_tags_init(&app.tags, N, get_tag, set_tag);
    if (r != 0) return fprintf(stderr, "setup: %s\n", ct_strerror(r)), 1;

    ct_service_init(&app.service.service, &app.ct, &delay_vtable);
    memcpy(app.service.delays_ms, delays, sizeof delays);
    app.service.service.data = &app;

    server_cfg.free_msg = free_msg;
    app.server.data = &app;
    r = ct_multiplex_server_init(&app.server, &app.ct, &app.server_end.transport,
                                 &app.service.service, &server_cfg, on_server_closed);
    if (r != 0) return fprintf(stderr, "server: %s\n", ct_strerror(r)), 1;

    client_cfg.free_msg = free_msg;
    r = ct_multiplex_client_init(&app.client, &app.ct, &app.client_end.transport, &app.tags.store,
                                 &client_cfg);
    if (r != 0) return fprintf(stderr, "client: %s\n", ct_strerror(r)), 1;
    app.client.service.data = &app;

    for (i = 0; i < N; i++) {
        msg_t *m = malloc(sizeof *m);
        m->id = i;
        m->tag = 0;
        app.requests[i].id = i;
        ct_op_init(&app.requests[i].op, on_response);
        app.requests[i].op.data = &app;
        r = ct_service_call(&app.client.service, m, &app.requests[i].op);
        if (r != 0) return fprintf(stderr, "call: %s\n", ct_strerror(r)), 1;
    }
    printf("sent %d requests; the service answers each after its own delay\n", N);

    uv_run(&uv, UV_RUN_DEFAULT);
    if (uv_loop_close(&uv) != 0) return fprintf(stderr, "loop still has handles open\n"), 1;
    if (app.failed || app.answered != N) return 1;
    printf("all %d responses matched their requests; %d arrived after a later request's\n", N,
           app.out_of_order);
    return app.out_of_order > 0 ? 0 : 1;
}
