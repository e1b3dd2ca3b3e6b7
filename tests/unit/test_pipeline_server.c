/* The pipeline server driven by a peer that the test plays by hand over the
 * channel, with a service whose completions the test controls. */
#include "testutil.h"

TestSuite(pipeline_server, .init = h_setup, .fini = h_teardown);

static ct_channel_t server_end, peer;
static ct_server_t srv;
static held_svc_t held;
static int closed_calls;
static int closed_status;

static uint64_t got[256];
static int got_n;
static int peer_end;

static void on_peer_recv(ct_transport_t *t, int status, void *msg) {
    (void)t;
    cr_assert_eq(H.nested, 0);
    cr_assert_eq(peer_end, 1, "nothing may follow the end of the stream");
    if (status < 0) {
        peer_end = status;
        return;
    }
    got[got_n++] = tmsg_id(msg);
    tmsg_free(msg, NULL);
}

static void on_server_closed(ct_server_t *s, int status) {
    cr_assert_eq(s, &srv);
    cr_assert_eq(H.nested, 0);
    closed_calls++;
    closed_status = status;
}

static int error_to_response(ct_server_t *s, int status, void **response) {
    (void)s;
    *response = tmsg_new(1000 + (uint64_t)ct_err_service_code(status));
    return 0;
}

static void start_on(ct_service_t *svc, size_t bound, size_t channel_cap,
                     ct_server_error_fn on_error, int peer_reads) {
    ct_server_config_t cfg = {0};
    cfg.max_in_flight = bound;
    cfg.free_msg = tmsg_free;
    cfg.on_error = on_error;
    got_n = 0;
    peer_end = 1;
    closed_calls = 0;
    closed_status = 1;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &server_end, &peer, channel_cap, tmsg_free, NULL), 0);
    cr_assert_eq(
        ct_pipeline_server_init(&srv, &H.ct, &server_end.transport, svc, &cfg, on_server_closed),
        0);
    if (peer_reads) cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
}

static void start(size_t bound, size_t channel_cap, ct_server_error_fn on_error, int peer_reads) {
    start_on(&held.service, bound, channel_cap, on_error, peer_reads);
}

static void ask(uint64_t from, uint64_t to) {
    uint64_t i;
    for (i = from; i < to; i++)
        cr_assert_eq(ct_transport_send(&peer.transport, tmsg_new(i)), 0);
}

/* Runs the loop until the server has closed, then closes the rest. */
static void finish(void) {
    H_RUN_UNTIL(closed_calls != 0);
    h_turns(2);
    cr_assert_eq(closed_calls, 1, "the close callback runs once");
    ct_transport_close(&peer.transport, NULL);
    h_close_service(&held.service);
    held_free(&held);
}

Test(pipeline_server, rejects_bad_arguments) {
    ct_server_t other;
    held_init(&held, 0);
    start(4, 4, NULL, 1);
    cr_assert_eq(ct_pipeline_server_init(&other, &H.ct, NULL, &held.service, NULL, NULL),
                 CT_EINVAL);
    cr_assert_eq(
        ct_pipeline_server_init(&other, &H.ct, &server_end.transport, &held.service, NULL, NULL),
        CT_EINVAL, "a transport already served cannot be shared");
    ct_server_close(&srv);
    finish();
}

Test(pipeline_server, an_absurd_bound_is_out_of_memory_not_an_overflow) {
    ct_server_config_t cfg = {0};
    ct_channel_t a, b;
    held_init(&held, 0);
    cr_assert_eq(ct_channel_pair_init(&H.ct, &a, &b, 4, tmsg_free, NULL), 0);
    cfg.max_in_flight = ((size_t)1 << 61) + 1; /* times a slot: wraps to a small size */
    cr_assert_eq(ct_pipeline_server_init(&srv, &H.ct, &a.transport, &held.service, &cfg, NULL),
                 UV_ENOMEM);
    ct_transport_close(&a.transport, NULL);
    ct_transport_close(&b.transport, NULL);
    h_close_service(&held.service);
    held_free(&held);
}

Test(pipeline_server, answers_in_request_order_when_the_service_reverses) {
    int i;
    held_init(&held, 0);
    held.batch = 4; /* every fourth request releases the four, newest first */
    start(16, 16, NULL, 1);
    ask(0, 12);
    h_turns(6);
    cr_assert_eq(got_n, 12);
    for (i = 0; i < 12; i++)
        cr_assert_eq(got[i], (uint64_t)i, "response %d out of order", i);
    ct_server_close(&srv);
    finish();
    cr_assert_eq(closed_status, CT_ECANCELED);
}

Test(pipeline_server, stops_reading_at_its_bound_with_a_slow_service) {
    enum { BOUND = 4, N = 40 };
    int i;
    held_init(&held, 0);
    held_start_timer(&held, 1);
    start(BOUND, 64, NULL, 1);
    ask(0, N);
    while (got_n < N) {
        uv_run(&H.uv, UV_RUN_ONCE);
        cr_assert_leq(ct_server_in_flight(&srv), BOUND);
        cr_assert_leq(held.n, BOUND);
        if (got_n > 0 && got_n < N - BOUND)
            cr_assert_gt(server_end.count, 0, "unread requests wait in the transport");
    }
    cr_assert_eq(held.max_n, BOUND, "the service saw up to the bound, never more");
    for (i = 0; i < N; i++)
        cr_assert_eq(got[i], (uint64_t)i);
    ct_server_close(&srv);
    finish();
}

static size_t hundred_bytes(const void *msg) {
    (void)msg;
    return 100;
}

/* The byte bound stops reading before the count bound does: requests of
 * "100 bytes", at most 350 held, so the fourth one read stops the reading. */
Test(pipeline_server, stops_reading_at_its_byte_bound) {
    enum { N = 40 };
    ct_server_config_t cfg = {0};
    int i;
    held_init(&held, 0);
    held_start_timer(&held, 1);
    cfg.max_in_flight = 64;
    cfg.free_msg = tmsg_free;
    cfg.max_bytes = 350;
    cfg.msg_size = hundred_bytes;
    got_n = 0;
    peer_end = 1;
    closed_calls = 0;
    closed_status = 1;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &server_end, &peer, 64, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_server_init(&srv, &H.ct, &server_end.transport, &held.service, &cfg,
                                         on_server_closed),
                 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
    ask(0, N);
    while (got_n < N) {
        uv_run(&H.uv, UV_RUN_ONCE);
        cr_assert_leq(ct_server_in_flight(&srv), 4, "350 bytes hold 4 requests of 100");
        cr_assert_leq(srv.held_bytes, 4 * 200, "a request and its echo at most");
    }
    cr_assert_eq(held.max_n, 4);
    for (i = 0; i < N; i++)
        cr_assert_eq(got[i], (uint64_t)i);
    cr_assert_eq(srv.held_bytes, 0, "nothing held once all is answered");
    ct_server_close(&srv);
    finish();
}

/* Asks 0..5, of which 3 fails with CT_SERVICE_ERROR(5) and the hook answers
 * 1005 in its place; then closes the server. */
static void expect_request_3_replaced(void) {
    ask(0, 6);
    h_turns(6);
    cr_assert_eq(got_n, 6, "one bad request does not kill the connection");
    cr_assert_eq(got[2], 2);
    cr_assert_eq(got[3], 1005);
    cr_assert_eq(got[4], 4);
    cr_assert_eq(peer_end, 1);
    ct_server_close(&srv);
}

Test(pipeline_server, error_hook_turns_an_error_into_a_response) {
    held_init(&held, 0);
    held.batch = 1; /* answer at once */
    held.fail_id_plus1 = 3 + 1;
    held.fail_status = CT_SERVICE_ERROR(5);
    start(8, 8, error_to_response, 1);
    expect_request_3_replaced();
    finish();
}

Test(pipeline_server, without_a_hook_an_error_closes_after_earlier_responses) {
    held_init(&held, 0);
    held.fail_id_plus1 = 3 + 1;
    held.fail_status = CT_SERVICE_ERROR(5);
    start(8, 8, NULL, 1);
    ask(0, 6);
    h_turns(3);
    /* 0..2 are still in the service; 3 failed at once, 4 and 5 are held */
    held_complete_all(&held);
    finish();
    cr_assert_eq(got_n, 3);
    cr_assert_eq(got[0], 0);
    cr_assert_eq(got[2], 2);
    cr_assert_eq(peer_end, UV_EOF);
    cr_assert_eq(closed_status, CT_SERVICE_ERROR(5));
}

Test(pipeline_server, peer_closing_its_side_drains_then_closes) {
    held_init(&held, 0);
    start(8, 8, NULL, 1);
    ask(0, 3);
    cr_assert_eq(ct_transport_shutdown(&peer.transport, NULL), 0);
    h_turns(3);
    cr_assert_eq(closed_calls, 0, "requests in flight are finished first");
    cr_assert_eq(held.n, 3);
    held_complete(&held, 2, 0);
    held_complete(&held, 0, 0);
    held_complete(&held, 0, 0);
    finish();
    cr_assert_eq(got_n, 3);
    cr_assert_eq(got[0], 0);
    cr_assert_eq(got[1], 1);
    cr_assert_eq(got[2], 2);
    cr_assert_eq(peer_end, UV_EOF);
    cr_assert_eq(closed_status, 0);
}

Test(pipeline_server, graceful_shutdown_answers_what_was_read) {
    held_init(&held, 0);
    start(8, 8, NULL, 1);
    ask(0, 2);
    h_turns(2);
    cr_assert_eq(ct_server_shutdown(&srv), 0);
    ask(2, 3); /* arrives after the shutdown: never read, freed at close */
    h_turns(2);
    cr_assert_eq(held.calls, 2);
    held_complete_all(&held);
    finish();
    cr_assert_eq(got_n, 2);
    cr_assert_eq(peer_end, UV_EOF);
    cr_assert_eq(closed_status, 0);
    cr_assert_eq(ct_server_close(&srv), CT_ECLOSING);
}

Test(pipeline_server, close_cancels_requests_in_the_service) {
    held_init(&held, 0);
    start(8, 8, NULL, 1);
    ask(0, 3);
    h_turns(2);
    cr_assert_eq(held.n, 3);
    cr_assert_eq(ct_server_close(&srv), 0);
    cr_assert_eq(ct_server_close(&srv), CT_ECLOSING, "closing twice is reported");
    finish();
    cr_assert_eq(held.cancels, 3);
    cr_assert_eq(got_n, 0);
    cr_assert_eq(peer_end, UV_EOF);
    cr_assert_eq(closed_status, CT_ECANCELED);
}

Test(pipeline_server, receive_error_ends_the_connection_with_it) {
    held_init(&held, 0);
    start(8, 8, NULL, 1);
    ask(0, 2);
    h_turns(2);
    ct_channel_fail_recv(&server_end, UV_ECONNRESET);
    finish();
    cr_assert_eq(closed_status, UV_ECONNRESET);
    cr_assert_eq(held.cancels, 2);
}

Test(pipeline_server, send_error_ends_the_connection_with_it) {
    held_init(&held, 0);
    start(8, 8, NULL, 1);
    ask(0, 2);
    h_turns(2);
    ct_channel_fail_send(&server_end, UV_EPIPE);
    held_complete(&held, 0, 0);
    finish();
    cr_assert_eq(closed_status, UV_EPIPE);
    cr_assert_eq(got_n, 0);
}

Test(pipeline_server, waits_for_service_readiness) {
    int i;
    held_init(&held, 1); /* one request at a time */
    start(8, 8, NULL, 1);
    ask(0, 4);
    for (i = 0; i < 4; i++) {
        h_turns(2);
        cr_assert_eq(held.n, 1);
        cr_assert_eq(held.calls, i + 1, "not called beyond its readiness");
        held_complete(&held, 0, 0);
    }
    h_turns(2);
    cr_assert_eq(got_n, 4);
    cr_assert_eq(held.max_n, 1);
    ct_server_close(&srv);
    finish();
}

Test(pipeline_server, a_dead_service_ends_the_connection) {
    ct_service_fn_t echo;
    ct_server_config_t cfg = {0};
    ct_echo_service_init(&echo, &H.ct);
    cr_assert_eq(ct_service_shutdown(&echo.service, NULL), 0);
    cfg.free_msg = tmsg_free;
    got_n = 0;
    peer_end = 1;
    closed_calls = 0;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &server_end, &peer, 4, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_server_init(&srv, &H.ct, &server_end.transport, &echo.service, &cfg,
                                         on_server_closed),
                 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
    ask(0, 1);
    H_RUN_UNTIL(closed_calls != 0);
    cr_assert_eq(closed_status, CT_ESHUTDOWN);
    cr_assert_eq(got_n, 0);
    ct_transport_close(&peer.transport, NULL);
    h_close_service(&echo.service);
}

Test(pipeline_server, holds_responses_while_the_peer_does_not_read) {
    held_init(&held, 0);
    held.batch = 1;
    start(4, 1, NULL, 0); /* one message per direction, and the peer is not reading */
    ask(0, 1);
    h_turns(3);
    cr_assert_eq(ct_transport_send(&peer.transport, tmsg_new(1)), 0);
    h_turns(3);
    /* One response fills the return direction; the rest wait in the server. */
    cr_assert_eq(peer.count, 1);
    cr_assert_geq(ct_server_in_flight(&srv), 1);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
    h_turns(4);
    cr_assert_eq(got_n, 2);
    cr_assert_eq(got[0], 0);
    cr_assert_eq(got[1], 1);
    ct_server_close(&srv);
    finish();
}

/* A function service answers inside the call, so the server sends its
 * answers without queueing them, unless the transport refuses one or the
 * function fails: then they take the queued path, in order. */
static ct_service_fn_t fn_svc;

static int echo_but_fail_3(void *ctx, void *request, void **response) {
    (void)ctx;
    if (tmsg_id(request) == 3) {
        tmsg_free(request, NULL);
        return CT_SERVICE_ERROR(5);
    }
    *response = request;
    return 0;
}

static void finish_fn(void) {
    H_RUN_UNTIL(closed_calls != 0);
    h_turns(2);
    cr_assert_eq(closed_calls, 1, "the close callback runs once");
    ct_transport_close(&peer.transport, NULL);
    h_close_service(&fn_svc.service);
}

Test(pipeline_server, answers_at_once_wait_in_order_while_the_peer_does_not_read) {
    int i;
    ct_echo_service_init(&fn_svc, &H.ct);
    start_on(&fn_svc.service, 4, 2, NULL, 0); /* two messages per direction */
    ask(0, 2);
    h_turns(3);
    ask(2, 4);
    h_turns(3);
    cr_assert_eq(peer.count, 2, "two answers fill the return direction");
    cr_assert_eq(ct_server_in_flight(&srv), 2, "the other two wait in the server");
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
    ask(4, 6);
    h_turns(6);
    cr_assert_eq(got_n, 6);
    for (i = 0; i < 6; i++)
        cr_assert_eq(got[i], (uint64_t)i, "response %d out of order", i);
    cr_assert_eq(ct_server_in_flight(&srv), 0);
    ct_server_close(&srv);
    finish_fn();
}

Test(pipeline_server, an_error_answered_at_once_goes_to_the_hook) {
    ct_service_fn_init(&fn_svc, &H.ct, echo_but_fail_3, NULL);
    start_on(&fn_svc.service, 8, 8, error_to_response, 1);
    expect_request_3_replaced();
    finish_fn();
}

Test(pipeline_server, an_error_answered_at_once_without_a_hook_closes_after_earlier_answers) {
    ct_service_fn_init(&fn_svc, &H.ct, echo_but_fail_3, NULL);
    start_on(&fn_svc.service, 8, 8, NULL, 1);
    ask(0, 6);
    finish_fn();
    cr_assert_eq(got_n, 3);
    cr_assert_eq(got[0], 0);
    cr_assert_eq(got[2], 2);
    cr_assert_eq(peer_end, UV_EOF);
    cr_assert_eq(closed_status, CT_SERVICE_ERROR(5));
}

/* Two connections of one loop share a budget of 300 "bytes": the first,
 * whose service holds what it reads, stops at three requests; the second,
 * whose echo answers at once and so holds nothing, is still read and
 * answered while the budget is spent. Once the first one's answers leave,
 * it reads again. */
static ct_channel_t other_end, other_peer;
static ct_server_t other_srv;
static int other_got, other_closed;

static void on_other_peer_recv(ct_transport_t *t, int status, void *msg) {
    (void)t;
    if (status < 0) return;
    other_got++;
    tmsg_free(msg, NULL);
}

static void on_other_closed(ct_server_t *s, int status) {
    (void)s;
    (void)status;
    other_closed = 1;
}

Test(pipeline_server, a_shared_budget_stops_who_holds_and_reads_who_does_not) {
    ct_budget_t budget = {300, 0};
    ct_server_config_t cfg = {0};
    int i;
    held_init(&held, 0);
    ct_echo_service_init(&fn_svc, &H.ct);
    cfg.max_in_flight = 64;
    cfg.free_msg = tmsg_free;
    cfg.msg_size = hundred_bytes;
    cfg.budget = &budget;
    got_n = 0;
    peer_end = 1;
    closed_calls = other_got = other_closed = 0;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &server_end, &peer, 64, tmsg_free, NULL), 0);
    cr_assert_eq(ct_channel_pair_init(&H.ct, &other_end, &other_peer, 64, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_server_init(&srv, &H.ct, &server_end.transport, &held.service, &cfg,
                                         on_server_closed),
                 0);
    cr_assert_eq(ct_pipeline_server_init(&other_srv, &H.ct, &other_end.transport, &fn_svc.service,
                                         &cfg, on_other_closed),
                 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
    cr_assert_eq(ct_transport_recv_start(&other_peer.transport, on_other_peer_recv), 0);
    ask(0, 10);
    h_turns(5);
    cr_assert_eq(held.n, 3, "the holder stops once the budget is spent");
    cr_assert_eq(budget.used, 300);
    for (i = 0; i < 5; i++)
        cr_assert_eq(ct_transport_send(&other_peer.transport, tmsg_new((uint64_t)i)), 0);
    h_turns(5);
    cr_assert_eq(other_got, 5, "a connection that holds nothing is still answered");
    cr_assert_eq(held.n, 3);
    for (i = 0; i < 10 && got_n < 10; i++) { /* three at a time */
        held_complete_all(&held);
        h_turns(5);
        cr_assert_leq(held.max_n, 3);
    }
    cr_assert_eq(got_n, 10, "the holder reads again as its answers leave");
    cr_assert_eq(budget.used, 0, "nothing held once all is answered");
    ct_server_close(&srv);
    ct_server_close(&other_srv);
    H_RUN_UNTIL(closed_calls && other_closed);
    ct_transport_close(&peer.transport, NULL);
    ct_transport_close(&other_peer.transport, NULL);
    h_close_service(&held.service);
    held_free(&held);
    h_close_service(&fn_svc.service);
}

/* A graceful end waiting for its write side (which a peer may never let
 * finish) is cut short by ct_server_close, as a listener's deadline does. */
Test(pipeline_server, close_cuts_a_graceful_end_short) {
    held_init(&held, 0);
    start(8, 8, NULL, 1);
    ask(0, 1);
    H_RUN_UNTIL(held.n == 1);
    held_complete_all(&held);
    h_turns(2);
    cr_assert_eq(got_n, 1);
    cr_assert_eq(ct_server_shutdown(&srv), 0);
    cr_assert_eq(ct_server_close(&srv), 0, "the write side's shutdown is still under way");
    cr_assert_eq(ct_server_close(&srv), CT_ECLOSING);
    finish();
    cr_assert_eq(closed_status, CT_ECANCELED);
}
