/* The pipeline client against a peer that the test drives by hand over the
 * channel: it can answer, stay silent, send strays, close or break. */
#include "testutil.h"

TestSuite(pipeline_client, .init = h_setup, .fini = h_teardown);

static ct_channel_t client_end, peer;
static ct_client_t client;

/* What the peer received. */
static void *peer_inbox[64];
static int peer_n;
static int peer_end = 1;

static void on_peer_recv(ct_transport_t *t, int status, void *msg) {
    (void)t;
    if (status < 0) {
        peer_end = status;
        return;
    }
    peer_inbox[peer_n++] = msg;
}

static void setup_client(size_t max_in_flight, size_t channel_cap) {
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = max_in_flight;
    cfg.free_msg = tmsg_free;
    peer_n = 0;
    peer_end = 1;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &client_end, &peer, channel_cap, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_client_init(&client, &H.ct, &client_end.transport, &cfg), 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
}

/* The peer answers its oldest unanswered request with the same message. */
static void peer_answer(int i) {
    cr_assert_eq(ct_transport_send(&peer.transport, peer_inbox[i]), 0);
    peer_inbox[i] = NULL;
}

static void peer_send_stray(uint64_t id) {
    cr_assert_eq(ct_transport_send(&peer.transport, tmsg_new(id)), 0);
}

static void teardown_client(void) {
    int i;
    h_close_service(&client.service);
    for (i = 0; i < peer_n; i++)
        tmsg_free(peer_inbox[i], NULL);
    if (!ct_transport_is_closing(&peer.transport)) ct_transport_close(&peer.transport, NULL);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&client.service, tmsg_new(id), &r->op), 0);
}

Test(pipeline_client, rejects_bad_arguments_and_a_taken_transport) {
    ct_client_t other;
    setup_client(4, 4);
    cr_assert_eq(ct_pipeline_client_init(&other, &H.ct, NULL, NULL), CT_EINVAL);
    cr_assert_eq(ct_pipeline_client_init(&other, &H.ct, &client_end.transport, NULL), CT_EINVAL,
                 "a transport already driven by a client cannot be shared");
    teardown_client();
}

Test(pipeline_client, an_absurd_bound_is_out_of_memory_not_an_overflow) {
    ct_channel_t a, b;
    ct_client_t c;
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = (size_t)-1;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &a, &b, 4, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_client_init(&c, &H.ct, &a.transport, &cfg), UV_ENOMEM);
    cfg.max_in_flight = ((size_t)1 << 61) + 1; /* times a slot: wraps to a small size */
    cr_assert_eq(ct_pipeline_client_init(&c, &H.ct, &a.transport, &cfg), UV_ENOMEM,
                 "the transport is still the caller's: it can be tried again");
    ct_transport_close(&a.transport, NULL);
    ct_transport_close(&b.transport, NULL);
    h_run();
}

Test(pipeline_client, responses_match_requests_in_order) {
    rec_op_t r[3];
    int i;
    setup_client(8, 8);
    for (i = 0; i < 3; i++)
        call(&r[i], 100 + i);
    h_turns(2);
    cr_assert_eq(peer_n, 3);
    for (i = 0; i < 3; i++)
        cr_assert_eq(tmsg_id(peer_inbox[i]), 100u + i);
    for (i = 0; i < 3; i++)
        peer_answer(i);
    h_turns(2);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, 0);
        cr_assert_eq(r[i].response_id, 100u + i);
    }
    cr_assert_eq(ct_client_in_flight(&client), 0);
    teardown_client();
}

static int woken;
static void on_wake(ct_waker_t *w) {
    (void)w;
    cr_assert_eq(H.nested, 0);
    woken++;
}

Test(pipeline_client, bound_gives_pending_then_wakes) {
    rec_op_t r[3];
    ct_waker_t w;
    setup_client(2, 8);
    woken = 0;
    ct_waker_init(&w, &H.ct, on_wake);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    call(&r[0], 1);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    call(&r[1], 2);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_PENDING);
    h_turns(2);
    cr_assert_eq(woken, 0);
    peer_answer(0);
    h_turns(2);
    cr_assert_eq(woken, 1);
    cr_assert_eq(r[0].status, 0);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    call(&r[2], 3);
    h_turns(2);
    peer_answer(1);
    peer_answer(2);
    h_turns(2);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(r[2].response_id, 3);
    teardown_client();
}

Test(pipeline_client, call_at_capacity_without_ready_is_overloaded) {
    rec_op_t r[2];
    setup_client(1, 8);
    call(&r[0], 1);
    call(&r[1], 2); /* no READY asked: overload, not a crash */
    h_turns(2);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_EOVERLOADED);
    cr_assert_eq(peer_n, 1, "the overloaded request was not sent");
    peer_answer(0);
    h_turns(2);
    cr_assert_eq(r[0].status, 0);
    teardown_client();
}

Test(pipeline_client, a_reservation_can_be_released) {
    rec_op_t r;
    ct_waker_t w;
    setup_client(1, 8);
    ct_waker_init(&w, &H.ct, on_wake);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    /* The reservation holds the only slot: a call without READY must not
     * steal it. */
    rec_op_init(&r);
    ct_service_release(&client.service);
    call(&r, 1);
    h_turns(2);
    cr_assert_eq(peer_n, 1, "after release, the slot was free for the call");
    peer_answer(0);
    h_turns(2);
    cr_assert_eq(r.status, 0);
    teardown_client();
}

Test(pipeline_client, a_reservation_is_honoured_over_unready_calls) {
    rec_op_t r[2];
    setup_client(1, 8);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_READY);
    call(&r[0], 1); /* uses the reservation */
    call(&r[1], 2); /* none left: overload */
    h_turns(2);
    cr_assert_eq(r[1].status, CT_EOVERLOADED);
    peer_answer(0);
    h_turns(2);
    cr_assert_eq(r[0].status, 0);
    teardown_client();
}

Test(pipeline_client, receive_error_fails_every_op_once_with_its_cause) {
    rec_op_t r[3];
    int i;
    tmsg_t *m = tmsg_new(9);
    rec_op_t late;
    setup_client(8, 8);
    for (i = 0; i < 3; i++)
        call(&r[i], i);
    h_turns(2);
    ct_channel_fail_recv(&client_end, UV_ECONNRESET);
    h_turns(2);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ERECVBROKEN);
        cr_assert_eq(r[i].cause, UV_ECONNRESET);
    }
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_ERECVBROKEN);
    cr_assert_eq(ct_client_cause(&client), UV_ECONNRESET);
    rec_op_init(&late);
    cr_assert_eq(h_call(&client.service, m, &late.op), CT_ERECVBROKEN,
                 "a dead client refuses calls; the request stays with the caller");
    tmsg_free(m, NULL);
    h_turns(2);
    for (i = 0; i < 3; i++)
        cr_assert_eq(r[i].calls, 1, "completed exactly once");
    cr_assert_eq(late.calls, 0);
    teardown_client();
}

Test(pipeline_client, send_error_fails_every_op_with_its_cause) {
    rec_op_t r[3];
    int i;
    setup_client(8, 8);
    call(&r[0], 0);
    call(&r[1], 1);
    h_turns(2);
    ct_channel_fail_send(&client_end, UV_EPIPE);
    call(&r[2], 2);
    h_turns(2);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ESENDBROKEN);
        cr_assert_eq(r[i].cause, UV_EPIPE);
    }
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_ESENDBROKEN);
    teardown_client();
}

Test(pipeline_client, send_error_while_requests_wait_for_room) {
    rec_op_t r[4];
    int i;
    setup_client(8, 1); /* the channel takes one message at a time */
    for (i = 0; i < 4; i++)
        call(&r[i], i);
    ct_channel_fail_send(&client_end, UV_ECONNRESET);
    h_turns(3);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ESENDBROKEN);
        cr_assert_eq(r[i].cause, UV_ECONNRESET);
    }
    teardown_client();
}

Test(pipeline_client, peer_closing_with_requests_in_flight) {
    enum { N = 5 };
    rec_op_t r[N];
    int i;
    setup_client(8, 8);
    for (i = 0; i < N; i++)
        call(&r[i], i);
    h_turns(2);
    peer_answer(0); /* one answer made it out before the close */
    ct_transport_close(&peer.transport, NULL);
    h_turns(3);
    cr_assert_eq(r[0].status, 0);
    for (i = 1; i < N; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ERECVBROKEN);
        cr_assert_eq(r[i].cause, UV_EOF);
    }
    teardown_client();
}

Test(pipeline_client, peer_closing_while_idle_is_seen_by_poll_ready) {
    ct_waker_t w;
    setup_client(8, 8);
    woken = 0;
    ct_waker_init(&w, &H.ct, on_wake);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    ct_transport_close(&peer.transport, NULL);
    h_turns(3);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_ERECVBROKEN);
    cr_assert_eq(ct_client_cause(&client), UV_EOF);
    teardown_client();
}

Test(pipeline_client, a_waiting_caller_is_woken_when_the_client_dies) {
    ct_waker_t w;
    rec_op_t r;
    setup_client(1, 8);
    woken = 0;
    ct_waker_init(&w, &H.ct, on_wake);
    call(&r, 1);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_PENDING);
    ct_channel_fail_recv(&client_end, UV_ECONNRESET);
    h_turns(3);
    cr_assert_eq(woken, 1);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_ERECVBROKEN);
    cr_assert_eq(r.status, CT_ERECVBROKEN);
    teardown_client();
}

Test(pipeline_client, stray_response_while_idle_is_desync) {
    setup_client(8, 8);
    peer_send_stray(77);
    h_turns(2);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_EDESYNC);
    teardown_client();
}

Test(pipeline_client, extra_response_is_not_given_to_the_next_request) {
    rec_op_t r[2];
    tmsg_t *m = tmsg_new(2);
    setup_client(8, 8);
    call(&r[0], 1);
    h_turns(2);
    peer_answer(0);
    peer_send_stray(666); /* a second answer to the same request */
    h_turns(2);
    cr_assert_eq(r[0].status, 0);
    cr_assert_eq(r[0].response_id, 1);
    rec_op_init(&r[1]);
    cr_assert_eq(h_call(&client.service, m, &r[1].op), CT_EDESYNC);
    tmsg_free(m, NULL);
    teardown_client();
}

Test(pipeline_client, cancel_in_flight_keeps_a_tombstone) {
    rec_op_t r[3];
    setup_client(8, 8);
    call(&r[0], 1);
    call(&r[1], 2);
    h_turns(2);
    ct_op_cancel(&r[0].op);
    h_turns(1);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(ct_client_in_flight(&client), 2, "the tombstone still counts");
    call(&r[2], 3);
    h_turns(2);
    peer_answer(0); /* the late answer to the canceled request */
    peer_answer(1);
    peer_answer(2);
    h_turns(2);
    cr_assert_eq(r[0].calls, 1, "the late answer was discarded");
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(r[2].response_id, 3);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_READY);
    teardown_client();
}

Test(pipeline_client, cancel_before_sending_drops_the_request) {
    rec_op_t r[3];
    setup_client(8, 1);
    call(&r[0], 1);
    call(&r[1], 2); /* waits for room in the channel */
    call(&r[2], 3);
    ct_op_cancel(&r[1].op);
    cr_assert_eq(peer_n, 0);
    h_turns(4);
    cr_assert_eq(r[1].status, CT_ECANCELED);
    cr_assert_eq(peer_n, 2);
    cr_assert_eq(tmsg_id(peer_inbox[0]), 1);
    cr_assert_eq(tmsg_id(peer_inbox[1]), 3, "the canceled request never went out");
    peer_answer(0);
    h_turns(2); /* the return direction holds one message too */
    peer_answer(1);
    h_turns(2);
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[2].response_id, 3);
    cr_assert_eq(ct_client_in_flight(&client), 0);
    teardown_client();
}

/* A queued request the transport cannot encode fails alone when its turn
 * comes; the requests before and after it are sent and answered, each with
 * its own response. */
Test(pipeline_client, a_queued_request_the_transport_refuses_fails_alone) {
    rec_op_t r[4];
    uint64_t sent[3];
    int i;
    setup_client(8, 1);
    call(&r[0], 1);
    call(&r[1], 2); /* these wait for room in the channel */
    call(&r[2], 3);
    call(&r[3], 4);
    cr_assert_eq(ct_channel_refuse_next(&client_end, CT_EFRAMETOOLARGE), 0);
    h_turns(6);
    cr_assert_eq(peer_n, 3);
    for (i = 0; i < 3; i++) {
        sent[i] = tmsg_id(peer_inbox[i]);
        peer_answer(i);
        h_turns(2); /* the return direction holds one message too */
    }
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_EFRAMETOOLARGE, "%s", ct_err_name(r[1].status));
    cr_assert(sent[0] == 1 && sent[1] == 3 && sent[2] == 4, "the refused request never went out");
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[2].response_id, 3, "the answer after the refused one is its own");
    cr_assert_eq(r[3].response_id, 4);
    cr_assert_eq(ct_client_in_flight(&client), 0);
    teardown_client();
}

Test(pipeline_client, abort_close_fails_ops_with_client_closed) {
    rec_op_t r[2];
    setup_client(8, 1);
    call(&r[0], 1);
    call(&r[1], 2); /* unsent: freed by the close */
    h_turns(1);
    h_close_service(&client.service);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[0].status, CT_ECLOSED);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_ECLOSED);
    cr_assert_eq(ct_service_close(&client.service, NULL), CT_ECLOSING);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_ECLOSING);
    while (peer_n > 0)
        tmsg_free(peer_inbox[--peer_n], NULL);
    ct_transport_close(&peer.transport, NULL);
}

static int drained = 1;
static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained = status;
}

Test(pipeline_client, graceful_shutdown_delivers_responses_still_due) {
    rec_op_t r[2];
    tmsg_t *m = tmsg_new(3);
    rec_op_t refused;
    setup_client(8, 8);
    drained = 1;
    call(&r[0], 1);
    call(&r[1], 2);
    cr_assert_eq(ct_service_shutdown(&client.service, on_drained), 0);
    rec_op_init(&refused);
    cr_assert_eq(h_call(&client.service, m, &refused.op), CT_ESHUTDOWN);
    tmsg_free(m, NULL);
    h_turns(3);
    cr_assert_eq(peer_n, 2, "what was queued is sent");
    cr_assert_eq(peer_end, UV_EOF, "then the write side is closed");
    cr_assert_eq(drained, 1, "not drained while responses are due");
    peer_answer(0);
    peer_answer(1);
    h_turns(3);
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(drained, 0);
    teardown_client();
}

Test(pipeline_client, shutdown_cut_short_by_the_peer_reports_the_cause) {
    rec_op_t r;
    setup_client(8, 8);
    drained = 1;
    call(&r, 1);
    cr_assert_eq(ct_service_shutdown(&client.service, on_drained), 0);
    h_turns(2);
    ct_transport_close(&peer.transport, NULL);
    h_turns(3);
    cr_assert_eq(r.status, CT_ERECVBROKEN);
    cr_assert_eq(drained, CT_ERECVBROKEN);
    teardown_client();
}

Test(pipeline_client, close_during_shutdown_cancels_the_drain) {
    rec_op_t r;
    setup_client(8, 8);
    drained = 1;
    call(&r, 1);
    cr_assert_eq(ct_service_shutdown(&client.service, on_drained), 0);
    h_turns(2);
    teardown_client();
    cr_assert_eq(drained, CT_ECANCELED);
    cr_assert_eq(r.status, CT_ECLOSED);
}

/* A shutdown waits for the callers still waiting, not for the answers to
 * calls they gave up (a timeout layer's): a server that never answers those
 * must not keep a shutdown from ending. */
Test(pipeline_client, a_shutdown_does_not_wait_for_answers_nobody_waits_for) {
    rec_op_t r[3];
    setup_client(8, 8);
    drained = 1;
    call(&r[0], 1);
    call(&r[1], 2);
    call(&r[2], 3);
    h_turns(2);
    cr_assert_eq(peer_n, 3);
    ct_op_cancel(&r[0].op);
    ct_op_cancel(&r[2].op);
    cr_assert_eq(ct_service_shutdown(&client.service, on_drained), 0);
    h_turns(3);
    cr_assert_eq(drained, 1, "request 2's caller still waits");
    peer_answer(0); /* the tombstone's late answer */
    h_turns(3);
    cr_assert_eq(drained, 1);
    peer_answer(1);
    h_turns(3);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(drained, 0, "only a canceled call's answer is left: drained");
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(r[2].calls, 1);
    teardown_client();
}

static int stack_drained = 1;
static void on_stack_drained(ct_service_t *svc, int status) {
    (void)svc;
    stack_drained = status;
}

static void on_stack_closed(ct_service_t *svc) {
    *(int *)svc->data = 1;
}

/* The stack of the issue: timeout over a client whose server never answers
 * and never closes. The shutdown ends once the timeout has answered. */
Test(pipeline_client, a_timeout_stack_over_a_silent_server_shuts_down) {
    ct_timeout_t timeout;
    ct_timeout_config_t tcfg = {0};
    rec_op_t r[4];
    int i, closed = 0;
    setup_client(8, 8);
    tcfg.timeout_ms = 20;
    tcfg.free_msg = tmsg_free;
    cr_assert_eq(ct_timeout_init(&timeout, &H.ct, &client.service, &tcfg), 0);
    for (i = 0; i < 4; i++) {
        rec_op_init(&r[i]);
        cr_assert_eq(h_call(&timeout.service, tmsg_new((uint64_t)i), &r[i].op), 0);
    }
    cr_assert_eq(ct_service_shutdown(&timeout.service, on_stack_drained), 0);
    H_RUN_UNTIL(stack_drained != 1);
    cr_assert_eq(stack_drained, 0);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ETIMEDOUT);
    }
    cr_assert_eq(peer_n, 4, "sent, never answered");
    timeout.service.data = &closed;
    cr_assert_eq(ct_service_close(&timeout.service, on_stack_closed), 0);
    H_RUN_UNTIL(closed);
    for (i = 0; i < peer_n; i++)
        tmsg_free(peer_inbox[i], NULL);
    peer_n = 0;
    ct_transport_close(&peer.transport, NULL);
}

/* Responses are delivered from the transport's receive callback, which is a
 * fresh stack: an op's callback may close the client while later responses
 * of the same batch are still being delivered. */
static int closed_from_callback;
static void on_closed_from_callback(ct_service_t *svc) {
    (void)svc;
    closed_from_callback = 1;
}

static void close_in_callback(ct_op_t *op, int status, void *response) {
    rec_op_t *r = CT_CONTAINER_OF(op, rec_op_t, op);
    cr_assert_eq(H.nested, 0);
    r->calls++;
    r->status = status;
    cr_assert_eq(status, 0);
    tmsg_free(response, NULL);
    cr_assert_eq(ct_service_close(&client.service, on_closed_from_callback), 0);
}

Test(pipeline_client, a_response_callback_may_close_the_client) {
    rec_op_t r[3];
    int i;
    setup_client(8, 8);
    closed_from_callback = 0;
    call(&r[0], 1);
    r[0].op.cb = close_in_callback;
    call(&r[1], 2);
    call(&r[2], 3);
    h_turns(2);
    for (i = 0; i < 3; i++)
        peer_answer(i); /* all three arrive in one delivery */
    H_RUN_UNTIL(closed_from_callback);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[0].status, 0);
    for (i = 1; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1, "op %d completed %d times", i, r[i].calls);
        cr_assert_eq(r[i].status, CT_ECLOSED);
    }
    for (i = 0; i < peer_n; i++)
        tmsg_free(peer_inbox[i], NULL);
    ct_transport_close(&peer.transport, NULL);
}

/* ...and may call again: the new request goes out behind the others. */
static int chained;
static void call_again_in_callback(ct_op_t *op, int status, void *response) {
    rec_op_t *r = CT_CONTAINER_OF(op, rec_op_t, op);
    cr_assert_eq(H.nested, 0);
    r->calls++;
    r->status = status;
    r->response_id = tmsg_id(response);
    tmsg_free(response, NULL);
    if (chained++ == 0) {
        cr_assert_eq(h_call(&client.service, tmsg_new(99), op), 0);
    }
}

Test(pipeline_client, a_response_callback_may_call_again) {
    rec_op_t r[2];
    setup_client(8, 8);
    chained = 0;
    call(&r[0], 1);
    r[0].op.cb = call_again_in_callback;
    call(&r[1], 2);
    h_turns(2);
    peer_answer(0);
    peer_answer(1);
    H_RUN_UNTIL(peer_n == 3);
    cr_assert_eq(tmsg_id(peer_inbox[2]), 99u);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].response_id, 2u);
    peer_answer(2);
    H_RUN_UNTIL(r[0].calls == 2);
    cr_assert_eq(r[0].response_id, 99u);
    cr_assert_eq(ct_client_in_flight(&client), 0);
    teardown_client();
}

/* Random calls and cancels against a peer that answers in order, as room in
 * each direction allows: every op completes once, with its own answer or
 * CT_ECANCELED (canceled while queued, or a tombstone whose late answer is
 * dropped), and the ring ends empty. */
enum { RANDOM_OPS = 4000 };
static void *fifo[RANDOM_OPS];
static size_t fifo_head, fifo_n;

static void on_peer_fifo(ct_transport_t *t, int status, void *msg) {
    (void)t;
    if (status == 0) fifo[(fifo_head + fifo_n++) % RANDOM_OPS] = msg;
}

/* The peer answers up to n of the requests it holds, oldest first. */
static void peer_answer_some(unsigned *seed, int n) {
    (void)seed;
    while (n-- > 0 && fifo_n > 0) {
        if (ct_transport_send(&peer.transport, fifo[fifo_head]) != 0) return; /* no room */
        fifo_head = (fifo_head + 1) % RANDOM_OPS;
        fifo_n--;
    }
}

static void random_calls_and_cancels(size_t bound) {
    static rec_op_t r[RANDOM_OPS];
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = bound;
    cfg.free_msg = tmsg_free;
    fifo_head = fifo_n = 0;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &client_end, &peer, 3, tmsg_free, NULL), 0);
    cr_assert_eq(ct_pipeline_client_init(&client, &H.ct, &client_end.transport, &cfg), 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_fifo), 0);
    h_random_calls_and_cancels(&client, r, RANDOM_OPS, bound, peer_answer_some, 12345);
    cr_assert_eq(fifo_n, 0);
    h_close_service(&client.service);
    ct_transport_close(&peer.transport, NULL);
}

Test(pipeline_client, random_calls_and_cancels_keep_answers_in_step) {
    random_calls_and_cancels(8);
}

/* The ring's size is the bound rounded up to a power of two; the bound
 * itself still holds. */
Test(pipeline_client, random_calls_and_cancels_with_a_bound_of_5) {
    random_calls_and_cancels(5);
}
