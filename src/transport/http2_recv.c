/* HTTP/2's reading side: nghttp2's callbacks assemble each stream's
 * message, written as HTTP/1.1 after its tag, into the reader's ring. */
#include "http2_stream.h"
#include "ctower/error.h"

#include <endian.h>
#include <http_parser.h>
#include <string.h>

/* Credit to the flood budget for work the peer asked for: a message may
 * bring a few frames of its own (PRIORITY, WINDOW_UPDATE, RST_STREAM), and
 * a peer receiving DATA sends WINDOW_UPDATEs. */
#define CREDIT_PER_MESSAGE   8.0
#define CREDIT_PER_DATA_SENT 1.0

/* ---- receiving: one stream's message, written as HTTP/1.1 ------------------ */

static size_t message_size(const ct_http2_stream_t *st) {
    return (st->head ? st->head->len : 0) + (st->body ? st->body->len : 0) +
           (st->trailers ? st->trailers->len : 0);
}

/* Stops reading a message over max_message: the stream is reset, and a
 * client's caller gets a stand-in. Returns 0 or an error for nghttp2. */
static int too_large(ct_http2_t *h2, ct_http2_stream_t *st) {
    st->dropped = 1;
    ct_http2_put(h2, &st->head);
    ct_http2_put(h2, &st->body);
    ct_http2_put(h2, &st->trailers);
    nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    if (!h2->cfg.server && !st->answered && ct_http2_stand_in(h2, st, "CT_EFRAMETOOLARGE") != 0)
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
    ct_http2_put(h2, &st->head);
    return nghttp2_submit_response(h2->session, st->id, &status, 1, NULL) == 0 ? 0 : UV_ENOMEM;
}

/* A response HTTP/1.1 cannot write: its stream is reset, and the caller
 * gets a stand-in. */
static int refuse_response(ct_http2_t *h2, ct_http2_stream_t *st) {
    st->dropped = 1;
    ct_http2_put(h2, &st->head);
    nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    return ct_http2_stand_in(h2, st, "PROTOCOL_ERROR");
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
        if ((r = ct_http2_reserve(h2, &st->head, n)) != 0) return r;
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
        if ((r = ct_http2_reserve(h2, &st->head, n)) != 0) return r;
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
    return ct_http2_append(h2, &st->head, value, vlen);
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
    int r = ct_http2_reserve(h2, b, nlen + 2 + vlen + 2);
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
    ct_http2_t *h2 = ct_http2_of(session, user);
    ct_http2_stream_t *st;
    uint32_t be;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    st = ct_http2_stream_of(h2, frame->hd.stream_id);
    if (!st && h2->cfg.server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (!(st = ct_http2_stream_new(h2))) return NGHTTP2_ERR_CALLBACK_FAILURE;
        st->id = frame->hd.stream_id;
        st->tag = (uint32_t)st->id;
        st->peers = 1;
        h2->peer_streams++;
        nghttp2_session_set_stream_user_data(session, st->id, st);
    }
    if (!st || st->dropped) return 0;
    if (st->started) {
        st->in_trailers = 1;
        return 0;
    }
    be = htobe32(st->tag);
    ct_http2_put(h2, &st->head);
    return ct_http2_append(h2, &st->head, &be, 4) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
    ct_http2_t *h2 = ct_http2_of(session, user);
    ct_http2_stream_t *st = ct_http2_stream_of(h2, frame->hd.stream_id);
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
    ct_http2_t *h2 = ct_http2_of(session, user);
    ct_http2_stream_t *st = ct_http2_stream_of(h2, id);
    (void)flags;
    if (!st || st->dropped || !st->head) return 0;
    if (message_size(st) + len > h2->cfg.max_message) return too_large(h2, st);
    return ct_http2_append(h2, &st->body, data, len) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
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
        r = ct_http2_append(h2, &st->head, line, (size_t)n);
        if (r == 0 && blen) r = ct_http2_append(h2, &st->head, st->body->base, blen);
        if (r == 0) r = ct_http2_append(h2, &st->head, blen ? "\r\n0\r\n" : "0\r\n", blen ? 5 : 3);
        if (r == 0) r = ct_http2_append(h2, &st->head, st->trailers->base, st->trailers->len);
        if (r == 0) r = ct_http2_append(h2, &st->head, "\r\n", 2);
    } else {
        n = needs_length(h2, st) ? length_line(line, blen) : 2;
        if (n == 2) memcpy(line, "\r\n", 2);
        r = ct_http2_append(h2, &st->head, line, (size_t)n);
        if (r == 0 && blen) r = ct_http2_append(h2, &st->head, st->body->base, blen);
    }
    if (r == 0) r = ct_http2_queue_message(h2, st->head);
    if (r != 0) return r;
    st->head = NULL;
    ct_http2_put(h2, &st->body);
    ct_http2_put(h2, &st->trailers);
    if (!h2->cfg.server) st->answered = 1;
    ct_http2_credit(h2, CREDIT_PER_MESSAGE);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    ct_http2_t *h2 = ct_http2_of(session, user);
    ct_http2_stream_t *st;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (h2->cfg.stats && frame->hd.type == NGHTTP2_RST_STREAM)
        ct_counter_add(&h2->cfg.stats->resets_received, 1);
    if (h2->cfg.stats && frame->hd.type == NGHTTP2_GOAWAY)
        ct_counter_add(&h2->cfg.stats->goaways_received, 1);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    st = ct_http2_stream_of(h2, frame->hd.stream_id);
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
    ct_http2_t *h2 = ct_http2_of(session, user);
    ct_http2_stream_t *st = ct_http2_stream_of(h2, id);
    int r = 0;
    if (h2->cfg.stats) ct_counter_add(&h2->cfg.stats->streams, 1);
    if (!st || ct_transport_is_closing(&h2->transport)) return 0;
    /* on a broken connection the end of the receive side fails them all */
    if (!h2->cfg.server && !st->answered && !h2->broken)
        r = ct_http2_stand_in(h2, st,
                              nghttp2_http2_strerror(code != 0 ? code : NGHTTP2_INTERNAL_ERROR));
    nghttp2_session_set_stream_user_data(session, id, NULL);
    if (st->peers) h2->peer_streams--;
    ct_http2_stream_release(h2, st);
    return r == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A request nghttp2 could not send (the server went away first): its
 * caller hears it as refused, which is safe to send again. */
static int on_frame_not_sent(nghttp2_session *session, const nghttp2_frame *frame, int error,
                             void *user) {
    ct_http2_t *h2 = ct_http2_of(session, user);
    ct_http2_stream_t *st;
    (void)error;
    if (h2->cfg.server || frame->hd.type != NGHTTP2_HEADERS) return 0;
    st = ct_http2_stream_of(h2, frame->hd.stream_id);
    if (!st || st->answered) return 0;
    return ct_http2_stand_in(h2, st, "REFUSED_STREAM") == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A GOAWAY of ours with an error: the peer broke the protocol, and the
 * connection ends with CT_EMALFORMED once it is out. */
static int on_frame_sent(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    ct_http2_t *h2 = ct_http2_of(session, user);
    if (frame->hd.type == NGHTTP2_DATA) ct_http2_credit(h2, CREDIT_PER_DATA_SENT);
    if (frame->hd.type == NGHTTP2_RST_STREAM) ct_http2_no_work(h2); /* a stream for nothing */
    if (h2->cfg.stats && frame->hd.type == NGHTTP2_RST_STREAM)
        ct_counter_add(&h2->cfg.stats->resets_sent, 1);
    if (h2->cfg.stats && frame->hd.type == NGHTTP2_GOAWAY)
        ct_counter_add(&h2->cfg.stats->goaways_sent, 1);
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR &&
        !h2->broken)
        h2->broken = CT_EMALFORMED;
    return 0;
}

/* ---- frames that do no work (the flood budget) ------------------------------- */

void ct_http2_credit(ct_http2_t *h2, double frames) {
    uint64_t now = uv_now(h2->transport.loop->uv);
    h2->flood_budget += frames + (double)(now - h2->flood_at_ms) * CT_HTTP2_FLOOD_RATE / 1000;
    h2->flood_at_ms = now;
    if (h2->flood_budget > CT_HTTP2_FLOOD_BURST) h2->flood_budget = CT_HTTP2_FLOOD_BURST;
}

void ct_http2_no_work(ct_http2_t *h2) {
    ct_http2_credit(h2, -1);
    if (h2->flood_budget < 0) h2->flooded = 1;
}

/* A server's HEADERS that opens a stream over max_streams: nghttp2 refuses
 * it, and nothing is done for it. */
static int refused_stream(nghttp2_session *session, const ct_http2_t *h2, int32_t id) {
    return h2->cfg.server && id > nghttp2_session_get_last_proc_stream_id(session) &&
           h2->peer_streams >= h2->cfg.max_streams;
}

/* Every frame's header, before its payload: the ones that can do no work
 * are counted here, before nghttp2 spends anything on them. */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user) {
    ct_http2_t *h2 = ct_http2_of(session, user);
    int idle = 0;
    switch (hd->type) {
    case NGHTTP2_DATA:
        idle = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM);
        break;
    case NGHTTP2_HEADERS:
        idle = refused_stream(session, h2, hd->stream_id);
        break;
    case NGHTTP2_PRIORITY:
    case NGHTTP2_RST_STREAM:
    case NGHTTP2_WINDOW_UPDATE:
        idle = 1;
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        idle = !(hd->flags & NGHTTP2_FLAG_ACK);
        break;
    case NGHTTP2_CONTINUATION:
        idle = hd->length == 0;
        break;
    default:
        break;
    }
    if (idle) ct_http2_no_work(h2);
    return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int error,
                            void *user) {
    (void)frame;
    (void)error;
    ct_http2_no_work(ct_http2_of(session, user));
    return 0;
}

void ct_http2_recv_callbacks(nghttp2_session_callbacks *cbs) {
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_sent);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_sent);
}
