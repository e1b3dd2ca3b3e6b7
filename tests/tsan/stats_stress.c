/* Stats read while they are recorded: two threads, each the one writer of
 * its own counter, gauge and histogram (as two loops are), and the main
 * thread writing the exposition of both the whole time. ThreadSanitizer
 * must see no race; the sums read never go down, and the last one is the
 * total recorded. Exit status 0 when all holds. */
#include <ctower/stats.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { RECORDS = 200000, WRITERS = 2 };

typedef struct writer {
    uv_thread_t tid;
    ct_counter_t requests;
    ct_gauge_t in_flight;
    ct_histogram_t latency;
    ct_stats_t stats;
    int done;
} writer_t;

static void record(void *arg) {
    writer_t *w = arg;
    uint64_t i;
    for (i = 0; i < RECORDS; i++) {
        ct_gauge_add(&w->in_flight, 1);
        ct_histogram_record(&w->latency, 1000 + i % 5000000);
        ct_counter_add(&w->requests, 1);
        ct_gauge_add(&w->in_flight, -1);
    }
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

/* The value of the sample line that starts with prefix, or -1. */
static long long sample(const char *text, const char *prefix) {
    const char *p = strstr(text, prefix);
    return p ? atoll(p + strlen(prefix)) : -1;
}

int main(void) {
    static writer_t w[WRITERS];
    const ct_stats_t *loops[WRITERS];
    static char out[65536];
    long long last = 0, now, count = 0;
    int i, all_done = 0, reads = 0;
    for (i = 0; i < WRITERS; i++) {
        ct_stats_init(&w[i].stats);
        ct_histogram_init(&w[i].latency);
        if (ct_stats_add_counter(&w[i].stats, "requests_total", NULL, "Requests.",
                                 &w[i].requests) ||
            ct_stats_add_gauge(&w[i].stats, "in_flight", NULL, "In flight.", &w[i].in_flight) ||
            ct_stats_add_histogram(&w[i].stats, "latency_seconds", NULL, "Latency.", 1e-9,
                                   &w[i].latency))
            return 1;
        loops[i] = &w[i].stats;
    }
    for (i = 0; i < WRITERS; i++)
        uv_thread_create(&w[i].tid, record, &w[i]);
    while (!all_done) {
        all_done = 1;
        for (i = 0; i < WRITERS; i++)
            all_done &= __atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
        if (ct_stats_write(loops, WRITERS, out, sizeof out) >= sizeof out) return 2;
        now = sample(out, "\nrequests_total ");
        if (now < last) {
            fprintf(stderr, "stats_stress: the sum went down: %lld after %lld\n", now, last);
            return 3;
        }
        last = now;
        reads++;
    }
    for (i = 0; i < WRITERS; i++)
        uv_thread_join(&w[i].tid);
    ct_stats_write(loops, WRITERS, out, sizeof out);
    now = sample(out, "\nrequests_total ");
    count = sample(out, "\nlatency_seconds_count ");
    if (now != (long long)RECORDS * WRITERS || count != now || sample(out, "\nin_flight ") != 0) {
        fprintf(stderr, "stats_stress: wrong totals:\n%s", out);
        return 4;
    }
    for (i = 0; i < WRITERS; i++)
        ct_stats_free(&w[i].stats);
    printf("stats_stress: %d expositions read while %d threads recorded %d values each\n", reads,
           WRITERS, RECORDS);
    return 0;
}
