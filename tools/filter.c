/* The request filter layer (filter.h): the caller's op goes to the inner
 * service as it is, or completes at once with the rule's answer. */
#include "filter.h"

static int filter_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    return ct_service_poll_ready(((filter_t *)svc)->inner, waker);
}

static int filter_call(ct_service_t *svc, void *msg, ct_op_t *op) {
    filter_t *f = (filter_t *)svc;
    ct_buf_t *request = msg, *answer = NULL;
    filter_hop_t hop = {op->ctx, 0, 0, f->room};
    if (op->ctx) {
        hop.now = uv_now(svc->loop->uv);
        if (ct_context_traced(op->ctx)) hop.span = ct_loop_random(svc->loop);
    }
    if (f->rule(f->pool, &hop, &request, &answer) == FILTER_PASS)
        return f->inner->vtable->call(f->inner, request, op);
    ct_buf_pool_put(f->pool, request);
    ct_op_complete(op, answer ? 0 : UV_ENOMEM, 0, answer);
    return 0;
}

/* Only ops the inner service holds can still be canceled: an answered
 * request's op completed at once. */
static void filter_cancel(ct_service_t *svc, ct_op_t *op) {
    filter_t *f = (filter_t *)svc;
    f->inner->vtable->cancel(f->inner, op);
}

static void filter_release(ct_service_t *svc) {
    ct_service_release(((filter_t *)svc)->inner);
}

static int filter_shutdown(ct_service_t *svc) {
    return ct_service_shutdown(((filter_t *)svc)->inner, ct_service_shutdown_done_owner);
}

static void on_inner_closed(ct_service_t *inner) {
    ct_service_closed((ct_service_t *)inner->owner);
}

static void filter_close(ct_service_t *svc) {
    filter_t *f = (filter_t *)svc;
    if (ct_service_close(f->inner, on_inner_closed) < 0) ct_service_closed(svc);
}

static const ct_service_vtable_t filter_vtable = {
    filter_poll_ready, filter_call,  filter_cancel, filter_release,
    filter_shutdown,   filter_close, NULL,
};

void filter_init(filter_t *f, ct_loop_t *loop, ct_service_t *inner, ct_buf_pool_t *pool,
                 filter_rule_fn rule, size_t room) {
    ct_service_init(&f->service, loop, &filter_vtable);
    f->room = room;
    f->inner = inner;
    f->pool = pool;
    f->rule = rule;
    inner->owner = f;
}
