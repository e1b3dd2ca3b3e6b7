/* A multiplex is the shared client with the user's tag store, and the shared
 * server sending in completion order. */
#include "ctower/multiplex.h"
#include "ctower/error.h"

int ct_multiplex_client_init(ct_client_t *client, ct_loop_t *loop, ct_transport_t *transport,
                             ct_tag_store_t *tags, const ct_client_config_t *cfg) {
    size_t cap;
    if (!tags || tags->capacity == 0) return CT_EINVAL;
    cap = cfg && cfg->max_in_flight ? cfg->max_in_flight : CT_CLIENT_DEFAULT_IN_FLIGHT;
    if (cap > tags->capacity) cap = tags->capacity; /* no more in flight than tags */
    return ct_client_init(client, loop, transport, tags, cap, cfg);
}

int ct_multiplex_server_init(ct_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                             ct_service_t *service, const ct_server_config_t *cfg,
                             ct_server_close_cb close_cb) {
    return ct_server_init(srv, loop, transport, service, 0, cfg, close_cb);
}
