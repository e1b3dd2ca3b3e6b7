/* The raw codec: whatever bytes are there make one message. */
#include "ctower/codec/raw.h"
#include "ctower/error.h"

#include <string.h>

static int raw_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    (void)data;
    if (len == 0) return CT_CODEC_NEED_MORE;
    frame->payload_offset = 0;
    frame->payload_len = len < codec->max_payload ? len : codec->max_payload;
    frame->frame_len = frame->payload_len;
    return CT_CODEC_FRAME;
}

static int raw_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                      size_t *written) {
    (void)codec;
    if (len) memcpy(out, payload, len);
    *written = len;
    return 0;
}

static const ct_codec_vtable_t raw_vtable = {raw_decode, raw_encode};

int ct_raw_codec_init(ct_raw_codec_t *c, size_t max_payload) {
    if (!c) return CT_EINVAL;
    memset(c, 0, sizeof *c);
    c->codec.vtable = &raw_vtable;
    c->codec.max_payload = max_payload ? max_payload : 16u << 10;
    c->codec.overhead = 0;
    c->codec.size = sizeof *c;
    return 0;
}
