/* The share: a service on a loop in another thread, called through a
 * handle on the test's loop. Answers in order of their own requests, the
 * inner service's back-pressure, cancel wherever the call is, close of a
 * handle with calls under way, a share closed before its handle, and
 * random runs with exactly-once completion. */
#include "testutil.h"

#include <stdatomic.h>
#include <string.h>

TestSuite(share, .init = h_setup, .fini = h_teardown);

/* ---- the other thread: a loop with a slow echo service --------------------------- */

/* Holds its calls and answers the oldest every tick (echo), or at once when
 * tick_ms is 0; PENDING while `capacity` are held. Runs on the other loop. */
typedef struct slow {
    ct_service_t service;
    ct_op_t *ops[4096];
    void *reqs[4096];
    size_t n, capacity, max_n;
    uint64_t tick_ms;
    uv_timer_t timer;
    ct_waitq_t waiters;
} slow_t;

static struct side {
    uv_loop_t uv;
    ct_loop_t ct;
    uv_thread_t thread;
    slow_t inner;
    ct_share_t share;
    uv_async_t close_request; /* the test thread asks for the share's close */
    atomic_int share_closed;
    atomic_long freed; /* test messages freed on this side */
    atomic_long calls, cancels;
} side;

static void slow_answer(slow_t *s, size_t i, int status) {
    ct_op_t *op = s->ops[i];
    void *req = s->reqs[i];
    memmove(&s->ops[i], &s->ops[i + 1], (s->n - i - 1) * sizeof *s->ops);
    memmove(&s->reqs[i], &s->reqs[i + 1], (s->n - i - 1) * sizeof *s->reqs);
    s->n--;
    if (status == 0) {
        ct_op_complete(op, 0, 0, req);
    } else {
        free(req); /* (tmsg_free's counter belongs to the test thread) */
        atomic_fetch_add(&side.freed, 1);
        ct_op_complete(op, status, 0, NULL);
    }
    ct_waitq_wake_all(&s->waiters);
}

static void on_tick(uv_timer_t *timer) {
    slow_t *s = timer->data;
    if (s->n > 0) slow_answer(s, 0, 0);
}

static int slow_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    slow_t *s = (slow_t *)svc;
    if (s->capacity == 0 || s->n < s->capacity) return CT_READY;
    ct_waitq_add(&s->waiters, waker);
    return CT_PENDING;
}

static int slow_call(ct_service_t *svc, void *req, ct_op_t *op) {
    slow_t *s = (slow_t *)svc;
    atomic_fetch_add(&side.calls, 1);
    if (s->tick_ms == 0) {
        ct_op_complete(op, 0, 0, req);
        return 0;
    }
    if (s->n == 4096 || (s->capacity && s->n >= s->capacity)) return CT_EOVERLOADED;
    s->ops[s->n] = op;
    s->reqs[s->n++] = req;
    if (s->n > s->max_n) s->max_n = s->n;
    return 0;
}

static void slow_cancel(ct_service_t *svc, ct_op_t *op) {
    slow_t *s = (slow_t *)svc;
    size_t i;
    for (i = 0; i < s->n; i++)
        if (s->ops[i] == op) {
            atomic_fetch_add(&side.cancels, 1);
            slow_answer(s, i, CT_ECANCELED);
            return;
        }
}

static void on_slow_timer_closed(uv_handle_t *handle) {
    ct_service_closed(handle->data);
}

static void slow_close(ct_service_t *svc) {
    slow_t *s = (slow_t *)svc;
    while (s->n > 0)
        slow_answer(s, 0, CT_ECLOSED);
    s->timer.data = svc;
    uv_close((uv_handle_t *)&s->timer, on_slow_timer_closed);
}

static const ct_service_vtable_t slow_vtable = {
    slow_poll_ready, slow_call, slow_cancel, NULL, NULL, slow_close, NULL,
};

static void on_side_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_share_closed(ct_service_t *svc) {
    (void)svc;
    atomic_store(&side.share_closed, 1);
    ct_loop_close(&side.ct, on_side_loop_closed);
}

static void on_close_request(uv_async_t *async) {
    uv_close((uv_handle_t *)async, NULL);
    cr_assert_eq(ct_service_close(&side.share.service, on_share_closed), 0);
}

static void side_run(void *arg) {
    (void)arg;
    uv_run(&side.uv, UV_RUN_DEFAULT);
}

/* The other loop, with the slow service (capacity, tick_ms) under a share;
 * its thread runs until the share is closed. */
static void side_start(size_t capacity, uint64_t tick_ms) {
    memset(&side.inner, 0, sizeof side.inner);
    atomic_store(&side.share_closed, 0);
    atomic_store(&side.freed, 0);
    atomic_store(&side.calls, 0);
    atomic_store(&side.cancels, 0);
    cr_assert_eq(uv_loop_init(&side.uv), 0);
    cr_assert_eq(ct_loop_init(&side.ct, &side.uv), 0);
    ct_service_init(&side.inner.service, &side.ct, &slow_vtable);
    side.inner.capacity = capacity;
    side.inner.tick_ms = tick_ms;
    ct_waitq_init(&side.inner.waiters);
    cr_assert_eq(uv_timer_init(&side.uv, &side.inner.timer), 0);
    side.inner.timer.data = &side.inner;
    if (tick_ms) uv_timer_start(&side.inner.timer, on_tick, tick_ms, tick_ms);
    cr_assert_eq(ct_share_init(&side.share, &side.inner.service), 0);
    cr_assert_eq(uv_async_init(&side.uv, &side.close_request, on_close_request), 0);
    cr_assert_eq(uv_thread_create(&side.thread, side_run, NULL), 0);
}

/* Closes the share (on its thread), waits for the thread, and counts the
 * messages freed there as freed. */
static void side_stop(void) {
    uv_async_send(&side.close_request);
    cr_assert_eq(uv_thread_join(&side.thread), 0);
    cr_assert(atomic_load(&side.share_closed));
    cr_assert_eq(uv_loop_close(&side.uv), 0, "the other loop has handles left");
    H.live_msgs -= atomic_load(&side.freed);
}

/* ---- the handle, on the test's loop ------------------------------------------------- */

static ct_share_handle_t handle;
static int woken;

static void on_woken(ct_waker_t *w) {
    (void)w;
    woken++;
}

static void attach(size_t max_in_flight) {
    ct_share_handle_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_in_flight = max_in_flight;
    cfg.free_msg = tmsg_free;
    cr_assert_eq(ct_share_handle_init(&handle, &H.ct, &side.share, &cfg), 0);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&handle.service, tmsg_new(id), &r->op), 0);
}

/* ---- tests ------------------------------------------------------------------------- */

Test(share, bad_arguments_are_refused) {
    ct_share_t b;
    rec_op_t r;
    tmsg_t *m = tmsg_new(1);
    cr_assert_eq(ct_share_init(NULL, NULL), CT_EINVAL);
    side_start(0, 0);
    cr_assert_eq(ct_share_init(&b, &side.inner.service), CT_EINVAL, "already wrapped");
    cr_assert_eq(ct_share_handle_init(&handle, &H.ct, NULL, NULL), CT_EINVAL);
    rec_op_init(&r);
    cr_assert_eq(ct_service_call(&side.share.service, m, &r.op), CT_ENOTSUP,
                 "the share itself takes no calls: its handles do");
    tmsg_free(m, NULL);
    side_stop();
}

Test(share, calls_from_another_thread_are_answered) {
    side_start(0, 0); /* echo at once */
    attach(64);
    cr_assert_eq(h_drive(&handle.service, 16, 20000), 0, "answers overtook others");
    cr_assert_eq(atomic_load(&side.calls), 20000);
    h_close_service(&handle.service);
    side_stop();
}

/* The inner service holds 4 at most: the share keeps the rest queued, and
 * every call is answered in the end. */
Test(share, the_inner_services_back_pressure_holds_the_queue) {
    side_start(4, 1);
    attach(32);
    cr_assert_eq(h_drive(&handle.service, 32, 300), 0);
    h_close_service(&handle.service);
    side_stop();
    cr_assert_eq(side.inner.max_n, 4, "%zu held at once", side.inner.max_n);
}

Test(share, a_handle_is_bounded) {
    rec_op_t r[3];
    ct_waker_t w;
    side_start(0, 1000); /* holds everything for a second */
    attach(2);
    ct_waker_init(&w, &H.ct, on_woken);
    call(&r[0], 0);
    call(&r[1], 1);
    cr_assert_eq(ct_service_poll_ready(&handle.service, &w), CT_PENDING);
    call(&r[2], 2);
    H_RUN_UNTIL(r[2].calls);
    cr_assert_eq(r[2].status, CT_EOVERLOADED);
    h_close_service(&handle.service);
    cr_assert_eq(r[0].status, CT_ECLOSED);
    cr_assert_eq(r[1].status, CT_ECLOSED);
    side_stop();
}

/* A call canceled once the other side holds it: the caller sees
 * CT_ECANCELED at once, the inner call is canceled, and the slot comes
 * back. */
Test(share, cancel_reaches_the_other_thread) {
    rec_op_t r[2];
    int i;
    side_start(0, 100000); /* holds everything */
    attach(1);
    call(&r[0], 0);
    for (i = 0; atomic_load(&side.calls) == 0; i++) {
        cr_assert_lt(i, 10000, "the other thread never took the call");
        uv_sleep(1);
    }
    ct_op_cancel(&r[0].op);
    H_RUN_UNTIL(r[0].calls);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    H_RUN_UNTIL(handle.in_flight == 0); /* the slot is back */
    cr_assert_eq(atomic_load(&side.cancels), 1);
    call(&r[1], 1);
    h_turns(2);
    cr_assert_eq(r[1].calls, 0, "refused: %s", ct_err_name(r[1].status));
    h_close_service(&handle.service);
    cr_assert_eq(r[1].status, CT_ECLOSED);
    cr_assert_eq(r[0].calls, 1);
    side_stop();
}

Test(share, close_of_a_handle_completes_its_calls_once) {
    rec_op_t r[8];
    int i;
    side_start(0, 100000);
    attach(8);
    for (i = 0; i < 8; i++)
        call(&r[i], (uint64_t)i);
    ct_op_cancel(&r[3].op);
    h_close_service(&handle.service); /* returns once every entry is home */
    for (i = 0; i < 8; i++) {
        cr_assert_eq(r[i].calls, 1, "call %d completed %d times", i, r[i].calls);
        cr_assert_eq(r[i].status, i == 3 ? CT_ECANCELED : CT_ECLOSED);
    }
    side_stop();
}

/* The share is closed first: its close waits for the handle, which is
 * refused from then on; the handle's close lets the share finish. */
Test(share, a_share_closes_after_its_last_handle) {
    static ct_share_handle_t late;
    rec_op_t r;
    side_start(0, 0);
    attach(4);
    call(&r, 1);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    uv_async_send(&side.close_request);
    uv_sleep(50);
    cr_assert_not(atomic_load(&side.share_closed), "closed under a handle");
    call(&r, 2);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, CT_ECLOSED);
    cr_assert_eq(ct_share_handle_init(&late, &H.ct, &side.share, NULL), CT_ECLOSING,
                 "a handle attached to a closing share");
    h_close_service(&handle.service);
    cr_assert_eq(uv_thread_join(&side.thread), 0);
    cr_assert(atomic_load(&side.share_closed));
    cr_assert_eq(uv_loop_close(&side.uv), 0);
    H.live_msgs -= atomic_load(&side.freed);
}

/* Random calls and cancels against a slow service on the other thread:
 * every call completes once, with its own answer or CT_ECANCELED, and no
 * message leaks (the teardown counts them). */
Test(share, random_calls_and_cancels_complete_once) {
    enum { N = 3000 };
    static rec_op_t r[N];
    unsigned seed = 12345;
    int next = 0, i;
    ct_waker_t w;
    side_start(8, 1);
    attach(48);
    ct_waker_init(&w, &H.ct, on_woken);
    while (next < N) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 3 != 0 && ct_service_poll_ready(&handle.service, &w) == CT_READY) {
            call(&r[next], (uint64_t)next);
            next++;
        }
        if ((seed >> 8) % 4 == 0) {
            int k = next - 1 - (int)((seed >> 4) % 40);
            if (k >= 0 && ct_op_is_pending(&r[k].op)) ct_op_cancel(&r[k].op);
        }
        uv_run(&H.uv, (seed >> 20) % 2 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
    for (i = 0; i < N; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1);
        if (r[i].status == 0)
            cr_assert_eq(r[i].response_id, (uint64_t)i);
        else
            cr_assert_eq(r[i].status, CT_ECANCELED, "call %d: %s", i, ct_err_name(r[i].status));
    }
    H_RUN_UNTIL(handle.in_flight == 0);
    h_close_service(&handle.service);
    side_stop();
}
