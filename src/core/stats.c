/* Stats and their exposition (stats.h). */
#include "ctower/stats.h"
#include "ctower/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

uint64_t ct_counter_read(const ct_counter_t *c) {
    return __atomic_load_n(&c->value, __ATOMIC_RELAXED);
}

int64_t ct_gauge_read(const ct_gauge_t *g) {
    return __atomic_load_n(&g->value, __ATOMIC_RELAXED);
}

/* ---- the histogram ------------------------------------------------------------ */

enum { SUB = CT_HISTOGRAM_SUB, SUB_BITS = 5, EXACT = 2 * SUB };

void ct_histogram_init(ct_histogram_t *h) {
    memset(h, 0, sizeof *h);
}

void ct_histogram_bucket_range(size_t i, uint64_t *low, uint64_t *high) {
    unsigned msb, shift;
    if (i < EXACT) {
        *low = *high = i;
        return;
    }
    msb = (unsigned)((i - EXACT) / SUB) + SUB_BITS + 1;
    shift = msb - SUB_BITS;
    *low = (uint64_t)(SUB + (i - EXACT) % SUB) << shift;
    *high = *low + ((uint64_t)1 << shift) - 1;
}

void ct_histogram_merge(ct_histogram_t *into, const ct_histogram_t *from) {
    size_t i;
    uint64_t max = __atomic_load_n(&from->max, __ATOMIC_RELAXED), n = 0;
    for (i = 0; i < CT_HISTOGRAM_BUCKETS; i++) {
        uint64_t c = __atomic_load_n(&from->counts[i], __ATOMIC_RELAXED);
        into->counts[i] += c;
        n += c;
    }
    /* the count is the buckets' sum, read with them: a quantile of a copy
     * made while the writer records never points past its buckets */
    into->count += n;
    into->sum += __atomic_load_n(&from->sum, __ATOMIC_RELAXED);
    if (max > into->max) into->max = max;
}

uint64_t ct_histogram_quantile(const ct_histogram_t *h, double q) {
    uint64_t rank, seen = 0, low, high, mid;
    size_t i;
    if (h->count == 0) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    rank = (uint64_t)(q * (double)(h->count - 1)) + 1; /* 1-based */
    for (i = 0; i < CT_HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) break;
    }
    if (i == CT_HISTOGRAM_BUCKETS) return h->max;
    ct_histogram_bucket_range(i, &low, &high);
    mid = low + (high - low) / 2;
    return mid < h->max ? mid : h->max;
}

/* ---- a loop's named metrics ------------------------------------------------- */

void ct_stats_init(ct_stats_t *s) {
    memset(s, 0, sizeof *s);
}

void ct_stats_free(ct_stats_t *s) {
    size_t i;
    for (i = 0; i < s->n; i++)
        free(s->entries[i].name); /* (the labels are in the same block) */
    free(s->entries);
    memset(s, 0, sizeof *s);
}

static int name_ok(const char *name) {
    const char *c;
    if (!name || !*name || (*name >= '0' && *name <= '9')) return 0;
    for (c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == ':'))
            return 0;
    return 1;
}

/* key="value" pairs, comma-separated: names of label characters, values
 * without line ends (a quote or backslash escaped). */
static int labels_ok(const char *l) {
    while (*l) {
        const char *k = l;
        while ((*l >= 'a' && *l <= 'z') || (*l >= 'A' && *l <= 'Z') || (*l >= '0' && *l <= '9') ||
               *l == '_')
            l++;
        if (l == k || (*k >= '0' && *k <= '9') || *l++ != '=' || *l++ != '"') return 0;
        while (*l && *l != '"') {
            if (*l == '\n') return 0;
            if (*l == '\\' && !*++l) return 0;
            l++;
        }
        if (*l++ != '"') return 0;
        if (*l == ',')
            l++;
        else if (*l)
            return 0;
    }
    return 1;
}

static int add(ct_stats_t *s, const char *name, const char *labels, const char *help,
               ct_stats_kind_t kind, double scale, const void *metric) {
    ct_stats_entry_t *e;
    size_t name_len, labels_len;
    if (!s || !metric || !name_ok(name) || (labels && !labels_ok(labels))) return CT_EINVAL;
    if (!labels) labels = "";
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        ct_stats_entry_t *grown = realloc(s->entries, cap * sizeof *grown);
        if (!grown) return UV_ENOMEM;
        s->entries = grown;
        s->cap = cap;
    }
    e = &s->entries[s->n];
    name_len = strlen(name) + 1;
    labels_len = strlen(labels) + 1;
    if (!(e->name = malloc(name_len + labels_len))) return UV_ENOMEM;
    memcpy(e->name, name, name_len);
    e->labels = e->name + name_len;
    memcpy(e->labels, labels, labels_len);
    e->help = help ? help : "";
    e->kind = kind;
    e->scale = scale;
    e->metric = metric;
    s->n++;
    return 0;
}

int ct_stats_add_counter(ct_stats_t *s, const char *name, const char *labels, const char *help,
                         const ct_counter_t *c) {
    return add(s, name, labels, help, CT_STATS_COUNTER, 1, c);
}

int ct_stats_add_gauge(ct_stats_t *s, const char *name, const char *labels, const char *help,
                       const ct_gauge_t *g) {
    return add(s, name, labels, help, CT_STATS_GAUGE, 1, g);
}

int ct_stats_add_histogram(ct_stats_t *s, const char *name, const char *labels, const char *help,
                           double scale, const ct_histogram_t *h) {
    return add(s, name, labels, help, CT_STATS_HISTOGRAM, scale > 0 ? scale : 1, h);
}

int ct_stats_add_named(ct_stats_t *s, ct_stats_kind_t kind, const char *prefix, const char *suffix,
                       const char *labels, const char *help, double scale, const void *metric) {
    char name[128];
    int n = snprintf(name, sizeof name, "%s_%s", prefix ? prefix : "", suffix ? suffix : "");
    if (!prefix || !suffix || n < 0 || (size_t)n >= sizeof name) return CT_EINVAL;
    return add(s, name, labels, help, kind, kind == CT_STATS_HISTOGRAM && scale > 0 ? scale : 1,
               metric);
}

size_t ct_stats_remove(ct_stats_t *s, const void *component, size_t size) {
    const char *from = component, *to = from + size;
    size_t i, kept = 0, removed = 0;
    for (i = 0; i < s->n; i++) {
        const char *m = s->entries[i].metric;
        if (m >= from && m < to) {
            free(s->entries[i].name);
            removed++;
        } else {
            s->entries[kept++] = s->entries[i];
        }
    }
    s->n = kept;
    return removed;
}

/* ---- the exposition --------------------------------------------------------------- */

typedef struct writer {
    char *out;
    size_t cap, len;
    ct_histogram_t *scratch; /* a histogram's loops merged */
} writer_t;

static void put(writer_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(writer_t *w, const char *fmt, ...) {
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(w->len < w->cap ? w->out + w->len : NULL, w->len < w->cap ? w->cap - w->len : 0,
                  fmt, ap);
    va_end(ap);
    if (n > 0) w->len += (size_t)n;
}

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* The exposition sorts every loop's entries by name and labels (and by
 * registration order within those), so that a family's samples, and the
 * loops' entries of one sample, are next to each other: n log n, where
 * comparing each entry with the others would be n^2 at every scrape. */
typedef struct ref {
    const ct_stats_entry_t *e;
    size_t order;
} ref_t;

static int by_name_labels(const void *a, const void *b) {
    const ref_t *x = a, *y = b;
    int c = strcmp(x->e->name, y->e->name);
    if (c == 0) c = strcmp(x->e->labels, y->e->labels);
    if (c == 0) c = x->order < y->order ? -1 : x->order > y->order;
    return c;
}

static int same_name(const ref_t *a, const ref_t *b) {
    return strcmp(a->e->name, b->e->name) == 0;
}

static int same_sample(const ref_t *a, const ref_t *b) {
    return same_name(a, b) && strcmp(a->e->labels, b->e->labels) == 0;
}

static void write_histogram(writer_t *w, const ct_stats_entry_t *e, const ct_histogram_t *h) {
    static const double steps[] = {1, 2.5, 5};
    uint64_t cumulative = 0;
    size_t bucket = 0, k;
    double le;
    const char *sep = e->labels[0] ? "," : "";
    for (k = 0; k <= 24; k++) { /* 1e-6 .. 100, then +Inf */
        le = steps[k % 3];
        for (size_t d = 0; d < k / 3; d++)
            le *= 10;
        le *= 1e-6;
        /* the buckets whose middle is at most le */
        for (; bucket < CT_HISTOGRAM_BUCKETS; bucket++) {
            uint64_t low, high;
            ct_histogram_bucket_range(bucket, &low, &high);
            if ((double)(low + (high - low) / 2) * e->scale > le) break;
            cumulative += h->counts[bucket];
        }
        put(w, "%s_bucket{%s%sle=\"%g\"} %llu\n", e->name, e->labels, sep, le,
            (unsigned long long)cumulative);
    }
    put(w, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", e->name, e->labels, sep,
        (unsigned long long)h->count);
    put(w, "%s_sum%s%s%s %.9g\n", e->name, e->labels[0] ? "{" : "", e->labels,
        e->labels[0] ? "}" : "", (double)h->sum * e->scale);
    put(w, "%s_count%s%s%s %llu\n", e->name, e->labels[0] ? "{" : "", e->labels,
        e->labels[0] ? "}" : "", (unsigned long long)h->count);
}

/* The sample of refs[0..n) (one name and labels, the loops' entries of
 * it), summed; entries of another kind than the family's are left out (a
 * name reused for another kind: the first registered wins). */
static void write_sample(writer_t *w, const ref_t *refs, size_t n, ct_stats_kind_t kind) {
    const ct_stats_entry_t *e = refs[0].e;
    ct_histogram_t *sum_h = w->scratch;
    int64_t sum = 0;
    size_t i;
    if (kind == CT_STATS_HISTOGRAM) ct_histogram_init(sum_h);
    for (i = 0; i < n; i++) {
        const ct_stats_entry_t *o = refs[i].e;
        if (o->kind != kind) continue;
        e = o;
        if (o->kind == CT_STATS_COUNTER)
            sum += (int64_t)ct_counter_read(o->metric);
        else if (o->kind == CT_STATS_GAUGE)
            sum += ct_gauge_read(o->metric);
        else
            ct_histogram_merge(sum_h, o->metric);
    }
    if (kind == CT_STATS_HISTOGRAM) {
        write_histogram(w, e, sum_h);
        return;
    }
    put(w, "%s%s%s%s %lld\n", e->name, e->labels[0] ? "{" : "", e->labels, e->labels[0] ? "}" : "",
        (long long)sum);
}

/* One family: refs[0..n) of one name. */
static void write_family(writer_t *w, const ref_t *refs, size_t n) {
    const ref_t *first = &refs[0];
    size_t i, j;
    for (i = 1; i < n; i++)
        if (refs[i].order < first->order) first = &refs[i];
    put(w, "# HELP %s %s\n# TYPE %s %s\n", first->e->name, first->e->help, first->e->name,
        kind_names[first->e->kind]);
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && same_sample(&refs[i], &refs[j]); j++)
            ;
        write_sample(w, &refs[i], j - i, first->e->kind);
    }
}

size_t ct_stats_write(const ct_stats_t *const *loops, size_t n, char *out, size_t cap) {
    writer_t w = {out, cap, 0, NULL};
    size_t l, i, j, total = 0, k = 0;
    ref_t *refs;
    if (cap) out[0] = '\0';
    for (l = 0; l < n; l++)
        total += loops[l]->n;
    /* (8.7 KiB: not on the stack of whatever thread writes) */
    w.scratch = malloc(sizeof *w.scratch);
    refs = malloc((total ? total : 1) * sizeof *refs);
    if (!w.scratch || !refs) {
        free(w.scratch);
        free(refs);
        return 0;
    }
    for (l = 0; l < n; l++)
        for (i = 0; i < loops[l]->n; i++, k++)
            refs[k] = (ref_t){&loops[l]->entries[i], k};
    qsort(refs, total, sizeof *refs, by_name_labels);
    for (i = 0; i < total; i = j) {
        for (j = i + 1; j < total && same_name(&refs[i], &refs[j]); j++)
            ;
        write_family(&w, &refs[i], j - i);
    }
    free(refs);
    free(w.scratch);
    return w.len;
}
