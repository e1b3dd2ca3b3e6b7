/* The newline-delimited codec, with '\n' or "\r\n" ends. It remembers how
 * far it has scanned the pending line, so a long line arriving in many small
 * reads is scanned once, not once per read. */
#include "ctower/codec/line.h"
#include "ctower/error.h"

#include <string.h>

static int line_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    int crlf = ((ct_line_codec_t *)codec)->crlf;
    size_t limit = codec->max_payload + codec->overhead; /* the line and its end */
    size_t end = len < limit ? len : limit, line;
    const uint8_t *nl;
    if (codec->scan > end) codec->scan = 0; /* not the bytes we saw: start over */
    nl = memchr(data + codec->scan, '\n', end - codec->scan);
    if (!nl) {
        codec->scan = end;
        return len >= limit ? CT_EFRAMETOOLARGE : CT_CODEC_NEED_MORE;
    }
    line = (size_t)(nl - data);
    frame->payload_offset = 0;
    frame->payload_len = crlf && line > 0 && data[line - 1] == '\r' ? line - 1 : line;
    frame->frame_len = line + 1;
    /* with CRLF ends the window has room for a '\r' that was not there */
    if (frame->payload_len > codec->max_payload) return CT_EFRAMETOOLARGE;
    return CT_CODEC_FRAME;
}

static int line_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                       size_t *written) {
    if (len > codec->max_payload) return CT_EFRAMETOOLARGE;
    if (len && memchr(payload, '\n', len)) return CT_EINVAL;
    if (len) memcpy(out, payload, len);
    if (((ct_line_codec_t *)codec)->crlf) out[len++] = '\r';
    out[len] = '\n';
    *written = len + 1;
    return 0;
}

static const ct_codec_vtable_t line_vtable = {line_decode, line_encode};

int ct_line_codec_init(ct_line_codec_t *c, size_t max_payload) {
    if (!c) return CT_EINVAL;
    c->codec.vtable = &line_vtable;
    c->codec.max_payload = max_payload ? max_payload : 64u << 10;
    c->codec.overhead = 1;
    c->crlf = 0;
    c->codec.size = sizeof(ct_line_codec_t);
    c->codec.prefix_be32 = 0;
    c->codec.max_pending = 0;
    c->codec.error = 0;
    c->codec.scan = 0;
    return 0;
}

int ct_line_codec_init_crlf(ct_line_codec_t *c, size_t max_payload) {
    if (ct_line_codec_init(c, max_payload) != 0) return CT_EINVAL;
    c->codec.overhead = 2;
    c->crlf = 1;
    return 0;
}
