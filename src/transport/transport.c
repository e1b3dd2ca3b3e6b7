/* The generic half of the transport contract: closing and shutdown rules. */
#include "ctower/transport.h"
#include "ctower/error.h"

enum { T_CLOSING = 1, T_SHUTTING = 2 };

static void run_shutdown_cb(ct_task_t *task) {
    ct_transport_t *t = CT_CONTAINER_OF(task, ct_transport_t, shutdown_task);
    if (t->shutdown_cb) t->shutdown_cb(t, t->shutdown_status);
}

static void run_close_cb(ct_task_t *task) {
    ct_transport_t *t = CT_CONTAINER_OF(task, ct_transport_t, close_task);
    if (t->close_cb) t->close_cb(t);
}

void ct_transport_init(ct_transport_t *t, ct_loop_t *loop, const ct_transport_vtable_t *vtable) {
    t->vtable = vtable;
    t->loop = loop;
    t->data = NULL;
    t->max_in_flight = 0;
    t->owner = NULL;
    t->recv_cb = NULL;
    t->shutdown_cb = NULL;
    t->close_cb = NULL;
    t->flags = 0;
    t->shutdown_status = 0;
    ct_task_init(&t->shutdown_task, run_shutdown_cb);
    ct_task_init(&t->close_task, run_close_cb);
}

int ct_transport_send_ready(ct_transport_t *t, ct_waker_t *waker) {
    if (t->flags & T_CLOSING) return CT_ECLOSING;
    return t->vtable->send_ready(t, waker);
}

int ct_transport_send(ct_transport_t *t, void *msg) {
    if (t->flags & T_CLOSING) return CT_ECLOSING;
    return t->vtable->send(t, msg);
}

int ct_transport_refused_msg(int status) {
    return status == CT_EFRAMETOOLARGE || status == CT_EINVAL;
}

int ct_transport_recv_start(ct_transport_t *t, ct_recv_cb cb) {
    if (t->flags & T_CLOSING) return CT_ECLOSING;
    if (!cb) return CT_EINVAL;
    t->recv_cb = cb;
    return t->vtable->recv_start(t);
}

int ct_transport_recv_stop(ct_transport_t *t) {
    if (t->flags & T_CLOSING) return 0;
    return t->vtable->recv_stop(t);
}

int ct_transport_shutdown(ct_transport_t *t, ct_transport_shutdown_cb cb) {
    if (t->flags & T_CLOSING) return CT_ECLOSING;
    if (t->flags & T_SHUTTING) return CT_EBUSY;
    t->flags |= T_SHUTTING;
    t->shutdown_cb = cb;
    return t->vtable->shutdown(t);
}

int ct_transport_close(ct_transport_t *t, ct_transport_close_cb cb) {
    if (t->flags & T_CLOSING) return CT_ECLOSING;
    t->flags |= T_CLOSING;
    t->close_cb = cb;
    t->vtable->close(t);
    return 0;
}

int ct_transport_is_closing(const ct_transport_t *t) {
    return (t->flags & T_CLOSING) != 0;
}

void ct_transport_deliver(ct_transport_t *t, int status, void *msg) {
    t->recv_cb(t, status, msg);
}

void ct_transport_shutdown_done(ct_transport_t *t, int status) {
    t->shutdown_status = status;
    ct_task_post(t->loop, &t->shutdown_task);
}

void ct_transport_closed(ct_transport_t *t) {
    /* A shutdown callback still queued runs first: the close callback may
     * free the memory. */
    ct_task_post(t->loop, &t->close_task);
}
