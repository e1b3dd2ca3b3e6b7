/* The request context in HTTP fields (codec/http.h). The head is read line
 * by line, not by http_parser: the codec framed the message already, and
 * these two fields are all that is looked for. A line this reading and
 * http_parser's could split differently (a bare '\r', a folded value) can
 * at worst hide a context field, never change how the message frames. */
#include "ctower/codec/http.h"
#include "ctower/error.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char timeout_name[] = "ctower-timeout";
static const char trace_name[] = "traceparent";

/* Whether line[0..len) is the field name: its value, trimmed, in *v. */
static int field_value(const char *line, size_t len, const char *name, size_t name_len,
                       const char **v, size_t *vlen) {
    const char *p, *end = line + len;
    if (len <= name_len || line[name_len] != ':' || strncasecmp(line, name, name_len) != 0)
        return 0;
    p = line + name_len + 1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *v = p;
    *vlen = (size_t)(end - p);
    return 1;
}

int ct_http_read_context(const uint8_t *data, size_t len, uint64_t now, ct_context_t *ctx) {
    const char *p = (const char *)data, *end = p + len, *nl, *v;
    size_t vlen;
    uint64_t ms;
    int found = 0, timed = 0, traced = 0, bad = 0;
    if (!(nl = memchr(p, '\n', len))) return 0; /* the start line */
    for (p = nl + 1; p < end; p = nl + 1) {
        size_t n;
        if (!(nl = memchr(p, '\n', (size_t)(end - p)))) break;
        n = (size_t)(nl - p);
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n == 0) break; /* the end of the head */
        if ((*p | 0x20) == 'c' && !timed &&
            field_value(p, n, timeout_name, sizeof timeout_name - 1, &v, &vlen)) {
            if (ct_context_parse_timeout(v, vlen, &ms) == 0) {
                ct_context_set_timeout(ctx, now, ms);
                timed = found = 1;
            } else {
                bad = 1;
            }
        } else if ((*p | 0x20) == 't' && !traced &&
                   field_value(p, n, trace_name, sizeof trace_name - 1, &v, &vlen)) {
            if (ct_context_parse_traceparent(ctx, v, vlen) == 0)
                traced = found = 1;
            else
                bad = 1;
        }
    }
    return found ? 1 : bad ? CT_EMALFORMED : 0;
}

int ct_http_format_context(const ct_context_t *ctx, uint64_t now, char *out, size_t cap) {
    char value[CT_CONTEXT_TRACEPARENT_LEN];
    size_t len = 0;
    if (cap < CT_HTTP_CONTEXT_FIELDS_MAX) return CT_EINVAL;
    out[0] = '\0';
    if (ctx && ctx->deadline_ms) {
        ct_context_format_timeout(ct_context_remaining(ctx, now), value);
        len += (size_t)snprintf(out + len, cap - len, "%s: %s\r\n", timeout_name, value);
    }
    if (ct_context_traced(ctx)) {
        ct_context_format_traceparent(ctx, value);
        len += (size_t)snprintf(out + len, cap - len, "%s: %s\r\n", trace_name, value);
    }
    return (int)len;
}
