/* ct_op_t: one asynchronous operation (a future) and its completion.
 *
 * The caller allocates the op, usually inside its own per-request struct, and
 * passes it to ct_service_call(). The service completes it exactly once, with
 * a response or an error; the callback runs from a fresh stack (never from
 * inside the call that started it), after which the op may be reused.
 */
#ifndef CTOWER_OP_H
#define CTOWER_OP_H

#include <stddef.h>

#include "ctower/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_op ct_op_t;
struct ct_service;
struct ct_context;

/* status is 0 with a response (whose ownership moves to the callback), or a
 * negative error code with response NULL. op->cause tells the underlying
 * error when status is a transport kind (CT_ESENDBROKEN, CT_ERECVBROKEN). */
typedef void (*ct_op_cb)(ct_op_t *op, int status, void *response);

/* One asynchronous call and its completion: the caller's, embedded in its own struct. */
struct ct_op {
    void *data;  /* for the user */
    ct_op_cb cb; /* the completion callback */
    /* The call's context (context.h): its deadline, trace and attempt; NULL
     * (ct_op_init's) for none. Set by the caller before ct_service_call();
     * it must stay unchanged until the op completes. */
    const struct ct_context *ctx;
    /* read-only, valid in and after the callback */
    int status;
    int cause;
    void *response;
    /* private; what every request touches comes first, so that with the
     * public fields it fits one cache line; the task only queues callbacks */
    int state;
    struct ct_service *svc;
    size_t slot; /* the provider's bookkeeping */
    ct_task_t task;
};

/* Initializes op with its completion callback. */
void ct_op_init(ct_op_t *op, ct_op_cb cb);

/* Non-zero from ct_service_call() until the op's callback starts. */
int ct_op_is_pending(const ct_op_t *op);

/* Cancels a pending op: the C form of dropping a future. After it returns, the
 * callback has already run, or will run once with CT_ECANCELED; the service
 * releases what the op held (its slot, its tag) and discards a late response.
 * If the op had already completed and only its callback was still queued, the
 * callback runs with that result. Does nothing on an op that is not pending. */
void ct_op_cancel(ct_op_t *op);

/* For service implementers: completes op. The callback is queued on the
 * service's loop and runs from a fresh stack before the loop next blocks;
 * inside the call that started op, the caller may take the result instead
 * (ct_service_call_inline). cause is the underlying error (0 if none). */
void ct_op_complete(ct_op_t *op, int status, int cause, void *response);

/* For service implementers: completes op and runs its callback now, without
 * the queue. Only from a stack on which no caller of the service can be: a
 * transport's receive callback or a libuv callback, never from inside call,
 * cancel, shutdown or close. The service's state must be consistent first:
 * the callback may call, cancel or close. */
void ct_op_complete_now(ct_op_t *op, int status, int cause, void *response);

#ifdef __cplusplus
}
#endif
#endif
