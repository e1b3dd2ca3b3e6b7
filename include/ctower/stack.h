/* ct_stack_t: a client stack built from one description (tower's
 * ServiceBuilder, for C).
 *
 * Each layer has a bound of its own (a reconnecting client 64 calls, a
 * timeout layer 1024, ...), and a stack put together by hand fails calls
 * with CT_EOVERLOADED where the smallest bound is, even below a retry
 * layer that would have tried them again. A ct_stack_t builds the usual
 * stack with one bound for every layer, and frees it with one call:
 *
 *     queue -> limit -> retry -> balance -> [breaker -> timeout -> client]
 *                                           (one per endpoint)
 *
 * from the top, each present only when asked for, except the clients:
 *
 * - queue (ct_queue_t): calls beyond max_in_flight wait, up to max_queued,
 *   so that a caller need not drive readiness; with shed, no queue: the
 *   stack is PENDING when full and a call made anyway fails with
 *   CT_EOVERLOADED.
 * - limit (ct_limit_t): with rate_per_s, calls started per second.
 * - retry (ct_retry_t): with a retry configuration; above the balancer, so
 *   that an attempt may go to another endpoint.
 * - balance (ct_balance_t): over two or more endpoints, or with balance
 *   set (then endpoints may be added and removed while it runs); or, with
 *   shard_key, sharding (ct_shard_t) over them instead.
 * - breaker (ct_breaker_t): with a breaker configuration, per endpoint,
 *   so that the balancer leaves out an endpoint whose breaker is open.
 * - timeout (ct_timeout_t): with timeout_ms, each attempt's bound.
 * - client (ct_reconnect_t): one per endpoint address.
 *
 * Every layer, and each endpoint's client, gets max_in_flight (an
 * HTTP/1.1 client no more than its codec's CT_HTTP_MAX_PENDING; the
 * queue and the balancer then wait, they do not refuse). Layers of your
 * own go over the stack (their inner service is `stack.service`, which
 * they then own and close), or over each endpoint (wrap_endpoint).
 */
#ifndef CTOWER_STACK_H
#define CTOWER_STACK_H

#include "ctower/layer/balance.h"
#include "ctower/layer/breaker.h"
#include "ctower/layer/limit.h"
#include "ctower/layer/queue.h"
#include "ctower/layer/reconnect.h"
#include "ctower/layer/retry.h"
#include "ctower/layer/shard.h"
#include "ctower/layer/timeout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A client stack (below). */
typedef struct ct_stack ct_stack_t;

/* A client stack's description: endpoints, connections, one bound, and the layers asked for. */
typedef struct ct_stack_config {
    /* The endpoints' addresses (address.h); the array may go once init
     * returns. At least one, unless balance is set. */
    const char *const *endpoints;
    size_t n_endpoints;
    int balance; /* a balancer even over one endpoint, or none yet */
    ct_balance_load_t load;
    /* Instead of a balancer: the endpoints are shards, in the order given
     * (ct_shard_t), each call going to the one its key names; none added
     * or removed later. NULL: no sharding. */
    ct_shard_key_fn shard_key;
    void *shard_key_ctx;
    /* How each endpoint's connections are made (codec, pool, TLS), and
     * spoken: pipelined, multiplexed (tags through get_tag and set_tag, both
     * NULL: ct_buf's), or HTTP/2 (reconnect.h). Required: stream. stream
     * and http2 must outlive the stack: endpoints added later use them;
     * the retry and breaker configurations are copied at init. */
    const ct_stream_config_t *stream;
    int multiplex;
    ct_tag_get_fn get_tag;
    ct_tag_set_fn set_tag;
    const ct_http2_config_t *http2;
    uint64_t connect_timeout_ms; /* 0: 5 s */
    /* The one bound: calls under way in every layer at most (0: 1024). */
    size_t max_in_flight;
    /* Calls that wait above it at most (0: 8 * max_in_flight; each costs
     * about 150 bytes, taken at init); beyond, a call fails with
     * CT_EOVERLOADED. With shed, none wait (above). */
    size_t max_queued;
    int shed;
    /* Each attempt answered within it (0: no timeout layer). */
    uint64_t timeout_ms;
    /* Calls started per second at most (0: no limit layer). */
    uint32_t rate_per_s;
    /* NULL: no retry layer. Otherwise its configuration (retry.h), whose
     * copy is required; its max_in_flight, free_msg and free_ctx are the
     * stack's. */
    const ct_retry_config_t *retry;
    /* NULL: no breakers. Otherwise each endpoint's (breaker.h); its
     * max_in_flight, free_msg and free_ctx are the stack's. */
    const ct_breaker_config_t *breaker;
    /* Frees the messages no caller gets (refused requests, late answers).
     * May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    /* The label that names an endpoint in its metrics (NULL: "endpoint"). */
    const char *endpoint_label;
    /* May be NULL. A layer of the caller's over each endpoint, on top of
     * the stack's: wrap_endpoint gets the endpoint's service and returns
     * the one over it (or the endpoint's own: no layer; NULL: the endpoint
     * is not made), whose memory is the caller's; the stack closes it with
     * the endpoint. endpoint_gone (may be NULL) runs once for every
     * endpoint whose memory goes, with the caller's layer (NULL if none;
     * stack NULL for one that never took a call: its ct_stack_add() or the
     * build failed, and the stack may be gone), removed 1 when it was
     * taken out by ct_stack_remove() and 0 when the stack closed; the
     * layer's memory may go then. */
    ct_service_t *(*wrap_endpoint)(void *ctx, ct_stack_t *stack, const char *address,
                                   ct_service_t *endpoint);
    void (*endpoint_gone)(void *ctx, ct_stack_t *stack, const char *address, ct_service_t *wrapped,
                          int removed);
    void *endpoint_ctx;
} ct_stack_config_t;

struct ct_stack_endpoint;
/* What ct_stack_close() calls back, once the whole stack has closed. */
typedef void (*ct_stack_close_cb)(ct_stack_t *stack);
/* What ct_stack_shutdown() calls back, once the stack has drained. */
typedef void (*ct_stack_shutdown_cb)(ct_stack_t *stack, int status);

/* A client stack built by ct_stack_init(). */
struct ct_stack {
    /* The stack as one service: call this. A layer of yours may wrap it
     * (and own it, and close it: the stack closes with it). */
    ct_service_t *service;
    void *data; /* for the user */
    /* private */
    ct_service_t front; /* what service points at: hands each call to top */
    ct_service_t *top;  /* the top layer */
    ct_loop_t *loop;
    ct_stack_config_t cfg; /* (endpoints not kept) */
    ct_queue_t queue;
    ct_limit_t limit;
    ct_retry_t retry;
    ct_balance_t balance;
    ct_shard_t shard;
    ct_breaker_config_t breaker_cfg;
    ct_retry_config_t retry_cfg;
    int has_queue, has_limit, has_retry, has_balance, has_shard, has_breaker;
    struct ct_stack_endpoint *endpoints; /* every one allocated, a list */
    struct ct_stack_endpoint *single;    /* without a balancer: the one endpoint */
    size_t closing_endpoints;            /* removed, whose close has not called back */
    int closed;                          /* the top's close has called back */
    ct_stack_close_cb close_cb;
    ct_stack_shutdown_cb shutdown_cb;
    ct_stats_t *stats; /* ct_stack_add_stats()'s, for endpoints that come later */
    char labels[256];
};

/* Builds the stack on loop. Returns 0, CT_EINVAL (no stream, no endpoint without balance, a
 * retry without copy) or an error of a layer's init (CT_EBADADDR for an
 * endpoint's address, UV_ENOMEM); on error what was built closes by
 * itself as the loop runs, and nothing is the caller's to close. */
int ct_stack_init(ct_stack_t *stack, ct_loop_t *loop, const ct_stack_config_t *cfg);

/* With a balancer: adds an endpoint for address, which takes calls at
 * once. Returns its id (>= 0), or CT_EINVAL (no balancer), CT_EBADADDR, an
 * error of ct_balance_add(). */
int ct_stack_add(ct_stack_t *stack, const char *address);

/* With a balancer: takes endpoint id out; it gets no more calls, and is
 * closed and freed once its calls in flight are answered. Returns 0 or
 * ct_balance_remove()'s error. */
int ct_stack_remove(ct_stack_t *stack, int id);

/* With a balancer: makes the endpoints the set addresses[0..n) (what a
 * discovery source reports, whole, each time it changes): adds those not
 * there, removes those no longer named (they drain first, as
 * ct_stack_remove()). A set is checked whole before anything changes: an
 * address that does not parse (CT_EBADADDR) or an empty set (CT_EINVAL: a
 * source that lost everything must not empty the stack by accident)
 * changes nothing. *added and *removed (may be NULL) get the counts.
 * Returns 0, or the first error of an endpoint that could not be added
 * (the rest of the set is applied). */
int ct_stack_apply(ct_stack_t *stack, const char *const *addresses, size_t n, size_t *added,
                   size_t *removed);

/* The endpoints the stack holds: those taking calls, and those removed
 * whose calls in flight or close have not ended yet. */
size_t ct_stack_endpoints(const ct_stack_t *stack);

/* The address endpoint id was made for, or NULL. */
const char *ct_stack_address(const ct_stack_t *stack, int id);

/* The id of the endpoint taking calls for address, or CT_EINVAL. */
int ct_stack_find(const ct_stack_t *stack, const char *address);

/* Endpoint id's reconnecting client and breaker (NULL without one), for
 * their counts; NULL if there is no endpoint id. The stack owns them. */
ct_reconnect_t *ct_stack_client(ct_stack_t *stack, int id);
ct_breaker_t *ct_stack_breaker(ct_stack_t *stack, int id);

/* Drains the stack (ct_service_shutdown() of its top): no new calls, the
 * calls under way and waiting are answered, then cb runs with 0 or the
 * error that cut the drain short (CT_ECANCELED if the stack is closed
 * meanwhile). The stack must still be closed. Returns 0 or
 * ct_service_shutdown()'s error. */
int ct_stack_shutdown(ct_stack_t *stack, ct_stack_shutdown_cb cb);

/* Closes the whole stack: every call under way completes (with
 * CT_ECLOSED if not answered), then cb (may be NULL) runs, after which
 * stack's memory may go. Returns 0 or CT_ECLOSING (twice). */
int ct_stack_close(ct_stack_t *stack, ct_stack_close_cb cb);

/* Registers every layer's metrics in stats (of the stack's loop) under
 * labels (may be NULL, fewer than 256 bytes), each endpoint's with
 * endpoint="ADDRESS" after them, those of endpoints added later too; a
 * removed endpoint's go with it, and the whole stack's when it has
 * closed. Once per stack. Returns 0, CT_EINVAL or ct_stats_add_*'s
 * error. */
int ct_stack_add_stats(ct_stack_t *stack, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
