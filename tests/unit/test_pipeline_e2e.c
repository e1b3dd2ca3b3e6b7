/* Pipeline client and server back to back over the channel. */
#include "testutil.h"

#include <stdlib.h>

TestSuite(pipeline_e2e, .init = h_setup, .fini = h_teardown);

static h_pair_t pair;

static void run_echo(size_t depth) {
    ct_service_fn_t echo;
    ct_echo_service_init(&echo, &H.ct);
    h_pair_connect(&pair, &echo.service, 0, depth, 64);
    h_drive(&pair.client.service, depth, 100000);
    h_pair_disconnect(&pair, &echo.service);
}

static void run_deferred(size_t depth) {
    batch_svc_t d;
    batch_init(&d, depth, 0);
    h_pair_connect(&pair, &d.service, 0, depth, 64);
    h_drive(&pair.client.service, depth, 100000);
    h_pair_disconnect(&pair, &d.service);
}

Test(pipeline_e2e, inline_100k_depth_1) {
    run_echo(1);
}
Test(pipeline_e2e, inline_100k_depth_16) {
    run_echo(16);
}
Test(pipeline_e2e, inline_100k_depth_1024) {
    run_echo(1024);
}
Test(pipeline_e2e, deferred_100k_depth_1) {
    run_deferred(1);
}
Test(pipeline_e2e, deferred_100k_depth_16) {
    run_deferred(16);
}
Test(pipeline_e2e, deferred_100k_depth_1024) {
    run_deferred(1024);
}

static int drained = 1;
static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained = status;
}

Test(pipeline_e2e, graceful_close_racing_with_responses) {
    held_svc_t held;
    rec_op_t r[2];
    held_init(&held, 0);
    h_pair_connect(&pair, &held.service, 0, 8, 8);
    rec_op_init(&r[0]);
    rec_op_init(&r[1]);
    cr_assert_eq(h_call(&pair.client.service, tmsg_new(1), &r[0].op), 0);
    cr_assert_eq(h_call(&pair.client.service, tmsg_new(2), &r[1].op), 0);
    cr_assert_eq(ct_service_shutdown(&pair.client.service, on_drained), 0);
    h_turns(4);
    cr_assert_eq(held.n, 2, "both requests reached the service");
    cr_assert_eq(r[0].calls + r[1].calls, 0);
    held_complete(&held, 1, 0); /* the server answers after the client closed */
    held_complete(&held, 0, 0);
    h_turns(4);
    cr_assert_eq(r[0].status, 0);
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(drained, 0);
    cr_assert(pair.server_closed, "the server ended after its peer's EOF");
    h_pair_disconnect(&pair, &held.service);
    held_free(&held);
}

Test(pipeline_e2e, server_closing_with_requests_in_flight) {
    enum { N = 7 };
    held_svc_t held;
    rec_op_t r[N];
    int i;
    held_init(&held, 0);
    h_pair_connect(&pair, &held.service, 0, 8, 8);
    for (i = 0; i < N; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&pair.client.service, tmsg_new(i), &r[i].op), 0);
    }
    h_turns(3);
    cr_assert_eq(ct_server_close(&pair.srv), 0);
    h_turns(4);
    for (i = 0; i < N; i++) {
        cr_assert_eq(r[i].calls, 1, "op %d completed %d times", i, r[i].calls);
        cr_assert_eq(r[i].status, CT_ERECVBROKEN);
        cr_assert_eq(r[i].cause, UV_EOF);
    }
    cr_assert_eq(held.cancels, N);
    h_pair_disconnect(&pair, &held.service);
    held_free(&held);
}
