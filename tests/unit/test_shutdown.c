/* The whole shutdown in one call: a listener, the service it calls and a
 * client stack, drained and closed in order, and the loop with them, so
 * that uv_loop_close() succeeds; a deadline that cuts a stuck drain short;
 * bad use. Each test has a loop of its
 * own (the harness's teardown would close the ctower loop again). */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

enum { PAYLOAD = 16, CALLS = 200 };

static uv_loop_t uv;
static ct_loop_t ct;
static ct_buf_pool_t pool;
static ct_length_codec_t codec;
static ct_stream_config_t stream_cfg;
static ct_service_fn_t echo;
static ct_listener_t listener;
static ct_stack_t stack;
static ct_shutdown_t sd;
static int done_calls, done_status, answered, failed, completions;
static ct_op_t ops[CALLS];

static void setup_loop(void) {
    cr_assert_eq(uv_loop_init(&uv), 0);
    cr_assert_eq(ct_loop_init(&ct, &uv), 0);
    ct_buf_pool_init(&pool, PAYLOAD, 4096);
    cr_assert_eq(ct_length_codec_init(&codec, NULL), 0);
    memset(&stream_cfg, 0, sizeof stream_cfg);
    stream_cfg.codec = &codec.codec;
    stream_cfg.pool = &pool;
    done_calls = answered = failed = completions = 0;
    done_status = 1;
}

/* Runs uv until it returns by itself (nothing left), for 20 s at most. */
static void run_to_the_end(void) {
    uint64_t start = uv_hrtime();
    while (uv_run(&uv, UV_RUN_ONCE) != 0)
        cr_assert_lt(uv_hrtime() - start, 20000000000ull, "the loop did not end");
}

static void on_done(ct_shutdown_t *s, int status) {
    cr_assert_eq(s, &sd);
    done_calls++;
    done_status = status;
}

static void listen_echo(const char *address, char *bound, size_t n) {
    ct_listener_config_t cfg;
    ct_address_t a;
    cr_assert_eq(ct_echo_service_init(&echo, &ct), 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.stream = stream_cfg;
    cfg.server.free_msg = ct_buf_pool_free_msg;
    cfg.server.free_ctx = &pool;
    cr_assert_eq(ct_listener_init(&listener, &ct, address, &echo.service, &cfg), 0);
    cr_assert_eq(ct_listener_address(&listener, &a), 0);
    ct_address_format(&a, bound, n);
}

static void on_answer(ct_op_t *op, int status, void *response) {
    (void)op;
    completions++;
    if (status == 0) {
        answered++;
        ct_buf_pool_put(&pool, response);
    } else {
        failed++;
    }
    /* halfway, the program decides to stop: one call */
    if (completions == CALLS / 2) cr_assert_eq(ct_shutdown_start(&sd, 5000, on_done), 0);
}

Test(shutdown, a_listener_its_service_and_a_client_stack_close_in_one_call) {
    char address[128];
    const char *endpoints[1] = {address};
    ct_stack_config_t c;
    int i;
    void *mark = &c;
    setup_loop();
    listen_echo("tcp://127.0.0.1:0", address, sizeof address);
    memset(&c, 0, sizeof c);
    c.endpoints = endpoints;
    c.n_endpoints = 1;
    c.stream = &stream_cfg;
    c.max_in_flight = 8;
    c.max_queued = CALLS;
    c.free_msg = ct_buf_pool_free_msg;
    c.free_ctx = &pool;
    cr_assert_eq(ct_stack_init(&stack, &ct, &c), 0);
    listener.data = mark; /* the program's own, given back */
    stack.data = mark;
    ct.data = mark;
    cr_assert_eq(ct_shutdown_init(&sd, &ct), 0);
    cr_assert_eq(ct_shutdown_add_listener(&sd, &listener), 0);
    cr_assert_eq(ct_shutdown_add_stack(&sd, &stack), 0);
    cr_assert_eq(ct_shutdown_add_service(&sd, &echo.service), 0);
    for (i = 0; i < CALLS; i++) {
        ct_buf_t *b = ct_buf_pool_get(&pool, PAYLOAD);
        memset(b->base, 'x', PAYLOAD);
        b->len = PAYLOAD;
        ct_op_init(&ops[i], on_answer);
        cr_assert_eq(ct_service_call(stack.service, b, &ops[i]), 0);
    }
    run_to_the_end();
    cr_assert_eq(done_calls, 1, "the callback ran %d times", done_calls);
    cr_assert_eq(done_status, 0, "%s", ct_err_name(done_status));
    cr_assert_eq(completions, CALLS, "every call completes once");
    cr_assert_geq(answered, CALLS / 2, "%d answered, %d failed", answered, failed);
    cr_assert_eq(listener.data, mark);
    cr_assert_eq(stack.data, mark);
    cr_assert_eq(ct.data, mark);
    ct_buf_pool_destroy(&pool);
    cr_assert_eq(uv_loop_close(&uv), 0, "a handle was left open");
}

/* ---- a drain that never ends --------------------------------------------------------- */

typedef struct stuck {
    ct_service_t service;
    ct_op_t *held[4];
    int n;
} stuck_t;

static int stuck_poll_ready(ct_service_t *svc, ct_waker_t *w) {
    (void)svc, (void)w;
    return CT_READY;
}
static int stuck_call(ct_service_t *svc, void *req, ct_op_t *op) {
    stuck_t *s = (stuck_t *)svc;
    ct_buf_pool_put(&pool, req);
    if (s->n == 4) return CT_EOVERLOADED;
    s->held[s->n++] = op;
    return 0;
}
static void stuck_cancel(ct_service_t *svc, ct_op_t *op) {
    (void)svc;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
}
static int stuck_shutdown(ct_service_t *svc) {
    (void)svc;
    return 0; /* drains until its calls are answered: never */
}
static void stuck_close(ct_service_t *svc) {
    stuck_t *s = (stuck_t *)svc;
    while (s->n)
        ct_op_complete(s->held[--s->n], CT_ECLOSED, 0, NULL);
    ct_service_closed(svc);
}
static const ct_service_vtable_t stuck_vtable = {
    stuck_poll_ready, stuck_call, stuck_cancel, NULL, stuck_shutdown, stuck_close, NULL,
};

static void count(ct_op_t *op, int status, void *response) {
    (void)op, (void)response;
    completions++;
    if (status == CT_ECLOSED) failed++;
}

Test(shutdown, the_deadline_closes_a_drain_that_does_not_end) {
    stuck_t stuck;
    ct_op_t op[2];
    uint64_t started;
    int i;
    setup_loop();
    ct_service_init(&stuck.service, &ct, &stuck_vtable);
    stuck.n = 0;
    for (i = 0; i < 2; i++) {
        ct_op_init(&op[i], count);
        cr_assert_eq(ct_service_call(&stuck.service, ct_buf_pool_get(&pool, PAYLOAD), &op[i]), 0);
    }
    cr_assert_eq(ct_shutdown_init(&sd, &ct), 0);
    cr_assert_eq(ct_shutdown_add_service(&sd, &stuck.service), 0);
    started = uv_now(&uv);
    cr_assert_eq(ct_shutdown_start(&sd, 50, on_done), 0);
    run_to_the_end();
    cr_assert_eq(done_calls, 1);
    cr_assert_eq(done_status, CT_ETIMEDOUT, "%s", ct_err_name(done_status));
    cr_assert_geq(uv_now(&uv) - started, 45, "closed before the deadline");
    cr_assert_eq(completions, 2);
    cr_assert_eq(failed, 2, "the stuck calls did not end with CT_ECLOSED");
    ct_buf_pool_destroy(&pool);
    cr_assert_eq(uv_loop_close(&uv), 0);
}

Test(shutdown, bad_use_is_refused) {
    ct_service_fn_t fns[CT_SHUTDOWN_MAX + 1];
    int i;
    setup_loop();
    cr_assert_eq(ct_shutdown_init(&sd, &ct), 0);
    for (i = 0; i <= CT_SHUTDOWN_MAX; i++) {
        cr_assert_eq(ct_echo_service_init(&fns[i], &ct), 0);
        cr_assert_eq(ct_shutdown_add_service(&sd, &fns[i].service),
                     i < CT_SHUTDOWN_MAX ? 0 : CT_EINVAL);
    }
    cr_assert_eq(ct_shutdown_add_service(&sd, NULL), CT_EINVAL);
    cr_assert_eq(ct_shutdown_start(&sd, 0, on_done), 0);
    cr_assert_eq(ct_shutdown_start(&sd, 0, on_done), CT_ECLOSING, "started twice");
    cr_assert_eq(ct_shutdown_add_service(&sd, &fns[0].service), CT_EINVAL, "added once started");
    ct_service_close(&fns[CT_SHUTDOWN_MAX].service, NULL);
    run_to_the_end();
    cr_assert_eq(done_calls, 1);
    cr_assert_eq(done_status, 0);
    ct_buf_pool_destroy(&pool);
    cr_assert_eq(uv_loop_close(&uv), 0);
}
