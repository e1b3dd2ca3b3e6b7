/* ThreadSanitizer stress of the share layer: an echo service on a second
 * thread behind a ct_share_t, a handle on the main thread making N calls
 * (at most 64 in flight) and canceling some of them at random. Every op must
 * complete exactly once, with its own answer or CT_ECANCELED, and both loops
 * must close clean. Exits non-zero otherwise (TSan exits 66 on a race). */
#include <ctower/ctower.h>

#include <stdio.h>
#include <string.h>

enum { N = 200000 };

static struct {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_service_fn_t echo;
    ct_share_t share;
    uv_async_t close_request;
    uv_thread_t thread;
} side;

static uv_loop_t main_uv;
static ct_loop_t main_ct;
static ct_share_handle_t handle;
static ct_op_t ops[N];
static int completions[N];
static long completed, answered, canceled, wrong;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_share_closed(ct_service_t *svc) {
    (void)svc;
    ct_loop_close(&side.ct, on_loop_closed);
}

static void on_close_request(uv_async_t *async) {
    uv_close((uv_handle_t *)async, NULL);
    ct_service_close(&side.share.service, on_share_closed);
}

static void run_side(void *arg) {
    (void)arg;
    uv_run(&side.uv, UV_RUN_DEFAULT);
}

static void on_done(ct_op_t *op, int status, void *response) {
    long i = op - ops, id;
    completions[i]++;
    completed++;
    if (status == 0) {
        memcpy(&id, ((ct_buf_t *)response)->base, sizeof id);
        if (id != i) wrong++;
        answered++;
        ct_buf_free(response);
    } else if (status == CT_ECANCELED) {
        canceled++;
    } else {
        fprintf(stderr, "call %ld: %s\n", i, ct_strerror(status));
        wrong++;
    }
}

static void on_handle_closed(ct_service_t *svc) {
    (void)svc;
}

static int start(void) {
    ct_share_handle_config_t cfg = {64, ct_buf_free_msg, NULL};
    if (uv_loop_init(&side.uv) || ct_loop_init(&side.ct, &side.uv)) return -1;
    ct_echo_service_init(&side.echo, &side.ct);
    if (ct_share_init(&side.share, &side.echo.service)) return -1;
    if (uv_async_init(&side.uv, &side.close_request, on_close_request)) return -1;
    if (uv_loop_init(&main_uv) || ct_loop_init(&main_ct, &main_uv)) return -1;
    if (ct_share_handle_init(&handle, &main_ct, &side.share, &cfg)) return -1;
    return uv_thread_create(&side.thread, run_side, NULL);
}

/* One call, request i, if the handle has room. */
static int call(long i) {
    ct_buf_t *b;
    if (ct_service_poll_ready(&handle.service, NULL) != CT_READY) return 0;
    b = ct_buf_new(sizeof i);
    if (!b) return 0;
    memcpy(b->base, &i, sizeof i);
    b->len = sizeof i;
    ct_op_init(&ops[i], on_done);
    if (ct_service_call(&handle.service, b, &ops[i]) != 0) {
        ct_buf_free(b);
        return 0;
    }
    return 1;
}

int main(void) {
    long next = 0, i;
    unsigned seed = 1;
    if (start() != 0) return fprintf(stderr, "setup failed\n"), 1;
    while (next < N) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 != 0) next += call(next);
        if ((seed >> 8) % 5 == 0) { /* one of the last 50, wherever it is */
            long k = next - 1 - (long)((seed >> 4) % 50);
            if (k >= 0 && ct_op_is_pending(&ops[k])) ct_op_cancel(&ops[k]);
        }
        uv_run(&main_uv, UV_RUN_NOWAIT);
    }
    while (completed < N)
        uv_run(&main_uv, UV_RUN_ONCE);
    ct_service_close(&handle.service, on_handle_closed);
    uv_async_send(&side.close_request);
    ct_loop_close(&main_ct, on_loop_closed);
    uv_run(&main_uv, UV_RUN_DEFAULT);
    uv_thread_join(&side.thread);
    for (i = 0; i < N; i++)
        if (completions[i] != 1)
            return fprintf(stderr, "call %ld completed %d times\n", i, completions[i]), 1;
    if (wrong) return fprintf(stderr, "%ld wrong outcomes\n", wrong), 1;
    if (uv_loop_close(&main_uv) || uv_loop_close(&side.uv))
        return fprintf(stderr, "handles left\n"), 1;
    if (canceled == 0 || answered == 0) return fprintf(stderr, "no cancel or no answer\n"), 1;
    printf("share_stress: %d calls, %ld answered, %ld canceled, each once\n", N, answered,
           canceled);
    return 0;
}
