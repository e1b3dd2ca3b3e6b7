/* The request context: its wire forms (the time left, traceparent, the
 * HTTP fields), the generic refusal of a call past its deadline, and a
 * server that reads each request's context, hands it to its service, and
 * does not send an answer that comes after the deadline. */
#include "testutil.h"

#include <ctower/codec/http.h>

#include <string.h>

TestSuite(context, .init = h_setup, .fini = h_teardown);

/* ---- the time left ------------------------------------------------------------ */

static uint64_t parsed(const char *s) {
    uint64_t ms = 12345;
    cr_assert_eq(ct_context_parse_timeout(s, strlen(s), &ms), 0, "%s refused", s);
    return ms;
}

static void refused(const char *s) {
    uint64_t ms = 12345;
    cr_assert_eq(ct_context_parse_timeout(s, strlen(s), &ms), CT_EMALFORMED, "%s taken", s);
    cr_assert_eq(ms, 12345);
}

Test(context, timeouts_parse_in_every_unit) {
    cr_assert_eq(parsed("250m"), 250);
    cr_assert_eq(parsed("3S"), 3000);
    cr_assert_eq(parsed("2M"), 120000);
    cr_assert_eq(parsed("1H"), 3600000);
    cr_assert_eq(parsed("1500u"), 2, "micro-seconds round up");
    cr_assert_eq(parsed("1n"), 1, "nano-seconds round up");
    cr_assert_eq(parsed("0m"), 0);
    cr_assert_eq(parsed("99999999H"), 99999999ull * 3600000);
}

Test(context, bad_timeouts_are_refused) {
    refused("");
    refused("m");
    refused("250");
    refused("250x");
    refused("-1m");
    refused(" 1m");
    refused("123456789m"); /* 9 digits */
    refused("1.5S");
}

Test(context, timeouts_are_written_exact_then_rounded_up) {
    char out[CT_CONTEXT_TIMEOUT_MAX];
    cr_assert_eq(ct_context_format_timeout(250, out), 4);
    cr_assert_str_eq(out, "250m");
    ct_context_format_timeout(0, out);
    cr_assert_str_eq(out, "0m");
    ct_context_format_timeout(99999999, out);
    cr_assert_str_eq(out, "99999999m");
    ct_context_format_timeout(100000001, out); /* past 8 digits: seconds, up */
    cr_assert_str_eq(out, "100001S");
    ct_context_format_timeout(UINT64_MAX, out);
    cr_assert_eq(strlen(out), 9);
    cr_assert_eq(out[8], 'H');
}

Test(context, deadlines_only_get_earlier) {
    ct_context_t c;
    ct_context_init(&c);
    cr_assert_eq(ct_context_remaining(&c, 100), UINT64_MAX);
    cr_assert_not(ct_context_expired(&c, 100));
    cr_assert_not(ct_context_expired(NULL, 100));
    ct_context_set_timeout(&c, 100, 50);
    cr_assert_eq(c.deadline_ms, 150);
    ct_context_set_timeout(&c, 100, 500); /* later: no effect */
    cr_assert_eq(c.deadline_ms, 150);
    ct_context_set_timeout(&c, 100, 10);
    cr_assert_eq(c.deadline_ms, 110);
    cr_assert_eq(ct_context_remaining(&c, 105), 5);
    cr_assert_eq(ct_context_remaining(&c, 200), 0);
    cr_assert(ct_context_expired(&c, 110));
    cr_assert_not(ct_context_expired(&c, 109));
}

/* ---- traceparent ---------------------------------------------------------------- */

static const char w3c_example[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

Test(context, traceparent_round_trips) {
    ct_context_t c;
    char out[CT_CONTEXT_TRACEPARENT_LEN];
    ct_context_init(&c);
    cr_assert_not(ct_context_traced(&c));
    cr_assert_eq(ct_context_parse_traceparent(&c, w3c_example, strlen(w3c_example)), 0);
    cr_assert(ct_context_traced(&c));
    cr_assert_eq(c.trace_id[0], 0x0a);
    cr_assert_eq(c.trace_id[15], 0x9c);
    cr_assert_eq(c.span_id[0], 0xb7);
    cr_assert_eq(c.trace_flags, 1);
    cr_assert_eq(ct_context_format_traceparent(&c, out), 55);
    cr_assert_str_eq(out, w3c_example);
}

static void bad_traceparent(const char *s) {
    ct_context_t c;
    ct_context_init(&c);
    c.trace_flags = 9;
    cr_assert_eq(ct_context_parse_traceparent(&c, s, strlen(s)), CT_EMALFORMED, "%s taken", s);
    cr_assert_eq(c.trace_flags, 9, "a refused value changed the context");
}

Test(context, bad_traceparents_are_refused) {
    bad_traceparent("");
    bad_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01");   /* upper case */
    bad_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01");   /* no trace */
    bad_traceparent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01");   /* no span */
    bad_traceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");   /* version */
    bad_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x"); /* 00, longer */
    bad_traceparent("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    bad_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g");
}

Test(context, a_later_version_is_read_as_00_reads_it) {
    ct_context_t c;
    const char *s = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more";
    ct_context_init(&c);
    cr_assert_eq(ct_context_parse_traceparent(&c, s, strlen(s)), 0);
    cr_assert_eq(c.span_id[7], 0x31);
}

Test(context, a_new_span_keeps_the_trace_or_starts_one) {
    ct_context_t c;
    uint8_t span[8] = {1, 2, 3, 4, 5, 6, 7, 8}, trace[16] = {9};
    ct_context_init(&c);
    ct_context_new_span(&c, span, trace);
    cr_assert_eq(c.trace_id[0], 9, "a context without a trace starts one");
    cr_assert_eq(c.span_id[7], 8);
    trace[0] = 10;
    span[7] = 11;
    ct_context_new_span(&c, span, trace);
    cr_assert_eq(c.trace_id[0], 9, "the trace changed");
    cr_assert_eq(c.span_id[7], 11);
}

Test(context, the_loop_gives_different_random_ids) {
    uint64_t a = ct_loop_random(&H.ct), b = ct_loop_random(&H.ct);
    cr_assert_neq(a, b);
}

/* ---- the HTTP fields -------------------------------------------------------------- */

static int read_head(const char *head, ct_context_t *c) {
    ct_context_init(c);
    return ct_http_read_context((const uint8_t *)head, strlen(head), 1000, c);
}

Test(context, http_fields_are_read_from_the_head) {
    ct_context_t c;
    cr_assert_eq(
        read_head("GET / HTTP/1.1\r\nHost: a\r\n"
                  "CTOWER-Timeout: \t 250m \r\n"
                  "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                  "\r\n",
                  &c),
        1);
    cr_assert_eq(c.deadline_ms, 1250);
    cr_assert_eq(c.trace_id[0], 0x0a);
    cr_assert_eq(read_head("GET / HTTP/1.1\nctower-timeout: 5S\n\n", &c), 1, "bare LF lines");
    cr_assert_eq(c.deadline_ms, 6000);
}

Test(context, what_is_not_a_context_field_is_not_read) {
    ct_context_t c;
    cr_assert_eq(read_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &c), 0);
    cr_assert_eq(read_head("GET / HTTP/1.1\r\nctower-timeout: soon\r\n"
                           "traceparent: nope\r\n\r\n",
                           &c),
                 CT_EMALFORMED, "bad values are ignored, not half-read, and told");
    cr_assert_eq(c.deadline_ms, 0);
    cr_assert_not(ct_context_traced(&c));
    cr_assert_eq(
        read_head("POST / HTTP/1.1\r\nContent-Length: 24\r\n\r\nctower-timeout: 1m\r\n\r\n", &c), 0,
        "a body's bytes are not fields");
    cr_assert_eq(
        read_head("GET / HTTP/1.1\r\nctower-timeouts: 1m\r\nx-ctower-timeout: 1m\r\n\r\n", &c), 0);
    cr_assert_eq(read_head("GET / HTTP/1.1\r\nctower-timeout", &c), 0, "a head cut short");
}

Test(context, http_fields_are_written_for_what_is_set) {
    ct_context_t c;
    char out[CT_HTTP_CONTEXT_FIELDS_MAX];
    ct_context_init(&c);
    cr_assert_eq(ct_http_format_context(&c, 1000, out, sizeof out), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(ct_http_format_context(&c, 1000, out, 10), CT_EINVAL);
    c.deadline_ms = 1250;
    ct_http_format_context(&c, 1000, out, sizeof out);
    cr_assert_str_eq(out, "ctower-timeout: 250m\r\n");
    ct_context_parse_traceparent(&c, w3c_example, strlen(w3c_example));
    cr_assert_eq(ct_http_format_context(&c, 1100, out, sizeof out), (int)strlen(out));
    cr_assert_str_eq(out, "ctower-timeout: 150m\r\ntraceparent: "
                          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n");
}

/* ---- calls past their deadline --------------------------------------------------- */

Test(context, no_service_starts_a_call_past_its_deadline) {
    held_svc_t held;
    rec_op_t r;
    ct_context_t c;
    tmsg_t *m = tmsg_new(1);
    held_init(&held, 0);
    ct_context_init(&c);
    c.deadline_ms = uv_now(&H.uv);
    rec_op_init(&r);
    r.op.ctx = &c;
    cr_assert_eq(ct_service_call(&held.service, m, &r.op), CT_ETIMEDOUT);
    cr_assert_eq(held.calls, 0);
    cr_assert_not(ct_op_is_pending(&r.op));
    c.deadline_ms = uv_now(&H.uv) + 1000; /* the same op, in time: it goes */
    cr_assert_eq(ct_service_call(&held.service, m, &r.op), 0);
    cr_assert_eq(held.calls, 1);
    held_complete_all(&held);
    H_RUN_UNTIL(r.calls);
    h_close_service(&held.service);
    held_free(&held);
}

/* ---- a server that reads contexts ------------------------------------------------- */

/* The test's protocol: a request whose id is 1000 + n carries a deadline
 * n ms after it was read; any other carries none. */
static int read_tmsg_context(void *ctx, const void *request, uint64_t now, ct_context_t *out) {
    uint64_t id = ((const tmsg_t *)request)->id;
    (void)ctx;
    if (id < 1000) return 0;
    ct_context_set_timeout(out, now, id - 1000);
    return 1;
}

/* An error's answer: a message whose id is 500 + the error's distance from
 * CT_ETIMEDOUT (504 for a timeout). */
static int tmsg_error_reply(ct_server_t *srv, int status, void **response) {
    (void)srv;
    *response = tmsg_new(status == CT_ETIMEDOUT ? 504 : 500);
    return 0;
}

Test(context, the_service_gets_the_requests_deadline) {
    held_svc_t held;
    h_pair_t p;
    rec_op_t a, b;
    uint64_t before;
    held_init(&held, 0);
    h_pair_connect_with(&p, &held.service, 0, 8, 8, read_tmsg_context, tmsg_error_reply);
    rec_op_init(&a);
    rec_op_init(&b);
    before = uv_now(&H.uv);
    cr_assert_eq(h_call(&p.client.service, tmsg_new(1000 + 5000), &a.op), 0);
    cr_assert_eq(h_call(&p.client.service, tmsg_new(7), &b.op), 0);
    H_RUN_UNTIL(held.n == 2);
    cr_assert_not_null(held.ops[0]->ctx);
    cr_assert_geq(held.ops[0]->ctx->deadline_ms, before + 5000);
    cr_assert_leq(held.ops[0]->ctx->deadline_ms, uv_now(&H.uv) + 5000);
    cr_assert_null(held.ops[1]->ctx, "a request without one got a context");
    held_complete_all(&held);
    H_RUN_UNTIL(a.calls && b.calls);
    cr_assert_eq(a.response_id, 6000);
    cr_assert_eq(b.response_id, 7);
    h_pair_disconnect(&p, &held.service);
    held_free(&held);
}

Test(context, an_answer_after_the_deadline_is_replaced) {
    held_svc_t held;
    h_pair_t p;
    rec_op_t late, in_time;
    held_init(&held, 0);
    h_pair_connect_with(&p, &held.service, 0, 8, 8, read_tmsg_context, tmsg_error_reply);
    rec_op_init(&late);
    rec_op_init(&in_time);
    cr_assert_eq(h_call(&p.client.service, tmsg_new(1000 + 20), &late.op), 0);
    cr_assert_eq(h_call(&p.client.service, tmsg_new(1000 + 5000), &in_time.op), 0);
    H_RUN_UNTIL(held.n == 2);
    uv_sleep(40);
    uv_update_time(&H.uv);
    held_complete_all(&held);
    H_RUN_UNTIL(late.calls && in_time.calls);
    cr_assert_eq(late.status, 0);
    cr_assert_eq(late.response_id, 504, "the late answer was sent");
    cr_assert_eq(in_time.response_id, 6000, "the connection goes on");
    h_pair_disconnect(&p, &held.service);
    held_free(&held);
}

/* The service takes one call at a time: the second request waits in the
 * server past its deadline, and is answered without reaching it. */
Test(context, a_request_that_waits_past_its_deadline_never_starts) {
    held_svc_t held;
    h_pair_t p;
    rec_op_t first, waiting;
    held_init(&held, 1);
    h_pair_connect_with(&p, &held.service, 0, 8, 8, read_tmsg_context, tmsg_error_reply);
    rec_op_init(&first);
    rec_op_init(&waiting);
    cr_assert_eq(h_call(&p.client.service, tmsg_new(1), &first.op), 0);
    cr_assert_eq(h_call(&p.client.service, tmsg_new(1000 + 10), &waiting.op), 0);
    H_RUN_UNTIL(held.n == 1);
    h_turns(3);
    uv_sleep(30);
    uv_update_time(&H.uv);
    held_complete_all(&held);
    H_RUN_UNTIL(first.calls && waiting.calls);
    cr_assert_eq(first.response_id, 1);
    cr_assert_eq(waiting.response_id, 504);
    cr_assert_eq(held.calls, 1, "the service got a request its caller had given up on");
    h_pair_disconnect(&p, &held.service);
    held_free(&held);
}

/* ---- layers that hold no calls hand the context on -------------------------------- */

Test(context, limit_breaker_and_balance_hand_the_context_on) {
    held_svc_t held;
    ct_service_t *endpoints[1];
    ct_balance_t balance;
    ct_breaker_t breaker;
    ct_limit_t limit;
    ct_balance_config_t bc = {0};
    ct_breaker_config_t kc = {0};
    ct_limit_config_t lc = {0};
    ct_context_t c;
    rec_op_t r;
    held_init(&held, 0);
    endpoints[0] = &held.service;
    bc.endpoints = endpoints;
    bc.n_endpoints = 1;
    bc.free_msg = kc.free_msg = lc.free_msg = tmsg_free;
    lc.max_in_flight = 4;
    cr_assert_eq(ct_balance_init(&balance, &H.ct, &bc), 0);
    cr_assert_eq(ct_breaker_init(&breaker, &H.ct, &balance.service, &kc), 0);
    cr_assert_eq(ct_limit_init(&limit, &H.ct, &breaker.service, &lc), 0);
    ct_context_init(&c);
    ct_context_set_timeout(&c, uv_now(&H.uv), 5000);
    c.trace_id[3] = 3;
    rec_op_init(&r);
    r.op.ctx = &c;
    cr_assert_eq(h_call(&limit.service, tmsg_new(4), &r.op), 0);
    H_RUN_UNTIL(held.n == 1);
    cr_assert_eq(held.ops[0]->ctx, &c, "the caller's context did not reach the service");
    held_complete_all(&held);
    H_RUN_UNTIL(r.calls);
    cr_assert_eq(r.response_id, 4);
    h_close_service(&limit.service);
    held_free(&held);
}

/* ---- clients ------------------------------------------------------------------------ */

Test(context, a_client_does_not_send_a_call_past_its_deadline) {
    held_svc_t held;
    h_pair_t p;
    rec_op_t gone, in_time;
    ct_context_t c1, c2;
    tmsg_t *m = tmsg_new(1);
    held_init(&held, 0);
    h_pair_connect(&p, &held.service, 1, 8, 8);
    ct_context_init(&c1);
    c1.deadline_ms = uv_now(&H.uv);
    rec_op_init(&gone);
    gone.op.ctx = &c1;
    cr_assert_eq(ct_service_call(&p.client.service, m, &gone.op), CT_ETIMEDOUT);
    tmsg_free(m, NULL);
    h_call_with_deadline(&p.client.service, &in_time, &c2, 5000, 2);
    H_RUN_UNTIL(held.n == 1);
    held_complete_all(&held);
    H_RUN_UNTIL(in_time.calls);
    cr_assert_eq(in_time.response_id, 2);
    cr_assert_eq(held.calls, 1, "the call past its deadline was sent");
    h_pair_disconnect(&p, &held.service);
    held_free(&held);
}
