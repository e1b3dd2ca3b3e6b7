/* The length-delimited codec: a length field, then that many bytes.
 *
 * The field is 1, 2, 4 or 8 bytes, big- or little-endian. The payload length
 * is the field's value plus `adjust`, so a format whose length counts the
 * field itself uses adjust = -field_size. A negative payload length is
 * CT_EMALFORMED; one above max_payload is CT_EFRAMETOOLARGE.
 */
#ifndef CTOWER_CODEC_LENGTH_H
#define CTOWER_CODEC_LENGTH_H

#include "ctower/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The length field's form: its size, byte order, what it counts, the largest payload. */
typedef struct ct_length_codec_config {
    unsigned field_size; /* 1, 2, 4 or 8 */
    int little_endian;   /* 0: big-endian (network order) */
    int64_t adjust;      /* payload length = field value + adjust */
    size_t max_payload;  /* 0: 8 MiB */
} ct_length_codec_config_t;

/* The length-delimited codec: a length field, then the payload. */
typedef struct ct_length_codec {
    ct_codec_t codec; /* first: a ct_length_codec_t * is a ct_codec_t * */
    /* private */
    ct_length_codec_config_t cfg;
} ct_length_codec_t;

/* Initializes codec. cfg NULL means 4 bytes, big-endian, no adjustment.
 * Returns 0 or CT_EINVAL. */
int ct_length_codec_init(ct_length_codec_t *codec, const ct_length_codec_config_t *cfg);

#ifdef __cplusplus
}
#endif
#endif
