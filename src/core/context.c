/* The request context and its wire forms (context.h). */
#include "ctower/context.h"
#include "ctower/error.h"

#include <string.h>

void ct_context_init(ct_context_t *ctx) {
    memset(ctx, 0, sizeof *ctx);
}

void ct_context_set_timeout(ct_context_t *ctx, uint64_t now, uint64_t ms) {
    uint64_t at = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
    if (ctx->deadline_ms == 0 || at < ctx->deadline_ms) ctx->deadline_ms = at;
}

uint64_t ct_context_remaining(const ct_context_t *ctx, uint64_t now) {
    if (!ctx || ctx->deadline_ms == 0) return UINT64_MAX;
    return ctx->deadline_ms > now ? ctx->deadline_ms - now : 0;
}

int ct_context_expired(const ct_context_t *ctx, uint64_t now) {
    return ctx && ctx->deadline_ms != 0 && now >= ctx->deadline_ms;
}

static int all_zero(const uint8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

int ct_context_traced(const ct_context_t *ctx) {
    return ctx && !all_zero(ctx->trace_id, sizeof ctx->trace_id);
}

/* ---- the time left: grpc-timeout's form ------------------------------------ */

#define TIMEOUT_DIGITS_MAX 99999999u

size_t ct_context_format_timeout(uint64_t ms, char *out) {
    static const struct {
        char unit;
        uint64_t ms;
    } units[] = {{'m', 1}, {'S', 1000}, {'M', 60000}, {'H', 3600000}};
    char digits[24];
    size_t i, n = 0, len = 0;
    uint64_t v = ms;
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        v = ms / units[i].ms + (ms % units[i].ms != 0); /* rounded up */
        if (v <= TIMEOUT_DIGITS_MAX) break;
    }
    if (i == sizeof units / sizeof units[0]) { /* past 11,415 years: as long as it says */
        i--;
        v = TIMEOUT_DIGITS_MAX;
    }
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        out[len++] = digits[--n];
    out[len++] = units[i].unit;
    out[len] = '\0';
    return len;
}

int ct_context_parse_timeout(const char *s, size_t len, uint64_t *ms) {
    uint64_t v = 0, per;
    size_t i;
    if (len < 2 || len > 9) return CT_EMALFORMED; /* 1..8 digits and a unit */
    for (i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9') return CT_EMALFORMED;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    switch (s[len - 1]) {
    case 'H':
        per = 3600000;
        break;
    case 'M':
        per = 60000;
        break;
    case 'S':
        per = 1000;
        break;
    case 'm':
        per = 1;
        break;
    case 'u':
        *ms = v / 1000 + (v % 1000 != 0);
        return 0;
    case 'n':
        *ms = v / 1000000 + (v % 1000000 != 0);
        return 0;
    default:
        return CT_EMALFORMED;
    }
    *ms = v * per; /* 8 digits of hours fit in 64 bits of ms */
    return 0;
}

/* ---- traceparent ------------------------------------------------------------- */

static const char hex[] = "0123456789abcdef";

static char *put_hex(char *out, const uint8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        *out++ = hex[p[i] >> 4];
        *out++ = hex[p[i] & 15];
    }
    return out;
}

size_t ct_context_format_traceparent(const ct_context_t *ctx, char *out) {
    char *p = out;
    *p++ = '0';
    *p++ = '0';
    *p++ = '-';
    p = put_hex(p, ctx->trace_id, sizeof ctx->trace_id);
    *p++ = '-';
    p = put_hex(p, ctx->span_id, sizeof ctx->span_id);
    *p++ = '-';
    p = put_hex(p, &ctx->trace_flags, 1);
    *p = '\0';
    return (size_t)(p - out);
}

/* W3C asks for lower case; upper case is refused, as it says a receiver
 * should, so that one trace id has one spelling. */
static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int get_hex(const char *s, uint8_t *out, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int ct_context_parse_traceparent(ct_context_t *ctx, const char *s, size_t len) {
    uint8_t version, trace[16], span[8], flags;
    /* version 00 is exactly 55 bytes; a later version may add fields
     * after a '-' */
    if (len < 55 || get_hex(s, &version, 1) < 0 || version == 0xff) return CT_EMALFORMED;
    if (version == 0 && len != 55) return CT_EMALFORMED;
    if (len > 55 && s[55] != '-') return CT_EMALFORMED;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return CT_EMALFORMED;
    if (get_hex(s + 3, trace, 16) < 0 || get_hex(s + 36, span, 8) < 0 ||
        get_hex(s + 53, &flags, 1) < 0)
        return CT_EMALFORMED;
    if (all_zero(trace, 16) || all_zero(span, 8)) return CT_EMALFORMED;
    memcpy(ctx->trace_id, trace, 16);
    memcpy(ctx->span_id, span, 8);
    ctx->trace_flags = flags;
    return 0;
}

void ct_context_new_span(ct_context_t *ctx, const uint8_t span[8], const uint8_t trace[16]) {
    if (!ct_context_traced(ctx)) memcpy(ctx->trace_id, trace, sizeof ctx->trace_id);
    memcpy(ctx->span_id, span, sizeof ctx->span_id);
}

/* ---- the binary block ------------------------------------------------------------- */

enum { BLOCK_VERSION = 1, HAS_DEADLINE = 1, HAS_TRACE = 2 };

void ct_context_write_block(const ct_context_t *ctx, uint64_t now, uint8_t *out) {
    uint64_t left = ct_context_remaining(ctx, now);
    uint32_t ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    memset(out, 0, CT_CONTEXT_BLOCK_SIZE);
    out[0] = BLOCK_VERSION;
    out[1] =
        (uint8_t)((ctx->deadline_ms ? HAS_DEADLINE : 0) | (ct_context_traced(ctx) ? HAS_TRACE : 0));
    out[2] = ctx->trace_flags;
    out[3] = ctx->attempt;
    if (ctx->deadline_ms) {
        out[4] = (uint8_t)(ms >> 24);
        out[5] = (uint8_t)(ms >> 16);
        out[6] = (uint8_t)(ms >> 8);
        out[7] = (uint8_t)ms;
    }
    if (out[1] & HAS_TRACE) {
        memcpy(out + 8, ctx->trace_id, 16);
        memcpy(out + 24, ctx->span_id, 8);
    }
}

int ct_context_read_block(const uint8_t *data, size_t len, uint64_t now, ct_context_t *ctx) {
    uint32_t ms;
    if (len < CT_CONTEXT_BLOCK_SIZE || data[0] != BLOCK_VERSION) return CT_EMALFORMED;
    if ((data[1] & HAS_TRACE) && (all_zero(data + 8, 16) || all_zero(data + 24, 8)))
        return CT_EMALFORMED;
    ctx->attempt = data[3];
    if (data[1] & HAS_DEADLINE) {
        ms = (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
        ct_context_set_timeout(ctx, now, ms);
    }
    if (data[1] & HAS_TRACE) {
        memcpy(ctx->trace_id, data + 8, 16);
        memcpy(ctx->span_id, data + 24, 8);
        ctx->trace_flags = data[2];
    }
    return (data[1] & (HAS_DEADLINE | HAS_TRACE)) != 0;
}
