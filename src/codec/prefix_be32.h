/* The common framing's header, inline (private): a 4-byte big-endian payload
 * length. Shared by the codec's decode and the stream's read loop, which
 * frames inline without the vtable (see ct_codec.prefix_be32); one
 * definition, so that the fuzz target checking the codec checks both. */
#ifndef CTOWER_SRC_PREFIX_BE32_H
#define CTOWER_SRC_PREFIX_BE32_H

#include "ctower/codec.h"
#include "ctower/error.h"

#include <endian.h>
#include <string.h>

/* Reads the frame at data[0..len): CT_CODEC_FRAME with *payload_len (the
 * payload follows the 4 header bytes), CT_CODEC_NEED_MORE, or
 * CT_EFRAMETOOLARGE as soon as the header says more than max_payload. */
static inline int ct_prefix_be32_frame(const uint8_t *data, size_t len, size_t max_payload,
                                       size_t *payload_len) {
    uint32_t be;
    size_t n;
    if (len < 4) return CT_CODEC_NEED_MORE;
    memcpy(&be, data, 4);
    n = be32toh(be);
    if (n > max_payload) return CT_EFRAMETOOLARGE;
    if (len - 4 < n) return CT_CODEC_NEED_MORE;
    *payload_len = n;
    return CT_CODEC_FRAME;
}

#endif
