/* The circuit breaker: it opens after failures in a row and then fails
 * calls at once, an answer or another error ends a run, the probe after
 * the pause closes it or opens it again for longer, a canceled probe
 * counts neither way, readiness while open, and close. */
#include "testutil.h"

#include <string.h>

TestSuite(breaker, .init = h_setup, .fini = h_teardown);

static held_svc_t inner;
static ct_breaker_t breaker;

static void wrap(unsigned failures_to_open, uint64_t pause_min_ms, uint64_t pause_max_ms) {
    ct_breaker_config_t c = {0};
    held_init(&inner, 0);
    c.failures_to_open = failures_to_open;
    c.pause_min_ms = pause_min_ms;
    c.pause_max_ms = pause_max_ms;
    c.free_msg = tmsg_free;
    cr_assert_eq(ct_breaker_init(&breaker, &H.ct, &inner.service, &c), 0);
}

static ct_breaker_stats_t stats(void) {
    ct_breaker_stats_t st;
    ct_breaker_stats(&breaker, &st);
    return st;
}

/* A call; if it reached the service, the service answers it with status
 * (0: an answer). Returns what the caller got. */
static int call_answered(uint64_t id, int status) {
    rec_op_t r;
    long before = inner.calls;
    rec_op_init(&r);
    cr_assert_eq(h_call(&breaker.service, tmsg_new(id), &r.op), 0);
    if (inner.calls > before) held_complete(&inner, inner.n - 1, status); /* it got there */
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.calls, 1);
    return r.status;
}

Test(breaker, it_opens_after_failures_in_a_row_and_then_fails_fast) {
    int i;
    wrap(3, 10000, 10000);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(stats().state, CT_BREAKER_CLOSED);
        cr_assert_eq(call_answered((uint64_t)i, CT_ECONNECT), CT_ECONNECT);
    }
    cr_assert_eq(stats().state, CT_BREAKER_OPEN);
    cr_assert_eq(stats().opens, 1);
    cr_assert_eq(call_answered(3, 0), CT_EOPEN);
    cr_assert_eq(call_answered(4, 0), CT_EOPEN);
    cr_assert_eq(inner.calls, 3, "a call reached the service while open");
    cr_assert_eq(stats().rejected, 2);
    cr_assert_eq(H.live_msgs, 0, "a refused request was not freed");
    {
        /* its metrics, as an admin endpoint shows them */
        ct_stats_t st;
        const ct_stats_t *loops[1] = {&st};
        static char out[8192];
        ct_stats_init(&st);
        cr_assert_eq(ct_breaker_add_stats(&breaker, &st, "backend=\"a\""), 0);
        cr_assert(ct_stats_write(loops, 1, out, sizeof out) < sizeof out);
        cr_assert(strstr(out, "ctower_breaker_open{backend=\"a\"} 1\n"), "%s", out);
        cr_assert(strstr(out, "ctower_breaker_opens_total{backend=\"a\"} 1\n"), "%s", out);
        cr_assert(strstr(out, "ctower_breaker_rejected_total{backend=\"a\"} 2\n"), "%s", out);
        ct_stats_free(&st);
    }
    h_close_service(&breaker.service);
}

Test(breaker, an_answer_or_another_error_ends_a_run_of_failures) {
    static const int not_failures[] = {0, CT_SERVICE_ERROR(3), CT_EOVERLOADED};
    size_t k;
    int i;
    wrap(3, 10000, 10000);
    for (k = 0; k < sizeof not_failures / sizeof *not_failures; k++) {
        for (i = 0; i < 2; i++)
            call_answered(1, CT_ERECVBROKEN);
        cr_assert_eq(stats().failures_in_a_row, 2);
        call_answered(2, not_failures[k]);
        cr_assert_eq(stats().failures_in_a_row, 0, "%s did not end the run",
                     ct_err_name(not_failures[k]));
    }
    for (i = 0; i < 10; i++)
        call_answered(3, CT_SERVICE_ERROR(3));
    cr_assert_eq(stats().state, CT_BREAKER_CLOSED, "a service's own errors opened it");
    h_close_service(&breaker.service);
}

/* Opens it, then waits its pause out: half-open. */
static void open_then_wait(uint64_t wait_ms) {
    int i;
    for (i = 0; i < 2; i++)
        call_answered((uint64_t)i, CT_ETIMEDOUT);
    cr_assert_eq(stats().state, CT_BREAKER_OPEN);
    uv_sleep((unsigned)wait_ms);
    uv_update_time(&H.uv);
    cr_assert_eq(stats().state, CT_BREAKER_HALF_OPEN);
}

Test(breaker, the_probe_after_the_pause_closes_it) {
    rec_op_t probe;
    wrap(2, 20, 20);
    open_then_wait(30);
    rec_op_init(&probe);
    cr_assert_eq(h_call(&breaker.service, tmsg_new(10), &probe.op), 0);
    cr_assert_eq(inner.n, 1, "the probe did not reach the service");
    cr_assert_eq(call_answered(11, 0), CT_EOPEN, "a second call went out with the probe");
    held_complete(&inner, 0, 0);
    H_RUN_UNTIL(probe.calls);
    cr_assert_eq(probe.status, 0);
    cr_assert_eq(stats().state, CT_BREAKER_CLOSED);
    cr_assert_eq(ct_counter_read(&breaker.metrics.closes), 1);
    cr_assert_eq(ct_gauge_read(&breaker.metrics.open), 0);
    cr_assert_eq(call_answered(12, 0), 0);
    h_close_service(&breaker.service);
}

Test(breaker, a_failed_probe_opens_it_again_for_longer) {
    wrap(2, 200, 10000);
    open_then_wait(210); /* the first pause: 100-200 ms */
    cr_assert_eq(call_answered(10, CT_ECONNECT), CT_ECONNECT);
    cr_assert_eq(stats().state, CT_BREAKER_OPEN);
    cr_assert_eq(stats().opens, 2);
    /* the second: 200-400 ms (half to all of twice the first), open at 100 */
    uv_sleep(100);
    uv_update_time(&H.uv);
    cr_assert_eq(stats().state, CT_BREAKER_OPEN);
    h_close_service(&breaker.service);
}

Test(breaker, a_canceled_probe_lets_the_next_call_probe) {
    rec_op_t probe;
    wrap(2, 20, 20);
    open_then_wait(30);
    rec_op_init(&probe);
    cr_assert_eq(h_call(&breaker.service, tmsg_new(10), &probe.op), 0);
    ct_op_cancel(&probe.op);
    H_RUN_UNTIL(probe.calls && inner.n == 0);
    cr_assert_eq(probe.status, CT_ECANCELED);
    cr_assert_eq(stats().state, CT_BREAKER_HALF_OPEN);
    cr_assert_eq(call_answered(11, 0), 0, "no probe after a canceled one");
    cr_assert_eq(stats().state, CT_BREAKER_CLOSED);
    h_close_service(&breaker.service);
}

/* Open, it is ready whatever the service says (the call fails at once);
 * closed, the service's readiness is its own. */
static void on_woken(ct_waker_t *w) {
    (void)w;
}

Test(breaker, open_it_is_ready_and_fails_fast_even_over_a_full_service) {
    rec_op_t held;
    ct_waker_t w;
    wrap(1, 10000, 10000);
    inner.capacity = 1;
    rec_op_init(&held);
    cr_assert_eq(h_call(&breaker.service, tmsg_new(1), &held.op), 0);
    ct_waker_init(&w, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&breaker.service, &w), CT_PENDING);
    held_complete(&inner, 0, CT_ECONNECT);
    H_RUN_UNTIL(held.calls);
    cr_assert_eq(stats().state, CT_BREAKER_OPEN);
    cr_assert_eq(ct_service_poll_ready(&breaker.service, NULL), CT_READY);
    cr_assert_eq(call_answered(2, 0), CT_EOPEN);
    ct_waker_cancel(&w);
    h_close_service(&breaker.service);
}

Test(breaker, close_completes_the_calls_in_flight) {
    rec_op_t r[3];
    int i;
    wrap(3, 10000, 10000);
    for (i = 0; i < 3; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&breaker.service, tmsg_new((uint64_t)i), &r[i].op), 0);
    }
    h_close_service(&breaker.service);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ECLOSED);
    }
}

Test(breaker, bad_configurations_are_refused) {
    ct_breaker_config_t c = {0};
    held_init(&inner, 0);
    c.pause_min_ms = 50;
    c.pause_max_ms = 20;
    cr_assert_eq(ct_breaker_init(&breaker, &H.ct, &inner.service, &c), CT_EINVAL);
    cr_assert_eq(ct_breaker_init(&breaker, &H.ct, NULL, &c), CT_EINVAL);
    cr_assert_null(inner.service.owner);
    h_close_service(&inner.service);
}
