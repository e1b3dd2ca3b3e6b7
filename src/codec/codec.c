/* The generic half of codecs: the sticky error. */
#include "ctower/codec.h"

int ct_codec_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    int r;
    if (codec->error) return codec->error;
    r = codec->vtable->decode(codec, data, len, frame);
    if (r < 0) codec->error = r;
    if (r == CT_CODEC_FRAME) codec->scan = 0;
    return r;
}

int ct_codec_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                    size_t *written) {
    return codec->vtable->encode(codec, payload, len, out, written);
}

int ct_codec_error(const ct_codec_t *codec) {
    return codec->error;
}

void ct_codec_reset(ct_codec_t *codec) {
    codec->error = 0;
    codec->scan = 0;
}
