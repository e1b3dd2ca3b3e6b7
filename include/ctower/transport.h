/* ct_transport_t: a framed, bidirectional message pipe (a Sink + Stream).
 *
 * Send side: ct_transport_send_ready() (back-pressure), ct_transport_send()
 * (one message; ownership moves to the transport), ct_transport_shutdown()
 * (close the write side once everything queued is out). A transport flushes
 * by itself, at the latest once per loop turn: every message sent during a
 * turn leaves in one batch (a stream writes sooner, at the end of the read
 * that made them), so there is no flush call to forget.
 *
 * Receive side: ct_transport_recv_start() delivers decoded messages to a
 * callback until ct_transport_recv_stop() (which is how a reader applies
 * back-pressure). The stream ends with one callback carrying UV_EOF (the peer
 * closed its write side) or an error; nothing follows it.
 *
 * Every callback runs from a fresh stack (a deferred task or a libuv
 * callback), never from inside the call that caused it.
 */
#ifndef CTOWER_TRANSPORT_H
#define CTOWER_TRANSPORT_H

#include "ctower/loop.h"
#include "ctower/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_transport ct_transport_t;

/* Frees a message that a component owns but can no longer deliver. */
typedef void (*ct_msg_free_fn)(void *msg, void *ctx);

/* A copy of msg that the caller owns, or NULL without memory (for layers
 * that send a request more than once: retry, hedge). */
typedef void *(*ct_msg_copy_fn)(const void *msg, void *ctx);

/* status 0: msg is a message, now owned by the callback. UV_EOF: the peer
 * closed its write side. Other negative: the receive side broke. msg is NULL
 * unless status is 0. */
typedef void (*ct_recv_cb)(ct_transport_t *t, int status, void *msg);
typedef void (*ct_transport_shutdown_cb)(ct_transport_t *t, int status);
typedef void (*ct_transport_close_cb)(ct_transport_t *t);

/* What a transport implements. */
typedef struct ct_transport_vtable {
    int (*send_ready)(ct_transport_t *t, ct_waker_t *waker); /* ct_transport_send_ready() */
    int (*send)(ct_transport_t *t, void *msg);               /* ct_transport_send() */
    int (*recv_start)(ct_transport_t *t);                    /* ct_transport_recv_start() */
    int (*recv_stop)(ct_transport_t *t);                     /* ct_transport_recv_stop() */
    /* Calls ct_transport_shutdown_done() once the write side is closed. */
    int (*shutdown)(ct_transport_t *t);
    /* Frees what the transport holds, then calls ct_transport_closed(). */
    void (*close)(ct_transport_t *t);
} ct_transport_vtable_t;

/* A framed message pipe: the vtable, its loop, its owner. */
struct ct_transport {
    const ct_transport_vtable_t *vtable; /* the implementation's operations */
    ct_loop_t *loop;                     /* the loop it belongs to */
    void *data;                          /* for the user */
    /* Requests in flight at most that the protocol on this transport can
     * keep track of (0: no bound; a stream takes its codec's max_pending).
     * Clients and servers keep their in-flight bound within it. */
    size_t max_in_flight;
    /* private */
    void *owner; /* the client or server that drives this transport */
    ct_recv_cb recv_cb;
    ct_transport_shutdown_cb shutdown_cb;
    ct_transport_close_cb close_cb;
    int flags;
    int shutdown_status;
    ct_task_t shutdown_task;
    ct_task_t close_task;
};

/* CT_READY if a message can be sent now, CT_PENDING (waker kept, woken when
 * there may be room), or a negative error: the send side is broken. */
int ct_transport_send_ready(ct_transport_t *t, ct_waker_t *waker);

/* Sends msg. 0: the transport owns msg. UV_EAGAIN: no room (send_ready was
 * not READY); msg is still the caller's. CT_EFRAMETOOLARGE or CT_EINVAL: this
 * message cannot be encoded (too large, or not expressible by the codec); msg
 * is still the caller's and the transport goes on (see
 * ct_transport_refused_msg). Other negative: the send side is broken; msg is
 * still the caller's. */
int ct_transport_send(ct_transport_t *t, void *msg);

/* Non-zero if a send error concerns that one message only, which the codec
 * cannot encode: the transport still works. */
int ct_transport_refused_msg(int status);

/* Starts delivering received messages to cb. */
int ct_transport_recv_start(ct_transport_t *t, ct_recv_cb cb);

/* Stops delivery; messages wait in the transport (and, for a bounded
 * transport, the peer eventually sees back-pressure). */
int ct_transport_recv_stop(ct_transport_t *t);

/* Closes the write side after every message sent so far; cb gets 0 or the
 * error that prevented it. */
int ct_transport_shutdown(ct_transport_t *t, ct_transport_shutdown_cb cb);

/* Closes t: unsent and undelivered messages are freed, pending wakers are
 * dropped, then cb (may be NULL) runs and the memory may be reclaimed.
 * Closing twice returns CT_ECLOSING. */
int ct_transport_close(ct_transport_t *t, ct_transport_close_cb cb);

/* Non-zero once ct_transport_close() was called. */
int ct_transport_is_closing(const ct_transport_t *t);

/* For implementers: initializes the generic part of a transport. */
void ct_transport_init(ct_transport_t *t, ct_loop_t *loop, const ct_transport_vtable_t *vtable);

/* For implementers: delivers one receive event to the reader's callback. */
void ct_transport_deliver(ct_transport_t *t, int status, void *msg);

/* For implementers: the shutdown started by vtable->shutdown is done. */
void ct_transport_shutdown_done(ct_transport_t *t, int status);

/* For implementers: the close started by vtable->close is done. */
void ct_transport_closed(ct_transport_t *t);

#ifdef __cplusplus
}
#endif
#endif
