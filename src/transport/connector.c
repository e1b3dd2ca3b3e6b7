/* Connecting a stream, and reporting a failed connection only once its
 * handle is closed, so the caller may free or reuse the memory at once.
 * A host given by name is resolved first (uv_getaddrinfo, off the loop), and
 * its addresses are tried in the resolver's order until one connects: a name
 * such as "localhost" may give ::1 before 127.0.0.1, and a server that
 * listens on only one of them must still be reached.
 *
 * With a timeout, a timer bounds the whole attempt: the resolver and every
 * address tried. The attempt (the connect request, the resolver request and
 * the timer) is its own allocation, so it can outlive the report when the
 * resolver is still running at the timeout: libuv cannot stop a lookup that
 * a thread has started, and its callback must find its request alive. */
#include "ctower/connector.h"
#include "ctower/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum phase { RESOLVING, CONNECTING, HANDSHAKING, CLOSING, DONE };

/* An attempt is under way until its outcome is reported (DONE); it may
 * live on after that, for a resolver still running. */
typedef struct attempt {
    uv_connect_t req;
    uv_getaddrinfo_t resolve;
    uv_timer_t timer;
    /* copied: the connector need not outlive its connects */
    ct_loop_t *loop;
    ct_stream_config_t stream_cfg;
    ct_stream_t *stream;
    ct_connect_cb cb;
    struct addrinfo *addresses; /* from the resolver, or NULL */
    struct addrinfo *next;      /* the next address to try */
    char peer_name[256];        /* what a TLS server's certificate must name */
    int status;
    enum phase phase;
    int aborted; /* UV_ETIMEDOUT or UV_ECANCELED, once the attempt is cut short */
    int timer_open;
    int resolver_busy;     /* its callback is still to come */
    ct_task_t report_task; /* an abort while resolving reports from here */
} attempt_t;

static void try_next_address(attempt_t *a);

static void on_timer_closed(uv_handle_t *h) {
    free(h->data);
}

/* The attempt's memory goes once nothing of libuv's refers to it. */
static void release(attempt_t *a) {
    if (a->addresses) uv_freeaddrinfo(a->addresses);
    a->addresses = NULL;
    if (a->timer_open)
        uv_close((uv_handle_t *)&a->timer, on_timer_closed);
    else
        free(a);
}

/* The outcome, once. */
static void report(attempt_t *a, int status) {
    a->phase = DONE;
    a->stream->connecting = NULL;
    a->cb(a->stream, status);
}

static void finish(attempt_t *a, int status) {
    report(a, status);
    release(a);
}

static void on_failed_closed(ct_transport_t *t) {
    attempt_t *a = t->data;
    if (a->aborted)
        finish(a, a->aborted);
    else if (a->next)
        try_next_address(a);
    else
        finish(a, a->status);
}

/* The stream's handle exists: the failure is reported once it is closed. */
static void fail_open_stream(attempt_t *a, int status) {
    a->status = status;
    a->phase = CLOSING;
    a->stream->transport.data = a;
    ct_transport_close(&a->stream->transport, on_failed_closed);
}

/* No stream was made, so its memory is free at once; the attempt itself
 * waits for the resolver's callback. */
static void report_aborted(ct_task_t *task) {
    attempt_t *a = CT_CONTAINER_OF(task, attempt_t, report_task);
    report(a, a->aborted);
    if (!a->resolver_busy) release(a);
}

/* Cuts the attempt short: the outcome is status (UV_ETIMEDOUT or
 * UV_ECANCELED), reported from a fresh stack (a cancel may come from
 * anywhere). Once closing, on_failed_closed reports it. */
static void abort_attempt(attempt_t *a, int status) {
    if (a->aborted || a->phase == DONE) return; /* the first reason stands */
    a->aborted = status;
    if (a->phase == RESOLVING) {
        /* Stops a lookup no thread has started; a running one calls back
         * later, and on_resolved then only notes that it is done. */
        uv_cancel((uv_req_t *)&a->resolve);
        ct_task_init(&a->report_task, report_aborted);
        ct_task_post(a->loop, &a->report_task);
    } else if (a->phase == CONNECTING || a->phase == HANDSHAKING) {
        fail_open_stream(a, status); /* on_connect sees UV_ECANCELED */
    }
}

static void on_timeout(uv_timer_t *timer) {
    abort_attempt(timer->data, UV_ETIMEDOUT);
}

/* A TLS stream is connected once its handshake has succeeded: a server
 * whose certificate is refused is a connect that failed. */
static void on_secure(ct_stream_t *stream, int status) {
    attempt_t *a = stream->connecting;
    if (status < 0)
        fail_open_stream(a, status);
    else
        finish(a, 0);
}

static void on_connect(uv_connect_t *req, int status) {
    attempt_t *a = req->data;
    if (a->phase != CONNECTING) return; /* closed by a timeout or a cancel */
    /* options once the socket exists (libuv 1.44 would apply a keepalive set
     * before the connect with its own delay, not ours) */
    if (status == 0 && a->stream->h.handle.type == UV_TCP) status = ct_stream_connected(a->stream);
    if (status == 0 && a->stream_cfg.tls) {
        a->phase = HANDSHAKING;
        status = ct_stream_tls_start(a->stream, 0, a->peer_name, on_secure);
        if (status == 0) return;
    }
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
    a->stream->connecting = a; /* the init cleared it */
    a->phase = CONNECTING;
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
    a->resolver_busy = 0;
    if (a->aborted) { /* reported, or about to be, by report_aborted */
        if (status == 0) uv_freeaddrinfo(res);
        if (a->phase == DONE) release(a);
        return;
    }
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
    a->resolver_busy = 1;
    return uv_getaddrinfo(a->loop->uv, &a->resolve, on_resolved, addr->host, port, &hints);
}

/* The host as the address names it; none for a Unix socket. */
static void set_peer_name(attempt_t *a, const ct_address_t *addr) {
    const struct sockaddr *sa = (const struct sockaddr *)&addr->sa;
    if (addr->kind != CT_ADDRESS_TCP)
        a->peer_name[0] = 0;
    else if (addr->host[0])
        snprintf(a->peer_name, sizeof a->peer_name, "%s", addr->host);
    else if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, a->peer_name, sizeof a->peer_name);
    else
        uv_ip4_name((const struct sockaddr_in *)sa, a->peer_name, sizeof a->peer_name);
}

int ct_connector_init(ct_connector_t *c, ct_loop_t *loop, const char *address,
                      const ct_stream_config_t *cfg) {
    int r;
    if (!c || !loop || ct_stream_config_check(cfg) != 0) return CT_EINVAL;
    if ((r = ct_address_parse(address, &c->address)) != 0) return r;
    c->loop = loop;
    c->stream_cfg = *cfg;
    c->timeout_ms = 0;
    return 0;
}

static void start_timer(attempt_t *a, uint64_t timeout_ms) {
    uv_timer_init(a->loop->uv, &a->timer);
    a->timer.data = a;
    a->timer_open = 1;
    uv_timer_start(&a->timer, on_timeout, timeout_ms, 0);
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
    set_peer_name(a, &c->address);
    if (c->address.kind == CT_ADDRESS_UNIX) {
        if ((r = ct_stream_init(stream, c->loop, 1, &c->stream_cfg)) != 0) goto fail;
        stream->connecting = a;
        a->phase = CONNECTING;
        a->req.data = a;
        uv_pipe_connect(&a->req, &stream->h.pipe, c->address.path, on_connect);
    } else if (c->address.host[0]) {
        if ((r = start_resolving(a, &c->address)) != 0) goto fail;
        stream->connecting = a; /* no init yet: only this field is ours */
    } else {
        if ((r = connect_tcp(a, (const struct sockaddr *)&c->address.sa)) != 0) goto fail;
    }
    /* Every path above reports from a callback, never from here: the
     * attempt is still ours to time. */
    if (c->timeout_ms) start_timer(a, c->timeout_ms);
    return 0;
fail:
    free(a);
    return r;
}

int ct_connector_cancel(ct_stream_t *stream) {
    attempt_t *a = stream ? stream->connecting : NULL;
    if (!a || a->phase == DONE || a->aborted) return CT_EINVAL; /* cut short already */
    abort_attempt(a, UV_ECANCELED);
    return 0;
}
