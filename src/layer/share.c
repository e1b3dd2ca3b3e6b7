/* The share: calls from other loops to a service on its own.
 *
 * An entry belongs to its handle and carries one call both ways. Its state
 * says who has it, and changes only under the share's lock:
 *   FREE    the handle's (in its free list, or being filled in);
 *   QUEUED  in the share's submitted list: the handle may still take it
 *           back (cancel) under the lock;
 *   TAKEN   the share loop's (waiting for the inner service's READY, or in
 *           flight in it); a cancel is a message (the cancels list);
 *   DONE    on its way back (the handle's done list, under its lock).
 * Whatever the share loop does with an entry, it does on its own thread;
 * the handle's loop touches entries only while they are FREE or DONE, and
 * the lock orders the hand-overs. The last thing each side does with the
 * other's memory, a wake-up, happens under the lock that the other side
 * takes before it may free that memory. */
#include "ctower/layer/share.h"
#include "ctower/error.h"
#include "../core/list.h"

#include <stdlib.h>
#include <string.h>

enum { E_FREE, E_QUEUED, E_TAKEN, E_DONE };

typedef struct ct_share_entry {
    ct_op_t inner;  /* the call in the inner service (share loop) */
    ct_op_t *outer; /* the caller's op (handle loop); NULL once answered */
    void *request;  /* until the inner service takes it */
    void *response;
    int status, cause;
    int state;             /* under the share's lock */
    int waiting;           /* (share loop) in share->waiting */
    ct_link_t link;        /* free_entries, submitted, waiting, or done */
    ct_link_t cancel_link; /* in share->cancels, or alone */
    ct_share_handle_t *handle;
} entry_t;

/* ---- the share's side (its loop's thread) --------------------------------------- */

/* Sends e back to its handle with an outcome; a request not taken by the
 * inner service goes back too, for the handle to free. */
static void finish(ct_share_t *b, entry_t *e, int status, int cause, void *response) {
    ct_share_handle_t *h = e->handle;
    e->status = status;
    e->cause = cause;
    e->response = response;
    uv_mutex_lock(&b->lock);
    e->state = E_DONE;
    ct_list_remove(&e->cancel_link); /* a cancel that came too late */
    uv_mutex_unlock(&b->lock);
    uv_mutex_lock(&h->lock);
    ct_list_push_back(&h->done, &e->link);
    uv_async_send(&h->wakeup); /* under the lock: see the top of the file */
    uv_mutex_unlock(&h->lock);
}

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    finish(e->handle->share, e, status, op->cause, response);
}

static void on_wakeup_closed(uv_handle_t *handle) {
    ct_share_t *b = CT_CONTAINER_OF(handle, ct_share_t, wakeup);
    uv_mutex_destroy(&b->lock);
    ct_service_closed(&b->service);
}

static void on_inner_closed(ct_service_t *inner) {
    ct_share_t *b = inner->owner;
    uv_close((uv_handle_t *)&b->wakeup, on_wakeup_closed);
}

/* Calls the inner service with the waiting entries, in order, each after a
 * READY; when closing, fails them instead. */
static void pump(ct_share_t *b) {
    int r;
    while (!ct_list_empty(&b->waiting)) {
        entry_t *e = CT_CONTAINER_OF(b->waiting.next, entry_t, link);
        r = b->closing ? CT_ECLOSED : ct_service_poll_ready(b->inner, &b->ready);
        if (r == CT_PENDING) return; /* b->ready calls pump again */
        ct_list_remove(&e->link);
        e->waiting = 0;
        if (r == CT_READY) r = ct_service_call(b->inner, e->request, &e->inner);
        if (r < 0) { /* (CT_ETIMEDOUT: its deadline passed while it waited) */
            finish(b, e, r, r == CT_ETIMEDOUT ? CT_EDEADLINE : 0, NULL);
            continue;
        }
        e->request = NULL; /* the inner service's now */
    }
}

static void on_inner_ready(ct_waker_t *waker) {
    pump(CT_CONTAINER_OF(waker, ct_share_t, ready));
}

/* A cancel from a handle, for an entry the share had taken. */
static void cancel_taken(ct_share_t *b, entry_t *e) {
    if (e->waiting) { /* never called: it goes back as it came */
        ct_list_remove(&e->link);
        e->waiting = 0;
        finish(b, e, CT_ECANCELED, 0, NULL);
    } else if (ct_op_is_pending(&e->inner)) {
        ct_op_cancel(&e->inner); /* on_inner_done sends it back */
    }
}

static void on_wakeup(uv_async_t *async) {
    ct_share_t *b = CT_CONTAINER_OF(async, ct_share_t, wakeup);
    ct_link_t cancels, *node;
    size_t handles;
    ct_list_init(&cancels);
    uv_mutex_lock(&b->lock);
    for (node = b->submitted.next; node != &b->submitted; node = node->next) {
        entry_t *e = CT_CONTAINER_OF(node, entry_t, link);
        e->state = E_TAKEN;
        e->waiting = 1; /* (a field of the share loop's: this is its thread) */
    }
    ct_list_splice_back(&b->waiting, &b->submitted);
    ct_list_splice_back(&cancels, &b->cancels);
    handles = b->handles;
    uv_mutex_unlock(&b->lock);
    while ((node = ct_list_pop_front(&cancels)) != NULL)
        cancel_taken(b, CT_CONTAINER_OF(node, entry_t, cancel_link));
    pump(b);
    if (b->closing == 1 && handles == 0) { /* the last handle is gone */
        b->closing = 2;
        if (ct_service_close(b->inner, on_inner_closed) < 0) on_inner_closed(b->inner);
    }
}

static int share_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    (void)svc;
    (void)waker;
    return CT_ENOTSUP; /* call a handle */
}

static int share_call(ct_service_t *svc, void *request, ct_op_t *op) {
    (void)svc;
    (void)request;
    (void)op;
    return CT_ENOTSUP;
}

static void share_cancel(ct_service_t *svc, ct_op_t *op) {
    (void)svc;
    (void)op; /* never called: no op is ever pending here */
}

/* Calls still queued fail; the inner service closes once every handle has
 * (on_wakeup: each handle's detach wakes the share). */
static void share_close(ct_service_t *svc) {
    ct_share_t *b = (ct_share_t *)svc;
    uv_mutex_lock(&b->lock);
    b->closing = 1;
    uv_mutex_unlock(&b->lock);
    ct_waker_cancel(&b->ready);
    on_wakeup(&b->wakeup);
}

static const ct_service_vtable_t share_vtable = {
    share_poll_ready, share_call, share_cancel, NULL, NULL, share_close, NULL,
};

int ct_share_init(ct_share_t *b, ct_service_t *inner) {
    int r;
    if (!b || !inner || inner->owner) return CT_EINVAL;
    memset(b, 0, sizeof *b);
    if ((r = uv_mutex_init(&b->lock)) != 0) return r;
    if ((r = uv_async_init(inner->loop->uv, &b->wakeup, on_wakeup)) != 0) {
        uv_mutex_destroy(&b->lock);
        return r;
    }
    ct_service_init(&b->service, inner->loop, &share_vtable);
    b->inner = inner;
    inner->owner = b;
    ct_list_init(&b->submitted);
    ct_list_init(&b->cancels);
    ct_list_init(&b->waiting);
    ct_waker_init(&b->ready, inner->loop, on_inner_ready);
    return 0;
}

/* ---- a handle's side (its loop's thread) ------------------------------------------ */

static void free_msg(ct_share_handle_t *h, void *msg) {
    if (msg && h->cfg.free_msg) h->cfg.free_msg(msg, h->cfg.free_ctx);
}

static void on_handle_wakeup_closed(uv_handle_t *handle) {
    ct_share_handle_t *h = CT_CONTAINER_OF(handle, ct_share_handle_t, wakeup);
    uv_mutex_destroy(&h->lock);
    free(h->entries);
    h->entries = NULL;
    ct_service_closed(&h->service);
}

/* Every entry is home: the share forgets h, and h closes. */
static void detach(ct_share_handle_t *h) {
    ct_share_t *b = h->share;
    uv_mutex_lock(&b->lock);
    b->handles--;
    uv_async_send(&b->wakeup); /* a closing share may be waiting for this */
    uv_mutex_unlock(&b->lock);
    uv_close((uv_handle_t *)&h->wakeup, on_handle_wakeup_closed);
}

static void give_back(ct_share_handle_t *h, entry_t *e) {
    e->state = E_FREE; /* (nobody else can see it now) */
    ct_list_push_back(&h->free_entries, &e->link);
    h->in_flight--;
}

static void on_handle_wakeup(uv_async_t *async) {
    ct_share_handle_t *h = CT_CONTAINER_OF(async, ct_share_handle_t, wakeup);
    ct_link_t done, *node;
    ct_list_init(&done);
    uv_mutex_lock(&h->lock);
    ct_list_splice_back(&done, &h->done);
    uv_mutex_unlock(&h->lock);
    while ((node = ct_list_pop_front(&done)) != NULL) {
        entry_t *e = CT_CONTAINER_OF(node, entry_t, link);
        ct_op_t *outer = e->outer;
        void *request = e->request, *response = e->response;
        e->outer = NULL;
        e->request = e->response = NULL;
        give_back(h, e);
        free_msg(h, request); /* not taken by the inner service */
        if (outer)
            ct_op_complete_now(outer, e->status, e->cause, response); /* a fresh stack */
        else
            free_msg(h, response); /* canceled: nobody waits for it */
    }
    if (!ct_waitq_empty(&h->waiters)) ct_waitq_wake_all(&h->waiters);
    if (h->closing && h->in_flight == 0 && !uv_is_closing((uv_handle_t *)&h->wakeup)) detach(h);
}

static int handle_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_share_handle_t *h = (ct_share_handle_t *)svc;
    if (!ct_list_empty(&h->free_entries)) return CT_READY;
    if (waker) ct_waitq_add(&h->waiters, waker);
    return CT_PENDING;
}

static int handle_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_share_handle_t *h = (ct_share_handle_t *)svc;
    ct_share_t *b = h->share;
    ct_link_t *node = ct_list_pop_front(&h->free_entries);
    entry_t *e;
    int closed;
    if (!node) {
        free_msg(h, request);
        ct_op_complete(op, CT_EOVERLOADED, 0, NULL);
        return 0;
    }
    e = CT_CONTAINER_OF(node, entry_t, link);
    e->outer = op;
    e->request = request;
    /* read on the share's loop, after the lock below: the caller keeps it
     * unchanged until its op completes (context.h) */
    e->inner.ctx = op->ctx;
    op->slot = (size_t)(e - h->entries);
    h->in_flight++;
    uv_mutex_lock(&b->lock);
    closed = b->closing != 0;
    if (!closed) {
        e->state = E_QUEUED;
        ct_list_push_back(&b->submitted, &e->link);
        uv_async_send(&b->wakeup);
    }
    uv_mutex_unlock(&b->lock);
    if (closed) {
        e->outer = NULL;
        e->request = NULL;
        give_back(h, e);
        free_msg(h, request);
        ct_op_complete(op, CT_ECLOSED, 0, NULL);
    }
    return 0;
}

/* Takes e back from the share, or asks the share to let go of it: a
 * queued entry comes back at once, a taken one by the done list. */
static void recall(ct_share_handle_t *h, entry_t *e) {
    ct_share_t *b = h->share;
    int queued;
    uv_mutex_lock(&b->lock);
    queued = e->state == E_QUEUED;
    if (queued) {
        ct_list_remove(&e->link);
    } else if (e->state == E_TAKEN && ct_list_empty(&e->cancel_link)) {
        ct_list_push_back(&b->cancels, &e->cancel_link);
        uv_async_send(&b->wakeup);
    }
    uv_mutex_unlock(&b->lock);
    if (queued) {
        void *request = e->request;
        e->request = NULL;
        give_back(h, e);
        free_msg(h, request);
    }
}

static void handle_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_share_handle_t *h = (ct_share_handle_t *)svc;
    entry_t *e = &h->entries[op->slot];
    e->outer = NULL;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
    recall(h, e);
    if (!ct_waitq_empty(&h->waiters)) ct_waitq_wake_all(&h->waiters);
}

static void handle_close(ct_service_t *svc) {
    ct_share_handle_t *h = (ct_share_handle_t *)svc;
    size_t i;
    h->closing = 1;
    for (i = 0; i < h->cfg.max_in_flight; i++) {
        entry_t *e = &h->entries[i];
        if (!e->outer) continue; /* free, or its caller already answered */
        ct_op_complete(e->outer, CT_ECLOSED, 0, NULL);
        e->outer = NULL;
        recall(h, e);
    }
    ct_waitq_wake_all(&h->waiters);
    if (h->in_flight == 0) detach(h);
}

static const ct_service_vtable_t handle_vtable = {
    handle_poll_ready, handle_call, handle_cancel, NULL, NULL, handle_close, NULL,
};

int ct_share_handle_init(ct_share_handle_t *h, ct_loop_t *loop, ct_share_t *b,
                         const ct_share_handle_config_t *cfg) {
    size_t i, n;
    int r;
    if (!h || !loop || !b) return CT_EINVAL;
    memset(h, 0, sizeof *h);
    if (cfg) h->cfg = *cfg;
    if (h->cfg.max_in_flight == 0) h->cfg.max_in_flight = 1024;
    n = h->cfg.max_in_flight;
    uv_mutex_lock(&b->lock); /* attached first: a closing share refuses */
    r = b->closing ? CT_ECLOSING : 0;
    if (r == 0) b->handles++;
    uv_mutex_unlock(&b->lock);
    if (r != 0) return r;
    h->entries = calloc(n, sizeof *h->entries);
    if (!h->entries) {
        r = UV_ENOMEM;
        goto fail_entries;
    }
    if ((r = uv_mutex_init(&h->lock)) != 0) goto fail_mutex;
    if ((r = uv_async_init(loop->uv, &h->wakeup, on_handle_wakeup)) != 0) goto fail_async;
    ct_service_init(&h->service, loop, &handle_vtable);
    h->share = b;
    ct_list_init(&h->free_entries);
    ct_list_init(&h->done);
    ct_waitq_init(&h->waiters);
    for (i = 0; i < n; i++) {
        entry_t *e = &h->entries[i];
        e->handle = h;
        ct_list_init(&e->cancel_link);
        ct_op_init(&e->inner, on_inner_done); /* used on the share's loop */
        ct_list_push_back(&h->free_entries, &e->link);
    }
    return 0;
fail_async:
    uv_mutex_destroy(&h->lock);
fail_mutex:
    free(h->entries);
    h->entries = NULL;
fail_entries:
    uv_mutex_lock(&b->lock);
    b->handles--;
    uv_async_send(&b->wakeup); /* as detach() */
    uv_mutex_unlock(&b->lock);
    return r;
}
