/* A strict second reading of a chunked message's framing (private).
 *
 * Debian's http_parser is built without HTTP_PARSER_STRICT: where a chunk's
 * data should be followed by "\r\n" it takes any two bytes, and after a
 * size line's '\r' any byte as its '\n'. "3\r\nabcXX0\r\n\r\n" is then one
 * request with the body "abc", while a strict backend reads other requests
 * in the same bytes: a proxy that passes the body on as it came would let
 * requests be smuggled past it. So every chunked message http_parser
 * frames is read again here, by RFC 9112's grammar, and refused unless
 * both readings end at the same byte. */
#ifndef CTOWER_SRC_CODEC_HTTP_CHUNKED_H
#define CTOWER_SRC_CODEC_HTTP_CHUNKED_H

#include <stddef.h>

/* 1 if msg[0..len) is a head ended by "\r\n\r\n", then chunks, a last
 * chunk and trailer fields, each line ended by "\r\n", and nothing after;
 * 0 otherwise. */
int ct_http_chunked_ok(const char *msg, size_t len);

#endif
