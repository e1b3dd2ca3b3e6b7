/* ct_queue_t: calls that wait their turn, so that a caller need not drive
 * readiness itself.
 *
 * A service answers CT_PENDING when it is full, and a call made anyway
 * fails with CT_EOVERLOADED. A program that has 10,000 calls to make at
 * once would have to keep them, poll_ready with a waker, and issue each on
 * READY: a scheduler of its own. The queue is that scheduler, as a layer:
 * a call to it is taken at once (up to max_queued waiting), and issued to
 * the inner service in the order it came, each after a READY, at most
 * max_in_flight at a time.
 *
 * - Full: with max_in_flight calls in the inner service and max_queued
 *   waiting, poll_ready is PENDING (the waker is woken when one leaves) and
 *   a call fails with CT_EOVERLOADED.
 * - Cancel: a waiting call completes with CT_ECANCELED at once, its
 *   request freed; one already issued is canceled in the inner service.
 * - Deadlines: a waiting call whose context's deadline passes fails with
 *   CT_ETIMEDOUT (cause CT_EDEADLINE) then, not when its turn comes.
 * - The inner service dies (poll_ready answers an error): every waiting
 *   call fails with that error.
 * - Shutdown: the waiting calls are issued, then the inner service is shut
 *   down. Close: the waiting calls fail with CT_ECLOSED, then the inner
 *   service is closed.
 *
 * No call_sync and no reservation: a READY is a hint that a call will be
 * taken, and calls made without one are taken the same way.
 */
#ifndef CTOWER_LAYER_QUEUE_H
#define CTOWER_LAYER_QUEUE_H

#include "ctower/service.h"
#include "ctower/stats.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The queue's bounds, and how it frees what nobody gets. */
typedef struct ct_queue_config {
    size_t max_queued;    /* calls waiting at most (0: 1024) */
    size_t max_in_flight; /* calls issued to the inner service at most (0: 1024) */
    /* Frees the requests of calls that fail before they are issued, and
     * responses nobody waits for. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_queue_config_t;

/* What the queue counts (stats.h; read them with ct_counter_read ...). */
typedef struct ct_queue_metrics {
    ct_counter_t calls;   /* taken */
    ct_counter_t refused; /* CT_EOVERLOADED: the queue was full */
    ct_counter_t expired; /* their deadline passed while they waited */
    ct_gauge_t waiting;   /* taken, not yet issued */
    ct_gauge_t in_flight; /* issued, not yet answered */
} ct_queue_metrics_t;

struct ct_queue_entry;

/* The queueing layer: a service over the one whose readiness it waits for. */
typedef struct ct_queue {
    ct_service_t service;       /* first: the layer is a service */
    ct_queue_metrics_t metrics; /* its counts (ct_queue_add_stats()) */
    /* private */
    ct_service_t *inner;
    ct_queue_config_t cfg;
    struct ct_queue_entry *entries;
    struct ct_queue_entry **free_entries;
    size_t nfree;
    size_t in_flight;
    ct_link_t waiting; /* entries in the order they came */
    size_t nwaiting;
    ct_waker_t ready;   /* polls the inner service for the head of the queue */
    ct_waitq_t callers; /* wakers of callers that found the queue full */
    uv_timer_t deadline_timer;
    uint64_t next_deadline; /* the timer's, 0: not armed */
    int draining;           /* shut down: the inner one after the last waiting call */
    int closing;
} ct_queue_t;

/* Wraps inner (on loop, wrapped by no other layer), which the layer owns
 * from now on. Returns 0, CT_EINVAL or UV_ENOMEM; on error inner is still
 * the caller's. */
int ct_queue_init(ct_queue_t *queue, ct_loop_t *loop, ct_service_t *inner,
                  const ct_queue_config_t *cfg);

/* Registers the queue's metrics in stats, with labels (may be NULL):
 * ctower_queue_calls_total, ctower_queue_refused_total,
 * ctower_queue_expired_total, ctower_queue_waiting and
 * ctower_queue_in_flight. Returns 0 or an error of ct_stats_add_counter()
 * or ct_stats_add_gauge(). */
int ct_queue_add_stats(ct_queue_t *queue, ct_stats_t *stats, const char *labels);

#ifdef __cplusplus
}
#endif
#endif
