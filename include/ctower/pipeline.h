/* Pipelined request/response over one transport: responses come back in the
 * order the requests were sent (Redis, HTTP/1.1).
 *
 * ct_pipeline_client_t is a service: each call sends its request and the
 * response that comes back in that position completes it.
 * ct_pipeline_server_t drives one transport with one service: it calls the
 * service for every request it reads and sends the responses in request order,
 * whatever order the service finishes them in.
 */
#ifndef CTOWER_PIPELINE_H
#define CTOWER_PIPELINE_H

#include "ctower/service.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CT_PIPELINE_DEFAULT_IN_FLIGHT 64

/* ---- client ------------------------------------------------------------ */

typedef struct ct_pipeline_client_config {
    /* Requests in flight at most, canceled ones whose answer is still due
     * included; poll_ready is PENDING beyond. 0 means the default. */
    size_t max_in_flight;
    /* Frees a request that will never be sent and a response that nobody
     * waits for any more (a canceled op's). May be NULL if messages need no
     * freeing. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_pipeline_client_config_t;

struct ct_pipeline_client_slot;

typedef struct ct_pipeline_client {
    ct_service_t service; /* first: a client is a service */
    /* private */
    ct_transport_t *transport;
    struct ct_pipeline_client_slot *slots; /* ring: oldest request first */
    size_t cap;
    size_t head;
    size_t count; /* slots in use */
    size_t sent;  /* slots from head already handed to the transport */
    int reserved; /* a READY reserved one slot */
    int error;    /* the kind that killed the client (0 while alive) */
    int cause;    /* the underlying error */
    int write_shut;
    ct_msg_free_fn free_msg;
    void *free_ctx;
    ct_waitq_t ready_waiters;
    ct_waker_t send_waker;
} ct_pipeline_client_t;

/* Initializes client over transport, which it owns from now on (closing the
 * client closes it) and starts reading from at once: a response with nothing
 * in flight is a CT_EDESYNC error and a peer that closes while the client is
 * idle is reported by the next poll_ready. cfg may be NULL for the defaults.
 * Returns 0, CT_EINVAL or UV_ENOMEM (then the transport is still the
 * caller's).
 *
 * Errors an op can complete with: CT_ESENDBROKEN or CT_ERECVBROKEN (op->cause
 * is the transport's error, UV_EOF when the peer closed), CT_EDESYNC,
 * CT_EOVERLOADED (called at capacity without a READY), CT_ECANCELED,
 * CT_ECLOSED (the client was closed). Once the transport breaks every op in
 * flight fails with that cause and the client stays dead: poll_ready and
 * call return the error. ct_service_shutdown() sends what is queued, closes
 * the write side and completes when every response due has arrived. */
int ct_pipeline_client_init(ct_pipeline_client_t *client, ct_loop_t *loop,
                            ct_transport_t *transport, const ct_pipeline_client_config_t *cfg);

/* The underlying error of a dead client (0 while it is alive). */
int ct_pipeline_client_cause(const ct_pipeline_client_t *client);

/* Requests in flight, tombstones of canceled ones included. */
size_t ct_pipeline_client_in_flight(const ct_pipeline_client_t *client);

/* ---- server ------------------------------------------------------------ */

typedef struct ct_pipeline_server ct_pipeline_server_t;

/* Turns a service error into a response to send in its place: returns 0 and
 * sets *response, or a negative value to close the connection after the
 * earlier responses are sent. */
typedef int (*ct_server_error_fn)(ct_pipeline_server_t *srv, int status, void **response);

/* The server is finished and its memory may be reclaimed. status is 0 after a
 * graceful end (the peer closed its side, or ct_pipeline_server_shutdown),
 * the error that ended the connection, or CT_ECANCELED after
 * ct_pipeline_server_close(). */
typedef void (*ct_pipeline_server_close_cb)(ct_pipeline_server_t *srv, int status);

typedef struct ct_pipeline_server_config {
    /* Requests read but not yet answered, at most; the server stops reading
     * at the bound. 0 means the default. */
    size_t max_in_flight;
    /* Frees requests never handed to the service and responses never sent.
     * May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
    /* May be NULL: then a service error closes the connection. */
    ct_server_error_fn on_error;
} ct_pipeline_server_config_t;

struct ct_pipeline_server_slot;

struct ct_pipeline_server {
    void *data; /* for the user */
    ct_loop_t *loop;
    ct_transport_t *transport;
    ct_service_t *service;
    /* private */
    struct ct_pipeline_server_slot *slots;
    size_t cap;
    size_t head;
    size_t count;  /* requests read and not yet answered */
    size_t called; /* slots from head handed to the service */
    size_t outstanding;
    int reading;
    int draining; /* no more requests will be read */
    int ending;
    int transport_closed;
    int status;
    ct_msg_free_fn free_msg;
    void *free_ctx;
    ct_server_error_fn on_error;
    ct_pipeline_server_close_cb close_cb;
    ct_waker_t ready_waker;
    ct_waker_t send_waker;
};

/* Starts serving transport (which the server owns and closes when it ends)
 * with service (which it does not own: close it after close_cb). Returns 0,
 * CT_EINVAL or UV_ENOMEM. */
int ct_pipeline_server_init(ct_pipeline_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                            ct_service_t *service, const ct_pipeline_server_config_t *cfg,
                            ct_pipeline_server_close_cb close_cb);

/* Graceful end: stop reading, answer every request already read, close the
 * write side, close, then close_cb(srv, 0). CT_ECLOSING if already ending. */
int ct_pipeline_server_shutdown(ct_pipeline_server_t *srv);

/* Abrupt end: cancel the requests in the service, drop unsent responses,
 * close the transport, then close_cb(srv, CT_ECANCELED). CT_ECLOSING if
 * already ending. */
int ct_pipeline_server_close(ct_pipeline_server_t *srv);

/* Requests read and not yet answered. */
size_t ct_pipeline_server_in_flight(const ct_pipeline_server_t *srv);

#ifdef __cplusplus
}
#endif
#endif
