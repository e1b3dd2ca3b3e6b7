/* TLS streams: both modes over TCP and a Unix socket, frames larger than a
 * TLS record, each way a handshake fails (as the connect's error, with the
 * server going on), graceful shutdown, and a peer that ends mid-frame. The
 * certificates are made fresh by each test (ct_tls_self_signed). */
#include "testutil.h"

#include <openssl/ssl.h> /* (only the client-certificate test: a user's own setup) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* A peer that drops the connection makes a write fail with EPIPE, which
 * raises SIGPIPE: ignored, as the README asks of applications. */
static void tls_suite_setup(void) {
    signal(SIGPIPE, SIG_IGN);
    h_setup();
}

TestSuite(tls, .init = tls_suite_setup, .fini = h_teardown);

enum { PAYLOAD = 64, DEPTH = 16 };

static ct_buf_pool_t pool;
static ct_length_codec_t codec;
static struct ssl_ctx_st *server_ctx, *client_ctx;
static ct_tls_config_t server_tls, client_tls;
static ct_service_fn_t echo;
static ct_listener_t listener;
static int listener_closed;
static char bound[128];
static uint64_t connect_timeout_ms;
static uint64_t idle_timeout_ms;
static size_t server_in_flight;
static const ct_codec_t *client_codec; /* NULL: the listener's */

/* A listener of TLS echo servers whose certificate names cert_name, and a
 * client configuration that trusts it. */
static void tls_setup(const char *cert_name, size_t max_payload) {
    ct_length_codec_config_t ccfg = {0};
    ccfg.field_size = 4;
    ccfg.max_payload = max_payload;
    ct_buf_pool_init(&pool, PAYLOAD, 4096);
    cr_assert_eq(ct_length_codec_init(&codec, &ccfg), 0);
    cr_assert_eq(ct_tls_self_signed(&server_ctx, &client_ctx, cert_name), 0);
    server_tls.ctx = server_ctx;
    server_tls.server_name = NULL;
    client_tls.ctx = client_ctx;
    client_tls.server_name = NULL;
    listener_closed = 0;
    connect_timeout_ms = 5000;
    idle_timeout_ms = 0;
    server_in_flight = 256;
    client_codec = NULL;
}

static void tls_teardown(void) {
    ct_tls_context_free(server_ctx);
    ct_tls_context_free(client_ctx);
    ct_buf_pool_destroy(&pool);
}

static ct_stream_config_t stream_config(const ct_tls_config_t *tls) {
    ct_stream_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.codec = &codec.codec;
    cfg.pool = &pool;
    cfg.tls = tls;
    return cfg;
}

static void listen_on(const char *address, ct_service_t *service, int multiplex,
                      const ct_tls_config_t *tls) {
    ct_listener_config_t cfg;
    ct_address_t a;
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = stream_config(tls);
    cfg.multiplex = multiplex;
    cfg.idle_timeout_ms = idle_timeout_ms;
    cfg.server.max_in_flight = server_in_flight;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &pool;
    cr_assert_eq(ct_listener_init(&listener, &H.ct, address, service, &cfg), 0);
    cr_assert_eq(ct_listener_address(&listener, &a), 0);
    cr_assert_eq(ct_address_format(&a, bound, sizeof bound), 0);
}

static void on_listener_closed(ct_listener_t *l) {
    (void)l;
    listener_closed = 1;
}

static void stop_listening(void) {
    cr_assert_eq(ct_listener_shutdown(&listener, 1000, on_listener_closed), 0);
    H_RUN_UNTIL(listener_closed);
}

/* ---- a client connection that keeps DEPTH requests in flight ----------- */

typedef struct req {
    ct_op_t op;
    uint64_t expect;
    struct conn *conn;
} req_t;

typedef struct conn {
    ct_connector_t connector;
    ct_stream_t stream;
    ct_client_t client;
    ct_slab_tags_t tags;
    int multiplex, connected, connect_status, shut, shut_status;
    size_t size; /* of each request's payload */
    uint64_t next, total, done, answered, errors, mismatched;
    int first_error, first_cause;
    req_t reqs[DEPTH];
} conn_t;

/* A request's bytes: 4 for the multiplex tag, the id, then a pattern that
 * depends on the id. */
static uint8_t byte_of(uint64_t id, size_t i) {
    return (uint8_t)(id * 131 + i * 7);
}

static void issue(conn_t *c, req_t *r) {
    ct_buf_t *b = ct_buf_pool_get(&pool, c->size);
    size_t i;
    cr_assert_not_null(b);
    r->expect = c->next++;
    for (i = 0; i < c->size; i++)
        b->base[i] = (char)byte_of(r->expect, i);
    memcpy(b->base + 4, &r->expect, sizeof r->expect);
    b->len = c->size;
    cr_assert_eq(h_call(&c->client.service, b, &r->op), 0);
}

static int answer_ok(const conn_t *c, const ct_buf_t *b, uint64_t expect) {
    uint64_t id;
    size_t i;
    if (b->len != c->size) return 0;
    memcpy(&id, b->base + 4, sizeof id);
    if (id != expect) return 0;
    for (i = 4 + sizeof id; i < b->len; i++)
        if ((uint8_t)b->base[i] != byte_of(id, i)) return 0;
    return 1;
}

static void on_reply(ct_op_t *op, int status, void *response) {
    req_t *r = CT_CONTAINER_OF(op, req_t, op);
    conn_t *c = r->conn;
    cr_assert_eq(H.nested, 0);
    c->done++;
    if (status != 0) {
        if (!c->errors++) {
            c->first_error = status;
            c->first_cause = op->cause;
        }
        return;
    }
    c->answered++;
    if (!answer_ok(c, response, r->expect)) c->mismatched++;
    ct_buf_pool_put(&pool, response);
    if (c->next < c->total && !c->shut) issue(c, r);
}

static void on_connected(ct_stream_t *stream, int status) {
    conn_t *c = CT_CONTAINER_OF(stream, conn_t, stream);
    ct_client_config_t cfg = {0};
    size_t i;
    cr_assert_eq(c->connected, 0, "a connect reports once");
    c->connect_status = status;
    c->connected = 1;
    if (status < 0) return;
    cfg.max_in_flight = DEPTH;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    if (c->multiplex) {
        cr_assert_eq(ct_slab_tags_init(&c->tags, DEPTH, ct_buf_get_tag, ct_buf_set_tag), 0);
        cr_assert_eq(
            ct_multiplex_client_init(&c->client, &H.ct, &c->stream.transport, &c->tags.store, &cfg),
            0);
    } else {
        cr_assert_eq(ct_pipeline_client_init(&c->client, &H.ct, &c->stream.transport, &cfg), 0);
    }
    for (i = 0; i < DEPTH && c->next < c->total; i++) {
        c->reqs[i].conn = c;
        ct_op_init(&c->reqs[i].op, on_reply);
        issue(c, &c->reqs[i]);
    }
}

static void connect_to(conn_t *c, const char *address, int multiplex, size_t size, uint64_t total,
                       const ct_tls_config_t *tls) {
    ct_stream_config_t cfg = stream_config(tls);
    if (client_codec) cfg.codec = client_codec;
    memset(c, 0, sizeof *c);
    c->multiplex = multiplex;
    c->size = size;
    c->total = total;
    cr_assert_eq(ct_connector_init(&c->connector, &H.ct, address, &cfg), 0);
    c->connector.timeout_ms = connect_timeout_ms;
    cr_assert_eq(ct_connector_connect(&c->connector, &c->stream, on_connected), 0);
}

static void close_conn(conn_t *c) {
    if (c->connect_status == 0 && c->connected) h_close_service(&c->client.service);
    if (c->multiplex && c->tags.uses) ct_slab_tags_free(&c->tags);
}

static int all_done(const conn_t *conns, int n) {
    int i;
    for (i = 0; i < n; i++)
        if (!conns[i].connected || (conns[i].connect_status == 0 && conns[i].done < conns[i].total))
            return 0;
    return 1;
}

/* ---- round trips ------------------------------------------------------- */

static void round_trip(const char *address, int multiplex, const char *cert_name,
                       const char *server_name) {
    enum { CONNS = 4, PER_CONN = 5000 };
    static conn_t conns[CONNS];
    size_t accepted = 0, failed = 1;
    int i;
    tls_setup(cert_name, 0);
    client_tls.server_name = server_name;
    ct_echo_service_init(&echo, &H.ct);
    listen_on(address, &echo.service, multiplex, &server_tls);
    for (i = 0; i < CONNS; i++)
        connect_to(&conns[i], bound, multiplex, PAYLOAD, PER_CONN, &client_tls);
    H_RUN_UNTIL(all_done(conns, CONNS));
    for (i = 0; i < CONNS; i++) {
        cr_assert_eq(conns[i].connect_status, 0, "%s", ct_strerror(conns[i].connect_status));
        cr_assert_eq(conns[i].errors, 0, "%s", ct_strerror(conns[i].first_error));
        cr_assert_eq(conns[i].mismatched, 0);
        cr_assert_eq(conns[i].answered, PER_CONN);
    }
    ct_listener_counts(&listener, &accepted, &failed);
    cr_assert_eq(accepted, CONNS);
    cr_assert_eq(failed, 0);
    /* its streams counted the handshakes, and at least the ciphertext of
     * every payload each way */
    cr_assert_eq(ct_counter_read(&listener.stats.streams.tls_handshakes), CONNS);
    cr_assert_eq(ct_counter_read(&listener.stats.streams.tls_failures), 0);
    cr_assert_geq(ct_counter_read(&listener.stats.streams.bytes_read),
                  (uint64_t)CONNS * PER_CONN * PAYLOAD);
    cr_assert_geq(ct_counter_read(&listener.stats.streams.bytes_written),
                  (uint64_t)CONNS * PER_CONN * PAYLOAD);
    /* its servers counted every request and timed every answer */
    cr_assert_eq(ct_counter_read(&listener.stats.servers.requests), (uint64_t)CONNS * PER_CONN);
    cr_assert_eq(ct_counter_read(&listener.stats.servers.responses), (uint64_t)CONNS * PER_CONN);
    cr_assert_eq(listener.stats.servers.latency.count, (uint64_t)CONNS * PER_CONN);
    for (i = 0; i < CT_KIND_COUNT; i++)
        cr_assert_eq(ct_counter_read(&listener.stats.servers.errors[i]), 0);
    for (i = 0; i < CONNS; i++)
        close_conn(&conns[i]);
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* The certificate names the IP address the client connects to. */
Test(tls, tcp4_pipeline) {
    round_trip("tcp://127.0.0.1:0", 0, "127.0.0.1", NULL);
}
Test(tls, tcp4_multiplex) {
    round_trip("tcp://127.0.0.1:0", 1, "127.0.0.1", NULL);
}
Test(tls, tcp6_multiplex) {
    round_trip("tcp://[::1]:0", 1, "::1", NULL);
}
/* The certificate names a host; the client asks for it by name. */
Test(tls, tcp4_pipeline_by_server_name) {
    round_trip("tcp://127.0.0.1:0", 0, "db.ctower.test", "db.ctower.test");
}
Test(tls, unix_pipeline) {
    round_trip("unix:///tmp/ctower-test-tls.sock", 0, "localhost", "localhost");
}

/* A TLS listener serving service, and one client that sends it total
 * requests of size bytes: every one is answered, whole and in order. */
static void all_answered(ct_service_t *service, size_t size, uint64_t total) {
    static conn_t c;
    listen_on("tcp://127.0.0.1:0", service, 0, &server_tls);
    connect_to(&c, bound, 0, size, total, &client_tls);
    H_RUN_UNTIL(all_done(&c, 1));
    cr_assert_eq(c.connect_status, 0, "%s", ct_strerror(c.connect_status));
    cr_assert_eq(c.errors, 0, "%s", ct_strerror(c.first_error));
    cr_assert_eq(c.mismatched, 0);
    cr_assert_eq(c.answered, total);
    close_conn(&c);
    stop_listening();
}

/* Frames over TLS's 16 KiB record: each spans several records, and a read
 * ends in the middle of one. */
Test(tls, frames_larger_than_a_record) {
    tls_setup("127.0.0.1", 1 << 20);
    ct_echo_service_init(&echo, &H.ct);
    all_answered(&echo.service, 100 * 1000, 300);
    h_close_service(&echo.service);
    tls_teardown();
}

/* A server that takes one request at a time stops reading after each, with
 * records the socket delivered still unread: they wait (kept by the
 * session once the read's buffer goes), and every request is answered, in
 * order, when it reads again. Frames of 20 KB span records, and a client
 * 16 deep sends several records per write. */
Test(tls, a_server_that_stops_reading_resumes_where_it_stopped) {
    static batch_svc_t later; /* answers in a task of its own, after the read */
    tls_setup("127.0.0.1", 1 << 20);
    server_in_flight = 1;
    batch_init(&later, 4, 0);
    all_answered(&later.service, 20 * 1000, 400);
    h_close_service(&later.service);
    tls_teardown();
}

/* ---- handshakes that fail ---------------------------------------------- */

/* A client that trusts the listener's certificate is served. */
static void still_serves(void) {
    enum { PER_CONN = 200 };
    static conn_t good;
    connect_to(&good, bound, 0, PAYLOAD, PER_CONN, &client_tls);
    H_RUN_UNTIL(all_done(&good, 1));
    cr_assert_eq(good.connect_status, 0, "%s", ct_strerror(good.connect_status));
    cr_assert_eq(good.answered, PER_CONN);
    close_conn(&good);
}

/* A failed connect (expect), then a good one: the listener still serves. */
static void refused_then_served(const ct_tls_config_t *bad, int expect) {
    static conn_t c;
    connect_to(&c, bound, 0, PAYLOAD, 1, bad);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, expect, "%s", ct_err_name(c.connect_status));
    cr_assert_eq(c.done, 0);
    still_serves();
}

Test(tls, a_server_nobody_trusts_is_a_failed_connect) {
    struct ssl_ctx_st *other_server, *other_client;
    ct_tls_config_t untrusting = {0};
    tls_setup("127.0.0.1", 0);
    cr_assert_eq(ct_tls_self_signed(&other_server, &other_client, "127.0.0.1"), 0);
    untrusting.ctx = other_client; /* trusts another certificate */
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, &server_tls);
    refused_then_served(&untrusting, CT_ETLSVERIFY);
    stop_listening();
    h_close_service(&echo.service);
    ct_tls_context_free(other_server);
    ct_tls_context_free(other_client);
    tls_teardown();
}

Test(tls, a_certificate_for_another_name_is_a_failed_connect) {
    ct_tls_config_t other_name = {0};
    tls_setup("db.ctower.test", 0);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, &server_tls);
    /* by address: the certificate names no address */
    other_name.ctx = client_ctx;
    client_tls.server_name = "db.ctower.test";
    refused_then_served(&other_name, CT_ETLSVERIFY);
    /* by another name */
    other_name.server_name = "cache.ctower.test";
    refused_then_served(&other_name, CT_ETLSVERIFY);
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* A TLS client at a plain server: the server takes the client's first
 * message for a frame too large and closes; the client's connect fails. */
Test(tls, a_server_that_does_not_speak_tls_is_a_failed_connect) {
    static conn_t c;
    tls_setup("127.0.0.1", 0);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, NULL);
    connect_to(&c, bound, 0, PAYLOAD, 1, &client_tls);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, CT_ETLS, "%s", ct_err_name(c.connect_status));
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* A plain client at a TLS server: its requests are not a handshake; the
 * server ends that connection, every request fails once, and the server
 * goes on with TLS clients. */
Test(tls, a_client_that_does_not_speak_tls_is_dropped) {
    enum { TOTAL = 40 };
    static conn_t plain;
    tls_setup("127.0.0.1", 0);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, &server_tls);
    connect_to(&plain, bound, 0, PAYLOAD, TOTAL, NULL);
    H_RUN_UNTIL(plain.connected && plain.done == DEPTH);
    cr_assert_eq(plain.connect_status, 0);
    cr_assert_eq(plain.answered, 0);
    cr_assert_eq(plain.errors, DEPTH, "each request in flight fails once");
    cr_assert_eq(plain.first_error, CT_ERECVBROKEN, "%s", ct_err_name(plain.first_error));
    cr_assert_eq(ct_counter_read(&listener.stats.streams.tls_failures), 1);
    cr_assert_eq(ct_counter_read(&listener.stats.streams.tls_handshakes), 0);
    close_conn(&plain);
    still_serves();
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* A server that never answers the handshake: the connector's timeout
 * covers it. The plain server here waits for the rest of a "frame" as long
 * as the client's first message says. */
Test(tls, a_handshake_that_never_ends_times_out) {
    static conn_t c;
    tls_setup("127.0.0.1", 1u << 30);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, NULL);
    connect_timeout_ms = 200;
    connect_to(&c, bound, 0, PAYLOAD, 1, &client_tls);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, UV_ETIMEDOUT, "%s", ct_err_name(c.connect_status));
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* The same handshake, canceled: UV_ECANCELED, reported once, and the
 * stream's memory is free (ASan would see it used after). */
Test(tls, a_handshake_under_way_can_be_canceled) {
    static conn_t c;
    tls_setup("127.0.0.1", 1u << 30);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, NULL);
    connect_to(&c, bound, 0, PAYLOAD, 1, &client_tls);
    H_RUN_UNTIL(ct_listener_connections(&listener) == 1); /* the TCP part is done */
    h_turns(5);
    cr_assert_eq(c.connected, 0);
    cr_assert_eq(ct_connector_cancel(&c.stream), 0);
    cr_assert_eq(ct_connector_cancel(&c.stream), CT_EINVAL, "canceled already");
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, UV_ECANCELED, "%s", ct_err_name(c.connect_status));
    memset(&c.stream, 0xA5, sizeof c.stream); /* the caller's to reuse at once */
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* ---- the end of a connection ------------------------------------------- */

static void on_client_shut(ct_service_t *svc, int status) {
    conn_t *c = CT_CONTAINER_OF(svc, conn_t, client.service);
    c->shut = 2;
    c->shut_status = status;
}

/* A client shut down with requests in flight: all of them are answered,
 * then TLS's closing message and the socket's end go out, and the server
 * takes that as a clean end and closes its side. */
Test(tls, graceful_shutdown_answers_everything_in_flight) {
    static conn_t c;
    tls_setup("127.0.0.1", 0);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, &server_tls);
    connect_to(&c, bound, 0, PAYLOAD, 1000, &client_tls);
    H_RUN_UNTIL(c.connected && c.answered >= 100);
    cr_assert_eq(c.connect_status, 0);
    c.shut = 1; /* no more requests after those in flight */
    cr_assert_eq(ct_service_shutdown(&c.client.service, on_client_shut), 0);
    H_RUN_UNTIL(c.shut == 2);
    cr_assert_eq(c.shut_status, 0, "%s", ct_strerror(c.shut_status));
    cr_assert_eq(c.errors, 0, "%s", ct_strerror(c.first_error));
    cr_assert_eq(c.done, c.next, "every request sent was answered");
    cr_assert_eq(c.mismatched, 0);
    H_RUN_UNTIL(ct_listener_connections(&listener) == 0);
    close_conn(&c);
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

/* A server that closes (TLS's closing message, then the socket's end) in
 * the middle of an answer's frame: the client's request fails once, with
 * CT_ETRUNCATED as its cause. The client frames by lines and the server by
 * length prefixes, so the server's answer has no end of line; the server's
 * idle timeout then closes the connection gracefully. */
Test(tls, a_peer_closing_mid_frame_is_truncation) {
    static conn_t c;
    static ct_line_codec_t lines;
    tls_setup("127.0.0.1", 0);
    ct_line_codec_init(&lines, 4096);
    client_codec = &lines.codec;
    idle_timeout_ms = 100;
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, &server_tls);
    connect_to(&c, bound, 0, 0, 0, &client_tls);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, 0, "%s", ct_strerror(c.connect_status));
    {
        /* as a length-prefixed frame: "ab", then the line's end, alone */
        static const char line[] = {0, 0, 0, 2, 'a', 'b'};
        ct_buf_t *b = ct_buf_pool_get(&pool, sizeof line);
        memcpy(b->base, line, sizeof line);
        b->len = sizeof line;
        c.reqs[0].conn = &c;
        c.total = 1;
        ct_op_init(&c.reqs[0].op, on_reply);
        cr_assert_eq(h_call(&c.client.service, b, &c.reqs[0].op), 0);
    }
    H_RUN_UNTIL(c.done == 1);
    cr_assert_eq(c.errors, 1);
    cr_assert_eq(c.first_error, CT_ERECVBROKEN, "%s", ct_err_name(c.first_error));
    cr_assert_eq(c.first_cause, CT_ETRUNCATED, "%s", ct_err_name(c.first_cause));
    close_conn(&c);
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

#ifdef CT_COUNT_ALLOCS
/* ---- allocations per request in steady state over TLS -------------------
 *
 * ctower's side of a TLS stream allocates nothing per message once warm,
 * but OpenSSL 3.0 does, per TLS record: its record layer builds each
 * record's header in a WPACKET, which allocates a small block (glibc's
 * per-thread cache serves it). A stream writes one record per batch of
 * messages, so the count is per batch: about 0.5 per request at depth 16.
 * The bound below, under one per request, fails for any allocation per
 * message. */

extern volatile long ct_test_allocs;
extern volatile int ct_test_counting;

static void tls_steady_state(int multiplex) {
    enum { WARMUP = 10000, MEASURED = 10000 };
    static conn_t c;
    long allocs;
    tls_setup("127.0.0.1", 0);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, multiplex, &server_tls);
    connect_to(&c, bound, multiplex, PAYLOAD, WARMUP + MEASURED, &client_tls);
    H_RUN_UNTIL(c.answered >= WARMUP);
    ct_test_allocs = 0;
    ct_test_counting = 1;
    H_RUN_UNTIL(c.done >= WARMUP + MEASURED);
    ct_test_counting = 0;
    allocs = ct_test_allocs;
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.mismatched, 0);
    cr_assert_lt(allocs, MEASURED, "%ld allocations for %d requests after warm-up", allocs,
                 MEASURED);
    close_conn(&c);
    stop_listening();
    h_close_service(&echo.service);
    tls_teardown();
}

Test(alloc, pipeline_over_tls_allocates_per_batch_not_per_request) {
    tls_steady_state(0);
}

Test(alloc, multiplex_over_tls_allocates_per_batch_not_per_request) {
    tls_steady_state(1);
}
#endif

/* ---- client certificates (the user's SSL_CTX) ---------------------------- */

/* mTLS set up with OpenSSL's own calls on the contexts, as a user would:
 * the server asks for a certificate it trusts; a client that shows one is
 * served, one that shows none is not. With TLS 1.3 the client's handshake
 * ends before the server has checked it, so the refusal reaches that
 * client as its first request failing (CT_ERECVBROKEN, cause CT_ETLS),
 * once. */
Test(tls, a_server_that_asks_for_client_certificates) {
    struct ssl_ctx_st *id_server, *id_client, *anonymous;
    ct_tls_config_t with_id = {0}, without_id = {0};
    static conn_t shown, none;
    tls_setup("127.0.0.1", 0);
    /* the client's identity: another self-signed pair */
    cr_assert_eq(ct_tls_self_signed(&id_server, &id_client, "client.ctower.test"), 0);
    cr_assert_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(server_ctx),
                                     SSL_CTX_get0_certificate(id_server)),
                 1);
    SSL_CTX_set_verify(server_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    cr_assert_eq(SSL_CTX_use_certificate(client_ctx, SSL_CTX_get0_certificate(id_server)), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey(client_ctx, SSL_CTX_get0_privatekey(id_server)), 1);
    with_id.ctx = client_ctx;
    /* a client that trusts the server but has no certificate of its own */
    anonymous = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(anonymous);
    cr_assert_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(anonymous),
                                     SSL_CTX_get0_certificate(server_ctx)),
                 1);
    SSL_CTX_set_verify(anonymous, SSL_VERIFY_PEER, NULL);
    without_id.ctx = anonymous;
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0, &server_tls);
    connect_to(&shown, bound, 0, PAYLOAD, 500, &with_id);
    connect_to(&none, bound, 0, PAYLOAD, 1, &without_id);
    H_RUN_UNTIL(all_done(&shown, 1) && all_done(&none, 1));
    cr_assert_eq(shown.connect_status, 0, "%s", ct_err_name(shown.connect_status));
    cr_assert_eq(shown.answered, 500);
    cr_assert_eq(none.answered, 0);
    cr_assert_eq(none.connect_status, 0, "TLS 1.3: %s", ct_err_name(none.connect_status));
    cr_assert_eq(none.errors, 1);
    cr_assert_eq(none.first_error, CT_ERECVBROKEN, "%s", ct_err_name(none.first_error));
    cr_assert_eq(none.first_cause, CT_ETLS, "%s", ct_err_name(none.first_cause));
    close_conn(&shown);
    close_conn(&none);
    stop_listening();
    h_close_service(&echo.service);
    SSL_CTX_free(anonymous);
    ct_tls_context_free(id_server);
    ct_tls_context_free(id_client);
    tls_teardown();
}
