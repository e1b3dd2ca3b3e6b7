/* redis_client: a Redis client in one page. A client stack (ct_stack_t: a
 * reconnecting client under a timeout) with the RESP codec sends a few
 * commands at once, pipelined on one connection, reads each reply with
 * ct_resp_read(), and closes with one call (ct_shutdown_t). It checks the
 * replies, so the tests run it against a real redis-server
 * (tests/interop/redis.sh).
 *
 *   redis_client ADDR      e.g. tcp://127.0.0.1:6379 or unix:///run/redis.sock
 */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Each command, and what its reply must print as. */
static const struct {
    const char *words[4];
    const char *reply;
} commands[] = {
    {{"DEL", "example:list", "example:n"}, NULL}, /* 0, 1 or 2: whatever was there */
    {{"SET", "example:greeting", "hello"}, "OK"},
    {{"GET", "example:greeting"}, "hello"},
    {{"GET", "example:missing"}, "(nil)"},
    {{"INCR", "example:n"}, "1"},
    {{"INCR", "example:n"}, "2"},
    {{"RPUSH", "example:list", "a", "b"}, "2"},
    {{"LRANGE", "example:list", "0", "-1"}, "[a, b]"},
    {{"HGET", "example:greeting", "x"}, "(error) WRONGTYPE"},
};
enum { N = sizeof commands / sizeof commands[0] };

typedef struct app {
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_resp_codec_t resp;
    ct_stack_t redis;
    ct_shutdown_t shutdown;
    ct_op_t ops[N];
    int answered, exit_code;
} app_t;

/* The reply's text, as the table above writes it: scalars as they are,
 * arrays as [a, b] (flat ones: enough here), errors by their first word. */
static void reply_text(const ct_buf_t *reply, char *out, size_t cap) {
    const uint8_t *p = (const uint8_t *)reply->base;
    size_t at = 0, used = 0;
    int64_t i;
    ct_resp_item_t it;
    out[0] = '\0';
    if (ct_resp_read(p, reply->len, &at, &it) != 0) return;
    if (it.null) {
        snprintf(out, cap, "(nil)");
    } else if (it.type == ':') {
        snprintf(out, cap, "%lld", (long long)it.n);
    } else if (it.type == '-') {
        size_t word = strcspn((const char *)it.str, " \r");
        snprintf(out, cap, "(error) %.*s", (int)word, (const char *)it.str);
    } else if (it.type == '*') {
        used = (size_t)snprintf(out, cap, "[");
        for (i = 0; i < it.n && used < cap; i++) {
            ct_resp_item_t e;
            if (ct_resp_read(p, reply->len, &at, &e) != 0) return;
            used += (size_t)snprintf(out + used, cap - used, "%s%.*s", i ? ", " : "", (int)e.len,
                                     e.str ? (const char *)e.str : "");
        }
        if (used < cap) snprintf(out + used, cap - used, "]");
    } else {
        snprintf(out, cap, "%.*s", (int)it.len, it.str ? (const char *)it.str : "");
    }
}

static void on_reply(ct_op_t *op, int status, void *response) {
    app_t *app = op->data;
    size_t i = (size_t)(op - app->ops);
    char text[128], command[64] = "";
    size_t w;
    for (w = 0; w < 4 && commands[i].words[w]; w++)
        snprintf(command + strlen(command), sizeof command - strlen(command), "%s%s", w ? " " : "",
                 commands[i].words[w]);
    if (status != 0) {
        fprintf(stderr, "command %zu: %s (%s)\n", i, ct_strerror(status),
                op->cause ? ct_strerror(op->cause) : "-");
        app->exit_code = 1;
    } else {
        reply_text(response, text, sizeof text);
        printf("%-36s -> %s\n", command, text);
        if (commands[i].reply && strcmp(text, commands[i].reply) != 0) {
            fprintf(stderr, "command %zu: expected %s\n", i, commands[i].reply);
            app->exit_code = 1;
        }
        ct_buf_pool_put(&app->pool, response);
    }
    if (++app->answered == N) ct_shutdown_start(&app->shutdown, 1000, NULL); /* all closes */
}

/* commands[i] as a RESP array of bulk strings, pipelined behind the others. */
static int send_command(app_t *app, size_t i) {
    const char *const *words = commands[i].words;
    size_t lens[4], size;
    int argc = 0, r;
    ct_buf_t *request;
    while (argc < 4 && words[argc]) {
        lens[argc] = strlen(words[argc]);
        argc++;
    }
    size = ct_resp_format_command(NULL, 0, argc, words, lens);
    request = ct_buf_pool_get(&app->pool, size);
    if (!request) return UV_ENOMEM;
    request->len = ct_resp_format_command((uint8_t *)request->base, size, argc, words, lens);
    ct_op_init(&app->ops[i], on_reply);
    app->ops[i].data = app;
    r = ct_service_call(app->redis.service, request, &app->ops[i]);
    if (r != 0) ct_buf_pool_put(&app->pool, request);
    return r;
}

int main(int argc, char **argv) {
    static app_t app;
    uv_loop_t uv;
    ct_stream_config_t wire = {0};
    ct_stack_config_t cfg = {0};
    size_t i;
    int r;
    if (argc != 2) return fprintf(stderr, "usage: redis_client ADDR\n"), 2;
    signal(SIGPIPE, SIG_IGN); /* see the README */
    if (uv_loop_init(&uv) != 0 || ct_loop_init(&app.ct, &uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 256, 64);
    ct_resp_codec_init(&app.resp, 0); /* replies up to 1 MiB */
    wire.codec = &app.resp.codec;
    wire.pool = &app.pool;
    cfg.endpoints = (const char *const *)&argv[1];
    cfg.n_endpoints = 1;
    cfg.stream = &wire;
    cfg.timeout_ms = 2000; /* no retries: INCR must not run twice */
    cfg.connect_timeout_ms = 2000;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &app.pool;
    r = ct_stack_init(&app.redis, &app.ct, &cfg);
    if (r != 0) return fprintf(stderr, "%s: %s\n", argv[1], ct_strerror(r)), 2;
    ct_shutdown_init(&app.shutdown, &app.ct);
    ct_shutdown_add_stack(&app.shutdown, &app.redis);
    /* All of them at once: they wait for the connection, then leave in order. */
    for (i = 0; i < N; i++)
        if ((r = send_command(&app, i)) != 0) return fprintf(stderr, "%s\n", ct_strerror(r)), 1;
    uv_run(&uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    if (uv_loop_close(&uv) != 0) return fprintf(stderr, "handles left open\n"), 1;
    return app.exit_code;
}
