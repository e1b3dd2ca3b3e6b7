/* ct_connector_t: makes a new connected stream transport on demand, to one
 * address (the C form of tower's MakeTransport). Reconnecting clients and
 * pools call it each time they need a connection.
 */
#ifndef CTOWER_CONNECTOR_H
#define CTOWER_CONNECTOR_H

#include "ctower/address.h"
#include "ctower/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* status 0: stream is connected and is a transport, now the caller's.
 * Negative (UV_ECONNREFUSED, UV_ENOENT for a missing socket file, UV_EAI_*
 * for a name that does not resolve, UV_ETIMEDOUT past the connector's
 * timeout, ...): the connection failed and the stream is already closed; its
 * memory is free. For a name with several addresses, the error is the last
 * address's. With TLS in the stream configuration, connected means the
 * handshake succeeded too (the timeout covers it): CT_ETLSVERIFY if the
 * server's certificate is refused (checked against the address's host, or
 * the configuration's server_name), CT_ETLS for any other failure. */
typedef void (*ct_connect_cb)(ct_stream_t *stream, int status);

/* Makes connected streams to one address on demand. */
typedef struct ct_connector {
    ct_loop_t *loop;               /* the loop its streams are on */
    ct_address_t address;          /* where it connects */
    ct_stream_config_t stream_cfg; /* each stream's configuration */
    /* Set after init to bound each connect, resolving the name included:
     * past it the connect fails with UV_ETIMEDOUT. 0 (the default): no
     * bound but the kernel's (for TCP about two minutes of SYN retries to a
     * host that does not answer). */
    uint64_t timeout_ms;
} ct_connector_t;

/* Initializes connector for address with the configuration every stream
 * gets. A host given by name is resolved on each connect (see address.h).
 * Returns 0, CT_EBADADDR or CT_EINVAL (also for a stream configuration
 * ct_stream_config_check() refuses). */
int ct_connector_init(ct_connector_t *connector, ct_loop_t *loop, const char *address,
                      const ct_stream_config_t *cfg);

/* Starts connecting stream (caller-allocated, alive until cb). Returns 0 and
 * cb runs once, with the outcome; or CT_EINVAL / UV_ENOMEM / a libuv error
 * from creating the handle, and then cb will not run. */
int ct_connector_connect(ct_connector_t *connector, ct_stream_t *stream, ct_connect_cb cb);

/* Ends the connect under way on stream: its callback runs with UV_ECANCELED
 * (from a fresh stack, once the stream's handle is closed), unless the
 * outcome was reported already. Returns 0, or CT_EINVAL if no connect is
 * under way on stream. */
int ct_connector_cancel(ct_stream_t *stream);

#ifdef __cplusplus
}
#endif
#endif
