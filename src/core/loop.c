/* The per-loop deferred-task and flush queues. */
#include "ctower/loop.h"
#include "ctower/error.h"
#include "list.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Large enough for a whole burst of a busy peer in one read or write. */
enum { SHARED_BUFFER = 64 * 1024 };

enum { CT_TASK_IDLE = 0, CT_TASK_DEFERRED = 1, CT_TASK_FLUSH = 2 };

/* An idle callback is required by uv_idle_start; the work is done in check. */
static void on_idle(uv_idle_t *idle) {
    (void)idle;
}

static void keep_polling_nonblocking(ct_loop_t *loop) {
    /* An active idle handle makes uv_run poll with a zero timeout, so the
     * check phase that drains our queue comes in this turn, not after the
     * next I/O event. (A flag, not uv_is_active(): this runs per message.) */
    if (!loop->idle_active) {
        uv_idle_start(&loop->idle, on_idle);
        loop->idle_active = 1;
    }
}

/* Runs the tasks queued when the drain began: a mark goes in behind them,
 * and tasks they post queue up behind the mark for the next turn (the idle
 * handle keeps it from blocking). Otherwise a chain that never reaches the
 * kernel, a client and a server over the in-memory channel, would run to its
 * end within one drain while timers and I/O wait. */
static void run_queue(ct_loop_t *loop, ct_link_t *queue) {
    ct_link_t *node;
    ct_list_push_back(queue, &loop->drain_mark);
    while ((node = ct_list_pop_front(queue)) != &loop->drain_mark) {
        ct_task_t *task = CT_CONTAINER_OF(node, ct_task_t, link);
        task->queued = CT_TASK_IDLE;
        task->cb(task);
    }
}

/* Empty but for the drain mark, which is not a task. */
static int queue_empty(const ct_loop_t *loop, const ct_link_t *queue) {
    const ct_link_t *first = queue->next;
    if (first == &loop->drain_mark) first = first->next;
    return first == queue;
}

static void on_check(uv_check_t *check) {
    ct_loop_t *loop = CT_CONTAINER_OF(check, ct_loop_t, check);
    ct_loop_clock_stale(loop);
    run_queue(loop, &loop->tasks);
    if (ct_list_empty(&loop->tasks) && ct_list_empty(&loop->flushes)) {
        uv_idle_stop(&loop->idle);
        loop->idle_active = 0;
    }
}

static void on_prepare(uv_prepare_t *prepare) {
    ct_loop_t *loop = CT_CONTAINER_OF(prepare, ct_loop_t, prepare);
    ct_loop_clock_stale(loop);
    run_queue(loop, &loop->flushes);
    if (ct_list_empty(&loop->flushes)) {
        uv_prepare_stop(&loop->prepare);
        loop->prepare_active = 0;
    }
}

int ct_loop_init(ct_loop_t *loop, uv_loop_t *uv) {
    int r;
    loop->uv = uv;
    loop->data = NULL;
    loop->handles_open = 0;
    loop->idle_active = 0;
    loop->prepare_active = 0;
    loop->closing = 0;
    loop->close_cb = NULL;
    loop->clock_fresh = 0;
    ct_list_init(&loop->tasks);
    ct_list_init(&loop->flushes);
    ct_list_init(&loop->drain_mark);
    memset(loop->shared, 0, sizeof loop->shared);
    memset(loop->shared_lent, 0, sizeof loop->shared_lent);
    /* the system's source may be unavailable (an old kernel, a sandbox):
     * the clock and the address still tell two loops apart */
    if (uv_random(NULL, NULL, &loop->rng, sizeof loop->rng, 0, NULL) != 0)
        loop->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)loop;
    if ((r = uv_check_init(uv, &loop->check)) != 0) return r;
    if ((r = uv_idle_init(uv, &loop->idle)) != 0) goto fail_idle;
    if ((r = uv_prepare_init(uv, &loop->prepare)) != 0) goto fail_prepare;
    loop->handles_open = 3;
    /* The check handle is always running but must not keep uv_run alive on its
     * own; pending work keeps it alive through the (referenced) idle handle. */
    uv_check_start(&loop->check, on_check);
    uv_unref((uv_handle_t *)&loop->check);
    uv_unref((uv_handle_t *)&loop->prepare);
    return 0;
fail_prepare:
    uv_close((uv_handle_t *)&loop->idle, NULL);
fail_idle:
    uv_close((uv_handle_t *)&loop->check, NULL);
    return r;
}

static void on_handle_closed(uv_handle_t *handle) {
    ct_loop_t *loop = (ct_loop_t *)handle->data;
    if (--loop->handles_open == 0 && loop->close_cb) loop->close_cb(loop);
}

/* A buffer lent when the loop closes (it was closed from a read callback) is
 * freed when it comes back. */
static void free_shared(ct_loop_t *loop, int which) {
    if (loop->shared_lent[which]) return;
    free(loop->shared[which]);
    loop->shared[which] = NULL;
}

int ct_loop_close(ct_loop_t *loop, ct_loop_close_cb cb) {
    if (loop->closing) return CT_ECLOSING;
    if (!queue_empty(loop, &loop->tasks) || !queue_empty(loop, &loop->flushes)) return CT_EBUSY;
    loop->closing = 1;
    loop->close_cb = cb;
    free_shared(loop, CT_LOOP_READ_BUFFER);
    free_shared(loop, CT_LOOP_WRITE_BUFFER);
    loop->check.data = loop;
    loop->idle.data = loop;
    loop->prepare.data = loop;
    uv_close((uv_handle_t *)&loop->check, on_handle_closed);
    uv_close((uv_handle_t *)&loop->idle, on_handle_closed);
    uv_close((uv_handle_t *)&loop->prepare, on_handle_closed);
    return 0;
}

void ct_task_init(ct_task_t *task, ct_task_cb cb) {
    task->cb = cb;
    task->queued = CT_TASK_IDLE;
    ct_list_init(&task->link);
}

void ct_task_post(ct_loop_t *loop, ct_task_t *task) {
    if (task->queued) return;
    task->queued = CT_TASK_DEFERRED;
    ct_list_push_back(&loop->tasks, &task->link);
    keep_polling_nonblocking(loop);
}

void ct_loop_post_flush(ct_loop_t *loop, ct_task_t *task) {
    if (task->queued) return;
    task->queued = CT_TASK_FLUSH;
    ct_list_push_back(&loop->flushes, &task->link);
    if (!loop->prepare_active) {
        uv_prepare_start(&loop->prepare, on_prepare);
        loop->prepare_active = 1;
    }
    /* The prepare handle is unreferenced; the idle handle keeps the loop
     * turning until the flush has run. */
    keep_polling_nonblocking(loop);
}

void ct_task_cancel(ct_task_t *task) {
    if (!task->queued) return;
    ct_list_remove(&task->link);
    task->queued = CT_TASK_IDLE;
}

int ct_task_is_queued(const ct_task_t *task) {
    return task->queued != CT_TASK_IDLE;
}

uint8_t *ct_loop_lend_buffer(ct_loop_t *loop, int which, size_t *len) {
    if (loop->shared_lent[which] || loop->closing) return NULL;
    if (!loop->shared[which]) {
        loop->shared[which] = malloc(SHARED_BUFFER);
        if (!loop->shared[which]) return NULL;
    }
    loop->shared_lent[which] = 1;
    *len = SHARED_BUFFER;
    return loop->shared[which];
}

void ct_loop_return_buffer(ct_loop_t *loop, int which) {
    loop->shared_lent[which] = 0;
    if (loop->closing) free_shared(loop, which);
}

uint64_t ct_loop_random(ct_loop_t *loop) {
    uint64_t z = (loop->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
