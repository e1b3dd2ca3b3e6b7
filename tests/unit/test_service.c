#include "testutil.h"

TestSuite(service, .init = h_setup, .fini = h_teardown);

static int double_it(void *ctx, void *req, void **resp) {
    tmsg_t *m = req;
    (void)ctx;
    if (m->id == 13) {
        tmsg_free(m, NULL);
        return CT_SERVICE_ERROR(13);
    }
    m->id *= 2;
    *resp = m;
    return 0;
}

Test(service, fn_completes_inline_but_calls_back_from_a_fresh_stack) {
    ct_service_fn_t fn;
    rec_op_t r;
    ct_service_fn_init(&fn, &H.ct, double_it, NULL);
    rec_op_init(&r);
    cr_assert_eq(ct_service_poll_ready(&fn.service, NULL), CT_READY);
    cr_assert_eq(h_call(&fn.service, tmsg_new(21), &r.op), 0);
    cr_assert_eq(r.calls, 0, "callback ran inside call");
    cr_assert(ct_op_is_pending(&r.op));
    h_run();
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 42);
    cr_assert(!ct_op_is_pending(&r.op));
    h_close_service(&fn.service);
}

Test(service, fn_error_is_the_service_own_code) {
    ct_service_fn_t fn;
    rec_op_t r;
    ct_service_fn_init(&fn, &H.ct, double_it, NULL);
    rec_op_init(&r);
    cr_assert_eq(h_call(&fn.service, tmsg_new(13), &r.op), 0);
    h_run();
    cr_assert_eq(r.calls, 1);
    cr_assert(ct_err_is_service(r.status));
    cr_assert_eq(ct_err_service_code(r.status), 13);
    h_close_service(&fn.service);
}

Test(service, echo_returns_the_request) {
    ct_service_fn_t echo;
    rec_op_t r;
    ct_echo_service_init(&echo, &H.ct);
    rec_op_init(&r);
    cr_assert_eq(h_call(&echo.service, tmsg_new(7), &r.op), 0);
    h_run();
    cr_assert_eq(r.response_id, 7);
    h_close_service(&echo.service);
}

Test(service, reusing_a_pending_op_is_refused) {
    ct_service_fn_t echo;
    rec_op_t r;
    tmsg_t *second = tmsg_new(2);
    ct_echo_service_init(&echo, &H.ct);
    rec_op_init(&r);
    cr_assert_eq(h_call(&echo.service, tmsg_new(1), &r.op), 0);
    cr_assert_eq(h_call(&echo.service, second, &r.op), CT_EBUSY);
    tmsg_free(second, NULL); /* refused: still ours */
    h_run();
    cr_assert_eq(r.calls, 1);
    h_close_service(&echo.service);
}

static ct_service_t *reuse_svc;
static int reuse_count;
static void reuse_cb(ct_op_t *op, int status, void *response) {
    cr_assert_eq(H.nested, 0);
    cr_assert_eq(status, 0);
    tmsg_free(response, NULL);
    if (++reuse_count < 5) cr_assert_eq(h_call(reuse_svc, tmsg_new(reuse_count), op), 0);
}

Test(service, op_is_reusable_inside_its_callback) {
    ct_service_fn_t echo;
    ct_op_t op;
    ct_echo_service_init(&echo, &H.ct);
    reuse_svc = &echo.service;
    reuse_count = 0;
    ct_op_init(&op, reuse_cb);
    cr_assert_eq(h_call(&echo.service, tmsg_new(0), &op), 0);
    h_run();
    cr_assert_eq(reuse_count, 5);
    h_close_service(&echo.service);
}

static int shutdown_status = 1;
static void on_shutdown(ct_service_t *svc, int status) {
    (void)svc;
    shutdown_status = status;
}

Test(service, close_rules) {
    ct_service_fn_t echo;
    rec_op_t r;
    tmsg_t *m = tmsg_new(1);
    ct_echo_service_init(&echo, &H.ct);
    rec_op_init(&r);
    cr_assert_eq(ct_service_shutdown(&echo.service, on_shutdown), 0);
    cr_assert_eq(ct_service_shutdown(&echo.service, on_shutdown), CT_EBUSY);
    cr_assert_eq(h_call(&echo.service, m, &r.op), CT_ESHUTDOWN);
    h_run();
    cr_assert_eq(shutdown_status, 0);
    h_close_service(&echo.service);
    cr_assert_eq(ct_service_close(&echo.service, NULL), CT_ECLOSING, "closing twice is reported");
    cr_assert_eq(h_call(&echo.service, m, &r.op), CT_ECLOSING);
    cr_assert_eq(ct_service_poll_ready(&echo.service, NULL), CT_ECLOSING);
    tmsg_free(m, NULL);
    cr_assert_eq(r.calls, 0);
}

Test(service, cancel_completes_once_with_canceled) {
    held_svc_t h;
    rec_op_t r;
    held_init(&h, 0);
    rec_op_init(&r);
    cr_assert_eq(h_call(&h.service, tmsg_new(1), &r.op), 0);
    ct_op_cancel(&r.op);
    ct_op_cancel(&r.op); /* no longer pending in the service: nothing */
    h_run();
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, CT_ECANCELED);
    h_close_service(&h.service);
    held_free(&h);
}

Test(service, close_completes_pending_ops_before_the_close_callback) {
    held_svc_t h;
    rec_op_t r;
    held_init(&h, 0);
    rec_op_init(&r);
    cr_assert_eq(h_call(&h.service, tmsg_new(1), &r.op), 0);
    h_close_service(&h.service);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, CT_ECLOSED);
    held_free(&h);
}

Test(service, shutdown_unsupported_is_reported) {
    held_svc_t h;
    held_init(&h, 0);
    cr_assert_eq(ct_service_shutdown(&h.service, on_shutdown), CT_ENOTSUP);
    h_close_service(&h.service);
    held_free(&h);
}

/* A shutdown that a layer refuses (its inner service cannot drain) started
 * nothing: no callback, not even at close, and calls still go through. */
Test(service, a_refused_shutdown_runs_no_callback) {
    held_svc_t h;
    ct_timeout_t t;
    ct_timeout_config_t cfg = {1000, 0, tmsg_free, NULL};
    rec_op_t r;
    held_init(&h, 0);
    cr_assert_eq(ct_timeout_init(&t, &H.ct, &h.service, &cfg), 0);
    shutdown_status = 1;
    cr_assert_eq(ct_service_shutdown(&t.service, on_shutdown), CT_ENOTSUP);
    cr_assert_not(ct_service_is_shutting_down(&t.service));
    rec_op_init(&r);
    cr_assert_eq(h_call(&t.service, tmsg_new(1), &r.op), 0, "a call after a refused shutdown");
    held_complete_all(&h);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.status, 0);
    h_close_service(&t.service);
    cr_assert_eq(shutdown_status, 1, "the refused shutdown's callback ran");
    held_free(&h);
}

Test(service, call_inline_hands_back_a_synchronous_result_and_skips_the_callback) {
    ct_service_fn_t fn;
    rec_op_t r;
    ct_service_fn_init(&fn, &H.ct, double_it, NULL);
    rec_op_init(&r);
    cr_assert_eq(ct_service_call_inline(&fn.service, tmsg_new(21), &r.op), 1);
    cr_assert_eq(r.op.status, 0);
    cr_assert_eq(((tmsg_t *)r.op.response)->id, 42);
    cr_assert(!ct_op_is_pending(&r.op), "taken: the op is free again");
    tmsg_free(r.op.response, NULL);
    /* An error result comes back the same way. */
    cr_assert_eq(ct_service_call_inline(&fn.service, tmsg_new(13), &r.op), 1);
    cr_assert_eq(ct_err_service_code(r.op.status), 13);
    cr_assert_null(r.op.response);
    h_run();
    cr_assert_eq(r.calls, 0, "a taken result never reaches the callback");
    h_close_service(&fn.service);
}

Test(service, call_inline_on_an_asynchronous_service_is_an_ordinary_call) {
    held_svc_t h;
    rec_op_t r;
    tmsg_t *m = tmsg_new(2);
    held_init(&h, 1);
    rec_op_init(&r);
    cr_assert_eq(ct_service_call_inline(&h.service, tmsg_new(1), &r.op), 0);
    cr_assert(ct_op_is_pending(&r.op));
    cr_assert_eq(ct_service_call_inline(&h.service, m, &r.op), CT_EBUSY);
    held_complete(&h, 0, 0);
    h_run();
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.response_id, 1);
    h_close_service(&h.service);
    cr_assert_eq(ct_service_call_inline(&h.service, m, &r.op), CT_ECLOSING);
    tmsg_free(m, NULL); /* refused: still ours */
    held_free(&h);
}

Test(service, call_sync_answers_a_function_service_at_once_without_an_op) {
    ct_service_fn_t fn;
    int status = 1;
    void *response = NULL;
    tmsg_t *m = tmsg_new(4);
    ct_service_fn_init(&fn, &H.ct, double_it, NULL);
    cr_assert_eq(ct_service_call_sync(&fn.service, tmsg_new(21), &status, &response), 1);
    cr_assert_eq(status, 0);
    cr_assert_eq(((tmsg_t *)response)->id, 42);
    tmsg_free(response, NULL);
    /* An error is an answer too: the request was the service's. */
    cr_assert_eq(ct_service_call_sync(&fn.service, tmsg_new(13), &status, &response), 1);
    cr_assert_eq(ct_err_service_code(status), 13);
    cr_assert_null(response);
    h_close_service(&fn.service);
    cr_assert_eq(ct_service_call_sync(&fn.service, m, &status, &response), 0,
                 "a closed service takes nothing");
    tmsg_free(m, NULL); /* not taken: still ours */
}

Test(service, call_sync_on_an_asynchronous_service_takes_nothing) {
    held_svc_t h;
    int status = 1;
    void *response = NULL;
    tmsg_t *m = tmsg_new(1);
    held_init(&h, 1);
    cr_assert_eq(ct_service_call_sync(&h.service, m, &status, &response), 0);
    cr_assert_eq(status, 1, "untouched");
    cr_assert_eq(h.calls, 0, "the service saw no call");
    tmsg_free(m, NULL);
    h_close_service(&h.service);
    held_free(&h);
}

Test(service, fn_init_refuses_what_it_cannot_run) {
    ct_service_fn_t svc;
    cr_assert_eq(ct_echo_service_init(&svc, NULL), CT_EINVAL);
    cr_assert_eq(ct_service_fn_init(&svc, &H.ct, NULL, NULL), CT_EINVAL);
    cr_assert_eq(ct_service_fn_init(NULL, &H.ct, NULL, NULL), CT_EINVAL);
    cr_assert_eq(ct_echo_service_init(&svc, &H.ct), 0);
    h_close_service(&svc.service);
}
