/* The in-memory channel pair: two bounded rings, one per direction. Sends go
 * straight into the peer's ring; the peer's deliveries run as one deferred
 * task per turn, so every message sent in a turn arrives in one batch. */
#include "ctower/channel.h"
#include "ctower/error.h"
#include "../core/ring.h"

#include <stdlib.h>

static void deliver(ct_task_t *task);

static int send_state(ct_channel_t *ch) {
    if (ch->send_error) return ch->send_error;
    if (ch->write_shut || !ch->peer) return UV_EPIPE;
    return 0;
}

static void schedule_delivery(ct_channel_t *ch) {
    if (ch->reading && !ch->ended) ct_task_post(ch->transport.loop, &ch->deliver_task);
}

static int ch_send_ready(ct_transport_t *t, ct_waker_t *waker) {
    ct_channel_t *ch = (ct_channel_t *)t;
    int r = send_state(ch);
    if (r) return r;
    if (ch->peer->count < ch->peer->cap) return CT_READY;
    if (waker) ct_waitq_add(&ch->send_waiters, waker);
    return CT_PENDING;
}

static int ch_send(ct_transport_t *t, void *msg) {
    ct_channel_t *ch = (ct_channel_t *)t;
    ct_channel_t *peer = ch->peer;
    int r = send_state(ch);
    if (r) return r;
    if (peer->count == peer->cap) return UV_EAGAIN;
    if (ch->refuse_next) {
        r = ch->refuse_next;
        ch->refuse_next = 0;
        return r;
    }
    peer->ring[ct_ring_pos(peer->head, peer->count, peer->cap)] = msg;
    peer->count++;
    schedule_delivery(peer);
    return 0;
}

static int ch_recv_start(ct_transport_t *t) {
    ct_channel_t *ch = (ct_channel_t *)t;
    ch->reading = 1;
    schedule_delivery(ch);
    return 0;
}

static int ch_recv_stop(ct_transport_t *t) {
    ct_channel_t *ch = (ct_channel_t *)t;
    ch->reading = 0;
    ct_task_cancel(&ch->deliver_task);
    return 0;
}

static void deliver_end(ct_channel_t *ch) {
    int status = ch->recv_error ? ch->recv_error : UV_EOF;
    ch->ended = 1;
    ch->reading = 0;
    ct_transport_deliver(&ch->transport, status, NULL);
}

static void deliver(ct_task_t *task) {
    ct_channel_t *ch = CT_CONTAINER_OF(task, ct_channel_t, deliver_task);
    int consumed = 0;
    while (ch->reading && ch->count > 0) {
        void *msg = ch->ring[ch->head];
        ch->head = ct_ring_pos(ch->head, 1, ch->cap);
        ch->count--;
        consumed = 1;
        ct_transport_deliver(&ch->transport, 0, msg);
        if (ct_transport_is_closing(&ch->transport)) return;
    }
    if (consumed && ch->peer) ct_waitq_wake_all(&ch->peer->send_waiters);
    if (ch->reading && ch->count == 0 && !ch->ended && (ch->recv_error || ch->peer_eof))
        deliver_end(ch);
}

static void peer_write_closed(ct_channel_t *ch) {
    ch->peer_eof = 1;
    schedule_delivery(ch);
}

static int ch_shutdown(ct_transport_t *t) {
    ct_channel_t *ch = (ct_channel_t *)t;
    ch->write_shut = 1;
    if (ch->peer) peer_write_closed(ch->peer);
    ct_transport_shutdown_done(t, 0);
    return 0;
}

static void ch_close(ct_transport_t *t) {
    ct_channel_t *ch = (ct_channel_t *)t;
    ct_channel_t *peer = ch->peer;
    ct_task_cancel(&ch->deliver_task);
    ct_waitq_init(&ch->send_waiters); /* dropped: their owners close with us */
    if (peer) {
        peer->peer = NULL;
        peer_write_closed(peer);
        /* The peer's blocked senders must learn that nobody will read. */
        ct_waitq_wake_all(&peer->send_waiters);
        ch->peer = NULL;
    }
    while (ch->count > 0) {
        void *msg = ch->ring[ch->head];
        ch->head = ct_ring_pos(ch->head, 1, ch->cap);
        ch->count--;
        if (ch->free_msg) ch->free_msg(msg, ch->free_ctx);
    }
    free(ch->ring);
    ch->ring = NULL;
    ct_transport_closed(t);
}

static const ct_transport_vtable_t channel_vtable = {
    ch_send_ready, ch_send, ch_recv_start, ch_recv_stop, ch_shutdown, ch_close,
};

static int channel_init(ct_loop_t *loop, ct_channel_t *ch, size_t capacity, ct_msg_free_fn free_msg,
                        void *free_ctx) {
    ct_transport_init(&ch->transport, loop, &channel_vtable);
    ch->ring = calloc(capacity, sizeof *ch->ring);
    if (!ch->ring) return UV_ENOMEM;
    ch->cap = capacity;
    ch->head = 0;
    ch->count = 0;
    ch->free_msg = free_msg;
    ch->free_ctx = free_ctx;
    ch->reading = 0;
    ch->ended = 0;
    ch->peer_eof = 0;
    ch->recv_error = 0;
    ch->send_error = 0;
    ch->refuse_next = 0;
    ch->write_shut = 0;
    ct_task_init(&ch->deliver_task, deliver);
    ct_waitq_init(&ch->send_waiters);
    return 0;
}

int ct_channel_pair_init(ct_loop_t *loop, ct_channel_t *a, ct_channel_t *b, size_t capacity,
                         ct_msg_free_fn free_msg, void *free_ctx) {
    int r;
    if (!loop || !a || !b || a == b || capacity == 0) return CT_EINVAL;
    if ((r = channel_init(loop, a, capacity, free_msg, free_ctx)) != 0) return r;
    if ((r = channel_init(loop, b, capacity, free_msg, free_ctx)) != 0) {
        free(a->ring);
        return r;
    }
    a->peer = b;
    b->peer = a;
    return 0;
}

void ct_channel_fail_send(ct_channel_t *ch, int err) {
    ch->send_error = err;
    ct_waitq_wake_all(&ch->send_waiters);
}

int ct_channel_refuse_next(ct_channel_t *ch, int err) {
    if (!ct_transport_refused_msg(err)) return CT_EINVAL;
    ch->refuse_next = err;
    return 0;
}

void ct_channel_fail_recv(ct_channel_t *ch, int err) {
    ch->recv_error = err;
    schedule_delivery(ch);
}
