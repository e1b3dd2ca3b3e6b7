/* The limit layer: the bound on calls in flight, the rate, permits and
 * their release, calls refused without a READY, answers given at once,
 * cancel and close, and back-pressure on a server. */
#include "testutil.h"

#include <string.h>

TestSuite(limit, .init = h_setup, .fini = h_teardown);

static held_svc_t held;
static ct_service_fn_t echo;
static ct_limit_t layer;
static int woken;

static void on_woken(ct_waker_t *w) {
    (void)w;
    woken++;
}

static ct_limit_config_t config(size_t max_in_flight, uint32_t rate_per_s, uint32_t burst) {
    ct_limit_config_t c;
    memset(&c, 0, sizeof c);
    c.max_in_flight = max_in_flight;
    c.rate_per_s = rate_per_s;
    c.burst = burst;
    c.free_msg = tmsg_free;
    return c;
}

/* The layer over the held service (which answers when the test says). */
static void wrap_held(size_t max_in_flight, uint32_t rate_per_s, uint32_t burst) {
    ct_limit_config_t c = config(max_in_flight, rate_per_s, burst);
    held_init(&held, 0);
    cr_assert_eq(ct_limit_init(&layer, &H.ct, &held.service, &c), 0);
}

/* The layer over the echo service (which answers at once). */
static void wrap_echo(size_t max_in_flight, uint32_t rate_per_s, uint32_t burst) {
    ct_limit_config_t c = config(max_in_flight, rate_per_s, burst);
    ct_echo_service_init(&echo, &H.ct);
    cr_assert_eq(ct_limit_init(&layer, &H.ct, &echo.service, &c), 0);
}

static void unwrap_held(void) {
    h_close_service(&layer.service);
    held_free(&held);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(id), &r->op), 0);
}

Test(limit, bad_configurations_are_refused) {
    ct_limit_t l;
    ct_limit_config_t c = config(0, 0, 0);
    held_init(&held, 0);
    cr_assert_eq(ct_limit_init(&l, &H.ct, &held.service, &c), CT_EINVAL, "no bound at all");
    c = config(4, 0, 0);
    cr_assert_eq(ct_limit_init(&l, &H.ct, &held.service, NULL), CT_EINVAL);
    cr_assert_eq(ct_limit_init(&l, &H.ct, NULL, &c), CT_EINVAL);
    held.service.owner = &l;
    cr_assert_eq(ct_limit_init(&l, &H.ct, &held.service, &c), CT_EINVAL, "already wrapped");
    held.service.owner = NULL;
    h_close_service(&held.service);
    held_free(&held);
}

/* max_in_flight calls in flight, then PENDING until one completes; a call
 * made anyway is refused and its request freed. */
Test(limit, calls_in_flight_are_bounded) {
    rec_op_t r[4];
    ct_waker_t w;
    int i;
    wrap_held(3, 0, 0);
    ct_waker_init(&w, &H.ct, on_woken);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
        call(&r[i], (uint64_t)i);
    }
    woken = 0;
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    call(&r[3], 3);
    H_RUN_UNTIL(r[3].calls);
    cr_assert_eq(r[3].status, CT_EOVERLOADED);
    cr_assert_eq(held.n, 3, "a call beyond the bound reached the service");
    cr_assert_eq(ct_limit_counts(&layer).refused, 1);
    h_turns(2);
    cr_assert_eq(woken, 0);
    held_complete(&held, 1, 0);
    H_RUN_UNTIL(woken);
    H_RUN_UNTIL(r[1].calls);
    cr_assert_eq(r[1].response_id, 1);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    call(&r[1], 4);
    cr_assert_eq(held.n, 3);
    held_complete_all(&held);
    H_RUN_UNTIL(r[0].calls && r[1].calls && r[2].calls);
    cr_assert_eq(ct_limit_counts(&layer).calls, 4);
    unwrap_held();
}

Test(limit, a_released_permit_frees_its_slot) {
    rec_op_t r;
    ct_waker_t w;
    wrap_held(1, 0, 0);
    ct_waker_init(&w, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY, "the same permit");
    ct_service_release(&layer.service);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    call(&r, 1);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    held_complete_all(&held);
    H_RUN_UNTIL(r.calls);
    unwrap_held();
}

/* A rate of 200 a second with a burst of 2: two calls at once, then one
 * every 5 ms. Twenty calls take 90 ms at least; the time is loop time. */
Test(limit, the_rate_spaces_calls_out) {
    rec_op_t r;
    ct_waker_t w;
    uint64_t start;
    int i, pending = 0;
    wrap_echo(0, 200, 2);
    ct_waker_init(&w, &H.ct, on_woken);
    uv_update_time(&H.uv);
    start = uv_now(&H.uv);
    for (i = 0; i < 20; i++) {
        woken = 0;
        if (ct_service_poll_ready(&layer.service, &w) == CT_PENDING) {
            pending++;
            H_RUN_UNTIL(woken);
            cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
        }
        if (i < 2) cr_assert_eq(pending, 0, "the burst was not allowed");
        call(&r, (uint64_t)i);
        H_RUN_UNTIL(r.calls);
        cr_assert_eq(r.status, 0);
    }
    uv_update_time(&H.uv);
    cr_assert_geq(uv_now(&H.uv) - start, 90, "20 calls at 200/s in %llu ms",
                  (unsigned long long)(uv_now(&H.uv) - start));
    cr_assert_geq(pending, 15);
    h_close_service(&layer.service);
}

Test(limit, a_call_beyond_the_rate_is_refused) {
    rec_op_t r[3];
    int i;
    wrap_echo(0, 1, 2);
    for (i = 0; i < 3; i++) {
        call(&r[i], (uint64_t)i);
        H_RUN_UNTIL(r[i].calls);
    }
    cr_assert_eq(r[0].status, 0);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[2].status, CT_EOVERLOADED);
    cr_assert_eq(ct_limit_counts(&layer).refused, 1);
    h_close_service(&layer.service);
}

/* A server answers through call_sync when it can: that takes a token but
 * no slot. When the rate allows none, the layer does not take the request,
 * and the ordinary call then refuses it. */
Test(limit, answers_given_at_once_count_against_the_rate) {
    int status = -1;
    void *response = NULL;
    tmsg_t *m;
    rec_op_t r;
    wrap_echo(1, 1, 1);
    m = tmsg_new(7);
    cr_assert_eq(ct_service_call_sync(&layer.service, m, &status, &response), 1);
    cr_assert_eq(status, 0);
    cr_assert_eq(tmsg_id(response), 7);
    tmsg_free(response, NULL);
    m = tmsg_new(8);
    cr_assert_eq(ct_service_call_sync(&layer.service, m, &status, &response), 0);
    cr_assert_eq(h_call(&layer.service, m, (rec_op_init(&r), &r.op)), 0);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_EOVERLOADED);
    h_close_service(&layer.service);
}

Test(limit, cancel_frees_the_slot_once_the_service_lets_go) {
    rec_op_t r[2];
    wrap_held(1, 0, 0);
    call(&r[0], 0);
    ct_op_cancel(&r[0].op);
    H_RUN_UNTIL(r[0].calls);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(held.cancels, 1);
    call(&r[1], 1);
    h_turns(2);
    cr_assert_eq(r[1].calls, 0, "the slot of the canceled call was not free: %s",
                 ct_err_name(r[1].status));
    held_complete_all(&held);
    H_RUN_UNTIL(r[1].calls);
    cr_assert_eq(r[1].response_id, 1);
    unwrap_held();
}

Test(limit, with_only_a_rate_cancel_reaches_the_service) {
    rec_op_t r;
    wrap_held(0, 1000, 10);
    call(&r, 0);
    cr_assert_eq(held.n, 1);
    ct_op_cancel(&r.op);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECANCELED);
    cr_assert_eq(held.cancels, 1);
    h_turns(2);
    cr_assert_eq(r.calls, 1);
    unwrap_held();
}

Test(limit, close_completes_every_call_once) {
    rec_op_t r[3];
    int i;
    wrap_held(3, 0, 0);
    for (i = 0; i < 3; i++)
        call(&r[i], (uint64_t)i);
    ct_op_cancel(&r[1].op);
    unwrap_held();
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, i == 1 ? CT_ECANCELED : CT_ECLOSED);
    }
}

/* Under a server, the bound is back-pressure: the server stops reading while
 * the service is full, and every request is still answered. */
Test(limit, a_server_waits_for_room) {
    h_pair_t p;
    ct_limit_config_t c = config(3, 0, 0);
    held_init(&held, 0);
    held_start_timer(&held, 1);
    cr_assert_eq(ct_limit_init(&layer, &H.ct, &held.service, &c), 0);
    h_pair_connect(&p, &layer.service, 0, 16, 64);
    cr_assert_eq(h_drive(&p.client.service, 16, 200), 0);
    cr_assert_leq(held.max_n, 3, "%zu calls were in the service at once", held.max_n);
    cr_assert_eq(held.max_n, 3);
    cr_assert_eq(ct_limit_counts(&layer).refused, 0);
    h_pair_disconnect(&p, &layer.service);
    held_free(&held);
}

/* With a burst of 1, the bucket holds one token however long it was quiet:
 * of two calls in the same millisecond after a pause, one goes. */
Test(limit, a_quiet_time_banks_no_more_than_the_burst) {
    rec_op_t r[2];
    int i;
    wrap_echo(0, 1000, 1);
    uv_sleep(30);
    uv_update_time(&H.uv);
    for (i = 0; i < 2; i++)
        call(&r[i], (uint64_t)i);
    H_RUN_UNTIL(r[0].calls && r[1].calls);
    cr_assert_eq(r[0].status, 0);
    cr_assert_eq(r[1].status, CT_EOVERLOADED, "a second call in the same ms went through");
    h_close_service(&layer.service);
}

static int drained, drain_status = 1;

static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained++;
    drain_status = status;
}

/* Shutdown is the inner service's: refused by one that cannot, reported
 * when one that can is drained. */
Test(limit, shutdown_is_the_inner_services) {
    wrap_held(2, 0, 0); /* the held service has no shutdown */
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), CT_ENOTSUP);
    unwrap_held();
    cr_assert_eq(drained, 0, "a refused shutdown reported");
    wrap_echo(2, 0, 0);
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    H_RUN_UNTIL(drained);
    cr_assert_eq(drain_status, 0);
    h_close_service(&layer.service);
}
