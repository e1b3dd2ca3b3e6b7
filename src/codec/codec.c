/* The generic half of codecs: the sticky error, and the common framing
 * inline. */
#include "ctower/codec.h"
#include "ctower/error.h"
#include "prefix_be32.h"

#include <string.h>

/* codec->prefix_be32: what the codec's own decode would answer, without the
 * indirect call (this runs for every message received). */
static int decode_prefix_be32(const ct_codec_t *codec, const uint8_t *data, size_t len,
                              ct_frame_t *frame) {
    size_t n = 0;
    int r = ct_prefix_be32_frame(data, len, codec->max_payload, &n);
    if (r != CT_CODEC_FRAME) return r;
    frame->payload_offset = 4;
    frame->payload_len = n;
    frame->frame_len = 4 + n;
    return CT_CODEC_FRAME;
}

int ct_codec_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    int r;
    if (codec->error) return codec->error;
    if (codec->prefix_be32)
        r = decode_prefix_be32(codec, data, len, frame);
    else
        r = codec->vtable->decode(codec, data, len, frame);
    if (r < 0) codec->error = r;
    if (r == CT_CODEC_FRAME) codec->scan = 0;
    return r;
}

int ct_codec_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                    size_t *written) {
    if (codec->prefix_be32) { /* likewise, for every message sent */
        uint32_t be = htobe32((uint32_t)len);
        if (len > codec->max_payload) return CT_EFRAMETOOLARGE;
        memcpy(out, &be, 4);
        memcpy(out + 4, payload, len);
        *written = 4 + len;
        return 0;
    }
    return codec->vtable->encode(codec, payload, len, out, written);
}

int ct_codec_error(const ct_codec_t *codec) {
    return codec->error;
}

void ct_codec_reset(ct_codec_t *codec) {
    codec->error = 0;
    codec->scan = 0;
}
