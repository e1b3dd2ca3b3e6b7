/* http_hello: an HTTP/1.1 server with one handler, until SIGINT or SIGTERM.
 *
 *   http_hello [ADDR]     ADDR defaults to tcp://127.0.0.1:8080
 *
 * GET /hello answers "Hello, World!", POST /echo sends the body back,
 * anything else is 404: each answer is one call to ct_http_respond(),
 * which sets the length and Connection: close from the request (and sends
 * no body to a HEAD). Try it with curl or wrk; tests/tools/http_hello.sh
 * does. A signal drains the connections and closes everything in one call
 * (ct_shutdown_t). */
#include <ctower/ctower.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct app {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_http_codec_t codec;
    ct_service_fn_t handler;
    ct_listener_t listener;
    ct_shutdown_t shutdown;
    uv_signal_t sigint, sigterm;
} app_t;

static int is(ct_http_str_t s, const char *text) {
    return s.len == strlen(text) && memcmp(s.p, text, s.len) == 0;
}

/* The handler: a request in, a response out. */
static int handle(void *ctx, void *request, void **response) {
    app_t *app = ctx;
    ct_buf_t *req = request;
    ct_http_message_t m;
    int r;
    if (ct_http_parse_request((uint8_t *)req->base, req->len, &m) != 0)
        r = ct_http_respond(&app->pool, NULL, 400, NULL, "bad request\n", 12, response);
    else if ((is(m.method, "GET") || is(m.method, "HEAD")) && is(m.target, "/hello"))
        r = ct_http_respond(&app->pool, &m, 200, "Content-Type: text/plain\r\n", "Hello, World!",
                            13, response);
    else if (is(m.method, "POST") && is(m.target, "/echo"))
        r = ct_http_respond(&app->pool, &m, 200, NULL, m.body.p, m.body.len, response);
    else
        r = ct_http_respond(&app->pool, &m, 404, NULL, "not found\n", 10, response);
    ct_buf_pool_put(&app->pool, req); /* the view into it is not needed any more */
    return r;
}

static void on_shut_down(ct_shutdown_t *shutdown, int status) {
    (void)shutdown;
    fprintf(stderr, "http_hello: %s\n", status ? ct_strerror(status) : "stopped");
}

static void on_signal(uv_signal_t *handle, int signum) {
    app_t *app = handle->data;
    fprintf(stderr, "http_hello: %s, draining\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    ct_shutdown_start(&app->shutdown, 5000, on_shut_down);
}

int main(int argc, char **argv) {
    static app_t app;
    const char *address = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
    ct_listener_config_t cfg = {0};
    ct_address_t bound;
    char name[128];
    int r;

    signal(SIGPIPE, SIG_IGN); /* see the README */
    if (uv_loop_init(&app.uv) != 0 || ct_loop_init(&app.ct, &app.uv) != 0) return 1;
    ct_buf_pool_init(&app.pool, 512, 1024);
    ct_http_codec_init_server(&app.codec, 0);
    ct_service_fn_init(&app.handler, &app.ct, handle, &app);
    cfg.stream.codec = &app.codec.codec;
    cfg.stream.pool = &app.pool;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &app.pool;
    r = ct_listener_init(&app.listener, &app.ct, address, &app.handler.service, &cfg);
    if (r != 0) return fprintf(stderr, "http_hello: %s: %s\n", address, ct_strerror(r)), 1;
    ct_listener_address(&app.listener, &bound);
    ct_address_format(&bound, name, sizeof name);
    printf("http_hello: listening on %s\n", name);
    fflush(stdout);

    ct_shutdown_init(&app.shutdown, &app.ct);
    ct_shutdown_add_listener(&app.shutdown, &app.listener);
    ct_shutdown_add_service(&app.shutdown, &app.handler.service);
    uv_signal_init(&app.uv, &app.sigint);
    uv_signal_init(&app.uv, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);

    uv_run(&app.uv, UV_RUN_DEFAULT);
    ct_buf_pool_destroy(&app.pool);
    return uv_loop_close(&app.uv) == 0 ? 0 : 1;
}
