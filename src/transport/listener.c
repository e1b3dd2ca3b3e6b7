/* The listener: one heap-allocated connection (stream + server) per accepted
 * socket, kept in a list for the idle sweep and for shutdown. */
#include "ctower/listener.h"
#include "ctower/error.h"
#include "ctower/multiplex.h"
#include "ctower/pipeline.h"
#include "../core/list.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct conn {
    ct_link_t link;
    ct_listener_t *listener;
    ct_service_t *service; /* the listener's, or this connection's own */
    ct_stream_t stream;
    ct_http2_t h2; /* with HTTP/2: between the stream and the server */
    ct_server_t server;
    struct sockaddr_storage peer; /* TCP: the client's address (family 0: unknown) */
} conn_t;

static void accept_one(ct_listener_t *l);

static int is_pipe(const ct_listener_t *l) {
    return l->address.kind == CT_ADDRESS_UNIX;
}

static void on_handle_closed(uv_handle_t *handle) {
    ct_listener_t *l = handle->data;
    if (--l->handles_open == 0) {
        if (is_pipe(l)) unlink(l->address.path);
        if (l->close_cb) l->close_cb(l);
    }
}

static void finish_if_done(ct_listener_t *l) {
    if (!l->closing || l->nconns > 0 || uv_is_closing((uv_handle_t *)&l->timer)) return;
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
}

/* A connection's own service goes back to the user once nothing uses it. */
static void done_with_service(conn_t *c) {
    ct_listener_t *l = c->listener;
    if (c->service && l->cfg.new_service) l->cfg.done_service(l, c->service);
    c->service = NULL;
}

static void on_conn_closed(ct_server_t *srv, int status) {
    conn_t *c = CT_CONTAINER_OF(srv, conn_t, server);
    ct_listener_t *l = c->listener;
    (void)status;
    done_with_service(c);
    ct_list_remove(&c->link);
    l->nconns--;
    ct_gauge_set(&l->stats.connections, (int64_t)l->nconns);
    free(c);
    if (l->accept_paused && !l->closing) {
        l->accept_paused = 0;
        accept_one(l); /* the connection the kernel kept waiting */
    }
    finish_if_done(l);
}

static void refused_closed(conn_t *c) {
    done_with_service(c);
    free(c);
}

static void on_refused_closed(ct_transport_t *t) {
    refused_closed(CT_CONTAINER_OF(t, conn_t, stream));
}

static void on_refused_h2_closed(ct_transport_t *t) {
    refused_closed(CT_CONTAINER_OF(t, conn_t, h2));
}

/* The transport a refused connection closes: the outermost one made. */
static void close_refused(conn_t *c) {
    if (c->h2.bytes)
        ct_transport_close(&c->h2.transport, on_refused_h2_closed);
    else
        ct_transport_close(&c->stream.transport, on_refused_closed);
}

/* The service for connection c: the listener's, or one made for it. */
static int serve_with(ct_listener_t *l, conn_t *c) {
    ct_transport_t *t = &c->stream.transport;
    int r;
    c->service = l->cfg.new_service ? l->cfg.new_service(l, &c->stream) : l->service;
    if (!c->service) return CT_EINVAL; /* the user refused the connection */
    if (l->cfg.http2) {
        if ((r = ct_http2_init(&c->h2, l->loop, t, l->cfg.http2)) != 0) return r;
        t = &c->h2.transport;
    }
    return l->cfg.multiplex ? ct_multiplex_server_init(&c->server, l->loop, t, c->service,
                                                       &l->cfg.server, on_conn_closed)
                            : ct_pipeline_server_init(&c->server, l->loop, t, c->service,
                                                      &l->cfg.server, on_conn_closed);
}

/* Out of memory for the next connection: it stays in the kernel's backlog
 * (libuv stops polling until it is accepted), and the next connection that
 * closes, freeing memory, tries again. */
static void accept_later(ct_listener_t *l, conn_t *c) {
    free(c);
    ct_counter_add(&l->stats.accept_errors, 1);
    l->accept_paused = 1;
}

static void accept_one(ct_listener_t *l) {
    conn_t *c = calloc(1, sizeof *c);
    int r;
    if (!c) {
        accept_later(l, c);
        return;
    }
    c->listener = l;
    if (ct_stream_init(&c->stream, l->loop, is_pipe(l), &l->cfg.stream) != 0) {
        accept_later(l, c);
        return;
    }
    r = uv_accept(&l->h.stream, ct_stream_uv(&c->stream));
    if (r == 0 && !is_pipe(l)) r = ct_stream_connected(&c->stream);
    if (r == 0 && !is_pipe(l)) {
        int len = (int)sizeof c->peer; /* (a failure leaves it unknown, family 0) */
        uv_tcp_getpeername((uv_tcp_t *)ct_stream_uv(&c->stream), (struct sockaddr *)&c->peer, &len);
    }
    if (r == 0 && l->cfg.stream.tls) r = ct_stream_tls_start(&c->stream, 1, NULL, NULL);
    if (r == 0) r = serve_with(l, c);
    if (r != 0) {
        ct_counter_add(&l->stats.accept_errors, 1);
        close_refused(c);
        return;
    }
    ct_list_push_back(&l->conns, &c->link);
    l->nconns++;
    ct_counter_add(&l->stats.accepted, 1);
    ct_gauge_set(&l->stats.connections, (int64_t)l->nconns);
}

static void on_connection(uv_stream_t *server, int status) {
    ct_listener_t *l = server->data;
    if (status < 0 || l->closing) {
        if (status < 0) ct_counter_add(&l->stats.accept_errors, 1);
        return;
    }
    if (l->cfg.max_connections && l->nconns >= l->cfg.max_connections) {
        /* Not accepting makes libuv stop polling the socket until we do. */
        l->accept_paused = 1;
        return;
    }
    accept_one(l);
}

/* A request too slow to arrive (its head past header_timeout_ms, the rest
 * past body_timeout_ms, from its first byte) is refused: 408 from an HTTP
 * server's on_error. Returns 1 if c was. */
static int too_slow(ct_listener_t *l, conn_t *c, uint64_t now) {
    int in_header = 0;
    uint64_t since = c->h2.bytes ? 0 : ct_stream_partial_since(&c->stream, &in_header);
    uint64_t limit = in_header ? l->cfg.header_timeout_ms : l->cfg.body_timeout_ms;
    if (!since || !limit || now - since < limit) return 0;
    if (ct_server_refuse(&c->server, CT_EREQTIMEOUT) == 0)
        ct_counter_add(&l->stats.refused_slow, 1);
    return 1;
}

/* Idle: nothing in flight, nothing arriving, no request for idle_timeout_ms
 * (a drip of bytes that never makes a request does not keep it open). */
static void sweep(uv_timer_t *timer) {
    ct_listener_t *l = timer->data;
    uint64_t now = uv_now(timer->loop);
    ct_link_t *node = l->conns.next;
    while (node != &l->conns) {
        conn_t *c = CT_CONTAINER_OF(node, conn_t, link);
        node = node->next; /* refusing may end it */
        if (too_slow(l, c, now)) continue;
        if (l->cfg.idle_timeout_ms && ct_server_in_flight(&c->server) == 0 &&
            now - ct_server_last_request(&c->server) >= l->cfg.idle_timeout_ms &&
            ct_server_shutdown(&c->server) == 0)
            ct_counter_add(&l->stats.closed_idle, 1);
    }
}

/* Every quarter of the shortest timeout: a connection is ended at most a
 * quarter late. */
static uint64_t sweep_every(const ct_listener_config_t *cfg) {
    uint64_t t[3] = {cfg->idle_timeout_ms, cfg->header_timeout_ms, cfg->body_timeout_ms}, m = 0;
    int i;
    for (i = 0; i < 3; i++)
        if (t[i] && (!m || t[i] < m)) m = t[i];
    return m ? (m / 4 ? m / 4 : 1) : 0;
}

static void on_deadline(uv_timer_t *timer) {
    ct_listener_t *l = timer->data;
    ct_link_t *node = l->conns.next;
    while (node != &l->conns) {
        conn_t *c = CT_CONTAINER_OF(node, conn_t, link);
        node = node->next; /* closing may unlink it */
        ct_server_close(&c->server);
    }
}

static socklen_t unix_sockaddr(const char *path, struct sockaddr_un *sa) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof sa->sun_path, "%s", path); /* parsing checked the length */
    return sizeof *sa;
}

/* Whether a server answers at the Unix socket path: a connect to a local
 * socket does not wait, and only a socket nobody listens on any more (left
 * by a process that died) may be removed to bind again. */
static int socket_in_use(const char *path) {
    struct sockaddr_un sa;
    socklen_t len = unix_sockaddr(path, &sa);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), in_use;
    if (fd < 0) return 0;
    in_use = connect(fd, (const struct sockaddr *)&sa, len) == 0 || errno == EAGAIN;
    close(fd);
    return in_use;
}

/* A stale socket file is removed so that the path can be bound again. */
static int free_unix_path(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        if (socket_in_use(path)) return UV_EADDRINUSE;
        unlink(path);
    }
    return 0;
}

/* The socket options libuv's own bind sets: address reuse (a restarted
 * server binds at once, past TIME_WAIT) and dual-stack IPv6. */
static int set_options(const ct_listener_t *l, int fd) {
    int on = 1, off = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return -1;
    if (l->address.sa.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0)
        return -1;
    /* libuv 1.44 has no flag for it (1.49 adds UV_TCP_REUSEPORT) */
    if (l->cfg.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
        return -1;
    return 0;
}

/* A bound, listening socket in *fd. It is made with plain system calls,
 * before any libuv handle exists: a failure then leaves nothing to close,
 * and the listener's memory is the caller's again at once (a handle given to
 * uv_close() would hold it until the loop ran), so a program may try one
 * address after another with the same listener. */
static int listening_socket(const ct_listener_t *l, int *fd) {
    struct sockaddr_un un;
    const struct sockaddr *sa = (const struct sockaddr *)&l->address.sa;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int r;
    if (is_pipe(l)) {
        if ((r = free_unix_path(l->address.path)) != 0) return r;
        len = unix_sockaddr(l->address.path, &un);
        sa = (const struct sockaddr *)&un;
    }
    *fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (*fd < 0) return uv_translate_sys_error(errno);
    if ((!is_pipe(l) && set_options(l, *fd) != 0) || bind(*fd, sa, len) != 0) {
        r = uv_translate_sys_error(errno);
    } else if (listen(*fd, l->cfg.backlog ? l->cfg.backlog : 511) != 0) {
        r = uv_translate_sys_error(errno);
        if (is_pipe(l)) unlink(l->address.path); /* the bind made it */
    } else {
        return 0;
    }
    close(*fd);
    return r;
}

/* The listening socket becomes the listener's handle. */
static int adopt(ct_listener_t *l, int fd) {
    int r =
        is_pipe(l) ? uv_pipe_init(l->loop->uv, &l->h.pipe, 0) : uv_tcp_init(l->loop->uv, &l->h.tcp);
    if (r != 0) {
        close(fd);
        return r;
    }
    l->h.handle.data = l;
    l->handles_open++;
    r = is_pipe(l) ? uv_pipe_open(&l->h.pipe, fd) : uv_tcp_open(&l->h.tcp, fd);
    if (r != 0) {
        close(fd); /* not the handle's: libuv did not take it */
        return r;
    }
    return uv_listen(&l->h.stream, l->cfg.backlog ? l->cfg.backlog : 511, on_connection);
}

/* A listener cannot wait for a resolver: of the names, only "localhost"
 * binds (to 127.0.0.1). */
static int parse_bindable(const char *text, ct_address_t *addr) {
    int r = ct_address_parse(text, addr);
    if (r != 0 || !addr->host[0]) return r;
    if (strcmp(addr->host, "localhost") != 0) return CT_EBADADDR;
    r = uv_ip4_addr("127.0.0.1", addr->port, (struct sockaddr_in *)&addr->sa);
    addr->host[0] = 0;
    return r;
}

/* The configuration, with what HTTP/2 implies: the stream hands the bytes on
 * as they come (in chunks of the pool's buffers), and a multiplex server
 * copies each request's tag (its stream) into its response. */
static int take_config(ct_listener_t *l, const ct_listener_config_t *cfg) {
    l->cfg = *cfg;
    if (cfg->http2) {
        if (cfg->stream.codec || !cfg->stream.pool) return CT_EINVAL;
        l->http2 = *cfg->http2;
        l->http2.server = 1;
        if (!l->http2.stats) l->http2.stats = &l->stats.http2; /* its sessions count here */
        if (!l->http2.pool) l->http2.pool = cfg->stream.pool;
        l->http2.bytes_pool = cfg->stream.pool;
        ct_raw_codec_init(&l->bytes_codec, cfg->stream.pool->buf_cap);
        l->cfg.stream.codec = &l->bytes_codec.codec;
        l->cfg.multiplex = 1;
        if (!l->cfg.server.get_tag && !l->cfg.server.set_tag) {
            l->cfg.server.get_tag = ct_buf_get_tag;
            l->cfg.server.set_tag = ct_buf_set_tag;
        }
        l->cfg.http2 = &l->http2;
    }
    if (ct_stream_config_check(&l->cfg.stream) != 0) return CT_EINVAL;
    if (ct_server_config_check(&l->cfg.server, l->cfg.multiplex) != 0) return CT_EINVAL;
    if (!l->cfg.server.msg_size) l->cfg.server.msg_size = ct_buf_msg_size; /* streams carry bufs */
    return 0;
}

int ct_listener_init(ct_listener_t *l, ct_loop_t *loop, const char *address, ct_service_t *service,
                     const ct_listener_config_t *cfg) {
    int r, fd;
    if (!l || !loop || !cfg || !cfg->new_service != !cfg->done_service) return CT_EINVAL;
    if (!service == !cfg->new_service) return CT_EINVAL; /* one service, or a maker */
    memset(l, 0, sizeof *l);
    if ((r = take_config(l, cfg)) != 0) return r;
    if (!l->cfg.server.stats) l->cfg.server.stats = &l->stats.servers; /* its servers count here */
    if (!l->cfg.stream.stats) l->cfg.stream.stats = &l->stats.streams; /* and its streams */
    if ((r = parse_bindable(address, &l->address)) != 0) return r;
    if (cfg->reuse_port && is_pipe(l)) return CT_EINVAL;
    l->loop = loop;
    l->service = service;
    ct_list_init(&l->conns);
    if ((r = listening_socket(l, &fd)) != 0) return r;
    if ((r = uv_timer_init(loop->uv, &l->timer)) != 0) {
        close(fd);
        return r;
    }
    l->timer.data = l;
    l->handles_open = 1;
    if ((r = adopt(l, fd)) != 0) {
        /* libuv refused a socket that is bound and listening: not seen in
         * practice, but nothing may stay open, so what was made is closed
         * (and, unlike the errors above, holds the memory until the loop
         * runs). */
        l->closing = 1;
        if (l->handles_open == 2) uv_close(&l->h.handle, NULL);
        uv_close((uv_handle_t *)&l->timer, NULL);
        return r;
    }
    if (sweep_every(cfg)) uv_timer_start(&l->timer, sweep, sweep_every(cfg), sweep_every(cfg));
    return 0;
}

int ct_listener_address(ct_listener_t *l, ct_address_t *out) {
    int len = sizeof out->sa;
    *out = l->address;
    if (is_pipe(l)) return 0;
    return uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&out->sa, &len);
}

size_t ct_listener_connections(const ct_listener_t *l) {
    return l->nconns;
}

void ct_listener_counts(const ct_listener_t *l, size_t *accepted, size_t *accept_errors) {
    if (accepted) *accepted = (size_t)ct_counter_read(&l->stats.accepted);
    if (accept_errors) *accept_errors = (size_t)ct_counter_read(&l->stats.accept_errors);
}

int ct_listener_shutdown(ct_listener_t *l, uint64_t deadline_ms, ct_listener_close_cb cb) {
    ct_link_t *node;
    if (l->closing) return CT_ECLOSING;
    l->closing = 1;
    l->close_cb = cb;
    uv_close(&l->h.handle, on_handle_closed);
    uv_timer_stop(&l->timer);
    node = l->conns.next;
    while (node != &l->conns) {
        conn_t *c = CT_CONTAINER_OF(node, conn_t, link);
        node = node->next;
        ct_server_shutdown(&c->server);
    }
    if (deadline_ms && l->nconns > 0) uv_timer_start(&l->timer, on_deadline, deadline_ms, 0);
    finish_if_done(l);
    return 0;
}

int ct_listener_add_stats(ct_listener_t *l, ct_stats_t *s, const char *labels) {
    const ct_server_stats_t *sv = l->cfg.server.stats;
    int r, k;
    if ((r = ct_stats_add_counter(s, "ctower_listener_connections_accepted_total", labels,
                                  "Connections accepted.", &l->stats.accepted)) ||
        (r = ct_stats_add_counter(s, "ctower_listener_accept_errors_total", labels,
                                  "Accepts that failed, or connections that could not be set up.",
                                  &l->stats.accept_errors)) ||
        (r = ct_stats_add_counter(s, "ctower_listener_closed_idle_total", labels,
                                  "Connections shut down for want of a request.",
                                  &l->stats.closed_idle)) ||
        (r = ct_stats_add_counter(s, "ctower_listener_refused_slow_total", labels,
                                  "Connections refused for a request too slow to arrive.",
                                  &l->stats.refused_slow)) ||
        (r = ct_stats_add_gauge(s, "ctower_listener_connections", labels, "Connections open.",
                                &l->stats.connections)) ||
        (r = ct_stats_add_counter(s, "ctower_server_requests_total", labels, "Requests read.",
                                  &sv->requests)) ||
        (r = ct_stats_add_counter(s, "ctower_server_responses_total", labels,
                                  "Responses handed to the transport.", &sv->responses)) ||
        (r = ct_stats_add_histogram(s, "ctower_server_latency_seconds", labels,
                                    "From a request's read to its response's hand-off (to within "
                                    "a loop's batch of work).",
                                    1e-9, &sv->latency)))
        return r;
    for (k = 0; k < CT_KIND_COUNT; k++) {
        char with_kind[512];
        int n = snprintf(with_kind, sizeof with_kind, "%s%skind=\"%s\"", labels ? labels : "",
                         labels && labels[0] ? "," : "", ct_error_kind_name((ct_error_kind_t)k));
        if (n < 0 || (size_t)n >= sizeof with_kind) return CT_EINVAL;
        if ((r = ct_stats_add_counter(s, "ctower_server_errors_total", with_kind,
                                      "Requests that ended in an error (answered by on_error or "
                                      "not), by kind.",
                                      &sv->errors[k])))
            return r;
    }
    if ((r = ct_stream_add_stats(l->cfg.stream.stats, s, "ctower_listener", labels))) return r;
    return l->cfg.http2 ? ct_http2_add_stats(l->http2.stats, s, "ctower_listener_http2", labels)
                        : 0;
}

int ct_listener_peer(const ct_server_t *srv, ct_address_t *out) {
    const conn_t *c;
    if (!srv || srv->close_cb != on_conn_closed) return CT_EINVAL;
    c = CT_CONTAINER_OF(srv, conn_t, server);
    memset(out, 0, sizeof *out);
    out->kind = is_pipe(c->listener) ? CT_ADDRESS_UNIX : CT_ADDRESS_TCP;
    if (out->kind == CT_ADDRESS_TCP) out->sa = c->peer;
    return 0;
}
