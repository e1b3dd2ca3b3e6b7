/* Wakers: deferred callbacks that service providers keep in wait queues. */
#include "ctower/waker.h"
#include "list.h"

static void run_waker(ct_task_t *task) {
    ct_waker_t *waker = CT_CONTAINER_OF(task, ct_waker_t, task);
    waker->cb(waker);
}

void ct_waker_init(ct_waker_t *waker, ct_loop_t *loop, ct_waker_cb cb) {
    waker->data = NULL;
    waker->cb = cb;
    waker->loop = loop;
    ct_task_init(&waker->task, run_waker);
    ct_list_init(&waker->wait_link);
}

void ct_waker_wake(ct_waker_t *waker) {
    ct_list_remove(&waker->wait_link);
    ct_task_post(waker->loop, &waker->task);
}

void ct_waker_cancel(ct_waker_t *waker) {
    ct_list_remove(&waker->wait_link);
    ct_task_cancel(&waker->task);
}

void ct_waitq_init(ct_waitq_t *q) {
    ct_list_init(&q->head);
}

void ct_waitq_add(ct_waitq_t *q, ct_waker_t *waker) {
    ct_list_remove(&waker->wait_link);
    ct_list_push_back(&q->head, &waker->wait_link);
}

void ct_waitq_wake_all(ct_waitq_t *q) {
    ct_link_t *node;
    while ((node = ct_list_pop_front(&q->head)) != NULL)
        ct_waker_wake(CT_CONTAINER_OF(node, ct_waker_t, wait_link));
}

int ct_waitq_empty(const ct_waitq_t *q) {
    return ct_list_empty(&q->head);
}
