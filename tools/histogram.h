/* A log-linear latency histogram: 32 linear sub-buckets per power of two, so
 * any recorded value is reported within about 3% (the idea of
 * HdrHistogram, in a few lines). Fixed size, no allocation. Used by the
 * `ctower bench` tool and by the raw libuv baseline alike. */
#ifndef CTOWER_TOOLS_HISTOGRAM_H
#define CTOWER_TOOLS_HISTOGRAM_H

#include <stdint.h>

#define HIST_BUCKETS (59 * 32 + 64)

typedef struct histogram {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
} histogram_t;

void hist_init(histogram_t *h);
void hist_record(histogram_t *h, uint64_t value);
void hist_merge(histogram_t *into, const histogram_t *from);
/* The value at quantile q (0..1): the middle of its bucket. */
uint64_t hist_quantile(const histogram_t *h, double q);

#endif
