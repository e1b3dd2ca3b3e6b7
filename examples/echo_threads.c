/* echo_threads: one address served from two threads, each with a loop of its
 * own, and a client in a third.
 *
 * It shows how ctower uses more cores: a loop per thread, nothing shared
 * between them, and a listener per loop on the same TCP address with
 * reuse_port set, so that the kernel spreads the connections over the
 * threads. The only cross-thread call is uv_async_send(), which asks each
 * server thread to shut down. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { THREADS = 2, CONNS = 32, REQUESTS = 200, IN_FLIGHT = 8 };

/* ---- a server thread ----------------------------------------------------- */

typedef struct server {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool; /* per loop: pools are not shared between threads */
    ct_length_codec_t codec;
    ct_service_fn_t echo;
    ct_listener_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    size_t accepted; /* read by main once the thread has ended */
} server_t;

static void on_server_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_echo_closed(ct_service_t *svc) {
    server_t *s = svc->data;
    ct_loop_close(&s->ct, on_server_loop_closed);
}

static void on_listener_closed(ct_listener_t *l) {
    server_t *s = l->data;
    ct_listener_counts(l, &s->accepted, NULL);
    ct_service_close(&s->echo.service, on_echo_closed);
}

static void on_stop(uv_async_t *stop) {
    server_t *s = stop->data;
    uv_close((uv_handle_t *)stop, NULL);
    ct_listener_shutdown(&s->listener, 1000, on_listener_closed);
}

/* Binds address (port 0: a free one) on s's own loop; runs nothing yet. */
static int server_init(server_t *s, const char *address) {
    ct_listener_config_t cfg;
    uv_loop_init(&s->uv);
    ct_loop_init(&s->ct, &s->uv);
    ct_buf_pool_init(&s->pool, 64, 1024);
    ct_length_codec_init(&s->codec, NULL);
    ct_echo_service_init(&s->echo, &s->ct);
    s->echo.service.data = s;
    memset(&cfg, 0, sizeof cfg);
    cfg.stream.codec = &s->codec.codec;
    cfg.stream.pool = &s->pool;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &s->pool;
    cfg.reuse_port = 1; /* every listener on the address sets it */
    if (ct_listener_init(&s->listener, &s->ct, address, &s->echo.service, &cfg) != 0) return -1;
    s->listener.data = s;
    uv_async_init(&s->uv, &s->stop, on_stop);
    s->stop.data = s;
    return 0;
}

static void server_thread(void *arg) {
    server_t *s = arg;
    uv_run(&s->uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&s->pool);
    uv_loop_close(&s->uv);
}

/* ---- the client, on the main thread --------------------------------------- */

typedef struct conn {
    ct_stream_t stream;
    ct_client_t client;
    ct_op_t ops[IN_FLIGHT];
    int sent, answered;
} conn_t;

typedef struct client {
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_length_codec_t codec;
    ct_stream_config_t wire;
    ct_connector_t connector;
    conn_t conns[CONNS];
    int finished, errors;
} client_t;

static client_t C; /* large: not on the stack */

static void on_client_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_conn_closed(ct_service_t *svc) {
    (void)svc;
    if (++C.finished == CONNS) ct_loop_close(&C.ct, on_client_loop_closed);
}

static void send_next(conn_t *c, ct_op_t *op) {
    ct_buf_t *b = ct_buf_pool_get(&C.pool, 4);
    if (!b) {
        C.errors++;
        return;
    }
    memcpy(b->base, &c->sent, 4); /* the request's number comes back in its echo */
    b->len = 4;
    op->data = c;
    if (ct_service_call(&c->client.service, b, op) != 0) {
        ct_buf_pool_put(&C.pool, b);
        C.errors++;
        return;
    }
    c->sent++;
}

static void on_answer(ct_op_t *op, int status, void *response) {
    conn_t *c = op->data;
    ct_buf_t *b = response;
    int number;
    if (status != 0) {
        fprintf(stderr, "request failed: %s\n", ct_strerror(status));
        C.errors++;
        return;
    }
    memcpy(&number, b->base, 4);
    if (number != c->answered) C.errors++; /* a pipeline answers in order */
    ct_buf_pool_put(&C.pool, b);
    if (++c->answered == REQUESTS)
        ct_service_close(&c->client.service, on_conn_closed);
    else if (c->sent < REQUESTS)
        send_next(c, op);
}

static void on_connected(ct_stream_t *stream, int status) {
    conn_t *c = CT_CONTAINER_OF(stream, conn_t, stream);
    ct_client_config_t cfg = {0};
    int i;
    cfg.max_in_flight = IN_FLIGHT;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &C.pool;
    if (status != 0 || ct_pipeline_client_init(&c->client, &C.ct, &stream->transport, &cfg) != 0) {
        fprintf(stderr, "connect: %s\n", ct_strerror(status));
        if (status == 0) ct_transport_close(&stream->transport, NULL);
        C.errors++;
        if (++C.finished == CONNS) ct_loop_close(&C.ct, on_client_loop_closed);
        return;
    }
    for (i = 0; i < IN_FLIGHT; i++) {
        ct_op_init(&c->ops[i], on_answer);
        send_next(c, &c->ops[i]);
    }
}

int main(void) {
    static server_t servers[THREADS];
    uv_loop_t uv;
    ct_address_t bound;
    char address[128];
    size_t total = 0;
    int i, idle = 0, answered = 0;

    signal(SIGPIPE, SIG_IGN); /* see the README */
    /* The first server takes a free port; the others bind the same one. */
    if (server_init(&servers[0], "tcp://127.0.0.1:0") != 0) return 1;
    ct_listener_address(&servers[0].listener, &bound);
    ct_address_format(&bound, address, sizeof address);
    for (i = 1; i < THREADS; i++)
        if (server_init(&servers[i], address) != 0) return 1;
    for (i = 0; i < THREADS; i++)
        uv_thread_create(&servers[i].thread, server_thread, &servers[i]);

    uv_loop_init(&uv);
    ct_loop_init(&C.ct, &uv);
    ct_buf_pool_init(&C.pool, 64, 1024);
    ct_length_codec_init(&C.codec, NULL);
    C.wire.codec = &C.codec.codec;
    C.wire.pool = &C.pool;
    if (ct_connector_init(&C.connector, &C.ct, address, &C.wire) != 0) return 1;
    C.connector.timeout_ms = 5000;
    for (i = 0; i < CONNS; i++)
        if (ct_connector_connect(&C.connector, &C.conns[i].stream, on_connected) != 0) return 1;
    uv_run(&uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&C.pool);
    uv_loop_close(&uv);

    for (i = 0; i < THREADS; i++)
        uv_async_send(&servers[i].stop);
    for (i = 0; i < THREADS; i++) {
        uv_thread_join(&servers[i].thread);
        printf("server thread %d accepted %zu connections\n", i, servers[i].accepted);
        total += servers[i].accepted;
        idle += servers[i].accepted == 0;
    }
    for (i = 0; i < CONNS; i++)
        answered += C.conns[i].answered;
    if (C.errors != 0 || answered != CONNS * REQUESTS) {
        fprintf(stderr, "%d of %d requests answered, %d errors\n", answered, CONNS * REQUESTS,
                C.errors);
        return 1;
    }
    printf("%d connections x %d requests echoed in order\n", CONNS, REQUESTS);
    /* All 32 on one thread would be a 1 in 2^31 chance of the kernel's hash,
     * and a sign that reuse_port did nothing. */
    return total == CONNS && idle == 0 ? 0 : 1;
}
