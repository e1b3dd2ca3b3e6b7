/* A synchronous C function wrapped in the service contract. */
#include "ctower/service_fn.h"
#include "ctower/error.h"

static int fn_poll_ready(ct_service_t *svc, ct_waker_t *waker) {
    (void)svc;
    (void)waker;
    return CT_READY;
}

static int fn_call(ct_service_t *svc, void *request, ct_op_t *op) {
    ct_service_fn_t *f = (ct_service_fn_t *)svc;
    void *response = NULL;
    int r = f->fn(f->ctx, request, &response);
    ct_op_complete(op, r < 0 ? r : 0, 0, r < 0 ? NULL : response);
    return 0;
}

/* Always answers at once. */
static int fn_call_sync(ct_service_t *svc, void *request, int *status, void **response) {
    ct_service_fn_t *f = (ct_service_fn_t *)svc;
    void *answer = NULL;
    int r = f->fn(f->ctx, request, &answer);
    *status = r < 0 ? r : 0;
    *response = r < 0 ? NULL : answer;
    return 1;
}

/* Every op completes inside call, so there is never one to cancel. */
static void fn_cancel(ct_service_t *svc, ct_op_t *op) {
    (void)svc;
    (void)op;
}

static int fn_shutdown(ct_service_t *svc) {
    ct_service_shutdown_done(svc, 0);
    return 0;
}

static void fn_close(ct_service_t *svc) {
    ct_service_closed(svc);
}

static const ct_service_vtable_t fn_vtable = {
    fn_poll_ready, fn_call, fn_cancel, NULL, fn_shutdown, fn_close, fn_call_sync,
};

int ct_service_fn_init(ct_service_fn_t *svc, ct_loop_t *loop, ct_service_fn_cb fn, void *ctx) {
    if (!svc || !loop || !fn) return CT_EINVAL;
    ct_service_init(&svc->service, loop, &fn_vtable);
    svc->fn = fn;
    svc->ctx = ctx;
    return 0;
}

static int echo(void *ctx, void *request, void **response) {
    (void)ctx;
    *response = request;
    return 0;
}

int ct_echo_service_init(ct_service_fn_t *svc, ct_loop_t *loop) {
    return ct_service_fn_init(svc, loop, echo, NULL);
}
