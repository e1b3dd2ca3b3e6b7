/* share_threads: one service, called from several threads.
 *
 * A ticket service hands out the numbers 1, 2, 3, ... Its counter is plain
 * memory with no lock, because the service lives on one loop (the main
 * thread's) and only that loop touches it. Four worker threads, each with
 * a loop of its own, call it through a ct_share_handle_t, 16 calls in
 * flight at a time, 5,000 calls each. At the end, the 20,000 tickets must
 * be exactly 1..20,000, each handed out once. */
#include <ctower/ctower.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

enum { WORKERS = 4, CALLS = 5000, DEPTH = 16 };

/* ---- the service, on the main loop ------------------------------------------------- */

static uint64_t next_ticket; /* no lock: only the main loop's thread runs this */

static int hand_out_ticket(void *ctx, void *request, void **response) {
    ct_buf_t *buf = request; /* the answer goes back in the request's share */
    (void)ctx;
    next_ticket++;
    memcpy(buf->base, &next_ticket, sizeof next_ticket);
    buf->len = sizeof next_ticket;
    *response = buf;
    return 0;
}

/* ---- a worker: a loop in its own thread with a handle -------------------------------- */

typedef struct worker {
    uv_thread_t thread;
    uv_loop_t uv;
    ct_loop_t ct;
    ct_share_handle_t handle;
    ct_op_t ops[DEPTH];
    int sent, answered, failed;
    uint64_t tickets[CALLS];
} worker_t;

static uv_async_t worker_done; /* on the main loop: a worker has finished */
static atomic_int workers_done;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_handle_closed(ct_service_t *svc) {
    worker_t *w = svc->data;
    ct_loop_close(&w->ct, on_loop_closed);
    atomic_fetch_add(&workers_done, 1);
    uv_async_send(&worker_done); /* (thread-safe, unlike the rest of libuv) */
}

static void send_one(worker_t *w, ct_op_t *op, ct_buf_t *buf) {
    if (w->sent == CALLS) {
        ct_buf_free(buf);
        return;
    }
    buf->len = 0;
    if (ct_service_call(&w->handle.service, buf, op) != 0) {
        ct_buf_free(buf);
        w->failed++;
        return;
    }
    w->sent++;
}

static void on_ticket(ct_op_t *op, int status, void *response) {
    worker_t *w = op->data;
    if (status != 0) {
        fprintf(stderr, "a call failed: %s\n", ct_strerror(status));
        w->failed++;
    } else {
        memcpy(&w->tickets[w->answered++], ((ct_buf_t *)response)->base, sizeof(uint64_t));
        send_one(w, op, response); /* the next call reuses the share */
    }
    if (w->answered + w->failed == CALLS) ct_service_close(&w->handle.service, on_handle_closed);
}

static void run_worker(void *arg) {
    worker_t *w = arg;
    int i;
    for (i = 0; i < DEPTH; i++) {
        ct_op_init(&w->ops[i], on_ticket);
        w->ops[i].data = w;
        send_one(w, &w->ops[i], ct_buf_new(sizeof(uint64_t)));
    }
    uv_run(&w->uv, UV_RUN_DEFAULT);
}

/* ---- main ------------------------------------------------------------------------- */

static ct_loop_t main_ct;

static void on_share_closed(ct_service_t *svc) {
    (void)svc;
    ct_loop_close(&main_ct, on_loop_closed);
}

/* Once every worker is done, the share closes, and the service with it.
 * (worker_done itself is closed only after the threads are joined: a
 * worker may still be inside uv_async_send when the count reaches
 * WORKERS.) */
static void on_worker_done(uv_async_t *async) {
    ct_share_t *share = async->data;
    if (atomic_load(&workers_done) < WORKERS || ct_service_is_closing(&share->service)) return;
    ct_service_close(&share->service, on_share_closed);
}

static int check(worker_t *workers) {
    static unsigned char seen[WORKERS * CALLS + 1];
    int i, j;
    for (i = 0; i < WORKERS; i++) {
        if (workers[i].answered != CALLS)
            return fprintf(stderr, "worker %d: %d answers\n", i, workers[i].answered), 1;
        for (j = 0; j < CALLS; j++) {
            uint64_t t = workers[i].tickets[j];
            if (t == 0 || t > WORKERS * CALLS || seen[t]++)
                return fprintf(stderr, "ticket %llu handed out twice or out of range\n",
                               (unsigned long long)t),
                       1;
        }
    }
    return 0;
}

int main(void) {
    static worker_t workers[WORKERS];
    uv_loop_t uv;
    ct_service_fn_t tickets;
    ct_share_t share;
    ct_share_handle_config_t cfg = {DEPTH, ct_buf_free_msg, NULL};
    int i, r;
    if (uv_loop_init(&uv) || ct_loop_init(&main_ct, &uv)) return 1;
    ct_service_fn_init(&tickets, &main_ct, hand_out_ticket, NULL);
    if ((r = ct_share_init(&share, &tickets.service)) != 0)
        return fprintf(stderr, "share: %s\n", ct_strerror(r)), 1;
    uv_async_init(&uv, &worker_done, on_worker_done);
    uv_unref((uv_handle_t *)&worker_done); /* the loop runs for the share */
    worker_done.data = &share;
    for (i = 0; i < WORKERS; i++) {
        worker_t *w = &workers[i];
        if (uv_loop_init(&w->uv) || ct_loop_init(&w->ct, &w->uv)) return 1;
        if ((r = ct_share_handle_init(&w->handle, &w->ct, &share, &cfg)) != 0)
            return fprintf(stderr, "handle: %s\n", ct_strerror(r)), 1;
        w->handle.service.data = w;
        uv_thread_create(&w->thread, run_worker, w);
    }
    uv_run(&uv, UV_RUN_DEFAULT); /* until the share and the service are closed */
    for (i = 0; i < WORKERS; i++) {
        uv_thread_join(&workers[i].thread);
        if (uv_loop_close(&workers[i].uv) != 0) return fprintf(stderr, "handles left\n"), 1;
    }
    uv_close((uv_handle_t *)&worker_done, NULL);
    uv_run(&uv, UV_RUN_DEFAULT);
    if (uv_loop_close(&uv) != 0) return fprintf(stderr, "handles left\n"), 1;
    if (check(workers) != 0) return 1;
    printf("%d threads took %d tickets through one service on the main thread: 1..%d, each once\n",
           WORKERS, WORKERS * CALLS, WORKERS * CALLS);
    return 0;
}
