/* Clients and servers over real sockets: TCP (v4, v6) and Unix, both modes,
 * every connection error, partial reads, graceful shutdown. */
#include "testutil.h"

#include <signal.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

TestSuite(net, .init = h_setup, .fini = h_teardown);

enum { PAYLOAD = 64 };

static ct_buf_pool_t pool;
static ct_length_codec_t codec;
static ct_stream_config_t stream_cfg;
static ct_service_fn_t echo;
static ct_listener_t listener;
static int listener_closed;
static char bound[128];
static size_t max_connections;
static uint64_t idle_timeout_ms;
static ct_server_error_fn server_on_error;
/* The answers expected: echoes (PAYLOAD bytes), or BIG_ANSWER-byte answers
 * from big_answer(). */
static size_t answer_len;

static void net_setup(void) {
    ct_buf_pool_init(&pool, PAYLOAD, 4096);
    cr_assert_eq(ct_length_codec_init(&codec, NULL), 0);
    memset(&stream_cfg, 0, sizeof stream_cfg);
    stream_cfg.codec = &codec.codec;
    stream_cfg.pool = &pool;
    listener_closed = 0;
    answer_len = PAYLOAD;
    max_connections = 0;
    idle_timeout_ms = 0;
    server_on_error = NULL;
}

static void on_listener_closed(ct_listener_t *l) {
    (void)l;
    listener_closed = 1;
}

/* The port the test listener (IPv4) is bound to. */
static int listener_port(void) {
    ct_address_t a;
    cr_assert_eq(ct_listener_address(&listener, &a), 0);
    cr_assert_eq(a.sa.ss_family, AF_INET);
    return ntohs(((struct sockaddr_in *)&a.sa)->sin_port);
}

/* The address l is bound to, as text, into out[128]. */
static void address_of(ct_listener_t *l, char *out) {
    ct_address_t a;
    cr_assert_eq(ct_listener_address(l, &a), 0);
    cr_assert_eq(ct_address_format(&a, out, 128), 0);
}

/* What every test listener has: the test's streams and pool. */
static void listener_config(ct_listener_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->stream = stream_cfg;
    cfg->server.free_msg = ct_buf_pool_free_msg;
    cfg->server.free_ctx = &pool;
}

static void listen_on(const char *address, ct_service_t *service, int multiplex) {
    ct_listener_config_t cfg;
    listener_config(&cfg);
    cfg.max_connections = max_connections;
    cfg.idle_timeout_ms = idle_timeout_ms;
    cfg.multiplex = multiplex;
    cfg.server.max_in_flight = 256;
    cfg.server.on_error = server_on_error;
    cr_assert_eq(ct_listener_init(&listener, &H.ct, address, service, &cfg), 0);
    address_of(&listener, bound);
}

static void stop_listening(void) {
    cr_assert_eq(ct_listener_shutdown(&listener, 1000, on_listener_closed), 0);
    H_RUN_UNTIL(listener_closed);
}

/* ---- a connection driven at a fixed depth ------------------------------- */

typedef struct req {
    ct_op_t op;
    uint64_t expect;
    struct conn *conn;
} req_t;

typedef struct conn {
    ct_stream_t stream;
    ct_client_t client;
    ct_slab_tags_t tags;
    int multiplex;
    int connected;
    int connect_status;
    uint64_t next, total, done, errors, mismatched;
    int first_error, first_cause;
    req_t reqs[64];
    size_t depth;
} conn_t;

enum { BIG_ANSWER = 48 * 1024 };

static uint8_t big_answer_byte(uint64_t id, size_t i) {
    return (uint8_t)(id * 31 + i);
}

static int answer_ok(const ct_buf_t *b, uint64_t expect) {
    uint64_t id;
    size_t i;
    if (b->len != answer_len) return 0;
    memcpy(&id, b->base + 4, sizeof id);
    if (id != expect) return 0;
    for (i = PAYLOAD; i < b->len; i++)
        if ((uint8_t)b->base[i] != big_answer_byte(id, i)) return 0;
    return 1;
}

static ct_buf_t *make_request(uint64_t id) {
    ct_buf_t *b = ct_buf_pool_get(&pool, PAYLOAD);
    cr_assert_not_null(b);
    memset(b->base, 0, PAYLOAD);
    memcpy(b->base + 4, &id, sizeof id);
    b->len = PAYLOAD;
    return b;
}

static void issue(conn_t *c, req_t *r) {
    r->expect = c->next++;
    cr_assert_eq(h_call(&c->client.service, make_request(r->expect), &r->op), 0);
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
    {
        ct_buf_t *b = response;
        if (!answer_ok(b, r->expect)) c->mismatched++;
        ct_buf_pool_put(&pool, b);
    }
    if (c->next < c->total) issue(c, r);
}

static void start_client(conn_t *c) {
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = c->depth;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    if (c->multiplex) {
        cr_assert_eq(ct_slab_tags_init(&c->tags, c->depth, ct_buf_get_tag, ct_buf_set_tag), 0);
        cr_assert_eq(
            ct_multiplex_client_init(&c->client, &H.ct, &c->stream.transport, &c->tags.store, &cfg),
            0);
    } else {
        cr_assert_eq(ct_pipeline_client_init(&c->client, &H.ct, &c->stream.transport, &cfg), 0);
    }
}

static void on_connected(ct_stream_t *stream, int status) {
    conn_t *c = CT_CONTAINER_OF(stream, conn_t, stream);
    size_t i;
    c->connect_status = status;
    c->connected = 1;
    if (status < 0) return;
    start_client(c);
    for (i = 0; i < c->depth && c->next < c->total; i++) {
        c->reqs[i].conn = c;
        ct_op_init(&c->reqs[i].op, on_reply);
        issue(c, &c->reqs[i]);
    }
}

static void connect_to(conn_t *c, const char *address, int multiplex, size_t depth,
                       uint64_t total) {
    static ct_connector_t connector;
    memset(c, 0, sizeof *c);
    c->multiplex = multiplex;
    c->depth = depth;
    c->total = total;
    cr_assert_eq(ct_connector_init(&connector, &H.ct, address, &stream_cfg), 0);
    cr_assert_eq(ct_connector_connect(&connector, &c->stream, on_connected), 0);
}

static void close_conn(conn_t *c) {
    if (c->connect_status == 0 && c->connected) h_close_service(&c->client.service);
    if (c->multiplex && c->tags.uses) ct_slab_tags_free(&c->tags);
}

static int all_done(conn_t *conns, int n) {
    int i;
    for (i = 0; i < n; i++)
        if (!conns[i].connected || conns[i].done < conns[i].total) return 0;
    return 1;
}

static void round_trip(const char *address, int multiplex) {
    enum { CONNS = 4, PER_CONN = 25000 };
    static conn_t conns[CONNS];
    int i;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on(address, &echo.service, multiplex);
    for (i = 0; i < CONNS; i++)
        connect_to(&conns[i], bound, multiplex, 16, PER_CONN);
    H_RUN_UNTIL(all_done(conns, CONNS));
    for (i = 0; i < CONNS; i++) {
        cr_assert_eq(conns[i].connect_status, 0);
        cr_assert_eq(conns[i].errors, 0, "%s", ct_strerror(conns[i].first_error));
        cr_assert_eq(conns[i].mismatched, 0);
        cr_assert_eq(conns[i].done, PER_CONN);
    }
    cr_assert_eq(ct_listener_connections(&listener), CONNS);
    {
        size_t accepted = 0, failed = 1;
        ct_listener_counts(&listener, &accepted, &failed);
        cr_assert_eq(accepted, CONNS);
        cr_assert_eq(failed, 0);
    }
    for (i = 0; i < CONNS; i++)
        close_conn(&conns[i]);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, tcp4_pipeline_100k) {
    round_trip("tcp://127.0.0.1:0", 0);
}
Test(net, tcp4_multiplex_100k) {
    round_trip("tcp://127.0.0.1:0", 1);
}
Test(net, tcp6_pipeline_100k) {
    round_trip("tcp://[::1]:0", 0);
}
Test(net, unix_pipeline_100k) {
    round_trip("unix:///tmp/ctower-test-pipeline.sock", 0);
}
Test(net, unix_multiplex_100k) {
    round_trip("unix:///tmp/ctower-test-multiplex.sock", 1);
}

Test(net, addresses_parse_and_refuse_nonsense) {
    ct_address_t a;
    char text[128];
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1:80", &a), 0);
    cr_assert_eq(ct_address_format(&a, text, sizeof text), 0);
    cr_assert_str_eq(text, "tcp://127.0.0.1:80");
    cr_assert_eq(ct_address_parse("tcp://[::1]:8080", &a), 0);
    cr_assert_eq(ct_address_format(&a, text, sizeof text), 0);
    cr_assert_str_eq(text, "tcp://[::1]:8080");
    cr_assert_eq(ct_address_parse("unix:///tmp/x.sock", &a), 0);
    cr_assert_eq(a.kind, CT_ADDRESS_UNIX);
    /* schemes are case-insensitive (RFC 3986, 3.1); written in lower case */
    cr_assert_eq(ct_address_parse("TCP://127.0.0.1:80", &a), 0);
    cr_assert_eq(ct_address_format(&a, text, sizeof text), 0);
    cr_assert_str_eq(text, "tcp://127.0.0.1:80");
    cr_assert_eq(ct_address_parse("Unix:///tmp/x.sock", &a), 0);
    cr_assert_str_eq(a.path, "/tmp/x.sock");
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1:99999", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1: 80", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1:+80", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1:-0", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("tcp://[::1:80", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("http://x:1", &a), CT_EBADADDR);
    cr_assert_eq(ct_address_parse("unix://", &a), CT_EBADADDR);
}

Test(net, host_names_are_kept_for_the_connector_and_checked) {
    static const char *bad_names[] = {
        "tcp://exa mple.com:80",  "tcp://-db.internal:80", "tcp://db-.internal:80",
        "tcp://db..internal:80",  "tcp://.internal:80",    "tcp://db/x:80",
        "tcp://300.1.1.1:80",     "tcp://127.1:80",        "tcp://::1:80",
        "tcp://db%1.internal:80",
    };
    char long_label[80], text[128];
    ct_address_t a;
    size_t i;
    cr_assert_eq(ct_address_parse("tcp://db-1.internal:6379", &a), 0);
    cr_assert_eq(a.kind, CT_ADDRESS_TCP);
    cr_assert_str_eq(a.host, "db-1.internal");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(ct_address_format(&a, text, sizeof text), 0);
    cr_assert_str_eq(text, "tcp://db-1.internal:6379");
    cr_assert_eq(ct_address_parse("tcp://localhost:1", &a), 0);
    cr_assert_str_eq(a.host, "localhost");
    cr_assert_eq(ct_address_parse("tcp://127.0.0.1:1", &a), 0);
    cr_assert_str_eq(a.host, "", "a numeric host is not a name");
    for (i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        cr_assert_eq(ct_address_parse(bad_names[i], &a), CT_EBADADDR, "%s", bad_names[i]);
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".internal");
    snprintf(text, sizeof text, "tcp://%s:1", long_label);
    cr_assert_eq(ct_address_parse(text, &a), CT_EBADADDR, "a label over 63 characters");
}

/* The resolver is asked (localhost is in every /etc/hosts, so nothing leaves
 * the machine). Where it gives ::1 before 127.0.0.1, this also shows the
 * connector going on to the next address when one is refused: the server
 * listens on 127.0.0.1 only. */
Test(net, connect_by_name_resolves) {
    enum { PER_CONN = 1000 };
    static conn_t c;
    char by_name[128];
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://localhost:0", &echo.service, 0);
    cr_assert_eq(strncmp(bound, "tcp://127.0.0.1:", 16), 0,
                 "a listener binds localhost to 127.0.0.1");
    snprintf(by_name, sizeof by_name, "tcp://localhost:%d", listener_port());
    connect_to(&c, by_name, 0, 8, PER_CONN);
    H_RUN_UNTIL(c.connected && (c.connect_status != 0 || c.done == PER_CONN));
    cr_assert_eq(c.connect_status, 0, "%s", ct_strerror(c.connect_status));
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.done, PER_CONN);
    close_conn(&c);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, connect_by_name_reports_the_last_refusal) {
    static conn_t c;
    char refused[128];
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    snprintf(refused, sizeof refused, "tcp://localhost:%d", listener_port());
    stop_listening(); /* nothing listens there now, on any address */
    connect_to(&c, refused, 0, 1, 0);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, UV_ECONNREFUSED);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* net_hooks.c gives two.ctower.test 127.0.0.2 (nobody there) and then
 * 127.0.0.1: the connector goes on to the second after the refusal. */
Test(net, connect_by_name_tries_each_address_in_turn) {
    enum { PER_CONN = 500 };
    static conn_t c;
    char by_name[128];
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    snprintf(by_name, sizeof by_name, "tcp://two.ctower.test:%d", listener_port());
    connect_to(&c, by_name, 0, 8, PER_CONN);
    H_RUN_UNTIL(c.connected && (c.connect_status != 0 || c.done == PER_CONN));
    cr_assert_eq(c.connect_status, 0, "%s", ct_strerror(c.connect_status));
    cr_assert_eq(c.errors, 0);
    close_conn(&c);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, a_name_that_does_not_resolve_fails_with_the_resolvers_error) {
    static conn_t c;
    net_setup();
    connect_to(&c, "tcp://nowhere.ctower.test:80", 0, 1, 0);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, UV_EAI_NONAME, "%s", ct_strerror(c.connect_status));
    ct_buf_pool_destroy(&pool);
}

Test(net, listener_refuses_names_it_would_have_to_resolve) {
    ct_listener_config_t cfg;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = stream_cfg;
    cr_assert_eq(ct_listener_init(&listener, &H.ct, "tcp://db.internal:0", &echo.service, &cfg),
                 CT_EBADADDR);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- several listeners on one address (reuse_port) ----------------------- */

static int second_closed;
static void on_second_closed(ct_listener_t *l) {
    (void)l;
    second_closed = 1;
}

static int listen_again(ct_listener_t *l, const char *address, int reuse_port) {
    ct_listener_config_t cfg;
    listener_config(&cfg);
    cfg.reuse_port = reuse_port;
    return ct_listener_init(l, &H.ct, address, &echo.service, &cfg);
}

Test(net, listeners_with_reuse_port_share_an_address_and_its_connections) {
    enum { CONNS = 16, PER_CONN = 1000 };
    static conn_t conns[CONNS];
    static ct_listener_t second, third;
    size_t first_accepted = 0, second_accepted = 0;
    int i;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    /* listen_on() without reuse_port: a second listener is refused */
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    cr_assert_eq(listen_again(&second, bound, 1), UV_EADDRINUSE);
    stop_listening();

    /* both with it: both bind, and the kernel spreads the connections */
    cr_assert_eq(listen_again(&listener, "tcp://127.0.0.1:0", 1), 0);
    address_of(&listener, bound);
    cr_assert_eq(listen_again(&second, bound, 1), 0);
    cr_assert_eq(listen_again(&third, bound, 0), UV_EADDRINUSE, "every listener must set it");
    for (i = 0; i < CONNS; i++)
        connect_to(&conns[i], bound, 0, 8, PER_CONN);
    H_RUN_UNTIL(all_done(conns, CONNS));
    for (i = 0; i < CONNS; i++) {
        cr_assert_eq(conns[i].connect_status, 0);
        cr_assert_eq(conns[i].errors, 0);
        cr_assert_eq(conns[i].mismatched, 0);
    }
    ct_listener_counts(&listener, &first_accepted, NULL);
    ct_listener_counts(&second, &second_accepted, NULL);
    cr_assert_eq(first_accepted + second_accepted, CONNS);
    /* all 16 on one listener by chance: 2 in 65,536 */
    cr_assert(first_accepted > 0 && second_accepted > 0, "accepted %zu and %zu", first_accepted,
              second_accepted);
    for (i = 0; i < CONNS; i++)
        close_conn(&conns[i]);
    listener_closed = second_closed = 0;
    cr_assert_eq(ct_listener_shutdown(&listener, 1000, on_listener_closed), 0);
    cr_assert_eq(ct_listener_shutdown(&second, 1000, on_second_closed), 0);
    H_RUN_UNTIL(listener_closed && second_closed);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* A failed init leaves nothing open: the same listener may be initialized
 * again at once, as a program trying one port after another would. */
Test(net, a_listener_that_failed_to_bind_is_reusable_at_once) {
    static ct_listener_t l;
    static conn_t c;
    char taken[128];
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    strcpy(taken, bound);
    cr_assert_eq(listen_again(&l, taken, 0), UV_EADDRINUSE);
    cr_assert_eq(listen_again(&l, "unix:///nonexistent-dir/x.sock", 0), UV_ENOENT);
    cr_assert_eq(listen_again(&l, taken, 0), UV_EADDRINUSE);
    cr_assert_eq(listen_again(&l, "tcp://127.0.0.1:0", 0), 0);
    address_of(&l, taken);
    connect_to(&c, taken, 0, 4, 100);
    H_RUN_UNTIL(all_done(&c, 1));
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.mismatched, 0);
    close_conn(&c);
    second_closed = 0;
    cr_assert_eq(ct_listener_shutdown(&l, 1000, on_second_closed), 0);
    H_RUN_UNTIL(second_closed);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- a service of its own for each connection (new_service) ------------- */

typedef struct session {
    ct_service_fn_t svc;
    uint64_t answered; /* this connection's requests, and no other's */
    int peer_port;
} session_t;

static session_t *sessions[8];
static int nsessions, sessions_done, sessions_closed, refuse_after;

static int session_echo(void *ctx, void *request, void **response) {
    session_t *s = ctx;
    s->answered++;
    *response = request;
    return 0;
}

static ct_service_t *new_session(ct_listener_t *l, ct_stream_t *conn) {
    session_t *s;
    struct sockaddr_in peer;
    int len = sizeof peer;
    (void)l;
    if (nsessions == refuse_after) return NULL;
    s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    ct_service_fn_init(&s->svc, &H.ct, session_echo, s);
    cr_assert_eq(uv_tcp_getpeername((uv_tcp_t *)ct_stream_uv(conn), (struct sockaddr *)&peer, &len),
                 0);
    s->peer_port = ntohs(peer.sin_port);
    sessions[nsessions++] = s;
    return &s->svc.service;
}

static void on_session_closed(ct_service_t *svc) {
    (void)svc; /* freed at the end of the test, where it is still looked at */
    sessions_closed++;
}

static void done_session(ct_listener_t *l, ct_service_t *svc) {
    (void)l;
    sessions_done++;
    cr_assert_eq(ct_service_close(svc, on_session_closed), 0);
}

static int listen_with_sessions(ct_listener_t *l, ct_service_t *shared,
                                ct_listener_new_service_fn make, ct_listener_done_service_fn done) {
    ct_listener_config_t cfg;
    listener_config(&cfg);
    cfg.new_service = make;
    cfg.done_service = done;
    return ct_listener_init(l, &H.ct, "tcp://127.0.0.1:0", shared, &cfg);
}

Test(net, each_connection_can_have_a_service_of_its_own) {
    enum { CONNS = 3 };
    static conn_t conns[CONNS + 1];
    static ct_listener_t l;
    char address[128];
    int i, j;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    /* one service or a maker, and a maker with its done */
    cr_assert_eq(listen_with_sessions(&l, &echo.service, new_session, done_session), CT_EINVAL);
    cr_assert_eq(listen_with_sessions(&l, NULL, NULL, NULL), CT_EINVAL);
    cr_assert_eq(listen_with_sessions(&l, NULL, new_session, NULL), CT_EINVAL);
    nsessions = sessions_done = sessions_closed = 0;
    refuse_after = CONNS; /* the last connection is refused */
    cr_assert_eq(listen_with_sessions(&l, NULL, new_session, done_session), 0);
    address_of(&l, address);
    for (i = 0; i < CONNS; i++) { /* one at a time: session i is connection i */
        connect_to(&conns[i], address, 0, 4, (uint64_t)(i + 1) * 100);
        H_RUN_UNTIL(all_done(&conns[i], 1));
        cr_assert_eq(conns[i].errors, 0);
    }
    connect_to(&conns[CONNS], address, 0, 4, 100);
    H_RUN_UNTIL(conns[CONNS].errors == 4); /* the requests in flight */
    cr_assert_eq(conns[CONNS].done, 4, "a refused connection answers nothing");
    cr_assert_eq(conns[CONNS].first_error, CT_ERECVBROKEN);
    cr_assert_eq(nsessions, CONNS);
    for (i = 0; i < CONNS; i++) {
        uv_os_fd_t fd;
        struct sockaddr_in local;
        socklen_t len = sizeof local;
        cr_assert_eq(sessions[i]->answered, (uint64_t)(i + 1) * 100, "session %d", i);
        cr_assert_eq(uv_fileno((uv_handle_t *)ct_stream_uv(&conns[i].stream), &fd), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *)&local, &len), 0);
        cr_assert_eq(sessions[i]->peer_port, ntohs(local.sin_port), "the maker saw its peer");
    }
    {
        size_t accepted = 0, errors = 0;
        ct_listener_counts(&l, &accepted, &errors);
        cr_assert_eq(accepted, CONNS);
        cr_assert_eq(errors, 1);
    }
    cr_assert_eq(sessions_done, 0, "in use while their connections are open");
    for (i = 0; i <= CONNS; i++)
        close_conn(&conns[i]);
    second_closed = 0;
    cr_assert_eq(ct_listener_shutdown(&l, 1000, on_second_closed), 0);
    H_RUN_UNTIL(second_closed && sessions_closed == CONNS);
    cr_assert_eq(sessions_done, CONNS);
    for (j = 0; j < nsessions; j++)
        free(sessions[j]);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, reuse_port_on_a_unix_address_is_refused) {
    static ct_listener_t l;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    cr_assert_eq(listen_again(&l, "unix:///tmp/ctower-test-reuse.sock", 1), CT_EINVAL);
    cr_assert_eq(access("/tmp/ctower-test-reuse.sock", F_OK), -1, "nothing was bound");
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* A configuration every connection would fail on is refused at init, not
 * found out one refused connection at a time. */
Test(net, configurations_every_connection_would_refuse_are_refused_at_init) {
    static ct_listener_t l;
    static ct_connector_t connector;
    ct_listener_config_t cfg;
    ct_stream_config_t no_pool;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    no_pool = stream_cfg;
    no_pool.pool = NULL;
    cr_assert_eq(ct_connector_init(&connector, &H.ct, "tcp://127.0.0.1:9", &no_pool), CT_EINVAL);
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = no_pool;
    cr_assert_eq(ct_listener_init(&l, &H.ct, "tcp://127.0.0.1:0", &echo.service, &cfg), CT_EINVAL);
    cfg.stream = stream_cfg;
    cfg.server.get_tag = ct_buf_get_tag; /* without set_tag */
    cfg.multiplex = 1;
    cr_assert_eq(ct_listener_init(&l, &H.ct, "tcp://127.0.0.1:0", &echo.service, &cfg), CT_EINVAL);
    cfg.server.set_tag = ct_buf_set_tag;
    cfg.multiplex = 0; /* tags, but a pipeline */
    cr_assert_eq(ct_listener_init(&l, &H.ct, "tcp://127.0.0.1:0", &echo.service, &cfg), CT_EINVAL);
    cfg.multiplex = 1;
    cr_assert_eq(ct_listener_init(&l, &H.ct, "tcp://127.0.0.1:0", &echo.service, &cfg), 0);
    listener_closed = 0;
    cr_assert_eq(ct_listener_shutdown(&l, 0, on_listener_closed), 0);
    H_RUN_UNTIL(listener_closed);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, connection_refused_and_missing_socket) {
    static conn_t c;
    char refused[128];
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    strcpy(refused, bound);
    stop_listening(); /* the port is free again: nothing listens there */
    connect_to(&c, refused, 0, 1, 0);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, UV_ECONNREFUSED);
    connect_to(&c, "unix:///tmp/ctower-test-nobody-here.sock", 0, 1, 0);
    H_RUN_UNTIL(c.connected);
    cr_assert_eq(c.connect_status, UV_ENOENT);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

static int connected_flag;
static void on_connected_flag(ct_stream_t *stream, int status) {
    (void)stream;
    connected_flag = status == 0 ? 1 : status;
}

/* ---- connect timeouts ---------------------------------------------------- */

static int timeout_calls, timeout_status;
static ct_stream_t timeout_stream;

static void on_timeout_connect(ct_stream_t *stream, int status) {
    timeout_calls++;
    timeout_status = status;
    /* the memory is the caller's again: scribbling on it must be harmless */
    if (status != 0) memset(stream, 0xa5, sizeof *stream);
}

Test(net, a_connect_that_gets_no_answer_times_out) {
    static ct_connector_t connector;
    int listen_fd, fill_fd, port = h_full_backlog_port(&listen_fd, &fill_fd);
    char address[64];
    uint64_t start;
    net_setup();
    snprintf(address, sizeof address, "tcp://127.0.0.1:%d", port);
    cr_assert_eq(ct_connector_init(&connector, &H.ct, address, &stream_cfg), 0);
    connector.timeout_ms = 200;
    timeout_calls = 0;
    start = uv_now(&H.uv);
    cr_assert_eq(ct_connector_connect(&connector, &timeout_stream, on_timeout_connect), 0);
    H_RUN_UNTIL(timeout_calls > 0);
    cr_assert_eq(timeout_status, UV_ETIMEDOUT, "%s", ct_strerror(timeout_status));
    /* the timeout ended it: the kernel would have kept trying for minutes */
    cr_assert(uv_now(&H.uv) - start >= 200);
    cr_assert(uv_now(&H.uv) - start < 5000);
    close(fill_fd);
    close(listen_fd);
    ct_buf_pool_destroy(&pool);
}

/* All of libuv's threads busy: the lookup of a name cannot start before the
 * timeout, which then reports at once and takes the lookup back. */
static void sleep_work(uv_work_t *w) {
    (void)w;
    usleep(1000 * 1000); /* far past the timeout, even on a loaded machine */
}
static void slept(uv_work_t *w, int status) {
    (void)w;
    (void)status;
}

Test(net, a_name_still_waiting_for_the_resolver_times_out) {
    static ct_connector_t connector;
    static uv_work_t busy[4]; /* libuv's default pool size */
    int i;
    net_setup();
    for (i = 0; i < 4; i++)
        cr_assert_eq(uv_queue_work(&H.uv, &busy[i], sleep_work, slept), 0);
    cr_assert_eq(ct_connector_init(&connector, &H.ct, "tcp://localhost:9", &stream_cfg), 0);
    connector.timeout_ms = 20;
    timeout_calls = 0;
    cr_assert_eq(ct_connector_connect(&connector, &timeout_stream, on_timeout_connect), 0);
    H_RUN_UNTIL(timeout_calls > 0);
    cr_assert_eq(timeout_status, UV_ETIMEDOUT, "%s", ct_strerror(timeout_status));
    /* the resolver's callback still comes (canceled) and must not report */
    h_run();
    cr_assert_eq(timeout_calls, 1);
    ct_buf_pool_destroy(&pool);
}

Test(net, a_connect_under_way_can_be_canceled) {
    static ct_connector_t connector;
    int listen_fd, fill_fd, port = h_full_backlog_port(&listen_fd, &fill_fd);
    char address[64];
    net_setup();
    snprintf(address, sizeof address, "tcp://127.0.0.1:%d", port);
    cr_assert_eq(ct_connector_init(&connector, &H.ct, address, &stream_cfg), 0);
    connector.timeout_ms = 100; /* the cancel comes first, and its reason stands */
    timeout_calls = 0;
    cr_assert_eq(ct_connector_connect(&connector, &timeout_stream, on_timeout_connect), 0);
    h_turns(2);
    cr_assert_eq(timeout_calls, 0, "no answer comes from a full backlog");
    cr_assert_eq(ct_connector_cancel(&timeout_stream), 0);
    cr_assert_eq(timeout_calls, 0, "reported from a fresh stack");
    H_RUN_UNTIL(timeout_calls > 0);
    cr_assert_eq(timeout_status, UV_ECANCELED, "%s", ct_strerror(timeout_status));
    h_run(); /* the timer's close */
    cr_assert_eq(timeout_calls, 1);
    close(fill_fd);
    close(listen_fd);
    ct_buf_pool_destroy(&pool);
}

Test(net, a_connect_waiting_for_the_resolver_can_be_canceled) {
    static ct_connector_t connector;
    static uv_work_t busy[4];
    int i;
    net_setup();
    for (i = 0; i < 4; i++)
        cr_assert_eq(uv_queue_work(&H.uv, &busy[i], sleep_work, slept), 0);
    cr_assert_eq(ct_connector_init(&connector, &H.ct, "tcp://localhost:9", &stream_cfg), 0);
    timeout_calls = 0;
    cr_assert_eq(ct_connector_connect(&connector, &timeout_stream, on_timeout_connect), 0);
    cr_assert_eq(ct_connector_cancel(&timeout_stream), 0);
    cr_assert_eq(ct_connector_cancel(&timeout_stream), CT_EINVAL, "once is enough");
    h_run();
    cr_assert_eq(timeout_calls, 1);
    cr_assert_eq(timeout_status, UV_ECANCELED, "%s", ct_strerror(timeout_status));
    ct_buf_pool_destroy(&pool);
}

/* Many connects to a name whose every address refuses, with timeouts and
 * cancels landing at random points (resolving, connecting, closing between
 * two addresses): each reports once, with one of the three outcomes. */
enum { RACES = 200 };
static int race_calls[RACES], race_status[RACES];
static ct_stream_t race_streams[RACES];

static void on_race_connect(ct_stream_t *stream, int status) {
    size_t i = (size_t)(stream - race_streams);
    race_calls[i]++;
    race_status[i] = status;
}

static int races_done(void) {
    int i;
    for (i = 0; i < RACES; i++)
        if (race_calls[i] == 0) return 0;
    return 1;
}

Test(net, timeouts_and_cancels_at_random_points_report_once) {
    static ct_connector_t connectors[RACES];
    char refused[128], by_number[128];
    int i, canceled = 0;
    unsigned seed = 12345;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    snprintf(refused, sizeof refused, "tcp://localhost:%d", listener_port());
    strcpy(by_number, bound);
    stop_listening(); /* nothing listens there now */
    for (i = 0; i < RACES; i++) {
        /* by name: resolving first; by number: straight to connecting */
        const char *address = rand_r(&seed) % 2 ? refused : by_number;
        race_calls[i] = 0;
        cr_assert_eq(ct_connector_init(&connectors[i], &H.ct, address, &stream_cfg), 0);
        connectors[i].timeout_ms = rand_r(&seed) % 3; /* 0: none */
        cr_assert_eq(ct_connector_connect(&connectors[i], &race_streams[i], on_race_connect), 0);
        if (rand_r(&seed) % 4 == 0) { /* before the loop has run at all */
            cr_assert_eq(ct_connector_cancel(&race_streams[i]), 0);
            canceled++;
        }
    }
    while (!races_done()) {
        i = (int)(rand_r(&seed) % RACES);
        if (race_calls[i] == 0 && ct_connector_cancel(&race_streams[i]) == 0) canceled++;
        h_turns(1);
    }
    h_run(); /* the resolver's late callbacks, the timers' closes */
    for (i = 0; i < RACES; i++) {
        cr_assert_eq(race_calls[i], 1, "connect %d reported %d times", i, race_calls[i]);
        cr_assert(race_status[i] == UV_ECONNREFUSED || race_status[i] == UV_ETIMEDOUT ||
                      race_status[i] == UV_ECANCELED,
                  "connect %d: %s", i, ct_strerror(race_status[i]));
    }
    cr_assert_gt(canceled, 0);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

static void assert_fd_tcp_options(int fd, int keepidle) {
    int v = 0;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    cr_assert(v, "TCP_NODELAY");
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    cr_assert_eq(v != 0, keepidle != 0, "SO_KEEPALIVE %d", v);
    if (!keepidle) return;
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
    cr_assert_eq(v, keepidle);
}

/* The socket the listener accepted: bound to the listener's port, and not
 * the listening one. */
static int accepted_fd(int port) {
    int fd;
    for (fd = 3; fd < 1024; fd++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        int listening = 0;
        socklen_t ilen = sizeof listening;
        if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0 || sa.sin_family != AF_INET)
            continue;
        if (ntohs(sa.sin_port) != port) continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) == 0 && !listening)
            return fd;
    }
    return -1;
}

Test(net, keepalive_is_set_on_both_ends_when_asked) {
    int keepidle;
    for (keepidle = 0; keepidle <= 7; keepidle += 7) {
        static conn_t c;
        uv_os_fd_t fd;
        int server_fd;
        net_setup();
        stream_cfg.keepalive_s = (unsigned)keepidle;
        ct_echo_service_init(&echo, &H.ct);
        listen_on("tcp://127.0.0.1:0", &echo.service, 0);
        connect_to(&c, bound, 0, 1, 10);
        H_RUN_UNTIL(all_done(&c, 1));
        cr_assert_eq(uv_fileno((uv_handle_t *)ct_stream_uv(&c.stream), &fd), 0);
        assert_fd_tcp_options(fd, keepidle);
        server_fd = accepted_fd(listener_port());
        cr_assert(server_fd >= 0, "the accepted socket is found");
        assert_fd_tcp_options(server_fd, keepidle);
        close_conn(&c);
        stop_listening();
        h_close_service(&echo.service);
        ct_buf_pool_destroy(&pool);
        listener_closed = 0;
    }
}

static int waited;
static void on_waited(uv_timer_t *t) {
    waited = 1;
    uv_close((uv_handle_t *)t, NULL);
}

/* A connect that succeeds well within its timeout: the timer goes with it. */
Test(net, a_timeout_that_does_not_expire_stays_silent) {
    static ct_connector_t connector;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    cr_assert_eq(ct_connector_init(&connector, &H.ct, bound, &stream_cfg), 0);
    connector.timeout_ms = 1000; /* a loopback connect takes far less, even on a loaded machine */
    timeout_calls = 0;
    cr_assert_eq(ct_connector_connect(&connector, &timeout_stream, on_timeout_connect), 0);
    H_RUN_UNTIL(timeout_calls > 0);
    cr_assert_eq(timeout_status, 0);
    cr_assert_eq(ct_connector_cancel(&timeout_stream), CT_EINVAL, "connected: nothing to cancel");
    {
        static uv_timer_t wait;
        waited = 0;
        uv_timer_init(&H.uv, &wait);
        uv_timer_start(&wait, on_waited, 1100, 0); /* past the timeout */
        H_RUN_UNTIL(waited);
    }
    cr_assert_eq(timeout_calls, 1);
    cr_assert_eq(ct_transport_close(&timeout_stream.transport, NULL), 0);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- a raw peer that misbehaves on purpose ------------------------------ */

/* BAD_RESET_LATER stops reading after its first read and resets the
 * connection 100 ms later, once the client's output has backed up. */
enum { BAD_OVERSIZE, BAD_MALFORMED, BAD_MIDFRAME, BAD_RESET, BAD_RESET_LATER };

static struct {
    uv_tcp_t server;
    uv_tcp_t conn;
    uv_timer_t timer;
    uv_write_t write;
    uv_buf_t out;
    int behaviour;
    int acted;
    int closed;
    char port[16];
} bad;

static void bad_closed(uv_handle_t *h) {
    (void)h;
    bad.closed++;
}

static void bad_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    static char buf[4096];
    (void)h;
    (void)n;
    *b = uv_buf_init(buf, sizeof buf);
}

static void bad_written(uv_write_t *w, int status) {
    (void)status;
    if (bad.behaviour == BAD_MIDFRAME) uv_close((uv_handle_t *)w->handle, bad_closed);
}

static void reset_now(uv_timer_t *timer) {
    (void)timer;
    uv_tcp_close_reset(&bad.conn, bad_closed);
}

static void bad_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    static char oversize[] = {0x7f, 0, 0, 0};
    static char malformed[] = {0, 0, 0, 2}; /* less than the field, with adjust -4 */
    static char midframe[] = {0, 0, 0, 10, 'a', 'b', 'c'};
    (void)b;
    if (n <= 0 || bad.acted) return;
    bad.acted = 1;
    if (bad.behaviour == BAD_RESET_LATER) {
        uv_read_stop(s);
        uv_timer_start(&bad.timer, reset_now, 100, 0);
        return;
    }
    if (bad.behaviour == BAD_RESET) {
        uv_tcp_close_reset((uv_tcp_t *)s, bad_closed);
        return;
    }
    if (bad.behaviour == BAD_OVERSIZE) bad.out = uv_buf_init(oversize, sizeof oversize);
    if (bad.behaviour == BAD_MALFORMED) bad.out = uv_buf_init(malformed, sizeof malformed);
    if (bad.behaviour == BAD_MIDFRAME) bad.out = uv_buf_init(midframe, sizeof midframe);
    uv_write(&bad.write, s, &bad.out, 1, bad_written);
}

static void bad_accept(uv_stream_t *server, int status) {
    cr_assert_eq(status, 0);
    uv_tcp_init(server->loop, &bad.conn);
    cr_assert_eq(uv_accept(server, (uv_stream_t *)&bad.conn), 0);
    uv_read_start((uv_stream_t *)&bad.conn, bad_alloc, bad_read);
}

static void start_bad_peer(int behaviour) {
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof got;
    memset(&bad, 0, sizeof bad);
    bad.behaviour = behaviour;
    if (behaviour == BAD_RESET_LATER) cr_assert_eq(uv_timer_init(&H.uv, &bad.timer), 0);
    uv_ip4_addr("127.0.0.1", 0, &a);
    cr_assert_eq(uv_tcp_init(&H.uv, &bad.server), 0);
    cr_assert_eq(uv_tcp_bind(&bad.server, (const struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&bad.server, 8, bad_accept), 0);
    uv_tcp_getsockname(&bad.server, (struct sockaddr *)&got, &len);
    snprintf(bound, sizeof bound, "tcp://127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&got)->sin_port));
}

static void stop_bad_peer(void) {
    if (bad.behaviour == BAD_RESET_LATER) uv_close((uv_handle_t *)&bad.timer, NULL);
    uv_close((uv_handle_t *)&bad.server, bad_closed);
    if (!uv_is_closing((uv_handle_t *)&bad.conn)) uv_close((uv_handle_t *)&bad.conn, bad_closed);
    h_run();
}

static void client_sees(int behaviour, int64_t adjust, int cause) {
    enum { N = 3 };
    static conn_t c;
    ct_length_codec_config_t lc = {4, 0, adjust, 1024};
    int i;
    net_setup();
    cr_assert_eq(ct_length_codec_init(&codec, &lc), 0);
    start_bad_peer(behaviour);
    connect_to(&c, bound, 0, N, N);
    H_RUN_UNTIL(c.done >= N);
    cr_assert_eq(c.errors, N, "every op failed");
    cr_assert_eq(c.first_error, CT_ERECVBROKEN);
    cr_assert_eq(c.first_cause, cause, "cause %s, expected %s", ct_err_name(c.first_cause),
                 ct_err_name(cause));
    for (i = 0; i < N; i++)
        cr_assert_eq(c.reqs[i].op.status, CT_ERECVBROKEN);
    h_turns(3);
    cr_assert_eq(c.done, N, "each op completed exactly once");
    close_conn(&c);
    stop_bad_peer();
    ct_buf_pool_destroy(&pool);
}

Test(net, oversize_frame_fails_every_op) {
    client_sees(BAD_OVERSIZE, 0, CT_EFRAMETOOLARGE);
}
Test(net, malformed_length_fails_every_op) {
    client_sees(BAD_MALFORMED, -4, CT_EMALFORMED);
}
Test(net, peer_closing_mid_frame_fails_every_op) {
    client_sees(BAD_MIDFRAME, 0, CT_ETRUNCATED);
}
Test(net, connection_reset_fails_every_op) {
    client_sees(BAD_RESET, 0, UV_ECONNRESET);
}

/* A reset while the client still has megabytes to write: the read side sees
 * the reset first, and the write libuv still has pending then fails with
 * EPIPE, which raises SIGPIPE. The process ignores it, as the README asks of
 * every program (libuv writes with write(), without MSG_NOSIGNAL). */
enum { BIG_REQUEST = 256 * 1024, BIG_REQUESTS = 16 };

static void on_connected_big(ct_stream_t *stream, int status) {
    conn_t *c = CT_CONTAINER_OF(stream, conn_t, stream);
    size_t i;
    c->connect_status = status;
    c->connected = 1;
    cr_assert_eq(status, 0);
    start_client(c);
    for (i = 0; i < BIG_REQUESTS; i++) {
        ct_buf_t *b = ct_buf_new(BIG_REQUEST);
        cr_assert_not_null(b);
        memset(b->base, 'x', BIG_REQUEST);
        b->len = BIG_REQUEST;
        c->reqs[i].conn = c;
        ct_op_init(&c->reqs[i].op, on_reply);
        c->next++;
        cr_assert_eq(h_call(&c->client.service, b, &c->reqs[i].op), 0);
    }
}

Test(net, reset_with_output_still_to_write_fails_every_op_once) {
    static conn_t c;
    static ct_connector_t connector;
    ct_length_codec_config_t lc = {4, 0, 0, 1 << 20};
    struct sigaction ignore, old;
    int i;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    cr_assert_eq(sigaction(SIGPIPE, &ignore, &old), 0);
    net_setup();
    cr_assert_eq(ct_length_codec_init(&codec, &lc), 0);
    start_bad_peer(BAD_RESET_LATER);
    memset(&c, 0, sizeof c);
    c.depth = c.total = BIG_REQUESTS;
    cr_assert_eq(ct_connector_init(&connector, &H.ct, bound, &stream_cfg), 0);
    cr_assert_eq(ct_connector_connect(&connector, &c.stream, on_connected_big), 0);
    H_RUN_UNTIL(c.done >= BIG_REQUESTS);
    cr_assert_eq(c.errors, BIG_REQUESTS, "every op failed");
    for (i = 0; i < BIG_REQUESTS; i++) {
        int st = c.reqs[i].op.status, cause = c.reqs[i].op.cause;
        cr_assert(st == CT_ERECVBROKEN || st == CT_ESENDBROKEN, "status %s", ct_err_name(st));
        cr_assert(cause == UV_ECONNRESET || cause == UV_EPIPE, "cause %s", ct_err_name(cause));
    }
    h_turns(3);
    cr_assert_eq(c.done, BIG_REQUESTS, "each op completed exactly once");
    close_conn(&c);
    stop_bad_peer();
    ct_buf_pool_destroy(&pool);
    cr_assert_eq(sigaction(SIGPIPE, &old, NULL), 0);
}

/* A write that fails ends the client with CT_ESENDBROKEN, though the stream
 * reports it on its receive side too: the peer (one end of a Unix socket
 * pair) shut its read side, so the socket refuses what is sent with EPIPE. */
static int broken_calls, broken_status, broken_cause;

static void on_broken_reply(ct_op_t *op, int status, void *response) {
    (void)response;
    broken_calls++;
    broken_status = status;
    broken_cause = op->cause;
}

Test(net, a_failed_write_is_a_broken_send_side) {
    static ct_stream_t stream;
    static ct_client_t client;
    ct_length_codec_config_t lc = {4, 0, 0, 1024};
    ct_client_config_t cfg = {0};
    struct sigaction ignore, old;
    ct_op_t op;
    int fds[2];
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    cr_assert_eq(sigaction(SIGPIPE, &ignore, &old), 0);
    net_setup();
    cr_assert_eq(ct_length_codec_init(&codec, &lc), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    cr_assert_eq(shutdown(fds[1], SHUT_RD), 0);
    cr_assert_eq(ct_stream_init(&stream, &H.ct, 1, &stream_cfg), 0);
    cr_assert_eq(uv_pipe_open((uv_pipe_t *)ct_stream_uv(&stream), fds[0]), 0);
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    cr_assert_eq(ct_pipeline_client_init(&client, &H.ct, &stream.transport, &cfg), 0);
    broken_calls = 0;
    ct_op_init(&op, on_broken_reply);
    cr_assert_eq(h_call(&client.service, make_request(1), &op), 0);
    H_RUN_UNTIL(broken_calls > 0);
    cr_assert_eq(broken_status, CT_ESENDBROKEN, "%s", ct_err_name(broken_status));
    cr_assert_eq(broken_cause, UV_EPIPE, "%s", ct_err_name(broken_cause));
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_ESENDBROKEN);
    h_turns(3);
    cr_assert_eq(broken_calls, 1, "the op completed once");
    h_close_service(&client.service);
    close(fds[1]);
    ct_buf_pool_destroy(&pool);
    cr_assert_eq(sigaction(SIGPIPE, &old, NULL), 0);
}

/* An echo server over TCP with codec lc and client c connected to it at
 * depth, ready for the test to issue (total 0); its first n ops are set up
 * to expect answers 0..n-1. */
static void echo_connection(conn_t *c, const ct_length_codec_config_t *lc, int multiplex,
                            size_t depth, int n) {
    int i;
    net_setup();
    cr_assert_eq(ct_length_codec_init(&codec, lc), 0);
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, multiplex);
    connect_to(c, bound, multiplex, depth, 0);
    H_RUN_UNTIL(c->connected);
    cr_assert_eq(c->connect_status, 0);
    for (i = 0; i < n; i++) {
        c->reqs[i].conn = c;
        c->reqs[i].expect = (uint64_t)i;
        ct_op_init(&c->reqs[i].op, on_reply);
    }
}

static void end_echo_connection(conn_t *c) {
    close_conn(c);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* A codec without a practical limit (max_payload SIZE_MAX, which plus the
 * header overflows): a frame larger than the read buffer still makes it grow
 * and arrives whole, both ways. */
static int whole_calls, whole_status;
static size_t whole_len;
static int whole_ok;

static void on_whole_reply(ct_op_t *op, int status, void *response) {
    ct_buf_t *b = response;
    size_t i;
    (void)op;
    whole_calls++;
    whole_status = status;
    if (status != 0) return;
    whole_len = b->len;
    whole_ok = 1;
    for (i = 0; i < b->len; i++)
        if ((uint8_t)b->base[i] != (uint8_t)(i * 7)) whole_ok = 0;
    ct_buf_pool_put(&pool, b);
}

Test(net, a_frame_larger_than_the_read_buffer_with_no_practical_limit) {
    enum { BIG = 300 * 1024 };
    static conn_t c;
    ct_length_codec_config_t lc = {8, 0, 0, SIZE_MAX};
    ct_buf_t *big;
    ct_op_t op;
    size_t i;
    echo_connection(&c, &lc, 0, 1, 0);
    big = ct_buf_new(BIG);
    cr_assert_not_null(big);
    for (i = 0; i < BIG; i++)
        big->base[i] = (char)(uint8_t)(i * 7);
    big->len = BIG;
    whole_calls = whole_ok = 0;
    ct_op_init(&op, on_whole_reply);
    cr_assert_eq(h_call(&c.client.service, big, &op), 0);
    H_RUN_UNTIL(whole_calls > 0);
    cr_assert_eq(whole_status, 0, "%s", ct_err_name(whole_status));
    cr_assert_eq(whole_len, (size_t)BIG);
    cr_assert(whole_ok, "the echo came back byte for byte");
    end_echo_connection(&c);
}

/* A Unix socket path that a live server holds is refused (it used to be
 * taken over, silently cutting that server off), one left by a process that
 * died is reused, and a missing directory is said as such (libuv reports it
 * as UV_EACCES). */
Test(net, a_unix_path_in_use_is_refused_and_a_stale_one_reused) {
    static ct_listener_t second;
    ct_listener_config_t cfg;
    const char *path = "/tmp/ctower-test-in-use.sock";
    struct sockaddr_un sa;
    static conn_t c;
    int fd;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = stream_cfg;
    /* A stale socket file: bound, never listened on, its process gone. */
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cr_assert_eq(bind(fd, (const struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    listen_on("unix:///tmp/ctower-test-in-use.sock", &echo.service, 0);
    cr_assert_eq(ct_listener_init(&second, &H.ct, "unix:///tmp/ctower-test-in-use.sock",
                                  &echo.service, &cfg),
                 UV_EADDRINUSE);
    h_turns(2);
    connect_to(&c, bound, 0, 2, 100);
    H_RUN_UNTIL(c.done == 100);
    cr_assert_eq(c.errors, 0, "the first server still serves: %s", ct_err_name(c.first_error));
    close_conn(&c);
    stop_listening();
    cr_assert_eq(access(path, F_OK), -1, "the path is removed when the listener closes");
    cr_assert_eq(ct_listener_init(&second, &H.ct, "unix:///tmp/ctower-test-no-such-dir/x.sock",
                                  &echo.service, &cfg),
                 UV_ENOENT);
    h_turns(2);
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- a peer that stops reading -------------------------------------------- */

/* A raw client writes many large requests in one go and reads nothing until
 * the server's answers have filled every buffer on the way: the server, which
 * answers inside its read callback through the loop's shared write buffer,
 * then writes only part of a batch, keeps the rest in buffers of its own and
 * finishes later. Every answer must arrive whole and in order. */
enum { SLOW_FRAMES = 256, SLOW_PAYLOAD = 32 * 1024, SLOW_FRAME = 4 + SLOW_PAYLOAD };

static struct {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uint8_t *out, *in;
    size_t received;
    int connected, written, closed;
} slow;

static uint8_t slow_byte(size_t frame, size_t i) {
    return (uint8_t)(frame * 7 + i);
}

static void slow_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    (void)h;
    (void)n;
    *b = uv_buf_init((char *)slow.in + slow.received,
                     (unsigned)((size_t)SLOW_FRAMES * SLOW_FRAME - slow.received));
}

static void slow_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    (void)b;
    cr_assert_geq(n, 0, "read: %s", uv_strerror((int)n));
    slow.received += (size_t)n;
    if (slow.received == (size_t)SLOW_FRAMES * SLOW_FRAME) uv_read_stop(st);
}

static void slow_written(uv_write_t *w, int status) {
    (void)w;
    cr_assert_eq(status, 0);
    slow.written = 1;
}

static void slow_connected(uv_connect_t *c, int status) {
    /* Small, so that the buffers on the way fill long before the 8 MB are
     * answered; not below a segment (64 KiB on loopback), or TCP would wait
     * for its persist timer instead of sending into the window. */
    int small = 64 * 1024;
    uv_buf_t b = uv_buf_init((char *)slow.out, (unsigned)((size_t)SLOW_FRAMES * SLOW_FRAME));
    cr_assert_eq(status, 0);
    uv_recv_buffer_size((uv_handle_t *)&slow.tcp, &small);
    cr_assert_eq(uv_write(&slow.write, c->handle, &b, 1, slow_written), 0);
    slow.connected = 1;
}

static void slow_closed(uv_handle_t *h) {
    (void)h;
    slow.closed = 1;
}

Test(net, a_peer_that_stops_reading_gets_every_answer_whole) {
    const size_t total = (size_t)SLOW_FRAMES * SLOW_FRAME;
    ct_address_t a;
    size_t f, i;
    net_setup();
    memset(&slow, 0, sizeof slow);
    slow.out = malloc(total);
    slow.in = malloc(total);
    cr_assert(slow.out && slow.in);
    for (f = 0; f < SLOW_FRAMES; f++) {
        uint8_t *frame = slow.out + f * SLOW_FRAME;
        frame[0] = (uint8_t)(SLOW_PAYLOAD >> 24);
        frame[1] = (uint8_t)(SLOW_PAYLOAD >> 16);
        frame[2] = (uint8_t)(SLOW_PAYLOAD >> 8);
        frame[3] = (uint8_t)SLOW_PAYLOAD;
        for (i = 0; i < SLOW_PAYLOAD; i++)
            frame[4 + i] = slow_byte(f, i);
    }
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    cr_assert_eq(ct_listener_address(&listener, &a), 0);
    cr_assert_eq(uv_tcp_init(&H.uv, &slow.tcp), 0);
    cr_assert_eq(
        uv_tcp_connect(&slow.connect, &slow.tcp, (const struct sockaddr *)&a.sa, slow_connected),
        0);
    H_RUN_UNTIL(slow.written);
    h_turns(20); /* the server meets full buffers while nothing is read */
    cr_assert_lt(slow.received, total);
    cr_assert_eq(uv_read_start((uv_stream_t *)&slow.tcp, slow_alloc, slow_read), 0);
    H_RUN_UNTIL(slow.received == total);
    for (f = 0; f < SLOW_FRAMES; f++) {
        const uint8_t *frame = slow.in + f * SLOW_FRAME;
        uint32_t len = (uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 |
                       (uint32_t)frame[2] << 8 | frame[3];
        cr_assert_eq(len, SLOW_PAYLOAD, "frame %zu", f);
        for (i = 0; i < SLOW_PAYLOAD; i++)
            if (frame[4 + i] != slow_byte(f, i))
                cr_assert_fail("frame %zu byte %zu: %u, expected %u", f, i, frame[4 + i],
                               slow_byte(f, i));
    }
    uv_close((uv_handle_t *)&slow.tcp, slow_closed);
    H_RUN_UNTIL(slow.closed);
    stop_listening();
    h_close_service(&echo.service);
    free(slow.out);
    free(slow.in);
    ct_buf_pool_destroy(&pool);
}

/* Answers larger than the requests: one read of 16 small requests makes
 * 768 KiB of output in one read callback, more than the loop's shared write
 * buffer holds, so the stream moves its output to a buffer of its own midway
 * (and writes most of it later). Every answer must arrive whole. */
static int big_answer(void *ctx, void *request, void **response) {
    ct_buf_t *req = request, *b = ct_buf_new(BIG_ANSWER);
    uint64_t id;
    size_t i;
    (void)ctx;
    if (!b) return UV_ENOMEM;
    memcpy(b->base, req->base, PAYLOAD);
    memcpy(&id, req->base + 4, sizeof id);
    for (i = PAYLOAD; i < BIG_ANSWER; i++)
        b->base[i] = (char)big_answer_byte(id, i);
    b->len = BIG_ANSWER;
    ct_buf_pool_put(&pool, req);
    *response = b;
    return 0;
}

Test(net, answers_larger_than_the_shared_write_buffer_arrive_whole) {
    enum { PER_CONN = 2000 };
    static conn_t conns[2];
    static ct_service_fn_t big;
    int i;
    net_setup();
    answer_len = BIG_ANSWER;
    ct_service_fn_init(&big, &H.ct, big_answer, NULL);
    listen_on("tcp://127.0.0.1:0", &big.service, 0);
    for (i = 0; i < 2; i++)
        connect_to(&conns[i], bound, 0, 16, PER_CONN);
    H_RUN_UNTIL(all_done(conns, 2));
    for (i = 0; i < 2; i++) {
        cr_assert_eq(conns[i].connect_status, 0);
        cr_assert_eq(conns[i].errors, 0, "%s", ct_strerror(conns[i].first_error));
        cr_assert_eq(conns[i].mismatched, 0);
        cr_assert_eq(conns[i].done, PER_CONN);
        close_conn(&conns[i]);
    }
    stop_listening();
    h_close_service(&big.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- messages the codec cannot carry ------------------------------------------ */

enum { OVERSIZE = 2 * PAYLOAD };

static ct_buf_t *sized_request(uint64_t id, size_t len) {
    ct_buf_t *b = ct_buf_pool_get(&pool, len);
    cr_assert_not_null(b);
    memset(b->base, 0, len);
    memcpy(b->base + 4, &id, sizeof id);
    b->len = len;
    return b;
}

/* A request larger than the codec's maximum fails alone, with
 * CT_EFRAMETOOLARGE; the requests around it and the client go on. */
static void oversize_request_fails_alone(int multiplex) {
    static conn_t c;
    ct_length_codec_config_t lc = {4, 0, 0, PAYLOAD};
    ct_buf_t *big;
    echo_connection(&c, &lc, multiplex, 4, 3);
    big = sized_request(1, OVERSIZE);
    cr_assert_eq(h_call(&c.client.service, sized_request(0, PAYLOAD), &c.reqs[0].op), 0);
    cr_assert_eq(h_call(&c.client.service, big, &c.reqs[1].op), 0);
    cr_assert_eq(h_call(&c.client.service, sized_request(2, PAYLOAD), &c.reqs[2].op), 0);
    H_RUN_UNTIL(c.done == 3);
    cr_assert_eq(c.errors, 1);
    cr_assert_eq(c.first_error, CT_EFRAMETOOLARGE, "%s", ct_err_name(c.first_error));
    cr_assert_eq(c.reqs[1].op.status, CT_EFRAMETOOLARGE);
    cr_assert_eq(c.reqs[0].op.status, 0);
    cr_assert_eq(c.reqs[2].op.status, 0);
    cr_assert_eq(c.mismatched, 0, "every answer is its own request's");
    /* Still usable afterwards. */
    c.reqs[0].expect = 7;
    cr_assert_eq(h_call(&c.client.service, sized_request(7, PAYLOAD), &c.reqs[0].op), 0);
    H_RUN_UNTIL(c.done == 4);
    cr_assert_eq(c.errors, 1);
    cr_assert_eq(c.mismatched, 0);
    h_turns(3);
    cr_assert_eq(c.done, 4, "each op completed exactly once");
    end_echo_connection(&c);
}

Test(net, pipeline_oversize_request_fails_alone) {
    oversize_request_fails_alone(0);
}
Test(net, multiplex_oversize_request_fails_alone) {
    oversize_request_fails_alone(1);
}

/* A multiplex request too short to carry the 4-byte tag of ct_buf messages
 * fails alone with CT_EINVAL: sent untagged, its answer would match no
 * request, and the client would end with CT_EDESYNC. */
Test(net, a_multiplex_request_too_short_for_its_tag_fails_alone) {
    static conn_t c;
    ct_length_codec_config_t lc = {4, 0, 0, 1024};
    echo_connection(&c, &lc, 1, 4, 3);
    cr_assert_eq(h_call(&c.client.service, sized_request(0, PAYLOAD), &c.reqs[0].op), 0);
    {
        ct_buf_t *tiny = ct_buf_pool_get(&pool, 2);
        tiny->len = 2;
        memset(tiny->base, 0, 2);
        cr_assert_eq(h_call(&c.client.service, tiny, &c.reqs[1].op), 0);
    }
    cr_assert_eq(h_call(&c.client.service, sized_request(2, PAYLOAD), &c.reqs[2].op), 0);
    H_RUN_UNTIL(c.done == 3);
    cr_assert_eq(c.reqs[1].op.status, CT_EINVAL, "%s", ct_err_name(c.reqs[1].op.status));
    cr_assert_eq(c.reqs[0].op.status, 0, "%s", ct_err_name(c.reqs[0].op.status));
    cr_assert_eq(c.reqs[2].op.status, 0, "%s", ct_err_name(c.reqs[2].op.status));
    cr_assert_eq(c.mismatched, 0);
    h_turns(3);
    cr_assert_eq(c.done, 3, "each op completed exactly once");
    end_echo_connection(&c);
}

/* A service whose answer to request 1 is larger than the codec carries. */
static int grow_one(void *ctx, void *req, void **resp) {
    ct_buf_t *b = req, *big;
    uint64_t id;
    (void)ctx;
    memcpy(&id, b->base + 4, sizeof id);
    if (id != 1) {
        *resp = b;
        return 0;
    }
    big = sized_request(1, OVERSIZE);
    memcpy(big->base, b->base, 4); /* the tag, in multiplex mode */
    ct_buf_pool_put(&pool, b);
    *resp = big;
    return 0;
}

static int refused_seen;
static int answer_refused(ct_server_t *srv, int status, void **response) {
    (void)srv;
    cr_assert_eq(status, CT_EFRAMETOOLARGE);
    refused_seen++;
    *response = sized_request(1, PAYLOAD); /* the same id: the client matches it */
    return 0;
}

/* The server: without on_error the connection ends after the responses
 * before the refused one; with it, the replacement is sent and serving goes
 * on. */
static void oversize_response(int with_hook) {
    static conn_t c;
    static ct_service_fn_t grower;
    ct_length_codec_config_t lc = {4, 0, 0, PAYLOAD};
    int i;
    net_setup();
    refused_seen = 0;
    cr_assert_eq(ct_length_codec_init(&codec, &lc), 0);
    ct_service_fn_init(&grower, &H.ct, grow_one, NULL);
    server_on_error = with_hook ? answer_refused : NULL;
    listen_on("tcp://127.0.0.1:0", &grower.service, 0);
    connect_to(&c, bound, 0, 3, 3);
    H_RUN_UNTIL(c.done == 3);
    cr_assert_eq(c.reqs[0].op.status, 0, "the response before the refused one is sent");
    if (with_hook) {
        cr_assert_eq(refused_seen, 1);
        cr_assert_eq(c.errors, 0, "%s", ct_err_name(c.first_error));
        cr_assert_eq(c.mismatched, 0);
    } else {
        for (i = 1; i < 3; i++) {
            cr_assert_eq(c.reqs[i].op.status, CT_ERECVBROKEN);
            cr_assert_eq(c.reqs[i].op.cause, UV_EOF, "a graceful end, not a reset");
        }
    }
    h_turns(3);
    cr_assert_eq(c.done, 3, "each op completed exactly once");
    close_conn(&c);
    stop_listening();
    h_close_service(&grower.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, oversize_response_ends_the_connection_gracefully) {
    oversize_response(0);
}
Test(net, oversize_response_is_replaced_by_on_error) {
    oversize_response(1);
}

/* ---- output back-pressure ---------------------------------------------------- */

static void silent_accept(uv_stream_t *server, int status) {
    cr_assert_eq(status, 0);
    uv_tcp_init(server->loop, &bad.conn);
    cr_assert_eq(uv_accept(server, (uv_stream_t *)&bad.conn), 0); /* and never reads */
}

Test(net, a_peer_that_does_not_read_meets_the_high_watermark) {
    enum { BIG = 16384, HIGH = 65536 };
    static ct_connector_t connector;
    static ct_stream_t stream;
    int sent = 0, r;
    net_setup();
    start_bad_peer(BAD_OVERSIZE);
    uv_close((uv_handle_t *)&bad.server, NULL); /* replace its accept callback */
    h_turns(2);
    {
        struct sockaddr_in a;
        struct sockaddr_storage got;
        int len = sizeof got;
        uv_ip4_addr("127.0.0.1", 0, &a);
        cr_assert_eq(uv_tcp_init(&H.uv, &bad.server), 0);
        cr_assert_eq(uv_tcp_bind(&bad.server, (const struct sockaddr *)&a, 0), 0);
        cr_assert_eq(uv_listen((uv_stream_t *)&bad.server, 8, silent_accept), 0);
        uv_tcp_getsockname(&bad.server, (struct sockaddr *)&got, &len);
        snprintf(bound, sizeof bound, "tcp://127.0.0.1:%d",
                 ntohs(((struct sockaddr_in *)&got)->sin_port));
    }
    ct_buf_pool_init(&pool, BIG, 64);
    stream_cfg.high_water = HIGH;
    cr_assert_eq(ct_connector_init(&connector, &H.ct, bound, &stream_cfg), 0);
    cr_assert_eq(ct_connector_connect(&connector, &stream, NULL), CT_EINVAL,
                 "a connect without a callback is refused");
    connected_flag = 0;
    cr_assert_eq(ct_connector_connect(&connector, &stream, on_connected_flag), 0);
    H_RUN_UNTIL(connected_flag != 0);
    cr_assert_eq(connected_flag, 1);
    H_RUN_UNTIL(bad.conn.type == UV_TCP); /* the silent peer has accepted */
    /* Send until the transport says PENDING; the kernel's buffers fill first,
     * then ours up to the high watermark, and not beyond. */
    for (;;) {
        ct_buf_t *b;
        r = ct_transport_send_ready(&stream.transport, NULL);
        if (r == CT_PENDING) break;
        cr_assert_eq(r, CT_READY);
        b = ct_buf_pool_get(&pool, BIG);
        memset(b->base, 'x', BIG);
        b->len = BIG;
        cr_assert_eq(ct_transport_send(&stream.transport, b), 0);
        sent++;
        h_turns(1);
        cr_assert_lt(sent, 100000, "never pushed back");
    }
    cr_assert_leq(stream.wlen + stream.wbusy_len, HIGH + BIG + 4,
                  "buffered output stays near the high watermark");
    cr_assert_gt(sent, HIGH / BIG, "the watermark, not the kernel alone, pushed back");
    ct_transport_close(&stream.transport, NULL);
    uv_close((uv_handle_t *)&bad.server, NULL);
    uv_close((uv_handle_t *)&bad.conn, NULL);
    h_run();
    ct_buf_pool_destroy(&pool);
}

/* ---- raw clients against a real listener --------------------------------- */

typedef struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t writes[512];
    int nwrites;
    char in[1 << 16];
    size_t in_len;
    int eof;
    int closed;
} raw_t;

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    raw_t *r = h->data;
    (void)n;
    *b = uv_buf_init(r->in + r->in_len, (unsigned)(sizeof r->in - r->in_len));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    raw_t *r = s->data;
    (void)b;
    if (n > 0) r->in_len += (size_t)n;
    if (n < 0) r->eof = (int)n;
}

static void raw_connected(uv_connect_t *req, int status) {
    raw_t *r = req->data;
    cr_assert_eq(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

static void raw_open(raw_t *r) {
    ct_address_t a;
    memset(r, 0, sizeof *r);
    cr_assert_eq(ct_address_parse(bound, &a), 0);
    uv_tcp_init(&H.uv, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    uv_tcp_nodelay(&r->tcp, 1);
    cr_assert_eq(uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&a.sa, raw_connected), 0);
}

static void raw_write(raw_t *r, const void *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    cr_assert_lt(r->nwrites, 512);
    cr_assert_eq(uv_write(&r->writes[r->nwrites++], (uv_stream_t *)&r->tcp, &b, 1, NULL), 0);
}

static void raw_closed(uv_handle_t *h) {
    ((raw_t *)h->data)->closed = 1;
}

/* Frames echoed back, decoded with the same codec. */
static int decode_all(const char *data, size_t len, int *frames) {
    ct_length_codec_t c;
    ct_frame_t f;
    size_t at = 0;
    int r;
    ct_length_codec_init(&c, NULL);
    *frames = 0;
    while ((r = ct_codec_decode(&c.codec, (const uint8_t *)data + at, len - at, &f)) ==
           CT_CODEC_FRAME) {
        uint32_t n;
        memcpy(&n, data + at + f.payload_offset, 4);
        if (f.payload_len != 8 || n != (uint32_t)*frames) return -1;
        at += f.frame_len;
        (*frames)++;
    }
    return r < 0 ? r : 0;
}

static size_t frame(char *out, uint32_t n) {
    out[0] = out[1] = out[2] = 0;
    out[3] = 8;
    memcpy(out + 4, &n, 4);
    memset(out + 8, 'x', 4);
    return 12;
}

Test(net, frames_split_at_every_byte_boundary_and_many_in_one_read) {
    static raw_t r;
    static char stream[12 * 1000];
    size_t len = 0, at = 0, chunk = 1;
    int i, frames = 0;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    for (i = 0; i < 1000; i++)
        len += frame(stream + len, (uint32_t)i);
    raw_open(&r);
    h_turns(5);
    /* The first 24 frames go out in pieces of 1, 2, ... 12 bytes, each piece
     * a write of its own with loop turns between: every byte boundary of a
     * frame is a read boundary at least once. */
    while (at < 12 * 24) {
        size_t n = chunk < 12 * 24 - at ? chunk : 12 * 24 - at;
        raw_write(&r, stream + at, n);
        at += n;
        chunk = chunk % 12 + 1;
        h_turns(2);
    }
    raw_write(&r, stream + at, len - at); /* the other 976 frames in one write */
    H_RUN_UNTIL(r.in_len >= len || r.eof);
    cr_assert_eq(decode_all(r.in, r.in_len, &frames), 0);
    cr_assert_eq(frames, 1000);
    r.tcp.data = &r;
    uv_close((uv_handle_t *)&r.tcp, raw_closed);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, a_bad_client_is_dropped_and_the_others_are_served) {
    static raw_t bad_client;
    static conn_t good;
    static const char oversize[] = {0x7f, 0, 0, 0};
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    connect_to(&good, bound, 0, 4, 1000);
    raw_open(&bad_client);
    h_turns(5);
    raw_write(&bad_client, oversize, sizeof oversize);
    H_RUN_UNTIL(bad_client.eof && good.done >= good.total);
    cr_assert(bad_client.eof == UV_EOF || bad_client.eof == UV_ECONNRESET,
              "the server closed the bad connection (%s)", ct_err_name(bad_client.eof));
    cr_assert_eq(good.errors, 0);
    cr_assert_eq(good.mismatched, 0);
    cr_assert_eq(ct_listener_connections(&listener), 1, "only the good connection is left");
    uv_close((uv_handle_t *)&bad_client.tcp, raw_closed);
    close_conn(&good);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- connection limit and idle timeout ---------------------------------- */

#ifndef CT_COUNT_ALLOCS /* the hook is in test_net only */
extern volatile int ct_test_failing_accepts;

/* Out of descriptors (EMFILE from accept): libuv frees its reserve
 * descriptor, accepts the waiting connection and closes it at once, so that
 * the client learns and the listener does not spin; it does not tell the
 * listener, which counts nothing. The next connection is served. */
Test(net, a_failed_accept_loses_that_connection_only) {
    static conn_t dropped, served;
    size_t accepted = 0, errors = 0;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    ct_test_failing_accepts = 1;
    connect_to(&dropped, bound, 0, 4, 100);
    H_RUN_UNTIL(dropped.errors == 4);
    cr_assert_eq(dropped.first_error, CT_ERECVBROKEN, "%s", ct_strerror(dropped.first_error));
    cr_assert_eq(ct_test_failing_accepts, 0, "the accept did fail");
    ct_listener_counts(&listener, &accepted, &errors);
    cr_assert_eq(accepted, 0);
    cr_assert_eq(errors, 0, "libuv does not report it");
    connect_to(&served, bound, 0, 4, 100);
    H_RUN_UNTIL(all_done(&served, 1));
    cr_assert_eq(served.errors, 0);
    ct_listener_counts(&listener, &accepted, &errors);
    cr_assert_eq(accepted, 1);
    close_conn(&dropped);
    close_conn(&served);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}
#endif

Test(net, connection_limit_holds_the_next_one_back_until_a_slot_frees) {
    static conn_t first, second;
    net_setup();
    max_connections = 1;
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    connect_to(&first, bound, 0, 1, 10);
    H_RUN_UNTIL(first.done == 10);
    connect_to(&second, bound, 0, 1, 10);
    /* The kernel completes the handshake, but the listener does not accept:
     * the second client's requests wait. */
    H_RUN_UNTIL(second.connected);
    h_turns(20);
    cr_assert_eq(second.done, 0, "served beyond the limit");
    cr_assert_eq(ct_listener_connections(&listener), 1);
    close_conn(&first); /* frees the slot: the waiting connection is accepted */
    H_RUN_UNTIL(second.done == 10);
    cr_assert_eq(second.errors, 0);
    cr_assert_eq(second.mismatched, 0);
    close_conn(&second);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(net, idle_connections_are_closed_busy_ones_are_not) {
    static conn_t idle;
    net_setup();
    idle_timeout_ms = 40;
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    connect_to(&idle, bound, 0, 1, 3);
    H_RUN_UNTIL(idle.done == 3);
    cr_assert_eq(idle.errors, 0);
    cr_assert_eq(ct_service_poll_ready(&idle.client.service, NULL), CT_READY);
    /* Nothing in flight, nothing read: after the timeout the server shuts
     * the connection down gracefully and the client sees the peer close. */
    H_RUN_UNTIL(ct_listener_connections(&listener) == 0);
    H_RUN_UNTIL(ct_client_cause(&idle.client) != 0);
    cr_assert_eq(ct_service_poll_ready(&idle.client.service, NULL), CT_ERECVBROKEN);
    cr_assert_eq(ct_client_cause(&idle.client), UV_EOF);
    close_conn(&idle);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

/* ---- graceful shutdown ----------------------------------------------------- */

Test(net, listener_shutdown_answers_requests_in_flight) {
    static conn_t c;
    held_svc_t held;
    net_setup();
    held_init(&held, 0);
    held.free_req = ct_buf_pool_free_msg;
    held.free_ctx = &pool;
    listen_on("tcp://127.0.0.1:0", &held.service, 0);
    connect_to(&c, bound, 0, 5, 5);
    H_RUN_UNTIL(held.n >= 5);
    cr_assert_eq(ct_listener_shutdown(&listener, 10000, on_listener_closed), 0);
    h_turns(3);
    cr_assert_eq(c.done, 0, "nothing is dropped while the service works");
    held_complete_all(&held);
    H_RUN_UNTIL(listener_closed);
    H_RUN_UNTIL(c.done >= 5);
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.mismatched, 0);
    h_turns(3);
    cr_assert_eq(ct_service_poll_ready(&c.client.service, NULL), CT_ERECVBROKEN);
    cr_assert_eq(ct_client_cause(&c.client), UV_EOF, "then the server closed");
    close_conn(&c);
    h_close_service(&held.service);
    held_free(&held);
    ct_buf_pool_destroy(&pool);
}

Test(net, listener_deadline_aborts_what_is_left) {
    static conn_t c;
    held_svc_t held;
    net_setup();
    held_init(&held, 0);
    held.free_req = ct_buf_pool_free_msg;
    held.free_ctx = &pool;
    listen_on("tcp://127.0.0.1:0", &held.service, 0);
    connect_to(&c, bound, 0, 2, 2);
    H_RUN_UNTIL(held.n >= 2);
    cr_assert_eq(ct_listener_shutdown(&listener, 20, on_listener_closed), 0);
    cr_assert_eq(ct_listener_shutdown(&listener, 20, on_listener_closed), CT_ECLOSING);
    H_RUN_UNTIL(listener_closed && c.done >= 2);
    cr_assert_eq(held.cancels, 2, "the deadline canceled the requests in the service");
    cr_assert_eq(c.errors, 2);
    cr_assert_eq(c.first_error, CT_ERECVBROKEN);
    close_conn(&c);
    h_close_service(&held.service);
    held_free(&held);
    ct_buf_pool_destroy(&pool);
}

#ifdef CT_COUNT_ALLOCS
/* ---- no allocation per request in steady state --------------------------- */

extern volatile long ct_test_allocs;
extern volatile int ct_test_counting;
extern volatile int ct_test_failing_callocs;

TestSuite(alloc, .init = h_setup, .fini = h_teardown);

static void steady_state(const char *address, int multiplex) {
    enum { WARMUP = 10000, MEASURED = 10000 };
    static conn_t c;
    long allocs;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on(address, &echo.service, multiplex);
    connect_to(&c, bound, multiplex, 16, WARMUP + MEASURED);
    H_RUN_UNTIL(c.done >= WARMUP);
    ct_test_allocs = 0;
    ct_test_counting = 1;
    H_RUN_UNTIL(c.done >= WARMUP + MEASURED);
    ct_test_counting = 0;
    allocs = ct_test_allocs;
    cr_assert_eq(c.errors, 0);
    cr_assert_eq(c.mismatched, 0);
    cr_assert_eq(allocs, 0, "%ld allocations for %d requests after warm-up", allocs, MEASURED);
    close_conn(&c);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}

Test(alloc, the_hook_counts) {
    void *volatile p; /* volatile: the compiler may not elide the pair */
    ct_test_allocs = 0;
    ct_test_counting = 1;
    p = malloc(16);
    ct_test_counting = 0;
    free(p);
    cr_assert_eq(ct_test_allocs, 1, "the counting hook must see malloc");
}

Test(alloc, pipeline_over_tcp_allocates_nothing_per_request) {
    steady_state("tcp://127.0.0.1:0", 0);
}

Test(alloc, multiplex_over_tcp_allocates_nothing_per_request) {
    steady_state("tcp://127.0.0.1:0", 1);
}

/* No memory for an accepted connection: it waits in the backlog, and is
 * served once another connection closes (the listener did not stall). */
Test(alloc, a_connection_the_listener_had_no_memory_for_is_served_later) {
    static conn_t first, second;
    size_t accepted = 0, errors = 0;
    net_setup();
    ct_echo_service_init(&echo, &H.ct);
    listen_on("tcp://127.0.0.1:0", &echo.service, 0);
    connect_to(&first, bound, 0, 4, 100);
    H_RUN_UNTIL(all_done(&first, 1));
    connect_to(&second, bound, 0, 4, 100);
    ct_test_failing_callocs = 1; /* the listener's, for the second connection */
    H_RUN_UNTIL((ct_listener_counts(&listener, &accepted, &errors), errors == 1));
    cr_assert_eq(ct_test_failing_callocs, 0);
    cr_assert_eq(accepted, 1);
    h_turns(10);
    cr_assert_eq(second.done, 0, "not served yet");
    close_conn(&first); /* memory comes back, and the listener tries again */
    H_RUN_UNTIL(all_done(&second, 1));
    cr_assert_eq(second.errors, 0);
    ct_listener_counts(&listener, &accepted, &errors);
    cr_assert_eq(accepted, 2);
    close_conn(&second);
    stop_listening();
    h_close_service(&echo.service);
    ct_buf_pool_destroy(&pool);
}
#endif

/* A pool keeps what it is given back, up to max_free; trim gives back what
 * is beyond a number, and the pool still works. */
Test(net, a_buffer_pool_trims_to_what_it_is_told) {
    ct_buf_pool_t small;
    ct_buf_t *bufs[10];
    int i;
    ct_buf_pool_init(&small, 128, 16);
    for (i = 0; i < 10; i++)
        cr_assert_not_null(bufs[i] = ct_buf_pool_get(&small, 100));
    for (i = 0; i < 10; i++)
        ct_buf_pool_put(&small, bufs[i]);
    cr_assert_eq(small.nfree, 10);
    ct_buf_pool_trim(&small, 4);
    cr_assert_eq(small.nfree, 4);
    ct_buf_pool_trim(&small, 8);
    cr_assert_eq(small.nfree, 4, "trim never adds");
    cr_assert_not_null(bufs[0] = ct_buf_pool_get(&small, 128));
    cr_assert_eq(small.nfree, 3);
    ct_buf_pool_put(&small, bufs[0]);
    ct_buf_pool_destroy(&small);
    cr_assert_eq(small.nfree, 0);
}
