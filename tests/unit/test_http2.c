/* HTTP/2 (ct_http2_t) over TCP: a multiplex client and a listener's
 * multiplex servers, messages written as HTTP/1.1 after their tag. */
#include "testutil.h"

#include <endian.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h> /* (only a client without ALPN: a user's own setup) */
#include <signal.h>

/* A peer that drops its connection while the other side writes (a GOAWAY,
 * say) makes the write fail with EPIPE, which raises SIGPIPE: ignored, as
 * the README asks of applications. */
static void suite_setup(void) {
    signal(SIGPIPE, SIG_IGN);
    h_setup();
}

TestSuite(http2, .init = suite_setup, .fini = h_teardown);

static ct_buf_pool_t pool;

/* ---- the server side ------------------------------------------------------- */

/* The answer to a request: its body echoed, or its target if it has none;
 * a HEAD gets the length alone. Written after 4 bytes of room for the tag. */
/* A request with trailers is answered in kind: its body, then a trailer
 * that says how many trailers came. */
static ct_buf_t *answer_trailers(ct_buf_t *req, const ct_http_message_t *m) {
    char text[256];
    ct_buf_t *res;
    int n = snprintf(text, sizeof text,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%.*s\r\n"
                     "0\r\nx-trailers-seen: %zu\r\n\r\n",
                     m->body.len, (int)m->body.len, m->body.p, m->nfields - m->nheaders);
    res = ct_buf_pool_get(&pool, 4 + (size_t)n);
    cr_assert_not_null(res);
    memcpy(res->base + 4, text, (size_t)n);
    res->len = 4 + (size_t)n;
    ct_buf_pool_put(&pool, req);
    return res;
}

static ct_buf_t *answer(ct_buf_t *req) {
    ct_http_message_t m;
    ct_buf_t *res;
    const char *body;
    size_t len, size = 0;
    int head;
    cr_assert_eq(ct_http_parse_request((uint8_t *)req->base + 4, req->len - 4, &m), 0);
    if (m.nfields > m.nheaders) return answer_trailers(req, &m);
    head = m.method.len == 4 && memcmp(m.method.p, "HEAD", 4) == 0;
    body = m.body.len ? m.body.p : m.target.p;
    len = m.body.len ? m.body.len : m.target.len;
    cr_assert_eq(ct_http_format_response(NULL, 0, 200, NULL, head ? NULL : body, len, &size), 0);
    res = ct_buf_pool_get(&pool, 4 + size);
    cr_assert_not_null(res);
    cr_assert_eq(ct_http_format_response((uint8_t *)res->base + 4, size, 200, NULL,
                                         head ? NULL : body, len, &size),
                 0);
    res->len = 4 + size;
    ct_buf_pool_put(&pool, req);
    return res;
}

static int answer_fn(void *ctx, void *request, void **response) {
    (void)ctx;
    *response = answer(request);
    return 0;
}

static void *answer_held(void *request, void *ctx) {
    (void)ctx;
    return answer(request);
}

/* A service that holds requests and answers them as answer() does: all at
 * once, newest first, when batch of them wait (0: when the test says). */
static void held_answering(held_svc_t *h, size_t batch) {
    held_init(h, 0);
    h->batch = batch;
    h->respond = answer_held;
    h->free_req = ct_buf_pool_free_msg;
    h->free_ctx = &pool;
}

static ct_tls_config_t server_tls; /* .ctx NULL: a plain listener */

static struct net {
    ct_service_fn_t svc;
    ct_listener_t listener;
    ct_http2_config_t h2;
    char bound[128];
    int listener_closed;
} N;

static void on_listener_closed(ct_listener_t *l) {
    (void)l;
    N.listener_closed = 1;
}

/* Listens on a free loopback port with service, each connection HTTP/2
 * with messages of at most max_message bytes (0: the default). */
static void listen_h2(ct_service_t *service, size_t max_message) {
    ct_listener_config_t cfg;
    ct_address_t a;
    memset(&cfg, 0, sizeof cfg);
    N.h2.max_message = max_message;
    cfg.http2 = &N.h2;
    cfg.stream.pool = &pool;
    cfg.stream.tls = server_tls.ctx ? &server_tls : NULL;
    cfg.server.max_in_flight = 64;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &pool;
    cr_assert_eq(ct_listener_init(&N.listener, &H.ct, "tcp://127.0.0.1:0", service, &cfg), 0);
    cr_assert_eq(ct_listener_address(&N.listener, &a), 0);
    cr_assert_eq(ct_address_format(&a, N.bound, sizeof N.bound), 0);
}

/* A listener like listen_h2()'s again, on a given address. */
static void listen_on_again(const char *address) {
    ct_listener_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.http2 = &N.h2;
    cfg.stream.pool = &pool;
    cfg.server.max_in_flight = 64;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &pool;
    cr_assert_eq(ct_listener_init(&N.listener, &H.ct, address, &N.svc.service, &cfg), 0);
}

static void net_start(void) {
    memset(&N, 0, sizeof N);
    ct_buf_pool_init(&pool, 512, 1024);
}

static void net_stop(ct_service_t *service) {
    cr_assert_eq(ct_listener_shutdown(&N.listener, 1000, on_listener_closed), 0);
    H_RUN_UNTIL(N.listener_closed);
    if (service) h_close_service(service);
    h_run();
    ct_buf_pool_destroy(&pool);
}

/* ---- the client side ------------------------------------------------------- */

enum { DEPTH = 16 };

typedef struct h2_conn {
    ct_connector_t connector;
    ct_raw_codec_t raw;
    ct_stream_t stream;
    ct_http2_t h2;
    size_t max_message; /* the client's, 0: the default */
    ct_slab_tags_t tags;
    ct_client_t client;
    struct h2_req {
        ct_op_t op;
        struct h2_conn *conn;
        int n;
    } reqs[DEPTH];
    int connected, next, total, done, wrong, failed, first_status, first_cause;
    int (*body_size)(int n);    /* the request's body size; 0: a GET, -1: a HEAD */
    char last_error[64];        /* the last stand-in's x-ctower-error */
    const ct_tls_config_t *tls; /* NULL: plain */
    char protocol[16];          /* what ALPN agreed on, if TLS */
} h2_conn_t;

/* GET, HEAD, small POSTs, and every 50th a POST larger than a stream's
 * window (65,535 bytes), so that flow control holds its body back. */
static int mixed_sizes(int n) {
    if (n % 4 == 0) return 0;
    if (n % 4 == 1) return -1;
    return n % 200 == 3 ? 100000 : (n * 37) % 3000 + 1;
}

static char body_byte(int n, int i) {
    return (char)('a' + (n + i) % 26);
}

static void issue(h2_conn_t *c, struct h2_req *r);

static void check_answer(h2_conn_t *c, struct h2_req *r, ct_buf_t *b) {
    ct_http_message_t m;
    char target[32];
    int size = c->body_size(r->n), i;
    const ct_http_str_t *len;
    snprintf(target, sizeof target, "/%d", r->n);
    cr_assert_geq(b->len, 4);
    if (ct_http_parse_response((uint8_t *)b->base + 4, b->len - 4, size < 0, &m) != 0 ||
        m.status != 200) {
        const ct_http_str_t *why =
            ct_http_parse_response((uint8_t *)b->base + 4, b->len - 4, 0, &m) == 0
                ? ct_http_field(&m, "x-ctower-error")
                : NULL;
        if (why) snprintf(c->last_error, sizeof c->last_error, "%.*s", (int)why->len, why->p);
        c->wrong++;
        return;
    }
    if (size < 0) { /* HEAD: the length a GET would get, no body */
        len = ct_http_field(&m, "content-length");
        if (m.body.len != 0 || !len || (size_t)atoi(len->p) != strlen(target)) c->wrong++;
    } else if (size == 0) {
        if (m.body.len != strlen(target) || memcmp(m.body.p, target, m.body.len) != 0) c->wrong++;
    } else {
        if (m.body.len != (size_t)size) {
            c->wrong++;
            return;
        }
        for (i = 0; i < size; i++)
            if (m.body.p[i] != body_byte(r->n, i)) {
                c->wrong++;
                return;
            }
    }
}

static void on_reply(ct_op_t *op, int status, void *response) {
    struct h2_req *r = CT_CONTAINER_OF(op, struct h2_req, op);
    h2_conn_t *c = r->conn;
    c->done++;
    if (status != 0) {
        if (!c->failed++) {
            c->first_status = status;
            c->first_cause = op->cause;
        }
        return;
    }
    check_answer(c, r, response);
    ct_buf_pool_put(&pool, response);
    if (c->next < c->total) issue(c, r);
}

static void issue(h2_conn_t *c, struct h2_req *r) {
    static char body[100000];
    char target[32];
    int size, i;
    size_t len = 0;
    ct_buf_t *b;
    const char *method;
    r->n = c->next++;
    size = c->body_size(r->n);
    method = size < 0 ? "HEAD" : size == 0 ? "GET" : "POST";
    for (i = 0; i < size; i++)
        body[i] = body_byte(r->n, i);
    snprintf(target, sizeof target, "/%d", r->n);
    cr_assert_eq(ct_http_format_request(NULL, 0, method, target, "Host: test\r\n",
                                        size > 0 ? body : NULL, size > 0 ? (size_t)size : 0, &len),
                 0);
    b = ct_buf_pool_get(&pool, 4 + len);
    cr_assert_not_null(b);
    cr_assert_eq(ct_http_format_request((uint8_t *)b->base + 4, len, method, target,
                                        "Host: test\r\n", size > 0 ? body : NULL,
                                        size > 0 ? (size_t)size : 0, &len),
                 0);
    b->len = 4 + len;
    cr_assert_eq(ct_service_call(&c->client.service, b, &r->op), 0);
}

static void on_connected(ct_stream_t *stream, int status) {
    h2_conn_t *c = CT_CONTAINER_OF(stream, h2_conn_t, stream);
    ct_http2_config_t h2cfg = {0};
    ct_client_config_t cfg = {0};
    int i;
    const char *agreed;
    size_t len = 0;
    cr_assert_eq(status, 0);
    if ((agreed = ct_stream_tls_protocol(stream, &len)) != NULL)
        snprintf(c->protocol, sizeof c->protocol, "%.*s", (int)len, agreed);
    h2cfg.pool = &pool;
    h2cfg.max_message = c->max_message;
    cr_assert_eq(ct_http2_init(&c->h2, &H.ct, &stream->transport, &h2cfg), 0);
    cr_assert_eq(ct_slab_tags_init(&c->tags, DEPTH, ct_buf_get_tag, ct_buf_set_tag), 0);
    cfg.max_in_flight = DEPTH;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    cr_assert_eq(
        ct_multiplex_client_init(&c->client, &H.ct, &c->h2.transport, &c->tags.store, &cfg), 0);
    c->connected = 1;
    for (i = 0; i < DEPTH && c->next < c->total; i++) {
        c->reqs[i].conn = c;
        ct_op_init(&c->reqs[i].op, on_reply);
        issue(c, &c->reqs[i]);
    }
}

static void h2_connect(h2_conn_t *c, const char *address, int total, int (*body_size)(int)) {
    ct_stream_config_t cfg = {0};
    ct_raw_codec_init(&c->raw, 512);
    cfg.codec = &c->raw.codec;
    cfg.pool = &pool;
    cfg.tls = c->tls;
    c->total = total;
    c->body_size = body_size ? body_size : mixed_sizes;
    cr_assert_eq(ct_connector_init(&c->connector, &H.ct, address, &cfg), 0);
    cr_assert_eq(ct_connector_connect(&c->connector, &c->stream, on_connected), 0);
}

static void h2_close(h2_conn_t *c) {
    h_close_service(&c->client.service);
    ct_slab_tags_free(&c->tags);
}

static int all_done(h2_conn_t *c, int n) {
    int i;
    for (i = 0; i < n; i++) /* a failure issues no more: then all that was issued */
        if (!c[i].connected || c[i].done < (c[i].failed ? c[i].next : c[i].total)) return 0;
    return 1;
}

/* ---- tests ----------------------------------------------------------------- */

Test(http2, clients_and_servers_carry_gets_heads_and_posts_larger_than_a_window) {
    enum { CONNS = 4, PER_CONN = 2000 };
    static h2_conn_t conns[CONNS];
    int i;
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    for (i = 0; i < CONNS; i++)
        h2_connect(&conns[i], N.bound, PER_CONN, NULL);
    H_RUN_UNTIL(all_done(conns, CONNS));
    for (i = 0; i < CONNS; i++) {
        cr_assert_eq(conns[i].failed, 0, "%s (%s)", ct_err_name(conns[i].first_status),
                     ct_err_name(conns[i].first_cause));
        cr_assert_eq(conns[i].wrong, 0, "%d wrong answers, last error %s", conns[i].wrong,
                     conns[i].last_error);
        cr_assert_eq(conns[i].done, PER_CONN);
        h2_close(&conns[i]);
    }
    net_stop(&N.svc.service);
}

/* The service answers each batch newest first: every response must still
 * find its request. */
Test(http2, answers_out_of_order_find_their_requests) {
    static h2_conn_t conn;
    static held_svc_t held;
    net_start();
    held_answering(&held, DEPTH);
    listen_h2(&held.service, 0);
    h2_connect(&conn, N.bound, 50 * DEPTH, NULL);
    H_RUN_UNTIL(all_done(&conn, 1));
    cr_assert_eq(conn.failed, 0, "%s", ct_err_name(conn.first_status));
    cr_assert_eq(conn.wrong, 0);
    cr_assert_eq(held.max_n, DEPTH);
    h2_close(&conn);
    net_stop(&held.service);
    held_free(&held);
}

static int big_every_third(int n) {
    return n % 3 == 1 ? 5000 : 0;
}

/* A response over the client's max_message: that request gets a 502
 * stand-in, the others go on on the same connection. */
Test(http2, a_response_too_large_for_the_client_is_a_stand_in) {
    static h2_conn_t conn;
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    conn.max_message = 1000;
    h2_connect(&conn, N.bound, 30, big_every_third);
    H_RUN_UNTIL(all_done(&conn, 1));
    cr_assert_eq(conn.failed, 0, "%s", ct_err_name(conn.first_status));
    cr_assert_eq(conn.wrong, 10, "each large answer is replaced");
    cr_assert_str_eq(conn.last_error, "CT_EFRAMETOOLARGE");
    h2_close(&conn);
    net_stop(&N.svc.service);
}

/* A request over the server's max_message resets its stream: the client
 * hears CANCEL for it, and nothing else is lost. */
Test(http2, a_request_too_large_for_the_server_resets_its_stream) {
    static h2_conn_t conn;
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 1000);
    h2_connect(&conn, N.bound, 30, big_every_third);
    H_RUN_UNTIL(all_done(&conn, 1));
    cr_assert_eq(conn.failed, 0, "%s", ct_err_name(conn.first_status));
    cr_assert_eq(conn.wrong, 10);
    cr_assert_str_eq(conn.last_error, "CANCEL");
    /* the listener's sessions counted the resets they sent, and every stream */
    cr_assert_eq(ct_counter_read(&N.listener.stats.http2.resets_sent), 10);
    cr_assert_eq(ct_counter_read(&N.listener.stats.http2.streams), 30);
    h2_close(&conn);
    net_stop(&N.svc.service);
}

/* A peer that does not speak HTTP/2 (here, one that echoes bytes): every
 * request in flight fails once, with the receive error CT_EMALFORMED. */
Test(http2, a_peer_that_breaks_the_protocol_fails_the_requests_in_flight) {
    static h2_conn_t conn;
    ct_listener_config_t cfg;
    ct_raw_codec_t raw;
    ct_address_t a;
    net_start();
    ct_echo_service_init(&N.svc, &H.ct);
    ct_raw_codec_init(&raw, 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.stream.codec = &raw.codec;
    cfg.stream.pool = &pool;
    cr_assert_eq(ct_listener_init(&N.listener, &H.ct, "tcp://127.0.0.1:0", &N.svc.service, &cfg),
                 0);
    cr_assert_eq(ct_listener_address(&N.listener, &a), 0);
    cr_assert_eq(ct_address_format(&a, N.bound, sizeof N.bound), 0);
    h2_connect(&conn, N.bound, 3, NULL);
    H_RUN_UNTIL(all_done(&conn, 1));
    cr_assert_eq(conn.failed, 3, "each request fails once");
    cr_assert_eq(conn.first_status, CT_ERECVBROKEN, "%s", ct_err_name(conn.first_status));
    cr_assert_eq(conn.first_cause, CT_EMALFORMED, "%s", ct_err_name(conn.first_cause));
    h2_close(&conn);
    net_stop(&N.svc.service);
}

/* A client that sends HTTP/1.1 to an HTTP/2 server: its connection ends,
 * and the server goes on serving the others. */
Test(http2, a_client_speaking_http1_is_dropped_and_the_others_go_on) {
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    static h2_conn_t conn;
    static h_raw_t raw;
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    h_raw_connect(&raw, N.bound);
    h_raw_write(&raw, text, sizeof text - 1);
    h2_connect(&conn, N.bound, 500, NULL);
    H_RUN_UNTIL(raw.end && all_done(&conn, 1));
    cr_assert_eq(raw.end, UV_EOF, "%s", ct_err_name(raw.end));
    cr_assert_eq(conn.failed, 0);
    cr_assert_eq(conn.wrong, 0);
    h_raw_close(&raw);
    h2_close(&conn);
    net_stop(&N.svc.service);
}

/* Whether the raw client got a GOAWAY with error code `code`. */
static int got_goaway(const h_raw_t *raw, uint32_t code) {
    size_t at = 0;
    while (at + 9 <= raw->in_len) {
        const uint8_t *f = (const uint8_t *)raw->in + at;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        if (at + 9 + len > raw->in_len) break;
        if (f[3] == 7 && len >= 8 &&
            ((uint32_t)f[13] << 24 | (uint32_t)f[14] << 16 | (uint32_t)f[15] << 8 | f[16]) == code)
            return 1;
        at += 9 + len;
    }
    return 0;
}

/* A peer that sends frames that do no work (PRIORITY, here) spends its
 * budget: GOAWAY ENHANCE_YOUR_CALM (0xb) and the end, while the others go
 * on. Below the budget, nothing happens. */
Test(http2, a_flood_of_frames_that_do_no_work_is_closed) {
    enum { FLOOD = CT_HTTP2_FLOOD_BURST + 200, FRAME = 14, HALF = CT_HTTP2_FLOOD_BURST / 2 };
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    static uint8_t bytes[sizeof preface - 1 + FLOOD * FRAME];
    uint8_t *flood = bytes + sizeof preface - 1;
    static h2_conn_t conn;
    static h_raw_t raw;
    size_t i;
    memcpy(bytes, preface, sizeof preface - 1);
    for (i = 0; i < FLOOD; i++) { /* PRIORITY on stream 2i+1: depends on 0, weight 16 */
        uint8_t *f = flood + i * FRAME;
        uint32_t id = (uint32_t)(2 * i + 1);
        memset(f, 0, FRAME);
        f[2] = 5;
        f[3] = 2;
        f[5] = (uint8_t)(id >> 24), f[6] = (uint8_t)(id >> 16), f[7] = (uint8_t)(id >> 8);
        f[8] = (uint8_t)id;
        f[13] = 15;
    }
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    h_raw_connect(&raw, N.bound);
    h_raw_write(&raw, bytes, (size_t)(flood - bytes) + HALF * FRAME); /* within the budget */
    h2_connect(&conn, N.bound, 200, NULL);
    H_RUN_UNTIL(all_done(&conn, 1));
    cr_assert_eq(raw.end, 0, "half the budget closes nothing");
    h_raw_write(&raw, flood + HALF * FRAME, (FLOOD - HALF) * FRAME);
    H_RUN_UNTIL(raw.end);
    cr_assert(got_goaway(&raw, 0xb), "GOAWAY ENHANCE_YOUR_CALM before the end");
    cr_assert_eq(ct_counter_read(&N.listener.stats.http2.floods), 1);
    cr_assert_geq(ct_counter_read(&N.listener.stats.http2.goaways_sent), 1);
    cr_assert_eq(conn.failed, 0);
    cr_assert_eq(conn.wrong, 0);
    h_raw_close(&raw);
    h2_close(&conn);
    net_stop(&N.svc.service);
}

/* Over an in-memory channel that holds one chunk of bytes at a time, each
 * side's output keeps stalling: everything still arrives, in one piece. */
Test(http2, everything_arrives_over_a_channel_that_holds_one_chunk) {
    static h2_conn_t conn; /* its stream is not used: the client is over the channel */
    static ct_channel_t client_bytes, server_bytes;
    static ct_http2_t server_h2;
    static ct_server_t server;
    ct_http2_config_t ccfg = {0}, scfg = {0};
    ct_server_config_t srv = {0};
    ct_client_config_t cl = {0};
    int i;
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    cr_assert_eq(
        ct_channel_pair_init(&H.ct, &client_bytes, &server_bytes, 1, ct_buf_pool_free_msg, &pool),
        0);
    ccfg.pool = scfg.pool = &pool;
    scfg.server = 1;
    cr_assert_eq(ct_http2_init(&conn.h2, &H.ct, &client_bytes.transport, &ccfg), 0);
    cr_assert_eq(ct_http2_init(&server_h2, &H.ct, &server_bytes.transport, &scfg), 0);
    srv.get_tag = ct_buf_get_tag;
    srv.set_tag = ct_buf_set_tag;
    srv.free_msg = cl.free_msg = ct_buf_pool_free_msg;
    srv.free_ctx = cl.free_ctx = &pool;
    cr_assert_eq(
        ct_multiplex_server_init(&server, &H.ct, &server_h2.transport, &N.svc.service, &srv, NULL),
        0);
    cr_assert_eq(ct_slab_tags_init(&conn.tags, DEPTH, ct_buf_get_tag, ct_buf_set_tag), 0);
    cl.max_in_flight = DEPTH;
    cr_assert_eq(
        ct_multiplex_client_init(&conn.client, &H.ct, &conn.h2.transport, &conn.tags.store, &cl),
        0);
    conn.connected = 1;
    conn.total = 400;
    conn.body_size = mixed_sizes;
    for (i = 0; i < DEPTH; i++) {
        conn.reqs[i].conn = &conn;
        ct_op_init(&conn.reqs[i].op, on_reply);
        issue(&conn, &conn.reqs[i]);
    }
    H_RUN_UNTIL(all_done(&conn, 1));
    cr_assert_eq(conn.failed, 0, "%s (%s)", ct_err_name(conn.first_status),
                 ct_err_name(conn.first_cause));
    cr_assert_eq(conn.wrong, 0);
    h2_close(&conn);
    ct_server_close(&server);
    h_run();
    h_close_service(&N.svc.service);
    h_run();
    ct_buf_pool_destroy(&pool);
}

/* Graceful shutdown with requests in flight: the listener stops accepting,
 * each server finishes what it holds (GOAWAY tells the client), every
 * request is answered, then the connections close. */
Test(http2, a_graceful_shutdown_answers_every_request_in_flight) {
    static h2_conn_t conn;
    static held_svc_t held;
    net_start();
    held_answering(&held, 0);
    listen_h2(&held.service, 0);
    h2_connect(&conn, N.bound, DEPTH, NULL); /* all of them in flight at once */
    H_RUN_UNTIL(held.n == DEPTH);
    cr_assert_eq(ct_listener_shutdown(&N.listener, 5000, on_listener_closed), 0);
    h_turns(10);
    cr_assert_eq(conn.done, 0, "nothing answered, nothing failed yet");
    held_complete_all(&held);
    H_RUN_UNTIL(N.listener_closed);
    cr_assert_eq(conn.done, DEPTH);
    cr_assert_eq(conn.failed, 0, "%s (%s)", ct_err_name(conn.first_status),
                 ct_err_name(conn.first_cause));
    cr_assert_eq(conn.wrong, 0);
    h2_close(&conn);
    h_close_service(&held.service);
    h_run();
    held_free(&held);
    ct_buf_pool_destroy(&pool);
}

/* A reconnecting client over HTTP/2 (cfg.http2): its requests go on after
 * its server restarts, over a new connection. */
static struct rc_calls {
    ct_op_t ops[32];
    int done, ok;
} RC;

static void on_rc_answer(ct_op_t *op, int status, void *response) {
    ct_buf_t *b = response;
    ct_http_message_t m;
    (void)op;
    RC.done++;
    if (status != 0) return;
    if (ct_http_parse_response((uint8_t *)b->base + 4, b->len - 4, 0, &m) == 0 && m.status == 200)
        RC.ok++;
    ct_buf_pool_put(&pool, b);
}

static void rc_call(ct_service_t *svc, int i) {
    static const char get[] = "....GET /again HTTP/1.1\r\nHost: a\r\n\r\n";
    ct_op_init(&RC.ops[i], on_rc_answer);
    cr_assert_eq(ct_service_call(svc, ct_buf_from(get, sizeof get - 1), &RC.ops[i]), 0);
}

Test(http2, a_reconnecting_client_speaks_http2_across_a_server_restart) {
    static ct_reconnect_t rc;
    ct_reconnect_config_t cfg = {0};
    ct_http2_config_t h2 = {0};
    ct_stream_config_t wire = {0};
    ct_raw_codec_t raw;
    char address[128];
    int i;
    net_start();
    memset(&RC, 0, sizeof RC);
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    snprintf(address, sizeof address, "%s", N.bound);
    ct_raw_codec_init(&raw, 512);
    wire.codec = &raw.codec;
    wire.pool = &pool;
    h2.pool = &pool;
    cfg.http2 = &h2;
    cfg.max_in_flight = 16;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    cfg.backoff_min_ms = 10;
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, address, &wire, &cfg), 0);
    for (i = 0; i < 16; i++)
        rc_call(&rc.service, i);
    H_RUN_UNTIL(RC.done == 16);
    cr_assert_eq(RC.ok, 16);
    /* the server goes, and comes back on the same address */
    cr_assert_eq(ct_listener_shutdown(&N.listener, 1000, on_listener_closed), 0);
    H_RUN_UNTIL(N.listener_closed);
    h_turns(10);
    N.listener_closed = 0;
    listen_on_again(address);
    for (i = 16; i < 32; i++)
        rc_call(&rc.service, i);
    H_RUN_UNTIL(RC.done == 32);
    cr_assert_eq(RC.ok, 32, "%d of the 16 after the restart answered", RC.ok - 16);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 2);
    h_close_service(&rc.service);
    net_stop(&N.svc.service);
}

/* HTTP/2 over TLS: ALPN agrees on "h2" (what curl and browsers need to
 * speak HTTP/2 over TLS), and a client that offers nothing still gets on
 * with the server, which speaks HTTP/2 anyway. */
Test(http2, over_tls_alpn_agrees_on_h2) {
    static h2_conn_t offering, silent;
    static ct_tls_config_t offer_tls, plain_tls;
    struct ssl_ctx_st *client_ctx = NULL, *silent_ctx;
    net_start();
    cr_assert_eq(ct_tls_self_signed(&server_tls.ctx, &client_ctx, "127.0.0.1"), 0);
    cr_assert_eq(ct_tls_context_alpn(server_tls.ctx, 1, CT_TLS_ALPN_H2), 0);
    cr_assert_eq(ct_tls_context_alpn(client_ctx, 0, CT_TLS_ALPN_H2), 0);
    cr_assert_eq(ct_tls_context_alpn(client_ctx, 0, ""), CT_EINVAL);
    cr_assert_eq(ct_tls_context_alpn(client_ctx, 0, "\x05h2"), CT_EINVAL, "a length past the end");
    offer_tls.ctx = client_ctx;
    offering.tls = &offer_tls;
    /* a second client, without ALPN */
    silent_ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(silent_ctx);
    SSL_CTX_set_verify(silent_ctx, SSL_VERIFY_NONE, NULL); /* the test's own certificate */
    plain_tls.ctx = silent_ctx;
    silent.tls = &plain_tls;
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    h2_connect(&offering, N.bound, 300, NULL);
    h2_connect(&silent, N.bound, 300, NULL);
    H_RUN_UNTIL(all_done(&offering, 1) && all_done(&silent, 1));
    cr_assert_str_eq(offering.protocol, "h2");
    cr_assert_str_eq(silent.protocol, "", "nothing offered, nothing agreed");
    cr_assert_eq(offering.failed + silent.failed, 0, "%s", ct_err_name(offering.first_status));
    cr_assert_eq(offering.wrong + silent.wrong, 0);
    h2_close(&offering);
    h2_close(&silent);
    net_stop(&N.svc.service);
    ct_tls_context_free(server_tls.ctx);
    ct_tls_context_free(client_ctx);
    ct_tls_context_free(silent_ctx);
    server_tls.ctx = NULL;
}

/* ---- against a peer of nghttp2's own, over an in-memory channel ------------ */

/* The far side of a ct_http2_t, an nghttp2 session the test drives: it
 * sends what it has after each loop turn and reads what arrives. */
static struct peer {
    nghttp2_session *session;
    ct_channel_t near, far; /* near: ct_http2_t's bytes; far: the peer's */
    ct_http2_t h2;
    ct_server_t server;
    int server_closed;
    int32_t last_stream;     /* the last request it received (server side) */
    char status[4];          /* the last :status it received (client side) */
    int ended;               /* it received a whole response */
    int (*respond)(int32_t); /* server side: what to answer a request with */
} P;

static void peer_pump(void) {
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(P.session, &data)) > 0) {
        ct_buf_t *b = ct_buf_pool_get(&pool, (size_t)n);
        cr_assert_not_null(b);
        memcpy(b->base, data, (size_t)n);
        b->len = (size_t)n;
        cr_assert_eq(ct_transport_send(&P.far.transport, b), 0);
    }
}

static void on_peer_bytes(ct_transport_t *t, int status, void *msg) {
    ct_buf_t *b = msg;
    (void)t;
    if (status != 0) return;
    cr_assert_geq(nghttp2_session_mem_recv(P.session, (uint8_t *)b->base, b->len), 0);
    ct_buf_pool_put(&pool, b);
    peer_pump();
}

static int peer_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                          size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags,
                          void *user) {
    (void)s, (void)f, (void)flags, (void)user;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0 && vlen == 3) memcpy(P.status, value, 3);
    return 0;
}

static int peer_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user) {
    (void)user;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    if (nghttp2_session_check_server_session(s)) {
        P.last_stream = f->hd.stream_id;
        if (P.respond) return P.respond(f->hd.stream_id);
    } else {
        P.ended = 1;
    }
    return 0;
}

/* Starts a peer (server: an nghttp2 server, facing a ct_http2_t client; or
 * the other way round) over a channel pair. */
static void peer_start(int peer_is_server) {
    nghttp2_session_callbacks *cbs;
    ct_http2_config_t cfg = {0};
    memset(&P, 0, sizeof P);
    ct_buf_pool_init(&pool, 512, 1024);
    cr_assert_eq(ct_channel_pair_init(&H.ct, &P.near, &P.far, 64, ct_buf_pool_free_msg, &pool), 0);
    cr_assert_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, peer_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, peer_on_frame);
    cr_assert_eq(peer_is_server ? nghttp2_session_server_new(&P.session, cbs, NULL)
                                : nghttp2_session_client_new(&P.session, cbs, NULL),
                 0);
    nghttp2_session_callbacks_del(cbs);
    cr_assert_eq(nghttp2_submit_settings(P.session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    cr_assert_eq(ct_transport_recv_start(&P.far.transport, on_peer_bytes), 0);
    cfg.server = !peer_is_server;
    cfg.pool = &pool;
    cr_assert_eq(ct_http2_init(&P.h2, &H.ct, &P.near.transport, &cfg), 0);
    peer_pump();
}

static void peer_stop(void) {
    ct_transport_close(&P.far.transport, NULL);
    h_run();
    nghttp2_session_del(P.session);
    ct_buf_pool_destroy(&pool);
}

static void on_peer_server_closed(ct_server_t *srv, int status) {
    (void)srv, (void)status;
    P.server_closed = 1;
}

/* HTTP/2 allows any token as a method; HTTP/1.1's parser, and so a
 * service's view, knows a fixed set: the transport answers 501 itself. */
Test(http2, a_method_http1_cannot_say_is_answered_501) {
    static ct_service_fn_t svc;
    ct_server_config_t scfg = {0};
    static const nghttp2_nv brew[] = {
        {(uint8_t *)":method", (uint8_t *)"BREW", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":path", (uint8_t *)"/pot", 5, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"tea", 10, 3, 0},
    };
    peer_start(0);
    ct_service_fn_init(&svc, &H.ct, answer_fn, NULL);
    scfg.get_tag = ct_buf_get_tag;
    scfg.set_tag = ct_buf_set_tag;
    scfg.free_msg = ct_buf_pool_free_msg;
    scfg.free_ctx = &pool;
    cr_assert_eq(ct_multiplex_server_init(&P.server, &H.ct, &P.h2.transport, &svc.service, &scfg,
                                          on_peer_server_closed),
                 0);
    cr_assert_gt(nghttp2_submit_request(P.session, NULL, brew, 4, NULL, NULL), 0);
    peer_pump();
    H_RUN_UNTIL(P.ended);
    cr_assert_str_eq(P.status, "501");
    cr_assert_eq(ct_server_in_flight(&P.server), 0, "the service never saw it");
    ct_server_close(&P.server);
    H_RUN_UNTIL(P.server_closed);
    h_close_service(&svc.service);
    peer_stop();
}

/* A body of "abc", then trailers. */
static ssize_t peer_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *source, void *user) {
    static const nghttp2_nv trailer = {(uint8_t *)"x-sum", (uint8_t *)"42", 5, 2, 0};
    (void)len, (void)source, (void)user;
    memcpy(buf, "abc", 3);
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    cr_assert_eq(nghttp2_submit_trailer(s, id, &trailer, 1), 0);
    return 3;
}

/* The peer's answers, by stream: 1 interim, then a body with trailers;
 * 3 a status HTTP/1.1 has no place for; 5 reset as refused. */
static int peer_answer(int32_t id) {
    static const nghttp2_nv early = {(uint8_t *)":status", (uint8_t *)"103", 7, 3, 0};
    static const nghttp2_nv ok = {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0};
    static const nghttp2_nv odd = {(uint8_t *)":status", (uint8_t *)"050", 7, 3, 0};
    nghttp2_data_provider body;
    body.read_callback = peer_body;
    if (id == 1) {
        cr_assert_eq(
            nghttp2_submit_headers(P.session, NGHTTP2_FLAG_NONE, id, NULL, &early, 1, NULL), 0);
        cr_assert_eq(nghttp2_submit_response(P.session, id, &ok, 1, &body), 0);
    } else if (id == 3) {
        cr_assert_eq(nghttp2_submit_response(P.session, id, &odd, 1, NULL), 0);
    } else {
        cr_assert_eq(
            nghttp2_submit_rst_stream(P.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM), 0);
    }
    return 0;
}
static struct answers {
    ct_op_t ops[3];
    char text[3][512];
    int n;
} A;

static void on_kept_answer(ct_op_t *op, int status, void *response) {
    ct_buf_t *b = response;
    size_t i = (size_t)(op - A.ops);
    cr_assert_eq(status, 0, "%s", ct_err_name(status));
    cr_assert_lt(b->len - 4, sizeof A.text[i]);
    memcpy(A.text[i], b->base + 4, b->len - 4);
    ct_buf_pool_put(&pool, b);
    A.n++;
}

/* What HTTP/1.1 cannot say is turned into what it can: the interim answer
 * is dropped, trailers make the body chunked, an odd status and a refused
 * stream are stand-ins naming the error. */
Test(http2, a_client_reads_interims_trailers_odd_statuses_and_refusals) {
    static ct_slab_tags_t tags;
    static ct_client_t client;
    ct_client_config_t cfg = {0};
    ct_http_message_t m;
    const ct_http_str_t *f;
    int i;
    peer_start(1);
    P.respond = peer_answer;
    memset(&A, 0, sizeof A);
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    cr_assert_eq(ct_slab_tags_init(&tags, 4, ct_buf_get_tag, ct_buf_set_tag), 0);
    cr_assert_eq(ct_multiplex_client_init(&client, &H.ct, &P.h2.transport, &tags.store, &cfg), 0);
    for (i = 0; i < 3; i++) {
        static const char get[] = "....GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        ct_op_init(&A.ops[i], on_kept_answer);
        cr_assert_eq(ct_service_call(&client.service, ct_buf_from(get, sizeof get - 1), &A.ops[i]),
                     0);
        h_turns(4); /* in order: streams 1, 3, 5 */
    }
    H_RUN_UNTIL(A.n == 3);
    cr_assert_eq(ct_http_parse_response((uint8_t *)A.text[0], strlen(A.text[0]), 0, &m), 0, "%s",
                 A.text[0]);
    cr_assert_eq(m.status, 200, "the 103 is not the answer");
    cr_assert(m.body.len == 3 && memcmp(m.body.p, "abc", 3) == 0, "%s", A.text[0]);
    cr_assert((f = ct_http_field(&m, "x-sum")) && f->len == 2, "the trailer: %s", A.text[0]);
    cr_assert_eq(ct_http_parse_response((uint8_t *)A.text[1], strlen(A.text[1]), 0, &m), 0);
    cr_assert_eq(m.status, 502);
    cr_assert((f = ct_http_field(&m, "x-ctower-error")) && f->len == 14 &&
                  !memcmp(f->p, "PROTOCOL_ERROR", 14),
              "%s", A.text[1]);
    cr_assert_eq(ct_http_parse_response((uint8_t *)A.text[2], strlen(A.text[2]), 0, &m), 0);
    cr_assert((f = ct_http_field(&m, "x-ctower-error")) && f->len == 14 &&
                  !memcmp(f->p, "REFUSED_STREAM", 14),
              "%s", A.text[2]);
    h_close_service(&client.service);
    ct_slab_tags_free(&tags);
    peer_stop();
}

/* Trailers both ways: a chunked request's trailers go as HTTP/2 trailers
 * (after the body, ending the stream), and a chunked response's come back
 * as a chunked message's. */
Test(http2, trailers_cross_both_ways) {
    static const char request[] = "....POST /sum HTTP/1.1\r\nHost: a\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "5\r\nhello\r\n0\r\nx-one: 1\r\nX-Two: 2\r\n\r\n";
    static h2_conn_t conn; /* for its connect: the client is made here */
    ct_http_message_t m;
    const ct_http_str_t *seen;
    net_start();
    memset(&A, 0, sizeof A);
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    h2_connect(&conn, N.bound, 0, NULL);
    H_RUN_UNTIL(conn.connected);
    ct_op_init(&A.ops[0], on_kept_answer);
    cr_assert_eq(
        ct_service_call(&conn.client.service, ct_buf_from(request, sizeof request - 1), &A.ops[0]),
        0);
    H_RUN_UNTIL(A.n == 1);
    cr_assert_eq(ct_http_parse_response((uint8_t *)A.text[0], strlen(A.text[0]), 0, &m), 0, "%s",
                 A.text[0]);
    cr_assert(m.body.len == 5 && memcmp(m.body.p, "hello", 5) == 0, "%s", A.text[0]);
    cr_assert_eq(m.nfields - m.nheaders, 1, "one trailer back: %s", A.text[0]);
    seen = ct_http_field(&m, "x-trailers-seen");
    cr_assert(seen && seen->len == 1 && seen->p[0] == '2', "both trailers arrived: %s", A.text[0]);
    h2_close(&conn);
    net_stop(&N.svc.service);
}

#ifdef CT_COUNT_ALLOCS
/* ---- no allocation per request in steady state --------------------------- */

extern volatile long ct_test_allocs;
extern volatile int ct_test_counting;

TestSuite(alloc_http2, .init = h_setup, .fini = h_teardown);

static int small_posts(int n) {
    return n % 2 ? 100 : 0;
}

/* Both sides of HTTP/2, nghttp2's sessions included: after warm-up, a
 * connection's requests allocate nothing (messages, chunks and streams are
 * reused). */
Test(alloc_http2, http2_allocates_nothing_per_request) {
    enum { WARMUP = 10000, MEASURED = 10000 };
    static h2_conn_t conn;
    long allocs;
    net_start();
    ct_service_fn_init(&N.svc, &H.ct, answer_fn, NULL);
    listen_h2(&N.svc.service, 0);
    h2_connect(&conn, N.bound, WARMUP + MEASURED, small_posts);
    H_RUN_UNTIL(conn.done >= WARMUP);
    ct_test_allocs = 0;
    ct_test_counting = 1;
    H_RUN_UNTIL(conn.done >= WARMUP + MEASURED);
    ct_test_counting = 0;
    allocs = ct_test_allocs;
    cr_assert_eq(conn.failed, 0);
    cr_assert_eq(conn.wrong, 0);
    cr_assert_eq(allocs, 0, "%ld allocations for %d requests after warm-up", allocs, MEASURED);
    h2_close(&conn);
    net_stop(&N.svc.service);
}
#endif
