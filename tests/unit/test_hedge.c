/* The hedge layer: no backup for a call answered in time, a backup after
 * the delay, the first answer wins whichever attempt it is, an error waits
 * for the other attempt, the budget, cancel, close, shutdown, and a copy
 * that cannot be made. */
#include "testutil.h"

#include <string.h>

TestSuite(hedge, .init = h_setup, .fini = h_teardown);

/* ---- an inner service that holds its calls ---------------------------------------- */

typedef struct slow {
    ct_service_t service;
    int hold; /* 0: answers at once (echo) */
    ct_op_t *ops[128];
    void *reqs[128];
    int n;
    long calls, cancels;
} slow_t;

static slow_t inner;

static void slow_answer(slow_t *s, int i, int status) {
    ct_op_t *op = s->ops[i];
    void *req = s->reqs[i];
    memmove(&s->ops[i], &s->ops[i + 1], (size_t)(s->n - i - 1) * sizeof *s->ops);
    memmove(&s->reqs[i], &s->reqs[i + 1], (size_t)(s->n - i - 1) * sizeof *s->reqs);
    s->n--;
    if (status == 0) {
        ct_op_complete(op, 0, 0, req);
    } else {
        tmsg_free(req, NULL);
        ct_op_complete(op, status, UV_ECONNRESET, NULL);
    }
    if (s->n == 0 && ct_service_is_shutting_down(&s->service))
        ct_service_shutdown_done(&s->service, 0);
}

static int slow_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    (void)svc;
    (void)waker;
    return CT_READY;
}

static int slow_call(ct_service_t *svc, void *req, ct_op_t *op) {
    slow_t *s = (slow_t *)svc;
    s->calls++;
    if (!s->hold) {
        ct_op_complete(op, 0, 0, req);
        return 0;
    }
    cr_assert_lt(s->n, 128);
    s->ops[s->n] = op;
    s->reqs[s->n++] = req;
    return 0;
}

static void slow_cancel(ct_service_t *svc, ct_op_t *op) {
    slow_t *s = (slow_t *)svc;
    int i;
    for (i = 0; i < s->n; i++)
        if (s->ops[i] == op) {
            s->cancels++;
            slow_answer(s, i, CT_ECANCELED);
            return;
        }
    cr_assert_fail("cancel of a call the service does not hold");
}

static int slow_shutdown(ct_service_t *svc) {
    if (((slow_t *)svc)->n == 0) ct_service_shutdown_done(svc, 0);
    return 0;
}

static void slow_close(ct_service_t *svc) {
    slow_t *s = (slow_t *)svc;
    while (s->n > 0)
        slow_answer(s, 0, CT_ECLOSED);
    ct_service_closed(svc);
}

static const ct_service_vtable_t slow_vtable = {
    slow_poll_ready, slow_call, slow_cancel, NULL, slow_shutdown, slow_close, NULL,
};

/* ---- the layer under test ----------------------------------------------------------- */

static ct_hedge_t layer;
static int fail_copies;

static void *copy_tmsg(const void *msg, void *ctx) {
    (void)ctx;
    return fail_copies ? NULL : tmsg_new(((const tmsg_t *)msg)->id);
}

static ct_hedge_config_t config(uint64_t delay_ms) {
    ct_hedge_config_t c;
    memset(&c, 0, sizeof c);
    c.copy = copy_tmsg;
    c.free_msg = tmsg_free;
    c.delay_ms = delay_ms;
    return c;
}

static void wrap_with(const ct_hedge_config_t *c, int hold) {
    memset(&inner, 0, sizeof inner);
    ct_service_init(&inner.service, &H.ct, &slow_vtable);
    inner.hold = hold;
    fail_copies = 0;
    cr_assert_eq(ct_hedge_init(&layer, &H.ct, &inner.service, c), 0);
}

static void wrap(uint64_t delay_ms, int hold) {
    ct_hedge_config_t c = config(delay_ms);
    wrap_with(&c, hold);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(id), &r->op), 0);
}

/* Runs the loop until the inner service holds n calls. */
static void until_held(int n) {
    H_RUN_UNTIL(inner.n >= n);
    cr_assert_eq(inner.n, n);
}

/* ---- tests ------------------------------------------------------------------------- */

Test(hedge, bad_configurations_are_refused) {
    ct_hedge_t h;
    ct_hedge_config_t c = config(10);
    memset(&inner, 0, sizeof inner);
    ct_service_init(&inner.service, &H.ct, &slow_vtable);
    cr_assert_eq(ct_hedge_init(&h, &H.ct, &inner.service, NULL), CT_EINVAL);
    c.copy = NULL;
    cr_assert_eq(ct_hedge_init(&h, &H.ct, &inner.service, &c), CT_EINVAL, "no copy function");
    c = config(0);
    cr_assert_eq(ct_hedge_init(&h, &H.ct, &inner.service, &c), CT_EINVAL, "no delay");
    c = config(10);
    c.budget_percent = 101;
    cr_assert_eq(ct_hedge_init(&h, &H.ct, &inner.service, &c), CT_EINVAL);
    cr_assert_null(inner.service.owner);
    h_close_service(&inner.service);
}

Test(hedge, a_call_answered_in_time_sends_no_backup) {
    rec_op_t r;
    wrap(20, 0);
    call(&r, 4);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 4);
    uv_sleep(30);
    h_turns(3);
    cr_assert_eq(inner.calls, 1);
    cr_assert_eq(ct_hedge_counts(&layer).backups, 0);
    h_close_service(&layer.service); /* (the teardown checks the copy was freed) */
}

Test(hedge, a_slow_call_gets_a_backup_and_the_first_answer_wins) {
    rec_op_t r;
    wrap(10, 1);
    call(&r, 7);
    until_held(2); /* the first attempt, then the backup after 10 ms */
    cr_assert_eq(tmsg_id(inner.reqs[1]), 7, "the backup carries the same request");
    slow_answer(&inner, 1, 0); /* the backup answers first */
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 7);
    H_RUN_UNTIL(inner.n == 0);
    cr_assert_eq(inner.cancels, 1, "the first attempt was not canceled");
    cr_assert_eq(ct_hedge_counts(&layer).backups, 1);
    cr_assert_eq(ct_hedge_counts(&layer).backups_won, 1);
    h_turns(2);
    cr_assert_eq(r.calls, 1);
    h_close_service(&layer.service);
}

Test(hedge, the_first_attempt_may_still_win) {
    rec_op_t r;
    wrap(10, 1);
    call(&r, 8);
    until_held(2);
    slow_answer(&inner, 0, 0);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.response_id, 8);
    H_RUN_UNTIL(inner.n == 0);
    cr_assert_eq(inner.cancels, 1, "the backup was not canceled");
    cr_assert_eq(ct_hedge_counts(&layer).backups_won, 0);
    h_close_service(&layer.service);
}

Test(hedge, an_error_waits_for_the_other_attempt) {
    rec_op_t r;
    wrap(10, 1);
    call(&r, 9);
    until_held(2);
    slow_answer(&inner, 0, CT_ERECVBROKEN);
    h_turns(3);
    cr_assert_eq(r.calls, 0, "an error ended the call while the backup ran");
    slow_answer(&inner, 0, 0); /* the backup (now the only one held) */
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 9);
    h_close_service(&layer.service);
}

Test(hedge, when_both_fail_the_last_error_is_the_answer) {
    rec_op_t r;
    wrap(10, 1);
    call(&r, 1);
    until_held(2);
    slow_answer(&inner, 1, CT_ETIMEDOUT);
    h_turns(2);
    cr_assert_eq(r.calls, 0);
    slow_answer(&inner, 0, CT_ERECVBROKEN);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ERECVBROKEN);
    cr_assert_eq(r.cause, UV_ECONNRESET);
    h_close_service(&layer.service);
}

Test(hedge, an_error_before_the_delay_is_the_answer) {
    rec_op_t r;
    wrap(200, 1);
    call(&r, 1);
    until_held(1);
    slow_answer(&inner, 0, CT_ECONNECT);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECONNECT);
    uv_sleep(250);
    h_turns(3);
    cr_assert_eq(inner.calls, 1, "a backup went after the call had ended");
    h_close_service(&layer.service);
}

/* The bank starts full with 10 backups, and a call adds a tenth of one
 * only to a bank that is not full: of 40 slow calls made at once, 10 get a
 * backup. Then the calls that come while the bank refills: one backup per
 * ten calls. */
Test(hedge, the_budget_bounds_the_backups) {
    rec_op_t r[40];
    int i;
    wrap(5, 1);
    for (i = 0; i < 40; i++)
        call(&r[i], (uint64_t)i);
    H_RUN_UNTIL(ct_hedge_counts(&layer).backups + ct_hedge_counts(&layer).budget_refusals == 40);
    cr_assert_eq(ct_hedge_counts(&layer).backups, 10);
    cr_assert_eq(ct_hedge_counts(&layer).budget_refusals, 30);
    cr_assert_eq(inner.n, 50);
    while (inner.n > 0)
        slow_answer(&inner, 0, 0);
    for (i = 0; i < 40; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].response_id, (uint64_t)i);
    }
    for (i = 0; i < 20; i++) /* the bank empty: 20 calls make 2 backups */
        call(&r[i], (uint64_t)i);
    H_RUN_UNTIL(ct_hedge_counts(&layer).backups + ct_hedge_counts(&layer).budget_refusals == 60);
    cr_assert_eq(ct_hedge_counts(&layer).backups, 12);
    while (inner.n > 0)
        slow_answer(&inner, 0, 0);
    for (i = 0; i < 20; i++)
        H_RUN_UNTIL(r[i].calls);
    h_close_service(&layer.service);
}

Test(hedge, cancel_reaches_both_attempts) {
    rec_op_t r[2];
    ct_hedge_config_t c = config(10);
    c.max_in_flight = 1;
    wrap_with(&c, 1);
    call(&r[0], 1);
    until_held(2);
    ct_op_cancel(&r[0].op);
    H_RUN_UNTIL(r[0].calls);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    H_RUN_UNTIL(inner.n == 0);
    cr_assert_eq(inner.cancels, 2);
    call(&r[1], 2); /* the entry is free again */
    until_held(1);
    slow_answer(&inner, 0, 0);
    H_RUN_UNTIL(r[1].calls);
    cr_assert_eq(r[1].status, 0);
    h_close_service(&layer.service);
}

Test(hedge, close_completes_every_call_once) {
    rec_op_t r[3];
    int i;
    wrap(10, 1);
    for (i = 0; i < 3; i++)
        call(&r[i], (uint64_t)i);
    until_held(6);
    h_close_service(&layer.service);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ECLOSED);
    }
}

static int drained, drain_status = 1;

static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained++;
    drain_status = status;
}

Test(hedge, shutdown_waits_for_the_calls_and_their_backups) {
    rec_op_t r;
    wrap(10, 1);
    call(&r, 3);
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    until_held(2); /* the backup still goes */
    cr_assert_eq(drained, 0);
    slow_answer(&inner, 1, 0);
    H_RUN_UNTIL(drained);
    cr_assert_eq(drain_status, 0);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, 0);
    h_close_service(&layer.service);
}

Test(hedge, without_a_copy_a_call_goes_without_a_backup) {
    rec_op_t r;
    wrap(5, 1);
    fail_copies = 1;
    call(&r, 5);
    uv_sleep(20);
    h_turns(4);
    cr_assert_eq(inner.n, 1);
    slow_answer(&inner, 0, 0);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(ct_hedge_counts(&layer).backups, 0);
    h_close_service(&layer.service);
}

/* Each call waits its own delay: a call made 60 ms after another gets its
 * backup 60 ms after the other's. */
Test(hedge, each_call_waits_its_own_delay) {
    rec_op_t r[2];
    uint64_t start;
    wrap(100, 1);
    uv_update_time(&H.uv);
    start = uv_now(&H.uv);
    call(&r[0], 0);
    uv_sleep(60);
    uv_update_time(&H.uv);
    call(&r[1], 1);
    until_held(3); /* the first call's backup */
    cr_assert_eq(tmsg_id(inner.reqs[2]), 0);
    h_turns(2);
    cr_assert_eq(inner.n, 3, "the second call's backup went with the first's");
    until_held(4);
    cr_assert_geq(uv_now(&H.uv) - start, 160, "the second backup came after %llu ms",
                  (unsigned long long)(uv_now(&H.uv) - start));
    while (inner.n > 0)
        slow_answer(&inner, 0, 0);
    H_RUN_UNTIL(r[0].calls && r[1].calls);
    h_close_service(&layer.service);
}

/* Random calls, cancels, answers and errors of either attempt, with backups
 * going out as time passes: every call completes exactly once, with its own
 * answer or an error, and nothing leaks. */
Test(hedge, random_runs_complete_every_call_once) {
    enum { N = 300 };
    static rec_op_t r[N];
    static const int outcomes[] = {0, 0, 0, CT_ERECVBROKEN, CT_ETIMEDOUT};
    unsigned seed = 99;
    int next = 0, i;
    ct_hedge_config_t c = config(1);
    c.budget_percent = 50;
    c.max_in_flight = 32;
    wrap_with(&c, 1);
    while (next < N) {
        seed = seed * 1103515245u + 12345u;
        switch ((seed >> 16) % 6) {
        case 0:
        case 1:
            if (layer.nfree > 0) {
                call(&r[next], (uint64_t)next);
                next++;
            }
            break;
        case 2: {
            int k = next - 1 - (int)((seed >> 4) % 16);
            if (k >= 0 && ct_op_is_pending(&r[k].op)) ct_op_cancel(&r[k].op);
            break;
        }
        case 3:
        case 4:
            if (inner.n > 0)
                slow_answer(&inner, (int)((seed >> 3) % (unsigned)inner.n),
                            outcomes[(seed >> 9) % 5]);
            break;
        default:
            if ((seed >> 7) % 4 == 0) uv_sleep(1); /* backups come due */
            h_turns(1);
        }
    }
    while (inner.n > 0 || layer.busy > 0) {
        while (inner.n > 0)
            slow_answer(&inner, 0, 0);
        h_turns(1);
    }
    for (i = 0; i < N; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1);
        if (r[i].status == 0) cr_assert_eq(r[i].response_id, (uint64_t)i);
    }
    cr_assert_gt(ct_hedge_counts(&layer).backups, 0, "no backup went: the run tested little");
    h_close_service(&layer.service);
}

/* ---- the caller's context ------------------------------------------------------------ */

Test(hedge, both_attempts_carry_the_context_the_backup_one_attempt_further) {
    rec_op_t r;
    ct_context_t ctx;
    wrap(10, 1);
    ct_context_init(&ctx);
    ct_context_set_timeout(&ctx, uv_now(&H.uv), 10000);
    ctx.trace_id[0] = 7;
    rec_op_init(&r);
    r.op.ctx = &ctx;
    cr_assert_eq(h_call(&layer.service, tmsg_new(3), &r.op), 0);
    until_held(2);
    cr_assert_eq(inner.ops[0]->ctx, &ctx, "the first attempt carries the caller's own");
    cr_assert_not_null(inner.ops[1]->ctx);
    cr_assert_eq(inner.ops[1]->ctx->attempt, 1);
    cr_assert_eq(inner.ops[1]->ctx->deadline_ms, ctx.deadline_ms);
    cr_assert_eq(inner.ops[1]->ctx->trace_id[0], 7);
    slow_answer(&inner, 0, 0);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    H_RUN_UNTIL(inner.n == 0);
    h_close_service(&layer.service);
}

Test(hedge, no_backup_for_a_caller_whose_deadline_comes_before_the_delay) {
    rec_op_t r;
    ct_context_t ctx;
    wrap(40, 1);
    h_call_with_deadline(&layer.service, &r, &ctx, 20, 3);
    until_held(1);
    uv_sleep(60);
    h_turns(3);
    cr_assert_eq(inner.calls, 1, "a backup went out although its caller had given up");
    cr_assert_eq(ct_hedge_counts(&layer).backups, 0);
    slow_answer(&inner, 0, 0);
    H_RUN_UNTIL(r.calls);
    h_close_service(&layer.service);
}
