/* libFuzzer target for the request context's wire forms (context.h and
 * codec/http.h): the time left, traceparent, and the HTTP fields.
 *
 * Input: byte 0 picks what the rest is (0: a timeout value, 1: a
 * traceparent value, 2: an HTTP head, 3: a binary block); the rest is the
 * text.
 *
 * Oracles:
 * - a timeout that parses is formatted back into a form that parses to at
 *   least as much (rounded up, never down) and at most 8 digits and a unit;
 * - a traceparent that parses formats back to the same ids, and the format
 *   parses to them again;
 * - ct_http_read_context never reads past the bytes (ASan), and the fields
 *   ct_http_format_context writes for what it read read back the same;
 * - a block that reads is written back to one that reads the same (its
 *   time left at most 2^32 - 1 ms). */
#include <ctower/codec/http.h>
#include <ctower/context.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_timeout(const char *s, size_t n) {
    char out[CT_CONTEXT_TIMEOUT_MAX];
    uint64_t ms, back;
    size_t len;
    if (ct_context_parse_timeout(s, n, &ms) != 0) return;
    len = ct_context_format_timeout(ms, out);
    if (len < 2 || len > 9 || strlen(out) != len) abort();
    if (ct_context_parse_timeout(out, len, &back) != 0 || back < ms) abort();
}

static void check_traceparent(const char *s, size_t n) {
    char out[CT_CONTEXT_TRACEPARENT_LEN];
    ct_context_t a, b;
    ct_context_init(&a);
    if (ct_context_parse_traceparent(&a, s, n) != 0) return;
    if (ct_context_format_traceparent(&a, out) != 55) abort();
    ct_context_init(&b);
    if (ct_context_parse_traceparent(&b, out, 55) != 0) abort();
    if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) ||
        a.trace_flags != b.trace_flags)
        abort();
}

static void check_head(const uint8_t *data, size_t n) {
    enum { NOW = 1000000 };
    char fields[CT_HTTP_CONTEXT_FIELDS_MAX];
    char head[256];
    ct_context_t a, b;
    int len;
    ct_context_init(&a);
    if (ct_http_read_context(data, n, NOW, &a) != 1) return;
    len = ct_http_format_context(&a, NOW, fields, sizeof fields);
    if (len <= 0 || (size_t)len >= sizeof fields) abort();
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\n%s\r\n", fields);
    ct_context_init(&b);
    if (ct_http_read_context((const uint8_t *)head, strlen(head), NOW, &b) != 1) abort();
    if (a.deadline_ms != b.deadline_ms || memcmp(a.trace_id, b.trace_id, 16) ||
        memcmp(a.span_id, b.span_id, 8) || a.trace_flags != b.trace_flags)
        abort();
}

static void check_block(const uint8_t *data, size_t n) {
    enum { NOW = 5000 };
    uint8_t out[CT_CONTEXT_BLOCK_SIZE];
    ct_context_t a, b;
    ct_context_init(&a);
    if (ct_context_read_block(data, n, NOW, &a) < 0) return;
    ct_context_write_block(&a, NOW, out);
    ct_context_init(&b);
    if (ct_context_read_block(out, sizeof out, NOW, &b) < 0) abort();
    if (a.deadline_ms != b.deadline_ms || memcmp(a.trace_id, b.trace_id, 16) ||
        memcmp(a.span_id, b.span_id, 8) || a.trace_flags != b.trace_flags || a.attempt != b.attempt)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    switch (data[0] % 4) {
    case 3:
        check_block(data + 1, size - 1);
        break;
    case 0:
        check_timeout((const char *)data + 1, size - 1);
        break;
    case 1:
        check_traceparent((const char *)data + 1, size - 1);
        break;
    default:
        check_head(data + 1, size - 1);
        break;
    }
    return 0;
}
