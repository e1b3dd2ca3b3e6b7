/* Wakers and wait queues: how a PENDING answer becomes a later retry.
 *
 * A waker is a caller-owned callback. When a service (or transport) answers
 * PENDING it keeps the waker in a wait queue and wakes it once readiness may
 * have changed; the waker's callback then runs from a fresh stack (a deferred
 * task on the loop). Waking is a hint: the woken party polls again. A service
 * may wake more often than needed, never less.
 *
 * A waker is in at most one wait queue at a time; registering it again moves
 * it. ct_waker_cancel() takes it out of everything, after which its memory may
 * be reused.
 */
#ifndef CTOWER_WAKER_H
#define CTOWER_WAKER_H

#include "ctower/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Answers of every poll function (errors are negative). */
enum { CT_READY = 0, CT_PENDING = 1 };

typedef struct ct_waker ct_waker_t;
/* A waker's callback. */
typedef void (*ct_waker_cb)(ct_waker_t *waker);

/* A caller-owned callback that a PENDING answer keeps and wakes. */
struct ct_waker {
    void *data;     /* for the user */
    ct_waker_cb cb; /* runs, from a fresh stack, once woken */
    /* private */
    ct_task_t task;
    ct_link_t wait_link;
    ct_loop_t *loop;
};

/* A list of wakers waiting for one condition (for implementers). */
typedef struct ct_waitq {
    ct_link_t head; /* the wakers waiting */
} ct_waitq_t;

/* Initializes waker on loop with its callback. */
void ct_waker_init(ct_waker_t *waker, ct_loop_t *loop, ct_waker_cb cb);

/* Schedules waker's callback (once, however often it is woken before it runs)
 * and takes it out of its wait queue. */
void ct_waker_wake(ct_waker_t *waker);

/* Takes waker out of its wait queue and unschedules its callback. */
void ct_waker_cancel(ct_waker_t *waker);

/* Initializes an empty wait queue. */
void ct_waitq_init(ct_waitq_t *q);

/* Puts waker in q (moving it out of any other queue). */
void ct_waitq_add(ct_waitq_t *q, ct_waker_t *waker);

/* Wakes every waker in q and empties q. */
void ct_waitq_wake_all(ct_waitq_t *q);

/* Non-zero if no waker waits in q. */
int ct_waitq_empty(const ct_waitq_t *q);

#ifdef __cplusplus
}
#endif
#endif
