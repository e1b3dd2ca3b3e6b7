/* The newline-delimited codec: each frame is a line ending in '\n' (not part
 * of the payload). A line longer than max_payload is CT_EFRAMETOOLARGE; a
 * payload containing '\n' cannot be encoded (CT_EINVAL).
 *
 * The CRLF variant is for the protocols whose lines end in "\r\n" (Redis
 * inline commands and simple replies, memcached's text protocol, SMTP,
 * HTTP/1.1 header lines): it ends every line it encodes with "\r\n", and
 * drops one '\r' before the '\n' of a line it decodes (a bare '\n' ends a
 * line too, as those servers accept it).
 */
#ifndef CTOWER_CODEC_LINE_H
#define CTOWER_CODEC_LINE_H

#include "ctower/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The line codec: one message per line, ending in "\n" or "\r\n". */
typedef struct ct_line_codec {
    ct_codec_t codec; /* first: a ct_line_codec_t * is a ct_codec_t * */
    /* private */
    int crlf;
} ct_line_codec_t;

/* Initializes codec for lines of at most max_payload bytes (0: 64 KiB).
 * Returns 0, or CT_EINVAL for a NULL codec. */
int ct_line_codec_init(ct_line_codec_t *codec, size_t max_payload);

/* The same, for lines that end in "\r\n". Returns 0 or CT_EINVAL. */
int ct_line_codec_init_crlf(ct_line_codec_t *codec, size_t max_payload);

#ifdef __cplusplus
}
#endif
#endif
