/* The queueing layer: calls beyond the inner service's readiness wait and
 * go in order, a full queue is PENDING and refuses, cancel of a waiting
 * call and of an issued one, deadlines while waiting, a dead inner
 * service, close and shutdown with calls waiting, and 10,000 calls at once
 * through a pipelined client without an error. */
#include "testutil.h"

#include <string.h>

TestSuite(queue, .init = h_setup, .fini = h_teardown);

static held_svc_t held;
static ct_queue_t layer;
static int woken;

static void on_woken(ct_waker_t *w) {
    (void)w;
    woken++;
}

/* The layer over the held service, which takes capacity calls at most. */
static void wrap_held(size_t capacity, size_t max_queued, size_t max_in_flight) {
    ct_queue_config_t c = {
        .max_queued = max_queued, .max_in_flight = max_in_flight, .free_msg = tmsg_free};
    held_init(&held, capacity);
    cr_assert_eq(ct_queue_init(&layer, &H.ct, &held.service, &c), 0);
}

static void unwrap_held(void) {
    h_close_service(&layer.service);
    held_free(&held);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(id), &r->op), 0);
}

static int64_t gauge(const ct_gauge_t *g) {
    return ct_gauge_read(g);
}

Test(queue, bad_configurations_are_refused) {
    ct_queue_t q;
    held_init(&held, 0);
    cr_assert_eq(ct_queue_init(&q, &H.ct, NULL, NULL), CT_EINVAL);
    cr_assert_eq(ct_queue_init(NULL, &H.ct, &held.service, NULL), CT_EINVAL);
    held.service.owner = &q;
    cr_assert_eq(ct_queue_init(&q, &H.ct, &held.service, NULL), CT_EINVAL, "already wrapped");
    held.service.owner = NULL;
    h_close_service(&held.service);
    held_free(&held);
}

/* The inner service takes 3 at a time; 10 calls made at once, without a
 * READY, all wait their turn and are answered in order. */
Test(queue, calls_beyond_the_inner_readiness_wait_and_go_in_order) {
    enum { N = 10 };
    rec_op_t r[N];
    int i;
    wrap_held(3, 0, 0);
    for (i = 0; i < N; i++)
        call(&r[i], (uint64_t)i);
    cr_assert_eq(held.n, 3, "the queue issued past the inner service's readiness");
    cr_assert_eq(gauge(&layer.metrics.waiting), N - 3);
    cr_assert_eq(gauge(&layer.metrics.in_flight), 3);
    for (i = 0; held.n > 0; i++) {
        cr_assert_eq(tmsg_id(held.reqs[0]), (uint64_t)i, "issued out of order");
        held_complete(&held, 0, 0);
        h_turns(2);
    }
    cr_assert_eq(i, N);
    for (i = 0; i < N; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, 0, "call %d: %s", i, ct_err_name(r[i].status));
        cr_assert_eq(r[i].response_id, (uint64_t)i);
        if (i) cr_assert_gt(r[i].order, r[i - 1].order, "answered out of order");
    }
    cr_assert_eq(held.calls, N);
    cr_assert_eq(held.max_n, 3);
    cr_assert_eq(ct_counter_read(&layer.metrics.calls), N);
    cr_assert_eq(gauge(&layer.metrics.waiting), 0);
    cr_assert_eq(gauge(&layer.metrics.in_flight), 0);
    unwrap_held();
}

/* max_in_flight issued and max_queued waiting: PENDING, and a call made
 * anyway fails with CT_EOVERLOADED, its request freed; an answer makes
 * room and wakes the waker. */
Test(queue, a_full_queue_is_pending_and_refuses) {
    rec_op_t r[5];
    ct_waker_t w;
    int i;
    wrap_held(0, 2, 2);
    ct_waker_init(&w, &H.ct, on_woken);
    woken = 0;
    for (i = 0; i < 4; i++) {
        cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
        call(&r[i], (uint64_t)i);
    }
    cr_assert_eq(held.n, 2);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    call(&r[4], 4);
    H_RUN_UNTIL(r[4].calls);
    cr_assert_eq(r[4].status, CT_EOVERLOADED);
    cr_assert_eq(ct_counter_read(&layer.metrics.refused), 1);
    cr_assert_eq(H.live_msgs, 4, "the refused request was not freed");
    held_complete(&held, 0, 0);
    H_RUN_UNTIL(woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    cr_assert_eq(held.n, 2, "the next waiting call was not issued");
    held_complete_all(&held);
    h_turns(2);
    held_complete_all(&held);
    H_RUN_UNTIL(r[3].calls);
    for (i = 0; i < 4; i++)
        cr_assert_eq(r[i].status, 0);
    ct_waker_cancel(&w);
    unwrap_held();
}

/* A waiting call canceled completes at once and never reaches the inner
 * service; an issued one is canceled there. */
Test(queue, cancel_takes_a_waiting_call_out_and_cancels_an_issued_one) {
    rec_op_t r[3];
    int i;
    wrap_held(1, 0, 0);
    for (i = 0; i < 3; i++)
        call(&r[i], (uint64_t)i);
    ct_op_cancel(&r[1].op); /* waiting */
    H_RUN_UNTIL(r[1].calls);
    cr_assert_eq(r[1].status, CT_ECANCELED);
    cr_assert_eq(gauge(&layer.metrics.waiting), 1);
    ct_op_cancel(&r[0].op); /* issued */
    H_RUN_UNTIL(r[0].calls);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(held.cancels, 1);
    H_RUN_UNTIL(held.n == 1); /* the third goes in once the first is out */
    cr_assert_eq(tmsg_id(held.reqs[0]), 2, "the canceled waiting call was issued");
    held_complete(&held, 0, 0);
    H_RUN_UNTIL(r[2].calls);
    cr_assert_eq(r[2].status, 0);
    cr_assert_eq(r[2].response_id, 2);
    cr_assert_eq(held.calls, 2);
    for (i = 0; i < 3; i++)
        cr_assert_eq(r[i].calls, 1);
    unwrap_held();
}

/* A call whose deadline passes while it waits fails then, with
 * CT_ETIMEDOUT and cause CT_EDEADLINE; one without a deadline waits on. */
Test(queue, a_waiting_call_fails_at_its_deadline) {
    rec_op_t first, late, patient;
    ct_context_t ctx;
    uint64_t started;
    wrap_held(1, 0, 0);
    call(&first, 0);
    h_call_with_deadline(&layer.service, &late, &ctx, 30, 1);
    call(&patient, 2);
    started = uv_now(&H.uv);
    H_RUN_UNTIL(late.calls);
    cr_assert_eq(late.status, CT_ETIMEDOUT);
    cr_assert_eq(late.cause, CT_EDEADLINE);
    cr_assert_geq(uv_now(&H.uv) - started, 25, "failed before its deadline");
    cr_assert_eq(ct_counter_read(&layer.metrics.expired), 1);
    cr_assert_eq(patient.calls, 0);
    held_complete(&held, 0, 0);
    H_RUN_UNTIL(held.n == 1);
    cr_assert_eq(tmsg_id(held.reqs[0]), 2, "the expired call was issued");
    held_complete(&held, 0, 0);
    H_RUN_UNTIL(patient.calls);
    cr_assert_eq(patient.status, 0);
    cr_assert_eq(first.status, 0);
    unwrap_held();
}

/* ---- an inner service that dies ---------------------------------------------- */

static int dead;
static int dying_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    held_svc_t *h = (held_svc_t *)svc;
    if (dead) return CT_ERECVBROKEN;
    if (h->n < 1) return CT_READY;
    ct_waitq_add(&h->waiters, waker);
    return CT_PENDING;
}

Test(queue, when_the_inner_service_dies_the_waiting_calls_fail_with_its_error) {
    static ct_service_vtable_t vt;
    rec_op_t r[3];
    int i;
    wrap_held(1, 0, 0);
    vt = *held.service.vtable;
    vt.poll_ready = dying_poll_ready;
    held.service.vtable = &vt;
    dead = 0;
    for (i = 0; i < 3; i++)
        call(&r[i], (uint64_t)i);
    dead = 1;
    held_complete(&held, 0, CT_ERECVBROKEN); /* wakes the queue, which polls */
    H_RUN_UNTIL(r[2].calls);
    for (i = 0; i < 3; i++)
        cr_assert_eq(r[i].status, CT_ERECVBROKEN, "call %d: %s", i, ct_err_name(r[i].status));
    cr_assert_eq(held.calls, 1);
    unwrap_held();
}

/* Close: the waiting calls fail with CT_ECLOSED, the issued ones as the
 * inner service's close ends them. */
Test(queue, close_fails_the_waiting_calls) {
    rec_op_t r[4];
    int i;
    wrap_held(2, 0, 0);
    for (i = 0; i < 4; i++)
        call(&r[i], (uint64_t)i);
    h_close_service(&layer.service);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ECLOSED, "call %d: %s", i, ct_err_name(r[i].status));
    }
    held_free(&held);
}

/* ---- through a real client ------------------------------------------------------- */

/* The queue closes the client under it; the server then sees the end. */
static void close_over_pair(ct_queue_t *q, h_pair_t *pair, ct_service_fn_t *echo) {
    h_close_service(&q->service);
    H_RUN_UNTIL(pair->server_closed);
    h_close_service(&echo->service);
}

static int shut_status = 1;
static void on_shut(ct_service_t *svc, int status) {
    (void)svc;
    shut_status = status;
}

/* Shutdown: the waiting calls are issued and answered, then the inner
 * service drains. */
Test(queue, shutdown_issues_the_waiting_calls_first) {
    enum { N = 40 };
    static h_pair_t pair;
    ct_service_fn_t echo;
    ct_queue_t q;
    ct_queue_config_t c = {.max_queued = N, .free_msg = tmsg_free};
    rec_op_t r[N];
    int i;
    ct_echo_service_init(&echo, &H.ct);
    h_pair_connect(&pair, &echo.service, 0, 4, 64);
    cr_assert_eq(ct_queue_init(&q, &H.ct, &pair.client.service, &c), 0);
    for (i = 0; i < N; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&q.service, tmsg_new((uint64_t)i), &r[i].op), 0);
    }
    shut_status = 1;
    cr_assert_eq(ct_service_shutdown(&q.service, on_shut), 0);
    H_RUN_UNTIL(shut_status != 1);
    cr_assert_eq(shut_status, 0, "%s", ct_err_name(shut_status));
    for (i = 0; i < N; i++) {
        cr_assert_eq(r[i].status, 0, "call %d: %s", i, ct_err_name(r[i].status));
        cr_assert_eq(r[i].response_id, (uint64_t)i);
    }
    close_over_pair(&q, &pair, &echo);
}

static long done, failed;
static void on_many(ct_op_t *op, int status, void *response) {
    (void)op;
    cr_assert_eq(H.nested, 0);
    if (status == 0) {
        done++;
        tmsg_free(response, NULL);
    } else {
        failed++;
    }
}

/* 10,000 calls made at once, without a READY, through a pipelined client
 * that takes 16 at a time: every one answered, none refused. */
Test(queue, ten_thousand_calls_at_once_complete_without_an_error) {
    enum { N = 10000 };
    static h_pair_t pair;
    static ct_op_t ops[N];
    ct_service_fn_t echo;
    ct_queue_t q;
    ct_queue_config_t c = {.max_queued = N, .free_msg = tmsg_free};
    int i;
    ct_echo_service_init(&echo, &H.ct);
    h_pair_connect(&pair, &echo.service, 0, 16, 64);
    cr_assert_eq(ct_queue_init(&q, &H.ct, &pair.client.service, &c), 0);
    done = failed = 0;
    for (i = 0; i < N; i++) {
        ct_op_init(&ops[i], on_many);
        cr_assert_eq(h_call(&q.service, tmsg_new((uint64_t)i), &ops[i]), 0);
    }
    H_RUN_UNTIL(done + failed == N);
    cr_assert_eq(failed, 0, "%ld of %d calls failed", failed, N);
    cr_assert_eq(ct_counter_read(&q.metrics.refused), 0);
    close_over_pair(&q, &pair, &echo);
}

/* A request may be NULL: canceled while it waits, it is still taken out
 * of the queue, and never issued. */
Test(queue, a_waiting_null_request_is_canceled_like_any_other) {
    rec_op_t r[2];
    wrap_held(1, 0, 0);
    call(&r[0], 0);
    rec_op_init(&r[1]);
    cr_assert_eq(h_call(&layer.service, NULL, &r[1].op), 0);
    cr_assert_eq(gauge(&layer.metrics.waiting), 1);
    ct_op_cancel(&r[1].op);
    H_RUN_UNTIL(r[1].calls);
    cr_assert_eq(r[1].status, CT_ECANCELED);
    cr_assert_eq(gauge(&layer.metrics.waiting), 0);
    held_complete(&held, 0, 0);
    H_RUN_UNTIL(r[0].calls);
    h_turns(4);
    cr_assert_eq(held.calls, 1, "the canceled call was issued");
    unwrap_held();
}
