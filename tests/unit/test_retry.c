/* The retry layer: what is tried again and what is not, attempts, pauses,
 * the budget, cancel, close and shutdown at every stage, and a call that
 * outlives a server's restart through a reconnecting client. */
#include "testutil.h"

#include <string.h>

TestSuite(retry, .init = h_setup, .fini = h_teardown);

/* ---- a flaky inner service ------------------------------------------------- */

/* Fails its next `failures` calls with fail_status (cause fail_cause), refuses
 * its next `refusals` calls at once with refuse_status, answers the others
 * (the answer is the request) at once, or holds them when hold is set. */
typedef struct flaky {
    ct_service_t service;
    int failures, fail_status, fail_cause;
    int refusals, refuse_status;
    int hold;
    ct_op_t *held_op[64];
    void *held_req[64];
    int nheld;
    int calls;
    uint64_t call_ns[16]; /* when each call came */
    uint64_t ids[64];     /* which request each call carried */
    uint64_t last_id;
    int shutdowns;
    int ctx_attempt[16]; /* each call's context's attempt, -1 without one */
} flaky_t;

static flaky_t inner;

static int flaky_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    (void)svc;
    (void)waker;
    return CT_READY;
}

static int flaky_call(ct_service_t *svc, void *req, ct_op_t *op) {
    flaky_t *f = (flaky_t *)svc;
    if (f->refusals > 0) {
        f->refusals--;
        return f->refuse_status; /* nothing started: req stays the caller's */
    }
    if (f->calls < 16) f->call_ns[f->calls] = uv_hrtime();
    if (f->calls < 64) f->ids[f->calls] = tmsg_id(req);
    if (f->calls < 16) f->ctx_attempt[f->calls] = op->ctx ? op->ctx->attempt : -1;
    f->calls++;
    f->last_id = tmsg_id(req);
    if (f->failures > 0) {
        f->failures--;
        tmsg_free(req, NULL);
        ct_op_complete(op, f->fail_status, f->fail_cause, NULL);
    } else if (f->hold) {
        cr_assert_lt(f->nheld, 64);
        f->held_op[f->nheld] = op;
        f->held_req[f->nheld++] = req;
    } else {
        ct_op_complete(op, 0, 0, req);
    }
    return 0;
}

/* Takes held op i out: the rest move down. */
static ct_op_t *unhold(flaky_t *f, int i, void **req) {
    ct_op_t *op = f->held_op[i];
    *req = f->held_req[i];
    memmove(&f->held_op[i], &f->held_op[i + 1], (size_t)(f->nheld - i - 1) * sizeof *f->held_op);
    memmove(&f->held_req[i], &f->held_req[i + 1], (size_t)(f->nheld - i - 1) * sizeof *f->held_req);
    f->nheld--;
    return op;
}

/* Completes held op i: echo if status is 0. */
static void flaky_complete(flaky_t *f, int i, int status, int cause) {
    void *req;
    ct_op_t *op = unhold(f, i, &req);
    if (status == 0) {
        ct_op_complete(op, 0, 0, req);
    } else {
        tmsg_free(req, NULL);
        ct_op_complete(op, status, cause, NULL);
    }
    if (f->nheld == 0 && ct_service_is_shutting_down(&f->service))
        ct_service_shutdown_done(&f->service, 0);
}

static void flaky_cancel(ct_service_t *svc, ct_op_t *op) {
    flaky_t *f = (flaky_t *)svc;
    int i;
    for (i = 0; i < f->nheld; i++)
        if (f->held_op[i] == op) {
            flaky_complete(f, i, CT_ECANCELED, 0);
            return;
        }
}

static int flaky_shutdown(ct_service_t *svc) {
    flaky_t *f = (flaky_t *)svc;
    f->shutdowns++;
    if (f->nheld == 0) ct_service_shutdown_done(svc, 0);
    return 0;
}

static void flaky_close(ct_service_t *svc) {
    flaky_t *f = (flaky_t *)svc;
    while (f->nheld > 0)
        flaky_complete(f, 0, CT_ECLOSED, 0);
    ct_service_closed(svc);
}

static const ct_service_vtable_t flaky_vtable = {
    flaky_poll_ready, flaky_call, flaky_cancel, NULL, flaky_shutdown, flaky_close, NULL,
};

static void flaky_init(flaky_t *f) {
    memset(f, 0, sizeof *f);
    ct_service_init(&f->service, &H.ct, &flaky_vtable);
}

/* ---- the layer under test --------------------------------------------------- */

static ct_retry_t layer;
static int copies, fail_copies;

static void *copy_tmsg(const void *msg, void *ctx) {
    (void)ctx;
    if (fail_copies) return NULL;
    copies++;
    return tmsg_new(((const tmsg_t *)msg)->id);
}

static ct_retry_config_t config(void) {
    ct_retry_config_t c;
    memset(&c, 0, sizeof c);
    c.copy = copy_tmsg;
    c.free_msg = tmsg_free;
    c.backoff_min_ms = 1;
    c.backoff_max_ms = 2;
    return c;
}

static void wrap_with(const ct_retry_config_t *c) {
    copies = fail_copies = 0;
    flaky_init(&inner);
    cr_assert_eq(ct_retry_init(&layer, &H.ct, &inner.service, c), 0);
}

static void wrap(void) {
    ct_retry_config_t c = config();
    wrap_with(&c);
}

static void unwrap(void) {
    h_close_service(&layer.service);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(id), &r->op), 0);
}

/* The inner service fails its next n calls with status (and cause). */
static void fail_next(int n, int status, int cause) {
    inner.failures = n;
    inner.fail_status = status;
    inner.fail_cause = cause;
}

/* Calls with request id and runs the loop until the op completes. */
static void call_and_wait(rec_op_t *r, uint64_t id) {
    call(r, id);
    H_RUN_UNTIL(r->calls);
}

/* ---- tests ------------------------------------------------------------------ */

Test(retry, bad_configurations_are_refused) {
    ct_retry_t t;
    ct_retry_config_t c = config();
    flaky_init(&inner);
    cr_assert_eq(ct_retry_init(&t, &H.ct, &inner.service, NULL), CT_EINVAL);
    c.copy = NULL;
    cr_assert_eq(ct_retry_init(&t, &H.ct, &inner.service, &c), CT_EINVAL, "no copy function");
    c = config();
    c.retry_on = (ct_retry_on_t)7;
    cr_assert_eq(ct_retry_init(&t, &H.ct, &inner.service, &c), CT_EINVAL);
    c = config();
    c.backoff_min_ms = 50;
    c.backoff_max_ms = 20;
    cr_assert_eq(ct_retry_init(&t, &H.ct, &inner.service, &c), CT_EINVAL);
    c = config();
    c.budget_percent = 1001;
    cr_assert_eq(ct_retry_init(&t, &H.ct, &inner.service, &c), CT_EINVAL);
    cr_assert_null(inner.service.owner, "a refused init leaves the inner service alone");
    h_close_service(&inner.service);
}

Test(retry, an_answer_passes_through_and_the_copy_is_freed) {
    rec_op_t r;
    wrap();
    call_and_wait(&r, 7);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 7);
    cr_assert_eq(inner.calls, 1);
    cr_assert_eq(copies, 1, "one copy, kept in case of a retry");
    cr_assert_eq(ct_retry_counts(&layer).retries, 0);
    unwrap(); /* the teardown checks that no message leaked */
}

Test(retry, a_request_that_never_left_is_tried_again_until_it_is_answered) {
    rec_op_t r;
    wrap();
    fail_next(2, CT_ECONNECT, UV_ECONNREFUSED);
    call_and_wait(&r, 3);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 3);
    cr_assert_eq(inner.calls, 3);
    cr_assert_eq(inner.last_id, 3, "each attempt carries the same request");
    cr_assert_eq(ct_retry_counts(&layer).retries, 2);
    h_turns(3);
    cr_assert_eq(r.calls, 1);
    unwrap();
}

Test(retry, overload_is_tried_again) {
    rec_op_t r;
    wrap();
    fail_next(1, CT_EOVERLOADED, 0);
    call_and_wait(&r, 1);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(inner.calls, 2);
    unwrap();
}

/* The server may have run a request whose connection broke: by default it
 * is not sent again, and the caller sees the error and its cause. */
Test(retry, a_broken_connection_is_not_tried_again_by_default) {
    static const int kinds[] = {CT_ERECVBROKEN, CT_ESENDBROKEN, CT_ETIMEDOUT, CT_ECANCELED,
                                CT_SERVICE_ERROR(4)};
    size_t i;
    for (i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        rec_op_t r;
        wrap();
        fail_next(1, kinds[i], UV_ECONNRESET);
        call_and_wait(&r, 1);
        cr_assert_eq(r.status, kinds[i]);
        cr_assert_eq(r.cause, UV_ECONNRESET);
        cr_assert_eq(inner.calls, 1, "%s went out again", ct_err_name(kinds[i]));
        unwrap();
    }
}

Test(retry, idempotent_requests_are_tried_again_after_a_broken_connection_or_a_timeout) {
    static const int kinds[] = {CT_ERECVBROKEN, CT_ESENDBROKEN, CT_ETIMEDOUT, CT_ECONNECT};
    size_t i;
    for (i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        rec_op_t r;
        ct_retry_config_t c = config();
        c.retry_on = CT_RETRY_IDEMPOTENT;
        wrap_with(&c);
        fail_next(1, kinds[i], 0);
        call_and_wait(&r, 9);
        cr_assert_eq(r.status, 0, "%s", ct_err_name(kinds[i]));
        cr_assert_eq(r.response_id, 9);
        cr_assert_eq(inner.calls, 2);
        unwrap();
    }
}

Test(retry, the_last_attempts_outcome_reaches_the_caller_when_attempts_run_out) {
    rec_op_t r;
    ct_retry_config_t c = config();
    c.max_attempts = 4;
    wrap_with(&c);
    fail_next(10, CT_ECONNECT, UV_ECONNREFUSED);
    call_and_wait(&r, 1);
    cr_assert_eq(r.status, CT_ECONNECT);
    cr_assert_eq(r.cause, UV_ECONNREFUSED);
    cr_assert_eq(inner.calls, 4);
    cr_assert_eq(ct_retry_counts(&layer).retries, 3);
    cr_assert_eq(ct_retry_counts(&layer).exhausted, 1);
    unwrap();
}

Test(retry, one_attempt_makes_no_copy) {
    rec_op_t r;
    ct_retry_config_t c = config();
    c.max_attempts = 1;
    wrap_with(&c);
    fail_next(1, CT_ECONNECT, 0);
    call_and_wait(&r, 1);
    cr_assert_eq(r.status, CT_ECONNECT);
    cr_assert_eq(copies, 0);
    cr_assert_eq(inner.calls, 1);
    unwrap();
}

Test(retry, without_a_copy_a_call_goes_without_retries) {
    rec_op_t r;
    wrap();
    fail_copies = 1;
    fail_next(1, CT_ECONNECT, 0);
    call_and_wait(&r, 1);
    cr_assert_eq(r.status, CT_ECONNECT);
    cr_assert_eq(inner.calls, 1);
    unwrap();
}

Test(retry, a_copy_that_fails_before_a_retry_leaves_the_previous_outcome) {
    rec_op_t r;
    ct_retry_config_t c = config();
    c.backoff_min_ms = c.backoff_max_ms = 20;
    wrap_with(&c);
    fail_next(1, CT_ECONNECT, UV_ECONNREFUSED);
    call(&r, 1);
    h_turns(2);
    cr_assert_eq(inner.calls, 1);
    fail_copies = 1; /* the copy made at the call exists; the next one fails */
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECONNECT);
    cr_assert_eq(r.cause, UV_ECONNREFUSED);
    cr_assert_eq(inner.calls, 1);
    unwrap();
}

/* An attempt the inner service refuses at once (nothing started) counts as
 * an attempt with that outcome. */
Test(retry, an_attempt_refused_at_once_is_an_attempt) {
    rec_op_t r;
    wrap();
    fail_next(1, CT_EOVERLOADED, 0);
    call(&r, 5);
    inner.refusals = 1;
    inner.refuse_status = CT_EOVERLOADED;
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0, "attempt 1 failed, attempt 2 was refused, attempt 3 answered");
    cr_assert_eq(r.response_id, 5);
    cr_assert_eq(ct_retry_counts(&layer).retries, 2);
    unwrap();
}

/* A call the inner service refuses at once is refused to the caller, with
 * the request still the caller's, and no callback. */
Test(retry, a_first_attempt_refused_at_once_is_the_callers_error) {
    rec_op_t r;
    tmsg_t *m = tmsg_new(1);
    wrap();
    inner.refusals = 1;
    inner.refuse_status = CT_ESHUTDOWN;
    rec_op_init(&r);
    cr_assert_eq(h_call(&layer.service, m, &r.op), CT_ESHUTDOWN);
    tmsg_free(m, NULL);
    h_turns(3);
    cr_assert_eq(r.calls, 0);
    call(&r, 2); /* the entry came back */
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    unwrap();
}

Test(retry, the_pause_doubles_between_attempts) {
    rec_op_t r;
    ct_retry_config_t c = config();
    c.backoff_min_ms = 40;
    c.backoff_max_ms = 1000;
    c.max_attempts = 4;
    wrap_with(&c);
    fail_next(3, CT_ECONNECT, 0);
    call_and_wait(&r, 1);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(inner.calls, 4);
    /* drawn between half and all of 40, 80, 160 ms; the lower bounds are
     * what no machine can undercut */
    cr_assert_geq(inner.call_ns[1] - inner.call_ns[0], 20000000ull);
    cr_assert_geq(inner.call_ns[2] - inner.call_ns[1], 40000000ull);
    cr_assert_geq(inner.call_ns[3] - inner.call_ns[2], 80000000ull);
    unwrap();
}

/* 50 calls fail at their first attempt: 10% of the calls plus 1 a second
 * over the 10 s window allow 5 + 10 retries; the other 35 fail as they are. */
Test(retry, the_budget_bounds_the_retries) {
    rec_op_t r[50];
    ct_retry_counts_t n;
    int i, failed = 0;
    ct_retry_config_t c = config();
    c.budget_percent = 10;
    c.budget_min_per_s = 1;
    c.max_attempts = 2;
    wrap_with(&c);
    fail_next(50, CT_ECONNECT, UV_ECONNREFUSED); /* the first attempts; the retries are answered */
    for (i = 0; i < 50; i++)
        call(&r[i], (uint64_t)i);
    H_RUN_UNTIL(layer.busy == 0);
    h_turns(2); /* the last callbacks were queued as the entries came back */
    for (i = 0; i < 50; i++) {
        cr_assert_eq(r[i].calls, 1);
        if (r[i].status != 0) {
            cr_assert_eq(r[i].status, CT_ECONNECT);
            cr_assert_eq(r[i].cause, UV_ECONNREFUSED);
            failed++;
        } else {
            cr_assert_eq(r[i].response_id, (uint64_t)i);
        }
    }
    n = ct_retry_counts(&layer);
    cr_assert_eq(n.retries, 15);
    cr_assert_eq(n.budget_refusals, 35);
    cr_assert_eq(failed, 35);
    cr_assert_eq(inner.calls, 65);
    unwrap();
}

static int policy_calls;
static uint64_t policy_request_id;

/* Retries the first answer (say, a server still loading), takes the next. */
static int retry_first_answer(void *ctx, const void *request, int status, int cause,
                              const void *response) {
    (void)ctx;
    (void)cause;
    policy_request_id = tmsg_id((void *)request);
    return status == 0 && response && policy_calls++ == 0;
}

Test(retry, a_policy_can_retry_an_answer) {
    rec_op_t r;
    ct_retry_config_t c = config();
    c.policy = retry_first_answer;
    policy_calls = 0;
    wrap_with(&c);
    call_and_wait(&r, 11);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 11);
    cr_assert_eq(inner.calls, 2);
    cr_assert_eq(policy_calls, 2);
    cr_assert_eq(policy_request_id, 11, "the policy sees the request");
    unwrap(); /* the first answer was freed: the teardown counts messages */
}

Test(retry, cancel_while_waiting_for_the_next_attempt) {
    rec_op_t r;
    ct_retry_config_t c = config();
    c.backoff_min_ms = c.backoff_max_ms = 10000;
    wrap_with(&c);
    fail_next(1, CT_ECONNECT, 0);
    call(&r, 1);
    h_turns(3);
    cr_assert_eq(inner.calls, 1);
    cr_assert_eq(r.calls, 0, "waiting for its next attempt");
    ct_op_cancel(&r.op);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECANCELED);
    cr_assert_eq(layer.busy, 0);
    cr_assert_eq(inner.calls, 1, "never tried again");
    unwrap();
}

Test(retry, cancel_while_an_attempt_is_in_flight) {
    rec_op_t r;
    wrap();
    inner.hold = 1;
    call(&r, 1);
    h_turns(1);
    cr_assert_eq(inner.nheld, 1);
    ct_op_cancel(&r.op);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECANCELED);
    cr_assert_eq(inner.nheld, 0, "the attempt was canceled in the inner service");
    h_turns(2);
    cr_assert_eq(layer.busy, 0);
    cr_assert_eq(r.calls, 1);
    unwrap();
}

Test(retry, close_ends_waiting_calls_and_attempts_in_flight) {
    rec_op_t waiting, flying;
    ct_retry_config_t c = config();
    c.backoff_min_ms = c.backoff_max_ms = 10000;
    wrap_with(&c);
    inner.hold = 1;
    call(&waiting, 1);
    call(&flying, 2);
    h_turns(1);
    flaky_complete(&inner, 0, CT_ECONNECT, 0); /* request 1 waits 10 s */
    h_turns(2);
    cr_assert_eq(inner.nheld, 1);
    unwrap();
    cr_assert_eq(waiting.calls, 1);
    cr_assert_eq(waiting.status, CT_ECLOSED);
    cr_assert_eq(flying.calls, 1);
    cr_assert_eq(flying.status, CT_ECLOSED, "what the inner service's close gave it");
    cr_assert_eq(inner.calls, 2);
}

static int drained, drain_status;

static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained++;
    drain_status = status;
}

Test(retry, shutdown_lets_retries_finish_then_shuts_the_inner_service_down) {
    rec_op_t r, late;
    tmsg_t *m;
    ct_retry_config_t c = config();
    c.backoff_min_ms = c.backoff_max_ms = 30;
    wrap_with(&c);
    fail_next(1, CT_ECONNECT, 0);
    drained = 0;
    call(&r, 4);
    h_turns(2);
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    rec_op_init(&late);
    m = tmsg_new(5);
    cr_assert_eq(h_call(&layer.service, m, &late.op), CT_ESHUTDOWN);
    tmsg_free(m, NULL); /* refused: still ours */
    cr_assert_eq(inner.shutdowns, 0, "a retry is still to go out");
    H_RUN_UNTIL(drained);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, 0, "the retry went out during the shutdown");
    cr_assert_eq(drain_status, 0);
    cr_assert_eq(inner.shutdowns, 1);
    unwrap();
}

static int woken;

static void on_woken(ct_waker_t *w) {
    (void)w;
    woken++;
}

Test(retry, readiness_follows_the_entries) {
    rec_op_t a, b;
    ct_waker_t w;
    ct_retry_config_t c = config();
    c.max_in_flight = 1;
    wrap_with(&c);
    inner.hold = 1;
    woken = 0;
    ct_waker_init(&w, &H.ct, on_woken);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_READY);
    call(&a, 1);
    cr_assert_eq(ct_service_poll_ready(&layer.service, &w), CT_PENDING);
    call(&b, 2); /* without a READY: refused as overloaded, not lost */
    H_RUN_UNTIL(b.calls);
    cr_assert_eq(b.status, CT_EOVERLOADED);
    flaky_complete(&inner, 0, 0, 0);
    H_RUN_UNTIL(a.calls);
    cr_assert_eq(a.status, 0);
    H_RUN_UNTIL(woken >= 1); /* the waker, woken when the entry came back */
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    unwrap();
}

/* The copy hooks for ct_buf_t messages. */
Test(retry, buffers_copy_with_and_without_a_pool) {
    ct_buf_pool_t pool;
    ct_buf_t *b = ct_buf_from("hello", 5), *c, *d;
    ct_buf_pool_init(&pool, 16, 4);
    c = ct_buf_copy_msg(b, NULL);
    d = ct_buf_pool_copy_msg(b, &pool);
    cr_assert(c && d && c != b && d != b);
    cr_assert_eq(c->len, 5);
    cr_assert_eq(d->len, 5);
    cr_assert_eq(memcmp(c->base, "hello", 5), 0);
    cr_assert_eq(memcmp(d->base, "hello", 5), 0);
    cr_assert_eq(d->cap, 16, "a pooled buffer");
    ct_buf_free(b);
    ct_buf_free(c);
    ct_buf_pool_put(&pool, d);
    ct_buf_pool_destroy(&pool);
}

/* Random calls, cancels and attempt outcomes (answers, and failures that are
 * and are not retried), with pauses of 1-2 ms: every op completes exactly
 * once, with its own request's answer, CT_ECANCELED, or the failure its
 * last attempt met; nothing leaks (the teardown counts messages). */
static void random_run(unsigned seed, int keep_order) {
    enum { OPS = 400 };
    static rec_op_t r[OPS];
    static const int outcomes[] = {0, 0, CT_ECONNECT, CT_EOVERLOADED, CT_ERECVBROKEN};
    ct_retry_config_t c = config();
    int next = 0, i, steps;
    c.max_in_flight = 32;
    c.max_attempts = 3;
    c.budget_min_per_s = 1000;
    c.keep_order = keep_order;
    wrap_with(&c);
    inner.hold = 1;
    for (steps = 0; next < OPS || layer.busy > 0; steps++) {
        seed = seed * 1103515245u + 12345u;
        cr_assert_lt(steps, 200000, "the run does not end");
        if (next < OPS && layer.nfree > 0 && (seed >> 8) % 3 == 0) {
            call(&r[next], (uint64_t)next);
            next++;
        }
        if ((seed >> 12) % 8 == 0 && next > 0) {
            int k = (int)((seed >> 16) % (unsigned)next);
            if (ct_op_is_pending(&r[k].op)) ct_op_cancel(&r[k].op);
        }
        if (inner.nheld > 0 && (seed >> 20) % 2 == 0) {
            int k = (int)((seed >> 4) % (unsigned)inner.nheld);
            int status = next < OPS ? outcomes[(seed >> 24) % 5] : 0;
            flaky_complete(&inner, k, status, status ? UV_ECONNRESET : 0);
        }
        h_turns(1);
        if ((seed >> 28) % 4 == 0) uv_sleep(1);
    }
    h_turns(3);
    for (i = 0; i < OPS; i++) {
        cr_assert_eq(r[i].calls, 1, "op %d completed %d times", i, r[i].calls);
        if (r[i].status == 0)
            cr_assert_eq(r[i].response_id, (uint64_t)i, "op %d got another answer", i);
        else
            cr_assert(r[i].status == CT_ECANCELED || r[i].status == CT_ERECVBROKEN ||
                          r[i].status == CT_ECONNECT || r[i].status == CT_EOVERLOADED,
                      "op %d: %s", i, ct_err_name(r[i].status));
    }
    cr_assert_gt(ct_retry_counts(&layer).retries, 0);
    unwrap();
}

Test(retry, random_calls_cancels_and_failures_complete_every_op_once) {
    unsigned seed;
    for (seed = 1; seed <= 4; seed++)
        random_run(seed, 0);
    for (seed = 5; seed <= 7; seed++)
        random_run(seed, 1); /* calls queue behind the ones waiting */
}

/* keep_order: 8 calls fail, then their retries, each after its own random
 * pause of 20-40 ms, still go out in call order. */
Test(retry, keep_order_sends_retries_in_call_order) {
    rec_op_t r[8];
    int i, round;
    ct_retry_config_t c = config();
    c.keep_order = 1;
    c.backoff_min_ms = 40;
    c.backoff_max_ms = 1000;
    wrap_with(&c);
    inner.hold = 1;
    for (round = 0; round < 3; round++) {
        int first = inner.calls;
        for (i = 0; i < 8; i++)
            call(&r[i], (uint64_t)i);
        h_turns(1);
        while (inner.nheld > 0)
            flaky_complete(&inner, 0, CT_ECONNECT, 0);
        H_RUN_UNTIL(inner.nheld == 8);
        for (i = 0; i < 8; i++)
            cr_assert_eq(inner.ids[first + 8 + i], (uint64_t)i, "round %d: retry %d went out as %d",
                         round, i, (int)inner.ids[first + 8 + i]);
        while (inner.nheld > 0)
            flaky_complete(&inner, 0, 0, 0);
        H_RUN_UNTIL(r[7].calls);
        for (i = 0; i < 8; i++)
            cr_assert_eq(r[i].response_id, (uint64_t)i);
    }
    unwrap();
}

/* keep_order: a call made while another waits for its retry goes after it;
 * its own first attempt is not a retry. */
Test(retry, keep_order_queues_a_new_call_behind_a_waiting_one) {
    rec_op_t a, b;
    ct_retry_config_t c = config();
    c.keep_order = 1;
    c.backoff_min_ms = c.backoff_max_ms = 20;
    wrap_with(&c);
    fail_next(1, CT_ECONNECT, 0);
    call(&a, 1);
    h_turns(2);
    cr_assert_eq(inner.calls, 1);
    call(&b, 2);
    h_turns(1);
    cr_assert_eq(inner.calls, 1, "the new call waits behind the first one");
    H_RUN_UNTIL(a.calls && b.calls);
    cr_assert_eq(a.status, 0);
    cr_assert_eq(b.status, 0);
    cr_assert_eq(inner.calls, 3);
    cr_assert_eq(inner.ids[1], 1);
    cr_assert_eq(inner.ids[2], 2);
    cr_assert_eq(ct_retry_counts(&layer).retries, 1);
    unwrap();
}

Test(retry, keep_order_a_queued_call_can_be_canceled_and_closed) {
    rec_op_t a, b, d;
    ct_retry_config_t c = config();
    c.keep_order = 1;
    c.backoff_min_ms = c.backoff_max_ms = 10000;
    wrap_with(&c);
    fail_next(1, CT_ECONNECT, 0);
    call(&a, 1);
    h_turns(2);
    call(&b, 2);
    call(&d, 3);
    ct_op_cancel(&b.op);
    H_RUN_UNTIL(b.calls);
    cr_assert_eq(b.status, CT_ECANCELED);
    cr_assert_eq(inner.calls, 1, "never sent");
    unwrap();
    cr_assert_eq(a.status, CT_ECLOSED);
    cr_assert_eq(d.status, CT_ECLOSED);
    cr_assert_eq(inner.calls, 1);
}

/* ---- the caller's deadline ---------------------------------------------------- */

Test(retry, each_attempt_carries_the_context_with_its_number) {
    rec_op_t r;
    ct_context_t ctx;
    wrap();
    inner.failures = 2;
    inner.fail_status = CT_ECONNECT;
    h_call_with_deadline(&layer.service, &r, &ctx, 10000, 9);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(inner.calls, 3);
    cr_assert_eq(inner.ctx_attempt[0], 0);
    cr_assert_eq(inner.ctx_attempt[1], 1);
    cr_assert_eq(inner.ctx_attempt[2], 2);
    cr_assert_eq(ctx.attempt, 0, "the caller's own context is left as it was");
    unwrap();
}

Test(retry, a_call_without_context_gives_none_to_its_attempts) {
    rec_op_t r;
    wrap();
    inner.failures = 1;
    inner.fail_status = CT_ECONNECT;
    call(&r, 9);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(inner.ctx_attempt[0], -1);
    cr_assert_eq(inner.ctx_attempt[1], -1);
    unwrap();
}

/* The pause (at least 100 ms) would end past the deadline (30 ms): the
 * caller hears of its deadline at once, not after the pause. */
Test(retry, no_pause_past_the_deadline) {
    rec_op_t r;
    ct_context_t ctx;
    ct_retry_config_t c = config();
    uint64_t t0;
    c.backoff_min_ms = 200;
    c.backoff_max_ms = 200;
    wrap_with(&c);
    inner.failures = 5;
    inner.fail_status = CT_ECONNECT;
    t0 = uv_now(&H.uv);
    ct_context_init(&ctx);
    ct_context_set_timeout(&ctx, t0, 30);
    rec_op_init(&r);
    r.op.ctx = &ctx;
    cr_assert_eq(h_call(&layer.service, tmsg_new(9), &r.op), 0);
    H_RUN_UNTIL(r.calls);
    uv_update_time(&H.uv);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(r.cause, CT_EDEADLINE);
    cr_assert_eq(inner.calls, 1, "no attempt after the first");
    cr_assert_lt(uv_now(&H.uv) - t0, 100, "it waited for the pause");
    cr_assert_eq(ct_retry_counts(&layer).deadline_refusals, 1);
    unwrap();
}

/* Attempts that fail after the deadline has come are not tried again,
 * although attempts remain. */
Test(retry, no_attempt_after_the_deadline) {
    rec_op_t r;
    ct_context_t ctx;
    ct_retry_config_t c = config();
    c.max_attempts = 100;
    c.backoff_min_ms = 5;
    c.backoff_max_ms = 5;
    c.budget_min_per_s = 1000;
    wrap_with(&c);
    inner.failures = 1000;
    inner.fail_status = CT_ECONNECT;
    h_call_with_deadline(&layer.service, &r, &ctx, 40, 9);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(r.cause, CT_EDEADLINE);
    cr_assert_gt(inner.calls, 1, "it was tried again before the deadline");
    cr_assert_lt(inner.calls, 100);
    h_turns(5);
    cr_assert_eq(r.calls, 1);
    unwrap();
}

Test(retry, a_call_past_its_deadline_does_not_start) {
    rec_op_t r;
    ct_context_t ctx;
    tmsg_t *m = tmsg_new(1);
    wrap();
    ct_context_init(&ctx);
    ctx.deadline_ms = uv_now(&H.uv); /* now: passed */
    rec_op_init(&r);
    r.op.ctx = &ctx;
    cr_assert_eq(ct_service_call(&layer.service, m, &r.op), CT_ETIMEDOUT);
    tmsg_free(m, NULL); /* refused: still the caller's */
    cr_assert_eq(inner.calls, 0);
    unwrap();
}

/* An attempt fails in the turn the deadline comes: one completion, with the
 * deadline, and no further attempt. */
Test(retry, a_failure_at_the_deadline_completes_once) {
    rec_op_t r;
    ct_context_t ctx;
    wrap();
    inner.hold = 1;
    h_call_with_deadline(&layer.service, &r, &ctx, 10, 9);
    h_turns(1);
    uv_sleep(20);
    uv_update_time(&H.uv);
    flaky_complete(&inner, 0, CT_ECONNECT, 0);
    H_RUN_UNTIL(r.calls);
    h_turns(3);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, CT_ETIMEDOUT);
    cr_assert_eq(r.cause, CT_EDEADLINE);
    cr_assert_eq(inner.calls, 1);
    unwrap();
}
