/* The balancing layer: calls spread by load, failing endpoints left out and
 * taken back, dead endpoints, readiness and reservations, the in-flight
 * bound, cancel, shutdown, close, endpoints added and removed while it
 * runs, and random runs with exactly-once completion. (Over real
 * connections: test_reconnect.) */
#include "testutil.h"

#include <string.h>

TestSuite(balance, .init = h_setup, .fini = h_teardown);

/* ---- an endpoint the test steers ---------------------------------------------- */

/* Holds its calls until the test completes them, or answers (echo) or fails
 * them at once. poll_ready is PENDING while `capacity` calls are held, and
 * READY reserves a slot that the next call uses (or release gives back);
 * with poll_error set it returns that error (dead). */
typedef struct ep {
    ct_service_t service;
    int hold;
    int fail_status; /* != 0: every call fails so */
    size_t capacity; /* 0: no bound */
    int poll_error;
    int no_shutdown; /* shutdown refused at once (CT_ENOTSUP) */
    ct_op_t *held_op[256];
    void *held_req[256];
    size_t nheld;
    int reserved; /* a READY not yet used by a call or given back */
    long calls, releases, cancels, shutdowns;
    int closed;
    ct_waitq_t waiters;
} ep_t;

static ct_service_vtable_t ep_vtable;

static int ep_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ep_t *e = (ep_t *)svc;
    if (e->poll_error) return e->poll_error;
    if (e->capacity && e->nheld >= e->capacity) {
        if (waker) ct_waitq_add(&e->waiters, waker);
        return CT_PENDING;
    }
    e->reserved = 1;
    return CT_READY;
}

static int ep_call(ct_service_t *svc, void *req, ct_op_t *op) {
    ep_t *e = (ep_t *)svc;
    e->reserved = 0;
    e->calls++;
    if (e->fail_status) {
        tmsg_free(req, NULL);
        ct_op_complete(op, e->fail_status, UV_ECONNREFUSED, NULL);
    } else if (e->hold) {
        cr_assert_lt(e->nheld, 256);
        e->held_op[e->nheld] = op;
        e->held_req[e->nheld++] = req;
    } else {
        ct_op_complete(op, 0, 0, req);
    }
    return 0;
}

/* Completes held call i (echo when status is 0). */
static void ep_complete(ep_t *e, size_t i, int status) {
    ct_op_t *op = e->held_op[i];
    void *req = e->held_req[i];
    memmove(&e->held_op[i], &e->held_op[i + 1], (e->nheld - i - 1) * sizeof *e->held_op);
    memmove(&e->held_req[i], &e->held_req[i + 1], (e->nheld - i - 1) * sizeof *e->held_req);
    e->nheld--;
    if (status == 0) {
        ct_op_complete(op, 0, 0, req);
    } else {
        tmsg_free(req, NULL);
        ct_op_complete(op, status, 0, NULL);
    }
    ct_waitq_wake_all(&e->waiters);
    if (e->nheld == 0 && ct_service_is_shutting_down(&e->service))
        ct_service_shutdown_done(&e->service, 0);
}

static void ep_complete_all(ep_t *e, int status) {
    while (e->nheld > 0)
        ep_complete(e, 0, status);
}

static void ep_cancel(ct_service_t *svc, ct_op_t *op) {
    ep_t *e = (ep_t *)svc;
    size_t i;
    for (i = 0; i < e->nheld; i++)
        if (e->held_op[i] == op) {
            e->cancels++;
            ep_complete(e, i, CT_ECANCELED);
            return;
        }
    cr_assert_fail("cancel of a call the endpoint does not hold");
}

static void ep_release(ct_service_t *svc) {
    ep_t *e = (ep_t *)svc;
    cr_assert(e->reserved, "release without a reservation");
    e->reserved = 0;
    e->releases++;
}

static int ep_shutdown(ct_service_t *svc) {
    ep_t *e = (ep_t *)svc;
    e->shutdowns++;
    if (e->nheld == 0) ct_service_shutdown_done(svc, 0);
    return 0;
}

static void ep_close(ct_service_t *svc) {
    ep_t *e = (ep_t *)svc;
    ep_complete_all(e, CT_ECLOSED);
    ct_waitq_wake_all(&e->waiters);
    e->closed = 1;
    ct_service_closed(svc);
}

static ct_service_vtable_t ep_vtable = {
    ep_poll_ready, ep_call, ep_cancel, ep_release, ep_shutdown, ep_close, NULL,
};
static ct_service_vtable_t ep_vtable_no_shutdown = {
    ep_poll_ready, ep_call, ep_cancel, ep_release, NULL, ep_close, NULL,
};

/* ---- the layer under test ---------------------------------------------------- */

enum { MAX_EPS = 8 };
static ep_t eps[MAX_EPS];
static ct_balance_t layer;

static ct_balance_config_t config(size_t n) {
    static ct_service_t *list[MAX_EPS];
    ct_balance_config_t c;
    size_t i;
    for (i = 0; i < n; i++)
        list[i] = &eps[i].service;
    memset(&c, 0, sizeof c);
    c.endpoints = list;
    c.n_endpoints = n;
    c.free_msg = tmsg_free;
    c.pause_min_ms = c.pause_max_ms = 10000; /* left out for the whole test */
    return c;
}

static void ep_init(size_t i, int hold) {
    memset(&eps[i], 0, sizeof eps[i]);
    ct_service_init(&eps[i].service, &H.ct, &ep_vtable);
    ct_waitq_init(&eps[i].waiters);
    eps[i].hold = hold;
}

static void eps_init(size_t n, int hold) {
    size_t i;
    for (i = 0; i < n; i++)
        ep_init(i, hold);
}

static void wrap_with(const ct_balance_config_t *c, int hold) {
    eps_init(c->n_endpoints, hold);
    cr_assert_eq(ct_balance_init(&layer, &H.ct, c), 0);
}

static void wrap(size_t n, int hold) {
    ct_balance_config_t c = config(n);
    wrap_with(&c, hold);
}

static void unwrap(size_t n) {
    size_t i;
    h_close_service(&layer.service);
    for (i = 0; i < n; i++)
        cr_assert(eps[i].closed, "endpoint %zu was not closed with the layer", i);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(id), &r->op), 0);
}

static ct_balance_endpoint_stats_t stats(size_t i) {
    ct_balance_endpoint_stats_t s;
    cr_assert_eq(ct_balance_endpoint_stats(&layer, i, &s), 0);
    return s;
}

/* The endpoints answer every call they hold; calls r[0..n) must each
 * complete once, with their own answer. */
static void answer_all(rec_op_t *r, int n, size_t neps) {
    size_t j;
    int i;
    for (j = 0; j < neps; j++)
        ep_complete_all(&eps[j], 0);
    for (i = 0; i < n; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, 0, "call %d: %s", i, ct_err_name(r[i].status));
        cr_assert_eq(r[i].response_id, (uint64_t)i);
    }
}

static size_t reservations(size_t n) {
    size_t i, k = 0;
    for (i = 0; i < n; i++)
        k += (size_t)eps[i].reserved;
    return k;
}

static int woken;

static void on_woken(ct_waker_t *w) {
    (void)w;
    woken++;
}

/* ---- tests ------------------------------------------------------------------- */

Test(balance, bad_configurations_are_refused) {
    ct_balance_t b;
    ct_balance_config_t c;
    ct_service_t *twice[2];
    ct_service_t *none[1] = {NULL};
    eps_init(2, 0);
    c = config(2);
    cr_assert_eq(ct_balance_init(&b, &H.ct, NULL), CT_EINVAL);
    cr_assert_eq(ct_balance_init(NULL, &H.ct, &c), CT_EINVAL);
    c.endpoints = NULL;
    cr_assert_eq(ct_balance_init(&b, &H.ct, &c), CT_EINVAL, "endpoints counted, not given");
    c = config(2);
    c.endpoints = none;
    c.n_endpoints = 1;
    cr_assert_eq(ct_balance_init(&b, &H.ct, &c), CT_EINVAL, "a NULL endpoint");
    c = config(2);
    twice[0] = twice[1] = &eps[0].service;
    c.endpoints = twice;
    cr_assert_eq(ct_balance_init(&b, &H.ct, &c), CT_EINVAL, "one endpoint twice");
    c = config(2);
    c.pause_min_ms = 50;
    c.pause_max_ms = 20;
    cr_assert_eq(ct_balance_init(&b, &H.ct, &c), CT_EINVAL);
    eps[1].service.owner = &b; /* wrapped by something else */
    c = config(2);
    cr_assert_eq(ct_balance_init(&b, &H.ct, &c), CT_EINVAL, "an endpoint already wrapped");
    eps[1].service.owner = NULL;
    cr_assert_null(eps[0].service.owner, "a refused init leaves the endpoints alone");
    h_close_service(&eps[0].service);
    h_close_service(&eps[1].service);
}

Test(balance, an_answer_passes_through) {
    rec_op_t r;
    wrap(2, 0);
    call(&r, 5);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 5);
    cr_assert_eq(eps[0].calls + eps[1].calls, 1);
    h_turns(2);
    cr_assert_eq(r.calls, 1);
    unwrap(2);
}

/* With two endpoints both are always drawn, so the less loaded one takes
 * every call: the loads never differ by more than one. */
Test(balance, two_endpoints_share_held_calls_evenly) {
    rec_op_t r[101];
    int i;
    wrap(2, 1);
    for (i = 0; i < 101; i++) {
        call(&r[i], (uint64_t)i);
        cr_assert_leq(labs(eps[0].calls - eps[1].calls), 1, "after %d calls: %ld and %ld", i + 1,
                      eps[0].calls, eps[1].calls);
    }
    cr_assert_eq(stats(0).in_flight + stats(1).in_flight, 101);
    answer_all(r, 101, 2);
    unwrap(2);
}

/* The endpoint that answered its calls has the smaller load, so it takes the
 * next ones until the loads are level again. */
Test(balance, the_less_loaded_endpoint_takes_the_calls) {
    rec_op_t r[40];
    int i;
    wrap(2, 1);
    for (i = 0; i < 20; i++)
        call(&r[i], (uint64_t)i);
    cr_assert_eq(eps[0].nheld, 10);
    cr_assert_eq(eps[1].nheld, 10);
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(stats(1).in_flight == 0);
    for (i = 20; i < 30; i++)
        call(&r[i], (uint64_t)i);
    cr_assert_eq(eps[0].calls, 10, "the loaded endpoint took a call");
    cr_assert_eq(eps[1].calls, 20);
    answer_all(r, 30, 2);
    unwrap(2);
}

Test(balance, every_endpoint_of_five_takes_calls) {
    rec_op_t r[100];
    int i;
    wrap(5, 1);
    for (i = 0; i < 100; i++)
        call(&r[i], (uint64_t)i);
    for (i = 0; i < 5; i++)
        cr_assert_gt(eps[i].calls, 0, "endpoint %d took no call", i);
    answer_all(r, 100, 5);
    unwrap(5);
}

/* An endpoint that fails fast would look the least loaded forever: after
 * its first failure it is left out, and the other one answers. */
Test(balance, a_failing_endpoint_is_left_out) {
    static const int kinds[] = {CT_ECONNECT, CT_ESENDBROKEN, CT_ERECVBROKEN,
                                CT_EDESYNC,  CT_ETIMEDOUT,   CT_EOPEN};
    size_t k;
    for (k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        rec_op_t r;
        int i, failed = 0;
        wrap(2, 0);
        eps[0].fail_status = kinds[k];
        for (i = 0; i < 50; i++) {
            call(&r, (uint64_t)i);
            H_RUN_UNTIL(r.calls);
            if (r.status != 0) {
                failed++;
                cr_assert_eq(r.status, kinds[k]);
                cr_assert_eq(r.cause, UV_ECONNREFUSED, "the cause comes through");
            }
        }
        cr_assert_leq(eps[0].calls, 1, "%s: the failing endpoint took %ld calls",
                      ct_err_name(kinds[k]), eps[0].calls);
        cr_assert_eq(failed, eps[0].calls);
        cr_assert_eq(stats(0).failures, (uint64_t)eps[0].calls);
        if (eps[0].calls) cr_assert(stats(0).left_out);
        cr_assert_not(stats(1).left_out);
        unwrap(2);
    }
}

Test(balance, other_errors_do_not_leave_an_endpoint_out) {
    static const int kinds[] = {CT_EOVERLOADED, CT_SERVICE_ERROR(3), CT_ESHUTDOWN};
    size_t k;
    for (k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        rec_op_t r;
        int i;
        wrap(2, 0);
        eps[0].fail_status = kinds[k];
        for (i = 0; i < 40; i++) {
            call(&r, (uint64_t)i);
            H_RUN_UNTIL(r.calls);
        }
        cr_assert_gt(eps[0].calls, 1, "%s left the endpoint out", ct_err_name(kinds[k]));
        cr_assert_eq(stats(0).failures, 0);
        unwrap(2);
    }
}

static int fail_on_service_error(void *ctx, int status, int cause) {
    (void)cause;
    (*(int *)ctx)++;
    return status == CT_SERVICE_ERROR(3);
}

Test(balance, a_failure_function_decides_instead) {
    rec_op_t r;
    int i, asked = 0;
    ct_balance_config_t c = config(2);
    c.is_failure = fail_on_service_error;
    c.is_failure_ctx = &asked;
    wrap_with(&c, 0);
    eps[0].fail_status = CT_SERVICE_ERROR(3);
    eps[1].fail_status = CT_ECONNECT; /* not a failure for this function */
    for (i = 0; i < 30; i++) {
        call(&r, (uint64_t)i);
        H_RUN_UNTIL(r.calls);
    }
    cr_assert_leq(eps[0].calls, 1);
    cr_assert_geq(eps[1].calls, 29);
    cr_assert_eq(asked, 30, "every outcome is asked about");
    unwrap(2);
}

/* After its pause an endpoint takes calls again, and an answer ends its run
 * of failures; a second failure in a row pauses it longer. */
Test(balance, a_left_out_endpoint_comes_back_after_its_pause) {
    rec_op_t r;
    int i;
    uint64_t start;
    ct_balance_config_t c = config(2);
    c.pause_min_ms = c.pause_max_ms = 40; /* a pause of 20 to 40 ms */
    wrap_with(&c, 0);
    eps[0].fail_status = CT_ECONNECT;
    for (i = 0; eps[0].calls == 0; i++) {
        call(&r, (uint64_t)i);
        H_RUN_UNTIL(r.calls);
    }
    start = uv_now(&H.uv);
    cr_assert(stats(0).left_out);
    eps[0].fail_status = 0; /* it recovers */
    while (eps[0].calls == 1) {
        call(&r, (uint64_t)i++);
        H_RUN_UNTIL(r.calls);
        cr_assert_eq(r.status, 0);
        if (eps[0].calls == 1) { /* (after the pause it is one of two equals) */
            uv_sleep(2);
            uv_update_time(&H.uv);
        }
        cr_assert_lt(uv_now(&H.uv) - start, 5000, "never taken back");
    }
    cr_assert_geq(uv_now(&H.uv) - start, 15, "taken back after %llu ms, before its pause was over",
                  (unsigned long long)(uv_now(&H.uv) - start));
    cr_assert_not(stats(0).left_out);
    cr_assert_eq(stats(0).failures, 1);
    cr_assert_eq(ct_counter_read(&layer.metrics.ejections), 1);
    unwrap(2);
}

/* When every endpoint is left out, calls go to them anyway: their failure
 * is the answer the caller gets. */
Test(balance, calls_go_to_left_out_endpoints_when_all_are) {
    rec_op_t r;
    int i;
    wrap(2, 0);
    eps[0].fail_status = eps[1].fail_status = CT_ECONNECT;
    for (i = 0; i < 10; i++) {
        call(&r, (uint64_t)i);
        H_RUN_UNTIL(r.calls);
        cr_assert_eq(r.status, CT_ECONNECT);
    }
    cr_assert_eq(eps[0].calls + eps[1].calls, 10);
    cr_assert(stats(0).left_out && stats(1).left_out);
    eps[1].fail_status = 0;
    call(&r, 99);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(eps[0].calls + eps[1].calls, 11);
    unwrap(2);
}

Test(balance, a_dead_endpoint_takes_no_calls) {
    rec_op_t r;
    ct_waker_t w;
    int i;
    wrap(2, 0);
    ct_waker_init(&w, &H.ct, on_woken);
    eps[0].poll_error = CT_ECLOSED;
    for (i = 0; i < 20; i++) {
        cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
        call(&r, (uint64_t)i);
        H_RUN_UNTIL(r.calls);
        cr_assert_eq(r.status, 0);
    }
    cr_assert_eq(eps[0].calls, 0);
    cr_assert(stats(0).dead);
    cr_assert_not(stats(1).dead);
    unwrap(2);
}

Test(balance, when_every_endpoint_is_dead_the_layer_is) {
    rec_op_t r;
    tmsg_t *m;
    ct_waker_t w;
    wrap(2, 0);
    ct_waker_init(&w, &H.ct, on_woken);
    eps[0].poll_error = CT_ECLOSED;
    eps[1].poll_error = CT_ESENDBROKEN;
    cr_assert_lt(ct_service_poll_ready(&layer.service, &w), 0);
    cr_assert_lt(ct_service_poll_ready(&layer.service, &w), 0, "and stays so");
    rec_op_init(&r);
    m = tmsg_new(1);
    cr_assert_lt(h_call(&layer.service, m, &r.op), 0);
    tmsg_free(m, NULL); /* a call that returns an error leaves the request to its caller */
    h_turns(2);
    cr_assert_eq(r.calls, 0);
    unwrap(2);
}

/* PENDING while no endpoint is ready; woken when one may be, and then it is
 * the one chosen. */
Test(balance, readiness_waits_for_any_endpoint) {
    rec_op_t r[4];
    ct_waker_t w;
    int i;
    wrap(2, 1);
    eps[0].capacity = eps[1].capacity = 2;
    ct_waker_init(&w, &H.ct, on_woken);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
        call(&r[i], (uint64_t)i);
    }
    woken = 0;
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    h_turns(2);
    cr_assert_eq(woken, 0);
    ep_complete(&eps[1], 0, 0);
    H_RUN_UNTIL(woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    cr_assert(eps[1].reserved && !eps[0].reserved, "the ready endpoint is the one reserved");
    ct_service_release(&layer.service);
    cr_assert_eq(eps[1].releases, 1, "release reaches the endpoint");
    cr_assert_eq(reservations(2), 0);
    answer_all(r, 4, 2);
    unwrap(2);
}

/* An endpoint that becomes ready without answering (a connection made)
 * wakes the layer too. */
Test(balance, an_endpoint_that_becomes_ready_wakes_the_layer) {
    rec_op_t r[2];
    ct_waker_t w;
    wrap(2, 1);
    eps[0].capacity = eps[1].capacity = 1;
    ct_waker_init(&w, &H.ct, on_woken);
    call(&r[0], 0);
    call(&r[1], 1);
    woken = 0;
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    eps[0].capacity = 2;
    ct_waitq_wake_all(&eps[0].waiters);
    H_RUN_UNTIL(woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    cr_assert(eps[0].reserved);
    ct_service_release(&layer.service);
    answer_all(r, 2, 2);
    unwrap(2);
}

/* A second READY before the call keeps the first one's choice: nothing
 * else is reserved. */
Test(balance, polling_twice_reserves_once) {
    rec_op_t r;
    ct_waker_t w;
    int i;
    wrap(4, 0);
    ct_waker_init(&w, &H.ct, on_woken);
    for (i = 0; i < 10; i++)
        cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    cr_assert_eq(reservations(4), 1);
    call(&r, 1);
    cr_assert_eq(reservations(4), 0);
    H_RUN_UNTIL(r.calls);
    unwrap(4);
}

/* Whatever the loads and readiness, a READY leaves exactly one endpoint
 * reserved, and the call goes to that one. */
Test(balance, a_ready_reserves_one_endpoint_and_the_call_uses_it) {
    rec_op_t r[200];
    ct_waker_t w;
    unsigned seed = 7;
    int i, j;
    wrap(5, 1);
    for (j = 0; j < 5; j++)
        eps[j].capacity = (size_t)(3 + j * 7);
    ct_waker_init(&w, &H.ct, on_woken);
    for (i = 0; i < 200; i++) {
        long before;
        int k, chosen = -1;
        int p = ct_service_poll_ready(&layer.service, &w);
        if (p == CT_PENDING) {
            cr_assert_eq(reservations(5), 0);
            woken = 0;
            for (j = 0; j < 5; j++)
                if (eps[j].nheld) ep_complete(&eps[j], 0, 0);
            H_RUN_UNTIL(woken);
            p = ct_service_poll_ready(&layer.service, &w);
        }
        cr_assert_eq(p, CT_READY);
        cr_assert_eq(reservations(5), 1);
        for (j = 0; j < 5; j++)
            if (eps[j].reserved) chosen = j;
        before = eps[chosen].calls;
        call(&r[i], (uint64_t)i);
        cr_assert_eq(eps[chosen].calls, before + 1, "the call went elsewhere");
        cr_assert_eq(reservations(5), 0);
        seed = seed * 1103515245u + 12345u;
        k = (int)((seed >> 8) % 5);
        if ((seed >> 16) % 3 == 0 && eps[k].nheld) ep_complete(&eps[k], 0, 0);
    }
    answer_all(r, 200, 5);
    unwrap(5);
}

Test(balance, the_in_flight_bound_holds) {
    rec_op_t r[3];
    ct_waker_t w;
    ct_balance_config_t c = config(2);
    c.max_in_flight = 2;
    wrap_with(&c, 1);
    ct_waker_init(&w, &H.ct, on_woken);
    call(&r[0], 0);
    call(&r[1], 1);
    woken = 0;
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    call(&r[2], 2); /* without a READY: refused, and its request freed */
    H_RUN_UNTIL(r[2].calls);
    cr_assert_eq(r[2].status, CT_EOVERLOADED);
    cr_assert_eq(eps[0].calls + eps[1].calls, 2);
    ep_complete_all(&eps[0], 0);
    H_RUN_UNTIL(woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    ct_service_release(&layer.service);
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(r[0].calls && r[1].calls);
    unwrap(2);
}

Test(balance, cancel_reaches_the_endpoint_and_frees_the_entry) {
    rec_op_t r[3];
    ct_balance_config_t c = config(2);
    c.max_in_flight = 2;
    wrap_with(&c, 1);
    call(&r[0], 0);
    call(&r[1], 1);
    ct_op_cancel(&r[0].op);
    H_RUN_UNTIL(r[0].calls);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(eps[0].cancels + eps[1].cancels, 1);
    call(&r[2], 2); /* the canceled call's entry is free again */
    h_turns(2);
    cr_assert_eq(r[2].calls, 0, "refused: %s", ct_err_name(r[2].status));
    cr_assert_eq(stats(0).in_flight + stats(1).in_flight, 2);
    ep_complete_all(&eps[0], 0);
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(r[1].calls && r[2].calls);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[2].status, 0);
    unwrap(2);
}

static int drained, drain_status;

static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained++;
    drain_status = status;
}

Test(balance, shutdown_drains_every_endpoint) {
    rec_op_t r[4];
    int i;
    wrap(2, 1);
    for (i = 0; i < 4; i++)
        call(&r[i], (uint64_t)i);
    drained = 0;
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    cr_assert_eq(eps[0].shutdowns + eps[1].shutdowns, 2);
    h_turns(2);
    cr_assert_eq(drained, 0, "done before the calls were answered");
    ep_complete_all(&eps[0], 0);
    h_turns(3);
    cr_assert_eq(drained, 0, "done before the second endpoint was");
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(drained);
    cr_assert_eq(drain_status, 0);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, 0);
    }
    unwrap(2);
}

Test(balance, shutdown_reports_an_endpoint_that_cannot) {
    rec_op_t r;
    wrap(2, 0);
    eps[1].service.vtable = &ep_vtable_no_shutdown;
    call(&r, 1);
    H_RUN_UNTIL(r.calls);
    drained = 0;
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    H_RUN_UNTIL(drained);
    cr_assert_eq(drain_status, CT_ENOTSUP);
    unwrap(2);
}

Test(balance, close_completes_every_call_once) {
    rec_op_t r[6];
    int i;
    wrap(3, 1);
    for (i = 0; i < 6; i++)
        call(&r[i], (uint64_t)i);
    ct_op_cancel(&r[2].op);
    h_close_service(&layer.service);
    for (i = 0; i < 6; i++) {
        cr_assert_eq(r[i].calls, 1, "call %d completed %d times", i, r[i].calls);
        cr_assert_eq(r[i].status, i == 2 ? CT_ECANCELED : CT_ECLOSED);
    }
    for (i = 0; i < 3; i++)
        cr_assert(eps[i].closed);
}

/* ---- latency-aware load (peak EWMA) ------------------------------------------ */

/* One call at a time to endpoints 0 (answers at once) and 1 (answers after
 * slow_ms): the calls endpoint 1 took. */
static long sequential_calls(ct_balance_load_t load, int n, unsigned slow_ms) {
    ct_balance_config_t c = config(2);
    rec_op_t r;
    int i;
    c.load = load;
    c.initial_rtt_us = 1; /* below either: each is timed before it is judged */
    eps_init(2, 0);
    eps[1].hold = 1;
    cr_assert_eq(ct_balance_init(&layer, &H.ct, &c), 0);
    for (i = 0; i < n; i++) {
        call(&r, (uint64_t)i);
        if (eps[1].nheld) {
            uv_sleep(slow_ms);
            ep_complete_all(&eps[1], 0);
        }
        H_RUN_UNTIL(r.calls);
        cr_assert_eq(r.status, 0);
    }
    return eps[1].calls;
}

/* With nothing in flight, counting cannot tell the two apart: about half
 * each. The round-trip time can: the slow one gets a call or two, until
 * its first answer has been timed (both start with an estimate below
 * either's time, so both are tried). */
Test(balance, counting_alone_splits_sequential_calls_evenly) {
    long slow = sequential_calls(CT_BALANCE_IN_FLIGHT, 100, 1);
    cr_assert(slow >= 25 && slow <= 75, "the slow endpoint took %ld of 100", slow);
    cr_assert_eq(stats(1).rtt_us, 0, "no estimate without CT_BALANCE_PEAK_EWMA");
    unwrap(2);
}

Test(balance, peak_ewma_sends_sequential_calls_to_the_faster_endpoint) {
    /* 30 ms: far above what a busy host adds to an answer given at once */
    long slow = sequential_calls(CT_BALANCE_PEAK_EWMA, 100, 30);
    cr_assert(slow >= 1 && slow <= 5, "the slow endpoint took %ld of 100", slow);
    cr_assert_geq(stats(1).rtt_us, 25000, "slow: %llu us", (unsigned long long)stats(1).rtt_us);
    cr_assert_leq(stats(0).rtt_us, 1000, "fast: %llu us", (unsigned long long)stats(0).rtt_us);
    unwrap(2);
}

/* A time above the estimate replaces it at once; then the estimate fades
 * (decay_ms), so that a server once slow is tried again. */
Test(balance, peak_ewma_takes_a_peak_at_once_and_forgets_it) {
    ct_balance_config_t c = config(1);
    rec_op_t r;
    c.load = CT_BALANCE_PEAK_EWMA;
    c.decay_ms = 50;
    c.initial_rtt_us = 100;
    eps_init(1, 1);
    cr_assert_eq(ct_balance_init(&layer, &H.ct, &c), 0);
    cr_assert_leq(stats(0).rtt_us, 100, "the initial estimate");
    call(&r, 0);
    uv_sleep(20);
    ep_complete_all(&eps[0], 0);
    H_RUN_UNTIL(r.calls);
    cr_assert_geq(stats(0).rtt_us, 19000, "a 20 ms answer: %llu us",
                  (unsigned long long)stats(0).rtt_us);
    uv_sleep(200); /* 4 decays: e^-4 of it is left */
    cr_assert_leq(stats(0).rtt_us, 1000, "after 200 ms: %llu us",
                  (unsigned long long)stats(0).rtt_us);
    unwrap(1);
}

Test(balance, an_unknown_load_is_refused) {
    ct_balance_config_t c = config(1);
    eps_init(1, 0);
    c.load = (ct_balance_load_t)7;
    cr_assert_eq(ct_balance_init(&layer, &H.ct, &c), CT_EINVAL);
    h_close_service(&eps[0].service);
}

/* ---- endpoints added and removed ------------------------------------------- */

static ct_service_t *handed_back[MAX_EPS];
static int nhanded_back;

static void on_removed(ct_balance_t *b, ct_service_t *endpoint, void *ctx) {
    cr_assert_eq(b, &layer);
    cr_assert_eq(ctx, (void *)&layer.cfg);
    cr_assert_eq(H.nested, 0, "a removal callback inside a call");
    cr_assert_null(endpoint->owner, "handed back still wrapped");
    handed_back[nhanded_back++] = endpoint;
}

static void remove_endpoint(size_t id) {
    cr_assert_eq(ct_balance_remove(&layer, id, on_removed, &layer.cfg), 0);
}

/* With no endpoint: poll_ready waits (w registered), and a call without a
 * READY is refused at once (its request still the caller's). */
static void no_endpoint_to_call(ct_waker_t *w) {
    rec_op_t r;
    tmsg_t *orphan = tmsg_new(7);
    woken = 0;
    ct_waker_init(w, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, w), CT_PENDING);
    rec_op_init(&r);
    cr_assert_eq(h_call(&layer.service, orphan, &r.op), CT_ENOENDPOINT);
    tmsg_free(orphan, NULL);
}

Test(balance, an_empty_balancer_waits_for_its_first_endpoint) {
    ct_balance_config_t c = config(0);
    ct_waker_t w;
    rec_op_t r;
    eps_init(1, 0);
    cr_assert_eq(ct_balance_init(&layer, &H.ct, &c), 0);
    no_endpoint_to_call(&w);
    cr_assert_eq(ct_balance_add(&layer, &eps[0].service), 0, "the first id is 0");
    H_RUN_UNTIL(woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    call(&r, 0);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 0);
    unwrap(1);
}

Test(balance, an_added_endpoint_takes_its_share) {
    enum { N = 40 };
    rec_op_t r[N];
    int i;
    wrap(1, 1);
    ep_init(1, 1);
    cr_assert_eq(ct_balance_add(&layer, &eps[1].service), 1);
    for (i = 0; i < N; i++)
        call(&r[i], (uint64_t)i);
    cr_assert_eq(eps[0].calls + eps[1].calls, N);
    cr_assert_eq(eps[0].calls, N / 2, "two endpoints share held calls evenly");
    cr_assert_eq(stats(1).calls, N / 2);
    answer_all(r, N, 2);
    unwrap(2);
}

Test(balance, adding_is_refused_for_what_cannot_be_an_endpoint) {
    wrap(2, 0);
    cr_assert_eq(ct_balance_add(&layer, NULL), CT_EINVAL);
    cr_assert_eq(ct_balance_add(&layer, &eps[0].service), CT_EINVAL, "already an endpoint");
    cr_assert_eq(ct_balance_add(&layer, &layer.service), CT_EINVAL, "itself");
    cr_assert_eq(ct_balance_remove(&layer, 2, on_removed, NULL), CT_EINVAL, "no such id");
    cr_assert_eq(ct_balance_remove(&layer, 0, NULL, NULL), CT_EINVAL, "no callback");
    unwrap(2);
}

/* Removed with calls in flight: no new calls; those in flight are
 * answered; then the endpoint is handed back, and its id is free for the
 * next one added. */
Test(balance, a_removed_endpoint_drains_then_is_handed_back) {
    enum { N = 8 };
    rec_op_t r[N], later[N];
    ct_balance_endpoint_stats_t st;
    int i;
    wrap(2, 1);
    for (i = 0; i < N; i++)
        call(&r[i], (uint64_t)i);
    cr_assert_eq(eps[1].calls, N / 2);
    nhanded_back = 0;
    remove_endpoint(1);
    cr_assert_eq(ct_balance_remove(&layer, 1, on_removed, &layer.cfg), CT_EINVAL, "twice");
    cr_assert(stats(1).removing);
    for (i = 0; i < N; i++)
        call(&later[i], (uint64_t)(N + i));
    cr_assert_eq(eps[1].calls, N / 2, "a removed endpoint got a call");
    cr_assert_eq(eps[0].calls, N / 2 + N);
    h_turns(3);
    cr_assert_eq(nhanded_back, 0, "handed back with calls in flight");
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(nhanded_back == 1);
    cr_assert_eq(handed_back[0], &eps[1].service);
    cr_assert(!eps[1].closed, "the layer closed what it handed back");
    cr_assert_eq(ct_counter_read(&layer.metrics.added), 2);
    cr_assert_eq(ct_counter_read(&layer.metrics.removed), 1);
    cr_assert_eq(ct_gauge_read(&layer.metrics.endpoints), 1);
    cr_assert_eq(ct_balance_endpoint_stats(&layer, 1, &st), CT_EINVAL, "the id is free");
    ep_complete_all(&eps[0], 0);
    for (i = 0; i < N; i++) {
        H_RUN_UNTIL(r[i].calls && later[i].calls);
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, 0);
        cr_assert_eq(later[i].status, 0);
    }
    h_close_service(&eps[1].service); /* the caller's now */
    h_close_service(&layer.service);
    cr_assert(eps[0].closed);
}

Test(balance, the_lowest_free_id_is_given_again) {
    wrap(3, 0);
    nhanded_back = 0;
    remove_endpoint(1);
    H_RUN_UNTIL(nhanded_back == 1);
    ep_init(3, 0);
    cr_assert_eq(ct_balance_add(&layer, &eps[3].service), 1);
    cr_assert_eq(ct_balance_add(&layer, &eps[1].service), 3, "the one handed back, as a new one");
    h_close_service(&layer.service);
    cr_assert(eps[0].closed && eps[1].closed && eps[2].closed && eps[3].closed);
}

/* The endpoint a READY chose is removed: its reservation is given back,
 * and the next READY chooses another. */
Test(balance, removing_the_chosen_endpoint_gives_back_its_reservation) {
    rec_op_t r;
    size_t chosen;
    wrap(2, 0);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    cr_assert_eq(reservations(2), 1);
    chosen = eps[0].reserved ? 0 : 1;
    nhanded_back = 0;
    remove_endpoint(chosen);
    cr_assert_eq(eps[chosen].reserved, 0, "the reservation was kept");
    cr_assert_eq(eps[chosen].releases, 1);
    call(&r, 0);
    H_RUN_UNTIL(r.calls && nhanded_back == 1);
    cr_assert_eq(eps[1 - chosen].calls, 1);
    cr_assert_eq(eps[chosen].calls, 0);
    h_close_service(&eps[chosen].service);
    h_close_service(&layer.service);
}

Test(balance, with_every_endpoint_removed_calls_find_none) {
    ct_waker_t w;
    wrap(2, 0);
    nhanded_back = 0;
    remove_endpoint(0);
    remove_endpoint(1);
    H_RUN_UNTIL(nhanded_back == 2);
    no_endpoint_to_call(&w);
    ct_waker_cancel(&w);
    h_close_service(&eps[0].service);
    h_close_service(&eps[1].service);
    h_close_service(&layer.service);
}

/* Two endpoints holding four calls, endpoint 1 being removed. */
static void four_held_one_removed(rec_op_t r[4]) {
    int i;
    wrap(2, 1);
    for (i = 0; i < 4; i++)
        call(&r[i], (uint64_t)i);
    nhanded_back = 0;
    remove_endpoint(1);
}

/* Shutdown waits for an endpoint being removed to be handed back, and
 * refuses new ones. */
Test(balance, shutdown_waits_for_endpoints_being_removed) {
    rec_op_t r[4];
    int i;
    four_held_one_removed(r);
    drained = 0;
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    ep_init(2, 0);
    cr_assert_eq(ct_balance_add(&layer, &eps[2].service), CT_ESHUTDOWN);
    h_close_service(&eps[2].service);
    ep_complete_all(&eps[0], 0);
    h_turns(3);
    cr_assert_eq(drained, 0, "done before the removed endpoint drained");
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(drained && nhanded_back == 1);
    cr_assert_eq(drain_status, 0);
    for (i = 0; i < 4; i++)
        cr_assert_eq(r[i].status, 0);
    h_close_service(&eps[1].service);
    h_close_service(&layer.service);
}

/* Close: an endpoint being removed is closed with the others, its calls
 * end once, and it is not handed back. */
Test(balance, close_closes_endpoints_being_removed) {
    rec_op_t r[4];
    int i;
    four_held_one_removed(r);
    h_close_service(&layer.service);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ECLOSED);
    }
    cr_assert(eps[0].closed && eps[1].closed);
    h_turns(3);
    cr_assert_eq(nhanded_back, 0, "handed back after the layer closed it");
    ep_init(2, 0);
    cr_assert_eq(ct_balance_add(&layer, &eps[2].service), CT_ECLOSING);
    h_close_service(&eps[2].service);
}

/* Random calls, cancels, answers and failures over four endpoints: every
 * call completes exactly once, with its own answer or an error, and nothing
 * leaks. */
static void random_run(unsigned seed) {
    enum { N = 400 };
    static rec_op_t r[N];
    static const int failures[] = {0, 0, 0, CT_ECONNECT, CT_ERECVBROKEN, CT_EOVERLOADED};
    ct_balance_config_t c = config(4);
    ct_waker_t w;
    int next = 0, i, j;
    c.pause_min_ms = 1;
    c.pause_max_ms = 4;
    c.max_in_flight = 32;
    wrap_with(&c, 1);
    ct_waker_init(&w, &H.ct, on_woken);
    eps[3].capacity = 4;
    while (next < N) {
        seed = seed * 1103515245u + 12345u;
        switch ((seed >> 16) % 5) {
        case 0:
        case 1:
            if (ct_service_poll_ready(&layer.service, &w) == CT_READY) {
                call(&r[next], (uint64_t)next);
                next++;
            }
            break;
        case 2: {
            int k = next - 1 - (int)((seed >> 4) % 8);
            if (k >= 0 && ct_op_is_pending(&r[k].op)) ct_op_cancel(&r[k].op);
            break;
        }
        case 3: {
            ep_t *e = &eps[(seed >> 8) % 4];
            if (e->nheld) ep_complete(e, (seed >> 3) % e->nheld, failures[(seed >> 12) % 6]);
            break;
        }
        default:
            h_turns(1);
        }
    }
    for (j = 0; j < 4; j++)
        ep_complete_all(&eps[j], 0);
    for (i = 0; i < N; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1);
        if (r[i].status == 0) cr_assert_eq(r[i].response_id, (uint64_t)i);
    }
    for (j = 0; j < 4; j++)
        cr_assert_eq(stats((size_t)j).in_flight, 0);
    unwrap(4);
}

Test(balance, random_runs_complete_every_call_once) {
    unsigned seed;
    for (seed = 1; seed <= 5; seed++)
        random_run(seed);
}

/* Once the layer shuts down, its endpoints are shutting down too: taking
 * one out then is refused. */
Test(balance, removing_during_shutdown_is_refused) {
    rec_op_t r[2];
    wrap(2, 1);
    call(&r[0], 0);
    call(&r[1], 1);
    drained = 0;
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    cr_assert_eq(ct_balance_remove(&layer, 0, on_removed, &layer.cfg), CT_ESHUTDOWN);
    ep_complete_all(&eps[0], 0);
    ep_complete_all(&eps[1], 0);
    H_RUN_UNTIL(drained && r[0].calls && r[1].calls);
    cr_assert_eq(drain_status, 0);
    unwrap(2);
}
