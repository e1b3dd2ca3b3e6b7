/* HTTP/2's parts (private): each stream's state, and what the transport
 * (http2.c), the reading side (http2_recv.c: frames to HTTP/1.1 messages)
 * and the sending side (http2_send.c: HTTP/1.1 messages to streams) share. */
#ifndef CTOWER_SRC_HTTP2_STREAM_H
#define CTOWER_SRC_HTTP2_STREAM_H

#include "ctower/http2.h"

#include <nghttp2/nghttp2.h>

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
    int peers;       /* server: a stream the peer opened (counted in peer_streams) */
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

static inline ct_http2_t *ct_http2_of(nghttp2_session *session, void *user_data) {
    (void)session;
    return user_data;
}

static inline ct_http2_stream_t *ct_http2_stream_of(ct_http2_t *h2, int32_t id) {
    return nghttp2_session_get_stream_user_data(h2->session, id);
}

/* Buffers of h2's pool: room for n more bytes in *b (a bigger buffer if
 * need be), n bytes appended, *b given back. 0 or UV_ENOMEM. */
int ct_http2_reserve(ct_http2_t *h2, ct_buf_t **b, size_t n);
int ct_http2_append(ct_http2_t *h2, ct_buf_t **b, const void *p, size_t n);
void ct_http2_put(ct_http2_t *h2, ct_buf_t **b);

/* A stream's state, from the free list; and back to it with its buffers. */
ct_http2_stream_t *ct_http2_stream_new(ct_http2_t *h2);
void ct_http2_stream_release(ct_http2_t *h2, ct_http2_stream_t *st);

/* A message for the reader, delivered after nghttp2 returns. 0 or UV_ENOMEM. */
int ct_http2_queue_message(ct_http2_t *h2, ct_buf_t *msg);

/* A client's stream that ends without its response: a 502 of ours naming
 * why. 0 or UV_ENOMEM. */
int ct_http2_stand_in(ct_http2_t *h2, ct_http2_stream_t *st, const char *why);

/* The pump runs at the end of this loop turn. */
void ct_http2_schedule_pump(ct_http2_t *h2);

/* The flood budget (see http2.h): a frame that did no work spends one, and
 * work done earns credit. */
void ct_http2_no_work(ct_http2_t *h2);
void ct_http2_credit(ct_http2_t *h2, double frames);

/* nghttp2's callbacks for what arrives (http2_recv.c). */
void ct_http2_recv_callbacks(nghttp2_session_callbacks *cbs);

/* A request (client) or response (server) submitted to nghttp2: 0, CT_EINVAL
 * (not one whole message of its side; msg is still the caller's), UV_EPIPE
 * (no stream ids left) or UV_ENOMEM (http2_send.c). */
int ct_http2_send_request(ct_http2_t *h2, ct_buf_t *msg);
int ct_http2_send_response(ct_http2_t *h2, ct_buf_t *msg);

#endif
