/* kv: a key-value server and a layered client, in one program and one loop.
 *
 * The server is a plain function over a small table: "SET key value"
 * answers "OK", "GET key" the value or "NOT_FOUND". The client is a stack
 * built from one description (ct_stack_t): a reconnecting client, a
 * timeout on each attempt, retries, and a queue on top, with one bound for
 * all of them. It makes 10,000 SETs at once, without driving readiness
 * itself (the stack's queue issues them as there is room), then 10,000
 * GETs, and checks every answer. One call (ct_shutdown_t) then closes the
 * listener, the server's function, the stack and the loop. */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { KEYS = 10000, SLOTS = 16384, MAX_LEN = 32 };

typedef struct app {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_length_codec_t codec;
    ct_stream_config_t wire;
    ct_service_fn_t kv;
    ct_listener_t listener;
    ct_stack_t client;
    ct_shutdown_t shutdown;
    ct_op_t ops[KEYS];
    char keys[SLOTS][MAX_LEN], values[SLOTS][MAX_LEN]; /* the server's table */
    int answered, wrong, failed, phase;
} app_t;

/* ---- the server: a function from a request to a response ------------------------ */

static size_t slot_of(app_t *app, const char *key) {
    size_t h = 5381, i;
    for (i = 0; key[i]; i++)
        h = h * 33 + (unsigned char)key[i];
    for (i = h % SLOTS; app->keys[i][0] && strcmp(app->keys[i], key) != 0; i = (i + 1) % SLOTS) {
    }
    return i; /* (the table has room: SLOTS > KEYS) */
}

static int handle(void *ctx, void *request, void **response) {
    app_t *app = ctx;
    ct_buf_t *req = request;
    char text[2 * MAX_LEN + 8], key[MAX_LEN], value[MAX_LEN];
    const char *answer = "ERR";
    size_t slot;
    snprintf(text, sizeof text, "%.*s", (int)req->len, req->base);
    if (sscanf(text, "SET %31s %31s", key, value) == 2) {
        slot = slot_of(app, key);
        snprintf(app->keys[slot], MAX_LEN, "%s", key);
        snprintf(app->values[slot], MAX_LEN, "%s", value);
        answer = "OK";
    } else if (sscanf(text, "GET %31s", key) == 1) {
        slot = slot_of(app, key);
        answer = app->keys[slot][0] ? app->values[slot] : "NOT_FOUND";
    }
    /* the request's buffer carries the answer back */
    req->len = strlen(answer);
    memcpy(req->base, answer, req->len);
    *response = req;
    return 0;
}

/* ---- the client: 10,000 calls at once through the stack ---------------------------- */

static void on_done(ct_shutdown_t *shutdown, int status) {
    (void)shutdown;
    printf("shut down: %s\n", status ? ct_strerror(status) : "everything closed");
}

static void send_all(app_t *app);

static void on_answer(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    int i = (int)(op - app->ops);
    char want[MAX_LEN];
    ct_buf_t *res = response;
    if (status != 0) {
        if (app->failed++ == 0) printf("call %d failed: %s\n", i, ct_strerror(status));
    } else {
        snprintf(want, sizeof want, app->phase == 0 ? "OK" : "value-%d", i);
        if (res->len != strlen(want) || memcmp(res->base, want, res->len) != 0) app->wrong++;
        ct_buf_pool_put(&app->pool, res);
    }
    if (++app->answered < KEYS) return;
    printf("%s: %d answered, %d wrong, %d failed\n", app->phase == 0 ? "SET" : "GET",
           app->answered - app->failed, app->wrong, app->failed);
    if (app->phase++ == 0 && !app->failed) {
        send_all(app);
        return;
    }
    ct_shutdown_start(&app->shutdown, 1000, on_done); /* the work is done */
}

static void send_all(app_t *app) {
    int i;
    app->answered = 0;
    for (i = 0; i < KEYS; i++) {
        ct_buf_t *req = ct_buf_pool_get(&app->pool, MAX_LEN * 2 + 8);
        req->len = (size_t)(app->phase == 0 ? sprintf(req->base, "SET key-%d value-%d", i, i)
                                            : sprintf(req->base, "GET key-%d", i));
        ct_op_init(&app->ops[i], on_answer);
        app->ops[i].data = app;
        if (ct_service_call(app->client.service, req, &app->ops[i]) != 0) {
            ct_buf_pool_put(&app->pool, req); /* (not taken: it is still ours) */
            app->failed++;
            app->answered++;
        }
    }
}

int main(void) {
    static app_t app;
    static const ct_retry_config_t retry = {.copy = ct_buf_pool_copy_msg, .copy_ctx = &app.pool};
    ct_listener_config_t lcfg = {0};
    ct_stack_config_t scfg = {0};
    ct_address_t bound;
    char address[64];
    const char *endpoints[1] = {address};
    int r;

    signal(SIGPIPE, SIG_IGN); /* see the README */
    if (uv_loop_init(&app.uv) != 0 || ct_loop_init(&app.ct, &app.uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, MAX_LEN * 2 + 8, 1024);
    ct_length_codec_init(&app.codec, NULL);
    app.wire.codec = &app.codec.codec;
    app.wire.pool = &app.pool;

    ct_service_fn_init(&app.kv, &app.ct, handle, &app);
    lcfg.stream = app.wire;
    lcfg.server.free_msg = ct_buf_pool_free_msg;
    lcfg.server.free_ctx = &app.pool;
    r = ct_listener_init(&app.listener, &app.ct, "tcp://127.0.0.1:0", &app.kv.service, &lcfg);
    if (r != 0) return fprintf(stderr, "listen: %s\n", ct_strerror(r)), 1;
    ct_listener_address(&app.listener, &bound);
    ct_address_format(&bound, address, sizeof address);

    scfg.endpoints = endpoints;
    scfg.n_endpoints = 1;
    scfg.stream = &app.wire;
    scfg.max_in_flight = 256; /* every layer's bound */
    scfg.max_queued = KEYS;   /* the rest wait their turn */
    scfg.timeout_ms = 1000;   /* each attempt */
    scfg.retry = &retry;      /* up to 3 attempts */
    scfg.free_msg = ct_buf_pool_free_msg;
    scfg.free_ctx = &app.pool;
    if ((r = ct_stack_init(&app.client, &app.ct, &scfg)) != 0)
        return fprintf(stderr, "client: %s\n", ct_strerror(r)), 1;

    ct_shutdown_init(&app.shutdown, &app.ct);
    ct_shutdown_add_listener(&app.shutdown, &app.listener);
    ct_shutdown_add_stack(&app.shutdown, &app.client);
    ct_shutdown_add_service(&app.shutdown, &app.kv.service);

    printf("key-value server on %s; 10,000 SETs, then 10,000 GETs, at once\n", address);
    send_all(&app);
    uv_run(&app.uv, UV_RUN_DEFAULT); /* until the shutdown has closed everything */
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&app.uv) != 0) return fprintf(stderr, "handles left open\n"), 1;
    return app.phase == 2 && !app.wrong && !app.failed ? 0 : 1;
}
