/* Pipelined request/response: responses come back in the order the requests
 * were sent (Redis, HTTP/1.1). One slow request holds back the answers behind
 * it (head-of-line blocking); in exchange the messages carry no tags.
 *
 * The client and server are the shared ones of client.h and server.h, which
 * describe their behaviour and errors.
 */
#ifndef CTOWER_PIPELINE_H
#define CTOWER_PIPELINE_H

#include "ctower/client.h"
#include "ctower/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initializes a pipeline client over transport (which it owns from now on)
 * and starts reading. cfg may be NULL for the defaults. Returns 0, CT_EINVAL
 * or UV_ENOMEM (then the transport is still the caller's). */
int ct_pipeline_client_init(ct_client_t *client, ct_loop_t *loop, ct_transport_t *transport,
                            const ct_client_config_t *cfg);

/* Starts a pipeline server: responses leave in request order, whatever order
 * the service finishes them in. The server owns transport, not service.
 * Returns 0, CT_EINVAL (also for a config with tag functions) or UV_ENOMEM. */
int ct_pipeline_server_init(ct_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                            ct_service_t *service, const ct_server_config_t *cfg,
                            ct_server_close_cb close_cb);

#ifdef __cplusplus
}
#endif
#endif
