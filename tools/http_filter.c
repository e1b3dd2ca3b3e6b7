/* Hop-by-hop fields out of requests passed on (http_filter.h).
 *
 * The head is read by http_parser, the parser that framed the request, not
 * by a second reading of its lines: the two could disagree on where the
 * head ends (http_parser takes a '\r' followed by anything as a line's
 * end), and a backend would then see another request than the proxy did.
 * A request whose head is plain ("\r\n" line ends, no folded lines, no
 * control bytes) and has nothing to drop goes on as it is; any other is
 * written anew from what http_parser read, which also turns folded values
 * into one line (RFC 9112 5.2). */
#include "http_filter.h"
#include "context_block.h"

#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
    MAX_FIELDS = 100, /* more, and the proxy answers 431 */
    MAX_NAMED = 16    /* field names a Connection field lists that are dropped */
};

typedef struct span {
    const char *p, *end;
} span_t;

typedef struct head {
    span_t target;
    struct field {
        span_t name, value;
        int folded; /* the value spans several lines */
        int drop;
    } fields[MAX_FIELDS];
    int nfields, too_many, done;
    span_t named[MAX_NAMED];
    int nnamed;
} head_t;

static int on_url(http_parser *p, const char *at, size_t len) {
    head_t *h = p->data;
    h->target.p = at;
    h->target.end = at + len;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len) {
    head_t *h = p->data;
    if (h->nfields == MAX_FIELDS) {
        h->too_many = 1;
        return -1;
    }
    h->fields[h->nfields].name.p = at;
    h->fields[h->nfields].name.end = at + len;
    h->fields[h->nfields].value.p = h->fields[h->nfields].value.end = at + len;
    h->fields[h->nfields].folded = 0;
    h->nfields++;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
    head_t *h = p->data;
    struct field *f = &h->fields[h->nfields - 1];
    if (f->value.p == f->name.end) { /* the value's first piece */
        f->value.p = at;
    } else {
        f->folded = 1;
    }
    f->value.end = at + len;
    return 0;
}

static int on_head_done(http_parser *p) {
    ((head_t *)p->data)->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings head_settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_head_done,
};

static int name_is(span_t name, const char *text) {
    size_t n = strlen(text);
    return (size_t)(name.end - name.p) == n && strncasecmp(name.p, text, n) == 0;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The names a Connection field's value lists. */
static void add_named(head_t *h, span_t v) {
    while (v.p < v.end) {
        const char *comma = memchr(v.p, ',', (size_t)(v.end - v.p));
        span_t t = {v.p, comma ? comma : v.end};
        while (t.p < t.end && is_space(*t.p))
            t.p++;
        while (t.end > t.p && is_space(t.end[-1]))
            t.end--;
        if (t.end > t.p && h->nnamed < MAX_NAMED) h->named[h->nnamed++] = t;
        v.p = comma ? comma + 1 : v.end;
    }
}

/* Marks the fields that go: hop-by-hop by name, or named by Connection,
 * and with a context the fields that carry it (written anew); never those
 * that frame and route the request. Returns how many go. */
static int mark_drops(head_t *h, int context) {
    int i, k, n = 0;
    for (i = 0; i < h->nfields; i++)
        if (name_is(h->fields[i].name, "connection")) add_named(h, h->fields[i].value);
    for (i = 0; i < h->nfields; i++) {
        struct field *f = &h->fields[i];
        f->drop =
            name_is(f->name, "connection") || name_is(f->name, "keep-alive") ||
            name_is(f->name, "proxy-connection") ||
            (context && (name_is(f->name, "ctower-timeout") || name_is(f->name, "traceparent")));
        if (name_is(f->name, "content-length") || name_is(f->name, "transfer-encoding") ||
            name_is(f->name, "host"))
            continue;
        for (k = 0; k < h->nnamed && !f->drop; k++) {
            size_t len = (size_t)(h->named[k].end - h->named[k].p);
            f->drop = (size_t)(f->name.end - f->name.p) == len &&
                      strncasecmp(h->named[k].p, f->name.p, len) == 0;
        }
        n += f->drop;
    }
    return n;
}

/* RFC 9110's token characters: what a field's name is made of. */
static int is_token(span_t s) {
    static const char extra[] = "!#$%&'*+-.^_`|~";
    const char *c;
    for (c = s.p; c < s.end; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c && strchr(extra, *c))))
            return 0;
    return s.end > s.p;
}

/* A head every parser reads alike: "\r\n" ends only, no folded line, no
 * control byte but tabs. */
static int is_plain(const char *p, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            if (i + 1 == len || p[i + 1] != '\n') return 0;
            i++;
            if (i + 1 < len && (p[i + 1] == ' ' || p[i + 1] == '\t')) return 0;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static char *put(char *w, const char *p, size_t len) {
    memcpy(w, p, len);
    return w + len;
}

/* A value with its folds made single spaces, its ends trimmed. */
static char *put_value(char *w, span_t v) {
    const char *c = v.p;
    while (v.end > v.p && is_space(v.end[-1]))
        v.end--;
    while (c < v.end) {
        if (*c == '\r' || *c == '\n') {
            while (c < v.end && is_space(*c))
                c++;
            *w++ = ' ';
            continue;
        }
        *w++ = *c++;
    }
    return w;
}

/* The request written anew: its start line, the fields kept, the context's
 * (extra), keep-alive for HTTP/1.0, then the body as it came. out has room
 * enough. */
static size_t rewrite(const head_t *h, const http_parser *p, const char *extra, const char *body,
                      size_t body_len, char *out) {
    char version[16];
    const char *method = http_method_str((enum http_method)p->method);
    char *w = out;
    int i, n = snprintf(version, sizeof version, " HTTP/%u.%u\r\n", p->http_major, p->http_minor);
    w = put(w, method, strlen(method));
    w = put(w, " ", 1);
    w = put(w, h->target.p, (size_t)(h->target.end - h->target.p));
    w = put(w, version, (size_t)n);
    for (i = 0; i < h->nfields; i++) {
        const struct field *f = &h->fields[i];
        if (f->drop) continue;
        w = put(w, f->name.p, (size_t)(f->name.end - f->name.p));
        w = put(w, ": ", 2);
        w = put_value(w, f->value);
        w = put(w, "\r\n", 2);
    }
    w = put(w, extra, strlen(extra));
    if (p->http_major == 1 && p->http_minor == 0) w = put(w, "Connection: keep-alive\r\n", 24);
    w = put(w, "\r\n", 2);
    w = put(w, body, body_len);
    return (size_t)(w - out);
}

/* An answer of the proxy's own, with no body (so that it also answers a
 * HEAD), after room bytes of zeros; NULL without memory. */
static ct_buf_t *refusal(int status, size_t room) {
    uint8_t out[128] = {0};
    size_t size = 0;
    if (ct_http_format_response(out + room, sizeof out - room, status, NULL, NULL, 0, &size))
        return NULL;
    return ct_buf_from(out, room + size);
}

/* The context's fields for the next hop, into out: the time left as of
 * now, the trace with a span of this hop's own. */
static void next_hop_fields(const filter_hop_t *hop, char *out, size_t cap) {
    ct_context_t next = *hop->ctx;
    if (ct_context_traced(&next)) memcpy(next.span_id, &hop->span, sizeof next.span_id);
    if (ct_http_format_context(&next, hop->now, out, cap) < 0) out[0] = '\0';
}

filter_verdict_t http_filter_rule(ct_buf_pool_t *pool, const filter_hop_t *hop, ct_buf_t **request,
                                  ct_buf_t **answer) {
    char extra[CT_HTTP_CONTEXT_FIELDS_MAX] = "";
    head_t h;
    ct_buf_t *old = *request, *fresh;
    http_parser p;
    size_t head_len, room = hop->room, len;
    const char *msg;
    int i, drops;
    /* HTTP/2 (room for its tag) has no fields of one connection: nghttp2
     * refuses them. Only a context is written anew. */
    if (room && !hop->ctx) return FILTER_PASS;
    if (old->len < room) {
        *answer = refusal(400, room);
        return FILTER_ANSWER;
    }
    msg = old->base + room;
    len = old->len - room;
    memset(&h, 0, sizeof h);
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &h;
    head_len = http_parser_execute(&p, &head_settings, msg, len) + 1; /* and its '\n' */
    if (h.too_many || !h.done || head_len > len) {
        *answer = refusal(h.too_many ? 431 : 400, room);
        return FILTER_ANSWER;
    }
    for (i = 0; i < h.nfields; i++)
        if (!is_token(h.fields[i].name)) {
            *answer = refusal(400, room);
            return FILTER_ANSWER;
        }
    drops = mark_drops(&h, hop->ctx != NULL);
    if (!drops && !hop->ctx && !(p.http_major == 1 && p.http_minor == 0) && is_plain(msg, head_len))
        return FILTER_PASS; /* the common case: as it is */
    if (hop->ctx) next_hop_fields(hop, extra, sizeof extra);
    if (!(fresh = ct_buf_pool_get(pool, old->len + 3 * (size_t)h.nfields + 64 + sizeof extra))) {
        *answer = NULL; /* out of memory: the caller's error */
        return FILTER_ANSWER;
    }
    memcpy(fresh->base, old->base, room);
    fresh->len = room + rewrite(&h, &p, extra, msg + head_len, len - head_len, fresh->base + room);
    ct_buf_pool_put(pool, old);
    *request = fresh;
    return FILTER_PASS;
}

int http_read_context(void *ctx, const void *request, uint64_t now, ct_context_t *out) {
    context_reader_t *reader = ctx;
    const ct_buf_t *b = request;
    int r = b->len < reader->room ? 0
                                  : ct_http_read_context((const uint8_t *)b->base + reader->room,
                                                         b->len - reader->room, now, out);
    if (r < 0) reader->refused++;
    return r;
}
