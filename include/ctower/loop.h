/* ct_loop_t: ctower's state for one libuv loop.
 *
 * Every ctower object belongs to one ct_loop_t, which the user allocates,
 * initializes over a uv_loop_t it owns, and closes before closing that loop.
 * It holds no global state: two loops in two threads never share anything.
 *
 * It provides two queues that the rest of the library relies on:
 *
 *  - Deferred tasks (ct_task_post). Completion callbacks, wakers and transport
 *    deliveries are never run from the stack that caused them; they are queued
 *    and run from a uv_check handle in the same loop turn, before the loop
 *    polls again (a uv_idle handle is active while the queue is non-empty so
 *    that the poll does not block). A caller therefore never sees its own
 *    callback re-entered from inside the function it called. A drain runs
 *    what was queued when it began; what those tasks post runs in the next
 *    (non-blocking) turn, so an endless chain cannot starve timers or I/O.
 *
 *  - Flush tasks (ct_loop_post_flush), run from a uv_prepare handle just before
 *    the loop polls for I/O. Transports use it to turn every message sent during
 *    a turn into one write.
 *
 * It also lends its transports a read and a write buffer (ct_loop_lend_buffer)
 * for the length of one read callback, so that a connection needs buffers of
 * its own only for what does not fit in one callback (a frame split across
 * reads, output the socket does not take at once): an idle connection holds
 * none.
 */
#ifndef CTOWER_LOOP_H
#define CTOWER_LOOP_H

#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An intrusive doubly-linked list node (private to the library). */
typedef struct ct_link {
    struct ct_link *prev; /* the previous node (the list's head links both ends) */
    struct ct_link *next; /* the next node */
} ct_link_t;

typedef struct ct_loop ct_loop_t;
typedef struct ct_task ct_task_t;
/* A task's work. */
typedef void (*ct_task_cb)(ct_task_t *task);
/* What ct_loop_close() calls back, once the loop's handles are closed. */
typedef void (*ct_loop_close_cb)(ct_loop_t *loop);

/* A callback to run later from a fresh stack. Caller-allocated, usually
 * embedded in a larger struct and recovered with CT_CONTAINER_OF. */
struct ct_task {
    ct_task_cb cb; /* what runs */
    /* private */
    ct_link_t link;
    int queued;
};

/* ctower's state for one uv_loop_t: its queue of callbacks, shared buffers, clock. */
struct ct_loop {
    uv_loop_t *uv; /* the libuv loop it is on, yours */
    void *data;    /* for the user */
    /* private */
    uv_check_t check;
    uv_idle_t idle;
    uv_prepare_t prepare;
    ct_link_t tasks;
    ct_link_t flushes;
    ct_link_t drain_mark; /* ends what the running drain may take */
    int handles_open;
    int idle_active;
    int prepare_active;
    int closing;
    ct_loop_close_cb close_cb;
    /* shared buffers: allocated at their first lend, freed by close */
    uint8_t *shared[2];
    int shared_lent[2];
    uint64_t rng;      /* ct_loop_random's state */
    uint64_t clock_ns; /* ct_loop_clock_ns's reading, while clock_fresh */
    int clock_fresh;
};

/* The struct of type that ptr's member is in. */
#define CT_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Initializes loop over uv. Returns 0 or a libuv error. */
int ct_loop_init(ct_loop_t *loop, uv_loop_t *uv);

/* Starts closing loop: its libuv handles are closed and cb runs once they are
 * (the uv loop must run for that). Every ctower object on the loop must be
 * closed first; otherwise returns CT_EBUSY and closes nothing. Closing twice
 * returns CT_ECLOSING. */
int ct_loop_close(ct_loop_t *loop, ct_loop_close_cb cb);

/* Initializes a task with its callback. */
void ct_task_init(ct_task_t *task, ct_task_cb cb);

/* Queues task to run from the loop's check phase of this turn. Posting a task
 * that is already queued does nothing (it still runs once). */
void ct_task_post(ct_loop_t *loop, ct_task_t *task);

/* Queues task to run just before the loop next polls for I/O (write batching).
 * Posting a queued task does nothing. */
void ct_loop_post_flush(ct_loop_t *loop, ct_task_t *task);

/* Removes task from whichever queue holds it; its callback will not run.
 * Safe on a task that is not queued. After this the task's memory may be
 * reused. */
void ct_task_cancel(ct_task_t *task);

/* Non-zero while task is queued. */
int ct_task_is_queued(const ct_task_t *task);

enum { CT_LOOP_READ_BUFFER = 0, CT_LOOP_WRITE_BUFFER = 1 };

/* For transports: one of the loop's two shared buffers (which: READ or
 * WRITE), *len bytes, for one read callback: read into it and take every
 * whole frame, or encode into it and write; copy what is left into a buffer
 * of your own and give it back before returning to libuv. NULL (use your
 * own) while it is lent or if it cannot be allocated. */
uint8_t *ct_loop_lend_buffer(ct_loop_t *loop, int which, size_t *len);

/* Gives the buffer lent by ct_loop_lend_buffer() back. */
void ct_loop_return_buffer(ct_loop_t *loop, int which);

/* 64 random bits, for ids (a trace's span ids, context.h), not for keys:
 * a generator of the loop's own (splitmix64), seeded from the system's
 * random source when the loop was initialized. */
uint64_t ct_loop_random(ct_loop_t *loop);

/* A batch's clock (uv_hrtime's, ns): read once per batch of work, the
 * first time it is asked for after ct_loop_clock_stale(), which the loop
 * calls as each drain of its queues begins and a stream as each read
 * callback begins. Requests that arrived in one read share its reading,
 * as they shared the socket; what a server times with it (its latency
 * histogram) is known to within the batch that read or answered it, for
 * two clock reads per batch instead of two per request. */
static inline uint64_t ct_loop_clock_ns(ct_loop_t *loop) {
    if (!loop->clock_fresh) {
        loop->clock_ns = uv_hrtime();
        loop->clock_fresh = 1;
    }
    return loop->clock_ns;
}

/* The next ct_loop_clock_ns() reads the clock again. */
static inline void ct_loop_clock_stale(ct_loop_t *loop) {
    loop->clock_fresh = 0;
}

#ifdef __cplusplus
}
#endif
#endif
