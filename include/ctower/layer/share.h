/* ct_share_t and ct_share_handle_t: a service on one loop, called from
 * others (tower's Buffer, across threads).
 *
 * A service belongs to one loop, and so to one thread (DESIGN.md, section
 * 2). To share it with code on other loops, wrap it in a ct_share_t on its
 * own loop, and give each other loop a ct_share_handle_t: a service on that
 * loop whose calls go to the shared one. One backend connection (a
 * reconnecting client, say) can so serve the listeners of several threads.
 *
 * How a call travels: the handle puts it on the share's queue, under a
 * mutex, and wakes the share's loop (uv_async_t); there the share calls
 * the inner service, in the order the calls were queued, each after a READY
 * (so the inner service's back-pressure holds the queue back). The answer
 * goes the same way back: onto the handle's queue, and a wake-up of the
 * handle's loop, where the caller's op completes. Wake-ups are coalesced by
 * libuv, so a burst of calls costs one wake-up each way, not one per call.
 *
 * Each handle holds at most `max_in_flight` calls (its poll_ready is PENDING
 * beyond, and a call beyond fails with CT_EOVERLOADED), so the queue is
 * bounded by the handles' bounds.
 *
 * Requests and responses cross threads: the library only moves the
 * pointers, and the memory they point to must be usable from both threads.
 * A ct_buf_pool_t is not thread-safe: give the handle side and the share
 * side each its own pool, or use ct_buf_new()/ct_buf_free().
 *
 * Cancel on a handle: the caller's op completes with CT_ECANCELED at once;
 * a call still in the queue is taken out, one already made is canceled in
 * the inner service, and its answer, if any, freed. Close a handle: its
 * calls complete with CT_ECLOSED, and the close callback runs once the
 * share has let go of all of them.
 *
 * Close the share on its loop, after its handles or before: from its close
 * on, calls from the handles and calls still queued fail with CT_ECLOSED
 * (calls already made in the inner service go on), no handle can attach,
 * and the inner service is closed once the last handle has closed; then the
 * share's close callback runs. The share itself takes no calls (its
 * poll_ready and call return CT_ENOTSUP): its handles do.
 */
#ifndef CTOWER_LAYER_SHARE_H
#define CTOWER_LAYER_SHARE_H

#include "ctower/service.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ct_share_entry;

/* A service on its own loop, shared with the handles of other loops. */
typedef struct ct_share {
    ct_service_t service; /* first: for close; the calls go through handles */
    /* private */
    ct_service_t *inner;
    uv_async_t wakeup;   /* a handle queued something */
    uv_mutex_t lock;     /* guards submitted, cancels and handles */
    ct_link_t submitted; /* entries from the handles, in call order */
    ct_link_t cancels;   /* entries whose caller canceled after the share took them */
    ct_link_t waiting;   /* (share loop only) taken, not yet called: inner not ready */
    size_t handles;      /* handles attached */
    ct_waker_t ready;    /* inner's readiness, while waiting is not empty */
    int closing;
} ct_share_t;

/* A handle's bound, and how it frees what nobody gets. */
typedef struct ct_share_handle_config {
    /* Calls in flight at most through this handle (0: 1024). */
    size_t max_in_flight;
    /* Frees a request the handle refuses or gets back (a call canceled in
     * the queue, made when the handle is full, or refused by the inner
     * service), and an answer nobody waits for any more. Runs on the
     * handle's loop. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_share_handle_config_t;

/* A service on another loop whose calls go to a ct_share_t. */
typedef struct ct_share_handle {
    ct_service_t service; /* first: a handle is a service, on its own loop */
    /* private */
    ct_share_t *share;
    ct_share_handle_config_t cfg;
    struct ct_share_entry *entries;
    ct_link_t free_entries; /* (handle loop only) */
    size_t in_flight;       /* (handle loop only) entries not free */
    uv_async_t wakeup;      /* the share answered something */
    uv_mutex_t lock;        /* guards done */
    ct_link_t done;         /* entries the share is done with */
    ct_waitq_t waiters;
    int closing;
} ct_share_handle_t;

/* Wraps inner, on inner's loop (the share owns inner from now on: closing
 * the share closes it). Returns 0, CT_EINVAL or a libuv error. */
int ct_share_init(ct_share_t *b, ct_service_t *inner);

/* Attaches h, on loop (any thread's, the share's own included), to b.
 * Thread-safe with respect to b. Returns 0, CT_EINVAL, CT_ECLOSING (b is
 * closing), UV_ENOMEM or a libuv error. */
int ct_share_handle_init(ct_share_handle_t *h, ct_loop_t *loop, ct_share_t *b,
                         const ct_share_handle_config_t *cfg);

#ifdef __cplusplus
}
#endif
#endif
