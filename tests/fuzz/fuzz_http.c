/* libFuzzer target for the HTTP/1.1 codec and the message views.
 *
 * Input: byte 0 picks the side (bit 0: a client's codec, which decodes
 * responses) and a small maximum size (bit 1); bytes 1-2 say which of the
 * client's first 16 requests are HEADs; byte 3 seeds the read sizes; the
 * rest is the byte stream.
 *
 * Oracles:
 * - the stream decoded whole and decoded as reads of any sizes give the
 *   same frames and end the same way;
 * - every frame lies inside the bytes, its payload at its end;
 * - every frame reads as a view (ct_http_parse_*), the codec and the views
 *   agreeing on where a message ends;
 * - what one side decodes, the other side accepts to send: a request a
 *   server framed, a client's codec encodes; a response a client framed
 *   (interim ones included), a server's codec that read the matching
 *   request encodes. */
#include <ctower/codec/http.h>
#include <ctower/error.h>

#include <stdlib.h>
#include <string.h>

enum { MAX_FRAMES = 64 };

typedef struct outcome {
    size_t lens[MAX_FRAMES], offsets[MAX_FRAMES];
    int n;
    int end; /* what ended decoding: CT_CODEC_NEED_MORE or an error */
} outcome_t;

static unsigned rng_next(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* The client's codec sends its requests first: request i is a HEAD when bit
 * i of heads is set, a GET otherwise. */
static void send_requests(ct_http_codec_t *c, unsigned heads) {
    static const char head[] = "HEAD / HTTP/1.1\r\n\r\n", get[] = "GET / HTTP/1.1\r\n\r\n";
    uint8_t out[64];
    int i;
    for (i = 0; i < 16; i++) {
        const char *r = (heads >> i) & 1 ? head : get;
        size_t w;
        if (ct_codec_encode(&c->codec, (const uint8_t *)r, strlen(r), out, &w) != 0) abort();
    }
}

static void init_side(ct_http_codec_t *c, int client, size_t max, unsigned heads) {
    if (client) {
        ct_http_codec_init_client(c, max);
        send_requests(c, heads);
    } else {
        ct_http_codec_init_server(c, max);
    }
}

/* Decodes data as reads of sizes drawn from seed (0: all of it at once). */
static void decode(ct_http_codec_t *c, const uint8_t *data, size_t len, unsigned seed,
                   outcome_t *o) {
    size_t start = 0, have = 0;
    o->n = 0;
    for (;;) {
        ct_frame_t f;
        int r;
        if (start + have == len) {
            o->end = CT_CODEC_NEED_MORE;
            return;
        }
        have += seed ? 1 + rng_next(&seed) % 7 : len - start;
        if (start + have > len) have = len - start;
        while ((r = ct_codec_decode(&c->codec, data + start, have, &f)) == CT_CODEC_FRAME) {
            if (f.frame_len == 0 || f.frame_len > have) abort();
            if (f.payload_offset + f.payload_len != f.frame_len) abort();
            if (o->n == MAX_FRAMES) {
                o->end = CT_CODEC_NEED_MORE;
                return;
            }
            o->lens[o->n] = f.frame_len;
            o->offsets[o->n++] = f.payload_offset;
            start += f.frame_len;
            have -= f.frame_len;
            if (have == 0) break;
        }
        if (r < 0) {
            o->end = r;
            return;
        }
        /* what a decode asks to write: only a server's 100 Continue, for a
         * frame still arriving */
        if (c->codec.reply_len) {
            if (c->client || r != CT_CODEC_NEED_MORE || c->codec.reply_len != 25 ||
                memcmp(c->codec.reply, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
                abort();
            c->codec.reply_len = 0;
        }
    }
}

/* A server's frame: a request that reads as a view, and that a client may
 * send. */
static void check_request(const uint8_t *frame, size_t len) {
    ct_http_codec_t sender;
    ct_http_message_t m;
    uint8_t *copy = malloc(len), *out = malloc(len);
    size_t w;
    if (!copy || !out) abort();
    ct_http_codec_init_client(&sender, 0);
    if (ct_codec_encode(&sender.codec, frame, len, out, &w) != 0 || w != len) abort();
    memcpy(copy, frame, len);
    if (ct_http_parse_request(copy, len, &m) == CT_EMALFORMED) abort();
    free(copy);
    free(out);
}

/* A client's frame, the answer to request i: a server that read request i
 * sends it, and its final response reads as a view. */
static void check_response(const uint8_t *frame, size_t offset, size_t len, int head) {
    static const char head_req[] = "HEAD / HTTP/1.1\r\n\r\n", get_req[] = "GET / HTTP/1.1\r\n\r\n";
    const char *req = head ? head_req : get_req;
    ct_http_codec_t sender;
    ct_http_message_t m;
    ct_frame_t f;
    uint8_t *copy = malloc(len), *out = malloc(len);
    size_t w;
    if (!copy || !out) abort();
    ct_http_codec_init_server(&sender, 0);
    if (ct_codec_decode(&sender.codec, (const uint8_t *)req, strlen(req), &f) != CT_CODEC_FRAME)
        abort();
    if (ct_codec_encode(&sender.codec, frame, len, out, &w) != 0 || w != len) abort();
    memcpy(copy, frame, len);
    if (ct_http_parse_response(copy + offset, len - offset, head, &m) == CT_EMALFORMED) abort();
    free(copy);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ct_http_codec_t whole, cut;
    outcome_t a, b;
    int client, i;
    unsigned heads, seed;
    size_t max, at = 0;
    if (size < 4) return 0;
    client = data[0] & 1;
    max = data[0] & 2 ? 64 + data[3] : 0;
    heads = (unsigned)data[1] | (unsigned)data[2] << 8;
    seed = data[3] | 1u;
    data += 4;
    size -= 4;
    init_side(&whole, client, max, heads);
    init_side(&cut, client, max, heads);
    decode(&whole, data, size, 0, &a);
    decode(&cut, data, size, seed, &b);
    if (a.n != b.n) abort();
    if (a.n < MAX_FRAMES && a.end != b.end) abort();
    for (i = 0; i < a.n; i++) {
        if (a.lens[i] != b.lens[i] || a.offsets[i] != b.offsets[i]) abort();
        if (client)
            check_response(data + at, a.offsets[i], a.lens[i], i < 16 && ((heads >> i) & 1));
        else
            check_request(data + at, a.lens[i]);
        at += a.lens[i];
    }
    return 0;
}
