/* Stats: counters, gauges and latency histograms that a loop records into
 * and any thread reads, and their Prometheus text exposition.
 *
 * Recording is the hot path: a few instructions, no allocation, no lock.
 * Each metric has one writer, the loop that owns the component it counts,
 * which adds with a plain load and a relaxed atomic store (no locked
 * instruction); readers on other threads load it relaxed. So a value read
 * while it is being written is the old or the new one, never torn, and
 * ThreadSanitizer sees no race. Loops never share a metric: a component on
 * each of four loops has four, and a reader sums them (ct_stats_write).
 *
 * The histogram is log-linear (HdrHistogram's idea): 32 linear buckets per
 * power of two, so a value is known within 1/32 of itself (3.1%), reported
 * at its bucket's middle (within 1.6%), from 1 ns to 2^38 ns (about 275 s;
 * larger values count in the last bucket). Fixed size (8.7 KiB), no
 * allocation; two histograms merge by adding their buckets.
 *
 * A ct_stats_t is one loop's list of named metrics with fixed labels, made
 * at setup (registering allocates; recording never does). Adding to a list
 * and removing from it are its loop's to do, while no other thread writes
 * the exposition of it (so a process whose admin endpoint reads several
 * loops' lists makes them before it starts).
 */
#ifndef CTOWER_STATS_H
#define CTOWER_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A count that only grows, written by one loop. */
typedef struct ct_counter {
    uint64_t value; /* read it with ct_counter_read() */
} ct_counter_t;

/* A value that goes up and down, written by one loop. */
typedef struct ct_gauge {
    int64_t value; /* read it with ct_gauge_read() */
} ct_gauge_t;

#define CT_HISTOGRAM_SUB 32 /* linear buckets per power of two */
/* 0..63 one value each, then 32 per power of two from 2^6 to 2^38 */
#define CT_HISTOGRAM_BUCKETS (2 * CT_HISTOGRAM_SUB + (38 - 6) * CT_HISTOGRAM_SUB)

/* A log-linear histogram of values (latencies in ns), written by one loop. */
typedef struct ct_histogram {
    uint64_t counts[CT_HISTOGRAM_BUCKETS]; /* values recorded per bucket */
    uint64_t count;                        /* values recorded */
    uint64_t sum;                          /* of the values recorded, for a mean */
    uint64_t max;                          /* the largest recorded */
} ct_histogram_t;

/* The single writer's side: relaxed stores (see above). */
static inline void ct_counter_add(ct_counter_t *c, uint64_t n) {
    __atomic_store_n(&c->value, c->value + n, __ATOMIC_RELAXED);
}

/* Moves the gauge by n (may be negative). */
static inline void ct_gauge_add(ct_gauge_t *g, int64_t n) {
    __atomic_store_n(&g->value, g->value + n, __ATOMIC_RELAXED);
}

/* Sets the gauge to v. */
static inline void ct_gauge_set(ct_gauge_t *g, int64_t v) {
    __atomic_store_n(&g->value, v, __ATOMIC_RELAXED);
}

/* A reader's side, from any thread. */
uint64_t ct_counter_read(const ct_counter_t *c);
int64_t ct_gauge_read(const ct_gauge_t *g);

/* An empty histogram. */
void ct_histogram_init(ct_histogram_t *h);

/* The bucket of value v (inline: it is on the hot path), and the values
 * bucket i holds: [low, high]. Values below 64 have a bucket each; above,
 * the power of two (the highest bit) picks 32 buckets and the next 5 bits
 * one of them. */
static inline size_t ct_histogram_bucket(uint64_t v) {
    unsigned msb;
    size_t i;
    if (v < 2 * CT_HISTOGRAM_SUB) return (size_t)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    i = 2 * CT_HISTOGRAM_SUB + (size_t)(msb - 6) * CT_HISTOGRAM_SUB +
        (size_t)((v >> (msb - 5)) - CT_HISTOGRAM_SUB);
    return i < CT_HISTOGRAM_BUCKETS ? i : CT_HISTOGRAM_BUCKETS - 1;
}

/* The values bucket i holds, [*low, *high]. */
void ct_histogram_bucket_range(size_t i, uint64_t *low, uint64_t *high);

/* Records v (the single writer's side). */
static inline void ct_histogram_record(ct_histogram_t *h, uint64_t v) {
    size_t i = ct_histogram_bucket(v);
    __atomic_store_n(&h->counts[i], h->counts[i] + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->count, h->count + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->sum, h->sum + v, __ATOMIC_RELAXED);
    if (v > h->max) __atomic_store_n(&h->max, v, __ATOMIC_RELAXED);
}

/* Adds from's buckets into into (a reader's copy: into has no other
 * writer; from may be recorded into meanwhile). */
void ct_histogram_merge(ct_histogram_t *into, const ct_histogram_t *from);

/* The value at quantile q (0..1) of what h holds (the middle of its
 * bucket, at most h's max); 0 if h is empty. Of a reader's copy. */
uint64_t ct_histogram_quantile(const ct_histogram_t *h, double q);

/* ---- a loop's named metrics ------------------------------------------------- */

typedef enum { CT_STATS_COUNTER, CT_STATS_GAUGE, CT_STATS_HISTOGRAM } ct_stats_kind_t;

/* One registered metric: its name, labels, kind and where its value is. */
typedef struct ct_stats_entry {
    char *name;           /* Prometheus's: [a-zA-Z_:][a-zA-Z0-9_:]* (the library's copy) */
    const char *help;     /* one line */
    char *labels;         /* 'key="value",...' (the library's copy, with the name's), or "" */
    ct_stats_kind_t kind; /* counter, gauge or histogram */
    double scale;         /* histograms: exposed value = recorded * scale (ns to s: 1e-9) */
    const void *metric;   /* the component's ct_counter_t, ct_gauge_t or ct_histogram_t */
} ct_stats_entry_t;

/* One loop's registry of named metrics. */
typedef struct ct_stats {
    ct_stats_entry_t *entries; /* n of them, room for cap */
    size_t n;                  /* metrics registered */
    size_t cap;                /* room in entries */
} ct_stats_t;

/* An empty registry. */
void ct_stats_init(ct_stats_t *s);

/* Frees the list (not the metrics: their components own them). */
void ct_stats_free(ct_stats_t *s);

/* Adds a metric of its component to s, under name and labels (both
 * copied; labels NULL for none). help must outlive s (a string literal). Returns
 * 0, CT_EINVAL (a name Prometheus would refuse, labels that are not
 * key="value" pairs) or UV_ENOMEM. */
int ct_stats_add_counter(ct_stats_t *s, const char *name, const char *labels, const char *help,
                         const ct_counter_t *c);
int ct_stats_add_gauge(ct_stats_t *s, const char *name, const char *labels, const char *help,
                       const ct_gauge_t *g);
int ct_stats_add_histogram(ct_stats_t *s, const char *name, const char *labels, const char *help,
                           double scale, const ct_histogram_t *h);

/* The same under the name PREFIX_SUFFIX (a component that registers its
 * metrics under a caller's prefix); scale is for histograms. CT_EINVAL
 * for a name over 127 bytes. */
int ct_stats_add_named(ct_stats_t *s, ct_stats_kind_t kind, const char *prefix, const char *suffix,
                       const char *labels, const char *help, double scale, const void *metric);

/* Removes the metrics that lie in [component, component + size) (a
 * component's struct, before it is freed); returns how many. */
size_t ct_stats_remove(ct_stats_t *s, const void *component, size_t size);

/* Writes the Prometheus text exposition (version 0.0.4) of the metrics of
 * loops[0..n) into out[0..cap): one HELP and TYPE per name (the names in
 * byte order, each sample's labels too), one sample per distinct labels, summed over the loops (a
 * histogram's buckets merged; its le boundaries are the exposition's own, 1-2.5-5 steps from 1e-6
 * to 100 times its unit). Returns the length written, or the length it would need
 * (> cap: nothing useful was written) so that the caller can grow out; 0
 * without memory for its scratch histogram. Any thread may call it while
 * the loops record. */
size_t ct_stats_write(const ct_stats_t *const *loops, size_t n, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
