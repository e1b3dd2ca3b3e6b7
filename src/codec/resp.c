/* The RESP codec. A value is scanned from its first byte each time more
 * bytes arrive: an aggregate keeps a count of the values it still waits for
 * per level (an explicit stack, so input cannot make the scan recurse), and
 * a bulk string's bytes are stepped over by its length, never scanned. */
#include "ctower/codec/resp.h"
#include "ctower/error.h"
#include "resp_header.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { MAX_DEPTH = 32, MAX_DIGITS = 18 };

/* Needs bytes past the ones there: more to come, or past the maximum. */
static int need_more(size_t len, size_t max) {
    return len >= max ? CT_EFRAMETOOLARGE : CT_CODEC_NEED_MORE;
}

/* The line that starts at data[at] ends in "\r\n" before data[lim]: 1 and
 * *cr (where its '\r' is), 0 if its end has not arrived, or CT_EMALFORMED
 * for a '\n' without its '\r'. */
static int find_line(const uint8_t *data, size_t lim, size_t at, size_t *cr) {
    const uint8_t *nl = memchr(data + at, '\n', lim - at);
    size_t i;
    if (!nl) return 0;
    i = (size_t)(nl - data);
    if (i == at || data[i - 1] != '\r') return CT_EMALFORMED;
    *cr = i - 1;
    return 1;
}

/* The decimal length or count in data[from..to): 0 and *n, -1 allowed only
 * if null_ok (then *n is -1), or CT_EMALFORMED. */
static int parse_count(const uint8_t *data, size_t from, size_t to, int null_ok, int64_t *n) {
    size_t i;
    if (null_ok && to - from == 2 && data[from] == '-' && data[from + 1] == '1') {
        *n = -1;
        return 0;
    }
    if (to == from || to - from > MAX_DIGITS) return CT_EMALFORMED;
    *n = 0;
    for (i = from; i < to; i++) {
        if (data[i] < '0' || data[i] > '9') return CT_EMALFORMED;
        *n = *n * 10 + (data[i] - '0');
    }
    return 0;
}

/* A ':' integer: a sign, then 1 to 19 digits that fit in 64 bits. */
static int parse_integer(const uint8_t *data, size_t from, size_t to, int64_t *n) {
    int negative = from < to && (data[from] == '-' || data[from] == '+');
    uint64_t v = 0, limit = negative && data[from] == '-' ? (uint64_t)INT64_MAX + 1 : INT64_MAX;
    size_t i;
    if (negative) from++;
    if (to == from || to - from > 19) return CT_EMALFORMED;
    for (i = from; i < to; i++) {
        if (data[i] < '0' || data[i] > '9') return CT_EMALFORMED;
        if (v > (limit - (uint64_t)(data[i] - '0')) / 10) return CT_EMALFORMED;
        v = v * 10 + (uint64_t)(data[i] - '0');
    }
    *n = limit > INT64_MAX ? (int64_t)(0 - v) : (int64_t)v; /* two's complement */
    return 0;
}

/* The item at data[*at..lim) (an aggregate: its header), no larger than
 * max: CT_CODEC_FRAME with *at moved past it, CT_CODEC_NEED_MORE if it goes
 * past lim, or an error. */
static int read_item(const uint8_t *data, size_t lim, size_t max, size_t *at, ct_resp_item_t *it) {
    size_t cr, next;
    int64_t n = 0;
    int r;
    if (*at >= lim) return CT_CODEC_NEED_MORE;
    if ((r = find_line(data, lim, *at, &cr)) <= 0) return r < 0 ? r : CT_CODEC_NEED_MORE;
    it->type = (char)data[*at];
    it->null = it->type == '_';
    it->str = NULL;
    it->len = 0;
    it->n = 0;
    next = cr + 2;
    switch (it->type) {
    case ':':
        if ((r = parse_integer(data, *at + 1, cr, &it->n)) < 0) return r;
        /* its text too */
        /* fall through */
    case '+':
    case '-':
    case '#':
    case ',':
    case '(':
        it->str = data + *at + 1;
        it->len = cr - *at - 1;
        break;
    case '_':
        break;
    case '$':
    case '!':
    case '=':
        if ((r = parse_count(data, *at + 1, cr, it->type == '$', &n)) < 0) return r;
        if (n < 0) { /* RESP2's null bulk string */
            it->null = 1;
            break;
        }
        if ((uint64_t)n + 2 > max - next) return CT_EFRAMETOOLARGE;
        if ((uint64_t)n + 2 > lim - next) return CT_CODEC_NEED_MORE;
        if (data[next + n] != '\r' || data[next + n + 1] != '\n') return CT_EMALFORMED;
        it->str = data + next;
        it->len = (size_t)n;
        next += (size_t)n + 2;
        break;
    case '*':
    case '~':
    case '>':
    case '%':
    case '|':
        if ((r = parse_count(data, *at + 1, cr, it->type == '*', &n)) < 0) return r;
        if (n < 0) { /* RESP2's null array */
            it->null = 1;
            break;
        }
        if ((uint64_t)n > max) return CT_EFRAMETOOLARGE;        /* 3+ bytes each */
        it->n = it->type == '%' || it->type == '|' ? 2 * n : n; /* pairs: keys and values */
        break;
    default:
        return CT_EMALFORMED; /* no type byte: an inline command, or noise */
    }
    *at = next;
    return CT_CODEC_FRAME;
}

/* Where the scan stopped, for the next call with more bytes, if it fits in
 * c (not too deep, counts that fit); otherwise the next call starts over. */
static void save_scan(ct_resp_codec_t *c, size_t at, int depth, const int64_t *waiting) {
    int i;
    c->codec.scan = 0;
    if (depth >= CT_RESP_RESUME_DEPTH) return;
    for (i = 0; i <= depth; i++) {
        if (waiting[i] > (int64_t)UINT32_MAX) return;
        c->resume_waiting[i] = (uint32_t)waiting[i];
    }
    c->resume_depth = (uint32_t)depth;
    c->codec.scan = at;
}

/* One value at data[0..len), at most max bytes: CT_CODEC_FRAME with its size
 * in *size, CT_CODEC_NEED_MORE, or an error. With resume (decoding), a scan
 * goes on where the last call with fewer of the same bytes stopped. */
static int scan_value(const uint8_t *data, size_t len, size_t max, ct_resp_codec_t *resume,
                      size_t *size) {
    int64_t waiting[MAX_DEPTH + 1];
    size_t at = 0, lim = len < max ? len : max;
    int depth = 0, r, i;
    ct_resp_item_t it;
    waiting[0] = 1;
    if (resume && resume->codec.scan > 0) {
        at = resume->codec.scan;
        depth = (int)resume->resume_depth;
        for (i = 0; i <= depth; i++)
            waiting[i] = resume->resume_waiting[i];
    }
    for (;;) {
        r = read_item(data, lim, max, &at, &it);
        if (r == CT_CODEC_NEED_MORE) {
            if (resume) save_scan(resume, at, depth, waiting);
            return need_more(len, max);
        }
        if (r < 0) return r;
        /* an attribute comes with the value it describes: one more item */
        if (it.type == '|') it.n++;
        if (it.n > 0 && it.type != ':') { /* an aggregate: its items come first */
            if (depth == MAX_DEPTH) return CT_EMALFORMED;
            waiting[++depth] = it.n;
            continue;
        }
        while (--waiting[depth] == 0) { /* a value ended, and maybe its aggregates */
            if (depth == 0) {
                *size = at;
                return CT_CODEC_FRAME;
            }
            depth--;
        }
    }
}

int ct_resp_read(const uint8_t *p, size_t len, size_t *at, ct_resp_item_t *item) {
    int r = read_item(p, len, SIZE_MAX, at, item);
    if (r == CT_CODEC_FRAME) return 0;
    if (r == CT_CODEC_NEED_MORE) return CT_ETRUNCATED;
    return r == CT_EFRAMETOOLARGE ? CT_EMALFORMED : r; /* no limit: only nonsense */
}

/* Whether the value data[0..size) is a command: an array of one or more
 * bulk strings, none of them null. */
static int is_command(const uint8_t *data, size_t size) {
    ct_resp_item_t it;
    size_t at = 0;
    int64_t i, n;
    if (read_item(data, size, size, &at, &it) != CT_CODEC_FRAME || it.type != '*' || it.null ||
        it.n < 1)
        return 0;
    n = it.n;
    for (i = 0; i < n; i++)
        if (read_item(data, size, size, &at, &it) != CT_CODEC_FRAME || it.type != '$' || it.null)
            return 0;
    return at == size;
}

/* Whether data[from..to) holds only spaces, tabs and '\r'. */
static int is_blank(const uint8_t *data, size_t from, size_t to) {
    for (; from < to; from++)
        if (data[from] != ' ' && data[from] != '\t' && data[from] != '\r') return 0;
    return 1;
}

/* Inline commands: the blank lines at data[0..len) skipped (*skip: the
 * first byte of the next command), then, if that command is inline, its
 * line as a frame. CT_CODEC_FRAME if *skip starts a RESP command (frame not
 * set) or an inline one (frame set, *inline_line 1), CT_CODEC_NEED_MORE. */
static int decode_lines(const uint8_t *data, size_t len, size_t max, size_t *skip, int *inline_line,
                        ct_frame_t *frame) {
    size_t start = 0, lim = len < max ? len : max;
    *inline_line = 0;
    for (;;) {
        const uint8_t *nl;
        size_t end;
        if (start < len && data[start] == '*') break;
        nl = start < lim ? memchr(data + start, '\n', lim - start) : NULL;
        if (!nl) return need_more(len, max);
        end = (size_t)(nl - data);
        if (!is_blank(data, start, end)) { /* an inline command */
            frame->payload_offset = start;
            frame->payload_len = end - start - (data[end - 1] == '\r');
            frame->frame_len = end + 1;
            *inline_line = 1;
            break;
        }
        start = end + 1;
    }
    *skip = start;
    return CT_CODEC_FRAME;
}

static int resp_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    ct_resp_codec_t *c = (ct_resp_codec_t *)codec;
    size_t size = 0, skip = 0;
    int r, inline_line;
    if (c->inline_commands) {
        r = decode_lines(data, len, codec->max_payload, &skip, &inline_line, frame);
        if (r != CT_CODEC_FRAME || inline_line) return r;
    } else if (c->commands_only && len > 0 && data[0] != '*') {
        return CT_EMALFORMED; /* at once */
    }
    r = scan_value(data + skip, len - skip, codec->max_payload - skip, c, &size);
    if (r != CT_CODEC_FRAME) return r;
    if (c->commands_only && !is_command(data + skip, size)) return CT_EMALFORMED;
    frame->payload_offset = skip;
    frame->payload_len = size;
    frame->frame_len = skip + size;
    return CT_CODEC_FRAME;
}

static int resp_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                       size_t *written) {
    size_t size = 0;
    int r;
    if (len > codec->max_payload) return CT_EFRAMETOOLARGE;
    r = scan_value(payload, len, codec->max_payload, NULL, &size);
    if (r != CT_CODEC_FRAME || size != len) return CT_EINVAL; /* not exactly one value */
    memcpy(out, payload, len);
    *written = len;
    return 0;
}

static const ct_codec_vtable_t resp_vtable = {resp_decode, resp_encode};

int ct_resp_codec_init(ct_resp_codec_t *c, size_t max_payload) {
    if (!c) return CT_EINVAL;
    c->codec.vtable = &resp_vtable;
    c->codec.max_payload = max_payload ? max_payload : 1u << 20;
    c->codec.overhead = 0; /* the payload is the frame */
    c->codec.size = sizeof(ct_resp_codec_t);
    c->codec.prefix_be32 = 0;
    c->codec.max_pending = 0;
    c->codec.error = 0;
    c->codec.scan = 0;
    c->resume_depth = 0;
    c->commands_only = 0;
    c->inline_commands = 0;
    return 0;
}

int ct_resp_codec_init_commands(ct_resp_codec_t *c, size_t max_payload, int inline_commands) {
    if (ct_resp_codec_init(c, max_payload) != 0) return CT_EINVAL;
    c->commands_only = 1;
    c->inline_commands = inline_commands != 0;
    return 0;
}

size_t ct_resp_format_command(uint8_t *out, size_t cap, int argc, const char *const argv[],
                              const size_t argvlen[]) {
    size_t at = 0;
    int i;
    ct_resp_put_header(out, cap, &at, '*', (size_t)(argc > 0 ? argc : 0));
    for (i = 0; i < argc; i++) {
        ct_resp_put_header(out, cap, &at, '$', argvlen[i]);
        if (at + argvlen[i] + 2 <= cap) {
            if (argvlen[i]) memcpy(out + at, argv[i], argvlen[i]);
            memcpy(out + at + argvlen[i], "\r\n", 2);
        }
        at += argvlen[i] + 2;
    }
    return at;
}
