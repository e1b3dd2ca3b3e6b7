/* The request/response server shared by pipeline and multiplex. Slots hold
 * the requests read and not yet answered (the per-connection bound); a call
 * queue keeps arrival order for the service; a send queue holds the order in
 * which responses must leave: arrival order for a pipeline (a response waits
 * for every earlier one), completion order for a multiplexed protocol. */
#include "ctower/server.h"
#include "ctower/error.h"
#include "../core/ring.h"

#include <stdlib.h>

enum slot_state {
    SLOT_FREE,
    SLOT_WAITING, /* read, not yet handed to the service */
    SLOT_CALLING, /* in the service */
    SLOT_DONE,    /* response ready, waiting for its turn */
    SLOT_FAILED,  /* error and no response: the connection ends here */
};

struct ct_server_slot {
    ct_op_t op;
    void *request;
    void *response;
    uint32_t tag;
    int state;
    int status;
    int replaced;     /* the response is on_error's: it is not replaced twice */
    size_t bytes;     /* of its request and response, for max_bytes */
    ct_context_t ctx; /* the request's, when op.ctx points to it */
    uint64_t read_ns; /* with stats: the batch clock when it was read */
};

typedef struct ct_server_slot slot_t;

static void send_responses(ct_server_t *srv);
static void on_recv(ct_transport_t *t, int status, void *msg);
static void on_service_done(ct_op_t *op, int status, void *response);

static void free_msg(ct_server_t *srv, void *msg) {
    if (srv->cfg.free_msg && msg) srv->cfg.free_msg(msg, srv->cfg.free_ctx);
}

static size_t in_flight(const ct_server_t *srv) {
    return srv->cap - srv->nfree;
}

static void ring_push(size_t *ring, size_t cap, size_t head, size_t *count, size_t index) {
    ring[ct_ring_pos(head, *count, cap)] = index;
    (*count)++;
}

static size_t ring_pop(size_t *ring, size_t cap, size_t *head, size_t *count) {
    size_t index = ring[*head];
    *head = ct_ring_pos(*head, 1, cap);
    (*count)--;
    return index;
}

/* Counts what slot s holds from now on (msg, of which s's), against
 * max_bytes. */
static inline void hold(ct_server_t *srv, slot_t *s, const void *msg) {
    size_t n;
    if (!srv->cfg.msg_size || !msg) return;
    n = srv->cfg.msg_size(msg);
    s->bytes += n;
    srv->held_bytes += n;
    if (srv->cfg.budget) srv->cfg.budget->used += n;
}

static inline void unhold(ct_server_t *srv, slot_t *s) {
    srv->held_bytes -= s->bytes;
    if (srv->cfg.budget) srv->cfg.budget->used -= s->bytes;
    s->bytes = 0;
}

static inline int over_bytes(const ct_server_t *srv) {
    if (srv->held_bytes >= srv->cfg.max_bytes) return 1;
    return srv->held_bytes > 0 && ct_budget_spent(srv->cfg.budget);
}

/* Reading stops at either bound: slots, or bytes held. */
static inline void stop_reading_if_full(ct_server_t *srv) {
    if (srv->reading && (srv->nfree == 0 || over_bytes(srv))) {
        srv->reading = 0;
        ct_transport_recv_stop(srv->transport);
    }
}

static inline __attribute__((always_inline)) void release_slot(ct_server_t *srv, size_t index) {
    unhold(srv, &srv->slots[index]);
    srv->slots[index].state = SLOT_FREE;
    srv->free_slots[srv->nfree_stack++] = index;
    srv->nfree++;
}

/* Released slots first, then ones never used: an idle connection touches only
 * the slots it has used, not its whole table. */
static size_t take_slot(ct_server_t *srv) {
    slot_t *s;
    srv->nfree--;
    if (srv->nfree_stack) return srv->free_slots[--srv->nfree_stack];
    s = &srv->slots[srv->never_used]; /* the table is not zeroed */
    s->state = SLOT_FREE;
    /* Once per slot: the op is reusable after each completion. */
    ct_op_init(&s->op, on_service_done);
    s->op.data = srv;
    return srv->never_used++;
}

ct_server_t *ct_server_of_call(const ct_op_t *op) {
    return op && op->cb == on_service_done ? op->data : NULL;
}

static void maybe_closed(ct_server_t *srv) {
    if (!srv->transport_closed || srv->outstanding > 0) return;
    free(srv->free_slots); /* the start of the one allocation */
    srv->slots = NULL;
    if (srv->close_cb) srv->close_cb(srv, srv->status); /* last: it may free srv */
}

static void on_transport_closed(ct_transport_t *t) {
    ct_server_t *srv = t->owner;
    srv->transport_closed = 1;
    maybe_closed(srv);
}

static void on_write_shut(ct_transport_t *t, int status) {
    ct_server_t *srv = t->owner;
    if (status < 0 && srv->status == 0) srv->status = status;
    ct_transport_close(t, on_transport_closed);
}

/* Ends the connection once. graceful: the write side is shut first so that
 * the responses already sent reach the peer. */
static void finish(ct_server_t *srv, int status, int graceful) {
    size_t i;
    if (srv->ending) return;
    srv->ending = 1;
    srv->status = status;
    srv->reading = 0;
    ct_transport_recv_stop(srv->transport);
    ct_waker_cancel(&srv->ready_waker);
    ct_waker_cancel(&srv->send_waker);
    for (i = 0; i < srv->never_used; i++) { /* slots past it were never used */
        slot_t *s = &srv->slots[i];
        if (s->state == SLOT_CALLING) ct_op_cancel(&s->op); /* its callback frees */
        if (s->state == SLOT_WAITING) free_msg(srv, s->request);
        if (s->state == SLOT_DONE) free_msg(srv, s->response);
        if (s->state != SLOT_FREE) unhold(srv, s);
    }
    srv->call_count = srv->send_count = 0;
    if (!graceful || ct_transport_shutdown(srv->transport, on_write_shut) < 0)
        ct_transport_close(srv->transport, on_transport_closed);
}

static void finish_if_drained(ct_server_t *srv) {
    if (srv->draining && in_flight(srv) == 0) finish(srv, 0, 1);
}

/* Asks on_error for a response to send in place of an error (once per slot):
 * returns 1 and sets *response if it gave one. */
static int replacement_for(ct_server_t *srv, slot_t *s, int status, void **response) {
    if (s->replaced || !srv->cfg.on_error || srv->cfg.on_error(srv, status, response) != 0)
        return 0;
    s->replaced = 1;
    return 1;
}

/* An answer that comes after its request's deadline: nobody waits for it
 * any more, and on_error says so instead (an HTTP server's 504). */
static void drop_if_late(ct_server_t *srv, slot_t *s, int *status, void **response) {
    if (*status < 0 || !srv->cfg.on_error) return;
    if (!ct_context_expired(s->op.ctx, uv_now(srv->loop->uv))) return;
    free_msg(srv, *response);
    *response = NULL;
    *status = CT_ETIMEDOUT;
}

/* The slot has its outcome; in completion order it may now leave. */
static inline void settle(ct_server_t *srv, slot_t *s, int status, void *response) {
    if (s->op.ctx) drop_if_late(srv, s, &status, &response);
    if (status < 0 && srv->cfg.stats)
        ct_counter_add(&srv->cfg.stats->errors[ct_error_kind(status)], 1);
    if (status < 0 && replacement_for(srv, s, status, &response)) status = 0;
    if (status == 0) {
        s->response = response;
        s->state = SLOT_DONE;
        if (srv->cfg.set_tag) srv->cfg.set_tag(response, s->tag);
        hold(srv, s, response);
        stop_reading_if_full(srv);
    } else {
        s->state = SLOT_FAILED;
        s->status = status;
    }
    if (!srv->in_order)
        ring_push(srv->send_queue, srv->cap, srv->send_head, &srv->send_count,
                  (size_t)(s - srv->slots));
}

static void on_service_done(ct_op_t *op, int status, void *response) {
    ct_server_t *srv = op->data;
    slot_t *s = CT_CONTAINER_OF(op, slot_t, op);
    srv->outstanding--;
    if (srv->ending) {
        free_msg(srv, response);
        maybe_closed(srv);
        return;
    }
    settle(srv, s, status, response);
    send_responses(srv);
}

/* Hands slot s to the service, whose readiness answer was ready (READY, or
 * an error: then the request is not started). Returns 1 if the request
 * settled here, 0 if it is in the service. A response the service gives
 * inside its call (an echo, a cache hit) settles here, while the request is
 * still in cache; the others settle from on_service_done. */
static inline int start_request(ct_server_t *srv, slot_t *s, int ready) {
    int r = ready;
    if (r >= 0) {
        int status;
        void *response;
        /* a context goes with an op: no call_sync */
        if (!s->op.ctx && ct_service_call_sync(srv->service, s->request, &status, &response)) {
            settle(srv, s, status, response);
            return 1;
        }
        s->state = SLOT_CALLING;
        r = ct_service_call_inline(srv->service, s->request, &s->op);
        if (r == 0) {
            srv->outstanding++;
            return 0;
        }
        if (r == 1) {
            settle(srv, s, s->op.status, s->op.response);
            return 1;
        }
    }
    /* Not started: the request is still ours. */
    free_msg(srv, s->request);
    s->request = NULL;
    settle(srv, s, r, NULL);
    return 1;
}

/* Hands waiting requests to the service, in arrival order, while it is
 * ready; it stops at PENDING with the ready waker registered. */
static void call_service(ct_server_t *srv) {
    int settled = 0;
    while (!srv->ending && srv->call_count > 0) {
        int r = ct_service_poll_ready(srv->service, &srv->ready_waker);
        size_t index;
        if (r == CT_PENDING) break;
        index = ring_pop(srv->call_queue, srv->cap, &srv->call_head, &srv->call_count);
        settled |= start_request(srv, &srv->slots[index], r);
    }
    if (settled) send_responses(srv);
}

static void on_service_ready(ct_waker_t *waker) {
    call_service(CT_CONTAINER_OF(waker, ct_server_t, ready_waker));
}

static void resume_reading(ct_server_t *srv) {
    if (srv->reading || srv->draining || srv->ending || srv->nfree == 0 || over_bytes(srv)) return;
    srv->reading = 1;
    if (ct_transport_recv_start(srv->transport, on_recv) < 0) finish(srv, CT_ERECVBROKEN, 0);
}

/* The codec cannot encode s's response: on_error may give one to send in its
 * place (once). Returns 1 if it did. */
static int replace_refused(ct_server_t *srv, slot_t *s, int status) {
    void *replacement = NULL;
    free_msg(srv, s->response);
    s->response = NULL;
    if (!replacement_for(srv, s, status, &replacement)) return 0;
    s->response = replacement;
    if (srv->cfg.set_tag) srv->cfg.set_tag(replacement, s->tag);
    return 1;
}

/* The response at the head of the send queue is now the transport's. */
/* (always inlined: it runs per response, and the stats made it too big for
 * the compiler to inline by itself) */
static inline __attribute__((always_inline)) void sent(ct_server_t *srv, size_t index) {
    if (srv->cfg.stats) {
        ct_counter_add(&srv->cfg.stats->responses, 1);
        ct_histogram_record(&srv->cfg.stats->latency,
                            ct_loop_clock_ns(srv->loop) - srv->slots[index].read_ns);
    }
    srv->slots[index].response = NULL;
    ring_pop(srv->send_queue, srv->cap, &srv->send_head, &srv->send_count);
    release_slot(srv, index);
}

/* A slot may have come free for reading, and the last answer may be out. */
static inline void after_sending(ct_server_t *srv) {
    if (!srv->reading) resume_reading(srv);
    if (srv->draining) finish_if_drained(srv);
}

/* A send of s's response did not go through (r): returns 1 to try the send
 * queue again, 0 to stop (waiting for room, or the connection ends). */
static int send_failed(ct_server_t *srv, slot_t *s, int r) {
    if (r == UV_EAGAIN) {
        r = ct_transport_send_ready(srv->transport, &srv->send_waker);
        if (r == CT_PENDING) return 0;
        if (r >= 0) return 1;
    }
    if (ct_transport_refused_msg(r)) {
        if (replace_refused(srv, s, r)) return 1;
        finish(srv, r, 1); /* like a service error: what came before is sent */
        return 0;
    }
    finish(srv, r, 0);
    return 0;
}

/* Sends, in send-queue order, every response whose turn has come. Send
 * first; readiness (registering the waker) is asked only when full. */
static void send_responses(ct_server_t *srv) {
    while (srv->send_count > 0 && !srv->ending) {
        size_t index = srv->send_queue[srv->send_head];
        slot_t *s = &srv->slots[index];
        int r;
        if (s->state != SLOT_DONE) {
            if (s->state == SLOT_FAILED) finish(srv, s->status, 1);
            if (srv->ending) return;
            break; /* in order: an earlier one is not ready */
        }
        r = ct_transport_send(srv->transport, s->response);
        if (r != 0) {
            if (send_failed(srv, s, r)) continue;
            return;
        }
        sent(srv, index);
    }
    after_sending(srv);
}

/* The common case of send_responses: the response just settled is the only
 * one queued. Returns 0 if that is not so or the send did not go through;
 * send_responses then deals with it. */
static int send_alone(ct_server_t *srv, size_t index) {
    slot_t *s = &srv->slots[index];
    if (srv->send_count != 1 || s->state != SLOT_DONE) return 0;
    if (ct_transport_send(srv->transport, s->response) != 0) return 0;
    sent(srv, index);
    after_sending(srv);
    return 1;
}

static void on_send_ready(ct_waker_t *waker) {
    send_responses(CT_CONTAINER_OF(waker, ct_server_t, send_waker));
}

/* A slot for a request just read (msg, or NULL if it was answered already),
 * in its place in the send order of a pipeline. */
static slot_t *new_slot(ct_server_t *srv, void *msg, uint32_t tag, const ct_context_t *ctx) {
    size_t index = take_slot(srv);
    slot_t *s = &srv->slots[index];
    s->op.ctx = NULL;
    if (ctx) {
        s->ctx = *ctx;
        s->op.ctx = &s->ctx;
    }
    s->request = msg;
    s->response = NULL;
    s->state = SLOT_WAITING;
    s->replaced = 0;
    s->tag = tag;
    s->bytes = 0;
    if (srv->cfg.stats) s->read_ns = ct_loop_clock_ns(srv->loop);
    hold(srv, s, msg);
    if (srv->in_order)
        ring_push(srv->send_queue, srv->cap, srv->send_head, &srv->send_count, index);
    stop_reading_if_full(srv);
    return s;
}

/* The fast path of on_recv: nothing is queued, so a response given at once
 * may leave at once, without a slot. Returns 1 if the request was dealt
 * with; 0 if the service does not answer at once (msg is still ours). A
 * response the transport does not take, or an error, goes through a slot and
 * send_responses like any other. */
static int answer_at_once(ct_server_t *srv, void *msg, uint32_t tag) {
    int status;
    void *response;
    if (!ct_service_call_sync(srv->service, msg, &status, &response)) return 0;
    if (status == 0) {
        if (srv->cfg.set_tag) srv->cfg.set_tag(response, tag);
        if (ct_transport_send(srv->transport, response) == 0) {
            if (srv->cfg.stats) { /* answered in the batch that read it */
                ct_counter_add(&srv->cfg.stats->responses, 1);
                ct_histogram_record(&srv->cfg.stats->latency, 0);
            }
            return 1;
        }
    }
    settle(srv, new_slot(srv, NULL, tag, NULL), status, response);
    send_responses(srv);
    return 1;
}

/* Errors that refuse what the peer sent, rather than break the connection:
 * the requests before it are answered, then on_error's answer to the error
 * itself (an HTTP server's 400, 413, 431 or 408), then the end. */
static int is_refusal(int status) {
    return status == CT_EMALFORMED || status == CT_EFRAMETOOLARGE || status == CT_EHEADERTOOLARGE ||
           status == CT_EREQTIMEOUT;
}

/* The last answer of a refused connection, after the ones before it: a slot
 * of its own, settled with the error (which on_error may answer). */
static void refuse(ct_server_t *srv, int status) {
    srv->reading = 0;
    srv->draining = 1;
    ct_transport_recv_stop(srv->transport);
    if (srv->nfree > 0) {
        settle(srv, new_slot(srv, NULL, 0, NULL), status, NULL);
        send_responses(srv);
    } else {
        finish_if_drained(srv); /* no slot (not seen: reading stops at the bound) */
    }
}

static void on_recv(ct_transport_t *t, int status, void *msg) {
    ct_server_t *srv = t->owner;
    ct_context_t ctx, *has_ctx = NULL;
    uint32_t tag;
    slot_t *s;
    if (status < 0) {
        srv->reading = 0;
        srv->draining = 1;
        if (status == UV_EOF)
            finish_if_drained(srv); /* the peer is done asking; answer the rest */
        else if (is_refusal(status) && srv->cfg.on_error)
            refuse(srv, status);
        else
            finish(srv, status, 0);
        return;
    }
    srv->last_request_ms = uv_now(srv->loop->uv);
    if (srv->cfg.stats) ct_counter_add(&srv->cfg.stats->requests, 1);
    tag = srv->cfg.get_tag ? srv->cfg.get_tag(msg) : 0;
    if (srv->cfg.read_context) {
        ct_context_init(&ctx);
        if (srv->cfg.read_context(srv->cfg.context_ctx, msg, srv->last_request_ms, &ctx) > 0)
            has_ctx = &ctx;
    }
    if (srv->call_count == 0) { /* nothing waits for the service: no queue */
        int r = ct_service_poll_ready(srv->service, &srv->ready_waker);
        if (r != CT_PENDING) {
            size_t index;
            /* (a context goes with an op: not call_sync's) */
            if (r >= 0 && srv->send_count == 0 && !has_ctx && answer_at_once(srv, msg, tag)) return;
            s = new_slot(srv, msg, tag, has_ctx);
            index = (size_t)(s - srv->slots);
            if (start_request(srv, s, r) && !send_alone(srv, index)) send_responses(srv);
            return;
        }
    }
    /* Behind the others: the service's ready waker is registered and will
     * call them in order. */
    s = new_slot(srv, msg, tag, has_ctx);
    ring_push(srv->call_queue, srv->cap, srv->call_head, &srv->call_count,
              (size_t)(s - srv->slots));
}

/* One allocation: three index arrays, then the slots. The small index arrays
 * come first so that their first entries share a page: a connection with
 * little in flight touches two or three pages of its table, not five. */
static int alloc_arrays(ct_server_t *srv, size_t cap) {
    char *mem;
    if (cap > (size_t)-1 / (sizeof(slot_t) + 3 * sizeof(size_t))) return UV_ENOMEM;
    /* Not zeroed: pages an idle connection never uses stay unbacked. */
    mem = malloc(cap * (sizeof(slot_t) + 3 * sizeof(size_t)));
    if (!mem) return UV_ENOMEM;
    srv->free_slots = (size_t *)mem;
    srv->call_queue = srv->free_slots + cap;
    srv->send_queue = srv->call_queue + cap;
    srv->slots = (slot_t *)(srv->send_queue + cap);
    srv->nfree_stack = 0;
    srv->never_used = 0;
    return 0;
}

int ct_server_config_check(const ct_server_config_t *cfg, int multiplex) {
    if (!cfg) return 0;
    if (!cfg->get_tag != !cfg->set_tag) return CT_EINVAL;
    if (!multiplex && cfg->get_tag) return CT_EINVAL;
    return 0;
}

int ct_server_init(ct_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                   ct_service_t *service, int in_order, const ct_server_config_t *cfg,
                   ct_server_close_cb close_cb) {
    static const ct_server_config_t defaults = {0};
    size_t cap = cfg && cfg->max_in_flight ? cfg->max_in_flight : CT_SERVER_DEFAULT_IN_FLIGHT;
    int r;
    if (!srv || !loop || !transport || !service || transport->owner) return CT_EINVAL;
    if (ct_server_config_check(cfg, 1) != 0) return CT_EINVAL;
    if (transport->max_in_flight && cap > transport->max_in_flight) cap = transport->max_in_flight;
    if ((r = alloc_arrays(srv, cap)) != 0) return r;
    srv->loop = loop;
    srv->transport = transport;
    srv->service = service;
    srv->cap = cap;
    srv->nfree = cap;
    srv->call_head = srv->call_count = srv->send_head = srv->send_count = 0;
    srv->outstanding = 0;
    srv->held_bytes = 0;
    srv->in_order = in_order;
    srv->draining = srv->ending = srv->transport_closed = 0;
    srv->status = 0;
    srv->cfg = cfg ? *cfg : defaults;
    if (!srv->cfg.max_bytes) srv->cfg.max_bytes = CT_SERVER_DEFAULT_MAX_BYTES;
    srv->close_cb = close_cb;
    srv->last_request_ms = uv_now(loop->uv);
    ct_waker_init(&srv->ready_waker, loop, on_service_ready);
    ct_waker_init(&srv->send_waker, loop, on_send_ready);
    transport->owner = srv;
    srv->reading = 1;
    r = ct_transport_recv_start(transport, on_recv);
    if (r < 0) {
        transport->owner = NULL;
        free(srv->free_slots);
        srv->slots = NULL;
    }
    return r;
}

int ct_server_shutdown(ct_server_t *srv) {
    if (srv->ending) return CT_ECLOSING;
    srv->draining = 1;
    srv->reading = 0;
    ct_transport_recv_stop(srv->transport);
    finish_if_drained(srv);
    return 0;
}

int ct_server_refuse(ct_server_t *srv, int status) {
    if (srv->ending || srv->draining) return CT_ECLOSING;
    if (srv->cfg.on_error)
        refuse(srv, status);
    else
        finish(srv, status, 1);
    return 0;
}

uint64_t ct_server_last_request(const ct_server_t *srv) {
    return srv->last_request_ms;
}

/* A graceful end under way is cut short too: its write side may never
 * finish shutting down (an HTTP/2 peer that never opens its window again
 * keeps nghttp2 wanting to write), and a listener's deadline must end it. */
int ct_server_close(ct_server_t *srv) {
    if (!srv->ending) {
        finish(srv, CT_ECANCELED, 0);
        return 0;
    }
    if (srv->transport_closed || ct_transport_is_closing(srv->transport)) return CT_ECLOSING;
    srv->status = CT_ECANCELED;
    ct_transport_close(srv->transport, on_transport_closed);
    return 0;
}

size_t ct_server_in_flight(const ct_server_t *srv) {
    return in_flight(srv);
}
