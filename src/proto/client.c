/* The request/response client shared by pipeline and multiplex. Slots hold
 * the ops in flight. With a tag store (multiplex) the slots are a table: a
 * free stack hands them out, a send queue keeps call order and the store says
 * which slot a response answers. Without one (pipeline), requests are sent and
 * answered in call order, so the slots are simply a ring: calls join at the
 * tail, the oldest sent one is answered at the head. */
#include "ctower/client.h"
#include "ctower/error.h"
#include "slab_tags.h"
#include "../core/ring.h"

#include <stdlib.h>

enum slot_state {
    SLOT_FREE,
    SLOT_QUEUED,  /* waiting for the transport to take the request */
    SLOT_SENT,    /* waiting for the response */
    SLOT_TOMB,    /* canceled after sending: the answer is still due */
    SLOT_DROPPED, /* canceled before sending: skipped by the send queue */
};

struct ct_client_slot {
    ct_op_t *op;   /* NULL in a tombstone; stale in a free slot */
    void *request; /* ours while QUEUED or DROPPED; stale otherwise */
    int state;
};

typedef struct ct_client_slot slot_t;

static void free_msg(ct_client_t *c, void *msg) {
    if (c->free_msg && msg) c->free_msg(msg, c->free_ctx);
}

static size_t in_flight(const ct_client_t *c) {
    return c->cap - c->nfree;
}

static inline void release_slot(ct_client_t *c, size_t index) {
    c->slots[index].state = SLOT_FREE; /* the other fields are stale from now */
    c->free_slots[c->nfree_stack++] = index;
    c->nfree++;
    if (!ct_waitq_empty(&c->ready_waiters)) ct_waitq_wake_all(&c->ready_waiters);
}

/* Released slots first, then ones never used (see the server). */
static size_t take_slot(ct_client_t *c) {
    c->nfree--;
    if (c->nfree_stack) return c->free_slots[--c->nfree_stack];
    return c->never_used++;
}

static size_t send_queue_pop(ct_client_t *c) {
    size_t index = c->send_queue[c->send_head];
    c->send_head = ct_ring_pos(c->send_head, 1, c->cap);
    c->send_count--;
    return index;
}

/* Only slots nobody waits for are left: tombstones (canceled after
 * sending: a timeout layer's late calls) and, in the ring, dropped slots
 * behind them. Their answers are still due, but no caller is, so a shutdown
 * need not wait for a server that may never send them. */
static int nobody_waits(const ct_client_t *c) {
    return in_flight(c) == c->ntombs + (c->tags ? 0 : c->ndropped);
}

static void check_drained(ct_client_t *c) {
    if (c->write_shut && nobody_waits(c) && !c->error) ct_service_shutdown_done(&c->service, 0);
}

/* Ends the live op in slot s, if any, with kind; a request never sent is
 * freed. */
static void end_slot(ct_client_t *c, slot_t *s, int kind, int cause) {
    if (s->state == SLOT_QUEUED) free_msg(c, s->request);
    if (s->state == SLOT_QUEUED || s->state == SLOT_SENT) ct_op_complete(s->op, kind, cause, NULL);
}

/* Every live op completes with kind; requests never sent are freed. */
static void complete_all(ct_client_t *c, int kind, int cause) {
    size_t i, n = in_flight(c);
    if (!c->tags) { /* the ring, from its oldest slot */
        for (i = 0; i < n; i++)
            end_slot(c, &c->slots[(c->send_head + i) & c->ring_mask], kind, cause);
        c->nfree = c->cap;
        c->nsent = c->ndropped = 0;
    } else {
        for (i = 0; i < c->never_used; i++) { /* slots past it were never used */
            slot_t *s = &c->slots[i];
            if (s->state == SLOT_FREE) continue;
            end_slot(c, s, kind, cause);
            release_slot(c, i);
        }
    }
    c->send_head = c->send_count = 0;
    c->ntombs = 0;
    c->reserved = 0;
}

/* The transport broke, or the stream went out of step: the client is dead. */
static void fail(ct_client_t *c, int kind, int cause) {
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
    if (status < 0 && status != CT_ECLOSING) fail(t->owner, CT_ESENDBROKEN, status);
}

static void shut_write_when_all_sent(ct_client_t *c) {
    int r;
    if (!ct_service_is_shutting_down(&c->service) || c->write_shut || c->send_count > 0) return;
    c->write_shut = 1;
    r = ct_transport_shutdown(c->transport, on_write_shut);
    if (r < 0) fail(c, CT_ESENDBROKEN, r);
}

/* The request in slot index fails alone; the client goes on. */
static void fail_request(ct_client_t *c, size_t index, int status) {
    slot_t *s = &c->slots[index];
    free_msg(c, s->request);
    ct_op_complete(s->op, status, 0, NULL);
    release_slot(c, index);
}

/* After a send was refused for room: 0 to wait for the waker, -1 if dead. */
static int wait_for_room(ct_client_t *c) {
    int r = ct_transport_send_ready(c->transport, &c->send_waker);
    if (r == CT_PENDING) return 0;
    /* READY right after a refusal for room breaks the transport contract. */
    fail(c, CT_ESENDBROKEN, r < 0 ? r : UV_EAGAIN);
    return -1;
}

/* The transport did not take the request in slot index (r), whose tag was
 * given back: 1 if settled, 0 to wait, -1 if dead. */
static int send_refused(ct_client_t *c, size_t index, int r) {
    if (r == UV_EAGAIN) return wait_for_room(c);
    if (ct_transport_refused_msg(r)) {
        fail_request(c, index, r);
        return 1;
    }
    fail(c, CT_ESENDBROKEN, r);
    return -1;
}

/* The transport took the request in slot index: as send_one returns. */
static inline int sent(ct_client_t *c, size_t index) {
    c->slots[index].state = SLOT_SENT;
    return 1;
}

/* The transport refused it (r) and its tag was given back: the request stays
 * in the slot; as send_one returns. Rare: out of line, so that the send paths
 * keep few registers. */
static __attribute__((noinline)) int refused(ct_client_t *c, size_t index, void *request, int r) {
    c->slots[index].request = request;
    return send_refused(c, index, r);
}

static int send_tagged(ct_client_t *c, size_t index, void *request);
static int send_slab(ct_client_t *c, size_t index, void *request);

/* Sends the request in slot index (the head of the send queue, if that is not
 * empty): 1 if sent (or settled), 0 to wait, -1 if dead. A store that can
 * give a tag back is assigned first and asked for room only when the
 * transport refuses: one transport call per request instead of two. */
static inline int send_one(ct_client_t *c, size_t index, void *request) {
    if (ct_is_slab_store(c->tags)) return send_slab(c, index, request);
    return send_tagged(c, index, request);
}

/* send_one with the slab store, inline: its tag can be given back, so the
 * request is sent first and room is asked for only when the transport
 * refuses it. */
static inline int send_slab(ct_client_t *c, size_t index, void *request) {
    ct_slab_tags_t *t = (ct_slab_tags_t *)c->tags;
    int r = ct_slab_assign(t, request, index);
    if (r < 0) { /* this request cannot be tagged: it alone fails */
        c->slots[index].request = request;
        fail_request(c, index, r);
        return 1;
    }
    r = ct_transport_send(c->transport, request);
    if (r == 0) return sent(c, index);
    ct_slab_unassign(t, index);
    return refused(c, index, request, r);
}

/* send_one with a store of the user's, through its vtable. */
static int send_tagged(ct_client_t *c, size_t index, void *request) {
    slot_t *s = &c->slots[index];
    const ct_tag_store_vtable_t *tags = c->tags->vtable;
    int r;
    s->request = request; /* until the transport takes it */
    if (!tags->unassign) {
        r = ct_transport_send_ready(c->transport, &c->send_waker);
        if (r == CT_PENDING) return 0;
        if (r < 0) {
            fail(c, CT_ESENDBROKEN, r);
            return -1;
        }
    }
    r = tags->assign(c->tags, request, index);
    if (r < 0) { /* this request cannot be tagged: it alone fails */
        fail_request(c, index, r);
        return 1;
    }
    r = ct_transport_send(c->transport, request);
    if (r == 0) return sent(c, index);
    if (!tags->unassign) { /* the tag is taken and cannot be given back */
        fail(c, CT_ESENDBROKEN, r);
        return -1;
    }
    tags->unassign(c->tags, index);
    return refused(c, index, request, r);
}

static void ring_pump(ct_client_t *c);

/* Hands queued requests to the transport, in call order, while it takes them. */
static void pump(ct_client_t *c) {
    if (!c->tags) {
        ring_pump(c);
        return;
    }
    while (!c->error && c->send_count > 0) {
        size_t index = c->send_queue[c->send_head];
        if (c->slots[index].state == SLOT_DROPPED) {
            send_queue_pop(c);
            release_slot(c, index);
            continue;
        }
        if (send_one(c, index, c->slots[index].request) <= 0) return;
        send_queue_pop(c);
    }
    if (!c->error) shut_write_when_all_sent(c);
}

static void on_send_ready(ct_waker_t *waker) {
    ct_client_t *c = CT_CONTAINER_OF(waker, ct_client_t, send_waker);
    pump(c);
    check_drained(c);
}

/* The slot msg answers, or -1 if it answers nothing we asked. */
static inline ptrdiff_t answered_slot(ct_client_t *c, void *msg) {
    size_t index = 0;
    if (ct_is_slab_store(c->tags)) {
        if (ct_slab_finish((ct_slab_tags_t *)c->tags, msg, &index) < 0) return -1;
    } else if (c->tags->vtable->finish(c->tags, msg, &index) < 0) {
        return -1;
    }
    if (index >= c->never_used) return -1;
    return (ptrdiff_t)index;
}

static void on_response(ct_client_t *c, void *msg) {
    ptrdiff_t index = answered_slot(c, msg);
    slot_t *s = index < 0 ? NULL : &c->slots[index];
    ct_op_t *op;
    if (!s || (s->state != SLOT_SENT && s->state != SLOT_TOMB)) {
        /* An answer to nothing we asked: delivering it would hand a stranger's
         * response to some request. */
        free_msg(c, msg);
        fail(c, CT_EDESYNC, 0);
        return;
    }
    op = s->state == SLOT_SENT ? s->op : NULL;
    if (!op) c->ntombs--;
    release_slot(c, (size_t)index);
    check_drained(c);
    /* Last, with the client consistent: the receive callback is a fresh
     * stack, so the op's callback runs right here (it may call again, cancel
     * or close), with the response still in cache. */
    if (op)
        ct_op_complete_now(op, 0, 0, msg);
    else
        free_msg(c, msg); /* a tombstone's late answer */
}

/* The receive side ended (status): after our own shutdown with nothing due,
 * that is the peer's answer to it; otherwise the client is dead. A stream
 * whose write failed ends its receive side with the same error, and then it
 * is the send side that broke (its send_ready says so). */
static void recv_ended(ct_client_t *c, int status) {
    int kind = CT_ERECVBROKEN;
    if (status == UV_EOF) {
        if (c->write_shut && nobody_waits(c)) return;
    } else if (ct_transport_send_ready(c->transport, &c->send_waker) == status) {
        kind = CT_ESENDBROKEN; /* fail() cancels the waker, had it been kept */
    }
    fail(c, kind, status);
}

static void on_recv(ct_transport_t *t, int status, void *msg) {
    ct_client_t *c = t->owner;
    if (status == 0)
        on_response(c, msg);
    else
        recv_ended(c, status);
}

static int client_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_client_t *c = (ct_client_t *)svc;
    if (c->error) return c->error;
    if (c->reserved) return CT_READY;
    if (c->nfree > 0) {
        c->reserved = 1;
        return CT_READY;
    }
    if (waker) ct_waitq_add(&c->ready_waiters, waker);
    return CT_PENDING;
}

/* A call without READY at capacity (rare, out of line). */
static __attribute__((noinline)) int overloaded(ct_client_t *c, void *request, ct_op_t *op) {
    free_msg(c, request);
    ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
    return 0;
}

static int client_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_client_t *c = (ct_client_t *)svc;
    slot_t *s;
    size_t index;
    if (c->error) return c->error;
    if (c->reserved)
        c->reserved = 0;
    else if (c->nfree == 0)
        return overloaded(c, request, op);
    index = take_slot(c);
    s = &c->slots[index];
    s->op = op;
    s->state = SLOT_QUEUED;
    op->slot = index;
    /* Nothing waits for room: straight to the transport (which keeps the
     * request in the slot if it does not take it). Otherwise behind the
     * others, which the send waker will pump. */
    if (c->send_count == 0) {
        if (send_one(c, index, request) != 0) return 0; /* sent, settled or dead */
    } else {
        s->request = request;
    }
    c->send_queue[ct_ring_pos(c->send_head, c->send_count, c->cap)] = index;
    c->send_count++;
    return 0;
}

static void client_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_client_t *c = (ct_client_t *)svc;
    slot_t *s = &c->slots[op->slot];
    if (s->state == SLOT_SENT) {
        s->state = SLOT_TOMB;
        c->ntombs++;
    } else {
        free_msg(c, s->request);
        s->request = NULL;
        s->state = SLOT_DROPPED;
        if (!c->tags) c->ndropped++; /* the ring counts them */
    }
    s->op = NULL;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
    pump(c); /* releases dropped slots at the head of the send queue */
    check_drained(c);
}

static void client_release(ct_service_t *svc) {
    ct_client_t *c = (ct_client_t *)svc;
    c->reserved = 0;
    ct_waitq_wake_all(&c->ready_waiters);
}

static int client_shutdown(ct_service_t *svc) {
    ct_client_t *c = (ct_client_t *)svc;
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

static void free_arrays(ct_client_t *c) {
    free(c->arrays);
    c->arrays = NULL;
    c->free_slots = c->send_queue = NULL;
    c->slots = NULL;
}

static void on_transport_closed(ct_transport_t *t) {
    ct_client_t *c = t->owner;
    free_arrays(c);
    ct_service_closed(&c->service);
}

static void client_close(ct_service_t *svc) {
    ct_client_t *c = (ct_client_t *)svc;
    if (!c->error) {
        c->error = CT_ECLOSED;
        complete_all(c, CT_ECLOSED, 0);
    }
    ct_waker_cancel(&c->send_waker);
    ct_waitq_wake_all(&c->ready_waiters);
    ct_transport_close(c->transport, on_transport_closed);
}

static const ct_service_vtable_t client_vtable = {
    client_poll_ready, client_call,  client_cancel, client_release,
    client_shutdown,   client_close, NULL, /* answers come from the peer, never at once */
};

/* ---- in send order: the slots are a ring ---------------------------------
 * From the oldest slot (send_head): nsent slots sent (SLOT_SENT, SLOT_TOMB),
 * or canceled before sending and passed by the sender (SLOT_DROPPED), then
 * send_count slots waiting for the transport (SLOT_QUEUED, or SLOT_DROPPED if
 * canceled meanwhile). The oldest sent slot is never a dropped one: it is the
 * one the next response answers. */

/* The ring's size is a power of two (at least the bound), so that moving
 * along it is a mask. */
static size_t ring_slot(const ct_client_t *c, size_t offset) {
    return (c->send_head + offset) & c->ring_mask;
}

static void ring_pop_oldest(ct_client_t *c) {
    c->send_head = ring_slot(c, 1);
    c->nfree++;
    if (!ct_waitq_empty(&c->ready_waiters)) ct_waitq_wake_all(&c->ready_waiters);
}

/* Dropped slots owe no answer: once the oldest, they leave. Most rings
 * have none, and then the oldest slot is not even looked at. */
static inline void ring_trim(ct_client_t *c) {
    while (c->ndropped > 0 && c->nsent > 0 && c->slots[c->send_head].state == SLOT_DROPPED) {
        c->ndropped--;
        c->nsent--;
        ring_pop_oldest(c);
    }
}

/* The transport refuses the request of s (it cannot be encoded): that op
 * alone fails, and its slot is passed over. */
static void ring_drop_refused(ct_client_t *c, slot_t *s, int r) {
    free_msg(c, s->request);
    ct_op_complete(s->op, r, 0, NULL);
    s->op = NULL;
    s->state = SLOT_DROPPED;
    c->ndropped++;
}

static void ring_pump(ct_client_t *c) {
    while (!c->error && c->send_count > 0) {
        slot_t *s = &c->slots[ring_slot(c, c->nsent)];
        if (s->state == SLOT_QUEUED) {
            int r = ct_transport_send(c->transport, s->request);
            if (r == UV_EAGAIN) {
                wait_for_room(c);
                return;
            }
            if (r != 0 && !ct_transport_refused_msg(r)) {
                fail(c, CT_ESENDBROKEN, r);
                return;
            }
            if (r == 0)
                s->state = SLOT_SENT;
            else
                ring_drop_refused(c, s, r);
        }
        c->send_count--;
        c->nsent++;
        ring_trim(c);
    }
    if (!c->error) shut_write_when_all_sent(c);
}

/* The transport did not take (r) the request of s, the newest slot, which
 * had nothing queued before it (rare, out of line). */
static __attribute__((noinline)) void ring_call_refused(ct_client_t *c, slot_t *s, void *request,
                                                        int r) {
    if (ct_transport_refused_msg(r)) { /* that op alone fails: its slot goes back */
        free_msg(c, request);
        ct_op_complete(s->op, r, 0, NULL);
        c->nfree++;
        if (!ct_waitq_empty(&c->ready_waiters)) ct_waitq_wake_all(&c->ready_waiters);
        return;
    }
    s->state = SLOT_QUEUED;
    s->request = request;
    c->send_count++;
    if (r == UV_EAGAIN)
        wait_for_room(c);
    else
        fail(c, CT_ESENDBROKEN, r);
}

static int ring_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_client_t *c = (ct_client_t *)svc;
    size_t index;
    slot_t *s;
    int r;
    if (c->error) return c->error;
    if (c->reserved)
        c->reserved = 0;
    else if (c->nfree == 0)
        return overloaded(c, request, op);
    index = ring_slot(c, in_flight(c));
    c->nfree--;
    s = &c->slots[index];
    s->op = op;
    op->slot = index;
    if (c->send_count > 0) { /* behind the others, which the send waker pumps */
        s->state = SLOT_QUEUED;
        s->request = request;
        c->send_count++;
        return 0;
    }
    r = ct_transport_send(c->transport, request);
    if (r != 0) {
        ring_call_refused(c, s, request, r);
        return 0;
    }
    s->state = SLOT_SENT;
    c->nsent++;
    return 0;
}

static void ring_on_recv(ct_transport_t *t, int status, void *msg) {
    ct_client_t *c = t->owner;
    slot_t *s;
    ct_op_t *op;
    if (status != 0) {
        recv_ended(c, status);
        return;
    }
    if (c->nsent == 0) { /* an answer to nothing we asked */
        free_msg(c, msg);
        fail(c, CT_EDESYNC, 0);
        return;
    }
    s = &c->slots[c->send_head];
    op = s->state == SLOT_SENT ? s->op : NULL; /* else a tombstone */
    if (!op) c->ntombs--;
    c->nsent--;
    ring_pop_oldest(c);
    ring_trim(c);
    check_drained(c);
    /* Last, with the client consistent (see on_response). */
    if (op)
        ct_op_complete_now(op, 0, 0, msg);
    else
        free_msg(c, msg);
}

static const ct_service_vtable_t ring_vtable = {
    client_poll_ready, ring_call,    client_cancel, client_release,
    client_shutdown,   client_close, NULL, /* answers come from the peer, never at once */
};

/* ---- setup ----------------------------------------------------------------- */

/* One allocation: with a tag store, two index arrays (free stack, send
 * queue), then the slots; the small arrays first, so that a connection with
 * little in flight touches few pages. In send order, the slots alone. */
static int alloc_arrays(ct_client_t *c, size_t cap) {
    size_t index_arrays = c->tags ? 2 : 0, nslots = cap;
    char *mem;
    if (cap > (size_t)-1 / 2 / (sizeof(slot_t) + 2 * sizeof(size_t))) return UV_ENOMEM;
    if (!c->tags) { /* the ring: a power of two */
        for (nslots = 1; nslots < cap; nslots *= 2)
            ;
        c->ring_mask = nslots - 1;
    }
    /* Not zeroed: pages an idle connection never uses stay unbacked. */
    mem = malloc(index_arrays * cap * sizeof(size_t) + nslots * sizeof(slot_t));
    if (!mem) return UV_ENOMEM;
    c->arrays = mem;
    c->free_slots = index_arrays ? (size_t *)mem : NULL;
    c->send_queue = index_arrays ? c->free_slots + cap : NULL;
    c->slots = (slot_t *)(mem + index_arrays * cap * sizeof(size_t));
    c->nfree_stack = 0;
    c->never_used = 0;
    return 0;
}

int ct_client_init(ct_client_t *c, ct_loop_t *loop, ct_transport_t *transport, ct_tag_store_t *tags,
                   size_t cap, const ct_client_config_t *cfg) {
    int r;
    if (!c || !loop || !transport || transport->owner || cap == 0) return CT_EINVAL;
    if (tags && (tags->capacity < cap || !tags->vtable)) return CT_EINVAL;
    if (transport->max_in_flight && cap > transport->max_in_flight) cap = transport->max_in_flight;
    c->tags = tags;
    if ((r = alloc_arrays(c, cap)) != 0) return r;
    ct_service_init(&c->service, loop, tags ? &client_vtable : &ring_vtable);
    c->transport = transport;
    c->cap = cap;
    c->nfree = cap;
    c->send_head = c->send_count = c->nsent = c->ndropped = c->ntombs = 0;
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
    r = ct_transport_recv_start(transport, tags ? on_recv : ring_on_recv);
    if (r < 0) {
        transport->owner = NULL;
        free_arrays(c);
    }
    return r;
}

int ct_client_cause(const ct_client_t *c) {
    return c->error ? c->cause : 0;
}

size_t ct_client_in_flight(const ct_client_t *c) {
    return in_flight(c);
}
