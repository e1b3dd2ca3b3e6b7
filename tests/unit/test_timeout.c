#include "testutil.h"

TestSuite(timeout, .init = h_setup, .fini = h_teardown);

static held_svc_t held;
static ct_timeout_t layer;

static void wrap(uint64_t ms, size_t max_in_flight) {
    ct_timeout_config_t cfg = {0};
    cfg.timeout_ms = ms;
    cfg.max_in_flight = max_in_flight;
    cfg.free_msg = tmsg_free;
    held_init(&held, 0);
    cr_assert_eq(ct_timeout_init(&layer, &H.ct, &held.service, &cfg), 0);
}

static void run_until_called(rec_op_t *r) {
    H_RUN_UNTIL(r->calls != 0);
}

static void unwrap(void) {
    h_close_service(&layer.service);
    held_free(&held);
}

Test(timeout, rejects_bad_config) {
    ct_timeout_t t;
    ct_timeout_config_t cfg = {0};
    held_init(&held, 0);
    cr_assert_eq(ct_timeout_init(&t, &H.ct, &held.service, &cfg), CT_EINVAL, "zero timeout");
    cr_assert_eq(ct_timeout_init(&t, &H.ct, &held.service, NULL), CT_EINVAL);
    h_close_service(&held.service);
    held_free(&held);
}

Test(timeout, a_silent_service_times_out_once) {
    rec_op_t r;
    wrap(20, 4);
    rec_op_init(&r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(1), &r.op), 0);
    run_until_called(&r);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(held.cancels, 1, "the inner op was canceled");
    h_turns(3);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(ct_counter_read(&layer.metrics.timeouts), 1);
    cr_assert_eq(ct_counter_read(&layer.metrics.deadlines), 0);
    unwrap();
}

Test(timeout, an_answer_in_time_passes_through) {
    rec_op_t r;
    wrap(10000, 4);
    rec_op_init(&r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(5), &r.op), 0);
    h_turns(2);
    held_complete(&held, 0, 0);
    run_until_called(&r);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 5);
    unwrap();
}

Test(timeout, deadlines_expire_in_call_order) {
    rec_op_t r[3];
    int i;
    wrap(15, 4);
    for (i = 0; i < 3; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&layer.service, tmsg_new(i), &r[i].op), 0);
    }
    held_complete(&held, 1, 0); /* the middle one answers in time */
    run_until_called(&r[2]);
    cr_assert_eq(r[0].status, CT_ETIMEDOUT);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[2].status, CT_ETIMEDOUT);
    cr_assert_lt(r[1].order, r[0].order);
    unwrap();
}

Test(timeout, cancel_completes_once_and_frees_the_entry) {
    rec_op_t r[2];
    wrap(10000, 1);
    rec_op_init(&r[0]);
    cr_assert_eq(h_call(&layer.service, tmsg_new(1), &r[0].op), 0);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_PENDING, "the pool is used up");
    ct_op_cancel(&r[0].op);
    h_turns(2);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    rec_op_init(&r[1]);
    cr_assert_eq(h_call(&layer.service, tmsg_new(2), &r[1].op), 0);
    h_turns(1);
    held_complete(&held, 0, 0);
    run_until_called(&r[1]);
    cr_assert_eq(r[1].response_id, 2);
    unwrap();
}

Test(timeout, close_fails_what_is_in_flight) {
    rec_op_t r;
    wrap(10000, 4);
    rec_op_init(&r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(1), &r.op), 0);
    unwrap();
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, CT_ECLOSED);
}

/* The whole chain: a pipeline client under a timeout, a peer that answers
 * late. The late answer lands on the tombstone; the next call gets its own. */
static void *inbox[4];
static int inbox_n;
static void on_peer(ct_transport_t *t, int status, void *msg) {
    (void)t;
    if (status == 0) inbox[inbox_n++] = msg;
}

Test(timeout, late_answer_after_a_timeout_does_not_desynchronize_a_pipeline) {
    static ct_channel_t a, b; /* outlive this frame: teardown runs the loop */
    static ct_client_t client;
    ct_client_config_t ccfg = {0};
    ct_timeout_config_t tcfg = {0};
    rec_op_t r[2];
    ccfg.free_msg = tmsg_free;
    tcfg.timeout_ms = 10;
    tcfg.free_msg = tmsg_free;
    inbox_n = 0;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &a, &b, 8, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_client_init(&client, &H.ct, &a.transport, &ccfg), 0);
    cr_assert_eq(ct_timeout_init(&layer, &H.ct, &client.service, &tcfg), 0);
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_peer), 0);
    rec_op_init(&r[0]);
    cr_assert_eq(h_call(&layer.service, tmsg_new(1), &r[0].op), 0);
    run_until_called(&r[0]);
    cr_assert_eq(r[0].status, CT_ETIMEDOUT);
    rec_op_init(&r[1]);
    cr_assert_eq(h_call(&layer.service, tmsg_new(2), &r[1].op), 0);
    h_turns(2);
    cr_assert_eq(inbox_n, 2);
    cr_assert_eq(ct_transport_send(&b.transport, inbox[0]), 0); /* late */
    cr_assert_eq(ct_transport_send(&b.transport, inbox[1]), 0);
    run_until_called(&r[1]);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[1].response_id, 2);
    h_close_service(&layer.service);
    ct_transport_close(&b.transport, NULL);
    h_run();
}

/* An answer given at once cannot be late: the layer hands the inner
 * service's synchronous answer through, and takes nothing when the inner
 * service has none. */
Test(timeout, a_synchronous_answer_passes_through_call_sync) {
    static ct_service_fn_t echo;
    static ct_timeout_t sync_layer;
    ct_timeout_config_t cfg = {0};
    int status = 1;
    void *response = NULL;
    tmsg_t *m = tmsg_new(5);
    cfg.timeout_ms = 1000;
    cfg.max_in_flight = 4;
    cfg.free_msg = tmsg_free;
    ct_echo_service_init(&echo, &H.ct);
    cr_assert_eq(ct_timeout_init(&sync_layer, &H.ct, &echo.service, &cfg), 0);
    cr_assert_eq(ct_service_call_sync(&sync_layer.service, m, &status, &response), 1);
    cr_assert_eq(status, 0);
    cr_assert_eq(response, m);
    tmsg_free(m, NULL);
    h_close_service(&sync_layer.service);
    m = tmsg_new(6);
    wrap(1000, 4);
    cr_assert_eq(ct_service_call_sync(&layer.service, m, &status, &response), 0);
    tmsg_free(m, NULL);
    unwrap();
}

/* ---- the caller's deadline ---------------------------------------------------- */

Test(timeout, a_deadline_before_the_timeout_ends_the_call_with_its_cause) {
    rec_op_t r;
    ct_context_t ctx;
    wrap(10000, 4);
    h_call_with_deadline(&layer.service, &r, &ctx, 20, 1);
    cr_assert_not_null(held.ops[0]->ctx, "the context goes on with the call");
    cr_assert_eq(held.ops[0]->ctx->deadline_ms, ctx.deadline_ms);
    run_until_called(&r);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(r.cause, CT_EDEADLINE);
    cr_assert_eq(held.cancels, 1);
    cr_assert_eq(ct_counter_read(&layer.metrics.deadlines), 1, "counted as the caller's deadline");
    cr_assert_eq(ct_counter_read(&layer.metrics.timeouts), 0);
    unwrap();
}

Test(timeout, the_layers_own_timeout_has_no_cause) {
    rec_op_t r;
    ct_context_t ctx;
    wrap(20, 4);
    h_call_with_deadline(&layer.service, &r, &ctx, 10000, 1);
    cr_assert_leq(held.ops[0]->ctx->deadline_ms, uv_now(&H.uv) + 20,
                  "the inner service was not told the layer's earlier deadline");
    cr_assert_eq(ctx.deadline_ms > uv_now(&H.uv) + 9000, 1, "the caller's own changed");
    run_until_called(&r);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(r.cause, 0, "a local timeout told as the caller's deadline");
    unwrap();
}

/* A short deadline overtakes calls made before it, and the timer serves it
 * first; the calls it overtook still end at their own time. */
Test(timeout, a_short_deadline_overtakes_earlier_calls) {
    rec_op_t slow, fast, plain;
    ct_context_t c1, c2;
    wrap(300, 4);
    h_call_with_deadline(&layer.service, &slow, &c1, 10000, 1); /* ends at the layer's 300 ms */
    rec_op_init(&plain);
    cr_assert_eq(h_call(&layer.service, tmsg_new(2), &plain.op), 0);
    h_call_with_deadline(&layer.service, &fast, &c2, 20, 3);
    run_until_called(&fast);
    cr_assert_eq(fast.status, CT_ETIMEDOUT);
    cr_assert_eq(fast.cause, CT_EDEADLINE);
    cr_assert_eq(slow.calls + plain.calls, 0, "the earlier calls ended with it");
    H_RUN_UNTIL(slow.calls && plain.calls);
    cr_assert_eq(slow.status, CT_ETIMEDOUT);
    cr_assert_eq(slow.cause, 0);
    cr_assert_eq(plain.status, CT_ETIMEDOUT);
    cr_assert_lt(slow.order, plain.order, "the calls of one timeout end in call order");
    unwrap();
}

/* The answer and the deadline in the same loop turn: the timer runs first
 * (libuv's timers come before the queue of completions), the caller hears
 * of its deadline once, and the answer that had arrived is freed. */
Test(timeout, a_deadline_and_an_answer_in_one_turn_complete_once) {
    rec_op_t r;
    ct_context_t ctx;
    wrap(10000, 4);
    h_call_with_deadline(&layer.service, &r, &ctx, 10, 1);
    h_turns(1);
    uv_sleep(20);
    held_complete(&held, 0, 0); /* queued: its callback runs in the next turn */
    H_RUN_UNTIL(r.calls);
    h_turns(3);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(r.cause, CT_EDEADLINE);
    unwrap(); /* the teardown checks that the late answer was freed */
}
