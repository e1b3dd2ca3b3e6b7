/* Multiplexed request/response: every request carries a tag and responses
 * come back in any order, each with its request's tag (HTTP/2, Mux, AMQP).
 * A slow request holds back nothing but itself.
 *
 * The client and server are the shared ones of client.h and server.h, which
 * describe their behaviour and errors. What multiplexing adds:
 *
 *  - The client tags each request through a tag store (tag_store.h) and
 *    completes the op whose tag a response carries. A response whose tag is
 *    unknown, stale or already answered is CT_EDESYNC.
 *  - Tags run out with the in-flight bound (the tag store's capacity bounds
 *    it too): poll_ready is PENDING until a tag frees up.
 *  - A canceled op keeps its tag retired until the server's answer arrives
 *    (then the answer is discarded), and the slab store versions every tag,
 *    so a late answer is never delivered to another request.
 *  - The server sends each response as soon as it is ready.
 */
#ifndef CTOWER_MULTIPLEX_H
#define CTOWER_MULTIPLEX_H

#include "ctower/client.h"
#include "ctower/server.h"
#include "ctower/tag_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initializes a multiplex client over transport (which it owns from now on)
 * with tags (which it does not own: free it after the client closed), and
 * starts reading. In flight at most: cfg->max_in_flight or, if 0 or larger,
 * the store's capacity, and never more than the transport's max_in_flight.
 * Returns 0, CT_EINVAL or UV_ENOMEM (then the transport
 * is still the caller's). */
int ct_multiplex_client_init(ct_client_t *client, ct_loop_t *loop, ct_transport_t *transport,
                             ct_tag_store_t *tags, const ct_client_config_t *cfg);

/* Starts a multiplex server: each response leaves as soon as the service has
 * it. If cfg has get_tag and set_tag, the server copies each request's tag
 * into its response; otherwise the service must. The server owns transport,
 * not service. Returns 0, CT_EINVAL or UV_ENOMEM. */
int ct_multiplex_server_init(ct_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                             ct_service_t *service, const ct_server_config_t *cfg,
                             ct_server_close_cb close_cb);

#ifdef __cplusplus
}
#endif
#endif
