/* Connecting a stream, and reporting a failed connection only once its
 * handle is closed, so the caller may free or reuse the memory at once.
 * A host given by name is resolved first (uv_getaddrinfo, off the loop), and
 * its addresses are tried in the resolver's order until one connects: a name
 * such as "localhost" may give ::1 before 127.0.0.1, and a server that
 * listens on only one of them must still be reached. */
#include "ctower/connector.h"
#include "ctower/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct attempt {
    uv_connect_t req;
    uv_getaddrinfo_t resolve;
    /* copied: the connector need not outlive its connects */
    ct_loop_t *loop;
    ct_stream_config_t stream_cfg;
    ct_stream_t *stream;
    ct_connect_cb cb;
    struct addrinfo *addresses; /* from the resolver, or NULL */
    struct addrinfo *next;      /* the next address to try */
    int status;
} attempt_t;

static void try_next_address(attempt_t *a);

static void finish(attempt_t *a, int status) {
    ct_connect_cb cb = a->cb;
    ct_stream_t *stream = a->stream;
    if (a->addresses) uv_freeaddrinfo(a->addresses);
    free(a);
    cb(stream, status);
}

static void on_failed_closed(ct_transport_t *t) {
    attempt_t *a = t->data;
    if (a->next)
        try_next_address(a);
    else
        finish(a, a->status);
}

/* The stream's handle exists: the failure is reported once it is closed. */
static void fail_open_stream(attempt_t *a, int status) {
    a->status = status;
    a->stream->transport.data = a;
    ct_transport_close(&a->stream->transport, on_failed_closed);
}

static void on_connect(uv_connect_t *req, int status) {
    attempt_t *a = req->data;
    if (status < 0) {
        fail_open_stream(a, status);
        return;
    }
    finish(a, 0);
}

/* Makes the stream and starts connecting it to sa. Returns 0 (on_connect
 * will run, or the failure is already on its way through on_failed_closed)
 * or the error from making the stream, which is then not open. */
static int connect_tcp(attempt_t *a, const struct sockaddr *sa) {
    int r = ct_stream_init(a->stream, a->loop, 0, &a->stream_cfg);
    if (r < 0) return r;
    uv_tcp_nodelay(&a->stream->h.tcp, 1);
    a->req.data = a;
    r = uv_tcp_connect(&a->req, &a->stream->h.tcp, sa, on_connect);
    if (r < 0) fail_open_stream(a, r);
    return 0;
}

static void try_next_address(attempt_t *a) {
    while (a->next) {
        const struct addrinfo *ai = a->next;
        int r;
        a->next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        r = connect_tcp(a, ai->ai_addr);
        if (r == 0) return;
        a->status = r;
    }
    finish(a, a->status);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    attempt_t *a = req->data;
    if (status < 0) {
        finish(a, status);
        return;
    }
    a->addresses = a->next = res;
    a->status = UV_EAI_NONAME; /* if no address is IPv4 or IPv6 */
    try_next_address(a);
}

/* uv_getaddrinfo copies the name and the port. */
static int start_resolving(attempt_t *a, const ct_address_t *addr) {
    struct addrinfo hints;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    snprintf(port, sizeof port, "%d", addr->port);
    a->resolve.data = a;
    return uv_getaddrinfo(a->loop->uv, &a->resolve, on_resolved, addr->host, port, &hints);
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
    attempt_t *a;
    int r;
    if (!cb) return CT_EINVAL;
    a = calloc(1, sizeof *a);
    if (!a) return UV_ENOMEM;
    a->loop = c->loop;
    a->stream_cfg = c->stream_cfg;
    a->stream = stream;
    a->cb = cb;
    if (c->address.kind == CT_ADDRESS_UNIX) {
        if ((r = ct_stream_init(stream, c->loop, 1, &c->stream_cfg)) != 0) goto fail;
        a->req.data = a;
        uv_pipe_connect(&a->req, &stream->h.pipe, c->address.path, on_connect);
        return 0;
    }
    if (c->address.host[0])
        r = start_resolving(a, &c->address);
    else
        r = connect_tcp(a, (const struct sockaddr *)&c->address.sa);
    if (r == 0) return 0;
fail:
    free(a);
    return r;
}
