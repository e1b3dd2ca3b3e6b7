#include "testutil.h"

TestSuite(channel, .init = h_setup, .fini = h_teardown);

typedef struct reader {
    uint64_t ids[64];
    int n;
    int end_status; /* 1 until the stream ends */
    int stop_after;
} reader_t;

static reader_t rd;

static void on_recv(ct_transport_t *t, int status, void *msg) {
    cr_assert_eq(H.nested, 0);
    cr_assert_eq(rd.end_status, 1, "nothing may follow the end of the stream");
    if (status < 0) {
        cr_assert_null(msg);
        rd.end_status = status;
        return;
    }
    rd.ids[rd.n++] = tmsg_id(msg);
    tmsg_free(msg, NULL);
    if (rd.stop_after && rd.n == rd.stop_after) ct_transport_recv_stop(t);
}

static ct_channel_t a, b;

static void pair(size_t cap) {
    memset(&rd, 0, sizeof rd);
    rd.end_status = 1;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &a, &b, cap, tmsg_free, NULL), 0);
}

static void close_both(void) {
    ct_transport_close(&a.transport, NULL);
    ct_transport_close(&b.transport, NULL);
}

Test(channel, rejects_bad_arguments) {
    cr_assert_eq(ct_channel_pair_init(&H.ct, &a, &b, 0, NULL, NULL), CT_EINVAL);
    cr_assert_eq(ct_channel_pair_init(&H.ct, &a, &a, 4, NULL, NULL), CT_EINVAL);
}

Test(channel, delivers_in_order_in_one_batch) {
    int i;
    pair(8);
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_recv), 0);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(ct_transport_send_ready(&a.transport, NULL), CT_READY);
        cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(i)), 0);
    }
    cr_assert_eq(rd.n, 0, "delivery must not happen on the sender's stack");
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(rd.n, 5);
    for (i = 0; i < 5; i++)
        cr_assert_eq(rd.ids[i], (uint64_t)i);
    close_both();
}

static int woken;
static void on_wake(ct_waker_t *w) {
    (void)w;
    cr_assert_eq(H.nested, 0);
    woken++;
}

Test(channel, back_pressure_when_full_and_wake_when_drained) {
    ct_waker_t w;
    tmsg_t *extra = tmsg_new(99);
    pair(2);
    woken = 0;
    ct_waker_init(&w, &H.ct, on_wake);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(0)), 0);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(1)), 0);
    cr_assert_eq(ct_transport_send_ready(&a.transport, &w), CT_PENDING);
    cr_assert_eq(ct_transport_send(&a.transport, extra), UV_EAGAIN);
    h_turns(2);
    cr_assert_eq(woken, 0, "nobody read: no room yet");
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_recv), 0);
    h_turns(2);
    cr_assert_eq(rd.n, 2);
    cr_assert_eq(woken, 1);
    cr_assert_eq(ct_transport_send_ready(&a.transport, &w), CT_READY);
    cr_assert_eq(ct_transport_send(&a.transport, extra), 0);
    h_turns(1);
    cr_assert_eq(rd.n, 3);
    close_both();
}

Test(channel, recv_stop_holds_messages) {
    int i;
    pair(8);
    rd.stop_after = 2;
    for (i = 0; i < 4; i++)
        cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(i)), 0);
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_recv), 0);
    h_turns(3);
    cr_assert_eq(rd.n, 2);
    rd.stop_after = 0;
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_recv), 0);
    h_turns(1);
    cr_assert_eq(rd.n, 4);
    cr_assert_eq(rd.ids[3], 3);
    close_both();
}

static int shut_status = 1;
static void on_shut(ct_transport_t *t, int status) {
    (void)t;
    shut_status = status;
}

Test(channel, shutdown_gives_eof_after_the_messages) {
    pair(4);
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_recv), 0);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(1)), 0);
    cr_assert_eq(ct_transport_shutdown(&a.transport, on_shut), 0);
    cr_assert_eq(ct_transport_shutdown(&a.transport, on_shut), CT_EBUSY);
    {
        tmsg_t *refused = tmsg_new(2);
        cr_assert_eq(ct_transport_send(&a.transport, refused), UV_EPIPE);
        tmsg_free(refused, NULL); /* refused: still ours */
    }
    h_turns(2);
    cr_assert_eq(shut_status, 0);
    cr_assert_eq(rd.n, 1);
    cr_assert_eq(rd.end_status, UV_EOF);
    close_both();
}

Test(channel, closing_one_end_frees_its_undelivered_messages) {
    pair(4);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(1)), 0);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(2)), 0);
    cr_assert_eq(ct_transport_recv_start(&a.transport, on_recv), 0);
    ct_transport_close(&b.transport, NULL); /* b never read them */
    cr_assert_eq(ct_transport_close(&b.transport, NULL), CT_ECLOSING);
    h_turns(2);
    cr_assert_eq(H.live_msgs, 0);
    cr_assert_eq(rd.end_status, UV_EOF, "the peer of a closed end sees EOF");
    {
        tmsg_t *m = tmsg_new(3);
        cr_assert_eq(ct_transport_send_ready(&a.transport, NULL), UV_EPIPE);
        cr_assert_eq(ct_transport_send(&a.transport, m), UV_EPIPE);
        tmsg_free(m, NULL);
    }
    ct_transport_close(&a.transport, NULL);
}

Test(channel, blocked_sender_is_woken_when_the_peer_closes) {
    ct_waker_t w;
    pair(1);
    woken = 0;
    ct_waker_init(&w, &H.ct, on_wake);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(1)), 0);
    cr_assert_eq(ct_transport_send_ready(&a.transport, &w), CT_PENDING);
    ct_transport_close(&b.transport, NULL);
    h_turns(1);
    cr_assert_eq(woken, 1);
    cr_assert_eq(ct_transport_send_ready(&a.transport, &w), UV_EPIPE);
    ct_transport_close(&a.transport, NULL);
}

Test(channel, injected_faults) {
    tmsg_t *m = tmsg_new(5);
    pair(4);
    cr_assert_eq(ct_transport_recv_start(&b.transport, on_recv), 0);
    cr_assert_eq(ct_transport_send(&a.transport, tmsg_new(1)), 0);
    ct_channel_fail_recv(&b, UV_ECONNRESET);
    h_turns(2);
    cr_assert_eq(rd.n, 1, "messages before the fault still arrive");
    cr_assert_eq(rd.end_status, UV_ECONNRESET);
    ct_channel_fail_send(&a, UV_ECONNRESET);
    cr_assert_eq(ct_transport_send_ready(&a.transport, NULL), UV_ECONNRESET);
    cr_assert_eq(ct_transport_send(&a.transport, m), UV_ECONNRESET);
    tmsg_free(m, NULL);
    close_both();
}
