/* libFuzzer target for the codecs. The first input byte picks the codec and
 * its options; the rest is a byte stream fed in chunks whose sizes come from
 * the input too, the way reads arrive. Every frame found must lie inside the
 * bytes given, and a frame re-encoded must decode to the same payload. The
 * second byte picks "\r\n" line ends for the line codec, or RESP instead of
 * the length codec (and then, with its bit 4, RESP for commands only, whose
 * every frame must be an array of bulk strings, and with its bit 8 inline
 * commands too, each of which must turn into one command or be refused). The
 * inline path for the common framing (prefix_be32) must answer exactly what
 * the codec's own functions answer, and a codec that goes on from where its
 * last call stopped (the line and RESP codecs do) must answer what one that
 * starts over every time answers. */
#include <ctower/codec/length.h>
#include <ctower/codec/line.h>
#include <ctower/codec/resp.h>
#include <ctower/error.h>

#include <stdlib.h>
#include <string.h>

static void check_roundtrip(ct_codec_t *c, ct_codec_t *twin, const uint8_t *payload, size_t len) {
    uint8_t *out = malloc(len + c->overhead), *twin_out = malloc(len + c->overhead);
    size_t written = 0, twin_written = 0;
    ct_frame_t f;
    int r;
    if (!out || !twin_out) abort();
    r = ct_codec_encode(c, payload, len, out, &written);
    if (ct_codec_encode(twin, payload, len, twin_out, &twin_written) != r) abort();
    if (r == 0 && (twin_written != written || memcmp(out, twin_out, written) != 0)) abort();
    free(twin_out);
    if (r == 0) {
        ct_codec_t copy[4];
        memcpy(copy, c, c->size);
        ct_codec_reset(copy);
        if (ct_codec_decode(copy, out, written, &f) != CT_CODEC_FRAME || f.payload_len != len ||
            f.frame_len != written || memcmp(out + f.payload_offset, payload, len) != 0)
            abort();
    }
    free(out);
}

/* Walks the RESP value at p[*at..len) with ct_resp_read, as a client would:
 * 0 once past it, -1 if the reader refuses it. */
static int walk_resp(const uint8_t *p, size_t len, size_t *at) {
    ct_resp_item_t it;
    int64_t items, i;
    if (ct_resp_read(p, len, at, &it) != 0) return -1;
    if (it.str && (it.str < p || it.str + it.len > p + len)) abort(); /* out of the value */
    items = strchr("*~>%|", it.type) ? it.n + (it.type == '|') : 0;
    for (i = 0; i < items; i++)
        if (walk_resp(p, len, at) != 0) return -1;
    return 0;
}

/* An inline command's line: refused, or turned into exactly one command
 * that a commands-only codec takes whole. */
static void check_inline(const uint8_t *line, size_t len) {
    size_t need = 0, size = 0;
    uint8_t *out;
    ct_resp_codec_t commands;
    ct_frame_t f;
    if (memchr(line, '\n', len)) abort(); /* a line has no line end inside */
    if (ct_resp_inline_to_command(line, len, NULL, 0, &need) != 0) return;
    if (!(out = malloc(need))) abort();
    if (ct_resp_inline_to_command(line, len, out, need, &size) != 0 || size != need) abort();
    ct_resp_codec_init_commands(&commands, need, 0);
    if (ct_codec_decode(&commands.codec, out, size, &f) != CT_CODEC_FRAME || f.frame_len != size)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const unsigned field_sizes[] = {1, 2, 4, 8};
    union {
        ct_codec_t base;
        ct_length_codec_t length;
        ct_line_codec_t line;
        ct_resp_codec_t resp;
    } u, twin, fresh;
    size_t at = 0, avail = 0;
    uint8_t opt;
    int is_resp = 0;
    if (size < 2) return 0;
    opt = data[0];
    data += 2;
    size -= 2;
    if (opt & 1) {
        if (data[-1] & 1) /* the second byte: "\r\n" ends */
            ct_line_codec_init_crlf(&u.line, 1 + (opt >> 1) * 8);
        else
            ct_line_codec_init(&u.line, 1 + (opt >> 1) * 8);
    } else if (data[-1] & 2) { /* the second byte: RESP */
        if (data[-1] & 4)
            ct_resp_codec_init_commands(&u.resp, 1 + (size_t)(opt >> 1) * 16, data[-1] & 8);
        else
            ct_resp_codec_init(&u.resp, 1 + (size_t)(opt >> 1) * 16);
        is_resp = 1;
    } else {
        ct_length_codec_config_t cfg = {field_sizes[(opt >> 1) & 3], (opt >> 3) & 1,
                                        (int64_t)((opt >> 4) & 7) - 4, 1024};
        if (ct_length_codec_init(&u.length, &cfg) != 0) abort();
    }
    /* The same codec through its vtable only. */
    memcpy(&twin, &u, u.base.size);
    twin.base.prefix_be32 = 0;
    memcpy(&fresh, &u, u.base.size);
    /* Feed the stream as reads of varying size, as a socket would. */
    while (at < size) {
        ct_frame_t f, tf;
        int r;
        avail += 1 + data[at + avail < size ? at + avail : size - 1] % 17;
        if (at + avail > size) avail = size - at;
        r = ct_codec_decode(&u.base, data + at, avail, &f);
        if (ct_codec_decode(&twin.base, data + at, avail, &tf) != r) abort();
        if (r == CT_CODEC_FRAME && (tf.payload_offset != f.payload_offset ||
                                    tf.payload_len != f.payload_len || tf.frame_len != f.frame_len))
            abort();
        ct_codec_reset(&fresh.base); /* forgets where it stopped: scans from the start */
        if (ct_codec_decode(&fresh.base, data + at, avail, &tf) != r) abort();
        if (r == CT_CODEC_FRAME && (tf.payload_offset != f.payload_offset ||
                                    tf.payload_len != f.payload_len || tf.frame_len != f.frame_len))
            abort();
        if (r < 0) {
            if (ct_codec_decode(&u.base, data + at, avail, &f) != r) abort(); /* sticky */
            break;
        }
        if (r == CT_CODEC_NEED_MORE) {
            if (at + avail == size) break;
            continue;
        }
        if (f.frame_len > avail || f.payload_offset + f.payload_len > f.frame_len) abort();
        if (is_resp && u.resp.inline_commands && data[at + f.payload_offset] != '*') {
            check_inline(data + at + f.payload_offset, f.payload_len);
        } else if (is_resp) { /* the reader agrees with the codec */
            size_t end = 0;
            const uint8_t *v = data + at + f.payload_offset;
            if (walk_resp(v, f.payload_len, &end) != 0 || end != f.payload_len) abort();
            if (u.resp.commands_only && v[0] != '*') abort(); /* commands are arrays */
        }
        check_roundtrip(&u.base, &twin.base, data + at + f.payload_offset, f.payload_len);
        at += f.frame_len;
        avail = 0;
    }
    return 0;
}
