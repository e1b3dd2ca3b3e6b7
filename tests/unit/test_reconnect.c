/* The reconnecting client over real sockets: calls that wait for the first
 * connection, a connection that breaks (in flight and idle), connects that
 * fail and the pause after them, cancel, shutdown and close at each stage. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

TestSuite(reconnect, .init = h_setup, .fini = h_teardown);

enum { PAYLOAD = 16, NCALLS = 200 };

static ct_buf_pool_t pool;
static ct_length_codec_t codec;
static ct_stream_config_t stream_cfg;
static ct_service_fn_t echo;
static held_svc_t held;
static ct_listener_t listener;
static int listener_closed, listening, rc_inited, rc_closed, rc_drained, drain_status;
static char addr[64];                    /* the test server's address */
static char dead_dir[32], dead_path[48]; /* dead_address()'s */
static int ncompleted;
static long requests_freed;
static ct_reconnect_t rc;
static ct_service_t *calls_to; /* &rc.service, or a layer over it */

static void on_listener_closed(ct_listener_t *l) {
    (void)l;
    listener_closed = 1;
    listening = 0;
}

static void setup(void) {
    ct_buf_pool_init(&pool, PAYLOAD, 4096);
    cr_assert_eq(ct_length_codec_init(&codec, NULL), 0);
    memset(&stream_cfg, 0, sizeof stream_cfg);
    stream_cfg.codec = &codec.codec;
    stream_cfg.pool = &pool;
    listener_closed = listening = rc_inited = rc_closed = rc_drained = 0;
    drain_status = 1;
    requests_freed = 0;
    ncompleted = 0;
    ct_echo_service_init(&echo, &H.ct);
    held_init(&held, 0); /* a server that answers when the test says */
    held.free_req = ct_buf_pool_free_msg;
    held.free_ctx = &pool;
}

/* Listens on address with service (pipeline or multiplex servers). */
static void listen_on(const char *address, ct_service_t *service, int multiplex, uint64_t idle_ms) {
    ct_listener_config_t cfg;
    if (dead_path[0] && strstr(address, dead_path)) unlink(dead_path); /* (dead_address) */
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = stream_cfg;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &pool;
    cfg.multiplex = multiplex;
    cfg.idle_timeout_ms = idle_ms;
    listener_closed = 0;
    cr_assert_eq(ct_listener_init(&listener, &H.ct, address, service, &cfg), 0);
    listening = 1;
}

static void stop_listening(uint64_t deadline_ms) {
    cr_assert_eq(ct_listener_shutdown(&listener, deadline_ms, on_listener_closed), 0);
    H_RUN_UNTIL(listener_closed);
}

static int listener_port(void) {
    ct_address_t a;
    cr_assert_eq(ct_listener_address(&listener, &a), 0);
    return ntohs(((struct sockaddr_in *)&a.sa)->sin_port);
}

static void address_for(int port, char *out, size_t n) {
    snprintf(out, n, "tcp://127.0.0.1:%d", port);
}

/* An address nothing listens on, and nothing else can: a Unix socket file
 * whose socket is closed, in a directory of the test's own (a TCP port that
 * was free a moment ago could be taken by a test running beside this one).
 * A connect to it is refused (UV_ECONNREFUSED), as to a closed TCP port.
 * listen_on() may use the address afterwards: it removes the file first. */
static void dead_address(char *out, size_t n) {
    struct sockaddr_un sa;
    int fd;
    snprintf(dead_dir, sizeof dead_dir, "/tmp/ctower-reconnect-XXXXXX");
    cr_assert_not_null(mkdtemp(dead_dir));
    snprintf(dead_path, sizeof dead_path, "%s/dead.sock", dead_dir);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", dead_path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd); /* the file stays, with nothing behind it */
    snprintf(out, n, "unix://%s", dead_path);
}

static void count_free(void *msg, void *ctx) {
    requests_freed++;
    ct_buf_pool_free_msg(msg, ctx);
}

static void init_rc_with(const ct_reconnect_config_t *cfg) {
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, addr, &stream_cfg, cfg), 0);
    rc_inited = 1;
    calls_to = &rc.service;
}

/* rc for address (copied to addr), with pauses of backoff_ms. */
static void init_rc(const char *address, int multiplex, uint64_t backoff_ms) {
    ct_reconnect_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.multiplex = multiplex;
    cfg.max_in_flight = NCALLS;
    cfg.free_msg = count_free;
    cfg.free_ctx = &pool;
    cfg.backoff_min_ms = cfg.backoff_max_ms = backoff_ms;
    if (address != addr) snprintf(addr, sizeof addr, "%s", address);
    init_rc_with(&cfg);
}

static void on_rc_closed(ct_service_t *svc) {
    (void)svc;
    rc_closed = 1;
}

static void close_rc(void) {
    cr_assert_eq(ct_service_close(&rc.service, on_rc_closed), 0);
    H_RUN_UNTIL(rc_closed);
}

/* A test server with service on a free port, whose address goes in addr. */
static void serve(ct_service_t *service, int multiplex, uint64_t idle_ms) {
    listen_on("tcp://127.0.0.1:0", service, multiplex, idle_ms);
    address_for(listener_port(), addr, sizeof addr);
}

/* serve(), and rc for that server (100 ms pauses). */
static void start(ct_service_t *service, int multiplex) {
    setup();
    serve(service, multiplex, 0);
    init_rc(addr, multiplex, 100);
}

/* Closes whatever the test left open. */
static void finish(void) {
    if (rc_inited && !rc_closed) close_rc();
    if (listening) stop_listening(1000);
    if (dead_dir[0]) { /* (dead_address) */
        unlink(dead_path);
        rmdir(dead_dir);
        dead_dir[0] = dead_path[0] = 0;
    }
    h_close_service(&held.service);
    held_free(&held);
    h_close_service(&echo.service);
}

/* ---- calls ------------------------------------------------------------------ */

typedef struct call {
    ct_op_t op;
    int calls, status, cause;
    uint64_t id, answer;
} call_t;

static call_t calls[NCALLS];

/* Requests carry their id after a 4-byte tag field (multiplex). */
static ct_buf_t *request(uint64_t id) {
    ct_buf_t *b = ct_buf_pool_get(&pool, PAYLOAD);
    cr_assert_not_null(b);
    b->len = PAYLOAD;
    memset(b->base, 0, PAYLOAD);
    memcpy(b->base + 8, &id, sizeof id);
    return b;
}

static void on_done(ct_op_t *op, int status, void *response) {
    call_t *c = CT_CONTAINER_OF(op, call_t, op);
    cr_assert_eq(H.nested, 0, "a callback ran inside the call that caused it");
    c->calls++;
    c->status = status;
    c->cause = op->cause;
    ncompleted++;
    if (response) {
        ct_buf_t *b = response;
        cr_assert_eq(b->len, PAYLOAD);
        memcpy(&c->answer, b->base + 8, sizeof c->answer);
        ct_buf_pool_put(&pool, b);
    } else {
        cr_assert_neq(status, 0, "a success without a response");
    }
}

static void start_call(int i) {
    call_t *c = &calls[i];
    memset(c, 0, sizeof *c);
    ct_op_init(&c->op, on_done);
    c->id = 1000 + (uint64_t)i;
    cr_assert_eq(h_call(calls_to, request(c->id), &c->op), 0);
}

/* Starts calls [from, to) and runs the loop until they complete. */
static void call_range(int from, int to) {
    int i, want = ncompleted + (to - from);
    for (i = from; i < to; i++)
        start_call(i);
    H_RUN_UNTIL(ncompleted == want);
}

static void assert_answered(int from, int to) {
    int i;
    for (i = from; i < to; i++) {
        cr_assert_eq(calls[i].calls, 1, "call %d completed %d times", i, calls[i].calls);
        cr_assert_eq(calls[i].status, 0, "call %d: %s", i, ct_strerror(calls[i].status));
        cr_assert_eq(calls[i].answer, calls[i].id, "call %d got another request's answer", i);
    }
}

static void assert_failed(int from, int to, int status, int cause) {
    int i;
    for (i = from; i < to; i++) {
        cr_assert_eq(calls[i].calls, 1, "call %d completed %d times", i, calls[i].calls);
        cr_assert_eq(calls[i].status, status, "call %d: %s, not %s", i,
                     ct_strerror(calls[i].status), ct_strerror(status));
        if (cause) cr_assert_eq(calls[i].cause, cause, "call %d's cause", i);
    }
}

/* A retry layer's config for pooled requests: pauses of 5-10 ms. */
static ct_retry_config_t retry_config(void) {
    ct_retry_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.copy = ct_buf_pool_copy_msg;
    cfg.copy_ctx = &pool;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    cfg.backoff_min_ms = 5;
    cfg.backoff_max_ms = 10;
    return cfg;
}

/* ---- tests ------------------------------------------------------------------ */

/* The retry layer over a reconnecting client: calls made while the server
 * is down fail with CT_ECONNECT, are tried again, and are answered once it
 * is back on its port. */
Test(reconnect, through_a_retry_layer_calls_outlive_a_server_that_is_down) {
    ct_retry_t retry;
    ct_retry_config_t cfg = retry_config();
    int i;
    setup();
    dead_address(addr, sizeof addr);
    init_rc(addr, 0, 5);
    cfg.max_attempts = 1000;
    cfg.budget_min_per_s = 1000;
    cr_assert_eq(ct_retry_init(&retry, &H.ct, &rc.service, &cfg), 0);
    calls_to = &retry.service;
    for (i = 0; i < 10; i++)
        start_call(i);
    H_RUN_UNTIL(ct_reconnect_counts(&rc).connect_failures >= 3);
    cr_assert_eq(ncompleted, 0, "every call waits for its next attempt");
    listen_on(addr, &echo.service, 0, 0);
    H_RUN_UNTIL(ncompleted == 10);
    assert_answered(0, 10);
    cr_assert_geq(ct_retry_counts(&retry).retries, 10);
    cr_assert_eq(ct_retry_counts(&retry).budget_refusals, 0);
    cr_assert_eq(ct_service_close(&retry.service, on_rc_closed), 0); /* closes rc too */
    H_RUN_UNTIL(rc_closed);
    finish();
}

/* A server restarted 300 ms after it went away, under a client stack with
 * the default settings (retry -> timeout -> reconnect), whose calls carry a
 * deadline (2 s) and may run twice (CT_RETRY_IDEMPOTENT: the calls in flight
 * when the server went are tried again). Calls keep coming the whole time,
 * 16 at once: none fails. Those made while the server is away wait for the
 * connection through the failed connects and their pauses, as their
 * deadline allows, instead of failing at the first refused connect. */
static int restart_failures, restart_stop, restart_live;
static uint64_t restart_done;
static ct_service_t *restart_top;

typedef struct restart_call {
    ct_op_t op;
    ct_context_t ctx;
} restart_call_t;

static void restart_issue(restart_call_t *c) {
    ct_context_init(&c->ctx);
    ct_context_set_timeout(&c->ctx, uv_now(&H.uv), 2000);
    c->op.ctx = &c->ctx;
    restart_live++;
    cr_assert_eq(h_call(restart_top, request(7), &c->op), 0);
}

static void on_restart_call(ct_op_t *op, int status, void *response) {
    restart_live--;
    if (status != 0) restart_failures++;
    if (status == 0) restart_done++;
    if (response) ct_buf_pool_put(&pool, response);
    if (!restart_stop) restart_issue(CT_CONTAINER_OF(op, restart_call_t, op));
}

static void run_for_ms(uint64_t ms) {
    uint64_t until;
    uv_update_time(&H.uv);
    until = uv_now(&H.uv) + ms;
    H_RUN_UNTIL(uv_now(&H.uv) >= until);
}

Test(reconnect, default_settings_outlive_a_300_ms_restart_with_deadlines) {
    static restart_call_t cs[16];
    ct_reconnect_config_t cfg;
    ct_timeout_config_t tcfg = {0};
    ct_retry_config_t rcfg;
    ct_timeout_t timeout;
    ct_retry_t retry;
    uint64_t before;
    int i;
    setup();
    dead_address(addr, sizeof addr);
    listen_on(addr, &echo.service, 0, 0);
    memset(&cfg, 0, sizeof cfg); /* the defaults */
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &pool;
    init_rc_with(&cfg);
    tcfg.timeout_ms = 1000;
    tcfg.free_msg = ct_buf_pool_free_msg;
    tcfg.free_ctx = &pool;
    cr_assert_eq(ct_timeout_init(&timeout, &H.ct, &rc.service, &tcfg), 0);
    memset(&rcfg, 0, sizeof rcfg); /* the defaults, and requests that may run twice */
    rcfg.copy = ct_buf_pool_copy_msg;
    rcfg.copy_ctx = &pool;
    rcfg.free_msg = ct_buf_pool_free_msg;
    rcfg.free_ctx = &pool;
    rcfg.retry_on = CT_RETRY_IDEMPOTENT;
    cr_assert_eq(ct_retry_init(&retry, &H.ct, &timeout.service, &rcfg), 0);
    restart_top = &retry.service;
    restart_failures = restart_stop = restart_live = 0;
    restart_done = 0;
    for (i = 0; i < 16; i++) {
        ct_op_init(&cs[i].op, on_restart_call);
        restart_issue(&cs[i]);
    }
    run_for_ms(100);
    cr_assert_gt(restart_done, 100, "the calls did not flow before the restart");
    stop_listening(1); /* the server goes, its connections with it */
    before = restart_done;
    run_for_ms(300);
    cr_assert_lt(restart_done - before, 50, "answered while the server was away");
    listen_on(addr, &echo.service, 0, 0);
    run_for_ms(1000);
    restart_stop = 1;
    H_RUN_UNTIL(restart_live == 0);
    cr_assert_eq(restart_failures, 0, "%d calls failed across the restart (%llu answered)",
                 restart_failures, (unsigned long long)restart_done);
    cr_assert_gt(restart_done, before + 100, "the calls did not flow after the restart");
    cr_assert_geq(ct_reconnect_counts(&rc).connect_failures, 1, "the restart was not seen");
    cr_assert_eq(ct_service_close(&retry.service, on_rc_closed), 0); /* closes the rest */
    H_RUN_UNTIL(rc_closed);
    finish();
}

/* A balancer over two reconnecting clients, one of whose servers is down,
 * under a retry layer: the calls that went to the dead one fail to connect,
 * are tried again on the live one, and that one takes the calls after. (The
 * dead server is a Unix socket path that does not exist: a free TCP port
 * could be taken by another test running beside this one.) */
Test(reconnect, through_a_balancer_calls_avoid_a_server_that_is_down) {
    static ct_reconnect_t down;
    ct_reconnect_config_t down_cfg;
    ct_balance_t balance;
    ct_balance_config_t bcfg;
    ct_balance_endpoint_stats_t up_stats, down_stats;
    ct_retry_t retry;
    ct_retry_config_t rcfg = retry_config();
    ct_service_t *endpoints[2];
    char down_addr[64];
    uint64_t down_calls;
    setup();
    snprintf(down_addr, sizeof down_addr, "unix:///nonexistent-ctower-test-dir/down.sock");
    serve(&echo.service, 0, 0);
    init_rc(addr, 0, 5);
    memset(&down_cfg, 0, sizeof down_cfg);
    down_cfg.free_msg = ct_buf_pool_free_msg;
    down_cfg.free_ctx = &pool;
    down_cfg.backoff_min_ms = down_cfg.backoff_max_ms = 5;
    cr_assert_eq(ct_reconnect_init(&down, &H.ct, down_addr, &stream_cfg, &down_cfg), 0);
    endpoints[0] = &rc.service;
    endpoints[1] = &down.service;
    memset(&bcfg, 0, sizeof bcfg);
    bcfg.endpoints = endpoints;
    bcfg.n_endpoints = 2;
    bcfg.free_msg = ct_buf_pool_free_msg;
    bcfg.free_ctx = &pool;
    bcfg.pause_min_ms = bcfg.pause_max_ms = 60000;
    cr_assert_eq(ct_balance_init(&balance, &H.ct, &bcfg), 0);
    rcfg.budget_min_per_s = 1000;
    cr_assert_eq(ct_retry_init(&retry, &H.ct, &balance.service, &rcfg), 0);
    calls_to = &retry.service;

    call_range(0, 100); /* made at once: the two endpoints share them */
    assert_answered(0, 100);
    cr_assert_eq(ct_balance_endpoint_stats(&balance, 1, &down_stats), 0);
    cr_assert_gt(down_stats.calls, 0, "the balancer never tried the server that is down");
    cr_assert_eq(down_stats.failures, down_stats.calls);
    cr_assert(down_stats.left_out);
    cr_assert_eq(ct_retry_counts(&retry).retries, down_stats.calls);

    down_calls = down_stats.calls;
    call_range(100, 200);
    assert_answered(100, 200);
    cr_assert_eq(ct_balance_endpoint_stats(&balance, 1, &down_stats), 0);
    cr_assert_eq(down_stats.calls, down_calls, "a left-out endpoint was given calls");
    cr_assert_eq(ct_balance_endpoint_stats(&balance, 0, &up_stats), 0);
    cr_assert_eq(up_stats.calls, 200);
    cr_assert_eq(up_stats.failures, 0);

    cr_assert_eq(ct_service_close(&retry.service, on_rc_closed), 0); /* closes all */
    H_RUN_UNTIL(rc_closed);
    finish();
}

static void calls_wait_for_the_first_connection(int multiplex) {
    start(&echo.service, multiplex);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 0, "connected before it was used");
    call_range(0, NCALLS); /* all made before the connect can have ended */
    assert_answered(0, NCALLS);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 1);
    cr_assert_eq(ct_reconnect_last_error(&rc), 0);
    finish();
}

Test(reconnect, calls_made_before_the_connection_is_up_wait_for_it_pipeline) {
    calls_wait_for_the_first_connection(0);
}

Test(reconnect, calls_made_before_the_connection_is_up_wait_for_it_multiplex) {
    calls_wait_for_the_first_connection(1);
}

/* The server goes away with requests in flight: they fail (they may have
 * reached it), and once it is back the next calls reconnect. */
static void a_broken_connection(int multiplex) {
    setup();
    serve(&held.service, multiplex, 0);
    init_rc(addr, multiplex, 20);
    for (int i = 0; i < 10; i++)
        start_call(i);
    H_RUN_UNTIL(held.n == 10);
    held_complete_all(&held);
    H_RUN_UNTIL(ncompleted == 10);
    assert_answered(0, 10);

    for (int i = 10; i < 20; i++)
        start_call(i);
    H_RUN_UNTIL(held.n == 10);
    stop_listening(10); /* the deadline passes: the connection is closed */
    H_RUN_UNTIL(ncompleted == 20);
    for (int i = 10; i < 20; i++) {
        cr_assert_eq(calls[i].calls, 1);
        cr_assert(calls[i].status == CT_ERECVBROKEN || calls[i].status == CT_ESENDBROKEN,
                  "call %d: %s", i, ct_strerror(calls[i].status));
    }
    cr_assert_eq(held.cancels, 10, "the server did not drop the requests it held");

    listen_on(addr, &echo.service, multiplex, 0); /* back, on the same port */
    call_range(20, 30);
    assert_answered(20, 30);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 2);
    finish();
}

Test(reconnect, a_broken_connection_fails_its_ops_and_the_next_call_reconnects_pipeline) {
    a_broken_connection(0);
}

Test(reconnect, a_broken_connection_fails_its_ops_and_the_next_call_reconnects_multiplex) {
    a_broken_connection(1);
}

/* The server closes the idle connection: the call after it is not lost, it
 * goes out on a new connection. */
Test(reconnect, a_connection_the_server_closed_while_idle_is_replaced_without_losing_a_call) {
    setup();
    serve(&echo.service, 0, 30);
    init_rc(addr, 0, 100);
    call_range(0, 5);
    assert_answered(0, 5);
    cr_assert(ct_reconnect_is_up(&rc));
    H_RUN_UNTIL(!ct_reconnect_is_up(&rc)); /* the client has seen the server's close */
    call_range(5, 10);
    assert_answered(5, 10);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 2);
    finish();
}

/* A waker registered while connecting is woken when the connect ends. */
static int woken;
static void on_woken(ct_waker_t *w) {
    (void)w;
    woken++;
}

/* poll_ready finds the connection the server closed and makes a new one. */
Test(reconnect, poll_ready_replaces_a_connection_the_server_closed) {
    ct_waker_t waker;
    setup();
    woken = 0;
    serve(&echo.service, 0, 30);
    init_rc(addr, 0, 100);
    call_range(0, 1);
    H_RUN_UNTIL(!ct_reconnect_is_up(&rc));
    ct_waker_init(&waker, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_PENDING,
                 "ready on a dead connection");
    H_RUN_UNTIL(woken == 1);
    cr_assert(ct_reconnect_is_up(&rc));
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 2);
    call_range(1, 2);
    assert_answered(0, 2);
    ct_waker_cancel(&waker);
    finish();
}

static void on_drained_anyway(ct_service_t *svc, int status) {
    (void)svc;
    rc_drained = 1;
    drain_status = status;
}

/* A connection that broke while idle lost nothing: shutting down reports 0. */
Test(reconnect, shutdown_after_the_idle_connection_broke_reports_success) {
    setup();
    serve(&echo.service, 0, 30);
    init_rc(addr, 0, 100);
    call_range(0, 1);
    H_RUN_UNTIL(!ct_reconnect_is_up(&rc));
    cr_assert_eq(ct_service_shutdown(&rc.service, on_drained_anyway), 0);
    H_RUN_UNTIL(rc_drained);
    cr_assert_eq(drain_status, 0, "%s", ct_strerror(drain_status));
    finish();
}

/* Nothing listens: the calls waiting for the connect fail with its error,
 * calls during the pause fail at once without a new attempt, and after the
 * pause a call connects to the server that came meanwhile. */
Test(reconnect, a_failed_connect_fails_its_calls_then_fails_fast_then_tries_again) {
    setup();
    dead_address(addr, sizeof addr);
    init_rc(addr, 0, 300);
    call_range(0, 3);
    assert_failed(0, 3, CT_ECONNECT, UV_ECONNREFUSED);
    cr_assert_eq(ct_reconnect_last_error(&rc), UV_ECONNREFUSED);
    cr_assert_eq(ct_reconnect_counts(&rc).connect_failures, 1);

    cr_assert_eq(ct_service_poll_ready(&rc.service, NULL), CT_READY, "a pause must fail fast");
    call_range(3, 6);
    assert_failed(3, 6, CT_ECONNECT, UV_ECONNREFUSED);
    cr_assert_eq(ct_reconnect_counts(&rc).connect_failures, 1, "a call in the pause connected");
    cr_assert_eq(requests_freed, 6, "failed requests were not freed");

    listen_on(addr, &echo.service, 0, 0);
    H_RUN_UNTIL(ct_service_poll_ready(&rc.service, NULL) == CT_PENDING); /* the pause is over */
    call_range(6, 9);
    assert_answered(6, 9);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 1);
    cr_assert_eq(ct_reconnect_last_error(&rc), 0);
    finish();
}

/* Each pause lies between half and all of its delay, and the delay doubles
 * with each failure in a row up to the maximum. */
Test(reconnect, the_pause_doubles_with_each_failure_up_to_its_maximum) {
    ct_reconnect_config_t cfg;
    ct_waker_t waker;
    const uint64_t delay_ms[] = {40, 80, 160, 160};
    setup();
    dead_address(addr, sizeof addr);
    memset(&cfg, 0, sizeof cfg);
    cfg.backoff_min_ms = 40;
    cfg.backoff_max_ms = 160;
    init_rc_with(&cfg);
    ct_waker_init(&waker, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_PENDING);
    for (unsigned k = 0; k < 4; k++) {
        uint64_t failed_at, waited_ms;
        woken = 0;
        H_RUN_UNTIL(ct_reconnect_counts(&rc).connect_failures == k + 1);
        H_RUN_UNTIL(woken == 1);
        failed_at = uv_hrtime();
        cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_READY);
        H_RUN_UNTIL(ct_service_poll_ready(&rc.service, &waker) == CT_PENDING);
        waited_ms = (uv_hrtime() - failed_at) / 1000000;
        /* a timer may fire up to 1 ms early against the clock read here */
        cr_assert_geq(waited_ms + 2, delay_ms[k] / 2, "pause %u: %llu ms", k,
                      (unsigned long long)waited_ms);
        cr_assert_leq(waited_ms, delay_ms[k] + 1000, "pause %u: %llu ms", k,
                      (unsigned long long)waited_ms);
    }
    ct_waker_cancel(&waker);
    finish();
}

/* A call canceled before its connection is up never reaches the server. */
Test(reconnect, a_call_canceled_while_waiting_for_the_connection_never_goes_out) {
    start(&held.service, 0);
    start_call(0);
    start_call(1);
    start_call(2);
    ct_op_cancel(&calls[1].op);
    cr_assert_eq(requests_freed, 1, "the canceled request was not freed");
    H_RUN_UNTIL(held.n == 2);
    h_turns(10);
    cr_assert_eq(held.calls, 2, "a canceled request reached the server");
    held_complete_all(&held);
    H_RUN_UNTIL(ncompleted == 3);
    assert_answered(0, 1);
    assert_failed(1, 2, CT_ECANCELED, 0);
    assert_answered(2, 3);
    finish();
}

/* A call canceled after its request left: answered CT_ECANCELED at once, its
 * late answer freed, and the connection stays up for the next call. */
Test(reconnect, a_call_canceled_in_flight_is_answered_once_and_the_connection_stays) {
    start(&held.service, 0);
    start_call(0);
    H_RUN_UNTIL(held.n == 1);
    ct_op_cancel(&calls[0].op);
    H_RUN_UNTIL(ncompleted == 1);
    assert_failed(0, 1, CT_ECANCELED, 0);
    held_complete_all(&held); /* the late answer */
    start_call(1);
    H_RUN_UNTIL(held.n == 1);
    held_complete_all(&held);
    H_RUN_UNTIL(ncompleted == 2);
    assert_answered(1, 2);
    cr_assert_eq(calls[0].calls, 1);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 1);
    finish();
}

/* Close while connecting: the waiting calls fail with CT_ECLOSED before the
 * close callback, and nothing is left open (the teardown checks the loop). */
Test(reconnect, close_while_connecting_fails_the_waiting_calls_first) {
    start(&echo.service, 0);
    start_call(0);
    start_call(1);
    cr_assert_eq(ct_service_close(&rc.service, on_rc_closed), 0);
    H_RUN_UNTIL(rc_closed);
    cr_assert_eq(ncompleted, 2, "the close callback ran before the ops completed");
    assert_failed(0, 2, CT_ECLOSED, 0);
    cr_assert_eq(requests_freed, 2);
    finish();
}

/* Close with requests in flight: they fail first, then the close callback. */
Test(reconnect, close_with_calls_in_flight_fails_them_first) {
    start(&held.service, 0);
    for (int i = 0; i < 4; i++)
        start_call(i);
    H_RUN_UNTIL(held.n == 4);
    cr_assert_eq(ct_service_close(&rc.service, on_rc_closed), 0);
    H_RUN_UNTIL(rc_closed);
    cr_assert_eq(ncompleted, 4, "the close callback ran before the ops completed");
    assert_failed(0, 4, CT_ECLOSED, 0);
    finish();
}

static void on_rc_drained(ct_service_t *svc, int status) {
    (void)svc;
    cr_assert_eq(ncompleted, 5, "drained before every call was answered");
    rc_drained = 1;
    drain_status = status;
}

/* Shutdown with calls waiting for the connection: they go out and are
 * answered, then the drain completes. */
Test(reconnect, shutdown_while_connecting_answers_the_waiting_calls_then_drains) {
    start(&echo.service, 1);
    for (int i = 0; i < 5; i++)
        start_call(i);
    cr_assert_eq(ct_service_shutdown(&rc.service, on_rc_drained), 0);
    H_RUN_UNTIL(rc_drained);
    assert_answered(0, 5);
    cr_assert_eq(drain_status, 0);
    cr_assert_eq(ct_service_call(&rc.service, NULL, &calls[0].op), CT_ESHUTDOWN);
    finish();
}

/* Shutdown while the only connect fails: the waiting calls fail, and the
 * drain reports the failure. */
Test(reconnect, shutdown_whose_connect_fails_reports_it) {
    setup();
    dead_address(addr, sizeof addr);
    init_rc(addr, 0, 100);
    start_call(0);
    cr_assert_eq(ct_service_shutdown(&rc.service, on_drained_anyway), 0);
    H_RUN_UNTIL(rc_drained);
    assert_failed(0, 1, CT_ECONNECT, UV_ECONNREFUSED);
    cr_assert_eq(drain_status, CT_ECONNECT);
    finish();
}

/* A name that does not resolve is a failed connect like any other (the
 * stand-in resolver of net_hooks.c answers for ctower.test names). */
Test(reconnect, a_name_that_does_not_resolve_fails_the_calls_with_the_resolvers_error) {
    setup();
    init_rc("tcp://nowhere.ctower.test:80", 0, 100);
    call_range(0, 2);
    assert_failed(0, 2, CT_ECONNECT, UV_EAI_NONAME);
    finish();
}

/* connect_timeout_ms bounds a connect that gets no answer: the waiting
 * calls fail with CT_ECONNECT and UV_ETIMEDOUT. */
Test(reconnect, a_connect_that_gets_no_answer_times_out) {
    ct_reconnect_config_t cfg;
    int listen_fd, fill_fd;
    uint64_t started;
    setup();
    address_for(h_full_backlog_port(&listen_fd, &fill_fd), addr, sizeof addr);
    memset(&cfg, 0, sizeof cfg);
    cfg.connect_timeout_ms = 200;
    cfg.free_msg = count_free;
    cfg.free_ctx = &pool;
    init_rc_with(&cfg);
    started = uv_hrtime();
    call_range(0, 2);
    assert_failed(0, 2, CT_ECONNECT, UV_ETIMEDOUT);
    cr_assert_geq((uv_hrtime() - started) / 1000000, 190, "it did not wait for the timeout");
    finish();
    close(fill_fd);
    close(listen_fd);
}

Test(reconnect, bad_configurations_are_refused_at_init) {
    ct_reconnect_config_t cfg;
    ct_stream_config_t no_codec;
    setup();
    memset(&cfg, 0, sizeof cfg);
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, "tcp://nowhere", &stream_cfg, &cfg), CT_EBADADDR);
    cfg.get_tag = ct_buf_get_tag; /* without set_tag */
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, "tcp://127.0.0.1:1", &stream_cfg, &cfg), CT_EINVAL);
    memset(&cfg, 0, sizeof cfg);
    cfg.backoff_min_ms = 100;
    cfg.backoff_max_ms = 50;
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, "tcp://127.0.0.1:1", &stream_cfg, &cfg), CT_EINVAL);
    memset(&cfg, 0, sizeof cfg);
    cfg.multiplex = 1;
    cfg.max_in_flight = ((size_t)1 << 24) + 1;
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, "tcp://127.0.0.1:1", &stream_cfg, &cfg), CT_EINVAL);
    no_codec = stream_cfg;
    no_codec.codec = NULL;
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, "tcp://127.0.0.1:1", &no_codec, NULL), CT_EINVAL);
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, NULL, &stream_cfg, NULL), CT_EINVAL);
    finish();
}

/* Readiness: PENDING while connecting (the waker wakes once it is up), and
 * PENDING while max_in_flight calls are under way; a call beyond them without
 * a READY is CT_EOVERLOADED. */
Test(reconnect, readiness_follows_the_connect_and_the_bound) {
    ct_reconnect_config_t cfg;
    ct_waker_t waker;
    setup();
    woken = 0;
    serve(&held.service, 0, 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.max_in_flight = 2;
    cfg.free_msg = count_free;
    cfg.free_ctx = &pool;
    init_rc_with(&cfg);
    ct_waker_init(&waker, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_PENDING, "ready before connecting");
    H_RUN_UNTIL(woken == 1);
    cr_assert(ct_reconnect_is_up(&rc));
    cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_READY);
    start_call(0);
    start_call(1);
    cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_PENDING, "ready beyond the bound");
    start_call(2); /* without a READY */
    H_RUN_UNTIL(ncompleted == 1);
    assert_failed(2, 3, CT_EOVERLOADED, 0);
    cr_assert_eq(requests_freed, 1);
    H_RUN_UNTIL(held.n == 2);
    woken = 0;
    held_complete_all(&held);
    H_RUN_UNTIL(ncompleted == 3 && woken > 0); /* room again: the waker was woken */
    assert_answered(0, 2);
    cr_assert_eq(ct_service_poll_ready(&rc.service, &waker), CT_READY);
    ct_service_release(&rc.service);
    ct_waker_cancel(&waker);
    finish();
}

/* ---- random calls, cancels and server restarts ------------------------------- */

enum { RANDOM_OPS = 64, RANDOM_STEPS = 4000 };

typedef struct rcall {
    ct_op_t op;
    long started, completed;
    uint64_t id;
} rcall_t;

static rcall_t rcalls[RANDOM_OPS];
static long random_answers, random_failures[8];
static int server_up, server_stopping;

static void on_random_done(ct_op_t *op, int status, void *response) {
    rcall_t *c = CT_CONTAINER_OF(op, rcall_t, op);
    static const int allowed[] = {CT_ECANCELED,
                                  CT_ECONNECT,
                                  CT_ERECVBROKEN,
                                  CT_ESENDBROKEN,
                                  CT_ECLOSED,
                                  CT_EOVERLOADED,
                                  0,
                                  0};
    int i;
    cr_assert_eq(H.nested, 0);
    c->completed++;
    cr_assert_eq(c->completed, c->started, "op %ld completed twice", (long)(c - rcalls));
    if (status == 0) {
        ct_buf_t *b = response;
        uint64_t id;
        memcpy(&id, b->base + 8, sizeof id);
        cr_assert_eq(id, c->id, "an op got another request's answer");
        ct_buf_pool_put(&pool, b);
        random_answers++;
        return;
    }
    for (i = 0; i < 6 && allowed[i] != status; i++)
        ;
    cr_assert_lt(i, 6, "unexpected status %s", ct_strerror(status));
    random_failures[i]++;
}

static void on_random_server_stopped(ct_listener_t *l) {
    (void)l;
    server_up = server_stopping = listening = 0;
}

static void random_run(int multiplex, unsigned first_seed) {
    unsigned seed = first_seed;
    uint64_t next_id = 1;
    int step, i;
    setup();
    memset(rcalls, 0, sizeof rcalls);
    memset(random_failures, 0, sizeof random_failures);
    random_answers = 0;
    serve(&echo.service, multiplex, 0);
    server_up = 1;
    server_stopping = 0;
    init_rc(addr, multiplex, 5);
    for (i = 0; i < RANDOM_OPS; i++)
        ct_op_init(&rcalls[i].op, on_random_done);
    for (step = 0; step < RANDOM_STEPS; step++) {
        unsigned dice = (unsigned)rand_r(&seed) % 100;
        rcall_t *c = &rcalls[(unsigned)rand_r(&seed) % RANDOM_OPS];
        if (dice < 50) { /* a call on an idle op */
            if (ct_op_is_pending(&c->op)) continue;
            c->id = next_id++;
            c->started++;
            cr_assert_eq(h_call(&rc.service, request(c->id), &c->op), 0, "call refused");
        } else if (dice < 62) { /* a pending op, if there is one */
            for (i = 0; i < RANDOM_OPS && !ct_op_is_pending(&c->op); i++)
                c = &rcalls[(size_t)(c - rcalls + 1) % RANDOM_OPS];
            ct_op_cancel(&c->op);
        } else if (dice < 64 && server_up && !server_stopping) {
            server_stopping = 1;
            cr_assert_eq(ct_listener_shutdown(&listener, (uint64_t)(rand_r(&seed) % 3),
                                              on_random_server_stopped),
                         0);
        } else if (dice < 68 && !server_up) {
            listen_on(addr, &echo.service, multiplex, 0);
            server_up = 1;
        } else {
            /* now and then some time passes, so that pauses end */
            if (dice >= 96) usleep(1000 + (unsigned)rand_r(&seed) % 2000);
            h_turns(1);
        }
    }
    if (server_stopping) H_RUN_UNTIL(!server_stopping);
    close_rc(); /* every op still under way completes before the callback */
    for (i = 0; i < RANDOM_OPS; i++)
        cr_assert_eq(rcalls[i].completed, rcalls[i].started, "op %d: %ld of %ld completed", i,
                     rcalls[i].completed, rcalls[i].started);
    cr_assert_gt(random_answers, 0, "nothing was answered");
    /* the run went through what it is meant to */
    cr_assert_gt(random_failures[0], 0, "seed %u: nothing was canceled", first_seed);
    cr_assert_gt(ct_reconnect_counts(&rc).connects, 1, "seed %u: never reconnected", first_seed);
    cr_assert_gt(ct_reconnect_counts(&rc).connect_failures, 0, "seed %u", first_seed);
    finish();
    h_run();
    ct_buf_pool_destroy(&pool); /* the next run makes a new one */
}

Test(reconnect, random_calls_cancels_and_server_restarts_complete_every_op_once_pipeline) {
    for (unsigned seed = 1; seed <= 4; seed++)
        random_run(0, seed);
}

Test(reconnect, random_calls_cancels_and_server_restarts_complete_every_op_once_multiplex) {
    for (unsigned seed = 1; seed <= 4; seed++)
        random_run(1, seed);
}

/* Over a Unix socket: a missing socket file is a failed connect (UV_ENOENT),
 * and once the server is there the next call after the pause connects. */
Test(reconnect, over_a_unix_socket_a_missing_file_fails_the_connect_until_the_server_is_there) {
    char path[48];
    setup();
    snprintf(path, sizeof path, "/tmp/ctower-reconnect-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix://%s", path);
    unlink(path);
    init_rc(addr, 1, 20);
    call_range(0, 2);
    assert_failed(0, 2, CT_ECONNECT, UV_ENOENT);
    listen_on(addr, &echo.service, 1, 0);
    H_RUN_UNTIL(ct_service_poll_ready(&rc.service, NULL) == CT_PENDING); /* the pause is over */
    call_range(2, 12);
    assert_answered(2, 12);
    cr_assert_eq(ct_reconnect_counts(&rc).connects, 1);
    finish();
    cr_assert_eq(access(path, F_OK), -1, "the listener left its socket file");
}

#ifdef CT_COUNT_ALLOCS
/* ---- no allocation per request through the layer (test_alloc) ----------------- */

extern volatile long ct_test_allocs;
extern volatile int ct_test_counting;

static long steady_issued, steady_done, steady_errors, steady_total;

/* Each answer goes out again as the next request, as long as there are any. */
static void on_steady(ct_op_t *op, int status, void *response) {
    if (status != 0) {
        steady_errors++;
        return;
    }
    steady_done++;
    if (steady_issued < steady_total) {
        steady_issued++;
        if (op->ctx) /* a fresh deadline, as a caller sets one per call */
            ((ct_context_t *)op->data)->deadline_ms = uv_now(&H.uv) + 60000;
        cr_assert_eq(h_call(calls_to, response, op), 0);
    } else {
        ct_buf_pool_put(&pool, response);
    }
}

/* Tracing hooks that keep their spans in a fixed table, as a user's would
 * hand them to a tracer that owns its memory. */
static long spans_started, spans_ended;
static char span_table[64];

static void *on_span_start(void *ctx, const ct_op_t *op, const void *request) {
    (void)ctx, (void)op, (void)request;
    return &span_table[spans_started++ % sizeof span_table];
}

static void on_span_end(void *ctx, void *span, const ct_op_t *op, int status, int cause,
                        const void *response, uint64_t duration_ns) {
    (void)ctx, (void)op, (void)status, (void)cause, (void)response, (void)duration_ns;
    cr_assert(span != NULL);
    spans_ended++;
}

/* Through rc, or through a retry layer over it (which copies every request,
 * from the pool), with or without a context on every call, with or without
 * an observing layer on top (its metrics registered, its hooks set). */
static void reconnect_steady_state(int multiplex, int with_retry, int with_context,
                                   int with_observe) {
    enum { DEPTH = 16, WARMUP = 10000, MEASURED = 10000 };
    static ct_op_t ops[DEPTH];
    static ct_context_t contexts[DEPTH];
    static ct_retry_t retry;
    static ct_observe_t observe;
    ct_stats_t stats;
    long allocs;
    start(&echo.service, multiplex);
    if (with_retry) {
        ct_retry_config_t cfg = retry_config();
        cr_assert_eq(ct_retry_init(&retry, &H.ct, &rc.service, &cfg), 0);
        calls_to = &retry.service;
    }
    ct_stats_init(&stats);
    if (with_observe) {
        ct_observe_config_t ocfg = {.on_start = on_span_start, .on_end = on_span_end};
        cr_assert_eq(ct_observe_init(&observe, &H.ct, calls_to, &ocfg), 0);
        cr_assert_eq(ct_observe_add_stats(&observe, &stats, "test_client", "side=\"client\""), 0);
        calls_to = &observe.service;
        spans_started = spans_ended = 0;
    }
    steady_issued = steady_done = steady_errors = 0;
    steady_total = WARMUP + MEASURED;
    for (int i = 0; i < DEPTH; i++) {
        ct_op_init(&ops[i], on_steady);
        if (with_context) {
            ct_context_init(&contexts[i]);
            ct_context_set_timeout(&contexts[i], uv_now(&H.uv), 60000);
            contexts[i].trace_id[0] = (uint8_t)(i + 1);
            ops[i].ctx = &contexts[i];
            ops[i].data = &contexts[i];
        }
        steady_issued++;
        cr_assert_eq(h_call(calls_to, request((uint64_t)i), &ops[i]), 0);
    }
    H_RUN_UNTIL(steady_done >= WARMUP);
    ct_test_allocs = 0;
    ct_test_counting = 1;
    H_RUN_UNTIL(steady_done >= WARMUP + MEASURED - DEPTH);
    ct_test_counting = 0;
    allocs = ct_test_allocs;
    H_RUN_UNTIL(steady_done + steady_errors == steady_total);
    cr_assert_eq(steady_errors, 0);
    cr_assert_eq(allocs, 0, "%ld allocations for %d requests after warm-up", allocs, MEASURED);
    if (with_observe) {
        cr_assert_eq(spans_started, steady_total);
        cr_assert_eq(spans_ended, steady_total);
        cr_assert_eq(ct_counter_read(&observe.metrics.responses), (uint64_t)steady_total);
        cr_assert_eq(observe.metrics.latency.count, (uint64_t)steady_total);
        cr_assert_eq(ct_service_close(&observe.service, on_rc_closed), 0); /* closes the rest */
        H_RUN_UNTIL(rc_closed);
    } else if (with_retry) {
        cr_assert_eq(ct_service_close(&retry.service, on_rc_closed), 0); /* closes rc too */
        H_RUN_UNTIL(rc_closed);
    }
    ct_stats_free(&stats);
    finish();
    h_run();
    ct_buf_pool_destroy(&pool);
}

Test(alloc, pipeline_through_the_reconnecting_client_allocates_nothing_per_request) {
    reconnect_steady_state(0, 0, 0, 0);
}

Test(alloc, multiplex_through_the_reconnecting_client_allocates_nothing_per_request) {
    reconnect_steady_state(1, 0, 0, 0);
}

Test(alloc, through_a_retry_layer_over_the_reconnecting_client_allocates_nothing_per_request) {
    reconnect_steady_state(0, 1, 0, 0);
}

Test(alloc, with_a_context_on_every_call_allocates_nothing_per_request) {
    reconnect_steady_state(1, 1, 1, 0);
}

Test(alloc, through_an_observing_layer_with_hooks_and_stats_allocates_nothing_per_request) {
    reconnect_steady_state(1, 1, 1, 1);
}
#endif
