/* The tool's HTTP pieces (http_echo.h). */
#include "http_echo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The response to one request, after room bytes, in a buffer of pool;
 * NULL without memory. */
static ct_buf_t *respond(ct_buf_pool_t *pool, size_t room, int status, const ct_http_str_t *body) {
    size_t size = 0;
    ct_buf_t *b;
    ct_http_format_response(NULL, 0, status, NULL, body->p, body->len, &size);
    if (!(b = ct_buf_pool_get(pool, room + size))) return NULL;
    if (ct_http_format_response((uint8_t *)b->base + room, size, status, NULL, body->p, body->len,
                                &size) != 0) {
        ct_buf_pool_put(pool, b);
        return NULL;
    }
    b->len = room + size;
    return b;
}

static int echo_after(ct_buf_pool_t *pool, size_t room, ct_buf_t *req, void **response) {
    ct_http_message_t m;
    ct_http_str_t none = {"", 0};
    int r = req->len >= room
                ? ct_http_parse_request((uint8_t *)req->base + room, req->len - room, &m)
                : CT_EMALFORMED;
    int head = r == 0 && m.method.len == 4 && memcmp(m.method.p, "HEAD", 4) == 0;
    /* the codec framed it, so only a view too small for it fails here */
    ct_buf_t *res = respond(pool, room, r == 0 ? 200 : 431, r == 0 && !head ? &m.body : &none);
    ct_buf_pool_put(pool, req);
    if (!res) return UV_ENOMEM;
    *response = res;
    return 0;
}

static int echo(void *ctx, void *request, void **response) {
    return echo_after(ctx, 0, request, response);
}

static int echo_tagged(void *ctx, void *request, void **response) {
    return echo_after(ctx, 4, request, response);
}

void http_echo_init(ct_service_fn_t *svc, ct_loop_t *loop, ct_buf_pool_t *pool, int tagged) {
    ct_service_fn_init(svc, loop, tagged ? echo_tagged : echo, pool);
}

uint8_t *http_request_bytes(const char *method, const char *target, const char *fields,
                            const void *body, size_t body_len, size_t *len) {
    uint8_t *out;
    if (ct_http_format_request(NULL, 0, method, target, fields, body, body_len, len) != 0) {
        *len = 0;
        return NULL;
    }
    if ((out = malloc(*len)) != NULL)
        ct_http_format_request(out, *len, method, target, fields, body, body_len, len);
    return out;
}

uint8_t *http_bench_request(int size, size_t room, long deadline_ms, size_t *len) {
    char *body = malloc((size_t)size + 1), fields[64] = "Host: ctower-bench\r\n";
    uint8_t *out, *with_room = NULL;
    if (!body) return NULL;
    memset(body, 'x', (size_t)size);
    /* the time left as the request leaves: the whole deadline, since each
     * request leaves as its call starts */
    if (deadline_ms)
        snprintf(fields + strlen(fields), sizeof fields - strlen(fields),
                 "ctower-timeout: %ldm\r\n", deadline_ms);
    out = http_request_bytes(size > 0 ? "POST" : "GET", "/", fields, body, (size_t)size, len);
    free(body);
    if (out && (with_room = malloc(room + *len)) != NULL) {
        memset(with_room, 0, room);
        memcpy(with_room + room, out, *len);
        *len += room;
    }
    free(out);
    return with_room;
}

static int error_reply(size_t room, int status, void **response) {
    char fields[128];
    uint8_t out[256];
    size_t size = 0;
    int code = status == CT_ETIMEDOUT ? 504 : 502;
    if (ct_http_refusal_status(status)) { /* the request itself: 400, 408, 413, 431 */
        memset(out, 0, room);
        if (ct_http_format_refusal(out + room, sizeof out - room, status, &size) != 0)
            return status;
        *response = ct_buf_from(out, room + size);
        return *response ? 0 : status;
    }
    snprintf(fields, sizeof fields, "X-Ctower-Error: %s\r\n", ct_err_name(status));
    memset(out, 0, room);
    if (ct_http_format_response(out + room, sizeof out - room, code, fields, NULL, 0, &size) != 0)
        return status;
    *response = ct_buf_from(out, room + size);
    return *response ? 0 : status;
}

int http_error_reply(ct_server_t *srv, int status, void **response) {
    (void)srv;
    return error_reply(0, status, response);
}

int http2_error_reply(ct_server_t *srv, int status, void **response) {
    (void)srv;
    return error_reply(4, status, response);
}
