#include "histogram.h"

#include <string.h>

static unsigned bucket_of(uint64_t v) {
    unsigned msb, exp;
    if (v < 64) return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    exp = msb - 5; /* keep the top 6 bits: 32..63 */
    return exp * 32 + (unsigned)(v >> exp);
}

static uint64_t bucket_low(unsigned i) {
    unsigned exp;
    if (i < 64) return i;
    exp = i / 32 - 1;
    return (uint64_t)(i - exp * 32) << exp;
}

void hist_init(histogram_t *h) {
    memset(h, 0, sizeof *h);
}

void hist_record(histogram_t *h, uint64_t value) {
    h->counts[bucket_of(value)]++;
    h->total++;
    if (value > h->max) h->max = value;
}

void hist_merge(histogram_t *into, const histogram_t *from) {
    unsigned i;
    for (i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    if (from->max > into->max) into->max = from->max;
}

uint64_t hist_quantile(const histogram_t *h, double q) {
    uint64_t rank, seen = 0;
    unsigned i;
    if (h->total == 0) return 0;
    rank = (uint64_t)(q * (double)h->total);
    if (rank >= h->total) rank = h->total - 1;
    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            uint64_t lo = bucket_low(i), hi = i + 1 < HIST_BUCKETS ? bucket_low(i + 1) : lo;
            uint64_t mid = lo + (hi - lo) / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
