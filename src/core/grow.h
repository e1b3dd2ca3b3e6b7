/* Growing a byte buffer to hold at least need bytes (private): doubling
 * from 4 KiB, so that a stream of appends costs amortized constant time,
 * and without wrapping past SIZE_MAX. */
#ifndef CTOWER_SRC_GROW_H
#define CTOWER_SRC_GROW_H

#include <stdint.h>
#include <stdlib.h>
#include <uv.h>

/* 0 (buf and cap updated, or already large enough) or UV_ENOMEM (both
 * unchanged). A buffer of capacity 0 gets one even when need is 0. */
static inline int ct_grow(uint8_t **buf, size_t *cap, size_t need) {
    size_t n = *cap ? *cap : 4096;
    uint8_t *p;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2; /* doubling must not wrap */
    if (n == *cap) return 0;
    p = realloc(*buf, n);
    if (!p) return UV_ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

#endif
