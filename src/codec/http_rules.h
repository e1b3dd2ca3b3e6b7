/* Rules of HTTP/1.1 that the codec and the message views both apply on top
 * of http_parser (private). */
#ifndef CTOWER_SRC_CODEC_HTTP_RULES_H
#define CTOWER_SRC_CODEC_HTTP_RULES_H

#include <stddef.h>
#include <string.h>

/* A response with no body, whatever its headers say: 1xx, 204, 304, and the
 * answer to a HEAD (http_parser would read a body for a 204 or 304 with a
 * Content-Length). */
static inline int ct_http_has_no_body(unsigned status, int head) {
    return head || status < 200 || status == 204 || status == 304;
}

/* RFC 9112: no whitespace between a field's name and its colon (http_parser
 * allows it, and two parsers that disagree on a field's name disagree on
 * where a message ends). A name comes in pieces when it spans reads. */
static inline int ct_http_name_ok(const char *at, size_t len) {
    return !memchr(at, ' ', len) && !memchr(at, '\t', len);
}

#endif
