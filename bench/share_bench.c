/* What a call through a ct_share_handle_t costs: calls per second to an
 * echo service, keeping DEPTH calls in flight, three ways:
 *   direct       the echo service on the caller's own loop (ct_service_call);
 *   same loop    through a handle to a share on the caller's loop (each call
 *                crosses the queues and the async wake-ups, no thread);
 *   other thread through a handle to a share on a loop in another thread.
 * Each answer is the next request (no allocation per call). Rounds
 * alternate the order of the three runs; the table shows each one's median
 * calls/s and its ratio to direct.
 *
 * Usage: share_bench [SECONDS_PER_RUN (default 1)] [ROUNDS (default 3)] [DEPTH (default 64)] */
#include <ctower/ctower.h>

#include <stdio.h>
#include <stdlib.h>

enum { MAX_DEPTH = 4096, MAX_ROUNDS = 99 };

typedef struct run {
    ct_service_t *svc;
    ct_op_t ops[MAX_DEPTH];
    uint64_t calls, deadline_ns;
    int stopping, errors;
} run_t;

static run_t run;

static void on_answer(ct_op_t *op, int status, void *response) {
    if (status != 0) {
        run.errors++;
        return;
    }
    run.calls++;
    if (run.stopping || uv_hrtime() >= run.deadline_ns) { /* (checked per answer: cheap) */
        run.stopping = 1;
        ct_buf_free(response);
        return;
    }
    if (ct_service_call(run.svc, response, op) != 0) ct_buf_free(response);
}

/* Calls per second on svc (on loop uv) for `seconds`, depth in flight. */
static double measure(uv_loop_t *uv, ct_service_t *svc, double seconds, int depth) {
    uint64_t start = uv_hrtime();
    int i;
    run.svc = svc;
    run.calls = 0;
    run.stopping = 0;
    run.deadline_ns = start + (uint64_t)(seconds * 1e9);
    for (i = 0; i < depth; i++) {
        ct_buf_t *b = ct_buf_new(64);
        b->len = 64;
        ct_op_init(&run.ops[i], on_answer);
        if (ct_service_call(svc, b, &run.ops[i]) != 0) ct_buf_free(b);
    }
    for (;;) { /* until every op has come back */
        int pending = 0;
        uv_run(uv, UV_RUN_ONCE);
        for (i = 0; i < depth; i++)
            pending += ct_op_is_pending(&run.ops[i]);
        if (!pending) break;
    }
    return (double)run.calls / ((double)(uv_hrtime() - start) / 1e9);
}

/* The other thread's loop: an echo service under a share. */
static struct {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_service_fn_t echo;
    ct_share_t share;
    uv_async_t close_request;
    uv_thread_t thread;
} other;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_other_share_closed(ct_service_t *svc) {
    (void)svc;
    ct_loop_close(&other.ct, on_loop_closed);
}

static void on_close_request(uv_async_t *async) {
    uv_close((uv_handle_t *)async, NULL);
    ct_service_close(&other.share.service, on_other_share_closed);
}

static void run_other(void *arg) {
    (void)arg;
    uv_run(&other.uv, UV_RUN_DEFAULT);
}

static ct_loop_t ct;
static int open_services = 4; /* the two handles, the echo, the near share */

/* The loop closes once every service on it has. */
static void on_closed(ct_service_t *svc) {
    (void)svc;
    if (--open_services == 0) ct_loop_close(&ct, on_loop_closed);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 3, depth = argc > 3 ? atoi(argv[3]) : 64, i, k;
    static const char *names[3] = {"direct", "same loop", "other thread"};
    double rate[3][MAX_ROUNDS], median[3];
    uv_loop_t uv;
    ct_service_fn_t echo, echo_for_share;
    ct_share_t share;
    ct_share_handle_t near, far;
    ct_share_handle_config_t hc = {0, ct_buf_free_msg, NULL};
    ct_service_t *svcs[3];
    if (!(seconds > 0) || rounds < 1 || rounds > MAX_ROUNDS || depth < 1 || depth > MAX_DEPTH) {
        fprintf(stderr, "usage: share_bench [SECONDS > 0] [ROUNDS 1-%d] [DEPTH 1-%d]\n", MAX_ROUNDS,
                MAX_DEPTH);
        return 2;
    }
    hc.max_in_flight = (size_t)depth;
    uv_loop_init(&uv);
    ct_loop_init(&ct, &uv);
    ct_echo_service_init(&echo, &ct);
    ct_echo_service_init(&echo_for_share, &ct);
    uv_loop_init(&other.uv);
    ct_loop_init(&other.ct, &other.uv);
    ct_echo_service_init(&other.echo, &other.ct);
    if (ct_share_init(&share, &echo_for_share.service) ||
        ct_share_handle_init(&near, &ct, &share, &hc) ||
        ct_share_init(&other.share, &other.echo.service) ||
        ct_share_handle_init(&far, &ct, &other.share, &hc) ||
        uv_async_init(&other.uv, &other.close_request, on_close_request) ||
        uv_thread_create(&other.thread, run_other, NULL))
        return fprintf(stderr, "share_bench: setup failed\n"), 1;
    svcs[0] = &echo.service;
    svcs[1] = &near.service;
    svcs[2] = &far.service;
    for (k = 0; k < rounds; k++)
        for (i = 0; i < 3; i++) {
            int which = (k % 2 == 0) ? i : 2 - i;
            rate[which][k] = measure(&uv, svcs[which], seconds, depth);
        }
    printf("# share_bench: %g s per run, %d rounds, %d in flight, 64-byte echo\n", seconds, rounds,
           depth);
    printf("%-14s %14s %8s\n", "path", "calls/s", "ratio");
    for (i = 0; i < 3; i++) {
        qsort(rate[i], (size_t)rounds, sizeof rate[i][0], cmp_double);
        median[i] = rate[i][rounds / 2];
    }
    for (i = 0; i < 3; i++)
        printf("%-14s %14.0f %8.2f\n", names[i], median[i], median[i] / median[0]);
    ct_service_close(&near.service, on_closed);
    ct_service_close(&far.service, on_closed);
    ct_service_close(&echo.service, on_closed);
    ct_service_close(&share.service, on_closed);
    uv_async_send(&other.close_request);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_thread_join(&other.thread);
    if (run.errors) return fprintf(stderr, "share_bench: %d calls failed\n", run.errors), 1;
    return uv_loop_close(&uv) || uv_loop_close(&other.uv);
}
