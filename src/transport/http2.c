/* HTTP/2 over a byte transport, on nghttp2: nghttp2 keeps the session (the
 * frames, HPACK, flow control, stream states); this file turns each stream
 * into one message written as HTTP/1.1, and back.
 *
 * Bytes read go to nghttp2_session_mem_recv(), whose callbacks assemble the
 * streams' messages; the messages finished by one read wait in a ring and
 * are delivered after it returns, never from inside nghttp2. What nghttp2
 * has to send (answers to SETTINGS and PING, window updates, the messages)
 * leaves through one pump: at once after a read, once per loop turn after
 * sends. */
#include "ctower/http2.h"
#include "ctower/codec/http.h"
#include "ctower/error.h"
#include "ctower/tag_store.h"
#include "../core/list.h"
#include "http2_mem.h"

#include <endian.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a pseudo-header field's value waits in a stream's head buffer. */
typedef struct slice {
    size_t off, len;
} slice_t;

typedef struct ct_http2_stream {
    ct_link_t link; /* in h2->streams */
    struct ct_http2_stream *next_free;
    int32_t id;
    uint32_t tag;
    /* the message being received */
    ct_buf_t *head;     /* tag, start line, fields */
    ct_buf_t *body;     /* the body so far */
    ct_buf_t *trailers; /* trailer lines */
    slice_t method, path, authority, status;
    int code;        /* client: the response's status, once the start line is written */
    int started;     /* the start line is written (pseudo-fields are over) */
    int in_trailers; /* the header block being read is the trailers */
    int dropped;     /* reset by us: the rest of it is not read */
    /* the message being sent: nghttp2 reads its body through read_body() */
    ct_buf_t *sent;
    ct_buf_t *trailers_out; /* its trailers, as nghttp2_nv entries into sent */
    size_t ntrailers_out;
    const uint8_t *body_out;
    size_t body_left;
    int head_request; /* the request is a HEAD: its response has no body */
    int answered;     /* client: the response, or its stand-in, is delivered;
                       * server: the response is submitted */
    char status_text[4];
} ct_http2_stream_t;

static ct_http2_t *of(nghttp2_session *session, void *user_data) {
    (void)session;
    return user_data;
}

static ct_http2_stream_t *stream_of(ct_http2_t *h2, int32_t id) {
    return nghttp2_session_get_stream_user_data(h2->session, id);
}

/* ---- buffers ------------------------------------------------------------ */

/* Room for n more bytes in *b, moving it to a bigger buffer if need be. */
static int reserve(ct_http2_t *h2, ct_buf_t **b, size_t n) {
    ct_buf_t *old = *b, *grown;
    size_t cap = old ? old->len + n : n;
    if (old && old->cap - old->len >= n) return 0;
    if (old && cap < 2 * old->cap) cap = 2 * old->cap;
    grown = ct_buf_pool_get(h2->cfg.pool, cap);
    if (!grown) return UV_ENOMEM;
    if (old) {
        memcpy(grown->base, old->base, old->len);
        grown->len = old->len;
        ct_buf_pool_put(h2->cfg.pool, old);
    }
    *b = grown;
    return 0;
}

static int append(ct_http2_t *h2, ct_buf_t **b, const void *p, size_t n) {
    int r = reserve(h2, b, n);
    if (r != 0) return r;
    if (n) memcpy((*b)->base + (*b)->len, p, n);
    (*b)->len += n;
    return 0;
}

static void put(ct_http2_t *h2, ct_buf_t **b) {
    if (*b) ct_buf_pool_put(h2->cfg.pool, *b);
    *b = NULL;
}

/* ---- streams ------------------------------------------------------------ */

static ct_http2_stream_t *stream_new(ct_http2_t *h2) {
    ct_http2_stream_t *st = h2->free_streams;
    if (st)
        h2->free_streams = st->next_free;
    else if (!(st = malloc(sizeof *st)))
        return NULL;
    memset(st, 0, sizeof *st);
    ct_list_push_back(&h2->streams, &st->link);
    return st;
}

static void stream_release(ct_http2_t *h2, ct_http2_stream_t *st) {
    put(h2, &st->head);
    put(h2, &st->body);
    put(h2, &st->trailers);
    if (st->sent) h2->sending--;
    put(h2, &st->sent);
    put(h2, &st->trailers_out);
    ct_list_remove(&st->link);
    st->next_free = h2->free_streams;
    h2->free_streams = st;
}

/* ---- messages for the reader ---------------------------------------------- */

static int queue_message(ct_http2_t *h2, ct_buf_t *msg) {
    if (h2->ready_count == h2->ready_cap) {
        size_t cap = h2->ready_cap ? 2 * h2->ready_cap : 16, i;
        ct_buf_t **grown = malloc(cap * sizeof *grown);
        if (!grown) return UV_ENOMEM;
        for (i = 0; i < h2->ready_count; i++)
            grown[i] = h2->ready[(h2->ready_head + i) % h2->ready_cap];
        free(h2->ready);
        h2->ready = grown;
        h2->ready_cap = cap;
        h2->ready_head = 0;
    }
    h2->ready[(h2->ready_head + h2->ready_count) % h2->ready_cap] = msg;
    h2->ready_count++;
    return 0;
}

/* Delivers what waits, while the reader wants it, then the end if known. */
static void deliver_ready(ct_http2_t *h2) {
    while (h2->reading && h2->ready_count > 0) {
        ct_buf_t *msg = h2->ready[h2->ready_head];
        h2->ready_head = (h2->ready_head + 1) % h2->ready_cap;
        h2->ready_count--;
        if (h2->cfg.server && (int32_t)ct_buf_get_tag(msg) > h2->last_delivered)
            h2->last_delivered = (int32_t)ct_buf_get_tag(msg);
        ct_transport_deliver(&h2->transport, 0, msg);
        if (ct_transport_is_closing(&h2->transport)) return;
    }
    if (h2->reading && h2->end_status && !h2->end_delivered) {
        h2->end_delivered = 1;
        ct_transport_deliver(&h2->transport, h2->end_status, NULL);
    }
}

static void ended(ct_http2_t *h2, int status) {
    if (h2->end_status) return;
    h2->end_status = status;
    if (h2->bytes_reading) ct_transport_recv_stop(h2->bytes);
}

/* A client's stream that ends without its response gets one of ours: 502
 * with the reason, so that the request's caller hears of it. */
static int stand_in(ct_http2_t *h2, ct_http2_stream_t *st, const char *why) {
    char text[160];
    ct_buf_t *msg = NULL;
    int n = snprintf(text, sizeof text,
                     "HTTP/1.1 502 Bad Gateway\r\nx-ctower-error: %s\r\n"
                     "content-length: 0\r\n\r\n",
                     why);
    uint32_t be = htobe32(st->tag);
    st->answered = 1;
    if (append(h2, &msg, &be, 4) != 0 || append(h2, &msg, text, (size_t)n) != 0) {
        put(h2, &msg);
        return UV_ENOMEM;
    }
    return queue_message(h2, msg);
}

/* ---- receiving: one stream's message, written as HTTP/1.1 ------------------ */

static size_t message_size(const ct_http2_stream_t *st) {
    return (st->head ? st->head->len : 0) + (st->body ? st->body->len : 0) +
           (st->trailers ? st->trailers->len : 0);
}

/* Stops reading a message over max_message: the stream is reset, and a
 * client's caller gets a stand-in. Returns 0 or an error for nghttp2. */
static int too_large(ct_http2_t *h2, ct_http2_stream_t *st) {
    st->dropped = 1;
    put(h2, &st->head);
    put(h2, &st->body);
    put(h2, &st->trailers);
    nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    if (!h2->cfg.server && !st->answered && stand_in(h2, st, "CT_EFRAMETOOLARGE") != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static const char *at(const ct_http2_stream_t *st, slice_t s) {
    return st->head->base + s.off;
}

/* The :status kept in head (nghttp2 checked it is three digits), or 0. */
static int status_of(const ct_http2_stream_t *st) {
    const char *d = at(st, st->status);
    if (st->status.len != 3) return 0;
    return (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
}

/* Whether HTTP/1.1's parser (and so a service's view) knows the method:
 * HTTP/2 allows any token. */
static int known_method(const char *p, size_t len) {
    static const char *const methods[] = {
#define XX(num, name, string) #string,
        HTTP_METHOD_MAP(XX)
#undef XX
    };
    size_t i;
    for (i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i]) == len && memcmp(methods[i], p, len) == 0) return 1;
    return 0;
}

/* A request a service could not read is answered here: 501. */
static int not_implemented(ct_http2_t *h2, ct_http2_stream_t *st) {
    static const nghttp2_nv status = {(uint8_t *)":status", (uint8_t *)"501", 7, 3, 0};
    st->dropped = 1;
    st->answered = 1;
    put(h2, &st->head);
    return nghttp2_submit_response(h2->session, st->id, &status, 1, NULL) == 0 ? 0 : UV_ENOMEM;
}

/* A response HTTP/1.1 cannot write: its stream is reset, and the caller
 * gets a stand-in. */
static int refuse_response(ct_http2_t *h2, ct_http2_stream_t *st) {
    st->dropped = 1;
    put(h2, &st->head);
    nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    return stand_in(h2, st, "PROTOCOL_ERROR");
}

/* The pseudo-fields are over: the start line takes their place. They wait
 * in head from byte 4 on; the line is written after them, then moved down
 * over them (it holds them all, so it is longer). */
static int write_start_line(ct_http2_t *h2, ct_http2_stream_t *st) {
    size_t n;
    char *line;
    int r;
    if (h2->cfg.server) {
        slice_t target = st->path.len ? st->path : st->authority; /* CONNECT: authority */
        if (!known_method(at(st, st->method), st->method.len)) return not_implemented(h2, st);
        st->head_request = st->method.len == 4 && memcmp(at(st, st->method), "HEAD", 4) == 0;
        n = st->method.len + 1 + target.len + 11 + (st->authority.len ? 8 + st->authority.len : 0);
        if ((r = reserve(h2, &st->head, n)) != 0) return r;
        line = st->head->base + st->head->len;
        memcpy(line, at(st, st->method), st->method.len);
        line[st->method.len] = ' ';
        memcpy(line + st->method.len + 1, at(st, target), target.len);
        memcpy(line + st->method.len + 1 + target.len, " HTTP/1.1\r\n", 11);
        if (st->authority.len) {
            char *host = line + st->method.len + 1 + target.len + 11;
            memcpy(host, "host: ", 6);
            memcpy(host + 6, at(st, st->authority), st->authority.len);
            memcpy(host + 6 + st->authority.len, "\r\n", 2);
        }
    } else {
        int status = st->code = status_of(st);
        const char *reason = http_status_str((enum http_status)status);
        if (status < 100) return refuse_response(h2, st); /* HTTP/1.1 has none below 100 */
        if (reason[0] == '<') reason = "";                /* "<unknown>" */
        n = 9 + 3 + 1 + strlen(reason) + 2;
        if ((r = reserve(h2, &st->head, n)) != 0) return r;
        line = st->head->base + st->head->len;
        memcpy(line, "HTTP/1.1 ", 9); /* the status has three digits: nghttp2 checked */
        memcpy(line + 9, at(st, st->status), 3);
        line[12] = ' ';
        memcpy(line + 13, reason, n - 15);
        memcpy(line + n - 2, "\r\n", 2);
    }
    /* the line holds every value kept, so it is at least as long */
    memmove(st->head->base + 4, line, n);
    st->head->len = 4 + n;
    st->started = 1;
    return 0;
}

static int name_is(const uint8_t *name, size_t len, const char *what) {
    return len == strlen(what) && memcmp(name, what, len) == 0;
}

/* Keeps a pseudo-field's value until the start line is written. */
static int keep_pseudo(ct_http2_t *h2, ct_http2_stream_t *st, const uint8_t *name, size_t nlen,
                       const uint8_t *value, size_t vlen) {
    slice_t *s = name_is(name, nlen, ":method")      ? &st->method
                 : name_is(name, nlen, ":path")      ? &st->path
                 : name_is(name, nlen, ":authority") ? &st->authority
                 : name_is(name, nlen, ":status")    ? &st->status
                                                     : NULL;
    if (!s) return 0; /* :scheme, :protocol: HTTP/1.1 has no place for them */
    s->off = st->head->len;
    s->len = vlen;
    return append(h2, &st->head, value, vlen);
}

/* Whether a received field goes into the HTTP/1.1 message: its length is
 * written anew from the body, except in the answer to a HEAD; the host is
 * written from :authority when there is one. */
static int keep_field(const ct_http2_t *h2, const ct_http2_stream_t *st, const uint8_t *name,
                      size_t len) {
    if (name_is(name, len, "content-length")) return !h2->cfg.server && st->head_request;
    if (name_is(name, len, "host")) return st->authority.len == 0;
    return 1;
}

static int append_field(ct_http2_t *h2, ct_buf_t **b, const uint8_t *name, size_t nlen,
                        const uint8_t *value, size_t vlen) {
    int r = reserve(h2, b, nlen + 2 + vlen + 2);
    char *p;
    if (r != 0) return r;
    p = (*b)->base + (*b)->len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    memcpy(p + nlen + 2, value, vlen);
    memcpy(p + nlen + 2 + vlen, "\r\n", 2);
    (*b)->len += nlen + vlen + 4;
    return 0;
}

/* A client's response headers that are interim (1xx: 100 Continue, 103
 * Early Hints): not the answer, and dropped. */
static int interim(const ct_http2_t *h2, const ct_http2_stream_t *st) {
    return !h2->cfg.server && !st->started && status_of(st) / 100 == 1;
}

/* A header field: after the start line, which the first one writes. */
static int header_field(ct_http2_t *h2, ct_http2_stream_t *st, const uint8_t *name, size_t nlen,
                        const uint8_t *value, size_t vlen) {
    int r;
    if (!st->started && (r = write_start_line(h2, st)) != 0) return r;
    if (st->dropped || !keep_field(h2, st, name, nlen)) return 0;
    return append_field(h2, &st->head, name, nlen, value, vlen);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    ct_http2_t *h2 = of(session, user);
    ct_http2_stream_t *st;
    uint32_t be;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    st = stream_of(h2, frame->hd.stream_id);
    if (!st && h2->cfg.server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (!(st = stream_new(h2))) return NGHTTP2_ERR_CALLBACK_FAILURE;
        st->id = frame->hd.stream_id;
        st->tag = (uint32_t)st->id;
        nghttp2_session_set_stream_user_data(session, st->id, st);
    }
    if (!st || st->dropped) return 0;
    if (st->started) {
        st->in_trailers = 1;
        return 0;
    }
    be = htobe32(st->tag);
    put(h2, &st->head);
    return append(h2, &st->head, &be, 4) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
    ct_http2_t *h2 = of(session, user);
    ct_http2_stream_t *st = stream_of(h2, frame->hd.stream_id);
    int r = 0;
    (void)flags;
    if (!st || st->dropped || !st->head) return 0;
    if (message_size(st) + nlen + vlen + 4 > h2->cfg.max_message) return too_large(h2, st);
    if (st->in_trailers)
        r = append_field(h2, &st->trailers, name, nlen, value, vlen);
    else if (nlen > 0 && name[0] == ':')
        r = keep_pseudo(h2, st, name, nlen, value, vlen);
    else if (!interim(h2, st))
        r = header_field(h2, st, name, nlen, value, vlen);
    return r == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user) {
    ct_http2_t *h2 = of(session, user);
    ct_http2_stream_t *st = stream_of(h2, id);
    (void)flags;
    if (!st || st->dropped || !st->head) return 0;
    if (message_size(st) + len > h2->cfg.max_message) return too_large(h2, st);
    return append(h2, &st->body, data, len) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A response that HTTP/1.1 gives no body (nor trailers, then): the answer
 * to a HEAD, 204 and 304. */
static int bodiless(const ct_http2_t *h2, const ct_http2_stream_t *st) {
    return !h2->cfg.server && (st->head_request || st->code == 204 || st->code == 304);
}

/* Whether the message gets a Content-Length written from its body. */
static int needs_length(const ct_http2_t *h2, const ct_http2_stream_t *st) {
    if (h2->cfg.server) return st->body != NULL && st->body->len > 0;
    return !bodiless(h2, st);
}

/* "content-length: N" and the head's end into line (64 bytes); returns
 * the length. Without snprintf: this runs for every message. */
static int length_line(char *line, size_t len) {
    char digits[24];
    int n = 0, at;
    do
        digits[n++] = (char)('0' + len % 10);
    while ((len /= 10) != 0);
    memcpy(line, "content-length: ", 16);
    for (at = 16; n > 0; at++)
        line[at] = digits[--n];
    memcpy(line + at, "\r\n\r\n", 4);
    return at + 4;
}

/* The stream's message is whole: the framing it lacks, the body, and off it
 * goes to the reader's ring. */
static int finish(ct_http2_t *h2, ct_http2_stream_t *st) {
    size_t blen = st->body ? st->body->len : 0;
    char line[64];
    int n, r;
    if (st->trailers && !bodiless(h2, st)) {
        n = snprintf(line, sizeof line, "transfer-encoding: chunked\r\n\r\n%zx\r\n", blen);
        if (blen == 0) n -= 3; /* no empty chunk: the last one follows */
        r = append(h2, &st->head, line, (size_t)n);
        if (r == 0 && blen) r = append(h2, &st->head, st->body->base, blen);
        if (r == 0) r = append(h2, &st->head, blen ? "\r\n0\r\n" : "0\r\n", blen ? 5 : 3);
        if (r == 0) r = append(h2, &st->head, st->trailers->base, st->trailers->len);
        if (r == 0) r = append(h2, &st->head, "\r\n", 2);
    } else {
        n = needs_length(h2, st) ? length_line(line, blen) : 2;
        if (n == 2) memcpy(line, "\r\n", 2);
        r = append(h2, &st->head, line, (size_t)n);
        if (r == 0 && blen) r = append(h2, &st->head, st->body->base, blen);
    }
    if (r == 0) r = queue_message(h2, st->head);
    if (r != 0) return r;
    st->head = NULL;
    put(h2, &st->body);
    put(h2, &st->trailers);
    if (!h2->cfg.server) st->answered = 1;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    ct_http2_t *h2 = of(session, user);
    ct_http2_stream_t *st;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    st = stream_of(h2, frame->hd.stream_id);
    if (!st || st->dropped || !st->head) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !st->started) {
        if (interim(h2, st)) {
            memset(&st->status, 0, sizeof st->status);
            st->head->len = 4;
            return 0;
        }
        if (write_start_line(h2, st) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (st->dropped) return 0; /* answered here */
    }
    if (end && finish(h2, st) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *user) {
    ct_http2_t *h2 = of(session, user);
    ct_http2_stream_t *st = stream_of(h2, id);
    int r = 0;
    if (!st || ct_transport_is_closing(&h2->transport)) return 0;
    /* on a broken connection the end of the receive side fails them all */
    if (!h2->cfg.server && !st->answered && !h2->broken)
        r = stand_in(h2, st, nghttp2_http2_strerror(code != 0 ? code : NGHTTP2_INTERNAL_ERROR));
    nghttp2_session_set_stream_user_data(session, id, NULL);
    stream_release(h2, st);
    return r == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A request nghttp2 could not send (the server went away first): its
 * caller hears it as refused, which is safe to send again. */
static int on_frame_not_sent(nghttp2_session *session, const nghttp2_frame *frame, int error,
                             void *user) {
    ct_http2_t *h2 = of(session, user);
    ct_http2_stream_t *st;
    (void)error;
    if (h2->cfg.server || frame->hd.type != NGHTTP2_HEADERS) return 0;
    st = stream_of(h2, frame->hd.stream_id);
    if (!st || st->answered) return 0;
    return stand_in(h2, st, "REFUSED_STREAM") == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A GOAWAY of ours with an error: the peer broke the protocol, and the
 * connection ends with CT_EMALFORMED once it is out. */
static int on_frame_sent(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    ct_http2_t *h2 = of(session, user);
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        h2->broken = CT_EMALFORMED;
    return 0;
}

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
    if (st->ntrailers_out == 0) put(h2, &st->trailers_out);
    return 0;
}

static void schedule_pump(ct_http2_t *h2) {
    ct_task_post(h2->transport.loop, &h2->pump_task);
}

static int send_request(ct_http2_t *h2, ct_buf_t *msg) {
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
    if (!(st = stream_new(h2))) return UV_ENOMEM;
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
        stream_release(h2, st);
        return UV_ENOMEM;
    }
    id = nghttp2_submit_request(h2->session, NULL, nva, n,
                                m.body.len || st->trailers_out ? &body : NULL, st);
    if (id < 0) {
        stream_release(h2, st);
        /* out of stream ids: this connection can take no more requests */
        return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? UV_EPIPE : UV_ENOMEM;
    }
    st->id = id;
    st->sent = msg;
    h2->sending++;
    return 0;
}

static int send_response(ct_http2_t *h2, ct_buf_t *msg) {
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
    st = stream_of(h2, id);
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
        put(h2, &st->trailers_out);
        return CT_EINVAL;
    }
    st->answered = 1;
    st->sent = msg;
    h2->sending++;
    return 0;
}

/* ---- the pump: what nghttp2 has to send goes below -------------------------- */

static void send_failed(ct_http2_t *h2, int status) {
    if (!h2->send_error) h2->send_error = status;
}

static void check_shutdown(ct_http2_t *h2);
static void send_failed(ct_http2_t *h2, int status);

/* Sends a chunk below. One the transport has no room for waits in
 * h2->stalled until bytes_ready pumps again. Returns 0, or -1 to stop. */
static int send_chunk(ct_http2_t *h2, ct_buf_t *chunk) {
    int r = ct_transport_send(h2->bytes, chunk);
    if (r == 0) return 0;
    if (r == UV_EAGAIN) {
        int ready = ct_transport_send_ready(h2->bytes, &h2->bytes_ready);
        if (ready == CT_PENDING) {
            h2->stalled = chunk;
            return -1;
        }
        r = ready < 0 ? ready : UV_EPIPE; /* no room, yet not waiting for any */
    }
    ct_buf_pool_put(h2->cfg.bytes_pool, chunk);
    send_failed(h2, r);
    return -1;
}

/* Copies a piece of nghttp2's output into h2->partial, a buffer of the
 * pool's size (or of the piece's, if larger). A full one goes below first.
 * Returns 0, or -1 to stop (the piece is kept all the same). */
static int take_piece(ct_http2_t *h2, const uint8_t *data, size_t n) {
    ct_buf_pool_t *pool = h2->cfg.bytes_pool;
    ct_buf_t *full = NULL;
    if (h2->partial && h2->partial->cap - h2->partial->len < n) {
        full = h2->partial;
        h2->partial = NULL;
    }
    if (!h2->partial) {
        h2->partial = ct_buf_pool_get(pool, n > pool->buf_cap ? n : pool->buf_cap);
        if (!h2->partial) {
            if (full) ct_buf_pool_put(pool, full);
            send_failed(h2, UV_ENOMEM); /* nghttp2's output is lost: so is the send side */
            return -1;
        }
    }
    memcpy(h2->partial->base + h2->partial->len, data, n);
    h2->partial->len += n;
    return full ? send_chunk(h2, full) : 0;
}

/* Sends what nghttp2 has to send, in chunks of the pool's buffers, while
 * the transport below has room. */
static void pump(ct_http2_t *h2) {
    ct_task_cancel(&h2->pump_task);
    if (h2->stalled) {
        ct_buf_t *chunk = h2->stalled;
        h2->stalled = NULL;
        if (send_chunk(h2, chunk) != 0) return;
    }
    while (!h2->send_error) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2->session, &data);
        if (n < 0) {
            send_failed(h2, n == NGHTTP2_ERR_NOMEM ? UV_ENOMEM : CT_EMALFORMED);
            break;
        }
        if (n == 0) {
            ct_buf_t *last = h2->partial;
            h2->partial = NULL;
            if (last && send_chunk(h2, last) != 0) return;
            break;
        }
        if (take_piece(h2, data, (size_t)n) != 0) return;
    }
    check_shutdown(h2);
}

static void check_end(ct_http2_t *h2);

static void on_pump_task(ct_task_t *task) {
    ct_http2_t *h2 = CT_CONTAINER_OF(task, ct_http2_t, pump_task);
    pump(h2);
    check_end(h2);
    deliver_ready(h2); /* stand-ins for requests nghttp2 could not send */
}

static void on_bytes_ready(ct_waker_t *waker) {
    ct_http2_t *h2 = CT_CONTAINER_OF(waker, ct_http2_t, bytes_ready);
    pump(h2);
}

/* ---- the transport below ---------------------------------------------------- */

static void on_bytes(ct_transport_t *t, int status, void *msg) {
    ct_http2_t *h2 = t->owner;
    ct_buf_t *chunk = msg;
    ssize_t r = 0;
    if (status != 0) {
        ended(h2, status);
        deliver_ready(h2);
        return;
    }
    if (!h2->end_status) /* after a protocol error nothing more is read */
        r = nghttp2_session_mem_recv(h2->session, (const uint8_t *)chunk->base, chunk->len);
    ct_buf_pool_put(h2->cfg.bytes_pool, chunk);
    if (h2->end_status) return;
    if (r < 0) {
        /* a GOAWAY tells the peer why, if the send side still works */
        nghttp2_session_terminate_session(h2->session, NGHTTP2_PROTOCOL_ERROR);
        h2->broken =
            r == NGHTTP2_ERR_CALLBACK_FAILURE || r == NGHTTP2_ERR_NOMEM ? UV_ENOMEM : CT_EMALFORMED;
    }
    pump(h2); /* answers go out with this read's write, not a turn later */
    check_end(h2);
    deliver_ready(h2);
}

/* The receive side ends when the connection is broken, or when both sides
 * said goodbye (GOAWAY) and nothing is left to do. */
static void check_end(ct_http2_t *h2) {
    if (h2->broken)
        ended(h2, h2->broken);
    else if (!nghttp2_session_want_read(h2->session) && !nghttp2_session_want_write(h2->session))
        ended(h2, UV_EOF);
}

/* ---- the transport's vtable --------------------------------------------------- */

static int h2_send_ready(ct_transport_t *t, ct_waker_t *waker) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    if (h2->send_error) return h2->send_error;
    if (h2->shut_pending) return UV_EPIPE;
    return ct_transport_send_ready(h2->bytes, waker);
}

static int h2_send(ct_transport_t *t, void *msg) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    int r;
    if (h2->send_error) return h2->send_error;
    if (h2->shut_pending) return UV_EPIPE;
    r = h2->cfg.server ? send_response(h2, msg) : send_request(h2, msg);
    if (r == 0) schedule_pump(h2);
    return r;
}

static void on_deliver_task(ct_task_t *task) {
    deliver_ready(CT_CONTAINER_OF(task, ct_http2_t, deliver_task));
}

/* The bytes below are read from the first start on, whether the reader
 * takes messages or not: a session that stopped reading would hear no more
 * window updates, and a response waiting for one would never finish. What
 * the reader does not take waits in the ring; the peer cannot open more
 * streams than max_streams (nghttp2 refuses the others), which bounds it. */
static int h2_recv_start(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    int r;
    h2->reading = 1;
    if (!h2->bytes_reading && !h2->end_status) {
        if ((r = ct_transport_recv_start(h2->bytes, on_bytes)) != 0) return r;
        h2->bytes_reading = 1;
    }
    if (h2->ready_count > 0 || (h2->end_status && !h2->end_delivered))
        ct_task_post(t->loop, &h2->deliver_task);
    return 0;
}

static int h2_recv_stop(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    h2->reading = 0;
    ct_task_cancel(&h2->deliver_task);
    return 0;
}

static void on_bytes_shut(ct_transport_t *t, int status) {
    ct_http2_t *h2 = t->owner;
    ct_transport_shutdown_done(&h2->transport, status);
}

/* Once nghttp2 has nothing more to send, the transport below shuts down. */
static void check_shutdown(ct_http2_t *h2) {
    int r;
    if (h2->shut_pending != 1) return;
    /* what was submitted goes out whole first, a body waiting for the
     * peer's window too (which want_write does not count) */
    if (!h2->send_error &&
        (h2->sending > 0 || h2->stalled || h2->partial || nghttp2_session_want_write(h2->session)))
        return;
    h2->shut_pending = 2;
    if (h2->send_error)
        ct_transport_shutdown_done(&h2->transport, h2->send_error);
    else if ((r = ct_transport_shutdown(h2->bytes, on_bytes_shut)) != 0)
        ct_transport_shutdown_done(&h2->transport, r);
}

/* GOAWAY names the last stream that will be answered: on a server, the
 * last request the reader took (the client hears the later ones as
 * refused, safe to send again); a client takes no streams. */
static int h2_shutdown(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    h2->shut_pending = 1;
    nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE, h2->last_delivered, NGHTTP2_NO_ERROR,
                          NULL, 0);
    schedule_pump(h2);
    return 0;
}

static void on_bytes_closed(ct_transport_t *t) {
    ct_http2_t *h2 = t->owner;
    ct_transport_closed(&h2->transport);
}

static void h2_close(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    ct_http2_stream_t *st;
    ct_task_cancel(&h2->pump_task);
    ct_task_cancel(&h2->deliver_task);
    ct_waker_cancel(&h2->bytes_ready);
    if (h2->stalled) ct_buf_pool_put(h2->cfg.bytes_pool, h2->stalled);
    if (h2->partial) ct_buf_pool_put(h2->cfg.bytes_pool, h2->partial);
    h2->stalled = h2->partial = NULL;
    nghttp2_session_del(h2->session); /* its callbacks see the closing flag */
    h2->session = NULL;
    ct_http2_mem_destroy(&h2->mem);
    while (!ct_list_empty(&h2->streams))
        stream_release(h2, CT_CONTAINER_OF(h2->streams.next, ct_http2_stream_t, link));
    while ((st = h2->free_streams) != NULL) {
        h2->free_streams = st->next_free;
        free(st);
    }
    while (h2->ready_count > 0) {
        ct_buf_pool_put(h2->cfg.pool, h2->ready[h2->ready_head]);
        h2->ready_head = (h2->ready_head + 1) % h2->ready_cap;
        h2->ready_count--;
    }
    free(h2->ready);
    h2->ready = NULL;
    ct_transport_close(h2->bytes, on_bytes_closed);
}

static const ct_transport_vtable_t http2_vtable = {
    h2_send_ready, h2_send, h2_recv_start, h2_recv_stop, h2_shutdown, h2_close,
};

/* ---- setup ---------------------------------------------------------------- */

static int new_session(ct_http2_t *h2) {
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry settings[2];
    nghttp2_mem mem;
    int r;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return UV_ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_sent);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_sent);
    mem = ct_http2_mem_allocator(&h2->mem);
    r = h2->cfg.server ? nghttp2_session_server_new3(&h2->session, cbs, h2, NULL, &mem)
                       : nghttp2_session_client_new3(&h2->session, cbs, h2, NULL, &mem);
    nghttp2_session_callbacks_del(cbs);
    if (r != 0) return UV_ENOMEM;
    if (h2->cfg.server) {
        settings[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
        settings[0].value = h2->cfg.max_streams;
    } else { /* a client takes no pushed responses */
        settings[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
        settings[0].value = 0;
    }
    if (nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, settings, 1) != 0) {
        nghttp2_session_del(h2->session);
        ct_http2_mem_destroy(&h2->mem);
        return UV_ENOMEM;
    }
    return 0;
}

int ct_http2_init(ct_http2_t *h2, ct_loop_t *loop, ct_transport_t *bytes,
                  const ct_http2_config_t *cfg) {
    int r;
    if (!h2 || !loop || !bytes || !cfg || !cfg->pool || bytes->owner) return CT_EINVAL;
    memset(h2, 0, sizeof *h2);
    ct_transport_init(&h2->transport, loop, &http2_vtable);
    h2->cfg = *cfg;
    if (!h2->cfg.max_message) h2->cfg.max_message = 1u << 20;
    if (!h2->cfg.bytes_pool) h2->cfg.bytes_pool = h2->cfg.pool;
    if (!h2->cfg.max_streams) h2->cfg.max_streams = 100;
    if ((r = new_session(h2)) != 0) return r;
    /* a server holds no more requests than a client may open */
    if (h2->cfg.server) h2->transport.max_in_flight = h2->cfg.max_streams;
    h2->bytes = bytes;
    bytes->owner = h2;
    ct_list_init(&h2->streams);
    ct_waker_init(&h2->bytes_ready, loop, on_bytes_ready);
    ct_task_init(&h2->pump_task, on_pump_task);
    ct_task_init(&h2->deliver_task, on_deliver_task);
    schedule_pump(h2); /* the preface and settings */
    return 0;
}
