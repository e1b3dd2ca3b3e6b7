/* ct_service_t: an asynchronous function from a request to a response, with
 * explicit readiness (back-pressure).
 *
 * The contract, which every middleware and protocol client keeps:
 *
 *  - ct_service_poll_ready() answers CT_READY, CT_PENDING (the waker is kept
 *    and woken when readiness may have changed) or a negative error (the
 *    service is dead). A READY may reserve capacity for the next call;
 *    ct_service_release() hands back a reservation that will not be used.
 *  - ct_service_call() starts a request. The request's ownership moves to the
 *    service. The op completes exactly once, with a response (whose ownership
 *    moves to the caller) or an error. Calling without a READY is allowed: a
 *    service at capacity completes the op with CT_EOVERLOADED. If call returns
 *    an error, nothing started, no callback will run and the request still
 *    belongs to the caller.
 *  - ct_op_cancel() drops an op (see op.h).
 *  - ct_service_shutdown() drains gracefully: no new calls, every op in flight
 *    finishes normally. ct_service_close() is like uv_close(): every op still
 *    in flight completes with an error first, then the close callback runs,
 *    after which the memory may be reclaimed.
 */
#ifndef CTOWER_SERVICE_H
#define CTOWER_SERVICE_H

#include "ctower/loop.h"
#include "ctower/op.h"
#include "ctower/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_service ct_service_t;
/* What ct_service_close() calls back, after which svc's memory may go. */
typedef void (*ct_close_cb)(ct_service_t *svc);
/* What ct_service_shutdown() calls back, once drained (or why not). */
typedef void (*ct_shutdown_cb)(ct_service_t *svc, int status);

/* What a service implements. Every entry is called only through the
 * ct_service_* functions below, which check the generic rules (op reuse,
 * closing) first. */
typedef struct ct_service_vtable {
    /* As ct_service_poll_ready(). */
    int (*poll_ready)(ct_service_t *svc, ct_waker_t *waker);
    /* As ct_service_call(), op already marked as inside the call. */
    int (*call)(ct_service_t *svc, void *request, ct_op_t *op);
    /* Must complete op with CT_ECANCELED (ct_op_complete) before returning. */
    void (*cancel)(ct_service_t *svc, ct_op_t *op);
    /* May be NULL if readiness never reserves anything. */
    void (*release)(ct_service_t *svc);
    /* May be NULL (then ct_service_shutdown returns CT_ENOTSUP). Calls
     * ct_service_shutdown_done() when drained. */
    int (*shutdown)(ct_service_t *svc);
    /* Completes every pending op with an error, releases resources, then calls
     * ct_service_closed() (now or later). */
    void (*close)(ct_service_t *svc);
    /* May be NULL. For a service that can answer a request at once, without
     * an op: returns 1 when it took the request and answered it (*status 0
     * and *response, or *status a negative error and *response NULL), or 0
     * when it did not take it (the request is still the caller's, who then
     * uses call). The same rules as call otherwise (after a READY). */
    int (*call_sync)(ct_service_t *svc, void *request, int *status, void **response);
} ct_service_vtable_t;

/* A service: the vtable, its loop, and what the generic rules keep. */
struct ct_service {
    const ct_service_vtable_t *vtable; /* the implementation's operations */
    ct_loop_t *loop;                   /* the loop it belongs to */
    void *data;                        /* for the user */
    /* private */
    void *owner; /* the layer that wraps this service, if any */
    int flags;
    int shutdown_status;
    ct_close_cb close_cb;
    ct_shutdown_cb shutdown_cb;
    ct_task_t close_task;
    ct_task_t shutdown_task;
};

/* Asks whether svc can take a call: CT_READY, CT_PENDING (waker registered;
 * it is woken once readiness may have changed), or a negative error. */
int ct_service_poll_ready(ct_service_t *svc, ct_waker_t *waker);

/* Starts request on svc, completing op later. Returns 0, or a negative error
 * if nothing started: CT_EBUSY (op still pending), CT_ECLOSING, CT_ETIMEDOUT
 * (op->ctx's deadline has passed, context.h), or the service's own reason (a
 * dead client returns the error that killed it). */
int ct_service_call(ct_service_t *svc, void *request, ct_op_t *op);

/* Like ct_service_call(), for a caller that can take a result at once (a
 * protocol server, a middleware): if the service finishes op inside the call,
 * returns 1 with op->status, op->cause and op->response set, and op's callback
 * will not run. Otherwise as ct_service_call(): 0 (the callback will run) or
 * a negative error (nothing started). This saves a trip through the loop's
 * completion queue per request when the service answers synchronously. */
int ct_service_call_inline(ct_service_t *svc, void *request, ct_op_t *op);

/* For a caller that can take a result at once and has no use for an op (a
 * protocol server answering in order): if svc answers request synchronously
 * (vtable call_sync, e.g. a ct_service_fn_t), returns 1 with *status and
 * *response as an op would complete (the request was the service's); returns
 * 0 if it does not (a service without call_sync, or one that is closing or
 * shutting down): nothing happened, the request is still the caller's, who
 * then uses ct_service_call_inline(). Saves the op's state machine on the
 * hottest path of a server whose service is a plain function. */
int ct_service_call_sync(ct_service_t *svc, void *request, int *status, void **response);

/* Hands back the capacity that a READY reserved and no call used. */
void ct_service_release(ct_service_t *svc);

/* Starts a graceful shutdown: calls are refused with CT_ESHUTDOWN, the ops in
 * flight finish normally, then cb runs with 0 (or the error that cut the
 * drain short). The service must still be closed afterwards. */
int ct_service_shutdown(ct_service_t *svc, ct_shutdown_cb cb);

/* Closes svc: every pending op completes with an error, a pending shutdown's
 * callback gets CT_ECANCELED, then cb (may be NULL) runs. Closing twice
 * returns CT_ECLOSING. */
int ct_service_close(ct_service_t *svc, ct_close_cb cb);

/* Non-zero once ct_service_close() was called. */
int ct_service_is_closing(const ct_service_t *svc);

/* Non-zero once ct_service_shutdown() was accepted. */
int ct_service_is_shutting_down(const ct_service_t *svc);

/* For implementers of a service whose call hands its caller's op, as it
 * is, to another service on the same loop (a front for a stack of
 * layers): from inside its vtable call, starts request on to with op, so
 * that op completes (and is canceled) there. Returns what
 * ct_service_call() would; on error nothing started and the outer call
 * returns the error. */
int ct_service_forward(ct_service_t *to, void *request, ct_op_t *op);

/* For implementers: initializes the generic part of a service. */
void ct_service_init(ct_service_t *svc, ct_loop_t *loop, const ct_service_vtable_t *vtable);

/* For implementers: the close started by vtable->close is done. */
void ct_service_closed(ct_service_t *svc);

/* For implementers: the shutdown started by vtable->shutdown is done. */
void ct_service_shutdown_done(ct_service_t *svc, int status);

/* For implementers of a layer over one inner service (whose owner field is
 * the layer): a ct_shutdown_cb that reports inner's shutdown as the
 * layer's, so that a layer forwards a drain with
 * ct_service_shutdown(inner, ct_service_shutdown_done_owner). */
void ct_service_shutdown_done_owner(ct_service_t *inner, int status);

/* For implementers of such a layer that drains its own calls first (its
 * vtable->shutdown returned 0 and waited): now that they are done, shuts
 * inner down on the layer's behalf; the layer's shutdown is done when
 * inner's is, or at once with inner's error if inner refuses. */
void ct_service_shutdown_inner_later(ct_service_t *svc, ct_service_t *inner);

#ifdef __cplusplus
}
#endif
#endif
