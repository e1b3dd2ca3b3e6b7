/* What the RESP codec's files share (private). */
#ifndef CTOWER_SRC_RESP_HEADER_H
#define CTOWER_SRC_RESP_HEADER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* "<type><n>\r\n" into out at *at, if it fits in cap (out may be NULL when
 * cap is 0); *at moves on either way, so that a first pass can size. */
static inline void ct_resp_put_header(uint8_t *out, size_t cap, size_t *at, char type, size_t n) {
    char text[32];
    int k = snprintf(text, sizeof text, "%c%zu\r\n", type, n);
    if (*at + (size_t)k <= cap) memcpy(out + *at, text, (size_t)k);
    *at += (size_t)k;
}

#endif
