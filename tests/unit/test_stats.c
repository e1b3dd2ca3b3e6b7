/* Stats: the histogram's error bound against exact percentiles (random and
 * adversarial samples), merging, counters and gauges, names and labels
 * refused, and the Prometheus exposition summed over loops. */
#include "testutil.h"

#include <ctower/stats.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(stats, .init = h_setup, .fini = h_teardown);

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every quantile of h within 1/32 of the exact one of the samples. */
static void check_quantiles(uint64_t *samples, size_t n) {
    static ct_histogram_t h;
    static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1};
    size_t i;
    ct_histogram_init(&h);
    for (i = 0; i < n; i++)
        ct_histogram_record(&h, samples[i]);
    qsort(samples, n, sizeof *samples, cmp_u64);
    cr_assert_eq(h.count, n);
    cr_assert_eq(h.max, samples[n - 1]);
    for (i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        uint64_t exact = samples[(size_t)(qs[i] * (double)(n - 1))];
        uint64_t got = ct_histogram_quantile(&h, qs[i]);
        double err = exact ? fabs((double)got - (double)exact) / (double)exact : (double)got;
        cr_assert_leq(err, 1.0 / 32, "q %g: %llu, exactly %llu (%.2f%%)", qs[i],
                      (unsigned long long)got, (unsigned long long)exact, 100 * err);
    }
}

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(stats, buckets_cover_every_value_once_within_a_32nd) {
    size_t i;
    uint64_t low, high, prev_high = 0;
    for (i = 0; i < CT_HISTOGRAM_BUCKETS; i++) {
        ct_histogram_bucket_range(i, &low, &high);
        if (i) cr_assert_eq(low, prev_high + 1, "a gap or an overlap at bucket %zu", i);
        cr_assert_eq(ct_histogram_bucket(low), i);
        cr_assert_eq(ct_histogram_bucket(high), i);
        if (high > low) /* (below 64: a value each, exact) */
            cr_assert_leq((double)(high - low + 1) / (double)low, 1.0 / 32 + 1e-12, "bucket %zu",
                          i);
        prev_high = high;
    }
    cr_assert_eq(ct_histogram_bucket(UINT64_MAX), CT_HISTOGRAM_BUCKETS - 1, "beyond: the last");
}

Test(stats, quantiles_of_random_latencies) {
    enum { N = 100000 };
    static uint64_t s[N];
    uint64_t rng = 88172645463325252ull;
    size_t i;
    for (i = 0; i < N; i++) /* log-uniform over 1 us .. 100 s, in ns */
        s[i] = (uint64_t)(1e3 * pow(1e8, (double)(next(&rng) % 1000000) / 1e6));
    check_quantiles(s, N);
    for (i = 0; i < N; i++) /* uniform, 0 .. 10 ms */
        s[i] = next(&rng) % 10000000;
    check_quantiles(s, N);
}

Test(stats, quantiles_of_adversarial_samples) {
    enum { N = 4096 };
    static uint64_t s[N];
    uint64_t low, high;
    size_t i;
    for (i = 0; i < N; i++) { /* every value at a bucket's edge, both edges */
        ct_histogram_bucket_range(200 + i % 800, &low, &high);
        s[i] = i % 2 ? low : high;
    }
    check_quantiles(s, N);
    for (i = 0; i < N; i++) /* two spikes far apart */
        s[i] = i < N / 2 ? 1000 : 60000000000ull;
    check_quantiles(s, N);
    for (i = 0; i < N; i++) /* one value */
        s[i] = 123456789;
    check_quantiles(s, N);
    for (i = 0; i < N; i++) /* small values are exact */
        s[i] = i % 64;
    check_quantiles(s, N);
}

Test(stats, histograms_merge_and_an_empty_one_says_0) {
    static ct_histogram_t a, b, m;
    ct_histogram_init(&a);
    ct_histogram_init(&b);
    ct_histogram_init(&m);
    cr_assert_eq(ct_histogram_quantile(&a, 0.5), 0);
    ct_histogram_record(&a, 1000);
    ct_histogram_record(&b, 5000000);
    ct_histogram_record(&b, 5000000);
    ct_histogram_merge(&m, &a);
    ct_histogram_merge(&m, &b);
    cr_assert_eq(m.count, 3);
    cr_assert_eq(m.sum, 10001000);
    cr_assert_eq(m.max, 5000000);
    cr_assert_leq(fabs((double)ct_histogram_quantile(&m, 0) - 1e3) / 1e3, 1.0 / 32);
    cr_assert_leq(fabs((double)ct_histogram_quantile(&m, 1) - 5e6) / 5e6, 1.0 / 32);
}

Test(stats, names_and_labels_prometheus_would_refuse_are_refused) {
    ct_stats_t s;
    ct_counter_t c = {0};
    ct_stats_init(&s);
    cr_assert_eq(ct_stats_add_counter(&s, "ok_total", NULL, "", &c), 0);
    cr_assert_eq(ct_stats_add_counter(&s, "ok_total", "a=\"1\",b_2=\"x \\\" y\"", "", &c), 0);
    cr_assert_eq(ct_stats_add_counter(&s, "1bad", NULL, "", &c), CT_EINVAL);
    cr_assert_eq(ct_stats_add_counter(&s, "bad-name", NULL, "", &c), CT_EINVAL);
    cr_assert_eq(ct_stats_add_counter(&s, "", NULL, "", &c), CT_EINVAL);
    cr_assert_eq(ct_stats_add_counter(&s, "x", "a=1", "", &c), CT_EINVAL, "unquoted");
    cr_assert_eq(ct_stats_add_counter(&s, "x", "a=\"1", "", &c), CT_EINVAL, "unterminated");
    cr_assert_eq(ct_stats_add_counter(&s, "x", "a=\"1\"b=\"2\"", "", &c), CT_EINVAL, "no comma");
    cr_assert_eq(ct_stats_add_counter(&s, "x", "a=\"1\n\"", "", &c), CT_EINVAL, "a line end");
    cr_assert_eq(ct_stats_add_counter(&s, "x", "=\"1\"", "", &c), CT_EINVAL, "no key");
    cr_assert_eq(ct_stats_add_counter(&s, "x", NULL, "", NULL), CT_EINVAL);
    cr_assert_eq(s.n, 2);
    ct_stats_free(&s);
}

/* Two loops' metrics of one name and labels sum; other labels stay apart;
 * a histogram's buckets are cumulative and end with its count. */
Test(stats, the_exposition_sums_over_loops) {
    static ct_histogram_t h1, h2;
    ct_stats_t a, b;
    const ct_stats_t *loops[2] = {&a, &b};
    ct_counter_t ca = {0}, cb = {0}, other = {0};
    ct_gauge_t ga = {0}, gb = {0};
    char out[16384];
    size_t len, need;
    ct_stats_init(&a);
    ct_stats_init(&b);
    ct_histogram_init(&h1);
    ct_histogram_init(&h2);
    ct_counter_add(&ca, 3);
    ct_counter_add(&cb, 4);
    ct_counter_add(&other, 9);
    ct_gauge_add(&ga, 5);
    ct_gauge_add(&gb, -2);
    ct_histogram_record(&h1, 2000000);    /* 2 ms */
    ct_histogram_record(&h2, 3000000000); /* 3 s */
    cr_assert_eq(ct_stats_add_counter(&a, "ct_requests_total", "side=\"client\"", "Requests.", &ca),
                 0);
    cr_assert_eq(ct_stats_add_counter(&b, "ct_requests_total", "side=\"client\"", "Requests.", &cb),
                 0);
    cr_assert_eq(
        ct_stats_add_counter(&b, "ct_requests_total", "side=\"server\"", "Requests.", &other), 0);
    cr_assert_eq(ct_stats_add_gauge(&a, "ct_in_flight", NULL, "In flight.", &ga), 0);
    cr_assert_eq(ct_stats_add_gauge(&b, "ct_in_flight", NULL, "In flight.", &gb), 0);
    cr_assert_eq(ct_stats_add_histogram(&a, "ct_latency_seconds", NULL, "Latency.", 1e-9, &h1), 0);
    cr_assert_eq(ct_stats_add_histogram(&b, "ct_latency_seconds", NULL, "Latency.", 1e-9, &h2), 0);
    need = ct_stats_write(loops, 2, NULL, 0);
    cr_assert_gt(need, 0);
    len = ct_stats_write(loops, 2, out, sizeof out);
    cr_assert_eq(len, need, "asking and writing disagree");
    cr_assert_lt(len, sizeof out);
    cr_assert_not_null(strstr(out, "# HELP ct_requests_total Requests.\n# TYPE ct_requests_total "
                                   "counter\nct_requests_total{side=\"client\"} 7\n"
                                   "ct_requests_total{side=\"server\"} 9\n"));
    cr_assert_not_null(strstr(out, "# TYPE ct_in_flight gauge\nct_in_flight 3\n"));
    cr_assert_not_null(strstr(out, "# TYPE ct_latency_seconds histogram\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_bucket{le=\"0.001\"} 0\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_bucket{le=\"0.0025\"} 1\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_bucket{le=\"2.5\"} 1\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_bucket{le=\"5\"} 2\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_count 2\n"));
    cr_assert_not_null(strstr(out, "ct_latency_seconds_sum 3.002\n"));
    cr_assert_eq(
        strstr(out, "# TYPE ct_requests_total") ==
            strstr(strstr(out, "# TYPE ct_requests_total") + 1, "# TYPE ct_requests_total"),
        0, "one TYPE line per name");
    cr_assert_null(strstr(strstr(out, "# TYPE ct_requests_total") + 1, "# TYPE ct_requests_total"));
    cr_assert_lt(ct_stats_write(loops, 2, out, 10), need + 1, "a short buffer says what it needs");
    cr_assert_eq(ct_stats_write(loops, 2, out, 10), need);
    ct_stats_free(&a);
    ct_stats_free(&b);
}
