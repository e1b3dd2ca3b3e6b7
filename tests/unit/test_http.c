/* The HTTP/1.1 codec (framing, HEAD, interim responses, errors) and the
 * message views and writers. */
#include "testutil.h"

static ct_http_codec_t server, client;

static void init(void) {
    ct_http_codec_init_server(&server, 0);
    ct_http_codec_init_client(&client, 0);
}

TestSuite(http, .init = init);

#define BYTES(s) ((const uint8_t *)(s)), strlen(s)

/* Decodes every frame in text as a stream would, given it whole: the
 * frames' lengths go into lens, and the result that ended the loop is
 * returned (CT_CODEC_NEED_MORE when all of it was framed). */
static int frames_whole(ct_codec_t *c, const char *text, size_t *lens, size_t *offsets, int *n) {
    const uint8_t *p = (const uint8_t *)text;
    size_t len = strlen(text);
    *n = 0;
    for (;;) {
        ct_frame_t f;
        int r = len ? ct_codec_decode(c, p, len, &f) : CT_CODEC_NEED_MORE;
        if (r != CT_CODEC_FRAME) return r;
        lens[*n] = f.frame_len;
        offsets[(*n)++] = f.payload_offset;
        cr_assert_eq(f.payload_offset + f.payload_len, f.frame_len);
        p += f.frame_len;
        len -= f.frame_len;
    }
}

/* Likewise, with the bytes arriving one at a time (each call sees what is
 * buffered: the frame's start and one byte more). */
static int frames_bytewise(ct_codec_t *c, const char *text, size_t *lens, size_t *offsets, int *n) {
    const uint8_t *p = (const uint8_t *)text;
    size_t total = strlen(text), start = 0, have;
    *n = 0;
    for (have = 1; start + have <= total; have++) {
        ct_frame_t f;
        int r = ct_codec_decode(c, p + start, have, &f);
        if (r == CT_CODEC_NEED_MORE) continue;
        if (r != CT_CODEC_FRAME) return r;
        cr_assert_eq(f.frame_len, have, "a frame ends where its last byte arrives");
        lens[*n] = f.frame_len;
        offsets[(*n)++] = f.payload_offset;
        start += have;
        have = 0;
    }
    return CT_CODEC_NEED_MORE;
}

static const char *pipelined_requests = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                        "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                                        "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
                                        "HEAD /d HTTP/1.1\r\n\r\n";

Test(http, server_frames_pipelined_requests_however_they_arrive) {
    size_t lens[8], offs[8], lens2[8], offs2[8];
    int n, n2, i;
    cr_assert_eq(frames_whole(&server.codec, pipelined_requests, lens, offs, &n),
                 CT_CODEC_NEED_MORE);
    cr_assert_eq(n, 4);
    cr_assert_eq(lens[0], strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    cr_assert_eq(lens[1], strlen("POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"));
    cr_assert_eq(lens[3], strlen("HEAD /d HTTP/1.1\r\n\r\n"));
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(frames_bytewise(&server.codec, pipelined_requests, lens2, offs2, &n2),
                 CT_CODEC_NEED_MORE);
    cr_assert_eq(n2, n);
    for (i = 0; i < n; i++) {
        cr_assert_eq(lens2[i], lens[i]);
        cr_assert_eq(offs[i], 0);
    }
}

/* The client's side of a pipelined exchange: each request, then the
 * responses in order. */
static void send_request(ct_http_codec_t *c, const char *request) {
    uint8_t out[512];
    size_t written = 0;
    cr_assert_eq(ct_codec_encode(&c->codec, BYTES(request), out, &written), 0, "%s", request);
    cr_assert_eq(written, strlen(request));
    cr_assert_eq(memcmp(out, request, written), 0);
}

Test(http, a_response_to_head_has_no_body_whatever_its_headers_say) {
    const char *responses = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t lens[4], offs[4];
    int n;
    send_request(&client, "HEAD / HTTP/1.1\r\n\r\n");
    send_request(&client, "GET / HTTP/1.1\r\n\r\n");
    send_request(&client, "HEAD / HTTP/1.1\r\n\r\n");
    cr_assert_eq(frames_whole(&client.codec, responses, lens, offs, &n), CT_CODEC_NEED_MORE);
    cr_assert_eq(n, 3);
    cr_assert_eq(lens[0], strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
    cr_assert_eq(lens[1], strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));

    ct_http_codec_init_client(&client, 0);
    send_request(&client, "HEAD / HTTP/1.1\r\n\r\n");
    send_request(&client, "GET / HTTP/1.1\r\n\r\n");
    send_request(&client, "HEAD / HTTP/1.1\r\n\r\n");
    cr_assert_eq(frames_bytewise(&client.codec, responses, lens, offs, &n), CT_CODEC_NEED_MORE);
    cr_assert_eq(n, 3);
}

Test(http, interim_responses_belong_to_the_final_ones_frame) {
    const char *interim =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n";
    char text[512];
    size_t lens[4], offs[4];
    int n;
    snprintf(
        text, sizeof text, "%sHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok%s", interim,
        "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
    send_request(&client, "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
    send_request(&client, "DELETE / HTTP/1.1\r\n\r\n");
    send_request(&client, "GET / HTTP/1.1\r\n\r\n");
    cr_assert_eq(frames_whole(&client.codec, text, lens, offs, &n), CT_CODEC_NEED_MORE);
    cr_assert_eq(n, 3, "1xx responses are not frames of their own; 204 and 304 have no body");
    cr_assert_eq(offs[0], strlen(interim));
    cr_assert_eq(lens[0],
                 strlen(interim) + strlen("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"));
    cr_assert_eq(offs[1], 0);
}

Test(http, a_response_whose_end_is_the_connections_end_cannot_be_framed) {
    ct_frame_t f;
    send_request(&client, "GET / HTTP/1.1\r\n\r\n");
    cr_assert_eq(ct_codec_decode(&client.codec, BYTES("HTTP/1.1 200 OK\r\n\r\nbody"), &f),
                 CT_EMALFORMED);
    cr_assert_eq(ct_codec_decode(&client.codec, BYTES("HTTP/1.1 200 OK\r\n\r\n"), &f),
                 CT_EMALFORMED, "the error is sticky");
    ct_http_codec_init_client(&client, 0);
    send_request(&client, "GET / HTTP/1.1\r\n\r\n");
    cr_assert_eq(ct_codec_decode(&client.codec,
                                 BYTES("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"), &f),
                 CT_EMALFORMED);
}

Test(http, requests_that_could_be_smuggled_are_malformed) {
    static const char *bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "NOT HTTP\r\n\r\n",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        ct_frame_t f;
        ct_http_codec_init_server(&server, 0);
        cr_assert_eq(ct_codec_decode(&server.codec, BYTES(bad[i]), &f), CT_EMALFORMED, "%s",
                     bad[i]);
    }
}

/* Chunked framing that http_parser (built non-strict) would take, each
 * read as a strict backend reads it, and refused whole or byte by byte,
 * as a request and as a response. */
static const char *loose_chunks[] = {
    "3\r\nabcXX0\r\n\r\n",          /* junk where the data's CRLF belongs */
    "3\r\nabcXX0\r\nT: v\r\n\r\n",  /* likewise, with a trailer */
    "3\r\nabc\rX0\r\n\r\n",         /* a CR and junk */
    "3\rXabc\r\n0\r\n\r\n",         /* junk for the size line's LF */
    "3;x\rXabc\r\n0\r\n\r\n",       /* likewise after an extension */
    "3\r\nabc\r\n0\rX\r\n",         /* the last chunk's line */
    "3\r\nabc\r\n0\r\nT: v\rX\r\n", /* a trailer's line */
    "3\r\nabc\r\n0\r\n\rX",         /* the end */
    "3 \r\nabc\r\n0\r\n\r\n",       /* a space after the size */
    "3\r\nabc\n0\r\n\r\n",          /* a bare LF after the data */
};

static int decode_chunked(int response, const char *body, int bytewise) {
    static const char req_head[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char resp_head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    char msg[256];
    size_t lens[4], offs[4];
    int n;
    snprintf(msg, sizeof msg, "%s%s", response ? resp_head : req_head, body);
    if (response) {
        ct_http_codec_init_client(&client, 0);
        send_request(&client, "GET / HTTP/1.1\r\n\r\n");
        return bytewise ? frames_bytewise(&client.codec, msg, lens, offs, &n)
                        : frames_whole(&client.codec, msg, lens, offs, &n);
    }
    ct_http_codec_init_server(&server, 0);
    return bytewise ? frames_bytewise(&server.codec, msg, lens, offs, &n)
                    : frames_whole(&server.codec, msg, lens, offs, &n);
}

Test(http, loose_chunked_framing_is_malformed) {
    size_t i;
    int response, bytewise;
    for (i = 0; i < sizeof loose_chunks / sizeof *loose_chunks; i++)
        for (response = 0; response < 2; response++)
            for (bytewise = 0; bytewise < 2; bytewise++)
                cr_assert_eq(decode_chunked(response, loose_chunks[i], bytewise), CT_EMALFORMED,
                             "%s %s %s", response ? "response" : "request",
                             bytewise ? "byte by byte" : "whole", loose_chunks[i]);
}

Test(http, a_view_of_loose_chunked_framing_is_malformed) {
    size_t i;
    for (i = 0; i < sizeof loose_chunks / sizeof *loose_chunks; i++) {
        char msg[256];
        ct_http_message_t m;
        int n = snprintf(msg, sizeof msg, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                         loose_chunks[i]);
        cr_assert_eq(ct_http_parse_request((uint8_t *)msg, (size_t)n, &m), CT_EMALFORMED, "%s",
                     loose_chunks[i]);
    }
}

Test(http, strict_chunked_framing_with_extensions_and_trailers_frames) {
    static const char *good[] = {"0\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n",
                                 "3;a=b;c\r\nabc\r\nA\r\n0123456789\r\n0;z\r\nT: v\r\nU: w\r\n\r\n",
                                 "3\r\na\r\n\r\n0\r\n\r\n" /* data that holds CRLF */};
    size_t i;
    int response, bytewise;
    for (i = 0; i < sizeof good / sizeof *good; i++)
        for (response = 0; response < 2; response++)
            for (bytewise = 0; bytewise < 2; bytewise++)
                cr_assert_eq(decode_chunked(response, good[i], bytewise), CT_CODEC_NEED_MORE,
                             "%s %s %s", response ? "response" : "request",
                             bytewise ? "byte by byte" : "whole", good[i]);
}

/* A folded field (obs-fold) and bare LF line ends in a head are read as
 * RFC 9112 lets a recipient read them; `ctower proxy` writes such a head
 * anew before passing it on (tools/http_filter.c). */
Test(http, folded_fields_and_bare_lf_heads_frame) {
    static const char folded[] = "GET / HTTP/1.1\r\nA: 1\r\n 2\r\n\r\n";
    static const char bare_lf[] = "GET / HTTP/1.1\nA: 1\n\n";
    size_t lens[4], offs[4];
    int n;
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(frames_whole(&server.codec, folded, lens, offs, &n), CT_CODEC_NEED_MORE);
    cr_assert_eq(n, 1);
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(frames_bytewise(&server.codec, bare_lf, lens, offs, &n), CT_CODEC_NEED_MORE);
    cr_assert_eq(n, 1);
}

Test(http, a_message_over_the_maximum_is_too_large) {
    static char big[2048];
    ct_frame_t f;
    ct_http_codec_init_server(&server, 100);
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET /", 5); /* a target that never ends: a head too large (431) */
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(big), &f), CT_EHEADERTOOLARGE);
    ct_http_codec_init_server(&server, 100);
    cr_assert_eq(ct_codec_decode(&server.codec, (const uint8_t *)big, 99, &f), CT_CODEC_NEED_MORE);
    ct_http_codec_init_server(&server, 100);
    cr_assert_eq(ct_codec_decode(&server.codec,
                                 BYTES("POST / HTTP/1.1\r\nContent-Length: 200\r\n\r\nabc"), &f),
                 CT_EFRAMETOOLARGE, "decided from the Content-Length, before the body");
    ct_http_codec_init_server(&server, 100);
    snprintf(big, sizeof big, "POST / HTTP/1.1\r\nContent-Length: 200\r\n\r\n%0200d", 0);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(big), &f), CT_EFRAMETOOLARGE);
    ct_http_codec_init_server(&server, 100);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), &f),
                 CT_CODEC_FRAME);
}

Test(http, each_side_sends_only_whole_messages_of_its_kind) {
    uint8_t out[256];
    size_t w;
    cr_assert_eq(ct_codec_encode(&client.codec, BYTES("HTTP/1.1 200 OK\r\n\r\n"), out, &w),
                 CT_EINVAL);
    cr_assert_eq(ct_codec_encode(&client.codec,
                                 BYTES("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na"), out, &w),
                 CT_EINVAL, "a body cut short");
    cr_assert_eq(ct_codec_encode(&client.codec,
                                 BYTES("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"), out, &w),
                 CT_EINVAL, "two requests");
    cr_assert_eq(ct_codec_encode(&client.codec, (const uint8_t *)"", 0, out, &w), CT_EINVAL);
    cr_assert_eq(ct_codec_encode(&server.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), out, &w),
                 CT_EINVAL);
    cr_assert_eq(ct_codec_encode(&server.codec, BYTES("HTTP/1.1 100 Continue\r\n\r\n"), out, &w),
                 CT_EINVAL, "an interim response alone");
    cr_assert_eq(ct_codec_encode(&server.codec, BYTES("HTTP/1.1 200 OK\r\n\r\nrest"), out, &w),
                 CT_EINVAL, "a body the length does not say");
    cr_assert_eq(ct_codec_encode(&server.codec,
                                 BYTES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                                       "Content-Length: 2\r\n\r\nok"),
                                 out, &w),
                 0);
}

Test(http, a_server_answers_head_without_a_body) {
    ct_frame_t f;
    uint8_t out[256];
    size_t w;
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("HEAD / HTTP/1.1\r\n\r\n"), &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(ct_codec_encode(&server.codec,
                                 BYTES("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), out,
                                 &w),
                 CT_EINVAL, "the answer to HEAD has no body");
    cr_assert_eq(ct_codec_encode(&server.codec,
                                 BYTES("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), out, &w),
                 0);
    cr_assert_eq(ct_codec_encode(&server.codec,
                                 BYTES("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), out, &w),
                 CT_EINVAL, "the answer to GET has its body");
    cr_assert_eq(ct_codec_encode(&server.codec,
                                 BYTES("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), out,
                                 &w),
                 0);
}

Test(http, a_trusting_codec_reads_only_the_method_of_what_it_sends) {
    uint8_t out[256];
    size_t w;
    ct_frame_t f;
    ct_http_codec_trust_sent(&client);
    ct_http_codec_trust_sent(&server);
    cr_assert_eq(ct_codec_encode(&client.codec, BYTES("not a request"), out, &w), 0,
                 "the check is the caller's");
    cr_assert_eq(w, strlen("not a request"));
    send_request(&client, "HEAD / HTTP/1.1\r\n\r\n");
    cr_assert_eq(ct_codec_decode(&client.codec,
                                 BYTES("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), &f),
                 CT_CODEC_FRAME, "the answer to the first request");
    cr_assert_eq(
        ct_codec_decode(&client.codec, BYTES("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), &f),
        CT_CODEC_FRAME, "the answer to the HEAD, without a body");
    cr_assert_eq(f.frame_len, strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("HEAD / HTTP/1.1\r\n\r\n"), &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(ct_codec_encode(&server.codec, BYTES("HTTP/1.1 200 OK\r\n\r\n"), out, &w), 0);
    cr_assert_eq(server.requests - server.responses, 0, "the answer leaves, the HEAD is answered");
}

Test(http, the_answer_to_a_connections_last_request_is_its_last_message) {
    static const struct {
        const char *request;
        int last;
    } cases[] = {
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\n\r\n", 0},
    };
    uint8_t out[64];
    size_t i, w;
    ct_frame_t f;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        ct_http_codec_init_server(&server, 0);
        cr_assert_eq(ct_codec_decode(&server.codec, BYTES(cases[i].request), &f), CT_CODEC_FRAME);
        cr_assert_eq(
            ct_codec_encode(&server.codec, BYTES("HTTP/1.1 204 No Content\r\n\r\n"), out, &w),
            cases[i].last ? CT_CODEC_LAST : 0, "%s", cases[i].request);
    }
    /* RFC 9112 9.6: what follows the last request is not processed */
    ct_http_codec_init_server(&server, 64);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(cases[0].request), &f), CT_CODEC_FRAME);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("GET /next HTTP/1.1\r\n\r\n"), &f),
                 CT_CODEC_NEED_MORE, "a request after the last one is not read");
    memset(out, 'x', sizeof out);
    cr_assert_eq(ct_codec_decode(&server.codec, out, sizeof out, &f), CT_EFRAMETOOLARGE,
                 "but its bytes are bounded");
    ct_http_codec_trust_sent(&client);
    cr_assert_eq(ct_codec_encode(&client.codec,
                                 BYTES("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), out, &w),
                 0, "a client leaves the closing to the server");
}

Test(http, requests_waiting_for_their_responses_are_bounded) {
    uint8_t out[64];
    size_t w;
    ct_frame_t f;
    int i;
    for (i = 0; i < CT_HTTP_MAX_PENDING; i++)
        cr_assert_eq(ct_codec_encode(&client.codec, BYTES("HEAD / HTTP/1.1\r\n\r\n"), out, &w), 0);
    cr_assert_eq(ct_codec_encode(&client.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), out, &w),
                 CT_EOVERLOADED);
    cr_assert_eq(
        ct_codec_decode(&client.codec, BYTES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"), &f),
        CT_CODEC_FRAME);
    cr_assert_eq(f.frame_len, strlen("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
    cr_assert_eq(ct_codec_encode(&client.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), out, &w), 0,
                 "one answered makes room for one");
    for (i = 0; i < CT_HTTP_MAX_PENDING; i++) {
        cr_assert_eq(ct_codec_decode(&server.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), &f),
                     CT_CODEC_FRAME);
    }
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), &f),
                 CT_EOVERLOADED);
}

Test(http, a_request_read_as_a_view) {
    char text[] = "POST /up?x=1 HTTP/1.1\r\nHost: example\r\nX-Empty:\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nDigest: abc\r\n\r\n";
    ct_http_message_t m;
    const ct_http_str_t *v;
    cr_assert_eq(ct_http_parse_request((uint8_t *)text, strlen(text), &m), 0);
    cr_assert_eq(m.method.len, 4);
    cr_assert_eq(memcmp(m.method.p, "POST", 4), 0);
    cr_assert_eq(m.target.len, 7);
    cr_assert_eq(memcmp(m.target.p, "/up?x=1", 7), 0);
    cr_assert_eq(m.version_minor, 1);
    cr_assert_eq(m.keep_alive, 1);
    cr_assert_eq(m.nfields, 4, "three header fields and one trailer field");
    cr_assert_eq(m.nheaders, 3, "the trailer is told apart");
    cr_assert_eq(m.body.len, 11);
    cr_assert_eq(memcmp(m.body.p, "hello world", 11), 0, "the chunks joined");
    v = ct_http_field(&m, "HOST");
    cr_assert_not_null(v);
    cr_assert_eq(v->len, 7);
    cr_assert_eq(memcmp(v->p, "example", 7), 0);
    v = ct_http_field(&m, "x-empty");
    cr_assert_not_null(v);
    cr_assert_eq(v->len, 0);
    v = ct_http_field(&m, "digest");
    cr_assert_not_null(v);
    cr_assert_eq(memcmp(v->p, "abc", 3), 0, "a trailer field after the body was moved");
    cr_assert_null(ct_http_field(&m, "Hos"));
}

Test(http, a_response_read_as_a_view) {
    char text[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
    char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n";
    char until_close[] = "HTTP/1.1 200 OK\r\n\r\nall of it";
    ct_http_message_t m;
    cr_assert_eq(ct_http_parse_response((uint8_t *)text, strlen(text), 0, &m), 0);
    cr_assert_eq(m.status, 404);
    cr_assert_eq(m.reason.len, 9);
    cr_assert_eq(m.version_minor, 0);
    cr_assert_eq(m.keep_alive, 0, "HTTP/1.0 without keep-alive");
    cr_assert_eq(m.body.len, 4);
    cr_assert_eq(memcmp(m.body.p, "nope", 4), 0);
    cr_assert_eq(ct_http_parse_response((uint8_t *)head, strlen(head), 1, &m), 0);
    cr_assert_eq(m.body.len, 0);
    cr_assert_eq(m.keep_alive, 0);
    cr_assert_eq(ct_http_parse_response((uint8_t *)head, strlen(head), 0, &m), CT_EMALFORMED,
                 "without HEAD, the body is missing");
    cr_assert_eq(ct_http_parse_response((uint8_t *)until_close, strlen(until_close), 0, &m), 0);
    cr_assert_eq(m.body.len, 9, "read on its own, a body may end where the bytes end");
    cr_assert_eq(ct_http_parse_request((uint8_t *)text, strlen(text), &m), CT_EMALFORMED);
}

Test(http, a_view_has_room_for_so_many_fields) {
    char text[4096];
    size_t at = (size_t)snprintf(text, sizeof text, "GET / HTTP/1.1\r\n");
    ct_http_message_t m;
    int i;
    for (i = 0; i < CT_HTTP_MAX_HEADERS; i++)
        at += (size_t)snprintf(text + at, sizeof text - at, "F%d: v\r\n", i);
    snprintf(text + at, sizeof text - at, "\r\n");
    cr_assert_eq(ct_http_parse_request((uint8_t *)text, strlen(text), &m), 0);
    cr_assert_eq(m.nfields, CT_HTTP_MAX_HEADERS);
    snprintf(text + at, sizeof text - at, "One: more\r\n\r\n");
    cr_assert_eq(ct_http_parse_request((uint8_t *)text, strlen(text), &m), CT_EFRAMETOOLARGE);
}

Test(http, messages_written_frame_and_read_back) {
    uint8_t out[256], copy[256];
    size_t size = 0, w;
    ct_http_message_t m;
    ct_frame_t f;
    cr_assert_eq(ct_http_format_request(NULL, 0, "PUT", "/k", "Host: h\r\n", "v1", 2, &size), 0);
    cr_assert_eq(ct_http_format_request(out, size - 1, "PUT", "/k", "Host: h\r\n", "v1", 2, &size),
                 CT_EFRAMETOOLARGE);
    cr_assert_eq(
        ct_http_format_request(out, sizeof out, "PUT", "/k", "Host: h\r\n", "v1", 2, &size), 0);
    cr_assert_eq(size, strlen("PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nv1"));
    cr_assert_eq(memcmp(out, "PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nv1", size), 0);
    cr_assert_eq(ct_codec_encode(&client.codec, out, size, copy, &w), 0);
    cr_assert_eq(ct_codec_decode(&server.codec, copy, w, &f), CT_CODEC_FRAME);
    cr_assert_eq(f.frame_len, size);
    cr_assert_eq(ct_http_parse_request(copy, w, &m), 0);
    cr_assert_eq(m.body.len, 2);

    cr_assert_eq(ct_http_format_response(out, sizeof out, 429, NULL, "slow", 4, &size), 0);
    cr_assert_eq(
        memcmp(out, "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\n\r\nslow", size), 0);
    cr_assert_eq(ct_codec_encode(&server.codec, out, size, copy, &w), 0);
    cr_assert_eq(ct_codec_decode(&client.codec, copy, w, &f), CT_CODEC_FRAME);
    cr_assert_eq(ct_http_parse_response(copy, w, 0, &m), 0);
    cr_assert_eq(m.status, 429);
    cr_assert_eq(ct_http_format_response(out, sizeof out, 599, NULL, NULL, 0, &size), 0);
    cr_assert_eq(memcmp(out, "HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", size), 0);
    cr_assert_eq(ct_http_format_request(out, sizeof out, "GET", "/", NULL, NULL, 0, &size), 0);
    cr_assert_eq(memcmp(out, "GET / HTTP/1.1\r\n\r\n", size), 0, "no length where none is usual");
    cr_assert_eq(ct_http_format_response(out, sizeof out, 200, NULL, NULL, 5, &size), 0);
    cr_assert_eq(memcmp(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", size), 0,
                 "the answer to a HEAD: the length of a body not sent");
}

Test(http, writers_refuse_what_would_not_frame) {
    uint8_t out[256];
    size_t size;
    cr_assert_eq(ct_http_format_request(out, sizeof out, "GET", "/a b", NULL, NULL, 0, &size),
                 CT_EINVAL);
    cr_assert_eq(ct_http_format_request(out, sizeof out, "", "/", NULL, NULL, 0, &size), CT_EINVAL);
    cr_assert_eq(ct_http_format_request(out, sizeof out, NULL, "/", NULL, NULL, 0, &size),
                 CT_EINVAL);
    cr_assert_eq(ct_http_format_request(out, sizeof out, "GET", "/", "Host: a", NULL, 0, &size),
                 CT_EINVAL, "a field line without its end");
    cr_assert_eq(ct_http_format_request(out, sizeof out, "GET", "/", "Host a\r\n", NULL, 0, &size),
                 CT_EINVAL);
    cr_assert_eq(
        ct_http_format_request(out, sizeof out, "GET", "/", "A: b\nC: d\r\n", NULL, 0, &size),
        CT_EINVAL);
    cr_assert_eq(
        ct_http_format_response(out, sizeof out, 200, "content-length: 9\r\n", "x", 1, &size),
        CT_EINVAL, "the writer says the length");
    cr_assert_eq(ct_http_format_response(out, sizeof out, 204, NULL, "x", 1, &size), CT_EINVAL);
    cr_assert_eq(ct_http_format_request(out, sizeof out, "POST", "/", NULL, NULL, 3, &size),
                 CT_EINVAL, "a request's body is sent");
    cr_assert_eq(ct_http_format_response(out, sizeof out, 42, NULL, NULL, 0, &size), CT_EINVAL);
}

/* ---- over TCP: ctower's client and server, and peers that break HTTP ---- */

TestSuite(http_net, .init = h_setup, .fini = h_teardown);

static ct_buf_pool_t net_pool;

/* The server: GET /x answers 200 with "/x" as its body, HEAD /x says that
 * body's length and sends none. */
static int target_echo(void *ctx, void *request, void **response) {
    ct_buf_t *req = request, *res;
    ct_http_message_t m;
    size_t size = 0;
    const char *body;
    (void)ctx;
    cr_assert_eq(ct_http_parse_request((uint8_t *)req->base, req->len, &m), 0);
    body = m.method.len == 4 ? NULL : m.target.p; /* HEAD: no body */
    cr_assert_eq(ct_http_format_response(NULL, 0, 200, NULL, body, m.target.len, &size), 0);
    res = ct_buf_pool_get(&net_pool, size);
    cr_assert_not_null(res);
    cr_assert_eq(ct_http_format_response((uint8_t *)res->base, size, 200, NULL, body, m.target.len,
                                         &res->len),
                 0);
    ct_buf_pool_put(&net_pool, req);
    *response = res;
    return 0;
}

/* A server that does not speak HTTP, over the line codec: it reads a
 * request as its lines ("GET /n HTTP/1.1\r", then "\r") and answers each
 * with a line ("HTTP/1.1 200 OK\r", then "\r"), which makes a response
 * with no length: its end would be the connection's end. */
static int no_length(void *ctx, void *request, void **response) {
    ct_buf_t *req = request;
    const char *line = req->len > 1 ? "HTTP/1.1 200 OK\r" : "\r";
    ct_buf_t *res = ct_buf_pool_get(&net_pool, strlen(line));
    (void)ctx;
    cr_assert_not_null(res);
    memcpy(res->base, line, strlen(line));
    res->len = strlen(line);
    ct_buf_pool_put(&net_pool, req);
    *response = res;
    return 0;
}

typedef struct http_conn {
    ct_stream_t stream;
    ct_client_t client;
    struct http_req {
        ct_op_t op;
        struct http_conn *conn;
        int n; /* the request's number: HEAD when n % 3 == 1 */
    } reqs[16];
    int connected, next, total, done, wrong;
    int failed, first_status, first_cause;
    int line; /* sends "NOT HTTP" lines instead */
} http_conn_t;

static void http_issue(http_conn_t *c, struct http_req *r);

static void on_http_reply(ct_op_t *op, int status, void *response) {
    struct http_req *r = CT_CONTAINER_OF(op, struct http_req, op);
    http_conn_t *c = r->conn;
    ct_buf_t *b = response;
    ct_http_message_t m;
    char want[32];
    c->done++;
    if (status != 0) {
        if (!c->failed++) {
            c->first_status = status;
            c->first_cause = op->cause;
        }
        return;
    }
    snprintf(want, sizeof want, "/%d", r->n);
    if (ct_http_parse_response((uint8_t *)b->base, b->len, r->n % 3 == 1, &m) != 0 ||
        m.status != 200 ||
        (r->n % 3 == 1 ? m.body.len != 0
                       : m.body.len != strlen(want) || memcmp(m.body.p, want, m.body.len) != 0))
        c->wrong++;
    ct_buf_pool_put(&net_pool, b);
    if (c->next < c->total) http_issue(c, r);
}

static void http_issue(http_conn_t *c, struct http_req *r) {
    char target[32];
    size_t size = 0;
    ct_buf_t *b;
    r->n = c->next++;
    snprintf(target, sizeof target, "/%d", r->n);
    if (c->line) {
        b = ct_buf_from("NOT HTTP", 8);
    } else {
        const char *method = r->n % 3 == 1 ? "HEAD" : "GET";
        ct_http_format_request(NULL, 0, method, target, NULL, NULL, 0, &size);
        b = ct_buf_pool_get(&net_pool, size);
        cr_assert_not_null(b);
        cr_assert_eq(ct_http_format_request((uint8_t *)b->base, size, method, target, NULL, NULL, 0,
                                            &b->len),
                     0);
    }
    cr_assert_not_null(b);
    cr_assert_eq(ct_service_call(&c->client.service, b, &r->op), 0);
}

static void on_http_connected(ct_stream_t *stream, int status) {
    http_conn_t *c = CT_CONTAINER_OF(stream, http_conn_t, stream);
    ct_client_config_t cfg = {0};
    int i;
    cr_assert_eq(status, 0);
    cfg.max_in_flight = 16;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &net_pool;
    cr_assert_eq(ct_pipeline_client_init(&c->client, &H.ct, &c->stream.transport, &cfg), 0);
    c->connected = 1;
    for (i = 0; i < 16 && c->next < c->total; i++) {
        c->reqs[i].conn = c;
        ct_op_init(&c->reqs[i].op, on_http_reply);
        http_issue(c, &c->reqs[i]);
    }
}

static void http_connect(http_conn_t *c, const char *address, const ct_codec_t *codec, int total) {
    static ct_connector_t connector;
    ct_stream_config_t cfg = {0};
    cfg.codec = codec;
    cfg.pool = &net_pool;
    c->total = total;
    cr_assert_eq(ct_connector_init(&connector, &H.ct, address, &cfg), 0);
    cr_assert_eq(ct_connector_connect(&connector, &c->stream, on_http_connected), 0);
}

/* What every test over TCP has: a pool, both sides' codecs (and the line
 * codec, for peers that are not HTTP), a service and a listener. */
static struct http_net {
    ct_http_codec_t server, client;
    ct_line_codec_t line;
    ct_service_fn_t svc;
    ct_service_t *service; /* the listener's: svc, or the test's own */
    ct_listener_t listener;
    int listener_closed;
    char bound[128];
} N;

static void on_http_listener_closed(ct_listener_t *l) {
    (void)l;
    N.listener_closed = 1;
}

static void net_init(void) {
    memset(&N, 0, sizeof N);
    ct_buf_pool_init(&net_pool, 256, 1024);
    ct_http_codec_init_server(&N.server, 0);
    ct_http_codec_init_client(&N.client, 0);
    ct_line_codec_init(&N.line, 0);
}

/* Listens on a free loopback port with service, framed by the server's HTTP
 * codec or the line codec (line set), each connection's server asked to keep
 * max_in_flight requests (0: the default). */
/* What a test sets before net_start() to have a server refuse and time out. */
static struct net_refusals {
    ct_server_error_fn on_error;
    uint64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms;
} NR;

static void net_listen(ct_service_t *service, int line, size_t max_in_flight) {
    ct_listener_config_t cfg;
    ct_address_t a;
    memset(&cfg, 0, sizeof cfg);
    cfg.server.on_error = NR.on_error;
    cfg.header_timeout_ms = NR.header_timeout_ms;
    cfg.body_timeout_ms = NR.body_timeout_ms;
    cfg.idle_timeout_ms = NR.idle_timeout_ms;
    cfg.stream.codec = line ? &N.line.codec : &N.server.codec;
    cfg.stream.pool = &net_pool;
    cfg.server.max_in_flight = max_in_flight;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &net_pool;
    N.service = service;
    cr_assert_eq(ct_listener_init(&N.listener, &H.ct, "tcp://127.0.0.1:0", service, &cfg), 0);
    cr_assert_eq(ct_listener_address(&N.listener, &a), 0);
    cr_assert_eq(ct_address_format(&a, N.bound, sizeof N.bound), 0);
}

/* net_listen() with fn as the service. */
static void net_start(ct_service_fn_cb fn, int line) {
    net_init();
    ct_service_fn_init(&N.svc, &H.ct, fn, NULL);
    net_listen(&N.svc.service, line, 0);
}

/* Closes the conns' clients, then the listener and the service. */
static void net_stop(http_conn_t *conns, int n) {
    int i;
    for (i = 0; i < n; i++)
        h_close_service(&conns[i].client.service);
    cr_assert_eq(ct_listener_shutdown(&N.listener, 1000, on_http_listener_closed), 0);
    H_RUN_UNTIL(N.listener_closed);
    h_close_service(N.service);
    h_run();
    ct_buf_pool_destroy(&net_pool);
}

static int conns_done(http_conn_t *c, int n) {
    int i;
    for (i = 0; i < n; i++)
        if (!c[i].connected || c[i].done < c[i].total) return 0;
    return 1;
}

Test(http_net, pipelined_clients_and_a_peer_that_is_not_http) {
    enum { CONNS = 4, PER_CONN = 10000 };
    static http_conn_t conns[CONNS + 1];
    int i;
    net_start(target_echo, 0);
    conns[CONNS].line = 1; /* first, so that its end comes while the others run */
    http_connect(&conns[CONNS], N.bound, &N.line.codec, 4);
    for (i = 0; i < CONNS; i++)
        http_connect(&conns[i], N.bound, &N.client.codec, PER_CONN);
    H_RUN_UNTIL(conns_done(conns, CONNS + 1));
    for (i = 0; i < CONNS; i++) {
        cr_assert_eq(conns[i].failed, 0, "%s", ct_strerror(conns[i].first_status));
        cr_assert_eq(conns[i].wrong, 0);
        cr_assert_eq(conns[i].done, PER_CONN);
    }
    cr_assert_eq(conns[CONNS].failed, 4, "each request on the broken connection fails once");
    cr_assert_eq(conns[CONNS].first_status, CT_ERECVBROKEN);
    net_stop(conns, CONNS + 1);
}

/* A request that says "Connection: close" is answered, then the server
 * closes its sending side: the client reads the end of the stream. */
static int last_answered, after_last_status;
static void on_last_answer(ct_op_t *op, int status, void *response) {
    (void)op;
    cr_assert_eq(status, 0);
    ct_buf_pool_put(&net_pool, response);
    last_answered = 1;
}
static void on_after_last(ct_op_t *op, int status, void *response) {
    (void)response;
    cr_assert_eq(status, CT_ERECVBROKEN);
    after_last_status = op->cause;
}

Test(http_net, the_server_closes_after_answering_connection_close) {
    static http_conn_t conn; /* connected, then driven by hand */
    static const char close_request[] = "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n";
    ct_op_t last, after;
    net_start(target_echo, 0);
    http_connect(&conn, N.bound, &N.client.codec, 0);
    H_RUN_UNTIL(conn.connected);
    ct_op_init(&last, on_last_answer);
    cr_assert_eq(ct_service_call(&conn.client.service,
                                 ct_buf_from(close_request, strlen(close_request)), &last),
                 0);
    H_RUN_UNTIL(last_answered);
    ct_op_init(&after, on_after_last);
    after_last_status = 1;
    cr_assert_eq(
        ct_service_call(&conn.client.service, ct_buf_from("GET / HTTP/1.1\r\n\r\n", 18), &after),
        0);
    H_RUN_UNTIL(after_last_status != 1);
    cr_assert_eq(after_last_status, UV_EOF, "the server's end: %s", ct_err_name(after_last_status));
    h_close_service(&conn.client.service);
    H_RUN_UNTIL(ct_listener_connections(&N.listener) == 0);
    net_stop(NULL, 0);
}

Test(http_net, a_response_without_a_length_fails_every_request_in_flight) {
    static http_conn_t conn;
    net_start(no_length, 1);
    http_connect(&conn, N.bound, &N.client.codec, 3);
    H_RUN_UNTIL(conns_done(&conn, 1));
    cr_assert_eq(conn.done, 3);
    cr_assert_eq(conn.failed, 3, "each request fails once");
    cr_assert_eq(conn.first_status, CT_ERECVBROKEN);
    cr_assert_eq(conn.first_cause, CT_EMALFORMED, "%s", ct_err_name(conn.first_cause));
    net_stop(&conn, 1);
}

/* ---- the codec's bound on requests in flight ------------------------------ */

static const char ok_response[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
#define OK_LEN (sizeof ok_response - 1)

/* held_svc's responder: an empty 200 for every request. */
static void *respond_ok(void *req, void *pool) {
    ct_buf_t *res = ct_buf_pool_get(pool, OK_LEN);
    cr_assert_not_null(res);
    memcpy(res->base, ok_response, OK_LEN);
    res->len = OK_LEN;
    ct_buf_pool_put(pool, req);
    return res;
}

/* A service that holds requests until the codec's bound of them waits, then
 * answers them all: whoever sends more than that without an answer breaks
 * its codec. */
static void held_http_init(held_svc_t *h) {
    held_init(h, 0);
    h->batch = CT_HTTP_MAX_PENDING;
    h->respond = respond_ok;
    h->free_req = ct_buf_pool_free_msg;
    h->free_ctx = &net_pool;
}

Test(http_net, a_server_reads_no_more_requests_than_its_codec_can_answer) {
    enum { TOTAL = 2 * CT_HTTP_MAX_PENDING, REQ_LEN = 18 };
    static held_svc_t held;
    static char requests[TOTAL * REQ_LEN];
    static h_raw_t raw; /* a client of plain libuv pipelines as much as it likes */
    size_t i;
    net_init();
    held_http_init(&held);
    net_listen(&held.service, 0, 4 * CT_HTTP_MAX_PENDING); /* more than the codec can answer */
    for (i = 0; i < TOTAL; i++)
        memcpy(requests + i * REQ_LEN, "GET / HTTP/1.1\r\n\r\n", REQ_LEN);
    h_raw_connect(&raw, N.bound);
    h_raw_write(&raw, requests, sizeof requests);
    H_RUN_UNTIL(raw.in_len >= TOTAL * OK_LEN || raw.end);
    cr_assert_eq(raw.end, 0, "the connection ended: %s", ct_err_name(raw.end));
    cr_assert_eq(raw.in_len, TOTAL * OK_LEN);
    for (i = 0; i < TOTAL; i++)
        cr_assert_eq(memcmp(raw.in + i * OK_LEN, ok_response, OK_LEN), 0, "answer %zu", i);
    cr_assert_eq(held.max_n, CT_HTTP_MAX_PENDING, "the server read as far as its codec's bound");
    h_raw_close(&raw);
    H_RUN_UNTIL(ct_listener_connections(&N.listener) == 0);
    net_stop(NULL, 0);
    held_free(&held);
}

/* A client asked for more requests in flight than its codec can frame, and
 * driven by its readiness. */
enum { BC_TOTAL = 4 * CT_HTTP_MAX_PENDING };
static struct bound_client {
    ct_connector_t connector;
    ct_stream_t stream;
    ct_client_t client;
    ct_waker_t waker;
    ct_op_t ops[BC_TOTAL];
    int issued, answered, failed, first_status;
    size_t max_in_flight; /* the most the client had in flight */
} BC;

static void on_bc_reply(ct_op_t *op, int status, void *response) {
    (void)op;
    BC.answered++;
    if (status != 0) {
        if (!BC.failed++) BC.first_status = status;
        return;
    }
    ct_buf_pool_put(&net_pool, response);
}

static void bc_issue(ct_waker_t *waker) {
    (void)waker;
    while (BC.issued < BC_TOTAL) {
        ct_buf_t *req;
        size_t in;
        int r = ct_service_poll_ready(&BC.client.service, &BC.waker);
        if (r == CT_PENDING) return; /* the waker calls again */
        cr_assert_eq(r, CT_READY);
        req = ct_buf_from("GET / HTTP/1.1\r\n\r\n", 18);
        cr_assert_not_null(req);
        ct_op_init(&BC.ops[BC.issued], on_bc_reply);
        cr_assert_eq(ct_service_call(&BC.client.service, req, &BC.ops[BC.issued]), 0);
        BC.issued++;
        in = ct_client_in_flight(&BC.client);
        if (in > BC.max_in_flight) BC.max_in_flight = in;
    }
}

static void on_bc_connected(ct_stream_t *stream, int status) {
    ct_client_config_t cfg = {0};
    cr_assert_eq(status, 0);
    cfg.max_in_flight = BC_TOTAL; /* more than the codec can frame */
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &net_pool;
    cr_assert_eq(ct_pipeline_client_init(&BC.client, &H.ct, &stream->transport, &cfg), 0);
    bc_issue(NULL);
}

Test(http_net, a_client_keeps_no_more_requests_in_flight_than_its_codec_can_frame) {
    static held_svc_t held;
    ct_stream_config_t cfg = {0};
    net_init();
    held_http_init(&held);
    net_listen(&held.service, 0, BC_TOTAL);
    memset(&BC, 0, sizeof BC);
    ct_waker_init(&BC.waker, &H.ct, bc_issue);
    cfg.codec = &N.client.codec;
    cfg.pool = &net_pool;
    cr_assert_eq(ct_connector_init(&BC.connector, &H.ct, N.bound, &cfg), 0);
    cr_assert_eq(ct_connector_connect(&BC.connector, &BC.stream, on_bc_connected), 0);
    H_RUN_UNTIL(BC.answered == BC_TOTAL);
    cr_assert_eq(BC.failed, 0, "first failure: %s", ct_err_name(BC.first_status));
    cr_assert_eq(BC.max_in_flight, CT_HTTP_MAX_PENDING);
    h_close_service(&BC.client.service);
    H_RUN_UNTIL(ct_listener_connections(&N.listener) == 0);
    net_stop(NULL, 0);
    held_free(&held);
}

#ifdef CT_COUNT_ALLOCS
/* ---- no allocation per request in steady state --------------------------- */

extern volatile long ct_test_allocs;
extern volatile int ct_test_counting;

TestSuite(alloc_http, .init = h_setup, .fini = h_teardown);

/* The codec on both sides, the views and the writers: after warm-up, a
 * pipelined HTTP exchange allocates nothing (messages come from the pool). */
Test(alloc_http, pipelined_http_allocates_nothing_per_request) {
    enum { WARMUP = 10000, MEASURED = 10000 };
    static http_conn_t conn;
    long allocs;
    net_start(target_echo, 0);
    http_connect(&conn, N.bound, &N.client.codec, WARMUP + MEASURED);
    H_RUN_UNTIL(conn.done >= WARMUP);
    ct_test_allocs = 0;
    ct_test_counting = 1;
    H_RUN_UNTIL(conn.done >= WARMUP + MEASURED);
    ct_test_counting = 0;
    allocs = ct_test_allocs;
    cr_assert_eq(conn.failed, 0);
    cr_assert_eq(conn.wrong, 0);
    cr_assert_eq(allocs, 0, "%ld allocations for %d requests after warm-up", allocs, MEASURED);
    net_stop(&conn, 1);
}
#endif

/* The head's limits: fields beyond max_fields, bytes beyond max_header. */
Test(http, a_head_over_its_limits_is_431) {
    static const char two[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char three[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    static const char partial[] = "GET / HTTP/1.1\r\nA: 1";
    ct_frame_t f;
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(ct_http_codec_limits(&server, 0, CT_HTTP_MAX_HEADERS + 1), CT_EINVAL);
    cr_assert_eq(ct_http_codec_limits(&server, 30, 2), 0);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(partial), &f), CT_CODEC_NEED_MORE);
    cr_assert(server.codec.in_header, "the head is still arriving");
    ct_codec_reset(&server.codec);
    cr_assert_eq(ct_http_codec_limits(&server, 0, 2), 0);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(two), &f), CT_CODEC_FRAME);
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(ct_http_codec_limits(&server, 0, 2), 0);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(three), &f), CT_EHEADERTOOLARGE);
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(ct_http_codec_limits(&server, 20, 0), 0);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(two), &f), CT_EHEADERTOOLARGE);
}

/* The answer (400 or 431) must not depend on how TCP cut the bytes: a third
 * field whose name turns out malformed is malformed, cut or whole, and a
 * head past its byte limit is too large, malformed later or not. */
Test(http, a_head_over_its_limits_fails_the_same_however_it_is_cut) {
    static const char bad_third[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC\r\n\r\n";
    static const char long_then_bad[] = "GET / HTTP/1.1\r\nA: 123456789012345\r\nB\r\n\r\n";
    struct {
        const char *head;
        size_t max_header, max_fields;
        int want;
    } cases[] = {{bad_third, 0, 2, CT_EMALFORMED}, {long_then_bad, 30, 0, CT_EHEADERTOOLARGE}};
    size_t lens[8], offs[8], i;
    int n;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_http_codec_init_server(&server, 0);
        ct_http_codec_limits(&server, cases[i].max_header, cases[i].max_fields);
        cr_assert_eq(frames_whole(&server.codec, cases[i].head, lens, offs, &n), cases[i].want,
                     "case %zu whole", i);
        ct_http_codec_init_server(&server, 0);
        ct_http_codec_limits(&server, cases[i].max_header, cases[i].max_fields);
        cr_assert_eq(frames_bytewise(&server.codec, cases[i].head, lens, offs, &n), cases[i].want,
                     "case %zu byte by byte", i);
    }
}

Test(http, refusals_have_their_status_and_close) {
    uint8_t out[256];
    size_t size = 0;
    cr_assert_eq(ct_http_refusal_status(CT_EMALFORMED), 400);
    cr_assert_eq(ct_http_refusal_status(CT_EREQTIMEOUT), 408);
    cr_assert_eq(ct_http_refusal_status(CT_EFRAMETOOLARGE), 413);
    cr_assert_eq(ct_http_refusal_status(CT_EHEADERTOOLARGE), 431);
    cr_assert_eq(ct_http_refusal_status(UV_ECONNRESET), 0);
    cr_assert_eq(ct_http_format_refusal(out, sizeof out, UV_EOF, &size), CT_EINVAL);
    cr_assert_eq(ct_http_format_refusal(out, sizeof out, CT_EHEADERTOOLARGE, &size), 0);
    out[size < sizeof out ? size : sizeof out - 1] = 0;
    cr_assert(strncmp((char *)out, "HTTP/1.1 431 ", 13) == 0, "%s", out);
    cr_assert(strstr((char *)out, "Connection: close\r\n") != NULL, "%s", out);
}

/* on_error: the refusal of a refused request, or nothing. */
static int refusal(ct_server_t *srv, int status, void **response) {
    ct_buf_t *b = ct_buf_pool_get(&net_pool, 256);
    (void)srv;
    cr_assert_not_null(b);
    if (ct_http_format_refusal((uint8_t *)b->base, b->cap, status, &b->len) != 0) {
        ct_buf_pool_put(&net_pool, b);
        return status;
    }
    *response = b;
    return 0;
}

/* Sends text on a raw connection and returns what the server sent before
 * it closed. */
static const char *raw_exchange(h_raw_t *raw, const char *text) {
    memset(raw, 0, sizeof *raw);
    h_raw_connect(raw, N.bound);
    h_raw_write(raw, text, strlen(text));
    H_RUN_UNTIL(raw->end);
    cr_assert_eq(raw->end, UV_EOF, "%s", ct_err_name(raw->end));
    raw->in[raw->in_len < sizeof raw->in ? raw->in_len : sizeof raw->in - 1] = 0;
    h_raw_close(raw);
    return raw->in;
}

/* The requests before a malformed one are answered, then 400, then the end. */
Test(http_net, a_malformed_request_is_answered_400_after_the_ones_before) {
    static h_raw_t raw;
    const char *in;
    NR = (struct net_refusals){refusal, 0, 0, 0};
    net_start(target_echo, 0);
    in = raw_exchange(&raw, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nBad Name: x\r\n\r\n");
    cr_assert(strncmp(in, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", in);
    cr_assert(strstr(in, "/aHTTP/1.1 400 Bad Request\r\nConnection: close\r\n") != NULL, "%s", in);
    NR = (struct net_refusals){0};
    net_stop(NULL, 0);
}

/* Slow requests: a head that does not arrive within the header timeout,
 * a body within the body timeout: 408, then the end. A connection that
 * sends a whole request in time is answered. */
Test(http_net, requests_too_slow_to_arrive_get_408) {
    static h_raw_t raw;
    const char *in;
    NR = (struct net_refusals){refusal, 50, 150, 0};
    net_start(target_echo, 0);
    in = raw_exchange(&raw, "GET /slow HTTP/1.1\r\nHost: x\r\nX-Never: end");
    cr_assert(strncmp(in, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0, "%s", in);
    in = raw_exchange(&raw,
                      "GET /a HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc");
    cr_assert(strstr(in, "/aHTTP/1.1 408 Request Timeout\r\n") != NULL, "%s", in);
    NR = (struct net_refusals){0};
    net_stop(NULL, 0);
}

/* Idleness counts from the last request: a connection that only drips
 * bytes of a head is closed by the idle timeout too, never kept open. */
Test(http_net, a_drip_of_bytes_does_not_keep_a_connection_open) {
    static h_raw_t raw;
    int i;
    NR = (struct net_refusals){NULL, 0, 0, 80};
    net_start(target_echo, 0);
    h_raw_connect(&raw, N.bound);
    for (i = 0; i < 40 && !raw.end; i++) { /* one byte every 10 ms, for up to 400 ms */
        static const char head[] =
            "GET / HTTP/1.1\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        uint64_t until = uv_now(H.ct.uv) + 10;
        h_raw_write(&raw, head + i, 1);
        H_RUN_UNTIL(raw.end || uv_now(H.ct.uv) >= until);
    }
    H_RUN_UNTIL(raw.end);
    cr_assert_lt(i, 40, "closed while it dripped (%d bytes)", i);
    h_raw_close(&raw);
    NR = (struct net_refusals){0};
    net_stop(NULL, 0);
}

/* Expect: 100-continue: the head alone gets "100 Continue" (once); the
 * whole request at once gets none; nor does HTTP/1.0, a request without a
 * body, one without the field, or one behind an unanswered request. */
static const char continue_head[] = "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                    "Content-Length: 5\r\n\r\n";

static int reply_to(const char *text) {
    ct_frame_t f;
    ct_http_codec_init_server(&server, 0);
    (void)ct_codec_decode(&server.codec, BYTES(text), &f);
    return server.codec.reply_len > 0;
}

Test(http, a_request_that_expects_100_continue_gets_it_once_its_head_is_whole) {
    char whole[256], head_only[256];
    ct_frame_t f;
    snprintf(head_only, sizeof head_only, "%s", continue_head);
    snprintf(whole, sizeof whole, "%shello", continue_head);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(head_only), &f), CT_CODEC_NEED_MORE);
    cr_assert_eq(server.codec.reply_len, strlen("HTTP/1.1 100 Continue\r\n\r\n"));
    cr_assert_eq(memcmp(server.codec.reply, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
    server.codec.reply_len = 0; /* (the transport's part) */
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(head_only), &f), CT_CODEC_NEED_MORE);
    cr_assert_eq(server.codec.reply_len, 0, "answered twice");
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(whole), &f), CT_CODEC_FRAME);
    cr_assert_eq(server.codec.reply_len, 0);
    cr_assert(!reply_to(whole), "the body came with the head: nothing to wait for");
    cr_assert(reply_to(continue_head));
    cr_assert(!reply_to("POST /up HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    cr_assert(!reply_to("POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"));
    cr_assert(!reply_to("GET /up HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"));
    cr_assert(!reply_to("POST /up HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
    cr_assert(
        !reply_to("POST /up HTTP/1.1\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n"));
    cr_assert(reply_to(
        "POST /up HTTP/1.1\r\nEXPECT: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n"));
    /* behind a request whose answer has not gone: its 100 would be read as
     * that request's */
    ct_http_codec_init_server(&server, 0);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES("GET / HTTP/1.1\r\n\r\n"), &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(ct_codec_decode(&server.codec, BYTES(continue_head), &f), CT_CODEC_NEED_MORE);
    cr_assert_eq(server.codec.reply_len, 0, "100 Continue before an earlier answer");
}

/* One call answers a request: the length, the connection's fate and HEAD
 * taken from the request. */
static ct_http_message_t parsed(const char *text, char *copy, size_t cap) {
    ct_http_message_t m;
    size_t n = strlen(text);
    cr_assert_lt(n, cap);
    memcpy(copy, text, n);
    cr_assert_eq(ct_http_parse_request((uint8_t *)copy, n, &m), 0);
    return m;
}

static char *answer_text(ct_buf_pool_t *pool, const ct_http_message_t *req, int status,
                         const char *fields, const char *body) {
    void *res = NULL;
    static char out[512];
    ct_buf_t *b;
    cr_assert_eq(ct_http_respond(pool, req, status, fields, body, body ? strlen(body) : 0, &res),
                 0);
    b = res;
    cr_assert_lt(b->len, sizeof out);
    memcpy(out, b->base, b->len);
    out[b->len] = 0;
    ct_buf_pool_put(pool, b);
    return out;
}

Test(http, one_call_answers_a_request_as_the_request_asks) {
    ct_buf_pool_t pool;
    char a[256], b[256], c[256], d[256];
    ct_http_message_t get = parsed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", a, sizeof a);
    ct_http_message_t last = parsed("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", b, sizeof b);
    ct_http_message_t old = parsed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", c, sizeof c);
    ct_http_message_t head = parsed("HEAD / HTTP/1.1\r\n\r\n", d, sizeof d);
    void *res = NULL;
    ct_buf_pool_init(&pool, 256, 4);
    cr_assert_str_eq(answer_text(&pool, &get, 200, "Content-Type: text/plain\r\n", "Hello, World!"),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                     "Hello, World!");
    cr_assert_str_eq(answer_text(&pool, &last, 404, NULL, "no"),
                     "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno");
    cr_assert_str_eq(answer_text(&pool, &old, 200, NULL, "x"),
                     "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx");
    cr_assert_str_eq(answer_text(&pool, &head, 200, NULL, "hello"),
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD: the length, no body");
    cr_assert_str_eq(answer_text(&pool, &last, 200, "Connection: upgrade\r\n", NULL),
                     "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
                     "the caller's own Connection field");
    cr_assert_str_eq(answer_text(&pool, NULL, 204, NULL, NULL), "HTTP/1.1 204 No Content\r\n\r\n");
    cr_assert_eq(ct_http_respond(&pool, &get, 204, NULL, "x", 1, &res), CT_EINVAL);
    cr_assert_eq(ct_http_respond(&pool, &get, 200, "Content-Length: 3\r\n", "x", 1, &res),
                 CT_EINVAL);
    cr_assert_eq(ct_http_respond(&pool, &get, 200, "no line end", NULL, 0, &res), CT_EINVAL);
    cr_assert_eq(ct_http_respond(&pool, &get, 42, NULL, NULL, 0, &res), CT_EINVAL);
    cr_assert_null(res);
    ct_buf_pool_destroy(&pool);
}
