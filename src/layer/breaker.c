/* The circuit breaker. Each call that goes through takes an entry, which
 * holds its op in the inner service, so the breaker sees every answer: it
 * counts the failures in a row, and the probe's outcome. Calls refused
 * while open take nothing. */
#include "ctower/layer/breaker.h"
#include "ctower/error.h"
#include "entry.h"
#include "../core/backoff.h"
#include "failure.h"

#include <stdlib.h>
#include <string.h>

typedef struct ct_breaker_entry {
    ct_op_t inner;
    ct_op_t *outer; /* NULL once the caller has been answered */
    size_t index;   /* in layer->entries */
    int probe;      /* the half-open breaker's probe */
    ct_breaker_t *layer;
} entry_t;

static void free_msg(ct_breaker_t *b, void *msg) {
    if (msg && b->cfg.free_msg) b->cfg.free_msg(msg, b->cfg.free_ctx);
}

/* ---- the state ------------------------------------------------------------------- */

static ct_breaker_state_t state(const ct_breaker_t *b) {
    if (!b->open) return CT_BREAKER_CLOSED;
    return uv_now(b->service.loop->uv) < b->open_until ? CT_BREAKER_OPEN : CT_BREAKER_HALF_OPEN;
}

/* Whether a call now fails at once: open, or half-open with the probe out. */
static int failing_fast(const ct_breaker_t *b) {
    ct_breaker_state_t s = state(b);
    return s == CT_BREAKER_OPEN || (s == CT_BREAKER_HALF_OPEN && b->probing);
}

static void open_circuit(ct_breaker_t *b) {
    uint64_t pause;
    b->open = 1;
    b->probing = 0;
    ct_counter_add(&b->metrics.opens, 1);
    ct_gauge_set(&b->metrics.open, 1);
    b->opens_in_a_row++;
    pause = ct_backoff_ms(&b->rng, b->cfg.pause_min_ms, b->cfg.pause_max_ms, b->opens_in_a_row);
    b->open_until = uv_now(b->service.loop->uv) + pause;
    ct_waitq_wake_all(&b->waiters); /* those waiting for an entry now fail fast */
}

static void close_circuit(ct_breaker_t *b) {
    ct_counter_add(&b->metrics.closes, 1);
    ct_gauge_set(&b->metrics.open, 0);
    b->open = 0;
    b->probing = 0;
    b->opens_in_a_row = 0;
    b->failures_in_a_row = 0;
}

/* One call's outcome. */
static void count(ct_breaker_t *b, entry_t *e, int status, int cause) {
    int failed;
    if (e->probe) b->probing = 0;
    if (status == CT_ECANCELED) return; /* says nothing of the service */
    failed =
        status < 0 && (b->cfg.is_failure ? b->cfg.is_failure(b->cfg.is_failure_ctx, status, cause)
                                         : ct_failure_default(status));
    if (!failed) {
        b->failures_in_a_row = 0;
        if (e->probe) close_circuit(b);
        return;
    }
    b->failures_in_a_row++;
    if (e->probe || (!b->open && b->failures_in_a_row >= b->cfg.failures_to_open)) open_circuit(b);
}

/* ---- calls ------------------------------------------------------------------------- */

static void on_inner_done(ct_op_t *op, int status, void *response) {
    entry_t *e = CT_CONTAINER_OF(op, entry_t, inner);
    ct_breaker_t *b = e->layer;
    count(b, e, status, op->cause);
    e->probe = 0;
    b->free_entries[b->nfree++] = e;
    if (!ct_waitq_empty(&b->waiters)) ct_waitq_wake_all(&b->waiters);
    ct_entry_answer(&e->outer, op, status, response, b->cfg.free_msg, b->cfg.free_ctx);
}

static int breaker_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    ct_breaker_t *b = (ct_breaker_t *)svc;
    int r;
    if (b->reserved || failing_fast(b)) return CT_READY;
    if (b->nfree == 0) {
        if (waker) ct_waitq_add(&b->waiters, waker);
        return CT_PENDING;
    }
    if ((r = ct_service_poll_ready(b->inner, waker)) == CT_READY) b->reserved = 1;
    return r;
}

static int refuse(ct_breaker_t *b, void *request, ct_op_t *op, int status) {
    free_msg(b, request);
    if (status == CT_EOPEN) ct_counter_add(&b->metrics.rejected, 1);
    ct_op_complete(op, status, 0, NULL);
    return 0;
}

static int breaker_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_breaker_t *b = (ct_breaker_t *)svc;
    entry_t *e;
    int r;
    if (failing_fast(b)) {
        if (b->reserved) ct_service_release(b->inner); /* it opened since the READY */
        b->reserved = 0;
        return refuse(b, request, op, CT_EOPEN);
    }
    if (b->nfree == 0) return refuse(b, request, op, CT_EOVERLOADED);
    b->reserved = 0;
    e = b->free_entries[--b->nfree];
    e->inner.ctx = op->ctx;
    if ((r = ct_service_call(b->inner, request, &e->inner)) < 0) {
        b->free_entries[b->nfree++] = e; /* nothing started: the request is the caller's */
        return r;
    }
    e->outer = op;
    op->slot = e->index;
    if (b->open) { /* half-open: this call is the probe */
        e->probe = 1;
        b->probing = 1;
    }
    return 0;
}

static void breaker_cancel(ct_service_t *svc, ct_op_t *op) {
    ct_breaker_t *b = (ct_breaker_t *)svc;
    entry_t *e = &b->entries[op->slot];
    ct_entry_cancel(&e->outer, &e->inner);
}

static void breaker_release(ct_service_t *svc) {
    ct_breaker_t *b = (ct_breaker_t *)svc;
    if (!b->reserved) return;
    b->reserved = 0;
    ct_service_release(b->inner);
}

/* ---- shutdown and close ------------------------------------------------------------ */

static int breaker_shutdown(ct_service_t *svc) {
    return ct_service_shutdown(((ct_breaker_t *)svc)->inner, ct_service_shutdown_done_owner);
}

/* The inner service completed every op before its close callback, so every
 * entry has come home. */
static void on_inner_closed(ct_service_t *inner) {
    ct_breaker_t *b = inner->owner;
    free(b->entries);
    b->entries = NULL;
    ct_service_closed(&b->service);
}

static void breaker_close(ct_service_t *svc) {
    ct_breaker_t *b = (ct_breaker_t *)svc;
    b->reserved = 0;
    ct_waitq_wake_all(&b->waiters);
    if (ct_service_close(b->inner, on_inner_closed) < 0) on_inner_closed(b->inner);
}

/* No call_sync: an answer given at once would skip the count. */
static const ct_service_vtable_t breaker_vtable = {
    breaker_poll_ready, breaker_call,  breaker_cancel, breaker_release,
    breaker_shutdown,   breaker_close, NULL,
};

/* ---- setup --------------------------------------------------------------------------- */

int ct_breaker_init(ct_breaker_t *b, ct_loop_t *loop, ct_service_t *inner,
                    const ct_breaker_config_t *cfg) {
    ct_breaker_config_t c;
    size_t i, n;
    if (!b || !loop || !inner || inner->owner || !cfg) return CT_EINVAL;
    c = *cfg;
    if (c.failures_to_open == 0) c.failures_to_open = 5;
    if (c.pause_min_ms == 0) c.pause_min_ms = 1000;
    if (c.pause_max_ms == 0) c.pause_max_ms = c.pause_min_ms > 30000 ? c.pause_min_ms : 30000;
    if (c.pause_max_ms < c.pause_min_ms) return CT_EINVAL;
    if (c.max_in_flight == 0) c.max_in_flight = 1024;
    memset(b, 0, sizeof *b);
    n = c.max_in_flight;
    /* the entries, then the stack of free ones, in one block */
    if (!(b->entries = calloc(n, sizeof *b->entries + sizeof *b->free_entries))) return UV_ENOMEM;
    b->free_entries = (entry_t **)(b->entries + n);
    ct_service_init(&b->service, loop, &breaker_vtable);
    b->cfg = c;
    b->inner = inner;
    inner->owner = b;
    b->rng = ct_backoff_seed(b);
    ct_waitq_init(&b->waiters);
    for (i = 0; i < n; i++) {
        entry_t *e = &b->entries[n - 1 - i];
        e->layer = b;
        e->index = n - 1 - i;
        ct_op_init(&e->inner, on_inner_done); /* reusable after each callback */
        b->free_entries[b->nfree++] = e;
    }
    return 0;
}

void ct_breaker_stats(const ct_breaker_t *b, ct_breaker_stats_t *out) {
    out->state = state(b);
    out->failures_in_a_row = b->failures_in_a_row;
    out->opens = ct_counter_read(&b->metrics.opens);
    out->rejected = ct_counter_read(&b->metrics.rejected);
}

int ct_breaker_add_stats(ct_breaker_t *b, ct_stats_t *s, const char *labels) {
    int r;
    if ((r = ct_stats_add_gauge(s, "ctower_breaker_open", labels,
                                "1 while the breaker is open or half-open.", &b->metrics.open)) ||
        (r = ct_stats_add_counter(s, "ctower_breaker_opens_total", labels,
                                  "Times the breaker opened.", &b->metrics.opens)) ||
        (r = ct_stats_add_counter(s, "ctower_breaker_closes_total", labels,
                                  "Times a probe closed the breaker.", &b->metrics.closes)))
        return r;
    return ct_stats_add_counter(s, "ctower_breaker_rejected_total", labels,
                                "Calls failed fast while open.", &b->metrics.rejected);
}
