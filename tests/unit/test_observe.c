/* The observing layer: what it counts (requests, responses, errors by
 * kind, in flight, latency), the tracing hooks' pairs (with the caller's
 * context, once per call, a cancel included), refusal when full, its
 * registration, and that it changes nothing of the calls. */
#include "testutil.h"

#include <string.h>

TestSuite(observe, .init = h_setup, .fini = h_teardown);

static held_svc_t inner;
static ct_observe_t layer;

typedef struct spans {
    int started, ended;
    int last_status;
    uint64_t last_duration;
    const ct_context_t *last_ctx;
    int order_ok; /* each end came after its own start */
} spans_t;

static spans_t spans;

static void *on_start(void *ctx, const ct_op_t *op, const void *request) {
    spans_t *s = ctx;
    (void)request;
    s->started++;
    s->last_ctx = op->ctx;
    return (void *)(uintptr_t)tmsg_id((void *)request) + 1;
}

static void on_end(void *ctx, void *span, const ct_op_t *op, int status, int cause,
                   const void *response, uint64_t duration_ns) {
    spans_t *s = ctx;
    (void)cause;
    s->ended++;
    s->last_status = status;
    s->last_duration = duration_ns;
    s->last_ctx = op->ctx;
    if (!span || (status == 0 && tmsg_id((void *)response) + 1 != (uint64_t)(uintptr_t)span))
        s->order_ok = 0;
}

static void wrap(size_t max_in_flight, int hooks) {
    ct_observe_config_t c = {0};
    held_init(&inner, 0);
    memset(&spans, 0, sizeof spans);
    spans.order_ok = 1;
    c.max_in_flight = max_in_flight;
    c.free_msg = tmsg_free;
    if (hooks) {
        c.on_start = on_start;
        c.on_end = on_end;
        c.hooks_ctx = &spans;
    }
    cr_assert_eq(ct_observe_init(&layer, &H.ct, &inner.service, &c), 0);
}

static uint64_t counter(const ct_counter_t *c) {
    return ct_counter_read(c);
}

Test(observe, it_counts_answers_and_errors_by_kind_and_times_them) {
    static const int statuses[] = {0,           0,        CT_ETIMEDOUT,       CT_ERECVBROKEN,
                                   CT_ECONNECT, CT_EOPEN, CT_SERVICE_ERROR(2)};
    rec_op_t r[7];
    size_t i, n = sizeof statuses / sizeof *statuses;
    ct_observe_metrics_t *m = &layer.metrics;
    wrap(0, 1);
    for (i = 0; i < n; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&layer.service, tmsg_new(i), &r[i].op), 0);
    }
    cr_assert_eq(counter(&m->requests), n);
    cr_assert_eq(ct_gauge_read(&m->in_flight), (int64_t)n);
    uv_sleep(2); /* so that each call takes at least 2 ms */
    for (i = 0; i < n; i++)
        held_complete(&inner, 0, statuses[i]);
    H_RUN_UNTIL(r[n - 1].calls);
    for (i = 0; i < n; i++)
        cr_assert_eq(r[i].status, statuses[i], "the layer changed an answer");
    cr_assert_eq(r[0].response_id, 0);
    cr_assert_eq(counter(&m->responses), 2);
    cr_assert_eq(counter(&m->errors[CT_KIND_TIMEOUT]), 1);
    cr_assert_eq(counter(&m->errors[CT_KIND_BROKEN]), 1);
    cr_assert_eq(counter(&m->errors[CT_KIND_CONNECT]), 1);
    cr_assert_eq(counter(&m->errors[CT_KIND_OPEN]), 1);
    cr_assert_eq(counter(&m->errors[CT_KIND_OTHER]), 1);
    cr_assert_eq(counter(&m->errors[CT_KIND_CANCELED]), 0);
    cr_assert_eq(ct_gauge_read(&m->in_flight), 0);
    cr_assert_eq(m->latency.count, n);
    cr_assert_geq(ct_histogram_quantile(&m->latency, 0), 2000000 * 31 / 32,
                  "a call of 2 ms or more was timed at %llu ns",
                  (unsigned long long)ct_histogram_quantile(&m->latency, 0));
    cr_assert_lt(m->latency.max, 5000000000ull);
    cr_assert_eq(spans.started, (int)n);
    cr_assert_eq(spans.ended, (int)n);
    cr_assert(spans.order_ok, "an end did not get its own start's span");
    cr_assert_geq(spans.last_duration, 2000000);
    h_close_service(&layer.service);
}

Test(observe, the_hooks_see_the_callers_context_and_a_cancel_ends_the_span_once) {
    ct_context_t ctx;
    rec_op_t r;
    wrap(0, 1);
    ct_context_init(&ctx);
    ctx.trace_flags = 1;
    memset(ctx.trace_id, 0xab, sizeof ctx.trace_id);
    h_call_with_deadline(&layer.service, &r, &ctx, 1000, 7);
    cr_assert_eq(spans.last_ctx, &ctx);
    cr_assert_eq(inner.ops[0]->ctx, &ctx, "the inner call did not get the caller's context");
    ct_op_cancel(&r.op);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECANCELED);
    cr_assert_eq(spans.ended, 1);
    cr_assert_eq(spans.last_status, CT_ECANCELED);
    cr_assert_eq(counter(&layer.metrics.errors[CT_KIND_CANCELED]), 1);
    cr_assert_eq(ct_gauge_read(&layer.metrics.in_flight), 0);
    /* the inner call's late answer ends nothing more */
    if (inner.n) held_complete(&inner, 0, 0);
    h_turns(4);
    cr_assert_eq(spans.ended, 1, "a canceled call's span ended twice");
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(H.live_msgs, 0, "the late answer was not freed");
    h_close_service(&layer.service);
}

Test(observe, when_full_it_is_pending_and_a_call_beyond_is_refused_and_counted) {
    rec_op_t r[3];
    int i;
    wrap(2, 0);
    for (i = 0; i < 2; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&layer.service, tmsg_new((uint64_t)i), &r[i].op), 0);
    }
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_PENDING);
    rec_op_init(&r[2]);
    cr_assert_eq(h_call(&layer.service, tmsg_new(2), &r[2].op), 0);
    H_RUN_UNTIL(r[2].calls);
    cr_assert_eq(r[2].status, CT_EOVERLOADED);
    cr_assert_eq(counter(&layer.metrics.errors[CT_KIND_OVERLOADED]), 1);
    cr_assert_eq(counter(&layer.metrics.requests), 3);
    held_complete_all(&inner);
    H_RUN_UNTIL(r[0].calls && r[1].calls);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    cr_assert_eq(H.live_msgs, 0);
    h_close_service(&layer.service);
}

Test(observe, close_answers_what_is_in_flight_and_each_is_counted_once) {
    rec_op_t r[4];
    int i;
    wrap(0, 1);
    for (i = 0; i < 4; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&layer.service, tmsg_new((uint64_t)i), &r[i].op), 0);
    }
    h_close_service(&layer.service);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_lt(r[i].status, 0);
    }
    cr_assert_eq(spans.ended, 4);
    cr_assert_eq(ct_gauge_read(&layer.metrics.in_flight), 0);
}

Test(observe, its_metrics_register_under_the_prefix_with_a_sample_per_kind) {
    ct_stats_t stats;
    const ct_stats_t *loops[1] = {&stats};
    char out[65536];
    size_t n;
    rec_op_t r;
    wrap(0, 0);
    ct_stats_init(&stats);
    cr_assert_eq(ct_observe_add_stats(&layer, &stats, "ctower_client", "backend=\"a:1\""), 0);
    cr_assert_eq(ct_observe_add_stats(&layer, &stats, "bad name", NULL), CT_EINVAL);
    rec_op_init(&r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(1), &r.op), 0);
    held_complete(&inner, 0, CT_ETIMEDOUT);
    H_RUN_UNTIL(r.calls);
    n = ct_stats_write(loops, 1, out, sizeof out);
    cr_assert(n > 0 && n < sizeof out);
    cr_assert(strstr(out, "ctower_client_requests_total{backend=\"a:1\"} 1\n"), "%s", out);
    cr_assert(strstr(out, "ctower_client_errors_total{backend=\"a:1\",kind=\"timeout\"} 1\n"), "%s",
              out);
    cr_assert(strstr(out, "ctower_client_errors_total{backend=\"a:1\",kind=\"broken\"} 0\n"), "%s",
              out);
    cr_assert(strstr(out, "ctower_client_latency_seconds_count{backend=\"a:1\"} 1\n"), "%s", out);
    cr_assert(strstr(out, "ctower_client_in_flight{backend=\"a:1\"} 0\n"), "%s", out);
    /* removed with its component, before the component goes */
    cr_assert_eq(ct_stats_remove(&stats, &layer.metrics, sizeof layer.metrics), 4 + CT_KIND_COUNT);
    cr_assert_eq(stats.n, 0);
    ct_stats_free(&stats);
    h_close_service(&layer.service);
}

Test(observe, error_kinds_have_names) {
    int k;
    for (k = 0; k < CT_KIND_COUNT; k++)
        cr_assert(strlen(ct_error_kind_name((ct_error_kind_t)k)) > 0);
    cr_assert_eq(ct_error_kind(CT_ESHUTDOWN), CT_KIND_UNAVAILABLE);
    cr_assert_eq(ct_error_kind(UV_ECONNREFUSED), CT_KIND_OTHER);
    cr_assert_str_eq(ct_error_kind_name(CT_KIND_COUNT), "other");
}
