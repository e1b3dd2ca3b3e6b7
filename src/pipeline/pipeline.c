/* A pipeline is the shared client without a tag store (responses answer
 * requests in send order), and the shared server sending in request order. */
#include "ctower/pipeline.h"
#include "ctower/error.h"

int ct_pipeline_client_init(ct_client_t *client, ct_loop_t *loop, ct_transport_t *transport,
                            const ct_client_config_t *cfg) {
    size_t cap = cfg && cfg->max_in_flight ? cfg->max_in_flight : CT_CLIENT_DEFAULT_IN_FLIGHT;
    return ct_client_init(client, loop, transport, NULL, cap, cfg);
}

int ct_pipeline_server_init(ct_server_t *srv, ct_loop_t *loop, ct_transport_t *transport,
                            ct_service_t *service, const ct_server_config_t *cfg,
                            ct_server_close_cb close_cb) {
    if (ct_server_config_check(cfg, 0) != 0) return CT_EINVAL;
    return ct_server_init(srv, loop, transport, service, 1, cfg, close_cb);
}
