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

Test(loop, tasks_posted_by_tasks_run_in_the_same_drain) {
    ct_task_t first;
    ran = 0;
    ct_task_init(&first, chain_first);
    ct_task_init(&chain_next, chain_second);
    ct_task_post(&H.ct, &first);
    uv_run(&H.uv, UV_RUN_NOWAIT);
    cr_assert_eq(ran, 2);
    cr_assert_eq(order[0], 10);
    cr_assert_eq(order[1], 20);
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
