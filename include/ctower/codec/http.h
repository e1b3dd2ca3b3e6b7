/* The HTTP/1.1 codec: one whole HTTP message per frame, for pipelined
 * clients and servers (HTTP/1.1 has no tags: use it with ct_pipeline_*, not
 * with the multiplex protocol).
 *
 * A frame's payload is the message's bytes as they are on the wire: start
 * line, header fields, the empty line, and the body in its transfer coding
 * (a chunked body keeps its chunks). ct_http_parse_request() and
 * ct_http_parse_response() read a payload into a message view;
 * ct_http_format_request() and ct_http_format_response() write one.
 *
 * A codec is for one side of a connection:
 * - ct_http_codec_init_server(): decodes requests, encodes responses;
 * - ct_http_codec_init_client(): encodes requests, decodes responses.
 *
 * The parsing is http_parser's (Node.js's parser, as Debian packages it),
 * with its strictness: a request with both Content-Length and
 * Transfer-Encoding, two Content-Lengths, a Transfer-Encoding other than
 * chunked last, bad characters in the start line or a field: all these
 * are CT_EMALFORMED, and end the connection, since what follows could not
 * be framed with certainty (request smuggling). A message over max_payload
 * bytes is CT_EFRAMETOOLARGE (decided from a Content-Length as soon as the
 * head is read); a head over its limits (ct_http_codec_limits()) is
 * CT_EHEADERTOOLARGE. A server with an on_error hook answers these with
 * ct_http_format_refusal() before it closes (server.h).
 *
 * What framing needs beyond one message is kept here:
 * - The response to a HEAD request has no body, whatever its headers say.
 *   Each side remembers which of the requests awaiting their responses are
 *   HEADs (requests are answered in order): at most CT_HTTP_MAX_PENDING of
 *   them. The codec says so (its max_pending), and the clients, servers and
 *   reconnect layer on a stream keep their in-flight limit within it. Only
 *   a codec driven by hand can get one more: CT_EOVERLOADED (refused to
 *   send, on a client side; a decode error, on a server side).
 * - Interim responses (1xx: 100 Continue, 103 Early Hints) precede the
 *   final response to the same request: a client's frame holds them, before
 *   its payload, and the payload is the final response.
 * - A response whose end is the connection's end (no Content-Length, not
 *   chunked, with a body) cannot be framed on a connection that carries
 *   more: it is CT_EMALFORMED.
 *
 * Encoding checks that the payload is exactly one message of the right
 * kind (CT_EINVAL otherwise: a request given to a server's codec, a
 * truncated body, bytes after the message), and writes it as it is: a
 * message that does not frame would hand later responses to the wrong
 * requests.
 *
 * A request that is its connection's last ("Connection: close", or
 * HTTP/1.0 without keep-alive) makes the server's codec answer
 * CT_CODEC_LAST when its response is encoded: the stream then shuts its
 * sending side down after the response, and the client, reading the end,
 * closes. (The response should say "Connection: close" too; the codec sends
 * what it is given.) Requests that follow the last one are not read (RFC
 * 9112 9.6: the server must not process them): their bytes wait unread
 * until the connection ends, or end it with CT_EFRAMETOOLARGE once they
 * reach max_payload.
 *
 * A request with "Expect: 100-continue" (HTTP/1.1) whose head has come
 * and whose body has not gets "HTTP/1.1 100 Continue" from the server's
 * codec (codec.h's reply), so that a client waiting for it (curl, for a
 * large body) sends its body at once instead of after its own delay. Only
 * when every earlier request on the connection has been answered: sent
 * before an earlier final response, the interim answer would be read as
 * that request's. A body over max_payload is refused from its
 * Content-Length before any 100 Continue (413).
 *
 * Not handled: switching protocols (a 101 response, or CONNECT, ends
 * HTTP/1.1 on the connection: the bytes after it must still be HTTP/1.1
 * messages, or the connection ends with CT_EMALFORMED).
 */
#ifndef CTOWER_CODEC_HTTP_H
#define CTOWER_CODEC_HTTP_H

#include "ctower/buf.h"
#include "ctower/codec.h"
#include "ctower/context.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CT_HTTP_MAX_PENDING = 512,            /* requests awaiting their responses, per connection */
    CT_HTTP_MAX_HEADERS = 64,             /* header (and trailer) fields a message view holds */
    CT_HTTP_DEFAULT_MAX_HEADER = 64 << 10 /* bytes of a start line and fields, by default */
};

/* The HTTP/1.1 codec of one side of a connection. */
typedef struct ct_http_codec {
    ct_codec_t codec; /* first: a ct_http_codec_t * is a ct_codec_t * */
    /* private */
    uint64_t parser[4]; /* an http_parser, whose header this one does not include */
    int client;         /* 1: decodes responses; 0: decodes requests */
    int head;           /* the message being decoded answers a HEAD request */
    int trusted;        /* ct_http_codec_trust_sent() */
    int ended;          /* a server's codec read its connection's last request */
    size_t interim;     /* bytes of 1xx responses before the pending one */
    size_t max_header;  /* bytes of the head at most (ct_http_codec_limits) */
    uint32_t max_fields;
    uint32_t nfields;   /* of the message being decoded */
    int in_name;        /* its last piece was a field's name */
    int why;            /* the error a callback refused the message with */
    int chunked;        /* its body is chunked (known once its head is read) */
    int expect_name;    /* its last field's name was Expect */
    int expects;        /* it asked for 100-continue */
    int wants_continue; /* a server's: to answer 100 Continue once its head is whole */
    uint32_t requests;  /* requests seen (sent by a client, received by a server) */
    uint32_t responses; /* responses seen likewise: their difference is pending */
    uint64_t heads[CT_HTTP_MAX_PENDING / 64];  /* bit i % MAX: request i is a HEAD */
    uint64_t closes[CT_HTTP_MAX_PENDING / 64]; /* ... request i is its connection's last */
} ct_http_codec_t;

/* Initializes codec for a server (or a proxy's listening side): it decodes
 * requests and encodes responses, of at most max_payload bytes each (0: 1
 * MiB). Returns 0, or CT_EINVAL for a NULL codec, as every init of a codec
 * or a service does. */
int ct_http_codec_init_server(ct_http_codec_t *codec, size_t max_payload);

/* Likewise, for a client: encodes requests, decodes responses. Returns 0
 * or CT_EINVAL. */
int ct_http_codec_init_client(ct_http_codec_t *codec, size_t max_payload);

/* Limits on what a peer may send before the body: max_header bytes of
 * head, from the start line to the blank line after the fields (0:
 * CT_HTTP_DEFAULT_MAX_HEADER), and max_fields header (and trailer) fields
 * (0: CT_HTTP_MAX_HEADERS, which is also the most a message view holds).
 * Past either, decoding fails with CT_EHEADERTOOLARGE (a server answers
 * 431, see ct_http_refusal_status()); a body whose
 * Content-Length is over max_payload fails with CT_EFRAMETOOLARGE as soon
 * as the head is read. Returns 0, or CT_EINVAL for max_fields over
 * CT_HTTP_MAX_HEADERS. */
int ct_http_codec_limits(ct_http_codec_t *codec, size_t max_header, size_t max_fields);

/* Encoding parses each message to check it, which is about as costly as
 * decoding it. A side whose messages are whole by construction can skip
 * that: messages written by ct_http_format_*(), or framed by an HTTP codec
 * (a proxy forwarding what it read). Then only a request's method is read
 * (for HEAD), and a message that is not one whole message desynchronizes
 * the connection: responses go to the wrong requests. */
void ct_http_codec_trust_sent(ct_http_codec_t *codec);

/* A view of bytes inside a message (or of a static string). */
typedef struct ct_http_str {
    const char *p; /* the first byte (not NUL-terminated) */
    size_t len;    /* bytes at p */
} ct_http_str_t;

/* One header (or trailer) field of a message view: name and value. */
typedef struct ct_http_field {
    ct_http_str_t name;  /* as sent, in its case */
    ct_http_str_t value; /* trimmed of spaces around it */
} ct_http_field_t;

/* A message read by ct_http_parse_*(): views into its payload, valid while
 * the payload is. */
typedef struct ct_http_message {
    ct_http_str_t method; /* requests: "GET", ... (a static string) */
    ct_http_str_t target; /* requests: "/path?query" as sent */
    int status;           /* responses: 200, ... */
    ct_http_str_t reason; /* responses: "OK", as sent */
    int version_minor;    /* HTTP/1.x: 0 or 1 */
    int keep_alive;       /* 0: the peer will close, or asks to (Connection: close, 1.0) */
    size_t nfields;       /* header fields, then trailer fields */
    size_t nheaders;      /* of them, the header fields (the rest are trailers) */
    ct_http_field_t fields[CT_HTTP_MAX_HEADERS]; /* nfields of them */
    ct_http_str_t body; /* the content; a chunked body is joined in place */
} ct_http_message_t;

/* Reads the request data[0..len) (one whole message, as a server's codec
 * frames it) into *msg. A chunked body's chunks are moved together inside
 * data, so that msg->body is one run of bytes: data is changed. Returns 0,
 * CT_EMALFORMED (not one whole request) or CT_EFRAMETOOLARGE (more than
 * CT_HTTP_MAX_HEADERS fields). */
int ct_http_parse_request(uint8_t *data, size_t len, ct_http_message_t *msg);

/* Likewise for a response; head: it answers a HEAD request (no body). */
int ct_http_parse_response(uint8_t *data, size_t len, int head, ct_http_message_t *msg);

/* The value of msg's first field called name (case-insensitive), or NULL. */
const ct_http_str_t *ct_http_field(const ct_http_message_t *msg, const char *name);

/* Writes a request into out[0..cap): the start line, the fields in fields
 * (NULL, or whole lines each ending in "\r\n", such as "Host: a\r\n"), a
 * Content-Length when there is a body or the method usually has one (POST,
 * PUT, PATCH), the empty line and body[0..body_len). *size gets the
 * message's size, whether it fitted or not (out may be NULL to ask).
 * Returns 0, CT_EINVAL (a method or target with spaces or line ends, fields
 * that are not lines) or CT_EFRAMETOOLARGE (cap too small). */
int ct_http_format_request(uint8_t *out, size_t cap, const char *method, const char *target,
                           const char *fields, const void *body, size_t body_len, size_t *size);

/* Likewise for a response with status (100-999; the reason phrase is the
 * standard one) and always a Content-Length, except for 1xx, 204 and 304,
 * which have no body (CT_EINVAL if body_len > 0). The answer to a HEAD says
 * the length of the body a GET would get, and has none: body NULL and
 * body_len that length. */
int ct_http_format_response(uint8_t *out, size_t cap, int status, const char *fields,
                            const void *body, size_t body_len, size_t *size);

/* Answers request in one call: a buffer from pool (to return as the
 * service's response) holding the whole response, with status, fields
 * (NULL, or whole lines each ending in "\r\n", without Content-Length or
 * Transfer-Encoding) and body[0..body_len), as ct_http_format_response()
 * writes it. From the request (a view of ct_http_parse_request(); NULL for
 * none) it adds "Connection: close" when the request is its connection's
 * last, "Connection: keep-alive" to an HTTP/1.0 request that keeps it
 * (unless fields have a Connection of their own), and sends no body to a
 * HEAD (its Content-Length says body_len). Returns 0 with *response,
 * CT_EINVAL (a status or fields ct_http_format_response() refuses, a body
 * for a status that has none) or UV_ENOMEM. */
int ct_http_respond(ct_buf_pool_t *pool, const ct_http_message_t *request, int status,
                    const char *fields, const void *body, size_t body_len, void **response);

/* The status a server answers a refused request with, by the error that
 * refused it (the codec's, or the listener's timeouts): CT_EMALFORMED 400,
 * CT_EREQTIMEOUT 408, CT_EFRAMETOOLARGE 413 (a body over the maximum,
 * decided from its Content-Length before any of it arrives),
 * CT_EHEADERTOOLARGE 431 (too many header bytes or fields); 0 for any
 * other error. */
int ct_http_refusal_status(int error);

/* Writes that answer, "Connection: close" and a one-line body, as
 * ct_http_format_response() does; CT_EINVAL for an error that has none.
 * A server's on_error hook (server.h) sends it for the refusal. */
int ct_http_format_refusal(uint8_t *out, size_t cap, int error, size_t *size);

/* ---- the request context on HTTP (context.h) ------------------------------ *
 *
 * Two fields carry it: "ctower-timeout", the time the caller has left, in
 * grpc-timeout's form ("250m": ct_context_format_timeout()), and W3C's
 * "traceparent". The time left rather than a date: two hosts never compare
 * clocks, and the time spent on the wire is the only error. The same
 * fields serve HTTP/2, whose messages are written as HTTP/1.1 here. */

/* Room for ct_http_format_context()'s fields at most. */
#define CT_HTTP_CONTEXT_FIELDS_MAX 100

/* Reads the context of the message data[0..len) (a request's head is
 * enough) into *ctx: a deadline now + the time "ctower-timeout" gives (the
 * earlier, if ctx had one) and the trace "traceparent" gives. Values that
 * do not parse are ignored, as W3C asks of traceparent, so a bad field
 * costs a request its context, not its answer. Returns 1 if it found
 * either, CT_EMALFORMED if it found neither but a field that did not
 * parse (for a count of them), 0 if neither field is there. */
int ct_http_read_context(const uint8_t *data, size_t len, uint64_t now, ct_context_t *ctx);

/* Writes the fields that carry ctx at now ("ctower-timeout: 250m\r\n" if it
 * has a deadline, "traceparent: ...\r\n" if it has a trace) into
 * out[0..cap), NUL-terminated, as ct_http_format_request()'s fields take
 * them. Returns their length (0: nothing to carry), or CT_EINVAL if cap is
 * under CT_HTTP_CONTEXT_FIELDS_MAX. */
int ct_http_format_context(const ct_context_t *ctx, uint64_t now, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
