/* The pipeline server: a ring of requests in the order they were read. Each
 * slot is handed to the service in turn and holds its response until every
 * earlier one has been sent, so answers leave in request order whatever order
 * the service finishes in. The ring is the per-connection bound: when it is
 * full the server stops reading, and memory stays bounded with a slow
 * service. */
#include "ctower/pipeline.h"
#include "ctower/error.h"

#include <stdlib.h>

enum slot_state {
    SLOT_WAITING, /* read, not yet handed to the service */
    SLOT_CALLING, /* in the service */
    SLOT_DONE,    /* response ready, waiting for its turn */
    SLOT_FAILED,  /* error and no response: the connection ends here */
};

struct ct_pipeline_server_slot {
    ct_op_t op;
    void *request;
    void *response;
    int state;
    int status;
};

typedef struct ct_pipeline_server_slot slot_t;

static void send_responses(ct_pipeline_server_t *srv);

static slot_t *nth(ct_pipeline_server_t *srv, size_t i) {
    return &srv->slots[(srv->head + i) % srv->cap];
}

static void free_msg(ct_pipeline_server_t *srv, void *msg) {
    if (srv->free_msg && msg) srv->free_msg(msg, srv->free_ctx);
}

static void maybe_closed(ct_pipeline_server_t *srv) {
    if (!srv->transport_closed || srv->outstanding > 0) return;
    free(srv->slots);
    srv->slots = NULL;
    if (srv->close_cb) srv->close_cb(srv, srv->status); /* last: it may free srv */
}

static void on_transport_closed(ct_transport_t *t) {
    ct_pipeline_server_t *srv = t->owner;
    srv->transport_closed = 1;
    maybe_closed(srv);
}

static void on_write_shut(ct_transport_t *t, int status) {
    ct_pipeline_server_t *srv = t->owner;
    if (status < 0 && srv->status == 0) srv->status = status;
    ct_transport_close(t, on_transport_closed);
}

/* Ends the connection once. graceful: the write side is shut first so that
 * the responses already sent reach the peer. */
static void finish(ct_pipeline_server_t *srv, int status, int graceful) {
    size_t i;
    if (srv->ending) return;
    srv->ending = 1;
    srv->status = status;
    srv->reading = 0;
    ct_transport_recv_stop(srv->transport);
    ct_waker_cancel(&srv->ready_waker);
    ct_waker_cancel(&srv->send_waker);
    for (i = 0; i < srv->count; i++) {
        slot_t *s = nth(srv, i);
        if (s->state == SLOT_CALLING) ct_op_cancel(&s->op); /* its callback frees */
        if (s->state == SLOT_WAITING) free_msg(srv, s->request);
        if (s->state == SLOT_DONE) free_msg(srv, s->response);
    }
    srv->count = srv->called = 0;
    if (!graceful || ct_transport_shutdown(srv->transport, on_write_shut) < 0)
        ct_transport_close(srv->transport, on_transport_closed);
}

static void finish_if_drained(ct_pipeline_server_t *srv) {
    if (srv->draining && srv->count == 0) finish(srv, 0, 1);
}

static void settle_error(ct_pipeline_server_t *srv, slot_t *s, int status) {
    void *response = NULL;
    if (srv->on_error && srv->on_error(srv, status, &response) == 0) {
        s->response = response;
        s->state = SLOT_DONE;
    } else {
        s->state = SLOT_FAILED;
        s->status = status;
    }
}

static void on_service_done(ct_op_t *op, int status, void *response) {
    ct_pipeline_server_t *srv = op->data;
    slot_t *s = CT_CONTAINER_OF(op, slot_t, op);
    srv->outstanding--;
    if (srv->ending) {
        free_msg(srv, response);
        maybe_closed(srv);
        return;
    }
    if (status == 0) {
        s->response = response;
        s->state = SLOT_DONE;
    } else {
        settle_error(srv, s, status);
    }
    send_responses(srv);
}

/* Hands waiting requests to the service, in order, while it is ready. */
static void call_service(ct_pipeline_server_t *srv) {
    while (!srv->ending && srv->called < srv->count) {
        slot_t *s = nth(srv, srv->called);
        int r = ct_service_poll_ready(srv->service, &srv->ready_waker);
        if (r == CT_PENDING) return;
        srv->called++;
        if (r >= 0) {
            ct_op_init(&s->op, on_service_done);
            s->op.data = srv;
            s->state = SLOT_CALLING;
            srv->outstanding++;
            r = ct_service_call(srv->service, s->request, &s->op);
            if (r >= 0) continue;
            srv->outstanding--;
        }
        /* Not started: the request is still ours. */
        free_msg(srv, s->request);
        s->request = NULL;
        settle_error(srv, s, r);
    }
    send_responses(srv);
}

static void on_service_ready(ct_waker_t *waker) {
    call_service(CT_CONTAINER_OF(waker, ct_pipeline_server_t, ready_waker));
}

static void on_recv(ct_transport_t *t, int status, void *msg);

static void resume_reading(ct_pipeline_server_t *srv) {
    if (srv->reading || srv->draining || srv->ending || srv->count >= srv->cap) return;
    srv->reading = 1;
    if (ct_transport_recv_start(srv->transport, on_recv) < 0) finish(srv, CT_ERECVBROKEN, 0);
}

/* Sends every response whose earlier ones are all sent. */
static void send_responses(ct_pipeline_server_t *srv) {
    while (!srv->ending && srv->count > 0) {
        slot_t *s = nth(srv, 0);
        int r;
        if (s->state == SLOT_FAILED) {
            finish(srv, s->status, 1);
            return;
        }
        if (s->state != SLOT_DONE) break;
        r = ct_transport_send_ready(srv->transport, &srv->send_waker);
        if (r == CT_PENDING) return;
        if (r >= 0) r = ct_transport_send(srv->transport, s->response);
        if (r == UV_EAGAIN) continue;
        if (r < 0) {
            finish(srv, r, 0);
            return;
        }
        s->response = NULL;
        srv->head = (srv->head + 1) % srv->cap;
        srv->count--;
        srv->called--;
    }
    resume_reading(srv);
    finish_if_drained(srv);
}

static void on_send_ready(ct_waker_t *waker) {
    send_responses(CT_CONTAINER_OF(waker, ct_pipeline_server_t, send_waker));
}

static void on_recv(ct_transport_t *t, int status, void *msg) {
    ct_pipeline_server_t *srv = t->owner;
    slot_t *s;
    if (status < 0) {
        srv->reading = 0;
        srv->draining = 1;
        if (status == UV_EOF)
            finish_if_drained(srv); /* the peer is done asking; answer the rest */
        else
            finish(srv, status, 0);
        return;
    }
    s = nth(srv, srv->count);
    s->request = msg;
    s->response = NULL;
    s->state = SLOT_WAITING;
    srv->count++;
    if (srv->count == srv->cap) {
        srv->reading = 0;
        ct_transport_recv_stop(t);
    }
    call_service(srv);
}

int ct_pipeline_server_init(ct_pipeline_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                            ct_service_t *service, const ct_pipeline_server_config_t *cfg,
                            ct_pipeline_server_close_cb close_cb) {
    size_t cap = cfg && cfg->max_in_flight ? cfg->max_in_flight : CT_PIPELINE_DEFAULT_IN_FLIGHT;
    int r;
    if (!srv || !loop || !transport || !service || transport->owner) return CT_EINVAL;
    srv->slots = calloc(cap, sizeof *srv->slots);
    if (!srv->slots) return UV_ENOMEM;
    srv->loop = loop;
    srv->transport = transport;
    srv->service = service;
    srv->cap = cap;
    srv->head = srv->count = srv->called = srv->outstanding = 0;
    srv->reading = srv->draining = srv->ending = srv->transport_closed = 0;
    srv->status = 0;
    srv->free_msg = cfg ? cfg->free_msg : NULL;
    srv->free_ctx = cfg ? cfg->free_ctx : NULL;
    srv->on_error = cfg ? cfg->on_error : NULL;
    srv->close_cb = close_cb;
    ct_waker_init(&srv->ready_waker, loop, on_service_ready);
    ct_waker_init(&srv->send_waker, loop, on_send_ready);
    transport->owner = srv;
    srv->reading = 1;
    r = ct_transport_recv_start(transport, on_recv);
    if (r < 0) {
        transport->owner = NULL;
        free(srv->slots);
        srv->slots = NULL;
    }
    return r;
}

int ct_pipeline_server_shutdown(ct_pipeline_server_t *srv) {
    if (srv->ending) return CT_ECLOSING;
    srv->draining = 1;
    srv->reading = 0;
    ct_transport_recv_stop(srv->transport);
    finish_if_drained(srv);
    return 0;
}

int ct_pipeline_server_close(ct_pipeline_server_t *srv) {
    if (srv->ending) return CT_ECLOSING;
    finish(srv, CT_ECANCELED, 0);
    return 0;
}

size_t ct_pipeline_server_in_flight(const ct_pipeline_server_t *srv) {
    return srv->count;
}
