/* Pauses before trying again (private): the reconnecting client's between
 * connects, the retry layer's between attempts.
 *
 * The n-th pause in a row is min doubled n - 1 times, at most max, drawn at
 * random between half and all of that ("equal jitter"): clients that failed
 * together do not come back together, and none waits less than half. The
 * numbers come from a per-instance xorshift32, so there is no hidden global
 * state and no lock. */
#ifndef CTOWER_SRC_BACKOFF_H
#define CTOWER_SRC_BACKOFF_H

#include <stdint.h>
#include <uv.h>

/* A seed for ct_backoff_ms's generator, different per instance and run;
 * never 0, which xorshift would keep. */
static inline uint32_t ct_backoff_seed(const void *instance) {
    return (uint32_t)(uv_hrtime() ^ (uintptr_t)instance) | 1;
}

/* The n-th pause in a row (n >= 1), in ms. */
static inline uint64_t ct_backoff_ms(uint32_t *rng, uint64_t min, uint64_t max, unsigned n) {
    uint64_t d = min, half;
    unsigned i;
    for (i = 1; i < n && d < max; i++)
        d *= 2;
    if (d > max) d = max;
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    half = d / 2;
    return d - half + *rng % (half + 1);
}

#endif
