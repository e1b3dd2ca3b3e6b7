/* ct_client_t: a request/response client over one transport; a service.
 *
 * Each call takes a slot (up to the in-flight bound: poll_ready is PENDING
 * beyond it), and its request is sent in call order. How a response finds its
 * slot is what tells protocols apart: in request order for a pipeline
 * (pipeline.h), by tag for a multiplexed protocol (multiplex.h). Everything
 * else is shared and is described here.
 *
 * The client reads while idle too: a response with nothing waiting for it is a
 * CT_EDESYNC error, and a peer that closes while the client is idle is
 * reported by the next poll_ready.
 *
 * Errors an op can complete with: CT_ESENDBROKEN or CT_ERECVBROKEN (op->cause
 * is the transport's error; UV_EOF when the peer closed), CT_EDESYNC,
 * CT_EOVERLOADED (called at capacity without a READY), CT_ECANCELED,
 * CT_ECLOSED (the client was closed). Once the transport breaks or the stream
 * goes out of step, every op in flight fails with that kind and cause and the
 * client stays dead: poll_ready and call return the kind.
 *
 * A canceled op whose request was sent keeps its slot (a tombstone) until its
 * answer arrives, which is then freed: the answer is never handed to another
 * request and the connection stays up. A canceled op whose request was not
 * sent yet is dropped: the request is freed and never goes out.
 *
 * ct_service_shutdown() sends what is queued, closes the write side and
 * completes when every caller still waiting has its response: the answers
 * still due to tombstones (calls a timeout layer gave up) are not waited
 * for, so a server that never answers those cannot hold a shutdown open.
 * A stack with a timeout layer therefore shuts down within its timeout;
 * without one, ct_service_close() is the way to bound it. Close aborts.
 */
#ifndef CTOWER_CLIENT_H
#define CTOWER_CLIENT_H

#include "ctower/service.h"
#include "ctower/tag_store.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A client's bound on calls in flight when its configuration gives none. */
#define CT_CLIENT_DEFAULT_IN_FLIGHT 64

/* How a client bounds and frees what it holds (ct_pipeline_client_init(),
 * ct_multiplex_client_init()). */
typedef struct ct_client_config {
    /* Requests in flight at most, tombstones included; 0 means the default
     * (or, for a multiplex client, the tag store's capacity if smaller).
     * Never more than the transport's max_in_flight: an HTTP/1.1 stream
     * keeps a client to CT_HTTP_MAX_PENDING. */
    size_t max_in_flight;
    /* Frees a request that will never be sent and a response that nobody
     * waits for any more. May be NULL if messages need no freeing. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_client_config_t;

struct ct_client_slot;

/* A request/response client over one transport: a service. */
typedef struct ct_client {
    ct_service_t service; /* first: a client is a service */
    /* private */
    ct_transport_t *transport;
    ct_tag_store_t *tags; /* NULL: responses answer requests in send order */
    struct ct_client_slot *slots;
    void *arrays;       /* the one allocation behind the arrays */
    size_t *free_slots; /* stack of free slot indices (with a tag store) */
    size_t *send_queue; /* ring of slot indices, in call order (ditto) */
    size_t cap;
    size_t nfree;       /* slots free in all */
    size_t nfree_stack; /* of which released ones, on the free stack */
    size_t never_used;  /* slots from here on were never handed out */
    size_t send_head;   /* with a tag store: the send queue's; in send
                           order: the oldest slot of the ring */
    size_t send_count;  /* requests waiting for the transport */
    size_t nsent;       /* in send order: slots from send_head already sent */
    size_t ndropped;    /* in send order: dropped slots still in the ring */
    size_t ntombs;      /* slots canceled after sending, their answers due */
    size_t ring_mask;   /* in send order: the ring's size (a power of two) - 1 */
    int reserved;       /* a READY reserved one slot */
    int error;          /* the kind that killed the client (0 while alive) */
    int cause;          /* the underlying error */
    int write_shut;
    ct_msg_free_fn free_msg;
    void *free_ctx;
    ct_waitq_t ready_waiters;
    ct_waker_t send_waker;
} ct_client_t;

/* The underlying error of a dead client (0 while it is alive). */
int ct_client_cause(const ct_client_t *client);

/* Requests in flight, tombstones included. */
size_t ct_client_in_flight(const ct_client_t *client);

/* For protocol implementers: initializes client over transport (which it owns
 * from now on) with tags deciding how responses find their requests (NULL:
 * in send order), at most cap requests in flight (or the transport's
 * max_in_flight, if smaller), and starts reading.
 * Returns 0, CT_EINVAL or UV_ENOMEM (then the transport is still the
 * caller's). */
int ct_client_init(ct_client_t *client, ct_loop_t *loop, ct_transport_t *transport,
                   ct_tag_store_t *tags, size_t cap, const ct_client_config_t *cfg);

#ifdef __cplusplus
}
#endif
#endif
