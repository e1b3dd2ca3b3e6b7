/* ct_server_t: drives one transport with one service; the server half of a
 * request/response protocol.
 *
 * It reads requests, calls the service for each while the service is ready,
 * and sends the responses: in request order for a pipeline (pipeline.h), in
 * completion order for a multiplexed protocol (multiplex.h). Everything else
 * is shared and is described here.
 *
 * Requests read and not yet answered are bounded per connection: at the bound
 * the server stops reading, so memory stays bounded with a slow service. A
 * service error goes to the on_error hook, which may turn it into a response;
 * without it, the connection closes after the responses before it are sent.
 * A receive error that refuses what the peer sent (CT_EMALFORMED,
 * CT_EFRAMETOOLARGE, CT_EHEADERTOOLARGE, CT_EREQTIMEOUT) goes to on_error
 * too, when there is one: the requests read before it are answered, then
 * on_error's answer, then the connection closes (an HTTP server answers 400,
 * 413, 431 or 408 that way; ct_http_refusal() writes them). Without on_error,
 * and for any other receive error, the connection ends at once.
 * When the peer closes its write side, or on ct_server_shutdown(), the server
 * stops reading, answers what it has read, shuts its write side and closes.
 */
#ifndef CTOWER_SERVER_H
#define CTOWER_SERVER_H

#include "ctower/budget.h"
#include "ctower/context.h"
#include "ctower/error.h"
#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/tag_store.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CT_SERVER_DEFAULT_IN_FLIGHT 64                /* max_in_flight when 0 */
#define CT_SERVER_DEFAULT_MAX_BYTES ((size_t)1 << 20) /* max_bytes when 0 */

typedef struct ct_server ct_server_t;

/* Turns an error into a response to send in its place: a service error, or
 * a response that the codec refused (CT_EFRAMETOOLARGE, CT_EINVAL; that one
 * is freed first). Returns 0 and sets *response, or a negative value to close
 * the connection, gracefully, after the responses before it. A replacement is
 * not replaced again. */
typedef int (*ct_server_error_fn)(ct_server_t *srv, int status, void **response);

/* The server is finished and its memory may be reclaimed. status is 0 after a
 * graceful end, the error that ended the connection, or CT_ECANCELED after
 * ct_server_close(). */
typedef void (*ct_server_close_cb)(ct_server_t *srv, int status);

/* Reads the context a request carries (its deadline as the time left, its
 * trace; ct_http_read_context for HTTP) into *out, which comes initialized
 * (ct_context_init): the deadline is made absolute from now, when the
 * request was read. Returns 1 if the request carries one, 0 (or a negative
 * error: one that did not parse, which the hook may count) if not. */
typedef int (*ct_server_context_fn)(void *ctx, const void *request, uint64_t now,
                                    ct_context_t *out);

/* What servers count (stats.h), shared by the servers of one loop (a
 * listener's): each counter has one writer, the loop. */
typedef struct ct_server_stats {
    ct_counter_t requests;  /* read */
    ct_counter_t responses; /* handed to the transport (on_error's included) */
    /* requests that ended in an error (answered by on_error, or ending the
     * connection), by kind (error.h) */
    ct_counter_t errors[CT_KIND_COUNT];
    /* From the read of a request to the hand-off of its response to the
     * transport, in ns, on the loop's batch clock (loop.h): to within the
     * batches that read and answered it; 0 for one answered in the batch
     * that read it. */
    ct_histogram_t latency;
} ct_server_stats_t;

/* A server's bounds, hooks and counts. */
typedef struct ct_server_config {
    /* Requests read and not yet answered, at most; 0 means the default.
     * Never more than the transport's max_in_flight (transport.h). */
    size_t max_in_flight;
    /* Frees requests never handed to the service and responses never sent.
     * May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    /* May be NULL: then a service error closes the connection. */
    ct_server_error_fn on_error;
    /* Multiplex only, both or neither: the server reads each request's tag
     * before the service gets it and writes it into the response. NULL when
     * the service tags its responses itself. */
    ct_tag_get_fn get_tag;
    ct_tag_set_fn set_tag;
    /* The bytes a connection may hold (requests read and not answered, and
     * answers not yet taken by the transport), as msg_size counts them:
     * past max_bytes (0: CT_SERVER_DEFAULT_MAX_BYTES) the server stops
     * reading until answers leave, as it does at max_in_flight. A peer that
     * pipelines large requests and never reads costs this much, not
     * max_in_flight times its largest message. msg_size NULL: no byte
     * bound (a listener sets ct_buf_msg_size). */
    size_t max_bytes;
    size_t (*msg_size)(const void *msg);
    /* Shared with the loop's other connections (budget.h; NULL: none),
     * counted with msg_size too. */
    ct_budget_t *budget;
    /* May be NULL. A request that carries a context reaches the service
     * with it as op->ctx (context.h), so every layer under the server
     * honours its deadline. One whose deadline passes before the service
     * takes it is not started; an answer that comes after it is replaced
     * by on_error's answer to CT_ETIMEDOUT, when there is an on_error (a
     * protocol without error answers still gets its answer, late). */
    ct_server_context_fn read_context;
    void *context_ctx;
    /* May be NULL: what this server counts goes there (a listener sets its
     * own, ct_listener_add_stats()). */
    ct_server_stats_t *stats;
} ct_server_config_t;

struct ct_server_slot;

/* A server: one transport driven with one service. */
struct ct_server {
    void *data;                /* for the user */
    ct_loop_t *loop;           /* its loop */
    ct_transport_t *transport; /* the connection it reads requests from */
    ct_service_t *service;     /* the service it calls */
    /* private */
    struct ct_server_slot *slots;
    size_t *free_slots;
    size_t *call_queue; /* ring: read, waiting for the service */
    size_t *send_queue; /* ring: in the order responses must leave */
    size_t cap;
    size_t nfree;       /* slots free in all */
    size_t nfree_stack; /* of which released ones, on the free stack */
    size_t never_used;  /* slots from here on were never handed out */
    size_t call_head, call_count;
    size_t send_head, send_count;
    size_t outstanding; /* ops in the service */
    size_t held_bytes;  /* counted by cfg.msg_size (see max_bytes) */
    int in_order;       /* pipeline: responses leave in request order */
    int reading;
    int draining; /* no more requests will be read */
    int ending;
    int transport_closed;
    int status;
    uint64_t last_request_ms;
    ct_server_config_t cfg;
    ct_server_close_cb close_cb;
    ct_waker_t ready_waker;
    ct_waker_t send_waker;
};

/* Graceful end: stop reading, answer every request already read, shut the
 * write side, close, then close_cb(srv, 0). CT_ECLOSING if already ending. */
int ct_server_shutdown(ct_server_t *srv);

/* Abrupt end: cancel the requests in the service, drop unsent responses,
 * close the transport, then close_cb(srv, CT_ECANCELED). A graceful end
 * still waiting for its write side to shut down is cut short the same way.
 * CT_ECLOSING if the transport is already closing. */
int ct_server_close(ct_server_t *srv);

/* Requests read and not yet answered. */
size_t ct_server_in_flight(const ct_server_t *srv);

/* Refuses the rest of what the peer sends, as for a malformed request:
 * stops reading, answers every request already read, then sends on_error's
 * answer to status (an HTTP server's 408 for CT_EREQTIMEOUT, say), shuts
 * the write side and closes; without on_error, it ends after the answers
 * with status. The listener's header and body timeouts call it. CT_ECLOSING
 * if the server is already ending or draining. */
int ct_server_refuse(ct_server_t *srv, int status);

/* uv_now() when the last request was read (or the server started): idle
 * timeouts count from it, not from the last byte. */
uint64_t ct_server_last_request(const ct_server_t *srv);

/* The server whose request op is: the op a server gave its service's call
 * (a layer's hook sees it, layer/observe.h). NULL for any other op. Valid
 * until the op completes. */
ct_server_t *ct_server_of_call(const ct_op_t *op);

/* 0, or CT_EINVAL for a configuration the server would refuse: get_tag
 * without set_tag or the other way round, or tag accessors without
 * multiplexing. Listeners check it at init, rather than fail every
 * connection later. cfg may be NULL (the defaults). */
int ct_server_config_check(const ct_server_config_t *cfg, int multiplex);

/* For protocol implementers: starts serving transport (which the server owns
 * and closes when it ends) with service (which it does not own). in_order: 1
 * for request order, 0 for completion order. Returns 0, CT_EINVAL or
 * UV_ENOMEM. */
int ct_server_init(ct_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                   ct_service_t *service, int in_order, const ct_server_config_t *cfg,
                   ct_server_close_cb close_cb);

#ifdef __cplusplus
}
#endif
#endif
