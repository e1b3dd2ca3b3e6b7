/* Connecting a stream, and reporting a failed connection only once its
 * handle is closed, so the caller may free or reuse the memory at once. */
#include "ctower/connector.h"
#include "ctower/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct attempt {
    uv_connect_t req;
    ct_stream_t *stream;
    ct_connect_cb cb;
    int status;
} attempt_t;

static void on_failed_closed(ct_transport_t *t) {
    attempt_t *a = t->data;
    ct_connect_cb cb = a->cb;
    int status = a->status;
    free(a);
    cb((ct_stream_t *)t, status);
}

static void on_connect(uv_connect_t *req, int status) {
    attempt_t *a = req->data;
    if (status < 0) {
        a->status = status;
        a->stream->transport.data = a;
        ct_transport_close(&a->stream->transport, on_failed_closed);
        return;
    }
    a->cb(a->stream, 0);
    free(a);
}

int ct_connector_init(ct_connector_t *c, ct_loop_t *loop, const char *address,
                      const ct_stream_config_t *cfg) {
    int r;
    if (!c || !loop || !cfg) return CT_EINVAL;
    if ((r = ct_address_parse(address, &c->address)) != 0) return r;
    c->loop = loop;
    c->stream_cfg = *cfg;
    return 0;
}

int ct_connector_connect(ct_connector_t *c, ct_stream_t *stream, ct_connect_cb cb) {
    int is_pipe = c->address.kind == CT_ADDRESS_UNIX;
    attempt_t *a;
    int r;
    if (!cb) return CT_EINVAL;
    a = calloc(1, sizeof *a);
    if (!a) return UV_ENOMEM;
    if ((r = ct_stream_init(stream, c->loop, is_pipe, &c->stream_cfg)) != 0) {
        free(a);
        return r;
    }
    a->stream = stream;
    a->cb = cb;
    a->req.data = a;
    if (is_pipe) {
        uv_pipe_connect(&a->req, &stream->h.pipe, c->address.path, on_connect);
        return 0;
    }
    uv_tcp_nodelay(&stream->h.tcp, 1);
    r = uv_tcp_connect(&a->req, &stream->h.tcp, (const struct sockaddr *)&c->address.sa,
                       on_connect);
    if (r < 0) {
        /* The handle exists: the failure is reported once it is closed. */
        a->status = r;
        stream->transport.data = a;
        ct_transport_close(&stream->transport, on_failed_closed);
    }
    return 0;
}
