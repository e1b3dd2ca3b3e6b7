/* The RESP codec: Redis's protocol (RESP2, and RESP3's types), one value per
 * frame.
 *
 * A frame is one complete value, nested aggregates included, and its payload
 * is that value's bytes as they are on the wire (type byte and "\r\n"s
 * included): a client gets each reply whole, to read as it likes, and sends
 * each command as one value (ct_resp_format_command() writes one).
 *
 * Decoding checks the framing and the numbers: every line ends in "\r\n",
 * lengths and counts are decimal (-1 for RESP2's nulls), integers fit in 64
 * bits, a bulk string is followed by "\r\n", aggregates nest at most 32
 * deep. Anything else is
 * CT_EMALFORMED, including Redis's inline commands (a line that starts with
 * no type byte); a value over max_payload is CT_EFRAMETOOLARGE. Types:
 * + - : _ # , ( (a line), $ ! = (a length, then that many bytes), * ~ >
 * (a count of values), % | (a count of pairs; an attribute is followed by
 * the value it describes, which belongs to the same frame).
 *
 * Encoding takes a payload that is exactly one value, checked the same way
 * (CT_EINVAL otherwise), and writes it as it is.
 *
 * A value that arrives over many reads is scanned once: the codec keeps
 * where it stopped (up to 8 levels of nesting deep; deeper, it starts
 * again), so a reply of many items costs the same however it is cut.
 *
 * ct_resp_read() walks a value's bytes item by item, for a client that reads
 * its replies (no allocation, no tree: an aggregate says how many items
 * follow it, and the caller reads them in turn).
 */
#ifndef CTOWER_CODEC_RESP_H
#define CTOWER_CODEC_RESP_H

#include "ctower/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CT_RESP_RESUME_DEPTH = 8 };

/* The RESP codec: one Redis value (or, on a server's side, one command) per frame. */
typedef struct ct_resp_codec {
    ct_codec_t codec; /* first: a ct_resp_codec_t * is a ct_codec_t * */
    /* private: where the scan of a value that has not all arrived stopped
     * (codec.scan is its offset; 0: none), so that the next read goes on
     * from there instead of scanning the value again from its start. */
    uint32_t resume_depth;
    uint32_t resume_waiting[CT_RESP_RESUME_DEPTH];
    int commands_only;   /* ct_resp_codec_init_commands() */
    int inline_commands; /* ... with inline commands */
} ct_resp_codec_t;

/* Initializes codec for values of at most max_payload bytes (0: 1 MiB).
 * Returns 0, or CT_EINVAL for a NULL codec. */
int ct_resp_codec_init(ct_resp_codec_t *codec, size_t max_payload);

/* Likewise, for the side of a server or a proxy that reads commands: every
 * frame decoded must be a command as Redis reads one, an array of one or
 * more bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), and anything else
 * is CT_EMALFORMED, which ends the connection. Redis itself answers other
 * input with no reply (an empty array), with two (a bulk string read as
 * inline commands) or by closing the connection: passed on over a
 * connection that several clients share, it would hand later replies to the
 * wrong requests. Encoding is as ct_resp_codec_init()'s.
 *
 * With inline_commands, a frame may also be an inline command, as Redis
 * reads one: a line that does not start with '*' ("SET k v\r\n", the "\r"
 * optional). Its payload is the line without its end: turn it into a
 * command with ct_resp_inline_to_command(). Blank lines (spaces only) before
 * a command are skipped, as Redis skips them without a reply: they are part
 * of the next frame, before its payload. Returns 0 or CT_EINVAL. */
int ct_resp_codec_init_commands(ct_resp_codec_t *codec, size_t max_payload, int inline_commands);

/* The inline command line[0..len) (a line's words, without its end) as a
 * command, an array of bulk strings, written into out if it fits in cap
 * bytes (otherwise out may hold a part of it); *size gets its size either
 * way (out may be NULL to ask). Words are split as Redis splits them:
 * spaces between words, "double quotes" with the escapes \n \r \t \b \a
 * \xHH (any other \c is c), 'single quotes' with \' only. Returns 0,
 * CT_EMALFORMED for a quote left open or followed by more of its word, or
 * CT_EINVAL for a line with no words. */
int ct_resp_inline_to_command(const uint8_t *line, size_t len, uint8_t *out, size_t cap,
                              size_t *size);

/* One item of a value: a scalar, or an aggregate's header. */
typedef struct ct_resp_item {
    char type; /* the type byte: '+', '-', ':', '$', '*', '%', ... (see above) */
    int null;  /* RESP2's "$-1" and "*-1", and RESP3's '_' */
    /* The line's text ('+', '-', ':', '#', ',', '('), or a bulk string's
     * bytes ('$', '!', '='): str[0..len), in the value's own bytes. NULL for
     * aggregates and nulls. */
    const uint8_t *str;
    size_t len;
    /* ':': the integer. Aggregates: how many items follow as its elements:
     * the count for '*', '~', '>', twice the count of pairs for '%' and
     * '|' (an attribute's pairs; the value it describes comes after them,
     * as the next item). */
    int64_t n;
} ct_resp_item_t;

/* Reads the item at p[*at..len) and moves *at past it (for an aggregate,
 * to its first element). Checks every bound, so p may be any bytes. Returns
 * 0, CT_ETRUNCATED if p ends inside the item, or CT_EMALFORMED. */
int ct_resp_read(const uint8_t *p, size_t len, size_t *at, ct_resp_item_t *item);

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
