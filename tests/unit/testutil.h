/* Test support: one loop per test, leak and re-entrancy checks, test
 * messages, and a service whose completions the test controls. */
#ifndef CTOWER_TESTUTIL_H
#define CTOWER_TESTUTIL_H

#include <ctower/ctower.h>
#include <criterion/criterion.h>
#include <stdint.h>

typedef struct tmsg {
    uint64_t id;
    uint32_t tag; /* for multiplexed tests */
} tmsg_t;

typedef struct harness {
    uv_loop_t uv;
    ct_loop_t ct;
    long live_msgs;  /* test messages allocated and not yet freed */
    int nested;      /* > 0 while inside a call that starts an operation */
    uv_timer_t tick; /* wakes a blocked H_RUN_UNTIL, so that its limit holds */
} harness_t;

extern harness_t H;

/* Criterion .init/.fini: the fini runs the loop dry, closes the ct_loop and
 * asserts uv_loop_close() == 0 and that no test message leaked. */
void h_setup(void);
void h_teardown(void);

/* Runs the loop until nothing is left to do. */
void h_run(void);

/* Runs the loop until cond holds. Fails at once if the loop goes idle first
 * (nothing could make cond true), and after 20 s at most: a broken test must
 * fail, not hang. */
#define H_RUN_UNTIL(cond)                                                                          \
    do {                                                                                           \
        uint64_t h_start_ = uv_hrtime();                                                           \
        while (!(cond)) {                                                                          \
            cr_assert(uv_loop_alive(&H.uv), "the loop went idle before: %s", #cond);               \
            uv_run(&H.uv, UV_RUN_ONCE);                                                            \
            cr_assert_lt(uv_hrtime() - h_start_, 20000000000ull, "timed out waiting for: %s",      \
                         #cond);                                                                   \
        }                                                                                          \
    } while (0)

/* Runs one non-blocking loop turn (UV_RUN_NOWAIT) n times. */
void h_turns(int n);

tmsg_t *tmsg_new(uint64_t id);
void tmsg_free(void *msg, void *ctx);
uint64_t tmsg_id(void *msg);

/* The tag field, for ct_slab_tags_t and the multiplex server. */
uint32_t tmsg_get_tag(const void *msg);
void tmsg_set_tag(void *msg, uint32_t tag);

/* ct_service_call() with the re-entrancy counter raised around it. Every
 * completion callback in the tests asserts H.nested == 0. */
int h_call(ct_service_t *svc, void *request, ct_op_t *op);

/* A recorded completion. */
typedef struct rec_op {
    ct_op_t op;
    int calls; /* how many times the callback ran */
    int status;
    int cause;
    uint64_t response_id; /* id of the response message, freed on arrival */
    long order;           /* completion order across all rec_ops */
} rec_op_t;

void rec_op_init(rec_op_t *r);

/* Calls svc with a test message (id) on r, whose op carries ctx with a
 * deadline ms from now (the loop's time); asserts the call started. */
void h_call_with_deadline(ct_service_t *svc, rec_op_t *r, ct_context_t *ctx, uint64_t ms,
                          uint64_t id);
extern long rec_op_counter;

/* Random calls (request i is tmsg i) and cancels on client, with at most
 * bound in flight, while answer_some lets the peer answer up to n requests;
 * then every op must have completed once, with its own answer or
 * CT_ECANCELED, and the client must be empty. r holds n_ops ops. */
typedef void (*h_answer_fn)(unsigned *seed, int n);
void h_random_calls_and_cancels(ct_client_t *client, rec_op_t *r, int n_ops, size_t bound,
                                h_answer_fn answer_some, unsigned seed);

/* A service that holds each request until the test (or its timer, or its
 * batch rule) completes it; the response is the request itself. */
typedef struct held_svc {
    ct_service_t service;
    ct_op_t **ops;
    void **reqs;
    size_t n;
    size_t max_n;    /* the most requests ever held at once */
    size_t capacity; /* poll_ready is PENDING when n == capacity (0: never) */
    size_t batch;    /* when n reaches batch, complete all in reverse (0: off) */
    long calls;
    long cancels;
    uint64_t period_ms; /* > 0: a timer completes the oldest one per tick */
    uv_timer_t timer;
    ct_waitq_t waiters;
    int fail_id_plus1; /* the request with id fail_id_plus1 - 1 fails */
    int fail_status;
    ct_msg_free_fn free_req; /* frees a dropped request (default tmsg_free) */
    void *free_ctx;
    /* Turns a request into its response (NULL: the request is the response) */
    void *(*respond)(void *req, void *ctx);
} held_svc_t;

void held_init(held_svc_t *h, size_t capacity);
void held_start_timer(held_svc_t *h, uint64_t period_ms);
/* Completes held request i (0 = oldest) with status (0: echo). */
void held_complete(held_svc_t *h, size_t i, int status);
void held_complete_all(held_svc_t *h);
void held_free(held_svc_t *h);

/* A service that holds what it is called with and answers all of it (the
 * response is the request) from a deferred task in the same turn: in call
 * order, or in a random order when shuffle is set. */
typedef struct batch_svc {
    ct_service_t service;
    ct_op_t **ops;
    void **reqs;
    size_t n, max;
    int shuffle;
    uint32_t rng;
    ct_task_t task;
} batch_svc_t;

void batch_init(batch_svc_t *b, size_t max, int shuffle);

/* A client and a server back to back over a channel pair: pipeline, or
 * multiplex with a slab tag store and the server copying tags. */
typedef struct h_pair {
    ct_channel_t client_end, server_end;
    ct_client_t client;
    ct_server_t srv;
    ct_slab_tags_t tags;
    int multiplexed;
    int server_closed;
} h_pair_t;

/* Connects p: both sides bound to depth in flight, channel_cap per direction. */
void h_pair_connect(h_pair_t *p, ct_service_t *service, int multiplexed, size_t depth,
                    size_t channel_cap);

/* Likewise, with the server's read_context and on_error hooks (may be NULL). */
void h_pair_connect_with(h_pair_t *p, ct_service_t *service, int multiplexed, size_t depth,
                         size_t channel_cap, ct_server_context_fn read_context,
                         ct_server_error_fn on_error);

/* Closes the client; the server sees EOF, drains and closes itself; then
 * service is closed. */
void h_pair_disconnect(h_pair_t *p, ct_service_t *service);

/* Keeps depth requests (test messages with ids 0, 1, ...) in flight on svc
 * until total have completed; asserts that none failed and that every
 * response is its own request's. Returns how many responses arrived after a
 * later request's (0 for a service that keeps order). */
uint64_t h_drive(ct_service_t *svc, size_t depth, uint64_t total);

/* A loopback port whose listen backlog is full (backlog 0, one connection
 * queued): a connect to it gets no answer, so only a timeout ends it. The
 * two sockets are the caller's to close. */
int h_full_backlog_port(int *listen_fd, int *fill_fd);

/* Closes svc and runs the loop until its close callback has run. */
void h_close_service(ct_service_t *svc);

/* A TCP client of plain libuv for tests that speak to a server byte by
 * byte: it writes what it is given and keeps what it reads (up to 64 KiB). */
typedef struct h_raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    char in[64 << 10];
    size_t in_len;
    int connected, end, closed; /* end: UV_EOF or the read error */
} h_raw_t;

/* Connects r to address (tcp://127.0.0.1:PORT) and reads from then on;
 * returns once connected. */
void h_raw_connect(h_raw_t *r, const char *address);
/* Writes len bytes at data (which must stay until written). */
void h_raw_write(h_raw_t *r, const void *data, size_t len);
/* Closes r and returns once closed. */
void h_raw_close(h_raw_t *r);

#endif
