/* The length-delimited codec. */
#include "ctower/codec/length.h"
#include "ctower/error.h"

#include <endian.h>
#include <string.h>

/* Field access by size and byte order: one load or store and a byte swap,
 * not a loop over bytes (this runs twice per message). */
static uint64_t read_field(const ct_length_codec_config_t *cfg, const uint8_t *p) {
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (cfg->field_size) {
    case 1:
        return p[0];
    case 2:
        memcpy(&v16, p, 2);
        return cfg->little_endian ? le16toh(v16) : be16toh(v16);
    case 4:
        memcpy(&v32, p, 4);
        return cfg->little_endian ? le32toh(v32) : be32toh(v32);
    default:
        memcpy(&v64, p, 8);
        return cfg->little_endian ? le64toh(v64) : be64toh(v64);
    }
}

static void write_field(const ct_length_codec_config_t *cfg, uint64_t v, uint8_t *p) {
    uint16_t v16;
    uint32_t v32;
    switch (cfg->field_size) {
    case 1:
        p[0] = (uint8_t)v;
        break;
    case 2:
        v16 = cfg->little_endian ? htole16((uint16_t)v) : htobe16((uint16_t)v);
        memcpy(p, &v16, 2);
        break;
    case 4:
        v32 = cfg->little_endian ? htole32((uint32_t)v) : htobe32((uint32_t)v);
        memcpy(p, &v32, 4);
        break;
    default:
        v = cfg->little_endian ? htole64(v) : htobe64(v);
        memcpy(p, &v, 8);
        break;
    }
}

/* The payload length for a field value, in unsigned arithmetic so that no
 * value of an 8-byte field can overflow. */
static int payload_len(const ct_length_codec_t *c, uint64_t field, uint64_t *out) {
    int64_t adjust = c->cfg.adjust;
    if (adjust >= 0) {
        if (field > UINT64_MAX - (uint64_t)adjust) return CT_EFRAMETOOLARGE;
        *out = field + (uint64_t)adjust;
    } else {
        uint64_t minus = (uint64_t)(-(adjust + 1)) + 1;
        if (field < minus) return CT_EMALFORMED;
        *out = field - minus;
    }
    return *out > c->codec.max_payload ? CT_EFRAMETOOLARGE : 0;
}

static int length_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame) {
    ct_length_codec_t *c = (ct_length_codec_t *)codec;
    size_t field_size = c->cfg.field_size;
    uint64_t payload;
    int r;
    /* The common framing never gets here: ct_codec_decode frames it inline
     * (prefix_be32). */
    if (len < field_size) return CT_CODEC_NEED_MORE;
    if ((r = payload_len(c, read_field(&c->cfg, data), &payload)) < 0) return r;
    if (len - field_size < payload) return CT_CODEC_NEED_MORE;
    frame->payload_offset = field_size;
    frame->payload_len = (size_t)payload;
    frame->frame_len = field_size + (size_t)payload;
    return CT_CODEC_FRAME;
}

static int length_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                         size_t *written) {
    ct_length_codec_t *c = (ct_length_codec_t *)codec;
    int64_t adjust = c->cfg.adjust;
    uint64_t field;
    if (len > codec->max_payload) return CT_EFRAMETOOLARGE;
    if (adjust >= 0) {
        if ((uint64_t)len < (uint64_t)adjust) return CT_EINVAL; /* cannot be expressed */
        field = (uint64_t)len - (uint64_t)adjust;
    } else {
        field = (uint64_t)len + ((uint64_t)(-(adjust + 1)) + 1);
    }
    if (c->cfg.field_size < 8 && field >> (8 * c->cfg.field_size)) return CT_EFRAMETOOLARGE;
    write_field(&c->cfg, field, out);
    if (len) memcpy(out + c->cfg.field_size, payload, len);
    *written = c->cfg.field_size + len;
    return 0;
}

static const ct_codec_vtable_t length_vtable = {length_decode, length_encode};

int ct_length_codec_init(ct_length_codec_t *c, const ct_length_codec_config_t *cfg) {
    ct_length_codec_config_t d = {4, 0, 0, 0};
    if (cfg) d = *cfg;
    if (d.field_size != 1 && d.field_size != 2 && d.field_size != 4 && d.field_size != 8)
        return CT_EINVAL;
    if (d.adjust == INT64_MIN) return CT_EINVAL;
    if (d.max_payload == 0) d.max_payload = 8u << 20;
    c->cfg = d;
    c->codec.vtable = &length_vtable;
    c->codec.max_payload = d.max_payload;
    c->codec.overhead = d.field_size;
    c->codec.size = sizeof(ct_length_codec_t);
    c->codec.prefix_be32 =
        d.field_size == 4 && !d.little_endian && d.adjust == 0 && d.max_payload <= UINT32_MAX;
    c->codec.max_pending = 0;
    c->codec.error = 0;
    c->codec.scan = 0;
    return 0;
}
