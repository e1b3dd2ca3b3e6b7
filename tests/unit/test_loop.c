#include "testutil.h"

TestSuite(loop, .init = h_setup, .fini = h_teardown);

static int ran;
static int order[4];
static void count_task(ct_task_t *task) {
    (void)task;
    cr_assert_eq(H.nested, 0);
    order[ran++] = 1;
}

Test(loop, task_runs_later_in_the_same_turn_once) {
    ct_task_t t;
    ran = 0;
    ct_task_init(&t, count_task);
    H.nested++;
    ct_task_post(&H.ct, &t);
    ct_task_post(&H.ct, &t); /* already queued: still once */
    cr_assert_eq(ran, 0, "a posted task must not run on the poster's stack");
    H.nested--;
    cr_assert(ct_task_is_queued(&t));
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(ran, 1);
    cr_assert(!ct_task_is_queued(&t));
}

Test(loop, canceled_task_does_not_run) {
    ct_task_t t;
    ran = 0;
    ct_task_init(&t, count_task);
    ct_task_post(&H.ct, &t);
    ct_task_cancel(&t);
    ct_task_cancel(&t); /* harmless when not queued */
    h_run();
    cr_assert_eq(ran, 0);
}

static ct_task_t chain_next;
static void chain_first(ct_task_t *task) {
    (void)task;
    order[ran++] = 10;
    ct_task_post(&H.ct, &chain_next);
}
static void chain_second(ct_task_t *task) {
    (void)task;
    order[ran++] = 20;
}

Test(loop, tasks_posted_by_tasks_run_in_the_next_turn) {
    ct_task_t first;
    ran = 0;
    ct_task_init(&first, chain_first);
    ct_task_init(&chain_next, chain_second);
    ct_task_post(&H.ct, &first);
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(ran, 1, "a drain runs only what was queued when it began");
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(ran, 2);
    cr_assert_eq(order[0], 10);
    cr_assert_eq(order[1], 20);
}

/* A chain that never reaches the kernel (a client and a server over the
 * in-memory channel behave like this) must not hold off timers. The chain
 * stops by itself after LIMIT runs, so that a regression fails instead of
 * hanging: the timer would then fire only after all of them. */
enum { LIMIT = 2000000 };
static ct_task_t endless;
static uv_timer_t timer; /* static: still valid if an assertion ends the test */
static long endless_runs, fired_at;
static int timer_fired;
static void endless_cb(ct_task_t *task) {
    if (++endless_runs < LIMIT) ct_task_post(&H.ct, task);
}
static void on_timer(uv_timer_t *t) {
    (void)t;
    timer_fired = 1;
    fired_at = endless_runs;
}

Test(loop, an_endless_chain_of_tasks_does_not_starve_timers) {
    endless_runs = fired_at = 0;
    timer_fired = 0;
    ct_task_init(&endless, endless_cb);
    ct_task_post(&H.ct, &endless);
    uv_timer_init(&H.uv, &timer);
    uv_timer_start(&timer, on_timer, 1, 0);
    H_RUN_UNTIL(timer_fired);
    cr_assert_lt(fired_at, LIMIT, "the timer waited for the whole chain");
    H_RUN_UNTIL(!ct_task_is_queued(&endless));
    cr_assert_eq(endless_runs, LIMIT);
    uv_close((uv_handle_t *)&timer, NULL);
    h_run();
}

static ct_loop_t second;
static int close_status = 1, second_closed;
static void on_second_closed(ct_loop_t *loop) {
    (void)loop;
    second_closed = 1;
}
static void close_second(ct_task_t *task) {
    (void)task;
    close_status = ct_loop_close(&second, on_second_closed);
}

Test(loop, the_last_task_of_a_drain_may_close_the_loop) {
    ct_task_t t, other;
    cr_assert_eq(ct_loop_init(&second, &H.uv), 0);
    ct_task_init(&other, chain_second);
    ct_task_post(&second, &other);
    cr_assert_eq(ct_loop_close(&second, NULL), CT_EBUSY, "a queued task keeps it open");
    ct_task_cancel(&other);
    ct_task_init(&t, close_second);
    ct_task_post(&second, &t);
    H_RUN_UNTIL(second_closed);
    cr_assert_eq(close_status, 0, "the drain's own mark is not a task: %s",
                 ct_err_name(close_status));
}

static int flushed;
static void on_flush(ct_task_t *task) {
    (void)task;
    flushed++;
}

Test(loop, flush_runs_once_before_the_next_poll) {
    ct_task_t f;
    flushed = 0;
    ct_task_init(&f, on_flush);
    ct_loop_post_flush(&H.ct, &f);
    ct_loop_post_flush(&H.ct, &f);
    cr_assert_eq(flushed, 0);
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(flushed, 1);
}

Test(loop, close_refuses_with_pending_work_and_twice) {
    ct_task_t t;
    ran = 0;
    ct_task_init(&t, count_task);
    ct_task_post(&H.ct, &t);
    cr_assert_eq(ct_loop_close(&H.ct, NULL), CT_EBUSY);
    h_run();
    cr_assert_eq(ran, 1);
}

Test(loop, an_idle_loop_does_not_keep_uv_run_alive) {
    /* uv_run must return: only referenced work may keep it turning. */
    cr_assert_eq(uv_run(&H.uv, UV_RUN_DEFAULT), 0);
}

Test(loop_close, closing_twice_is_reported) {
    uv_loop_t uv;
    ct_loop_t ct;
    cr_assert_eq(uv_loop_init(&uv), 0);
    cr_assert_eq(ct_loop_init(&ct, &uv), 0);
    cr_assert_eq(ct_loop_close(&ct, NULL), 0);
    cr_assert_eq(ct_loop_close(&ct, NULL), CT_ECLOSING);
    uv_run(&uv, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&uv), 0);
}

Test(loop, shared_buffers_are_lent_to_one_borrower_at_a_time) {
    size_t len = 0, len2 = 0;
    uint8_t *r = ct_loop_lend_buffer(&H.ct, CT_LOOP_READ_BUFFER, &len), *w, *again;
    cr_assert_not_null(r);
    cr_assert_geq(len, 64 * 1024);
    memset(r, 0xab, len); /* all of it is usable (ASan checks the bounds) */
    cr_assert_null(ct_loop_lend_buffer(&H.ct, CT_LOOP_READ_BUFFER, &len2), "lent twice");
    w = ct_loop_lend_buffer(&H.ct, CT_LOOP_WRITE_BUFFER, &len2);
    cr_assert_not_null(w, "the write buffer is a second one");
    cr_assert_neq(w, r);
    ct_loop_return_buffer(&H.ct, CT_LOOP_READ_BUFFER);
    again = ct_loop_lend_buffer(&H.ct, CT_LOOP_READ_BUFFER, &len2);
    cr_assert_eq(again, r, "the same buffer comes back: nothing is allocated per read");
    ct_loop_return_buffer(&H.ct, CT_LOOP_READ_BUFFER);
    ct_loop_return_buffer(&H.ct, CT_LOOP_WRITE_BUFFER);
}

Test(loop_close, a_buffer_lent_when_the_loop_closes_is_freed_when_it_comes_back) {
    uv_loop_t uv;
    ct_loop_t ct;
    size_t len = 0;
    uint8_t *b;
    cr_assert_eq(uv_loop_init(&uv), 0);
    cr_assert_eq(ct_loop_init(&ct, &uv), 0);
    b = ct_loop_lend_buffer(&ct, CT_LOOP_WRITE_BUFFER, &len);
    cr_assert_not_null(b);
    cr_assert_eq(ct_loop_close(&ct, NULL), 0);
    b[len - 1] = 1; /* still ours until given back (ASan: not freed yet) */
    ct_loop_return_buffer(&ct, CT_LOOP_WRITE_BUFFER);
    cr_assert_null(ct_loop_lend_buffer(&ct, CT_LOOP_WRITE_BUFFER, &len), "nothing after close");
    uv_run(&uv, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&uv), 0);
}

/* The batch clock: one reading for a batch of work, a fresh one for the next. */
static uint64_t clock_seen[2];
static int clock_tasks;
static void read_clock_task(ct_task_t *task) {
    (void)task;
    uint64_t first = ct_loop_clock_ns(&H.ct);
    uv_sleep(2);
    cr_assert_eq(ct_loop_clock_ns(&H.ct), first, "the clock moved within a batch");
    clock_seen[clock_tasks++] = first;
}

Test(loop, the_batch_clock_holds_within_a_drain_and_moves_between_them) {
    ct_task_t a, b;
    uint64_t before = uv_hrtime();
    clock_tasks = 0;
    ct_task_init(&a, read_clock_task);
    ct_task_init(&b, read_clock_task);
    ct_task_post(&H.ct, &a);
    uv_run(&H.uv, UV_RUN_NOWAIT);
    uv_sleep(2);
    ct_task_post(&H.ct, &b);
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(clock_tasks, 2);
    cr_assert_geq(clock_seen[0], before);
    cr_assert_geq(clock_seen[1], clock_seen[0] + 4000000, "a later drain kept an old reading");
    cr_assert_leq(clock_seen[1], uv_hrtime());
}
