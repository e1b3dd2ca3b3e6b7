/* `ctower bench`: drives an echo server with pipeline or multiplex clients
 * and reports throughput, latency percentiles and errors. With --codec resp
 * each request is a Redis command (--command, PING by default), so that it
 * can drive a Redis server as well as its own echo.
 *
 * Each client thread runs its own loop with its share of the connections;
 * without --server, as many server threads each run an echo listener on a
 * free loopback port, and client thread i talks to server thread i. */
#include "bench.h"
#include "context_block.h"
#include "http_echo.h"
#include "resp_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* GRACE_MS: how long requests still in flight when --duration ends are
 * waited for, and how long a --requests run may go without an answer; a
 * server that never answers must not keep the bench running, nor one that
 * never answers a connect (CONNECT_TIMEOUT_MS). */
enum { MAX_CONNECTING = 256, MAX_ERROR_KINDS = 16, GRACE_MS = 5000, CONNECT_TIMEOUT_MS = 5000 };

/* The error kind of a Redis error reply ("-ERR ..."): an answer, but not the
 * one asked for. A service error code, so that it is apart from every
 * library error. */
#define ERROR_REPLY CT_SERVICE_ERROR(1)
enum { ERROR_TEXT_MAX = 160 };

/* One cache line holds what a request touches (its start and the op's hot
 * fields; op.data is its connection): thousands are in flight, most of them
 * out of cache. */
typedef struct bench_req {
    _Alignas(64) uint64_t start_ns;
    ct_op_t op;
    ct_context_t ctx; /* --deadline: op.ctx, set anew at each call */
} bench_req_t;

#define REQ_CONN(r) ((struct bench_conn *)(r)->op.data)

typedef struct bench_conn {
    ct_service_t *svc; /* &client.service, or the stack's top with --reconnect */
    ct_stream_t stream;
    ct_http2_t *h2; /* --codec http2: its own allocation, between the stream and client */
    ct_client_t client;
    ct_slab_tags_t tags;
    /* --reconnect: a stack of a reconnecting client (and with --retry a
     * retry layer) built by ct_stack_t, its own allocation, so that runs
     * without it stay small */
    ct_stack_t *stack;
    ct_retry_t *retry; /* --retry without --reconnect: likewise, over the client */
    struct client_thread *th;
    bench_req_t *reqs;
    int up;
} bench_conn_t;

typedef struct error_count {
    int code;
    uint64_t count;
} error_count_t;

typedef struct client_thread {
    uv_thread_t tid;
    uv_loop_t uv;
    ct_loop_t ct;
    wire_t wire;
    ct_connector_t connector;
    const options_t *o;
    char address[160];
    bench_conn_t *conns;
    int nconns, next_connect, settled, failed, closed;
    ct_histogram_t hist;
    uint64_t done;           /* this thread's own count */
    uint64_t watched_done;   /* done at the last look of on_watch */
    uint64_t done_published; /* a copy for the main thread's progress line */
    int all_connected;       /* likewise */
    int finished;            /* likewise */
    /* Requests this thread may still issue: --requests's share, or no end
     * (UINT64_MAX) until --duration is up; 0 once stopping. */
    uint64_t budget;
    /* --size, where every echoed reply reads it; 0 with --codec resp, so that
     * no reply takes the echo's way (on_reply). */
    size_t size;
    /* --codec resp: the command every request sends, its bytes and the
     * bytes of the replies; NULL for the echo. */
    const uint8_t *command;
    size_t command_len;
    uint64_t reply_bytes;
    char first_error[ERROR_TEXT_MAX]; /* the first error reply's text */
    size_t pool_cap;                  /* the pooled buffers' size */
    uint64_t outstanding;
    uint64_t t_start, t_end;
    /* One clock reading per read, as the baseline takes it: replies come
     * from the read callbacks, a read's replies one after another, so the
     * reading is taken at the first reply of a connection other than the last
     * one's, and forgotten before each poll. Once per loop turn is not
     * enough: libuv polls again within a turn when a poll fills its event
     * array (over 1,024 ready connections), and a request written during the
     * turn can then be answered within it, measured as 0 us. */
    uint64_t now_ns;
    int now_valid;
    const struct bench_conn *clock_conn; /* whose reply took the reading */
    uv_prepare_t clock;
    uv_timer_t timer;
    error_count_t errors[MAX_ERROR_KINDS];
    uint64_t other_errors;
    ct_retry_counts_t retries; /* --retry: the connections' layers', added up as they close */
} client_thread_t;

typedef struct server_thread {
    uv_thread_t tid;
    uv_loop_t uv;
    ct_loop_t ct;
    wire_t wire;
    ct_service_fn_t echo;
    ct_listener_t listener;
    uv_async_t stop;
    uv_sem_t ready;
    const options_t *o;
    size_t pool_cap;
    char address[160];
    int error;
    context_reader_t contexts; /* --context */
} server_thread_t;

/* ---- the client side ------------------------------------------------------ */

static void count_error(client_thread_t *th, int code) {
    int i;
    for (i = 0; i < MAX_ERROR_KINDS; i++) {
        if (th->errors[i].code == code || th->errors[i].code == 0) {
            th->errors[i].code = code;
            th->errors[i].count++;
            return;
        }
    }
    th->other_errors++;
}

static void finish_thread(client_thread_t *th);

static uint64_t now_ns(client_thread_t *th) {
    if (!th->now_valid) {
        th->now_ns = uv_hrtime();
        th->now_valid = 1;
    }
    return th->now_ns;
}

/* The client did not take b (rc): the request ends here. */
static void call_refused(bench_req_t *r, ct_buf_t *b, int rc) {
    bench_conn_t *c = REQ_CONN(r);
    client_thread_t *th = c->th;
    int cause = c->stack ? 0 : ct_client_cause(&c->client);
    ct_buf_pool_put(&th->wire.pool, b);
    count_error(th, cause ? cause : rc);
    if (--th->outstanding == 0) finish_thread(th);
}

/* --deadline: r's call gets its time from now; --context: b carries it. */
static inline void with_context(client_thread_t *th, bench_req_t *r, ct_buf_t *b) {
    if (r->op.ctx) r->ctx.deadline_ms = uv_now(th->ct.uv) + (uint64_t)th->o->deadline_ms;
    if (th->o->context) block_write(b, th->o->multiplex ? 4 : 0, r->op.ctx, uv_now(th->ct.uv));
}

/* Sends b, a fresh request, on r's connection. */
static void issue(bench_req_t *r, ct_buf_t *b) {
    client_thread_t *th = REQ_CONN(r)->th;
    int rc;
    th->budget--;
    th->outstanding++;
    r->start_ns = now_ns(th);
    with_context(th, r, b);
    rc = ct_service_call(REQ_CONN(r)->svc, b, &r->op);
    if (rc < 0) call_refused(r, b, rc);
}

/* Issues a fresh request on r's connection: the command, or a payload. */
static void issue_new(bench_req_t *r) {
    client_thread_t *th = REQ_CONN(r)->th;
    size_t len = th->command ? th->command_len : th->size;
    ct_buf_t *b = ct_buf_pool_get(&th->wire.pool, len);
    if (!b) {
        count_error(th, UV_ENOMEM);
        if (th->outstanding == 0) finish_thread(th);
        return;
    }
    b->len = len;
    if (th->command)
        memcpy(b->base, th->command, len);
    else if (th->o->line_codec)
        memset(b->base, 'x', len);
    issue(r, b);
}

static void error_reply(client_thread_t *th, const char *text, size_t len) {
    size_t n = len < ERROR_TEXT_MAX - 1 ? len : ERROR_TEXT_MAX - 1;
    count_error(th, ERROR_REPLY);
    if (th->first_error[0]) return;
    memcpy(th->first_error, text, n);
    th->first_error[n] = 0;
}

/* An HTTP response (one whole message, which the codec framed): any status
 * but 2xx is counted, and the first status line kept to say why. */
static void check_http_reply(client_thread_t *th, const ct_buf_t *reply) {
    size_t room = th->o->http2 ? 4 : 0; /* the tag */
    const char *text = reply->base + room;
    size_t len = reply->len > room ? reply->len - room : 0;
    const char *line_end = memchr(text, '\r', len);
    if (len > 9 && text[9] == '2') return; /* "HTTP/1.1 2xx" */
    error_reply(th, text, line_end ? (size_t)(line_end - text) : len);
}

/* A Redis reply (one whole value, which the codec checked): an error reply
 * ('-', or RESP3's blob error '!') is counted, and the first one kept to
 * say why. */
static void check_reply(client_thread_t *th, const ct_buf_t *reply) {
    ct_resp_item_t item;
    size_t at = 0;
    th->reply_bytes += reply->len;
    if (th->o->http) {
        check_http_reply(th, reply);
        return;
    }
    if (ct_resp_read((const uint8_t *)reply->base, reply->len, &at, &item) != 0 ||
        (item.type != '-' && item.type != '!'))
        return;
    error_reply(th, (const char *)item.str, item.len);
}

/* A reply that is not simply sent again: an error, a wrong echo (counted,
 * and a fresh request takes its place), or the end of the run. */
static void reply_ended(bench_req_t *r, int status, ct_buf_t *echoed) {
    client_thread_t *th = REQ_CONN(r)->th;
    if (status < 0) {
        int cause = status == CT_ERECVBROKEN || status == CT_ESENDBROKEN || status == CT_ECONNECT
                        ? r->op.cause
                        : status;
        count_error(th, cause);
    } else {
        if (th->command)
            check_reply(th, echoed);
        else if (echoed->len != th->size)
            count_error(th, CT_EMALFORMED);
        ct_buf_pool_put(&th->wire.pool, echoed);
        if (th->budget > 0) {
            issue_new(r);
            return;
        }
    }
    if (th->outstanding == 0) finish_thread(th);
}

/* Runs for every answer: flattened, so that the call into the library
 * (ct_service_call) is inlined as LTO would not do on its own. */
static __attribute__((flatten)) void on_reply(ct_op_t *op, int status, void *response) {
    bench_req_t *r = CT_CONTAINER_OF(op, bench_req_t, op);
    struct bench_conn *conn = REQ_CONN(r);
    client_thread_t *th = conn->th;
    ct_buf_t *echoed = response;
    uint64_t now;
    int rc;
    if (conn != th->clock_conn) {
        th->clock_conn = conn;
        th->now_valid = 0;
    }
    now = now_ns(th);
    if (status == 0) { /* a failed request has no latency, and is an error, not a request */
        ct_histogram_record(&th->hist, now - r->start_ns);
        th->done++; /* a locked add here cost ~5% of the whole benchmark's CPU */
    }
    if (status != 0 || echoed->len != th->size || th->budget == 0) {
        th->outstanding--;
        reply_ended(r, status, echoed);
        return;
    }
    /* An echo is the next request as it is, and r stays outstanding. */
    th->budget--;
    r->start_ns = now;
    with_context(th, r, echoed);
    rc = ct_service_call(conn->svc, echoed, &r->op);
    if (rc < 0) call_refused(r, echoed, rc);
}

static void add_retry_counts(ct_retry_counts_t *sum, ct_retry_counts_t n) {
    sum->retries += n.retries;
    sum->budget_refusals += n.budget_refusals;
    sum->exhausted += n.exhausted;
}

static void conn_closed(bench_conn_t *c) {
    client_thread_t *th = c->th;
    if (c->retry) {
        add_retry_counts(&th->retries, ct_retry_counts(c->retry));
        free(c->retry);
    }
    if (c->stack) {
        if (c->stack->has_retry) add_retry_counts(&th->retries, ct_retry_counts(&c->stack->retry));
        free(c->stack);
    } else if (th->o->multiplex) {
        ct_slab_tags_free(&c->tags);
    }
    free(c->h2);
    if (++th->closed == th->nconns - th->failed) {
        uv_close((uv_handle_t *)&th->timer, NULL);
        uv_close((uv_handle_t *)&th->clock, NULL);
        ct_loop_close(&th->ct, NULL);
    }
}

static void on_client_closed(ct_service_t *svc) {
    conn_closed(svc->data);
}

static void on_stack_closed(ct_stack_t *stack) {
    conn_closed(stack->data);
}

static void finish_thread(client_thread_t *th) {
    int i;
    if (th->t_end) return;
    th->t_end = uv_hrtime();
    th->budget = 0;
    uv_timer_stop(&th->timer);
    for (i = 0; i < th->nconns; i++) {
        bench_conn_t *c = &th->conns[i];
        if (!c->up) continue;
        if (c->stack)
            ct_stack_close(c->stack, on_stack_closed);
        else
            ct_service_close(c->svc, on_client_closed);
    }
    if (th->nconns == th->failed) {
        uv_close((uv_handle_t *)&th->timer, NULL);
        uv_close((uv_handle_t *)&th->clock, NULL);
        ct_loop_close(&th->ct, NULL);
    }
}

/* The grace after --duration is over: what is still in flight ends with
 * the clients (CT_ECLOSED, counted as errors). */
static void on_grace_over(uv_timer_t *t) {
    finish_thread(t->data);
}

/* With --requests there is no end of time: a run whose answers stop coming
 * for GRACE_MS ends there, the requests in flight counted as errors. */
static void on_watch(uv_timer_t *t) {
    client_thread_t *th = t->data;
    if (th->done != th->watched_done) {
        th->watched_done = th->done;
        return;
    }
    finish_thread(th);
}

static void on_duration(uv_timer_t *t) {
    client_thread_t *th = t->data;
    th->budget = 0;
    if (th->outstanding == 0)
        finish_thread(th);
    else
        uv_timer_start(&th->timer, on_grace_over, GRACE_MS, 0);
}

static void start_requests(client_thread_t *th) {
    int i, d;
    __atomic_store_n(&th->all_connected, 1, __ATOMIC_RELEASE);
    th->t_start = now_ns(th);
    if (th->failed == th->nconns) {
        finish_thread(th);
        return;
    }
    if (!th->o->requests)
        uv_timer_start(&th->timer, on_duration, (uint64_t)(th->o->duration_s * 1000), 0);
    else
        uv_timer_start(&th->timer, on_watch, GRACE_MS, GRACE_MS);
    for (d = 0; d < th->o->depth; d++) {
        for (i = 0; i < th->nconns; i++)
            if (th->conns[i].up && th->budget > 0) issue_new(&th->conns[i].reqs[d]);
    }
    if (th->outstanding == 0) finish_thread(th);
}

static void connect_next(client_thread_t *th);

/* With --retry, svc under a retry layer of its own (which owns it from then
 * on); the layer's cost is what that option measures. */
static ct_service_t *with_retry(bench_conn_t *c, ct_service_t *svc) {
    client_thread_t *th = c->th;
    ct_retry_config_t cfg = {0};
    int r;
    if (!th->o->retry || c->stack) return svc; /* (a stack has its own) */
    cfg.copy = ct_buf_pool_copy_msg;
    cfg.copy_ctx = &th->wire.pool;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &th->wire.pool;
    cfg.max_in_flight = (size_t)th->o->depth;
    /* an echo may run twice: the calls a broken connection took are tried
     * again too */
    cfg.retry_on = CT_RETRY_IDEMPOTENT;
    c->retry = malloc(sizeof *c->retry);
    r = c->retry ? ct_retry_init(c->retry, &th->ct, svc, &cfg) : UV_ENOMEM;
    if (r < 0) { /* at setup, before any request: the run cannot be what was asked */
        fprintf(stderr, "ctower bench: --retry: %s\n", ct_strerror(r));
        exit(1);
    }
    return &c->retry->service;
}

/* c calls svc from now on. */
static void conn_up(bench_conn_t *c, ct_service_t *svc) {
    int d;
    svc = with_retry(c, svc);
    c->up = 1;
    c->svc = svc;
    svc->data = c;
    for (d = 0; d < c->th->o->depth; d++) {
        ct_op_init(&c->reqs[d].op, on_reply);
        c->reqs[d].op.data = c;
        if (c->th->o->deadline_ms) {
            ct_context_init(&c->reqs[d].ctx);
            c->reqs[d].op.ctx = &c->reqs[d].ctx;
        }
    }
}

static void on_connected(ct_stream_t *stream, int status) {
    bench_conn_t *c = CT_CONTAINER_OF(stream, bench_conn_t, stream);
    client_thread_t *th = c->th;
    ct_client_config_t cfg = {0};
    ct_transport_t *t = &stream->transport;
    int r = status;
    cfg.max_in_flight = (size_t)th->o->depth;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &th->wire.pool;
    if (r == 0 && th->o->http2 && !(c->h2 = malloc(sizeof *c->h2))) r = UV_ENOMEM;
    if (r == 0) r = wire_client_transport(&th->wire, &th->ct, stream, c->h2, &t);
    if (r == 0 && th->o->multiplex) {
        r = ct_slab_tags_init(&c->tags, (size_t)th->o->depth, ct_buf_get_tag, ct_buf_set_tag);
        if (r == 0) r = ct_multiplex_client_init(&c->client, &th->ct, t, &c->tags.store, &cfg);
    } else if (r == 0) {
        r = ct_pipeline_client_init(&c->client, &th->ct, t, &cfg);
    }
    if (r < 0) {
        if (status == 0) ct_transport_close(t, NULL);
        th->failed++;
        count_error(th, r);
    } else {
        conn_up(c, &c->client.service);
    }
    if (++th->settled == th->nconns)
        start_requests(th);
    else
        connect_next(th);
}

/* A bounded number of connects at once, so a large --connections does not
 * overflow the listen backlog. */
static void connect_next(client_thread_t *th) {
    while (th->next_connect < th->nconns && th->next_connect - th->settled < MAX_CONNECTING) {
        bench_conn_t *c = &th->conns[th->next_connect++];
        int r = ct_connector_connect(&th->connector, &c->stream, on_connected);
        if (r < 0) {
            th->failed++;
            count_error(th, r);
            if (++th->settled == th->nconns) start_requests(th);
        }
    }
}

/* --reconnect: every connection is a stack (ct_stack_t) of one reconnecting
 * client, under a retry layer with --retry, with the depth as its one
 * bound and nothing queued (the bench keeps depth calls in flight itself).
 * Its requests wait for its first connect, so there is nothing to wait for
 * here (and no bound on connects at once: they all start with the first
 * requests). */
static void start_reconnecting(client_thread_t *th) {
    ct_stack_config_t cfg = {0};
    ct_retry_config_t retry = {0};
    const char *endpoints[1] = {th->address};
    int i, r;
    cfg.endpoints = endpoints;
    cfg.n_endpoints = 1;
    cfg.stream = &th->wire.stream;
    cfg.multiplex = th->o->multiplex;
    cfg.http2 = th->o->http2 ? &th->wire.h2_client : NULL;
    cfg.max_in_flight = (size_t)th->o->depth;
    cfg.shed = 1;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &th->wire.pool;
    cfg.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    if (th->o->retry) {
        retry.copy = ct_buf_pool_copy_msg;
        retry.copy_ctx = &th->wire.pool;
        /* an echo may run twice: the calls a broken connection took are
         * tried again too */
        retry.retry_on = CT_RETRY_IDEMPOTENT;
        cfg.retry = &retry;
    }
    for (i = 0; i < th->nconns; i++) {
        bench_conn_t *c = &th->conns[i];
        c->stack = malloc(sizeof *c->stack);
        r = c->stack ? ct_stack_init(c->stack, &th->ct, &cfg) : UV_ENOMEM;
        if (r < 0) {
            free(c->stack);
            c->stack = NULL;
            th->failed++;
            count_error(th, r);
        } else {
            c->stack->data = c;
            conn_up(c, c->stack->service);
        }
    }
    th->settled = th->nconns;
    start_requests(th);
}

/* Just before the loop polls. */
static void on_clock(uv_prepare_t *prepare) {
    client_thread_t *th = prepare->data;
    th->now_valid = 0;
    __atomic_store_n(&th->done_published, th->done, __ATOMIC_RELAXED); /* once per turn */
}

static void client_thread_run(void *arg) {
    client_thread_t *th = arg;
    int i, r;
    uv_loop_init(&th->uv);
    ct_loop_init(&th->ct, &th->uv);
    wire_init(&th->wire, th->o, th->pool_cap);
    th->wire.stream.tls = th->o->client_tls;
    uv_timer_init(&th->uv, &th->timer);
    th->timer.data = th;
    uv_prepare_init(&th->uv, &th->clock);
    th->clock.data = th;
    uv_prepare_start(&th->clock, on_clock);
    uv_unref((uv_handle_t *)&th->clock);
    ct_histogram_init(&th->hist);
    th->conns = calloc((size_t)th->nconns, sizeof *th->conns);
    for (i = 0; i < th->nconns; i++) {
        th->conns[i].th = th;
        /* sizeof is a multiple of the alignment, as aligned_alloc wants */
        th->conns[i].reqs =
            aligned_alloc(_Alignof(bench_req_t), (size_t)th->o->depth * sizeof(bench_req_t));
        memset(th->conns[i].reqs, 0, (size_t)th->o->depth * sizeof(bench_req_t));
    }
    r = ct_connector_init(&th->connector, &th->ct, th->address, &th->wire.stream);
    if (r == 0 && th->o->reconnect) {
        start_reconnecting(th);
    } else if (r < 0) {
        th->failed = th->nconns;
        count_error(th, r);
        start_requests(th);
    } else {
        /* A server that does not answer a connect is an error in seconds,
         * not after the kernel's two minutes of retries. */
        th->connector.timeout_ms = CONNECT_TIMEOUT_MS;
        connect_next(th);
    }
    uv_run(&th->uv, UV_RUN_DEFAULT);
    uv_loop_close(&th->uv);
    for (i = 0; i < th->nconns; i++)
        free(th->conns[i].reqs);
    free(th->conns);
    wire_destroy(&th->wire);
    __atomic_store_n(&th->finished, 1, __ATOMIC_RELEASE);
}

/* ---- the in-process server ----------------------------------------------- */

static void on_server_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_echo_closed(ct_service_t *svc) {
    server_thread_t *st = svc->data;
    ct_loop_close(&st->ct, on_server_loop_closed);
}

static void on_listener_closed(ct_listener_t *l) {
    server_thread_t *st = l->data;
    ct_service_close(&st->echo.service, on_echo_closed);
}

static void on_stop(uv_async_t *a) {
    server_thread_t *st = a->data;
    uv_close((uv_handle_t *)a, NULL);
    ct_listener_shutdown(&st->listener, 1000, on_listener_closed);
}

static void server_thread_run(void *arg) {
    server_thread_t *st = arg;
    ct_listener_config_t cfg;
    ct_address_t bound;
    uv_loop_init(&st->uv);
    ct_loop_init(&st->ct, &st->uv);
    wire_init(&st->wire, st->o, st->pool_cap);
    if (st->o->http)
        http_echo_init(&st->echo, &st->ct, &st->wire.pool, st->o->http2);
    else
        ct_echo_service_init(&st->echo, &st->ct);
    st->echo.service.data = st;
    memset(&cfg, 0, sizeof cfg);
    cfg.multiplex = st->o->multiplex;
    cfg.stream = st->wire.listen_stream;
    cfg.stream.tls = st->o->server_tls;
    cfg.http2 = st->o->http2 ? &st->wire.h2_server : NULL;
    cfg.server.max_in_flight = (size_t)st->o->depth;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &st->wire.pool;
    if (st->o->context) {
        st->contexts.room = st->o->multiplex ? 4 : 0;
        cfg.server.read_context = block_read_context;
        cfg.server.context_ctx = &st->contexts;
        cfg.server.on_error = st->o->multiplex ? block_error_reply_tagged : block_error_reply;
    }
    st->error =
        ct_listener_init(&st->listener, &st->ct, "tcp://127.0.0.1:0", &st->echo.service, &cfg);
    if (st->error == 0) {
        st->listener.data = st;
        ct_listener_address(&st->listener, &bound);
        ct_address_format(&bound, st->address, sizeof st->address);
        uv_async_init(&st->uv, &st->stop, on_stop);
        st->stop.data = st;
    }
    uv_sem_post(&st->ready);
    if (st->error) return;
    uv_run(&st->uv, UV_RUN_DEFAULT);
    uv_loop_close(&st->uv);
    wire_destroy(&st->wire);
}

/* ---- the report ------------------------------------------------------------ */

static long rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Each in-process connection takes two descriptors. The soft limit is raised
 * to what is needed; past the hard limit only a privileged process can go
 * (up to fs.nr_open). Returns -1, having said why, if there cannot be enough:
 * a run short of descriptors would leave connections that the server never
 * accepts, waiting for answers that never come. */
static int raise_file_limit(const options_t *o) {
    int needed = o->address ? o->connections : 2 * o->connections;
    rlim_t want = (rlim_t)needed + 256;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return 0;
    if (rl.rlim_max < want) {
        struct rlimit higher = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &higher) == 0) return 0;
        fprintf(stderr,
                "ctower bench: %d connections need %llu descriptors, and the hard limit is %llu:"
                " raise it (as root), or run the server in a process of its own (--server)\n",
                o->connections, (unsigned long long)want, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -1;
}

/* Every request in flight holds its payload a few times over (the request,
 * the server's copy, the answer, the write buffers): a run that would need
 * more than half of the machine's memory is refused rather than left to the
 * out-of-memory killer. */
static int too_much_memory(const options_t *o) {
    double in_flight = (double)o->connections * o->depth * o->size;
    double need = in_flight * (o->address ? 2 : 4);
    double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (have <= 0 || need <= have / 2) return 0;
    fprintf(stderr,
            "ctower bench: %d connections x depth %d x %d bytes would need about %.1f GB in "
            "flight, more than half of this machine's memory (%.1f GB)\n",
            o->connections, o->depth, o->size, need / 1e9, have / 1e9);
    return 1;
}

typedef struct totals {
    ct_histogram_t hist;
    uint64_t done, errors;
    const char *first_error; /* --codec resp: the first error reply's text, or NULL */
    uint64_t resp_bytes;     /* --codec resp: commands and replies, in bytes */
    ct_retry_counts_t retries;
    double seconds, rps, mbps;
    error_count_t kinds[MAX_ERROR_KINDS];
    int nkinds;
} totals_t;

static void add_kind(totals_t *t, int code, uint64_t n) {
    int i;
    for (i = 0; i < t->nkinds; i++)
        if (t->kinds[i].code == code) {
            t->kinds[i].count += n;
            return;
        }
    if (t->nkinds < MAX_ERROR_KINDS) t->kinds[t->nkinds++] = (error_count_t){code, n};
}

static const char *kind_name(int code) {
    return code == ERROR_REPLY ? "error_reply" : ct_err_name(code);
}

/* s as a JSON string's contents. */
static void print_json_text(const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
}

static void report(const options_t *o, const totals_t *t, long mem_per_conn) {
    double us = 1e-3;
    int i;
    if (o->json) {
        printf("{\"requests_per_sec\": %.1f, \"mb_per_sec\": %.3f, \"p50_us\": %.1f, "
               "\"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, "
               "\"requests\": %llu, \"errors\": %llu, \"errors_by_kind\": {",
               t->rps, t->mbps, ct_histogram_quantile(&t->hist, 0.5) * us,
               ct_histogram_quantile(&t->hist, 0.9) * us,
               ct_histogram_quantile(&t->hist, 0.99) * us,
               ct_histogram_quantile(&t->hist, 0.999) * us, t->hist.max * us,
               (unsigned long long)t->done, (unsigned long long)t->errors);
        for (i = 0; i < t->nkinds; i++)
            printf("%s\"%s\": %llu", i ? ", " : "", kind_name(t->kinds[i].code),
                   (unsigned long long)t->kinds[i].count);
        printf("}, \"seconds\": %.3f, \"memory_per_connection_bytes\": %ld, \"options\": "
               "{\"mode\": \"%s\", \"codec\": \"%s\", \"connections\": %d, \"depth\": %d, "
               "\"size\": %d, \"duration\": %.3f, \"requests\": %lld, \"threads\": %d, "
               "\"reconnect\": %s, \"retry\": %s, \"tls\": %s, \"server\": \"",
               t->seconds, mem_per_conn, o->multiplex ? "multiplex" : "pipeline", codec_name(o),
               o->connections, o->depth, o->size, o->duration_s, o->requests, o->threads,
               o->reconnect ? "true" : "false", o->retry ? "true" : "false",
               o->tls ? "true" : "false");
        print_json_text(o->address ? o->address : "in-process");
        if (o->resp) {
            printf("\", \"command\": \"");
            print_json_text(o->command);
        }
        printf("\"}");
        if (o->retry)
            printf(", \"retries\": %llu, \"retries_refused_by_budget\": %llu, "
                   "\"calls_out_of_attempts\": %llu",
                   (unsigned long long)t->retries.retries,
                   (unsigned long long)t->retries.budget_refusals,
                   (unsigned long long)t->retries.exhausted);
        if (t->first_error) {
            printf(", \"first_error_reply\": \"");
            print_json_text(t->first_error);
            printf("\"");
        }
        printf("}\n");
        return;
    }
    printf("ctower bench: %s%s%s%s%s, %d connection(s) x depth %d, ",
           o->multiplex ? "multiplex" : "pipeline", o->reconnect || o->retry ? " (" : "",
           o->reconnect ? "reconnecting clients" : "", o->reconnect && o->retry ? ", " : "",
           o->retry       ? "retry layer)"
           : o->reconnect ? ")"
                          : "",
           o->connections, o->depth);
    if (o->resp)
        printf("command '%s'", o->command);
    else if (o->http)
        printf("%s with a %d-byte body", o->size ? "POST" : "GET", o->size);
    else
        printf("%d-byte payload", o->size);
    printf(", %s codec%s, %d thread(s), %s server\n", codec_name(o), o->tls ? ", TLS" : "",
           o->threads, o->address ? o->address : "in-process");
    printf("  %-14s %llu in %.2f s\n", "requests", (unsigned long long)t->done, t->seconds);
    printf("  %-14s %.0f req/s\n", "throughput", t->rps);
    printf("  %-14s %.2f MB/s (%s, both directions)\n", "bandwidth", t->mbps,
           o->resp   ? "commands and replies"
           : o->http ? "requests and responses, whole"
                     : "payload");
    printf("  %-14s p50 %.1f us   p90 %.1f us   p99 %.1f us   p99.9 %.1f us   max %.1f us\n",
           "latency", ct_histogram_quantile(&t->hist, 0.5) * us,
           ct_histogram_quantile(&t->hist, 0.9) * us, ct_histogram_quantile(&t->hist, 0.99) * us,
           ct_histogram_quantile(&t->hist, 0.999) * us, t->hist.max * us);
    printf("  %-14s %llu", "errors", (unsigned long long)t->errors);
    for (i = 0; i < t->nkinds; i++)
        printf("%s%s %llu", i ? ", " : " (", kind_name(t->kinds[i].code),
               (unsigned long long)t->kinds[i].count);
    printf("%s\n", t->nkinds ? ")" : "");
    if (t->first_error) printf("  %-14s %s\n", "first error", t->first_error);
    if (o->retry)
        printf("  %-14s %llu (%llu refused by the budget, %llu calls out of attempts)\n", "retries",
               (unsigned long long)t->retries.retries,
               (unsigned long long)t->retries.budget_refusals,
               (unsigned long long)t->retries.exhausted);
    if (mem_per_conn > 0)
        printf("  %-14s %.1f KiB per connection (RSS growth, %s)\n", "memory",
               mem_per_conn / 1024.0, o->address ? "client side only" : "client + server");
}

/* ---- main -------------------------------------------------------------------- */

static int all_flag(client_thread_t *ths, int n, int which) {
    int i;
    for (i = 0; i < n; i++)
        if (!__atomic_load_n(which ? &ths[i].finished : &ths[i].all_connected, __ATOMIC_ACQUIRE))
            return 0;
    return 1;
}

/* The threads' share of a run: with --codec resp the command's bytes, with
 * --codec http the request's (the threads read them, bench_main frees them
 * after joining). */
static int request_bytes(const options_t *o, uint8_t **command, size_t *len) {
    *command = NULL;
    *len = 0;
    if (!o->resp && !o->http) return 0;
    *command = o->http ? http_bench_request(o->size, o->http2 ? 4 : 0, o->deadline_ms, len)
                       : resp_text_command(o->command, len);
    return *command ? 0 : UV_ENOMEM;
}

int bench_main(const options_t *given) {
    options_t with_defaults = *given;
    const options_t *o = &with_defaults;
    int n = o->threads < o->connections ? o->threads : o->connections, i, progress = isatty(2);
    client_thread_t *cl;
    server_thread_t *sv = NULL;
    totals_t t;
    long rss_before, mem_per_conn = 0;
    ct_address_t addr;
    uint64_t last = 0, started = uv_hrtime(), last_ns = started;
    uint8_t *command;
    size_t command_len, pool_cap;
    if (o->command && !o->resp) {
        fprintf(stderr, "ctower bench: --command is for --codec resp (a Redis command)\n");
        return 2;
    }
    if (o->resp && !o->command) with_defaults.command = "PING";
    if (o->http && !o->http2 && o->depth > CT_HTTP_MAX_PENDING) {
        fprintf(stderr,
                "ctower bench: --codec http keeps at most %d requests in flight per "
                "connection (the answers to HEADs are told apart by their order)\n",
                CT_HTTP_MAX_PENDING);
        return 2;
    }
    if (o->address && ct_address_parse(o->address, &addr) != 0) {
        fprintf(stderr,
                "ctower bench: --server %s: bad address (expected tcp://HOST:PORT, "
                "tcp://[V6]:PORT or unix:///PATH)\n",
                o->address);
        return 2;
    }
    if (raise_file_limit(o) != 0) return 2;
    if (too_much_memory(o)) return 2;
    if (request_bytes(o, &command, &command_len) != 0) {
        fprintf(stderr, "ctower bench: %s\n", ct_strerror(UV_ENOMEM));
        return 1;
    }
    pool_cap = command_len > (size_t)o->size ? command_len : (size_t)o->size;
    cl = calloc((size_t)n, sizeof *cl);
    if (!o->address) {
        sv = calloc((size_t)n, sizeof *sv);
        for (i = 0; i < n; i++) {
            sv[i].o = o;
            sv[i].pool_cap = pool_cap;
            uv_sem_init(&sv[i].ready, 0);
            uv_thread_create(&sv[i].tid, server_thread_run, &sv[i]);
            uv_sem_wait(&sv[i].ready);
            if (sv[i].error) {
                fprintf(stderr, "ctower bench: server: %s\n", ct_strerror(sv[i].error));
                exit(1); /* other server threads are running: end the process */
            }
        }
    }
    rss_before = rss_bytes();
    for (i = 0; i < n; i++) {
        cl[i].o = o;
        cl[i].nconns = o->connections / n + (i < o->connections % n);
        cl[i].budget =
            o->requests ? (uint64_t)(o->requests / n + (i < o->requests % n)) : UINT64_MAX;
        cl[i].size = command ? 0 : (size_t)o->size;
        cl[i].command = command;
        cl[i].command_len = command_len;
        cl[i].pool_cap = pool_cap;
        snprintf(cl[i].address, sizeof cl[i].address, "%s",
                 o->address ? o->address : sv[i].address);
        uv_thread_create(&cl[i].tid, client_thread_run, &cl[i]);
    }
    while (!all_flag(cl, n, 0) && !all_flag(cl, n, 1))
        uv_sleep(5);
    if (o->connections >= 100) mem_per_conn = (rss_bytes() - rss_before) / o->connections;
    while (!all_flag(cl, n, 1)) {
        uint64_t now;
        uv_sleep(100);
        now = uv_hrtime();
        if (progress && now - last_ns >= 1000000000ull) {
            uint64_t done = 0;
            for (i = 0; i < n; i++)
                done += __atomic_load_n(&cl[i].done_published, __ATOMIC_RELAXED);
            fprintf(stderr, "\r  %.0f s: %llu requests, %.0f req/s   ", (now - started) / 1e9,
                    (unsigned long long)done,
                    (double)(done - last) * 1e9 / (double)(now - last_ns));
            last = done;
            last_ns = now;
        }
    }
    if (progress) fprintf(stderr, "\r%60s\r", "");
    memset(&t, 0, sizeof t);
    ct_histogram_init(&t.hist);
    for (i = 0; i < n; i++) {
        int k;
        uv_thread_join(&cl[i].tid);
        ct_histogram_merge(&t.hist, &cl[i].hist);
        for (k = 0; k < MAX_ERROR_KINDS && cl[i].errors[k].code; k++) {
            add_kind(&t, cl[i].errors[k].code, cl[i].errors[k].count);
            t.errors += cl[i].errors[k].count;
        }
        t.errors += cl[i].other_errors;
        t.done += cl[i].done;
        if (!t.first_error && cl[i].first_error[0]) t.first_error = cl[i].first_error;
        t.resp_bytes += cl[i].done * command_len + cl[i].reply_bytes;
        add_retry_counts(&t.retries, cl[i].retries);
        if (cl[i].t_end > cl[i].t_start) {
            double s = (cl[i].t_end - cl[i].t_start) / 1e9;
            t.rps += cl[i].done / s;
            if (s > t.seconds) t.seconds = s;
        }
    }
    if (command) /* the bytes of an average request and its reply, at the request rate */
        t.mbps = t.done ? t.rps * (double)t.resp_bytes / (double)t.done / 1e6 : 0;
    else
        t.mbps = t.rps * 2.0 * o->size / 1e6;
    for (i = 0; sv && i < n; i++) {
        uv_async_send(&sv[i].stop);
        uv_thread_join(&sv[i].tid);
        uv_sem_destroy(&sv[i].ready);
    }
    report(o, &t, mem_per_conn);
    free(cl);
    free(sv);
    free(command);
    return t.errors == 0 ? 0 : 1;
}
