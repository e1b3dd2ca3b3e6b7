/* The pipeline client: a ring of in-flight requests, oldest first. Responses
 * match the ring's head. A canceled request that was already sent stays in
 * the ring as a tombstone so its late answer is read and discarded instead of
 * being handed to the next request (or cutting the connection). */
#include "ctower/pipeline.h"
#include "ctower/error.h"

#include <stdlib.h>

enum slot_state {
    SLOT_QUEUED,  /* waiting for the transport to take the request */
    SLOT_SENT,    /* waiting for the response */
    SLOT_TOMB,    /* canceled after sending: the answer is still due */
    SLOT_DROPPED, /* canceled before sending: nothing is due */
};

struct ct_pipeline_client_slot {
    ct_op_t *op;
    void *request;
    int state;
};

typedef struct ct_pipeline_client_slot slot_t;

static slot_t *nth(ct_pipeline_client_t *c, size_t i) {
    return &c->slots[(c->head + i) % c->cap];
}

static void free_msg(ct_pipeline_client_t *c, void *msg) {
    if (c->free_msg && msg) c->free_msg(msg, c->free_ctx);
}

static void pop_head(ct_pipeline_client_t *c) {
    c->head = (c->head + 1) % c->cap;
    c->count--;
    if (c->sent) c->sent--;
}

/* A dropped slot owes nothing; once it reaches the head it can go. */
static void trim_dropped(ct_pipeline_client_t *c) {
    while (c->count > 0 && nth(c, 0)->state == SLOT_DROPPED)
        pop_head(c);
}

static void check_drained(ct_pipeline_client_t *c) {
    if (c->count == 0 && c->write_shut && !c->error) ct_service_shutdown_done(&c->service, 0);
}

/* Every live op completes with kind; requests never sent are freed. */
static void complete_all(ct_pipeline_client_t *c, int kind, int cause) {
    size_t i;
    for (i = 0; i < c->count; i++) {
        slot_t *s = nth(c, i);
        if (s->state == SLOT_QUEUED) free_msg(c, s->request);
        if (s->state == SLOT_QUEUED || s->state == SLOT_SENT)
            ct_op_complete(s->op, kind, cause, NULL);
    }
    c->head = c->count = c->sent = 0;
    c->reserved = 0;
}

/* The transport broke (or the stream went out of step): the client is dead. */
static void fail(ct_pipeline_client_t *c, int kind, int cause) {
    if (c->error) return;
    c->error = kind;
    c->cause = cause;
    ct_transport_recv_stop(c->transport);
    ct_waker_cancel(&c->send_waker);
    complete_all(c, kind, cause);
    ct_waitq_wake_all(&c->ready_waiters);
    ct_service_shutdown_done(&c->service, kind);
}

static void on_write_shut(ct_transport_t *t, int status) {
    ct_pipeline_client_t *c = t->owner;
    if (status < 0 && status != CT_ECLOSING) fail(c, CT_ESENDBROKEN, status);
}

static void shut_write_when_all_sent(ct_pipeline_client_t *c) {
    int r;
    if (!ct_service_is_shutting_down(&c->service) || c->write_shut || c->sent < c->count) return;
    c->write_shut = 1;
    r = ct_transport_shutdown(c->transport, on_write_shut);
    if (r < 0) fail(c, CT_ESENDBROKEN, r);
}

/* Hands queued requests to the transport, in order, while it takes them. */
static void pump(ct_pipeline_client_t *c) {
    while (!c->error && c->sent < c->count) {
        slot_t *s = nth(c, c->sent);
        int r;
        if (s->state == SLOT_DROPPED) {
            c->sent++;
            continue;
        }
        r = ct_transport_send_ready(c->transport, &c->send_waker);
        if (r == CT_PENDING) return;
        if (r >= 0) r = ct_transport_send(c->transport, s->request);
        if (r == UV_EAGAIN) continue; /* poll again, which registers the waker */
        if (r < 0) {
            fail(c, CT_ESENDBROKEN, r);
            return;
        }
        s->request = NULL;
        s->state = SLOT_SENT;
        c->sent++;
    }
    if (!c->error) shut_write_when_all_sent(c);
}

static void on_send_ready(ct_waker_t *waker) {
    pump(CT_CONTAINER_OF(waker, ct_pipeline_client_t, send_waker));
}

static void on_response(ct_pipeline_client_t *c, void *msg) {
    slot_t *s;
    ct_op_t *op;
    int state;
    if (c->sent == 0) {
        /* Nothing was asked: answering it would hand a stranger's response
         * to the next request. */
        free_msg(c, msg);
        fail(c, CT_EDESYNC, 0);
        return;
    }
    s = nth(c, 0);
    op = s->op;
    state = s->state;
    pop_head(c);
    trim_dropped(c);
    if (state == SLOT_SENT)
        ct_op_complete(op, 0, 0, msg);
    else
        free_msg(c, msg); /* a tombstone's late answer */
    ct_waitq_wake_all(&c->ready_waiters);
    check_drained(c);
}

static void on_recv(ct_transport_t *t, int status, void *msg) {
    ct_pipeline_client_t *c = t->owner;
    if (status == 0)
        on_response(c, msg);
    else if (!(status == UV_EOF && c->write_shut && c->count == 0))
        fail(c, CT_ERECVBROKEN, status);
}

static int client_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_pipeline_client_t *c = (ct_pipeline_client_t *)svc;
    if (c->error) return c->error;
    if (c->reserved) return CT_READY;
    if (c->count < c->cap) {
        c->reserved = 1;
        return CT_READY;
    }
    if (waker) ct_waitq_add(&c->ready_waiters, waker);
    return CT_PENDING;
}

static int client_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_pipeline_client_t *c = (ct_pipeline_client_t *)svc;
    size_t index;
    if (c->error) return c->error;
    if (c->reserved)
        c->reserved = 0;
    else if (c->count + 1 > c->cap) {
        free_msg(c, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    index = (c->head + c->count) % c->cap;
    c->slots[index].op = op;
    c->slots[index].request = request;
    c->slots[index].state = SLOT_QUEUED;
    op->slot = index;
    c->count++;
    pump(c);
    return 0;
}

static void client_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_pipeline_client_t *c = (ct_pipeline_client_t *)svc;
    slot_t *s = &c->slots[op->slot];
    if (s->state == SLOT_SENT) {
        s->state = SLOT_TOMB;
    } else {
        free_msg(c, s->request);
        s->request = NULL;
        s->state = SLOT_DROPPED;
    }
    s->op = NULL;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
    trim_dropped(c);
    ct_waitq_wake_all(&c->ready_waiters);
    pump(c); /* a dropped tail may have been the last thing left to send */
    check_drained(c);
}

static void client_release(ct_service_t *svc) {
    ct_pipeline_client_t *c = (ct_pipeline_client_t *)svc;
    c->reserved = 0;
    ct_waitq_wake_all(&c->ready_waiters);
}

static int client_shutdown(ct_service_t *svc) {
    ct_pipeline_client_t *c = (ct_pipeline_client_t *)svc;
    if (c->error) {
        ct_service_shutdown_done(svc, c->error);
        return 0;
    }
    c->reserved = 0;
    ct_waitq_wake_all(&c->ready_waiters); /* they will see CT_ESHUTDOWN */
    pump(c);
    check_drained(c);
    return 0;
}

static void on_transport_closed(ct_transport_t *t) {
    ct_pipeline_client_t *c = t->owner;
    free(c->slots);
    c->slots = NULL;
    ct_service_closed(&c->service);
}

static void client_close(ct_service_t *svc) {
    ct_pipeline_client_t *c = (ct_pipeline_client_t *)svc;
    if (!c->error) {
        c->error = CT_ECLOSED;
        complete_all(c, CT_ECLOSED, 0);
    }
    ct_waker_cancel(&c->send_waker);
    ct_waitq_wake_all(&c->ready_waiters);
    ct_transport_close(c->transport, on_transport_closed);
}

static const ct_service_vtable_t client_vtable = {
    client_poll_ready, client_call, client_cancel, client_release, client_shutdown, client_close,
};

int ct_pipeline_client_init(ct_pipeline_client_t *c, ct_loop_t *loop, ct_transport_t *transport,
                            const ct_pipeline_client_config_t *cfg) {
    size_t cap = cfg && cfg->max_in_flight ? cfg->max_in_flight : CT_PIPELINE_DEFAULT_IN_FLIGHT;
    int r;
    if (!c || !loop || !transport || transport->owner) return CT_EINVAL;
    c->slots = calloc(cap, sizeof *c->slots);
    if (!c->slots) return UV_ENOMEM;
    ct_service_init(&c->service, loop, &client_vtable);
    c->transport = transport;
    c->cap = cap;
    c->head = c->count = c->sent = 0;
    c->reserved = 0;
    c->error = c->cause = 0;
    c->write_shut = 0;
    c->free_msg = cfg ? cfg->free_msg : NULL;
    c->free_ctx = cfg ? cfg->free_ctx : NULL;
    ct_waitq_init(&c->ready_waiters);
    ct_waker_init(&c->send_waker, loop, on_send_ready);
    transport->owner = c;
    /* Read while idle too: that is how a stray response or a peer that went
     * away is noticed before the next request is trusted to it. */
    r = ct_transport_recv_start(transport, on_recv);
    if (r < 0) {
        transport->owner = NULL;
        free(c->slots);
        c->slots = NULL;
    }
    return r;
}

int ct_pipeline_client_cause(const ct_pipeline_client_t *c) {
    return c->error ? c->cause : 0;
}

size_t ct_pipeline_client_in_flight(const ct_pipeline_client_t *c) {
    return c->count;
}
