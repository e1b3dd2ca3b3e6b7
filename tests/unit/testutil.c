#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

harness_t H;
long rec_op_counter;

static void on_watchdog_tick(uv_timer_t *t) {
    (void)t;
}

void h_setup(void) {
    memset(&H, 0, sizeof H);
    rec_op_counter = 0;
    cr_assert_eq(uv_loop_init(&H.uv), 0);
    cr_assert_eq(ct_loop_init(&H.ct, &H.uv), 0);
    /* A loop waiting for an event that never comes would block
     * H_RUN_UNTIL's uv_run() past its time limit: the tick ends every
     * wait within 100 ms. Unreferenced, it keeps no loop alive. */
    cr_assert_eq(uv_timer_init(&H.uv, &H.tick), 0);
    cr_assert_eq(uv_timer_start(&H.tick, on_watchdog_tick, 100, 100), 0);
    uv_unref((uv_handle_t *)&H.tick);
}

static int loop_closed;
static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
    loop_closed = 1;
}

/* Criterion does not fail a test for an assertion in .fini, but it does for
 * a crash there: teardown checks abort. */
static void fini_check(int ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "teardown check failed: %s (live test messages: %ld)\n", what, H.live_msgs);
    abort();
}

static void walk_handle(uv_handle_t *handle, void *arg) {
    (void)arg;
    fprintf(stderr, "open handle: %s%s\n", uv_handle_type_name(handle->type),
            uv_is_closing(handle) ? " (closing)" : "");
}

/* Runs the loop until it has nothing left to do, for at most a few seconds:
 * after a failed assertion a handle may still be open, and teardown must then
 * report it rather than wait forever. */
static void run_dry(void) {
    uint64_t start = uv_hrtime();
    while (uv_run(&H.uv, UV_RUN_NOWAIT) != 0) {
        if (uv_hrtime() - start > 5000000000ull) {
            uv_walk(&H.uv, walk_handle, NULL);
            fini_check(0, "the loop ran dry within 5 s");
        }
        if (!uv_loop_alive(&H.uv)) break;
        usleep(100);
    }
}

void h_teardown(void) {
    uv_close((uv_handle_t *)&H.tick, NULL);
    run_dry();
    loop_closed = 0;
    fini_check(ct_loop_close(&H.ct, on_loop_closed) == 0, "ct_loop_close() == 0");
    run_dry();
    fini_check(loop_closed, "the ct_loop close callback ran");
    if (uv_loop_close(&H.uv) != 0) {
        uv_walk(&H.uv, walk_handle, NULL);
        fini_check(0, "uv_loop_close() == 0");
    }
    fini_check(H.live_msgs == 0, "no test message leaked");
}

void h_run(void) {
    uv_run(&H.uv, UV_RUN_DEFAULT);
}

void h_turns(int n) {
    while (n-- > 0)
        uv_run(&H.uv, UV_RUN_NOWAIT);
}

tmsg_t *tmsg_new(uint64_t id) {
    tmsg_t *m = malloc(sizeof *m);
    cr_assert(m);
    m->id = id;
    m->tag = 0;
    H.live_msgs++;
    return m;
}

void tmsg_free(void *msg, void *ctx) {
    (void)ctx;
    if (!msg) return;
    H.live_msgs--;
    free(msg);
}

uint64_t tmsg_id(void *msg) {
    return ((tmsg_t *)msg)->id;
}

uint32_t tmsg_get_tag(const void *msg) {
    return ((const tmsg_t *)msg)->tag;
}

void tmsg_set_tag(void *msg, uint32_t tag) {
    ((tmsg_t *)msg)->tag = tag;
}

int h_call(ct_service_t *svc, void *request, ct_op_t *op) {
    int r;
    H.nested++;
    r = ct_service_call(svc, request, op);
    H.nested--;
    return r;
}

void h_random_calls_and_cancels(ct_client_t *client, rec_op_t *r, int n_ops, size_t bound,
                                h_answer_fn answer_some, unsigned seed) {
    int next = 0, i, canceled = 0, answered = 0;
    while (next < n_ops) {
        seed = seed * 1103515245u + 12345u;
        if (ct_service_poll_ready(&client->service, NULL) == CT_READY) {
            rec_op_init(&r[next]);
            cr_assert_eq(h_call(&client->service, tmsg_new((uint64_t)next), &r[next].op), 0);
            next++;
        }
        if ((seed >> 16) % 4 == 0) { /* cancel one of the last few, if still pending */
            int k = next - 1 - (int)((seed >> 8) % 8);
            if (k >= 0 && ct_op_is_pending(&r[k].op)) ct_op_cancel(&r[k].op);
        }
        answer_some(&seed, (int)((seed >> 20) % 4));
        if ((seed >> 12) % 3 == 0) h_turns(1);
        cr_assert_leq(ct_client_in_flight(client), bound);
    }
    for (i = 0; i < 1000 && ct_client_in_flight(client) > 0; i++) {
        answer_some(&seed, 8);
        h_turns(1);
    }
    h_turns(2);
    for (i = 0; i < n_ops; i++) {
        cr_assert_eq(r[i].calls, 1, "op %d completed %d times", i, r[i].calls);
        if (r[i].status == 0) {
            cr_assert_eq(r[i].response_id, (uint64_t)i, "op %d got the answer to another", i);
            answered++;
        } else {
            cr_assert_eq(r[i].status, CT_ECANCELED, "op %d: %s", i, ct_err_name(r[i].status));
            canceled++;
        }
    }
    cr_assert_gt(canceled, n_ops / 40);
    cr_assert_gt(answered, n_ops / 4);
    cr_assert_eq(ct_client_in_flight(client), 0);
}

static void rec_cb(ct_op_t *op, int status, void *response) {
    rec_op_t *r = CT_CONTAINER_OF(op, rec_op_t, op);
    cr_assert_eq(H.nested, 0, "callback re-entered from inside a call");
    r->calls++;
    r->status = status;
    r->cause = op->cause;
    r->order = ++rec_op_counter;
    if (status == 0) {
        cr_assert(response);
        r->response_id = tmsg_id(response);
        tmsg_free(response, NULL);
    } else {
        cr_assert_null(response);
    }
}

void rec_op_init(rec_op_t *r) {
    memset(r, 0, sizeof *r);
    ct_op_init(&r->op, rec_cb);
}

void h_call_with_deadline(ct_service_t *svc, rec_op_t *r, ct_context_t *ctx, uint64_t ms,
                          uint64_t id) {
    ct_context_init(ctx);
    ct_context_set_timeout(ctx, uv_now(&H.uv), ms);
    rec_op_init(r);
    r->op.ctx = ctx;
    cr_assert_eq(h_call(svc, tmsg_new(id), &r->op), 0);
}

/* ---- held service ------------------------------------------------------ */

static void held_remove(held_svc_t *h, size_t i) {
    memmove(&h->ops[i], &h->ops[i + 1], (h->n - i - 1) * sizeof *h->ops);
    memmove(&h->reqs[i], &h->reqs[i + 1], (h->n - i - 1) * sizeof *h->reqs);
    h->n--;
    ct_waitq_wake_all(&h->waiters);
}

void held_complete(held_svc_t *h, size_t i, int status) {
    ct_op_t *op = h->ops[i];
    void *req = h->reqs[i];
    held_remove(h, i);
    if (status == 0) {
        ct_op_complete(op, 0, 0, h->respond ? h->respond(req, h->free_ctx) : req);
    } else {
        h->free_req(req, h->free_ctx);
        ct_op_complete(op, status, 0, NULL);
    }
}

void held_complete_all(held_svc_t *h) {
    while (h->n > 0)
        held_complete(h, 0, 0);
}

static int held_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    held_svc_t *h = (held_svc_t *)svc;
    if (h->capacity == 0 || h->n < h->capacity) return CT_READY;
    ct_waitq_add(&h->waiters, waker);
    return CT_PENDING;
}

static int held_call(ct_service_t *svc, void *req, ct_op_t *op) {
    held_svc_t *h = (held_svc_t *)svc;
    h->calls++;
    if (h->fail_id_plus1 && tmsg_id(req) + 1 == (uint64_t)h->fail_id_plus1) {
        tmsg_free(req, NULL);
        ct_op_complete(op, h->fail_status, 0, NULL);
        return 0;
    }
    if (h->capacity && h->n >= h->capacity) {
        tmsg_free(req, NULL);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    h->ops = realloc(h->ops, (h->n + 1) * sizeof *h->ops);
    h->reqs = realloc(h->reqs, (h->n + 1) * sizeof *h->reqs);
    h->ops[h->n] = op;
    h->reqs[h->n] = req;
    h->n++;
    if (h->n > h->max_n) h->max_n = h->n;
    if (h->batch && h->n == h->batch)
        while (h->n > 0)
            held_complete(h, h->n - 1, 0); /* newest first */
    return 0;
}

static void held_cancel(ct_service_t *svc, ct_op_t *op) {
    held_svc_t *h = (held_svc_t *)svc;
    size_t i;
    for (i = 0; i < h->n; i++)
        if (h->ops[i] == op) {
            h->free_req(h->reqs[i], h->free_ctx);
            held_remove(h, i);
            h->cancels++;
            ct_op_complete(op, CT_ECANCELED, 0, NULL);
            return;
        }
    cr_assert_fail("cancel of an op the service does not hold");
}

static void held_timer_closed(uv_handle_t *handle) {
    held_svc_t *h = handle->data;
    ct_service_closed(&h->service);
}

static void held_close(ct_service_t *svc) {
    held_svc_t *h = (held_svc_t *)svc;
    while (h->n > 0)
        held_complete(h, 0, CT_ECLOSED);
    if (h->period_ms) {
        uv_close((uv_handle_t *)&h->timer, held_timer_closed);
    } else {
        ct_service_closed(svc);
    }
}

static void on_tick(uv_timer_t *timer) {
    held_svc_t *h = timer->data;
    if (h->n > 0) held_complete(h, 0, 0);
}

static const ct_service_vtable_t held_vtable = {
    held_poll_ready, held_call, held_cancel, NULL, NULL, held_close, NULL,
};

void held_init(held_svc_t *h, size_t capacity) {
    memset(h, 0, sizeof *h);
    ct_service_init(&h->service, &H.ct, &held_vtable);
    ct_waitq_init(&h->waiters);
    h->capacity = capacity;
    h->free_req = tmsg_free;
}

void held_start_timer(held_svc_t *h, uint64_t period_ms) {
    h->period_ms = period_ms;
    cr_assert_eq(uv_timer_init(&H.uv, &h->timer), 0);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_tick, period_ms, period_ms);
}

void held_free(held_svc_t *h) {
    free(h->ops);
    free(h->reqs);
    h->ops = NULL;
    h->reqs = NULL;
}

/* ---- batch service ---------------------------------------------------------- */

static uint32_t batch_rng(batch_svc_t *b) {
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 17;
    b->rng ^= b->rng << 5;
    return b->rng;
}

static void batch_take(batch_svc_t *b, size_t i, ct_op_t **op, void **req) {
    *op = b->ops[i];
    *req = b->reqs[i];
    if (b->shuffle) { /* order does not matter: fill the hole from the end */
        b->ops[i] = b->ops[--b->n];
        b->reqs[i] = b->reqs[b->n];
    } else {
        memmove(&b->ops[i], &b->ops[i + 1], (b->n - i - 1) * sizeof *b->ops);
        memmove(&b->reqs[i], &b->reqs[i + 1], (b->n - i - 1) * sizeof *b->reqs);
        b->n--;
    }
}

static void batch_run(ct_task_t *task) {
    batch_svc_t *b = CT_CONTAINER_OF(task, batch_svc_t, task);
    while (b->n > 0) {
        ct_op_t *op;
        void *req;
        batch_take(b, b->shuffle ? batch_rng(b) % b->n : 0, &op, &req);
        ct_op_complete(op, 0, 0, req);
    }
}

static int batch_ready(ct_service_t *svc, ct_waker_t *w) {
    (void)svc;
    (void)w;
    return CT_READY;
}

static int batch_call(ct_service_t *svc, void *req, ct_op_t *op) {
    batch_svc_t *b = (batch_svc_t *)svc;
    cr_assert_lt(b->n, b->max);
    b->ops[b->n] = op;
    b->reqs[b->n++] = req;
    ct_task_post(svc->loop, &b->task);
    return 0;
}

static void batch_cancel(ct_service_t *svc, ct_op_t *op) {
    batch_svc_t *b = (batch_svc_t *)svc;
    size_t i;
    for (i = 0; i < b->n; i++)
        if (b->ops[i] == op) {
            void *req;
            batch_take(b, i, &op, &req);
            tmsg_free(req, NULL);
            ct_op_complete(op, CT_ECANCELED, 0, NULL);
            return;
        }
}

static void batch_close(ct_service_t *svc) {
    batch_svc_t *b = (batch_svc_t *)svc;
    ct_task_cancel(&b->task);
    while (b->n > 0) {
        b->n--;
        tmsg_free(b->reqs[b->n], NULL);
        ct_op_complete(b->ops[b->n], CT_ECLOSED, 0, NULL);
    }
    free(b->ops);
    free(b->reqs);
    ct_service_closed(svc);
}

static const ct_service_vtable_t batch_vtable = {
    batch_ready, batch_call, batch_cancel, NULL, NULL, batch_close, NULL,
};

void batch_init(batch_svc_t *b, size_t max, int shuffle) {
    memset(b, 0, sizeof *b);
    ct_service_init(&b->service, &H.ct, &batch_vtable);
    ct_task_init(&b->task, batch_run);
    b->ops = calloc(max, sizeof *b->ops);
    b->reqs = calloc(max, sizeof *b->reqs);
    b->max = max;
    b->shuffle = shuffle;
    b->rng = 12345;
}

/* ---- a client and a server back to back ---------------------------------- */

static void on_pair_server_closed(ct_server_t *srv, int status) {
    h_pair_t *p = CT_CONTAINER_OF(srv, h_pair_t, srv);
    (void)status;
    p->server_closed = 1;
}

void h_pair_connect(h_pair_t *p, ct_service_t *service, int multiplexed, size_t depth,
                    size_t channel_cap) {
    h_pair_connect_with(p, service, multiplexed, depth, channel_cap, NULL, NULL);
}

void h_pair_connect_with(h_pair_t *p, ct_service_t *service, int multiplexed, size_t depth,
                         size_t channel_cap, ct_server_context_fn read_context,
                         ct_server_error_fn on_error) {
    ct_client_config_t ccfg = {0};
    ct_server_config_t scfg = {0};
    memset(p, 0, sizeof *p);
    scfg.read_context = read_context;
    scfg.on_error = on_error;
    p->multiplexed = multiplexed;
    ccfg.max_in_flight = depth;
    ccfg.free_msg = tmsg_free;
    scfg.max_in_flight = depth;
    scfg.free_msg = tmsg_free;
    cr_assert_eq(
        ct_channel_pair_init(&H.ct, &p->client_end, &p->server_end, channel_cap, tmsg_free, NULL),
        0);
    if (multiplexed) {
        scfg.get_tag = tmsg_get_tag;
        scfg.set_tag = tmsg_set_tag;
        cr_assert_eq(ct_slab_tags_init(&p->tags, depth, tmsg_get_tag, tmsg_set_tag), 0);
        cr_assert_eq(ct_multiplex_server_init(&p->srv, &H.ct, &p->server_end.transport, service,
                                              &scfg, on_pair_server_closed),
                     0);
        cr_assert_eq(ct_multiplex_client_init(&p->client, &H.ct, &p->client_end.transport,
                                              &p->tags.store, &ccfg),
                     0);
    } else {
        cr_assert_eq(ct_pipeline_server_init(&p->srv, &H.ct, &p->server_end.transport, service,
                                             &scfg, on_pair_server_closed),
                     0);
        cr_assert_eq(ct_pipeline_client_init(&p->client, &H.ct, &p->client_end.transport, &ccfg),
                     0);
    }
}

void h_pair_disconnect(h_pair_t *p, ct_service_t *service) {
    h_close_service(&p->client.service);
    H_RUN_UNTIL(p->server_closed);
    h_close_service(service);
    if (p->multiplexed) ct_slab_tags_free(&p->tags);
}

/* ---- a driver at a fixed depth ---------------------------------------------- */

typedef struct driver_op {
    ct_op_t op;
    uint64_t expect;
} driver_op_t;

static struct {
    ct_service_t *svc;
    uint64_t next, total, done, mismatched, errors, out_of_order, last_done;
} drv;

static void drive_issue(driver_op_t *d) {
    d->expect = drv.next++;
    cr_assert_eq(h_call(drv.svc, tmsg_new(d->expect), &d->op), 0);
}

static void on_driver_done(ct_op_t *op, int status, void *response) {
    driver_op_t *d = CT_CONTAINER_OF(op, driver_op_t, op);
    cr_assert_eq(H.nested, 0);
    drv.done++;
    if (status != 0) {
        drv.errors++;
        return;
    }
    if (tmsg_id(response) != d->expect) drv.mismatched++;
    if (drv.done > 1 && d->expect < drv.last_done) drv.out_of_order++;
    drv.last_done = d->expect;
    tmsg_free(response, NULL);
    if (drv.next < drv.total) drive_issue(d);
}

uint64_t h_drive(ct_service_t *svc, size_t depth, uint64_t total) {
    driver_op_t *ops = calloc(depth, sizeof *ops);
    size_t i;
    memset(&drv, 0, sizeof drv);
    drv.svc = svc;
    drv.total = total;
    for (i = 0; i < depth && drv.next < total; i++) {
        ct_op_init(&ops[i].op, on_driver_done);
        drive_issue(&ops[i]);
    }
    H_RUN_UNTIL(drv.done == total);
    free(ops);
    cr_assert_eq(drv.errors, 0);
    cr_assert_eq(drv.mismatched, 0, "a response reached the wrong request");
    return drv.out_of_order;
}

static void on_service_closed(ct_service_t *svc) {
    *(int *)svc->data = 1;
}

void h_close_service(ct_service_t *svc) {
    int closed = 0;
    svc->data = &closed;
    uint64_t start = uv_hrtime();
    cr_assert_eq(ct_service_close(svc, on_service_closed), 0);
    while (!closed) {
        uv_run(&H.uv, UV_RUN_NOWAIT);
        cr_assert_lt(uv_hrtime() - start, 5000000000ull, "the close callback did not run in 5 s");
    }
}

/* A listening socket that never accepts, with a backlog of 0 filled by one
 * connection: the kernel drops the next SYNs, and a connect to it waits. */
int h_full_backlog_port(int *listen_fd, int *fill_fd) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(*listen_fd >= 0);
    cr_assert_eq(bind(*listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(*listen_fd, 0), 0);
    cr_assert_eq(getsockname(*listen_fd, (struct sockaddr *)&sa, &len), 0);
    *fill_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(*fill_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return ntohs(sa.sin_port);
}

/* ---- a raw TCP client -------------------------------------------------- */

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    h_raw_t *r = h->data;
    (void)n;
    *b = uv_buf_init(r->in + r->in_len, (unsigned)(sizeof r->in - r->in_len));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    h_raw_t *r = s->data;
    (void)b;
    if (n > 0) r->in_len += (size_t)n;
    if (n < 0) r->end = (int)n;
}

static void raw_connected(uv_connect_t *req, int status) {
    h_raw_t *r = req->data;
    cr_assert_eq(status, 0);
    r->connected = 1;
    cr_assert_eq(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read), 0);
}

void h_raw_connect(h_raw_t *r, const char *address) {
    ct_address_t a;
    memset(r, 0, sizeof *r);
    cr_assert_eq(ct_address_parse(address, &a), 0);
    cr_assert_eq(uv_tcp_init(&H.uv, &r->tcp), 0);
    r->tcp.data = r;
    r->connect.data = r;
    cr_assert_eq(uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&a.sa, raw_connected), 0);
    H_RUN_UNTIL(r->connected);
}

void h_raw_write(h_raw_t *r, const void *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    cr_assert_eq(uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, NULL), 0);
}

static void raw_closed(uv_handle_t *h) {
    ((h_raw_t *)h->data)->closed = 1;
}

void h_raw_close(h_raw_t *r) {
    uv_close((uv_handle_t *)&r->tcp, raw_closed);
    H_RUN_UNTIL(r->closed);
}
