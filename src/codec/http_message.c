/* HTTP messages as views (ct_http_parse_*) and as bytes
 * (ct_http_format_*), for the payloads of the HTTP codec. */
#include "ctower/codec/http.h"
#include "ctower/error.h"
#include "http_chunked.h"
#include "http_rules.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct parse_state {
    ct_http_message_t *msg;
    uint8_t *data;
    size_t len;
    size_t body_start; /* offsets in data */
    size_t body_end;   /* where the next piece of the body goes */
    int has_body;
    int head;
    int too_many; /* more fields than msg has room for */
    int complete;
} parse_state_t;

static ct_http_str_t view(const char *p, size_t len) {
    ct_http_str_t s = {p, len};
    return s;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    parse_state_t *st = p->data;
    st->msg->target = view(at, len);
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t len) {
    parse_state_t *st = p->data;
    st->msg->reason = view(at, len);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len) {
    parse_state_t *st = p->data;
    if (!ct_http_name_ok(at, len)) return -1;
    if (st->msg->nfields == CT_HTTP_MAX_HEADERS) {
        st->too_many = 1;
        return -1;
    }
    st->msg->fields[st->msg->nfields].name = view(at, len);
    st->msg->fields[st->msg->nfields].value = view(at + len, 0); /* an empty value has no call */
    st->msg->nfields++;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
    parse_state_t *st = p->data;
    ct_http_str_t *value = &st->msg->fields[st->msg->nfields - 1].value;
    if (value->len == 0) /* the first piece; a folded line gives more */
        *value = view(at, len);
    else
        value->len = (size_t)(at + len - value->p);
    return 0;
}

static int on_headers(http_parser *p) {
    parse_state_t *st = p->data;
    if (p->type == HTTP_REQUEST) {
        const char *m = http_method_str((enum http_method)p->method);
        st->msg->method = view(m, strlen(m));
    } else {
        st->msg->status = (int)p->status_code;
    }
    st->msg->version_minor = p->http_minor;
    st->msg->keep_alive = http_should_keep_alive(p);
    st->msg->nheaders = st->msg->nfields;
    if (p->type == HTTP_RESPONSE && ct_http_has_no_body(p->status_code, st->head)) return 1;
    /* chunks read as the codec frames them, before on_body moves them */
    if ((p->flags & F_CHUNKED) && !ct_http_chunked_ok((const char *)st->data, st->len)) return -1;
    return 0;
}

/* Each piece of the body is moved to follow the one before: the chunks'
 * size lines between them go, and the body is one run of bytes. Pieces only
 * move towards the start, over bytes the parser has read. */
static int on_body(http_parser *p, const char *at, size_t len) {
    parse_state_t *st = p->data;
    size_t off = (size_t)((const uint8_t *)at - st->data);
    if (!st->has_body) {
        st->has_body = 1;
        st->body_start = st->body_end = off;
    }
    if (off != st->body_end) memmove(st->data + st->body_end, at, len);
    st->body_end += len;
    return 0;
}

static int on_done(http_parser *p) {
    parse_state_t *st = p->data;
    st->complete = 1;
    st->msg->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parse_settings = {
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_done,
};

static int parse(enum http_parser_type type, uint8_t *data, size_t len, int head,
                 ct_http_message_t *msg) {
    parse_state_t st = {msg, data, len, 0, 0, 0, head, 0, 0};
    http_parser p;
    size_t n;
    memset(msg, 0, sizeof *msg);
    if (len == 0) return CT_EMALFORMED;
    http_parser_init(&p, type);
    p.data = &st;
    n = http_parser_execute(&p, &parse_settings, (const char *)data, len);
    /* a response whose body ends with the connection: this is its end */
    if (!st.complete && n == len && HTTP_PARSER_ERRNO(&p) == HPE_OK)
        http_parser_execute(&p, &parse_settings, NULL, 0);
    if (st.too_many) return CT_EFRAMETOOLARGE;
    if (!st.complete || n != len) return CT_EMALFORMED;
    if (st.has_body)
        msg->body = view((const char *)data + st.body_start, st.body_end - st.body_start);
    else
        msg->body = view((const char *)data + len, 0);
    return 0;
}

int ct_http_parse_request(uint8_t *data, size_t len, ct_http_message_t *msg) {
    return parse(HTTP_REQUEST, data, len, 0, msg);
}

int ct_http_parse_response(uint8_t *data, size_t len, int head, ct_http_message_t *msg) {
    return parse(HTTP_RESPONSE, data, len, head, msg);
}

const ct_http_str_t *ct_http_field(const ct_http_message_t *msg, const char *name) {
    size_t i, n = strlen(name);
    for (i = 0; i < msg->nfields; i++) {
        const ct_http_field_t *f = &msg->fields[i];
        if (f->name.len == n && strncasecmp(f->name.p, name, n) == 0) return &f->value;
    }
    return NULL;
}

/* Writes what it can of a message into out[0..cap), and counts all of it. */
typedef struct writer {
    uint8_t *out;
    size_t cap, len;
} writer_t;

static void put(writer_t *w, const void *p, size_t n) {
    if (w->out && w->len + n <= w->cap && n) memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void put_str(writer_t *w, const char *s) {
    put(w, s, strlen(s));
}

/* Without snprintf, which cost a fifth of writing a small response. */
static void put_number(writer_t *w, size_t n) {
    char digits[24];
    size_t at = sizeof digits;
    do {
        digits[--at] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    put(w, digits + at, sizeof digits - at);
}

/* A token (a method) or a target: printable, no spaces. */
static int is_word(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f) return 0;
    return 1;
}

static int starts_with_name(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* Whole lines "Name: value\r\n", none of them saying the body's length,
 * which the writer says. */
static int are_fields(const char *fields) {
    while (fields && *fields) {
        const char *end = strstr(fields, "\r\n");
        const char *colon = memchr(fields, ':', end ? (size_t)(end - fields) : 0);
        size_t len;
        if (!end || !colon || colon == fields) return 0;
        len = (size_t)(end - fields);
        if (memchr(fields, '\r', len) || memchr(fields, '\n', len)) return 0;
        if (starts_with_name(fields, len, "content-length") ||
            starts_with_name(fields, len, "transfer-encoding"))
            return 0;
        fields = end + 2;
    }
    return 1;
}

static int finish(writer_t *w, const char *fields, int length, const void *body, size_t body_len,
                  size_t *size) {
    if (fields) put_str(w, fields);
    if (length) {
        put_str(w, "Content-Length: ");
        put_number(w, body_len);
        put_str(w, "\r\n");
    }
    put_str(w, "\r\n");
    if (body) put(w, body, body_len);
    *size = w->len;
    return !w->out || w->len <= w->cap ? 0 : CT_EFRAMETOOLARGE;
}

int ct_http_format_request(uint8_t *out, size_t cap, const char *method, const char *target,
                           const char *fields, const void *body, size_t body_len, size_t *size) {
    writer_t w = {out, out ? cap : 0, 0};
    int usual;
    if (!is_word(method) || !is_word(target) || !are_fields(fields) || (!body && body_len))
        return CT_EINVAL;
    usual =
        strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    put_str(&w, method);
    put_str(&w, " ");
    put_str(&w, target);
    put_str(&w, " HTTP/1.1\r\n");
    return finish(&w, fields, usual || body_len > 0, body, body_len, size);
}

/* A response, with a Connection field of ours (NULL: none) before the
 * caller's fields. */
static int format_response(uint8_t *out, size_t cap, int status, const char *connection,
                           const char *fields, const void *body, size_t body_len, size_t *size) {
    writer_t w = {out, out ? cap : 0, 0};
    int no_body = status < 200 || status == 204 || status == 304;
    const char *reason = http_status_str((enum http_status)status);
    if (status < 100 || status > 999 || !are_fields(fields) || (no_body && body_len > 0))
        return CT_EINVAL;
    if (reason[0] == '<') reason = ""; /* "<unknown>": an empty phrase is allowed */
    put_str(&w, "HTTP/1.1 ");
    put_number(&w, (size_t)status);
    put_str(&w, " ");
    put_str(&w, reason);
    put_str(&w, "\r\n");
    if (connection) put_str(&w, connection);
    return finish(&w, fields, !no_body, body, body_len, size);
}

int ct_http_format_response(uint8_t *out, size_t cap, int status, const char *fields,
                            const void *body, size_t body_len, size_t *size) {
    return format_response(out, cap, status, NULL, fields, body, body_len, size);
}

/* fields (whole lines) name a Connection field of their own. */
static int has_connection(const char *fields) {
    while (fields && *fields) {
        const char *end = strstr(fields, "\r\n");
        if (!end) return 0;
        if (starts_with_name(fields, (size_t)(end - fields), "connection")) return 1;
        fields = end + 2;
    }
    return 0;
}

static int is_method(const ct_http_message_t *m, const char *name) {
    return m->method.len == strlen(name) && memcmp(m->method.p, name, m->method.len) == 0;
}

int ct_http_respond(ct_buf_pool_t *pool, const ct_http_message_t *request, int status,
                    const char *fields, const void *body, size_t body_len, void **response) {
    const char *connection = NULL;
    size_t size = 0;
    ct_buf_t *b;
    int r;
    if (!pool || !response || (!body && body_len)) return CT_EINVAL;
    if (request && !has_connection(fields)) {
        if (!request->keep_alive)
            connection = "Connection: close\r\n";
        else if (request->version_minor == 0) /* HTTP/1.0 that asked to keep it */
            connection = "Connection: keep-alive\r\n";
    }
    if (request && is_method(request, "HEAD")) body = NULL; /* its length, not its bytes */
    if ((r = format_response(NULL, 0, status, connection, fields, body, body_len, &size)) != 0)
        return r;
    if (!(b = ct_buf_pool_get(pool, size))) return -ENOMEM; /* UV_ENOMEM */
    format_response((uint8_t *)b->base, size, status, connection, fields, body, body_len, &b->len);
    *response = b;
    return 0;
}

int ct_http_refusal_status(int error) {
    switch (error) {
    case CT_EMALFORMED:
        return 400;
    case CT_EREQTIMEOUT:
        return 408;
    case CT_EFRAMETOOLARGE:
        return 413;
    case CT_EHEADERTOOLARGE:
        return 431;
    default:
        return 0;
    }
}

int ct_http_format_refusal(uint8_t *out, size_t cap, int error, size_t *size) {
    int status = ct_http_refusal_status(error);
    char body[64];
    size_t n;
    if (!status) return CT_EINVAL;
    n = (size_t)snprintf(body, sizeof body, "%d %s\n", status,
                         http_status_str((enum http_status)status));
    return ct_http_format_response(out, cap, status, "Connection: close\r\n", body, n, size);
}
