/* libFuzzer target for `ctower proxy --codec http`'s request filter
 * (tools/http_filter.c): any bytes, framed by a server's HTTP codec as the
 * proxy frames them; each request passed through the filter must still be
 * exactly one request, with the same method, target and body, with no
 * Connection, Keep-Alive or Proxy-Connection field left, and with its
 * framing fields (Content-Length, Transfer-Encoding) kept; or be answered
 * by the proxy itself with 400 (a field name that is not a token). A
 * request's context (ctower-timeout, traceparent), read as the proxy reads
 * it, goes on once, with the same deadline and trace and the hop's span. */
#define _GNU_SOURCE /* memmem */
#include "../../tools/http_filter.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void same(const ct_http_str_t *a, const ct_http_str_t *b) {
    if (a->len != b->len || (a->len && memcmp(a->p, b->p, a->len) != 0)) abort();
}

/* Header fields called name, those before head_end (NULL: anywhere; the
 * trailer fields of a chunked body come after it, and go on as they are). */
static size_t count_fields(const ct_http_message_t *m, const char *name, const char *head_end) {
    size_t i, n = 0, len = strlen(name);
    for (i = 0; i < m->nfields; i++)
        if (m->fields[i].name.len == len && strncasecmp(m->fields[i].name.p, name, len) == 0 &&
            (!head_end || m->fields[i].name.p < head_end))
            n++;
    return n;
}

/* The context must go on as it came, with the hop's span. */
static void same_context(const ct_context_t *in, const ct_buf_t *request, const char *head_end,
                         const filter_hop_t *hop) {
    ct_context_t out;
    uint8_t span[8];
    ct_context_init(&out);
    if (ct_http_read_context((const uint8_t *)request->base, (size_t)(head_end + 4 - request->base),
                             hop->now, &out) != 1)
        abort();
    memcpy(span, &hop->span, sizeof span);
    if (out.deadline_ms != in->deadline_ms || memcmp(out.trace_id, in->trace_id, 16) ||
        out.trace_flags != in->trace_flags ||
        (ct_context_traced(in) && memcmp(out.span_id, span, 8)))
        abort();
}

static void check(ct_buf_pool_t *pool, const uint8_t *frame, size_t len) {
    ct_buf_t *request = ct_buf_pool_get(pool, len), *answer = NULL;
    ct_context_t ctx;
    filter_hop_t hop = {NULL, 1000000, 0x0102030405060708u, 0};
    ct_http_codec_t server;
    ct_http_message_t before, after;
    ct_frame_t f;
    const char *head_end;
    uint8_t *copy = malloc(len + 1);
    if (!request || !copy) abort();
    memcpy(request->base, frame, len);
    request->len = len;
    memcpy(copy, frame, len);
    /* more fields than a view holds, or than one with keep-alive and the
     * context's two added */
    if (ct_http_parse_request(copy, len, &before) != 0 || before.nfields + 3 >= CT_HTTP_MAX_HEADERS)
        goto out;
    ct_context_init(&ctx);
    if (ct_http_read_context(frame, len, hop.now, &ctx) == 1) hop.ctx = &ctx;
    if (http_filter_rule(pool, &hop, &request, &answer) == FILTER_ANSWER) {
        /* a field name that is not a token: the proxy's own 400 */
        ct_http_message_t res;
        if (!answer || ct_http_parse_response((uint8_t *)answer->base, answer->len, 0, &res) != 0 ||
            res.status != 400)
            abort();
        ct_buf_free(answer);
        goto out;
    }
    ct_http_codec_init_server(&server, 0);
    if (ct_codec_decode(&server.codec, (const uint8_t *)request->base, request->len, &f) !=
            CT_CODEC_FRAME ||
        f.frame_len != request->len)
        abort();
    /* what goes on has a plain head: it ends at the first empty line */
    head_end = memmem(request->base, request->len, "\r\n\r\n", 4);
    if (!head_end) abort();
    if (ct_http_parse_request((uint8_t *)request->base, request->len, &after) != 0) abort();
    same(&before.method, &after.method);
    same(&before.target, &after.target);
    same(&before.body, &after.body);
    if (count_fields(&after, "connection", head_end) > (before.version_minor == 0) ||
        count_fields(&after, "keep-alive", head_end) ||
        count_fields(&after, "proxy-connection", head_end))
        abort();
    if (count_fields(&after, "content-length", NULL) !=
            count_fields(&before, "content-length", NULL) ||
        count_fields(&after, "transfer-encoding", NULL) !=
            count_fields(&before, "transfer-encoding", NULL) ||
        count_fields(&after, "host", NULL) != count_fields(&before, "host", NULL))
        abort();
    if (hop.ctx) {
        if (count_fields(&after, "ctower-timeout", head_end) != (ctx.deadline_ms != 0) ||
            count_fields(&after, "traceparent", head_end) != (size_t)ct_context_traced(&ctx))
            abort();
        same_context(&ctx, request, head_end, &hop);
    }
out:
    ct_buf_pool_put(pool, request);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ct_buf_pool_t pool;
    ct_http_codec_t server;
    ct_frame_t f;
    ct_buf_pool_init(&pool, 4, 4096);
    ct_http_codec_init_server(&server, 1 << 16);
    while (size > 0 && ct_codec_decode(&server.codec, data, size, &f) == CT_CODEC_FRAME) {
        check(&pool, data, f.frame_len);
        data += f.frame_len;
        size -= f.frame_len;
    }
    ct_buf_pool_destroy(&pool);
    return 0;
}
