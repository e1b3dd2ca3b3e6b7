/* The RESP codec: Redis's protocol (RESP2, and RESP3's types), one value per
 * frame.
 *
 * A frame is one complete value, nested aggregates included, and its payload
 * is that value's bytes as they are on the wire (type byte and "\r\n"s
 * included): a client gets each reply whole, to read as it likes, and sends
 * each command as one value (ct_resp_format_command() writes one).
 *
 * Decoding checks the framing, not the contents: every line ends in "\r\n",
 * lengths and counts are decimal (-1 for RESP2's nulls), a bulk string is
 * followed by "\r\n", aggregates nest at most 32 deep. Anything else is
 * CT_EMALFORMED, including Redis's inline commands (a line that starts with
 * no type byte); a value over max_payload is CT_EFRAMETOOLARGE. Types:
 * + - : _ # , ( (a line), $ ! = (a length, then that many bytes), * ~ >
 * (a count of values), % | (a count of pairs; an attribute is followed by
 * the value it describes, which belongs to the same frame).
 *
 * Encoding takes a payload that is exactly one value, checked the same way
 * (CT_EINVAL otherwise), and writes it as it is.
 */
#ifndef CTOWER_CODEC_RESP_H
#define CTOWER_CODEC_RESP_H

#include "ctower/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_resp_codec {
    ct_codec_t codec; /* first: a ct_resp_codec_t * is a ct_codec_t * */
} ct_resp_codec_t;

/* Initializes codec for values of at most max_payload bytes (0: 1 MiB). */
void ct_resp_codec_init(ct_resp_codec_t *codec, size_t max_payload);

/* Writes the command argv[0..argc) (argvlen[i] bytes each, any bytes) as a
 * RESP array of bulk strings into out, if it fits in cap bytes. Returns the
 * command's size in bytes either way (as snprintf does), so a first call
 * with cap 0 sizes the buffer. */
size_t ct_resp_format_command(uint8_t *out, size_t cap, int argc, const char *const argv[],
                              const size_t argvlen[]);

#ifdef __cplusplus
}
#endif
#endif
