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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct conn {
    ct_link_t link;
    ct_listener_t *listener;
    ct_stream_t stream;
    ct_server_t server;
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

static void on_conn_closed(ct_server_t *srv, int status) {
    conn_t *c = CT_CONTAINER_OF(srv, conn_t, server);
    ct_listener_t *l = c->listener;
    (void)status;
    ct_list_remove(&c->link);
    l->nconns--;
    free(c);
    if (l->accept_paused && !l->closing) {
        l->accept_paused = 0;
        accept_one(l); /* the connection the kernel kept waiting */
    }
    finish_if_done(l);
}

static void on_refused_closed(ct_transport_t *t) {
    free(CT_CONTAINER_OF(t, conn_t, stream));
}

static void accept_one(ct_listener_t *l) {
    conn_t *c = calloc(1, sizeof *c);
    int r;
    if (!c) {
        l->accept_errors++;
        return;
    }
    c->listener = l;
    if (ct_stream_init(&c->stream, l->loop, is_pipe(l), &l->cfg.stream) != 0) {
        free(c);
        l->accept_errors++;
        return;
    }
    if ((r = uv_accept(&l->h.stream, ct_stream_uv(&c->stream))) == 0) {
        if (!is_pipe(l)) uv_tcp_nodelay(&c->stream.h.tcp, 1);
        r = l->cfg.multiplex ? ct_multiplex_server_init(&c->server, l->loop, &c->stream.transport,
                                                        l->service, &l->cfg.server, on_conn_closed)
                             : ct_pipeline_server_init(&c->server, l->loop, &c->stream.transport,
                                                       l->service, &l->cfg.server, on_conn_closed);
    }
    if (r != 0) {
        l->accept_errors++;
        ct_transport_close(&c->stream.transport, on_refused_closed);
        return;
    }
    ct_list_push_back(&l->conns, &c->link);
    l->nconns++;
    l->accepted++;
}

static void on_connection(uv_stream_t *server, int status) {
    ct_listener_t *l = server->data;
    if (status < 0 || l->closing) {
        l->accept_errors += status < 0;
        return;
    }
    if (l->cfg.max_connections && l->nconns >= l->cfg.max_connections) {
        /* Not accepting makes libuv stop polling the socket until we do. */
        l->accept_paused = 1;
        return;
    }
    accept_one(l);
}

static void sweep_idle(uv_timer_t *timer) {
    ct_listener_t *l = timer->data;
    uint64_t now = uv_now(timer->loop);
    ct_link_t *node;
    for (node = l->conns.next; node != &l->conns; node = node->next) {
        conn_t *c = CT_CONTAINER_OF(node, conn_t, link);
        if (ct_server_in_flight(&c->server) == 0 &&
            now - ct_stream_last_read(&c->stream) >= l->cfg.idle_timeout_ms)
            ct_server_shutdown(&c->server);
    }
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

/* Whether a server answers at the Unix socket path: a connect to a local
 * socket does not wait, and only a socket nobody listens on any more (left
 * by a process that died) may be removed to bind again. */
static int socket_in_use(const char *path) {
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), in_use;
    if (fd < 0) return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path); /* parsing checked the length */
    in_use = connect(fd, (const struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN;
    close(fd);
    return in_use;
}

/* libuv reports a missing directory as UV_EACCES (as Windows would); the
 * user is better told the directory is not there. */
static int missing_directory(const char *path) {
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;
    struct stat st;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = '\0';
    return stat(dir, &st) != 0 && errno == ENOENT;
}

static int bind_unix(ct_listener_t *l) {
    const char *path = l->address.path;
    struct stat st;
    int r;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        if (socket_in_use(path)) return UV_EADDRINUSE;
        unlink(path); /* stale */
    }
    if ((r = uv_pipe_init(l->loop->uv, &l->h.pipe, 0)) != 0) return r;
    l->h.handle.data = l;
    l->handles_open++;
    r = uv_pipe_bind(&l->h.pipe, path);
    if (r == UV_EACCES && missing_directory(path)) r = UV_ENOENT;
    return r;
}

static int bind_tcp(ct_listener_t *l) {
    int r;
    if ((r = uv_tcp_init(l->loop->uv, &l->h.tcp)) != 0) return r;
    l->h.handle.data = l;
    l->handles_open++;
    return uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&l->address.sa, 0);
}

static int bind_and_listen(ct_listener_t *l) {
    int r = is_pipe(l) ? bind_unix(l) : bind_tcp(l);
    if (r == 0) r = uv_listen(&l->h.stream, l->cfg.backlog ? l->cfg.backlog : 511, on_connection);
    return r;
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

int ct_listener_init(ct_listener_t *l, ct_loop_t *loop, const char *address, ct_service_t *service,
                     const ct_listener_config_t *cfg) {
    int r;
    if (!l || !loop || !service || !cfg) return CT_EINVAL;
    memset(l, 0, sizeof *l);
    if ((r = parse_bindable(address, &l->address)) != 0) return r;
    l->loop = loop;
    l->service = service;
    l->cfg = *cfg;
    ct_list_init(&l->conns);
    if ((r = uv_timer_init(loop->uv, &l->timer)) != 0) return r;
    l->timer.data = l;
    l->handles_open = 1;
    if ((r = bind_and_listen(l)) != 0) {
        /* Nothing may stay open: close what was made and let the loop finish
         * it; the caller sees the error now. */
        l->closing = 1;
        if (l->handles_open == 2) uv_close(&l->h.handle, NULL);
        uv_close((uv_handle_t *)&l->timer, NULL);
        return r;
    }
    if (cfg->idle_timeout_ms) {
        uint64_t every = cfg->idle_timeout_ms / 2 ? cfg->idle_timeout_ms / 2 : 1;
        uv_timer_start(&l->timer, sweep_idle, every, every);
    }
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
    if (accepted) *accepted = l->accepted;
    if (accept_errors) *accept_errors = l->accept_errors;
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
