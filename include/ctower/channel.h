/* ct_channel_t: an in-memory transport pair, the reference transport.
 *
 * Two channels joined back to back: what one sends, the other receives, in
 * order. Each direction holds at most `capacity` messages in flight; a sender
 * facing a full direction gets CT_PENDING from ct_transport_send_ready() and
 * is woken when the receiver takes messages. Messages are pointers: the
 * channel never copies or inspects them.
 *
 * Closing one end (or shutting down its write side) makes the other end
 * receive UV_EOF after the messages already sent; sending to a closed end
 * fails with UV_EPIPE. ct_channel_fail_send(), ct_channel_fail_recv() and
 * ct_channel_refuse_next() inject faults, so that tests can provoke every
 * transport error.
 */
#ifndef CTOWER_CHANNEL_H
#define CTOWER_CHANNEL_H

#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One end of an in-memory transport pair; its peer is the other end. */
typedef struct ct_channel {
    ct_transport_t transport; /* first: a ct_channel_t * is a ct_transport_t * */
    /* private */
    struct ct_channel *peer;
    void **ring; /* messages the peer sent to us */
    size_t cap;
    size_t head;
    size_t count;
    ct_msg_free_fn free_msg;
    void *free_ctx;
    int reading;
    int ended;       /* the final EOF or error was delivered */
    int peer_eof;    /* the peer closed its write side */
    int recv_error;  /* injected: delivered after the queued messages */
    int send_error;  /* injected: every send fails with it */
    int refuse_next; /* injected: the next message is refused with it */
    int write_shut;
    ct_task_t deliver_task;
    ct_waitq_t send_waiters; /* our senders, waiting for room at the peer */
} ct_channel_t;

/* Joins a and b on loop, each direction holding up to capacity messages
 * (at least 1). free_msg (may be NULL) frees messages left undelivered when
 * an end closes. Returns 0, CT_EINVAL or UV_ENOMEM. */
int ct_channel_pair_init(ct_loop_t *loop, ct_channel_t *a, ct_channel_t *b, size_t capacity,
                         ct_msg_free_fn free_msg, void *free_ctx);

/* Makes every later send (and send_ready) on ch fail with err. */
void ct_channel_fail_send(ct_channel_t *ch, int err);

/* Refuses the next message sent on ch with err (CT_EFRAMETOOLARGE or
 * CT_EINVAL), as a stream's codec refuses one it cannot encode; the message
 * stays the sender's and the channel goes on. Returns CT_EINVAL for another
 * err. */
int ct_channel_refuse_next(ct_channel_t *ch, int err);

/* Ends ch's receive side with err, after the messages already queued. */
void ct_channel_fail_recv(ct_channel_t *ch, int err);

#ifdef __cplusplus
}
#endif
#endif
