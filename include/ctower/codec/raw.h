/* The raw codec: no framing at all. Every read hands on the bytes it
 * brought (up to max_payload at a time) as one message, and a message sent
 * is written as it is. It turns a stream into a byte pipe, for a protocol
 * that frames itself above the transport (HTTP/2: http2.h) or a proxy that
 * passes bytes through.
 *
 * How bytes are cut into messages depends on how they arrived: a reader
 * must not give the cuts any meaning.
 */
#ifndef CTOWER_CODEC_RAW_H
#define CTOWER_CODEC_RAW_H

#include "ctower/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The raw codec: the bytes as they come, a read's worth per message. */
typedef struct ct_raw_codec {
    ct_codec_t codec; /* first: a ct_raw_codec_t * is a ct_codec_t * */
} ct_raw_codec_t;

/* Initializes codec to deliver at most max_payload bytes per message (0:
 * 16 KiB). A stream's pool with buffers of that size gives every message a
 * pooled buffer. Returns 0, or CT_EINVAL for a NULL codec. */
int ct_raw_codec_init(ct_raw_codec_t *codec, size_t max_payload);

#ifdef __cplusplus
}
#endif
#endif
