/* The stack builder, over real connections to echo servers on loopback:
 * 10,000 calls at once through retry, timeout and reconnect without an
 * error (and the hand-made stack that failed them, for contrast), two
 * endpoints balanced, a dead endpoint retried on the other, endpoints
 * added and removed while calls run, shedding, metrics, bad descriptions. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

TestSuite(stack, .init = h_setup, .fini = h_teardown);

enum { PAYLOAD = 16 };

static ct_buf_pool_t pool;
static ct_length_codec_t codec;
static ct_stream_config_t stream_cfg;
static ct_service_fn_t echo;
static ct_listener_t listeners[2];
static char addresses[2][64];
static int listeners_closed;
static ct_stack_t stack;
static int stack_closed;

static void on_listener_closed(ct_listener_t *l) {
    (void)l;
    listeners_closed++;
}

/* n echo servers, their addresses in addresses[]. */
static void serve(int n) {
    int i;
    ct_buf_pool_init(&pool, PAYLOAD, 4096);
    cr_assert_eq(ct_length_codec_init(&codec, NULL), 0);
    memset(&stream_cfg, 0, sizeof stream_cfg);
    stream_cfg.codec = &codec.codec;
    stream_cfg.pool = &pool;
    cr_assert_eq(ct_echo_service_init(&echo, &H.ct), 0);
    listeners_closed = 0;
    for (i = 0; i < n; i++) {
        ct_listener_config_t cfg;
        ct_address_t a;
        memset(&cfg, 0, sizeof cfg);
        cfg.stream = stream_cfg;
        cfg.server.free_msg = ct_buf_pool_free_msg;
        cfg.server.free_ctx = &pool;
        cr_assert_eq(
            ct_listener_init(&listeners[i], &H.ct, "tcp://127.0.0.1:0", &echo.service, &cfg), 0);
        cr_assert_eq(ct_listener_address(&listeners[i], &a), 0);
        snprintf(addresses[i], sizeof addresses[i], "tcp://127.0.0.1:%d",
                 ntohs(((struct sockaddr_in *)&a.sa)->sin_port));
    }
}

static void stop_serving(int n) {
    int i;
    for (i = 0; i < n; i++)
        cr_assert_eq(ct_listener_shutdown(&listeners[i], 1000, on_listener_closed), 0);
    H_RUN_UNTIL(listeners_closed == n);
    h_close_service(&echo.service);
    h_run();
    ct_buf_pool_destroy(&pool);
}

static void on_stack_closed(ct_stack_t *s) {
    (void)s;
    stack_closed = 1;
}

static void close_stack(void) {
    stack_closed = 0;
    cr_assert_eq(ct_stack_close(&stack, on_stack_closed), 0);
    H_RUN_UNTIL(stack_closed);
}

static ct_stack_config_t config(const char *const *endpoints, size_t n) {
    ct_stack_config_t c;
    memset(&c, 0, sizeof c);
    c.endpoints = endpoints;
    c.n_endpoints = n;
    c.stream = &stream_cfg;
    c.free_msg = ct_buf_pool_free_msg;
    c.free_ctx = &pool;
    return c;
}

static const ct_retry_config_t retry = {.copy = ct_buf_pool_copy_msg, .copy_ctx = &pool};

/* ---- many calls at once ----------------------------------------------------------- */

typedef struct call {
    ct_op_t op;
    uint32_t id;
} call_t;

static long answered, mismatched, failed;
static int first_error;

static void on_answer(ct_op_t *op, int status, void *response) {
    call_t *c = CT_CONTAINER_OF(op, call_t, op);
    ct_buf_t *b = response;
    uint32_t id;
    cr_assert_eq(H.nested, 0);
    if (status != 0) {
        if (!first_error) first_error = status;
        failed++;
        return;
    }
    memcpy(&id, b->base, sizeof id);
    if (id != c->id) mismatched++;
    answered++;
    ct_buf_pool_put(&pool, b);
}

/* n calls on svc at once, without a READY (the counts start again). */
static void start_calls(ct_service_t *svc, call_t *calls, int n) {
    int i;
    answered = mismatched = failed = 0;
    first_error = 0;
    for (i = 0; i < n; i++) {
        ct_buf_t *b = ct_buf_pool_get(&pool, PAYLOAD);
        calls[i].id = (uint32_t)i;
        memset(b->base, 0, PAYLOAD);
        memcpy(b->base, &calls[i].id, sizeof calls[i].id);
        b->len = PAYLOAD;
        ct_op_init(&calls[i].op, on_answer);
        cr_assert_eq(h_call(svc, b, &calls[i].op), 0);
    }
}

/* Likewise, and runs until every one is back. */
static void call_many(ct_service_t *svc, call_t *calls, int n) {
    start_calls(svc, calls, n);
    H_RUN_UNTIL(answered + failed == n);
    cr_assert_eq(mismatched, 0, "answers went to other calls");
}

enum { MANY = 10000 };
static call_t calls[MANY];

/* What the issue saw: retry -> timeout -> reconnect put together by hand,
 * each with its own default bound, fails most of 10,000 calls made at
 * once with CT_EOVERLOADED. The same description through the builder
 * fails none. */
Test(stack, ten_thousand_calls_at_once_fail_by_hand_and_not_through_the_builder) {
    const char *endpoints[1];
    ct_reconnect_t rc;
    ct_timeout_t timeout;
    ct_retry_t by_hand;
    ct_timeout_config_t tcfg = {5000, 0, ct_buf_pool_free_msg, &pool};
    ct_retry_config_t rcfg = retry;
    ct_reconnect_config_t ccfg = {0};
    ct_stack_config_t c;
    long failed_by_hand;
    serve(1);
    endpoints[0] = addresses[0];
    ccfg.free_msg = ct_buf_pool_free_msg;
    ccfg.free_ctx = &pool;
    rcfg.free_msg = ct_buf_pool_free_msg;
    rcfg.free_ctx = &pool;
    cr_assert_eq(ct_reconnect_init(&rc, &H.ct, addresses[0], &stream_cfg, &ccfg), 0);
    cr_assert_eq(ct_timeout_init(&timeout, &H.ct, &rc.service, &tcfg), 0);
    cr_assert_eq(ct_retry_init(&by_hand, &H.ct, &timeout.service, &rcfg), 0);
    call_many(&by_hand.service, calls, MANY);
    failed_by_hand = failed;
    cr_assert_gt(failed_by_hand, 0, "the hand-made stack failed none: the contrast is gone");
    h_close_service(&by_hand.service);

    c = config(endpoints, 1);
    c.timeout_ms = 5000;
    c.retry = &retry;
    c.max_in_flight = 256;
    c.max_queued = MANY;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    call_many(stack.service, calls, MANY);
    cr_assert_eq(failed, 0, "%ld of %d failed through the builder (%s; by hand: %ld)", failed, MANY,
                 ct_err_name(first_error), failed_by_hand);
    cr_assert_eq(answered, MANY);
    cr_assert_eq(ct_counter_read(&stack.queue.metrics.refused), 0);
    close_stack();
    stop_serving(1);
}

/* Over two endpoints a balancer shares the calls. */
Test(stack, two_endpoints_share_the_calls) {
    const char *endpoints[2];
    ct_stack_config_t c;
    ct_balance_endpoint_stats_t st[2];
    int i;
    serve(2);
    endpoints[0] = addresses[0];
    endpoints[1] = addresses[1];
    c = config(endpoints, 2);
    c.max_in_flight = 64;
    c.max_queued = 2000;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    call_many(stack.service, calls, 2000);
    cr_assert_eq(failed, 0, "%s", ct_err_name(first_error));
    for (i = 0; i < 2; i++) {
        cr_assert_eq(ct_balance_endpoint_stats(&stack.balance, (size_t)i, &st[i]), 0);
        cr_assert_gt(st[i].calls, 100, "endpoint %d took %llu calls", i,
                     (unsigned long long)st[i].calls);
        cr_assert_str_eq(ct_stack_address(&stack, i), addresses[i]);
    }
    close_stack();
    stop_serving(2);
}

/* One of two endpoints refuses connections: with retries, no call fails. */
Test(stack, a_dead_endpoint_is_retried_on_the_other) {
    const char *endpoints[2];
    ct_stack_config_t c;
    serve(1);
    endpoints[0] = "tcp://127.0.0.1:1"; /* nothing listens on port 1 */
    endpoints[1] = addresses[0];
    c = config(endpoints, 2);
    c.retry = &retry;
    c.timeout_ms = 5000;
    c.max_in_flight = 64;
    c.max_queued = 1000;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    call_many(stack.service, calls, 1000);
    cr_assert_eq(failed, 0, "%ld failed: %s", failed, ct_err_name(first_error));
    cr_assert_gt(ct_counter_read(&stack.retry.metrics.retries), 0, "nothing was retried");
    close_stack();
    stop_serving(1);
}

/* Endpoints added and removed while calls are under way: every call
 * answered; a removed endpoint is gone (its address with it). */
Test(stack, endpoints_come_and_go_while_calls_run) {
    const char *endpoints[1];
    ct_stack_config_t c;
    int second;
    serve(2);
    endpoints[0] = addresses[0];
    c = config(endpoints, 1);
    c.balance = 1;
    c.max_in_flight = 32;
    c.max_queued = 500;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    second = ct_stack_add(&stack, addresses[1]);
    cr_assert_eq(second, 1);
    call_many(stack.service, calls, 500);
    cr_assert_eq(failed, 0);
    /* calls in flight, then the first endpoint goes */
    start_calls(stack.service, calls, 200);
    cr_assert_eq(ct_stack_remove(&stack, 0), 0);
    cr_assert_null(ct_stack_address(&stack, 0));
    cr_assert_eq(ct_stack_remove(&stack, 0), CT_EINVAL, "removed twice");
    H_RUN_UNTIL(answered + failed == 200);
    cr_assert_eq(failed, 0, "%s", ct_err_name(first_error));
    cr_assert_eq(mismatched, 0);
    H_RUN_UNTIL(ct_stack_endpoints(&stack) == 1);
    call_many(stack.service, calls, 300);
    cr_assert_eq(failed, 0);
    cr_assert_str_eq(ct_stack_address(&stack, second), addresses[1]);
    close_stack();
    stop_serving(2);
}

/* More calls at once than the bound and the queue hold: those beyond fail
 * at once with CT_EOVERLOADED, counted; the rest are answered. */
Test(stack, calls_beyond_the_queue_are_refused_clearly) {
    const char *endpoints[1];
    ct_stack_config_t c;
    serve(1);
    endpoints[0] = addresses[0];
    c = config(endpoints, 1);
    c.max_in_flight = 8;
    c.max_queued = 100;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    call_many(stack.service, calls, 150);
    cr_assert_eq(answered, 108);
    cr_assert_eq(failed, 42);
    cr_assert_eq(first_error, CT_EOVERLOADED);
    cr_assert_eq(ct_counter_read(&stack.queue.metrics.refused), 42);
    close_stack();
    stop_serving(1);
}

/* With shed there is no queue: calls beyond the bound fail at once. */
Test(stack, with_shed_calls_beyond_the_bound_are_refused) {
    const char *endpoints[1];
    ct_stack_config_t c;
    serve(1);
    endpoints[0] = addresses[0];
    c = config(endpoints, 1);
    c.shed = 1;
    c.max_in_flight = 4;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    cr_assert(!stack.has_queue);
    call_many(stack.service, calls, 10);
    cr_assert_eq(answered, 4);
    cr_assert_eq(failed, 6);
    cr_assert_eq(first_error, CT_EOVERLOADED);
    close_stack();
    stop_serving(1);
}

/* The stack's metrics, each endpoint's under its address; a removed
 * endpoint's go with it. */
Test(stack, metrics_name_each_endpoint_and_forget_removed_ones) {
    const char *endpoints[2];
    const ct_stats_t *loops[1];
    ct_stats_t stats;
    ct_stack_config_t c;
    static char text[1 << 20];
    char want[160];
    serve(2);
    endpoints[0] = addresses[0];
    endpoints[1] = addresses[1];
    c = config(endpoints, 2);
    c.retry = &retry;
    c.timeout_ms = 5000;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    ct_stats_init(&stats);
    cr_assert_eq(ct_stack_add_stats(&stack, &stats, "stack=\"test\""), 0);
    cr_assert_eq(ct_stack_add_stats(&stack, &stats, NULL), CT_EINVAL, "registered twice");
    call_many(stack.service, calls, 100);
    loops[0] = &stats;
    cr_assert_lt(ct_stats_write(loops, 1, text, sizeof text), sizeof text);
    cr_assert(strstr(text, "ctower_queue_calls_total{stack=\"test\"} 100\n"), "%s", text);
    snprintf(want, sizeof want, "ctower_reconnect_connects_total{stack=\"test\",endpoint=\"%s\"} 1",
             addresses[1]);
    cr_assert(strstr(text, want), "no %s in\n%s", want, text);
    snprintf(want, sizeof want, "ctower_timeout_timeouts_total{stack=\"test\",endpoint=\"%s\"}",
             addresses[0]);
    cr_assert(strstr(text, want), "no %s", want);
    cr_assert_eq(ct_stack_remove(&stack, 0), 0);
    H_RUN_UNTIL(ct_stack_endpoints(&stack) == 1);
    ct_stats_write(loops, 1, text, sizeof text);
    snprintf(want, sizeof want, "endpoint=\"%s\"", addresses[0]);
    cr_assert_null(strstr(text, want), "the removed endpoint's metrics stayed");
    close_stack();
    ct_stats_write(loops, 1, text, sizeof text);
    cr_assert_null(strstr(text, "ctower_queue"), "the closed stack's metrics stayed");
    ct_stats_free(&stats);
    stop_serving(2);
}

Test(stack, bad_descriptions_are_refused) {
    const char *endpoints[1] = {"tcp://127.0.0.1:1"};
    const char *bad[1] = {"nowhere"};
    ct_retry_config_t no_copy = {0};
    ct_stack_config_t c;
    serve(0);
    c = config(endpoints, 1);
    c.stream = NULL;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), CT_EINVAL, "no stream");
    c = config(endpoints, 0);
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), CT_EINVAL, "no endpoint, no balancer");
    c = config(endpoints, 1);
    c.retry = &no_copy;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), CT_EINVAL, "a retry without copy");
    c = config(bad, 1);
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), CT_EBADADDR);
    c = config(endpoints, 1);
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    cr_assert_eq(ct_stack_add(&stack, addresses[0]), CT_EINVAL, "added without a balancer");
    close_stack();
    stop_serving(0);
}

/* ---- a layer of the caller's per endpoint, sharding, lookups ---------------------------- */

typedef struct wrapped {
    ct_observe_t observe;
    char address[64];
    int gone, removed;
} wrapped_t;

static wrapped_t wrappers[4];
static int nwrapped;

static ct_service_t *wrap(void *ctx, ct_stack_t *s, const char *address, ct_service_t *ep) {
    wrapped_t *w = &wrappers[nwrapped++];
    ct_observe_config_t oc = {.free_msg = ct_buf_pool_free_msg, .free_ctx = &pool};
    cr_assert_eq(ctx, &wrappers);
    cr_assert_eq(s, &stack);
    snprintf(w->address, sizeof w->address, "%s", address);
    cr_assert_eq(ct_observe_init(&w->observe, &H.ct, ep, &oc), 0);
    return &w->observe.service;
}

static void gone(void *ctx, ct_stack_t *s, const char *address, ct_service_t *svc, int removed) {
    wrapped_t *w = CT_CONTAINER_OF(svc, wrapped_t, observe.service);
    (void)ctx, (void)s;
    cr_assert_not_null(svc);
    cr_assert_str_eq(address, w->address);
    w->gone++;
    w->removed = removed;
}

/* The caller's layer over each endpoint sees that endpoint's calls, and
 * is handed back once, removed or closed. */
Test(stack, a_layer_of_the_callers_own_goes_over_each_endpoint) {
    const char *endpoints[2];
    ct_stack_config_t c;
    serve(2);
    endpoints[0] = addresses[0];
    endpoints[1] = addresses[1];
    memset(wrappers, 0, sizeof wrappers);
    nwrapped = 0;
    c = config(endpoints, 2);
    c.max_queued = 1000;
    c.breaker = &(ct_breaker_config_t){.failures_to_open = 5};
    c.wrap_endpoint = wrap;
    c.endpoint_gone = gone;
    c.endpoint_ctx = &wrappers;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    cr_assert_eq(nwrapped, 2);
    call_many(stack.service, calls, 1000);
    cr_assert_eq(failed, 0);
    cr_assert_eq(ct_counter_read(&wrappers[0].observe.metrics.requests) +
                     ct_counter_read(&wrappers[1].observe.metrics.requests),
                 1000);
    cr_assert_gt(ct_counter_read(&wrappers[0].observe.metrics.requests), 0);
    /* lookups */
    cr_assert_eq(ct_stack_find(&stack, addresses[1]), 1);
    cr_assert_eq(ct_stack_find(&stack, "tcp://127.0.0.1:9"), CT_EINVAL);
    cr_assert_not_null(ct_stack_client(&stack, 0));
    cr_assert_not_null(ct_stack_breaker(&stack, 1));
    cr_assert_eq(ct_reconnect_counts(ct_stack_client(&stack, 0)).connects, 1);
    cr_assert_null(ct_stack_client(&stack, 7));
    cr_assert_eq(ct_stack_remove(&stack, 0), 0);
    H_RUN_UNTIL(wrappers[0].gone);
    cr_assert_eq(wrappers[0].removed, 1);
    cr_assert_eq(ct_stack_find(&stack, addresses[0]), CT_EINVAL);
    close_stack();
    cr_assert_eq(wrappers[0].gone, 1);
    cr_assert_eq(wrappers[1].gone, 1);
    cr_assert_eq(wrappers[1].removed, 0);
    stop_serving(2);
}

/* Sharding: each call goes to the endpoint its key names, always the same. */
static int by_first_id_byte(void *ctx, const void *request, uint64_t *hash) {
    const ct_buf_t *b = request;
    (void)ctx;
    *hash = (uint64_t)(unsigned char)b->base[0] * 0x9e3779b97f4a7c15ull;
    return 0;
}

Test(stack, the_endpoints_may_be_shards) {
    const char *endpoints[2];
    ct_stack_config_t c;
    ct_shard_stats_t st[2];
    serve(2);
    endpoints[0] = addresses[0];
    endpoints[1] = addresses[1];
    c = config(endpoints, 2);
    c.shard_key = by_first_id_byte;
    c.max_queued = 1000;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    cr_assert(stack.has_shard && !stack.has_balance);
    call_many(stack.service, calls, 1000);
    cr_assert_eq(failed, 0, "%s", ct_err_name(first_error));
    cr_assert_eq(ct_shard_stats(&stack.shard, 0, &st[0]), 0);
    cr_assert_eq(ct_shard_stats(&stack.shard, 1, &st[1]), 0);
    cr_assert_eq(st[0].calls + st[1].calls, 1000);
    cr_assert_gt(st[0].calls, 0);
    cr_assert_gt(st[1].calls, 0);
    cr_assert_eq(ct_stack_add(&stack, addresses[0]), CT_EINVAL, "shards are fixed");
    c.balance = 1;
    cr_assert_eq(ct_stack_init(&(ct_stack_t){0}, &H.ct, &c), CT_EINVAL, "shards or a balancer");
    close_stack();
    stop_serving(2);
}

/* A layer of the caller's over the whole stack owns it: closing the layer
 * closes the stack, its endpoints and their metrics with it. A call
 * canceled through the stack is canceled where it is. */
Test(stack, a_layer_over_the_stack_closes_it_with_itself) {
    const char *endpoints[2];
    const ct_stats_t *loops[1];
    ct_stats_t stats;
    ct_stack_config_t c;
    ct_observe_t over;
    ct_observe_config_t oc = {.free_msg = ct_buf_pool_free_msg, .free_ctx = &pool};
    static char text[1 << 16];
    rec_op_t r;
    serve(2);
    endpoints[0] = addresses[0];
    endpoints[1] = addresses[1];
    c = config(endpoints, 2);
    c.max_queued = 100;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    ct_stats_init(&stats);
    cr_assert_eq(ct_stack_add_stats(&stack, &stats, NULL), 0);
    cr_assert_eq(ct_observe_init(&over, &H.ct, stack.service, &oc), 0);
    call_many(&over.service, calls, 100);
    cr_assert_eq(failed, 0);
    /* a call canceled at once, through both */
    rec_op_init(&r);
    {
        ct_buf_t *b = ct_buf_pool_get(&pool, PAYLOAD);
        memset(b->base, 0, PAYLOAD);
        b->len = PAYLOAD;
        cr_assert_eq(h_call(&over.service, b, &r.op), 0);
    }
    ct_op_cancel(&r.op);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECANCELED);
    h_close_service(&over.service);
    cr_assert_eq(ct_stack_endpoints(&stack), 0, "the endpoints' memory stayed");
    loops[0] = &stats;
    ct_stats_write(loops, 1, text, sizeof text);
    cr_assert_null(strstr(text, "endpoint="), "the closed stack's metrics stayed:\n%s", text);
    ct_stats_free(&stats);
    stop_serving(2);
}

/* A set applied whole: new endpoints added, those gone drained and removed,
 * duplicates counted once; a bad address or an empty set changes nothing. */
Test(stack, a_set_of_endpoints_is_applied_whole_or_not_at_all) {
    const char *first[2], *second[3], *bad[2], *none[1] = {NULL};
    ct_stack_config_t c;
    size_t added = 9, removed = 9;
    serve(2);
    first[0] = addresses[0];
    c = config(first, 0);
    c.balance = 1;
    c.max_queued = 500;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    cr_assert_eq(ct_stack_apply(&stack, first, 1, &added, &removed), 0);
    cr_assert_eq(added, 1);
    cr_assert_eq(removed, 0);
    call_many(stack.service, calls, 200);
    cr_assert_eq(failed, 0);
    /* the second server joins, the first leaves, the second is named twice */
    second[0] = addresses[1];
    second[1] = addresses[1];
    second[2] = addresses[1];
    cr_assert_eq(ct_stack_apply(&stack, second, 3, &added, &removed), 0);
    cr_assert_eq(added, 1);
    cr_assert_eq(removed, 1);
    call_many(stack.service, calls, 200);
    cr_assert_eq(failed, 0);
    H_RUN_UNTIL(ct_stack_endpoints(&stack) == 1);
    cr_assert_eq(ct_stack_find(&stack, addresses[0]), CT_EINVAL);
    cr_assert_geq(ct_stack_find(&stack, addresses[1]), 0);
    /* refused whole */
    bad[0] = addresses[0];
    bad[1] = "not an address";
    cr_assert_eq(ct_stack_apply(&stack, bad, 2, &added, &removed), CT_EBADADDR);
    cr_assert_eq(ct_stack_apply(&stack, none, 0, &added, &removed), CT_EINVAL, "an empty set");
    cr_assert_eq(added + removed, 0);
    cr_assert_eq(ct_stack_endpoints(&stack), 1, "a refused set changed the endpoints");
    cr_assert_geq(ct_stack_find(&stack, addresses[1]), 0);
    close_stack();
    stop_serving(2);
}

/* An endpoint made but refused by the balancer (the stack is draining)
 * is closed at once: the caller's layer over it is handed back, once. */
static int drained = 1;
static void on_drained(ct_stack_t *s, int status) {
    (void)s;
    drained = status;
}

Test(stack, an_endpoint_the_balancer_refuses_hands_back_the_callers_layer) {
    const char *endpoints[1];
    ct_stack_config_t c;
    serve(2);
    endpoints[0] = addresses[0];
    memset(wrappers, 0, sizeof wrappers);
    nwrapped = 0;
    c = config(endpoints, 1);
    c.balance = 1;
    c.wrap_endpoint = wrap;
    c.endpoint_gone = gone;
    c.endpoint_ctx = &wrappers;
    cr_assert_eq(ct_stack_init(&stack, &H.ct, &c), 0);
    drained = 1;
    cr_assert_eq(ct_stack_shutdown(&stack, on_drained), 0);
    cr_assert_lt(ct_stack_add(&stack, addresses[1]), 0, "added while draining");
    cr_assert_eq(nwrapped, 2);
    H_RUN_UNTIL(wrappers[1].gone == 1 && drained != 1);
    cr_assert_eq(wrappers[1].removed, 0);
    cr_assert_eq(wrappers[0].gone, 0);
    close_stack();
    cr_assert_eq(wrappers[0].gone, 1);
    cr_assert_eq(wrappers[1].gone, 1, "handed back twice");
    stop_serving(2);
}
