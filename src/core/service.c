/* The generic half of the service contract: op states, closing, shutdown. */
#include "ctower/service.h"
#include "ctower/context.h"
#include "ctower/error.h"

#include <assert.h>

/* OP_CALLING: inside the call that started it; OP_INLINE: finished inside
 * that call, callback not yet queued (the call decides: queue it, or hand the
 * result straight back to a caller that asked for that). */
enum { OP_IDLE = 0, OP_PENDING = 1, OP_DELIVERING = 2, OP_CALLING = 3, OP_INLINE = 4 };
enum { SVC_CLOSING = 1, SVC_SHUTTING = 2, SVC_SHUTDOWN_REPORTED = 4 };

static void deliver_op(ct_task_t *task) {
    ct_op_t *op = CT_CONTAINER_OF(task, ct_op_t, task);
    op->state = OP_IDLE; /* reusable from inside its own callback */
    op->cb(op, op->status, op->response);
}

void ct_op_init(ct_op_t *op, ct_op_cb cb) {
    op->data = NULL;
    op->cb = cb;
    op->status = 0;
    op->cause = 0;
    op->response = NULL;
    op->ctx = NULL;
    op->svc = NULL;
    op->state = OP_IDLE;
    op->slot = 0;
    ct_task_init(&op->task, deliver_op);
}

int ct_op_is_pending(const ct_op_t *op) {
    return op->state != OP_IDLE;
}

void ct_op_cancel(ct_op_t *op) {
    if (op->state != OP_PENDING) return;
    op->svc->vtable->cancel(op->svc, op);
    assert(op->state != OP_PENDING && "a service's cancel must complete the op");
}

static void set_result(ct_op_t *op, int status, int cause, void *response) {
    op->status = status;
    op->cause = cause;
    op->response = response;
}

void ct_op_complete(ct_op_t *op, int status, int cause, void *response) {
    assert((op->state == OP_PENDING || op->state == OP_CALLING) && "op completed twice");
    set_result(op, status, cause, response);
    if (op->state == OP_CALLING) { /* the call that is still running decides */
        op->state = OP_INLINE;
        return;
    }
    op->state = OP_DELIVERING;
    ct_task_post(op->svc->loop, &op->task);
}

void ct_op_complete_now(ct_op_t *op, int status, int cause, void *response) {
    assert(op->state == OP_PENDING && "op completed twice, or from inside its call");
    set_result(op, status, cause, response);
    op->state = OP_IDLE; /* reusable from inside its own callback */
    op->cb(op, status, response);
}

static void run_close_cb(ct_task_t *task) {
    ct_service_t *svc = CT_CONTAINER_OF(task, ct_service_t, close_task);
    if (svc->close_cb) svc->close_cb(svc);
}

static void run_shutdown_cb(ct_task_t *task) {
    ct_service_t *svc = CT_CONTAINER_OF(task, ct_service_t, shutdown_task);
    if (svc->shutdown_cb) svc->shutdown_cb(svc, svc->shutdown_status);
}

void ct_service_init(ct_service_t *svc, ct_loop_t *loop, const ct_service_vtable_t *vtable) {
    svc->vtable = vtable;
    svc->loop = loop;
    svc->data = NULL;
    svc->owner = NULL;
    svc->flags = 0;
    svc->shutdown_status = 0;
    svc->close_cb = NULL;
    svc->shutdown_cb = NULL;
    ct_task_init(&svc->close_task, run_close_cb);
    ct_task_init(&svc->shutdown_task, run_shutdown_cb);
}

/* Why a closing or draining service takes no more calls. Any flag means one
 * of the two (SVC_SHUTDOWN_REPORTED comes only after SVC_SHUTTING), so the
 * hot paths test the flags once. */
static int refusal(const ct_service_t *svc) {
    return svc->flags & SVC_CLOSING ? CT_ECLOSING : CT_ESHUTDOWN;
}

/* The outer start_call() has checked the op and its deadline, and goes on
 * from what this leaves: the op still CALLING (or INLINE, answered at
 * once), now the inner service's, so that it completes and is canceled
 * there. */
int ct_service_forward(ct_service_t *to, void *request, ct_op_t *op) {
    assert(op->state == OP_CALLING && "forwarded from outside a call");
    if (to->flags) return refusal(to);
    op->svc = to;
    return to->vtable->call(to, request, op);
}

int ct_service_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    if (svc->flags) return refusal(svc);
    return svc->vtable->poll_ready(svc, waker);
}

/* Runs the service's call with op marked as inside it; on return op is
 * OP_PENDING, OP_INLINE (finished inside the call) or, after an error,
 * OP_IDLE. */
static int start_call(ct_service_t *svc, void *request, ct_op_t *op) {
    int r;
    if (op->state != OP_IDLE) return CT_EBUSY;
    if (svc->flags) return refusal(svc);
    /* no layer, client or attempt starts a call its caller gave up on */
    if (op->ctx && ct_context_expired(op->ctx, uv_now(svc->loop->uv))) return CT_ETIMEDOUT;
    op->svc = svc; /* the result fields are set when it completes */
    op->state = OP_CALLING;
    r = svc->vtable->call(svc, request, op);
    if (r < 0) {
        assert(op->state == OP_CALLING && "call failed but completed the op");
        op->state = OP_IDLE;
    } else if (op->state == OP_CALLING) {
        op->state = OP_PENDING;
    }
    return r;
}

int ct_service_call(ct_service_t *svc, void *request, ct_op_t *op) {
    int r = start_call(svc, request, op);
    if (r >= 0 && op->state == OP_INLINE) { /* its callback still runs later */
        op->state = OP_DELIVERING;
        ct_task_post(svc->loop, &op->task);
    }
    return r < 0 ? r : 0;
}

int ct_service_call_sync(ct_service_t *svc, void *request, int *status, void **response) {
    if (svc->flags || !svc->vtable->call_sync) return 0; /* call_inline says why */
    return svc->vtable->call_sync(svc, request, status, response);
}

int ct_service_call_inline(ct_service_t *svc, void *request, ct_op_t *op) {
    int r = start_call(svc, request, op);
    if (r < 0) return r;
    if (op->state != OP_INLINE) return 0;
    op->state = OP_IDLE;
    return 1;
}

void ct_service_release(ct_service_t *svc) {
    if (svc->vtable->release && !(svc->flags & SVC_CLOSING)) svc->vtable->release(svc);
}

int ct_service_shutdown(ct_service_t *svc, ct_shutdown_cb cb) {
    int r;
    if (svc->flags & SVC_CLOSING) return CT_ECLOSING;
    if (svc->flags & SVC_SHUTTING) return CT_EBUSY;
    if (!svc->vtable->shutdown) return CT_ENOTSUP;
    svc->flags |= SVC_SHUTTING;
    svc->shutdown_cb = cb;
    r = svc->vtable->shutdown(svc);
    if (r < 0 && !(svc->flags & SVC_SHUTDOWN_REPORTED)) {
        /* refused (a layer whose inner service cannot drain, say): nothing
         * started, so no callback, and calls are taken as before */
        svc->flags &= ~SVC_SHUTTING;
        svc->shutdown_cb = NULL;
    }
    return r;
}

void ct_service_shutdown_done(ct_service_t *svc, int status) {
    if (!(svc->flags & SVC_SHUTTING) || (svc->flags & SVC_SHUTDOWN_REPORTED)) return;
    svc->flags |= SVC_SHUTDOWN_REPORTED;
    svc->shutdown_status = status;
    ct_task_post(svc->loop, &svc->shutdown_task);
}

void ct_service_shutdown_done_owner(ct_service_t *inner, int status) {
    ct_service_shutdown_done((ct_service_t *)inner->owner, status);
}

void ct_service_shutdown_inner_later(ct_service_t *svc, ct_service_t *inner) {
    int r = ct_service_shutdown(inner, ct_service_shutdown_done_owner);
    if (r < 0) ct_service_shutdown_done(svc, r);
}

int ct_service_close(ct_service_t *svc, ct_close_cb cb) {
    if (svc->flags & SVC_CLOSING) return CT_ECLOSING;
    svc->flags |= SVC_CLOSING;
    svc->close_cb = cb;
    /* A drain that close cuts short still reports, and before the close
     * callback: after that one the memory may be gone. */
    ct_service_shutdown_done(svc, CT_ECANCELED);
    svc->vtable->close(svc);
    return 0;
}

int ct_service_is_closing(const ct_service_t *svc) {
    return (svc->flags & SVC_CLOSING) != 0;
}

void ct_service_closed(ct_service_t *svc) {
    ct_task_post(svc->loop, &svc->close_task);
}

int ct_service_is_shutting_down(const ct_service_t *svc) {
    return (svc->flags & SVC_SHUTTING) != 0;
}
