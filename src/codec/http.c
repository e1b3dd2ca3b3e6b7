/* The HTTP/1.1 codec: http_parser finds where each message ends, and this
 * file keeps what framing needs across messages (which requests were HEADs,
 * interim responses).
 *
 * http_parser is incremental: the bytes of a message that arrive over many
 * reads are each given to it once (codec.scan counts them), and it stops at
 * the message's end because on_message_complete pauses it. A new parser
 * state starts each message, so that nothing a message said (Connection:
 * close, an upgrade) stops the next one from being read. */
#include "ctower/codec/http.h"
#include "ctower/error.h"
#include "http_chunked.h"
#include "http_rules.h"

#include <http_parser.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(http_parser) <= sizeof(((ct_http_codec_t *)0)->parser),
               "ct_http_codec_t has no room for an http_parser");

static http_parser *parser_of(ct_http_codec_t *c) {
    return (http_parser *)(void *)c->parser;
}

/* The pending request's bit in one of the rings (heads, closes). */
static int pending_bit(const ct_http_codec_t *c, const uint64_t *ring) {
    uint32_t i = c->responses % CT_HTTP_MAX_PENDING;
    if (c->requests == c->responses) return 0; /* nothing pending: a response that is a desync */
    return (int)((ring[i / 64] >> (i % 64)) & 1);
}

static int pending_is_head(const ct_http_codec_t *c) {
    return pending_bit(c, c->heads);
}

static void set_bit(uint64_t *ring, uint32_t i, int on) {
    uint64_t bit = (uint64_t)1 << (i % 64);
    ring[i / 64] = on ? ring[i / 64] | bit : ring[i / 64] & ~bit;
}

/* Counts one more request, a HEAD or not, its connection's last or not;
 * CT_EOVERLOADED if too many wait. */
static int push_request(ct_http_codec_t *c, int head, int last) {
    uint32_t i = c->requests % CT_HTTP_MAX_PENDING;
    if (c->requests - c->responses >= CT_HTTP_MAX_PENDING) return CT_EOVERLOADED;
    set_bit(c->heads, i, head);
    set_bit(c->closes, i, last);
    c->requests++;
    return 0;
}

static int is_interim(int status) {
    return status >= 100 && status < 200 && status != 101;
}

/* on_headers_complete for a response: 1 tells http_parser there is no body,
 * and an error refuses a body whose end is the connection's end: the bytes
 * after it could never be framed. */
static int response_headers(http_parser *p, int head) {
    if (ct_http_has_no_body(p->status_code, head)) return 1;
    if (p->flags & F_CHUNKED) return 0;
    return p->uses_transfer_encoding || !(p->flags & F_CONTENTLENGTH) ? -1 : 0;
}

/* A field name, or a piece of one (a name that spans reads comes in
 * pieces): a new field when a value came before it. More fields than the
 * view holds (or than the limit) are refused, but only once the head (or
 * the trailers) are whole: http_parser hands over a name that a read cuts
 * before it knows the name is valid, and a name that turns out malformed
 * must be CT_EMALFORMED however the bytes were cut. */
static int on_field_name(http_parser *p, const char *at, size_t len) {
    ct_http_codec_t *c = p->data;
    if (!ct_http_name_ok(at, len)) return -1;
    if (!c->in_name) {
        c->in_name = 1;
        c->nfields++;
    }
    /* (a name cut by a read is not recognised: its client waits for its own
     * delay, as without this) */
    c->expect_name = len == 6 && strncasecmp(at, "expect", 6) == 0;
    return 0;
}

static int on_field_value(http_parser *p, const char *at, size_t len) {
    ct_http_codec_t *c = p->data;
    if (c->in_name && c->expect_name && len == 12 && strncasecmp(at, "100-continue", 12) == 0)
        c->expects = 1;
    c->in_name = 0;
    return 0;
}

/* What is sent is checked without a codec behind p->data. */
static int on_name_checked(http_parser *p, const char *at, size_t len) {
    (void)p;
    return ct_http_name_ok(at, len) ? 0 : -1;
}

/* The head is whole: from now on the body timeout applies, and a body over
 * the maximum is refused from its Content-Length, before any of it is read. */
static int head_done(http_parser *p) {
    ct_http_codec_t *c = p->data;
    c->codec.in_header = 0;
    if (c->nfields > c->max_fields) return c->why = CT_EHEADERTOOLARGE, -1;
    if (p->content_length != ULLONG_MAX && (p->flags & F_CONTENTLENGTH) &&
        p->content_length > c->codec.max_payload)
        return c->why = CT_EFRAMETOOLARGE, -1;
    return 0;
}

/* http_parser's flags at the message's end no longer say it was chunked
 * (after trailers, F_CHUNKED is gone): the head says it. */
static int on_request_headers(http_parser *p) {
    ct_http_codec_t *c = p->data;
    if (head_done(p) != 0) return -1;
    c->chunked = (p->flags & F_CHUNKED) != 0;
    /* a body will follow, and nothing earlier waits for its answer */
    c->wants_continue = c->expects && p->http_major == 1 && p->http_minor >= 1 &&
                        c->requests == c->responses &&
                        (c->chunked || (p->content_length > 0 && p->content_length != ULLONG_MAX));
    return 0;
}

static int on_complete(http_parser *p) {
    http_parser_pause(p, 1);
    return 0;
}

/* A received message is whole: its trailers count against the limit too. */
static int on_decoded_complete(http_parser *p) {
    ct_http_codec_t *c = p->data;
    if (c->nfields > c->max_fields) return c->why = CT_EHEADERTOOLARGE, -1;
    return on_complete(p);
}

static int on_decoded_response_headers(http_parser *p) {
    ct_http_codec_t *c = p->data;
    int r;
    if (head_done(p) != 0) return -1;
    r = response_headers(p, c->head);
    c->chunked = r == 0 && (p->flags & F_CHUNKED);
    return r;
}

static const http_parser_settings decode_settings = {
    .on_header_field = on_field_name,
    .on_header_value = on_field_value,
    .on_headers_complete = on_decoded_response_headers, /* responses only: see start_message */
    .on_message_complete = on_decoded_complete,
};

static const http_parser_settings request_decode_settings = {
    .on_header_field = on_field_name,
    .on_header_value = on_field_value,
    .on_headers_complete = on_request_headers,
    .on_message_complete = on_decoded_complete,
};

/* For checking what is sent. */
static const http_parser_settings request_settings = {
    .on_header_field = on_name_checked,
    .on_message_complete = on_complete,
};

static void start_message(ct_http_codec_t *c) {
    http_parser_init(parser_of(c), c->client ? HTTP_RESPONSE : HTTP_REQUEST);
    c->head = c->client && pending_is_head(c);
    c->codec.in_header = 1;
    c->nfields = 0;
    c->in_name = 0;
    c->why = 0;
    c->chunked = 0;
    c->expect_name = 0;
    c->expects = 0;
    c->wants_continue = 0;
}

/* An interim response's fields do not count against the final one's. */
static int parse_error(const ct_http_codec_t *c) {
    if (c->why) return c->why;
    return HTTP_PARSER_ERRNO(parser_of((ct_http_codec_t *)c)) == HPE_HEADER_OVERFLOW
               ? CT_EHEADERTOOLARGE
               : CT_EMALFORMED;
}

/* The message that ends at codec.scan is whole: an interim response is kept
 * in the frame and the next one read (returns 0), anything else is the
 * frame (CT_CODEC_FRAME) or an error. A chunked one is whole only if a
 * strict reading agrees (http_chunked.h). */
static int message_done(ct_http_codec_t *c, const uint8_t *data, ct_frame_t *frame) {
    http_parser *p = parser_of(c);
    if (c->chunked &&
        !ct_http_chunked_ok((const char *)data + c->interim, c->codec.scan - c->interim))
        return CT_EMALFORMED;
    if (c->client && is_interim(p->status_code)) {
        c->interim = c->codec.scan;
        start_message(c);
        return 0;
    }
    if (c->client) {
        if (c->responses != c->requests) c->responses++; /* else a desync, the client's to report */
    } else {
        int last = !http_should_keep_alive(p);
        if (push_request(c, p->method == HTTP_HEAD, last) != 0) return CT_EOVERLOADED;
        c->ended = last;
    }
    frame->payload_offset = c->interim;
    frame->payload_len = c->codec.scan - c->interim;
    frame->frame_len = c->codec.scan;
    return CT_CODEC_FRAME;
}

/* Where the bytes given to http_parser stop: at end, or while the head is
 * read, at the most it may take. A head is never read past its limit, so
 * a head that is too long is CT_EHEADERTOOLARGE, and a malformed one
 * CT_EMALFORMED, whether its bytes come at once or cut in reads. */
static size_t head_stop(const ct_http_codec_t *c, size_t end) {
    size_t limit = c->interim + c->max_header;
    return c->codec.in_header && end > limit ? limit : end;
}

static int http_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    ct_http_codec_t *c = (ct_http_codec_t *)codec;
    http_parser *p = parser_of(c);
    size_t end = len < codec->max_payload ? len : codec->max_payload;
    if (c->ended) /* what follows a connection's last request is not read */
        return len >= codec->max_payload ? CT_EFRAMETOOLARGE : CT_CODEC_NEED_MORE;
    if (codec->scan == 0 || codec->scan > len) { /* a new frame, or not the bytes we saw */
        codec->scan = 0;
        c->interim = 0;
        start_message(c);
    }
    while (codec->scan < end) { /* never 0 bytes: to http_parser, that is the peer closing */
        size_t stop = head_stop(c, end), n;
        int r;
        if (codec->scan == stop) return CT_EHEADERTOOLARGE;
        p->data = c; /* the codec may have been copied since */
        n = http_parser_execute(p, c->client ? &decode_settings : &request_decode_settings,
                                (const char *)data + codec->scan, stop - codec->scan);
        codec->scan += n;
        if (HTTP_PARSER_ERRNO(p) != HPE_PAUSED) {
            if (HTTP_PARSER_ERRNO(p) != HPE_OK) return parse_error(c);
            continue; /* took every byte: the message goes on */
        }
        if ((r = message_done(c, data, frame)) != 0) return r;
    }
    if (codec->in_header && codec->scan == head_stop(c, SIZE_MAX)) return CT_EHEADERTOOLARGE;
    if (len >= codec->max_payload) return codec->in_header ? CT_EHEADERTOOLARGE : CT_EFRAMETOOLARGE;
    if (c->wants_continue) { /* its head is whole, its body is still to come */
        static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->wants_continue = 0;
        codec->reply = go_on;
        codec->reply_len = sizeof go_on - 1;
    }
    return CT_CODEC_NEED_MORE;
}

/* What checking a payload to send needs to know. */
typedef struct encode_check {
    int head; /* a response: it answers a HEAD */
    int interim;
} encode_check_t;

static int on_encoded_response_headers(http_parser *p) {
    encode_check_t *check = p->data;
    check->interim = is_interim(p->status_code);
    return response_headers(p, check->head);
}

static const http_parser_settings encode_settings = {
    .on_header_field = on_name_checked,
    .on_headers_complete = on_encoded_response_headers,
    .on_message_complete = on_complete,
};

/* Parses one message from payload[at..len); returns where it ends, or 0 if
 * it is not one whole message. */
static size_t whole_message(http_parser *p, const http_parser_settings *settings,
                            const uint8_t *payload, size_t at, size_t len) {
    size_t n = http_parser_execute(p, settings, (const char *)payload + at, len - at);
    return HTTP_PARSER_ERRNO(p) == HPE_PAUSED ? at + n : 0;
}

/* A server's response leaves: its request is no longer pending, and if that
 * request was its connection's last, so is the response. */
static int pop_response(ct_http_codec_t *c) {
    int last = pending_bit(c, c->closes);
    if (c->responses != c->requests) c->responses++;
    return last ? CT_CODEC_LAST : 0;
}

/* A client's payload: exactly one request. */
static int check_request(ct_http_codec_t *c, const uint8_t *payload, size_t len) {
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    if (len == 0 || whole_message(&p, &request_settings, payload, 0, len) != len) return CT_EINVAL;
    return push_request(c, p.method == HTTP_HEAD, 0); /* the server is the one to close */
}

/* A server's payload: interim responses, then exactly one final response. */
static int check_response(ct_http_codec_t *c, const uint8_t *payload, size_t len) {
    encode_check_t check = {pending_is_head(c), 1};
    size_t at = 0;
    while (check.interim) {
        http_parser p;
        http_parser_init(&p, HTTP_RESPONSE);
        p.data = &check;
        if (at == len || (at = whole_message(&p, &encode_settings, payload, at, len)) == 0)
            return CT_EINVAL;
    }
    return at == len ? pop_response(c) : CT_EINVAL;
}

static int http_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                       size_t *written) {
    ct_http_codec_t *c = (ct_http_codec_t *)codec;
    int r;
    if (len > codec->max_payload) return CT_EFRAMETOOLARGE;
    if (c->trusted)
        r = c->client ? push_request(c, len > 5 && memcmp(payload, "HEAD ", 5) == 0, 0)
                      : pop_response(c);
    else
        r = c->client ? check_request(c, payload, len) : check_response(c, payload, len);
    if (r < 0) return r;
    memcpy(out, payload, len);
    *written = len;
    return r;
}

static const ct_codec_vtable_t http_vtable = {http_decode, http_encode};

static void init(ct_http_codec_t *c, size_t max_payload, int client) {
    memset(c, 0, sizeof *c);
    c->codec.vtable = &http_vtable;
    c->codec.max_payload = max_payload ? max_payload : 1u << 20;
    c->codec.overhead = 0;
    c->codec.size = sizeof *c;
    c->codec.max_pending = CT_HTTP_MAX_PENDING;
    c->client = client;
    c->max_header = CT_HTTP_DEFAULT_MAX_HEADER;
    c->max_fields = CT_HTTP_MAX_HEADERS;
}

int ct_http_codec_limits(ct_http_codec_t *c, size_t max_header, size_t max_fields) {
    if (max_fields > CT_HTTP_MAX_HEADERS) return CT_EINVAL;
    c->max_header = max_header ? max_header : CT_HTTP_DEFAULT_MAX_HEADER;
    c->max_fields = max_fields ? (uint32_t)max_fields : CT_HTTP_MAX_HEADERS;
    return 0;
}

int ct_http_codec_init_server(ct_http_codec_t *c, size_t max_payload) {
    if (!c) return CT_EINVAL;
    init(c, max_payload, 0);
    return 0;
}

int ct_http_codec_init_client(ct_http_codec_t *c, size_t max_payload) {
    if (!c) return CT_EINVAL;
    init(c, max_payload, 1);
    return 0;
}

void ct_http_codec_trust_sent(ct_http_codec_t *c) {
    c->trusted = 1;
}
