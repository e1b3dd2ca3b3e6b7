/* The admin listener of serve and proxy (admin.h). */
#include "admin.h"
#include "http_echo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The codec's one bound is for both directions: responses (the exposition)
 * may be large, a request's head is bounded apart (a body, which nothing
 * here takes, is held to the admin's own budget). */
enum { ADMIN_MAX_HEAD = 8 << 10, ADMIN_MAX_MESSAGE = 4 << 20, ADMIN_MAX_CONNECTIONS = 16 };

/* A response with body[0..len) and content_type, or NULL without memory. */
static ct_buf_t *response(admin_t *a, int status, const char *content_type, const char *body,
                          size_t len) {
    char fields[96];
    size_t size = 0;
    ct_buf_t *b;
    snprintf(fields, sizeof fields, "Content-Type: %s\r\n", content_type);
    ct_http_format_response(NULL, 0, status, fields, body, len, &size);
    if (!(b = ct_buf_pool_get(&a->pool, size))) return NULL;
    if (ct_http_format_response((uint8_t *)b->base, size, status, fields, body, len, &b->len)) {
        ct_buf_pool_put(&a->pool, b);
        return NULL;
    }
    return b;
}

static ct_buf_t *metrics(admin_t *a) {
    size_t need = ct_stats_write(a->loops, a->nloops, NULL, 0), len;
    char *text = need ? malloc(need + 1) : NULL;
    ct_buf_t *b;
    if (!text) return NULL;
    len = ct_stats_write(a->loops, a->nloops, text, need + 1);
    b = len <= need ? response(a, 200, "text/plain; version=0.0.4; charset=utf-8", text, len)
                    : NULL;
    free(text);
    return b;
}

static int is(const ct_http_str_t *s, const char *text) {
    return s->len == strlen(text) && memcmp(s->p, text, s->len) == 0;
}

static int answer(void *ctx, void *request, void **out) {
    admin_t *a = ctx;
    ct_buf_t *req = request, *res;
    ct_http_message_t m;
    int r = ct_http_parse_request((uint8_t *)req->base, req->len, &m);
    if (r != 0)
        res = response(a, 400, "text/plain", "bad request\n", 12);
    else if (!is(&m.method, "GET") && !is(&m.method, "HEAD"))
        res = response(a, 405, "text/plain", "GET only\n", 9);
    else if (is(&m.target, "/metrics"))
        res = metrics(a);
    else if (is(&m.target, "/healthz"))
        res = a->draining ? response(a, 503, "text/plain", "draining\n", 9)
                          : response(a, 200, "text/plain", "serving\n", 8);
    else
        res = response(a, 404, "text/plain", "not found: /metrics, /healthz\n", 30);
    ct_buf_pool_put(&a->pool, req);
    if (!res) return UV_ENOMEM; /* on_error's answer, then the end of the connection */
    *out = res;
    return 0;
}

int admin_start(admin_t *a, ct_loop_t *loop, const options_t *o, const ct_stats_t *const *loops,
                size_t n) {
    ct_listener_config_t cfg;
    int r;
    if (n > 64) return CT_EINVAL;
    memset(a->loops, 0, sizeof a->loops);
    memcpy(a->loops, loops, n * sizeof *loops);
    a->nloops = n + 1;
    a->loops[n] = &a->stats;
    a->draining = 0;
    ct_stats_init(&a->stats);
    ct_buf_pool_init(&a->pool, 4096, 16);
    ct_http_codec_init_server(&a->codec, ADMIN_MAX_MESSAGE);
    ct_http_codec_limits(&a->codec, ADMIN_MAX_HEAD, 0);
    ct_service_fn_init(&a->service, loop, answer, a);
    memset(&cfg, 0, sizeof cfg);
    cfg.stream.codec = &a->codec.codec;
    cfg.stream.pool = &a->pool;
    cfg.server.max_in_flight = 4;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &a->pool;
    cfg.server.on_error = http_error_reply;
    options_listener(o, &cfg, &a->budget);
    a->budget.limit = 1 << 20; /* its own, small */
    cfg.max_connections = ADMIN_MAX_CONNECTIONS;
    r = ct_listener_init(&a->listener, loop, o->admin, &a->service.service, &cfg);
    if (r == 0) r = ct_listener_add_stats(&a->listener, &a->stats, "listener=\"admin\"");
    if (r != 0) {
        fprintf(stderr, "ctower: --admin %s: %s\n", o->admin, ct_strerror(r));
        return r;
    }
    a->listener.data = a;
    return 0;
}

void admin_draining(admin_t *a) {
    a->draining = 1;
}

static void on_service_closed(ct_service_t *svc) {
    admin_t *a = CT_CONTAINER_OF(svc, admin_t, service.service);
    ct_stats_free(&a->stats);
    ct_buf_pool_destroy(&a->pool);
    a->closed(a);
}

static void on_listener_closed(ct_listener_t *l) {
    admin_t *a = l->data;
    ct_service_close(&a->service.service, on_service_closed);
}

void admin_close(admin_t *a, admin_closed_fn closed) {
    a->closed = closed;
    ct_listener_shutdown(&a->listener, 1000, on_listener_closed);
}
