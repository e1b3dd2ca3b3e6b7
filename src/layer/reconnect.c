/* The reconnecting client. While a connection is up, calls and cancels go
 * straight to its client's vtable, with the caller's own op: the client
 * completes that op itself, and the layer adds a branch, not a second op. A
 * call that must wait for a connection borrows an entry holding its request
 * and op until the connection is up (or fails). A connection lives in a heap
 * block of its own (stream, client, tag store): a broken one is closed in
 * the background while the next one connects.
 *
 * Why an op on a client is always on the current one: a client is retired
 * either dead (it completed all its ops when it died) or by close (which
 * completes them at once), so no op of a retired client is still pending
 * when a cancel could come. */
#include "ctower/layer/reconnect.h"
#include "ctower/context.h"
#include "ctower/error.h"
#include "ctower/multiplex.h"
#include "ctower/pipeline.h"
#include "../core/backoff.h"
#include "../core/list.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { RC_IDLE, RC_CONNECTING, RC_UP, RC_PAUSED };

/* A call waiting for a connection (in rc->waiting, in call order). */
typedef struct ct_reconnect_entry {
    ct_op_t *op; /* NULL while free */
    void *request;
    ct_link_t link;
} entry_t;

typedef struct ct_reconnect_conn {
    ct_stream_t stream; /* the client's transport once it is up */
    ct_http2_t h2;      /* with HTTP/2: between the stream and the client */
    ct_client_t client;
    ct_slab_tags_t tags; /* multiplex */
    ct_reconnect_t *rc;
} conn_t;

static void free_msg(ct_reconnect_t *rc, void *msg) {
    if (rc->cfg.free_msg && msg) rc->cfg.free_msg(msg, rc->cfg.free_ctx);
}

static void maybe_closed(ct_reconnect_t *rc);
static void check_drained(ct_reconnect_t *rc);

static void release_entry(ct_reconnect_t *rc, entry_t *e) {
    e->op = NULL;
    rc->busy--;
    rc->free_entries[rc->cfg.max_in_flight - rc->busy - 1] = e;
    if (!ct_waitq_empty(&rc->waiters)) ct_waitq_wake_all(&rc->waiters);
}

/* Whether op may wait for a connection after one failed, the next attempt
 * ms from now: its caller gave a deadline that leaves time for it. */
static int waits_through(const ct_op_t *op, uint64_t now, uint64_t ms) {
    return op->ctx && op->ctx->deadline_ms && ct_context_remaining(op->ctx, now) > ms;
}

/* The calls waiting for a connection fail with status (cause): every one,
 * or (keep_ms > 0) all but those whose deadline lets them wait keep_ms
 * more. */
static void fail_waiting_but(ct_reconnect_t *rc, int status, int cause, uint64_t keep_ms) {
    uint64_t now = uv_now(rc->service.loop->uv);
    ct_link_t *node = rc->waiting.next;
    while (node != &rc->waiting) {
        entry_t *e = CT_CONTAINER_OF(node, entry_t, link);
        ct_op_t *op = e->op;
        node = node->next;
        if (keep_ms && waits_through(op, now, keep_ms)) continue;
        ct_list_remove(&e->link);
        free_msg(rc, e->request);
        release_entry(rc, e);
        ct_op_complete(op, status, cause, NULL);
    }
}

static void fail_waiting(ct_reconnect_t *rc, int status, int cause) {
    fail_waiting_but(rc, status, cause, 0);
}

/* ---- connections ---------------------------------------------------------- */

static void on_conn_closed(ct_service_t *client) {
    conn_t *conn = CT_CONTAINER_OF(client, conn_t, client.service);
    ct_reconnect_t *rc = conn->rc;
    if (rc->cfg.multiplex) ct_slab_tags_free(&conn->tags);
    free(conn);
    rc->conns_closing--;
    maybe_closed(rc);
}

/* Closes the current connection's client in the background (its ops fail
 * first, as a client's close says). */
static void retire(ct_reconnect_t *rc) {
    conn_t *conn = rc->conn;
    rc->conn = NULL;
    rc->state = RC_IDLE;
    rc->client_drained = 0;
    rc->conns_closing++;
    ct_service_close(&conn->client.service, on_conn_closed);
}

/* See backoff.h. */
static uint64_t pause_ms(ct_reconnect_t *rc) {
    return ct_backoff_ms(&rc->rng, rc->cfg.backoff_min_ms, rc->cfg.backoff_max_ms,
                         rc->failures_in_a_row);
}

static void start_connect(ct_reconnect_t *rc);

static void on_pause_over(uv_timer_t *timer) {
    ct_reconnect_t *rc = CT_CONTAINER_OF(timer, ct_reconnect_t, timer);
    if (rc->state == RC_PAUSED) rc->state = RC_IDLE;
    /* calls that waited through the pause connect now; else the next poll */
    if (rc->state == RC_IDLE && !ct_list_empty(&rc->waiting)) start_connect(rc);
    ct_waitq_wake_all(&rc->waiters); /* they poll again, and that connects */
}

/* A connect failed: the calls waiting fail, but for those whose deadline
 * leaves time for the next attempt (gRPC's wait-for-ready, bounded by the
 * caller's own time): they wait through the pause. */
static void connect_failed(ct_reconnect_t *rc, int error) {
    uint64_t pause;
    rc->last_error = error;
    ct_counter_add(&rc->metrics.connect_failures, 1);
    rc->failures_in_a_row++;
    rc->state = RC_PAUSED;
    pause = pause_ms(rc);
    if (ct_service_is_shutting_down(&rc->service)) {
        rc->drain_status = CT_ECONNECT;
        fail_waiting(rc, CT_ECONNECT, error);
    } else {
        fail_waiting_but(rc, CT_ECONNECT, error, pause);
    }
    uv_timer_start(&rc->timer, on_pause_over, pause, 0);
    ct_waitq_wake_all(&rc->waiters);
    check_drained(rc);
}

static void on_client_drained(ct_service_t *client, int status) {
    conn_t *conn = CT_CONTAINER_OF(client, conn_t, client.service);
    ct_reconnect_t *rc = conn->rc;
    if (conn != rc->conn) return; /* retired meanwhile; its ops ended anyway */
    rc->client_drained = 1;
    if (status < 0) rc->drain_status = status;
    check_drained(rc);
}

static void drain_client(ct_reconnect_t *rc) {
    int r = ct_service_shutdown(&rc->conn->client.service, on_client_drained);
    if (r < 0) { /* refused (closing, or asked before): nothing to wait for */
        rc->client_drained = 1;
        rc->drain_status = r;
    }
}

/* Hands request and op to the connection's client, whose op it is from now
 * on (its slot too): 0, or -1 if that client is dead (it is retired then,
 * and request and op are left as they were). The client's own vtable, not
 * ct_service_call(): op is already pending, on this layer. */
static int send_on_client(ct_reconnect_t *rc, void *request, ct_op_t *op) {
    ct_service_t *client = &rc->conn->client.service;
    if (client->vtable->call(client, request, op) < 0) {
        retire(rc);
        return -1;
    }
    return 0;
}

/* The connection is up: the waiting calls go out, in call order, but for
 * those whose caller's deadline passed while they waited. */
static void dispatch_waiting(ct_reconnect_t *rc) {
    uint64_t now = uv_now(rc->service.loop->uv);
    while (!ct_list_empty(&rc->waiting)) {
        entry_t *e = CT_CONTAINER_OF(rc->waiting.next, entry_t, link);
        if (ct_context_expired(e->op->ctx, now)) {
            ct_op_t *op = e->op;
            ct_list_remove(&e->link);
            free_msg(rc, e->request);
            release_entry(rc, e);
            ct_op_complete(op, CT_ETIMEDOUT, CT_EDEADLINE, NULL);
            continue;
        }
        if (send_on_client(rc, e->request, e->op) < 0) { /* died at once: the next one */
            start_connect(rc);
            return;
        }
        ct_list_remove(&e->link);
        release_entry(rc, e);
    }
}

static int make_client(ct_reconnect_t *rc, conn_t *conn) {
    ct_client_config_t ccfg = {rc->cfg.max_in_flight, rc->cfg.free_msg, rc->cfg.free_ctx};
    ct_transport_t *t = &conn->stream.transport;
    int r;
    if (rc->cfg.http2) {
        if ((r = ct_http2_init(&conn->h2, rc->service.loop, t, rc->cfg.http2)) != 0) return r;
        t = &conn->h2.transport;
    }
    if (!rc->cfg.multiplex)
        return ct_pipeline_client_init(&conn->client, rc->service.loop, t, &ccfg);
    r = ct_slab_tags_init(&conn->tags, rc->cfg.max_in_flight, rc->cfg.get_tag, rc->cfg.set_tag);
    if (r < 0) return r;
    r = ct_multiplex_client_init(&conn->client, rc->service.loop, t, &conn->tags.store, &ccfg);
    if (r < 0) ct_slab_tags_free(&conn->tags);
    return r;
}

static void dropped(conn_t *conn) {
    ct_reconnect_t *rc = conn->rc;
    free(conn);
    rc->conns_closing--;
    maybe_closed(rc);
}

static void on_stream_closed(ct_transport_t *t) {
    dropped(CT_CONTAINER_OF(t, conn_t, stream.transport));
}

static void on_h2_closed(ct_transport_t *t) {
    dropped(CT_CONTAINER_OF(t, conn_t, h2.transport));
}

/* A connected stream that will have no client: its outermost transport
 * closes (HTTP/2 closes the stream below it). */
static void drop_stream(ct_reconnect_t *rc, conn_t *conn) {
    rc->conns_closing++;
    if (conn->h2.bytes)
        ct_transport_close(&conn->h2.transport, on_h2_closed);
    else
        ct_transport_close(&conn->stream.transport, on_stream_closed);
}

static void on_connected(ct_stream_t *stream, int status) {
    conn_t *conn = CT_CONTAINER_OF(stream, conn_t, stream);
    ct_reconnect_t *rc = conn->rc;
    int r = status;
    rc->conn = NULL;
    if (status < 0)
        free(conn);
    else if (ct_service_is_closing(&rc->service) || (r = make_client(rc, conn)) < 0)
        drop_stream(rc, conn); /* closing: it outran the cancel */
    if (ct_service_is_closing(&rc->service)) {
        maybe_closed(rc);
        return;
    }
    if (r < 0) {
        connect_failed(rc, r);
        return;
    }
    rc->conn = conn;
    rc->state = RC_UP;
    rc->last_error = 0;
    rc->failures_in_a_row = 0;
    ct_counter_add(&rc->metrics.connects, 1);
    dispatch_waiting(rc);
    if (rc->state == RC_UP && ct_service_is_shutting_down(&rc->service)) drain_client(rc);
    ct_waitq_wake_all(&rc->waiters);
    check_drained(rc);
}

static void start_connect(ct_reconnect_t *rc) {
    conn_t *conn = calloc(1, sizeof *conn);
    int r = UV_ENOMEM;
    if (conn) {
        conn->rc = rc;
        rc->conn = conn;
        rc->state = RC_CONNECTING;
        r = ct_connector_connect(&rc->connector, &conn->stream, on_connected);
        if (r == 0) return;
        rc->conn = NULL;
        free(conn);
    }
    connect_failed(rc, r);
}

/* ---- the service ------------------------------------------------------------ */

static int rc_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_reconnect_t *rc = (ct_reconnect_t *)svc;
    int r;
    if (rc->state == RC_UP) { /* the client's bound is the bound */
        r = ct_service_poll_ready(&rc->conn->client.service, waker);
        if (r >= 0) return r;
        retire(rc); /* dead: a new connection */
    }
    if (rc->state == RC_IDLE) start_connect(rc);
    if (rc->state == RC_PAUSED) return CT_READY; /* a call fails fast */
    if (waker) ct_waitq_add(&rc->waiters, waker);
    return CT_PENDING; /* connecting, or as many calls waiting as allowed */
}

/* What is left of the pause after a failed connect. */
static uint64_t pause_left(const ct_reconnect_t *rc) {
    return uv_timer_get_due_in(&rc->timer);
}

/* A call that cannot wait (rare, out of line). */
static __attribute__((noinline)) int refuse(ct_reconnect_t *rc, void *request, ct_op_t *op) {
    free_msg(rc, request);
    if (rc->state == RC_PAUSED)
        ct_op_complete(op, CT_ECONNECT, rc->last_error, NULL);
    else
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
    return 0;
}

static int rc_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_reconnect_t *rc = (ct_reconnect_t *)svc;
    entry_t *e;
    if (rc->state == RC_UP && send_on_client(rc, request, op) == 0) return 0;
    /* not up, or found dead: it waits for the next connection; in a pause,
     * only a call whose deadline lasts past it */
    if (rc->busy == rc->cfg.max_in_flight) return refuse(rc, request, op);
    if (rc->state == RC_PAUSED && !waits_through(op, uv_now(svc->loop->uv), pause_left(rc)))
        return refuse(rc, request, op);
    e = rc->free_entries[rc->cfg.max_in_flight - rc->busy - 1];
    rc->busy++;
    e->op = op;
    e->request = request;
    op->slot = (size_t)(e - rc->entries);
    ct_list_push_back(&rc->waiting, &e->link);
    if (rc->state == RC_IDLE) start_connect(rc);
    return 0;
}

/* op waits for a connection if its slot is an entry that holds it (once on
 * a client, its slot is the client's, and no entry holds it). */
static entry_t *waiting_entry(ct_reconnect_t *rc, const ct_op_t *op) {
    entry_t *e = op->slot < rc->cfg.max_in_flight ? &rc->entries[op->slot] : NULL;
    return e && e->op == op ? e : NULL;
}

static void rc_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_reconnect_t *rc = (ct_reconnect_t *)svc;
    entry_t *e = waiting_entry(rc, op);
    ct_service_t *client;
    if (e) { /* never left: it simply goes */
        ct_list_remove(&e->link);
        free_msg(rc, e->request);
        release_entry(rc, e);
        ct_op_complete(op, CT_ECANCELED, 0, NULL);
        check_drained(rc);
        return;
    }
    assert(rc->conn && "an op on a client is on the current one (see the top)");
    client = &rc->conn->client.service;
    client->vtable->cancel(client, op);
}

static void rc_release(ct_service_t *svc) {
    ct_reconnect_t *rc = (ct_reconnect_t *)svc;
    if (rc->state == RC_UP) ct_service_release(&rc->conn->client.service);
}

static int rc_shutdown(ct_service_t *svc) {
    ct_reconnect_t *rc = (ct_reconnect_t *)svc;
    ct_waitq_wake_all(&rc->waiters); /* they will see CT_ESHUTDOWN */
    if (rc->state == RC_UP && rc->conn->client.error)
        retire(rc); /* broke while idle: nothing of it to drain */
    else if (rc->state == RC_UP)
        drain_client(rc);
    check_drained(rc);
    return 0;
}

/* Drained: nothing waits for a connection and the client (if any) has
 * drained. */
static void check_drained(ct_reconnect_t *rc) {
    if (!ct_service_is_shutting_down(&rc->service) || ct_service_is_closing(&rc->service)) return;
    if (rc->state == RC_CONNECTING || rc->busy > 0) return;
    if (rc->state == RC_UP && !rc->client_drained) return;
    ct_service_shutdown_done(&rc->service, rc->drain_status);
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_reconnect_t *rc = CT_CONTAINER_OF(handle, ct_reconnect_t, timer);
    free(rc->entries); /* and the stack after them */
    rc->entries = NULL;
    rc->free_entries = NULL;
    ct_service_closed(&rc->service);
}

/* Closed once the connect was canceled and every connection has closed
 * (after its ops completed): the timer closes last. */
static void maybe_closed(ct_reconnect_t *rc) {
    if (!ct_service_is_closing(&rc->service) || rc->timer_closing) return;
    if (rc->conn || rc->conns_closing > 0 || rc->busy > 0) return;
    rc->timer_closing = 1;
    uv_close((uv_handle_t *)&rc->timer, on_timer_closed);
}

static void rc_close(ct_service_t *svc) {
    ct_reconnect_t *rc = (ct_reconnect_t *)svc;
    uv_timer_stop(&rc->timer);
    ct_waitq_wake_all(&rc->waiters);
    fail_waiting(rc, CT_ECLOSED, 0);
    if (rc->state == RC_CONNECTING)
        ct_connector_cancel(&rc->conn->stream); /* on_connected will come */
    else if (rc->state == RC_UP)
        retire(rc);
    maybe_closed(rc);
}

static const ct_service_vtable_t reconnect_vtable = {
    rc_poll_ready, rc_call, rc_cancel, rc_release, rc_shutdown, rc_close, NULL,
};

/* ---- setup ------------------------------------------------------------------ */

static int check_config(ct_reconnect_config_t *c) {
    if (!c->get_tag != !c->set_tag) return CT_EINVAL;
    if (c->http2) {
        if (!c->http2->pool) return CT_EINVAL;
        c->multiplex = 1;
    }
    if (!c->get_tag) {
        c->get_tag = ct_buf_get_tag;
        c->set_tag = ct_buf_set_tag;
    }
    if (c->max_in_flight == 0) c->max_in_flight = CT_CLIENT_DEFAULT_IN_FLIGHT;
    if (c->multiplex && c->max_in_flight > (size_t)1 << 24) return CT_EINVAL; /* the slab's */
    if (c->backoff_min_ms == 0) c->backoff_min_ms = 100;
    if (c->backoff_max_ms == 0)
        c->backoff_max_ms = c->backoff_min_ms > 1000 ? c->backoff_min_ms : 1000;
    if (c->backoff_max_ms < c->backoff_min_ms) return CT_EINVAL;
    return 0;
}

int ct_reconnect_init(ct_reconnect_t *rc, ct_loop_t *loop, const char *address,
                      const ct_stream_config_t *stream_cfg, const ct_reconnect_config_t *cfg) {
    size_t i;
    int r;
    if (!rc || !loop || !address || !stream_cfg) return CT_EINVAL;
    if (cfg)
        rc->cfg = *cfg;
    else
        memset(&rc->cfg, 0, sizeof rc->cfg);
    if ((r = check_config(&rc->cfg)) != 0) return r;
    if (rc->cfg.http2) { /* a copy of ours: the caller's may go */
        rc->http2 = *rc->cfg.http2;
        rc->http2.server = 0;
        rc->cfg.http2 = &rc->http2;
    }
    if ((r = ct_connector_init(&rc->connector, loop, address, stream_cfg)) != 0) return r;
    /* each connection's client keeps to its codec's bound (ct_client_init),
     * so calls waiting for a connection must too, or they would overflow it */
    if (stream_cfg->codec->max_pending && rc->cfg.max_in_flight > stream_cfg->codec->max_pending)
        rc->cfg.max_in_flight = stream_cfg->codec->max_pending;
    rc->connector.timeout_ms = rc->cfg.connect_timeout_ms;
    /* the entries, then the stack of free ones */
    rc->entries = calloc(rc->cfg.max_in_flight, sizeof *rc->entries + sizeof(entry_t *));
    if (!rc->entries) return UV_ENOMEM;
    if ((r = uv_timer_init(loop->uv, &rc->timer)) != 0) {
        free(rc->entries);
        return r;
    }
    ct_service_init(&rc->service, loop, &reconnect_vtable);
    rc->free_entries = (entry_t **)(rc->entries + rc->cfg.max_in_flight);
    ct_list_init(&rc->waiting);
    for (i = 0; i < rc->cfg.max_in_flight; i++) {
        ct_list_init(&rc->entries[i].link);
        rc->free_entries[i] = &rc->entries[i];
    }
    rc->conn = NULL;
    rc->busy = rc->conns_closing = 0;
    rc->state = RC_IDLE;
    rc->last_error = rc->drain_status = rc->client_drained = 0;
    rc->failures_in_a_row = 0;
    rc->rng = ct_backoff_seed(rc);
    rc->timer_closing = 0;
    ct_waitq_init(&rc->waiters);
    memset(&rc->metrics, 0, sizeof rc->metrics);
    return 0;
}

int ct_reconnect_last_error(const ct_reconnect_t *rc) {
    return rc->last_error;
}

int ct_reconnect_is_up(const ct_reconnect_t *rc) {
    return rc->state == RC_UP && rc->conn->client.error == 0;
}

ct_reconnect_counts_t ct_reconnect_counts(const ct_reconnect_t *rc) {
    ct_reconnect_counts_t out;
    out.connects = ct_counter_read(&rc->metrics.connects);
    out.connect_failures = ct_counter_read(&rc->metrics.connect_failures);
    return out;
}

int ct_reconnect_add_stats(ct_reconnect_t *rc, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_counter(s, "ctower_reconnect_connects_total", labels, "Connections made.",
                                  &rc->metrics.connects)))
        return r;
    if ((r = ct_stats_add_counter(s, "ctower_reconnect_connect_failures_total", labels,
                                  "Connects that failed.", &rc->metrics.connect_failures)))
        return r;
    return 0;
}
