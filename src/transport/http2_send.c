/* HTTP/2's sending side: an HTTP/1.1 message, read as a view, submitted
 * to nghttp2 as a request or response, its body read by nghttp2 from the
 * message itself, its trailers after it. */
#include "http2_stream.h"
#include "ctower/codec/http.h"
#include "ctower/error.h"
#include "ctower/tag_store.h"

#include <string.h>
#include <strings.h>

/* ---- sending: an HTTP/1.1 message as a stream ------------------------------- */

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user) {
    ct_http2_stream_t *st = source->ptr;
    size_t n = st->body_left < length ? st->body_left : length;
    (void)user;
    memcpy(buf, st->body_out, n);
    st->body_out += n;
    st->body_left -= n;
    if (st->body_left > 0) return (ssize_t)n;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->trailers_out) { /* they end the stream, after the body */
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(session, id, (const nghttp2_nv *)st->trailers_out->base,
                                   st->ntrailers_out) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static nghttp2_nv nv(const char *name, size_t nlen, const char *value, size_t vlen) {
    nghttp2_nv v;
    v.name = (uint8_t *)name;
    v.namelen = nlen;
    v.value = (uint8_t *)value;
    v.valuelen = vlen;
    v.flags = NGHTTP2_NV_FLAG_NONE;
    return v;
}

static int field_is(const ct_http_field_t *f, const char *name) {
    return f->name.len == strlen(name) && strncasecmp(f->name.p, name, f->name.len) == 0;
}

/* Fields of one HTTP/1.1 connection, which HTTP/2 forbids (RFC 9113 8.2.2),
 * and the host, which went into :authority. */
static int connection_field(const ct_http_field_t *f) {
    return field_is(f, "connection") || field_is(f, "keep-alive") ||
           field_is(f, "proxy-connection") || field_is(f, "transfer-encoding") ||
           field_is(f, "upgrade") || field_is(f, "host") ||
           (field_is(f, "te") && !(f->value.len == 8 && !strncasecmp(f->value.p, "trailers", 8)));
}

/* Appends msg's fields from..to to nva, their names lowercased in place. */
static size_t add_fields(const ct_http_message_t *m, size_t from, size_t to, nghttp2_nv *nva,
                         size_t n) {
    size_t i, j;
    for (i = from; i < to; i++) {
        const ct_http_field_t *f = &m->fields[i];
        char *name = (char *)f->name.p;
        if (connection_field(f)) continue;
        for (j = 0; j < f->name.len; j++)
            if (name[j] >= 'A' && name[j] <= 'Z') name[j] = (char)(name[j] - 'A' + 'a');
        nva[n++] = nv(name, f->name.len, f->value.p, f->value.len);
    }
    return n;
}

/* A chunked message's trailers, kept for read_body() to send after the
 * body (rare: a buffer of their own). Returns 0 or UV_ENOMEM. */
static int keep_trailers(ct_http2_t *h2, ct_http2_stream_t *st, const ct_http_message_t *m) {
    size_t count = m->nfields - m->nheaders;
    if (count == 0) return 0;
    st->trailers_out = ct_buf_pool_get(h2->cfg.pool, count * sizeof(nghttp2_nv));
    if (!st->trailers_out) return UV_ENOMEM;
    st->ntrailers_out =
        add_fields(m, m->nheaders, m->nfields, (nghttp2_nv *)st->trailers_out->base, 0);
    if (st->ntrailers_out == 0) ct_http2_put(h2, &st->trailers_out);
    return 0;
}

int ct_http2_send_request(ct_http2_t *h2, ct_buf_t *msg) {
    ct_http_message_t m;
    nghttp2_nv nva[CT_HTTP_MAX_HEADERS + 4];
    nghttp2_data_provider body;
    const ct_http_str_t *host;
    const char *scheme = h2->cfg.scheme ? h2->cfg.scheme : "http";
    ct_http2_stream_t *st;
    size_t n = 0;
    int32_t id;
    if (msg->len < 4 || ct_http_parse_request((uint8_t *)msg->base + 4, msg->len - 4, &m) != 0)
        return CT_EINVAL;
    if (!(st = ct_http2_stream_new(h2))) return UV_ENOMEM;
    nva[n++] = nv(":method", 7, m.method.p, m.method.len);
    nva[n++] = nv(":scheme", 7, scheme, strlen(scheme));
    if ((host = ct_http_field(&m, "host")) != NULL)
        nva[n++] = nv(":authority", 10, host->p, host->len);
    nva[n++] = nv(":path", 5, m.target.p, m.target.len);
    n = add_fields(&m, 0, m.nheaders, nva, n);
    st->tag = ct_buf_get_tag(msg);
    st->head_request = m.method.len == 4 && memcmp(m.method.p, "HEAD", 4) == 0;
    st->body_out = (const uint8_t *)m.body.p;
    st->body_left = m.body.len;
    body.source.ptr = st;
    body.read_callback = read_body;
    if (keep_trailers(h2, st, &m) != 0) {
        ct_http2_stream_release(h2, st);
        return UV_ENOMEM;
    }
    id = nghttp2_submit_request(h2->session, NULL, nva, n,
                                m.body.len || st->trailers_out ? &body : NULL, st);
    if (id < 0) {
        ct_http2_stream_release(h2, st);
        /* out of stream ids: this connection can take no more requests */
        return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? UV_EPIPE : UV_ENOMEM;
    }
    st->id = id;
    st->sent = msg;
    h2->sending++;
    return 0;
}

int ct_http2_send_response(ct_http2_t *h2, ct_buf_t *msg) {
    ct_http_message_t m;
    nghttp2_nv nva[CT_HTTP_MAX_HEADERS + 1];
    nghttp2_data_provider body;
    ct_http2_stream_t *st;
    int32_t id;
    int r;
    size_t n;
    if (msg->len < 4) return CT_EINVAL;
    id = (int32_t)ct_buf_get_tag(msg);
    if (id <= 0 || id > nghttp2_session_get_last_proc_stream_id(h2->session)) return CT_EINVAL;
    st = ct_http2_stream_of(h2, id);
    if (!st || st->answered) { /* the client reset the stream: nobody waits */
        ct_buf_pool_put(h2->cfg.pool, msg);
        return 0;
    }
    if (ct_http_parse_response((uint8_t *)msg->base + 4, msg->len - 4, st->head_request, &m) != 0 ||
        m.status < 200)
        return CT_EINVAL;
    st->status_text[0] = (char)('0' + m.status / 100 % 10); /* the view allows 100-999 */
    st->status_text[1] = (char)('0' + m.status / 10 % 10);
    st->status_text[2] = (char)('0' + m.status % 10);
    nva[0] = nv(":status", 7, st->status_text, 3);
    n = add_fields(&m, 0, m.nheaders, nva, 1);
    st->body_out = (const uint8_t *)m.body.p;
    st->body_left = m.body.len;
    body.source.ptr = st;
    body.read_callback = read_body;
    if (!st->head_request && keep_trailers(h2, st, &m) != 0) return UV_ENOMEM;
    r = nghttp2_submit_response(h2->session, id, nva, n,
                                m.body.len || st->trailers_out ? &body : NULL);
    if (r != 0) {
        ct_http2_put(h2, &st->trailers_out);
        return CT_EINVAL;
    }
    st->answered = 1;
    st->sent = msg;
    h2->sending++;
    return 0;
}
