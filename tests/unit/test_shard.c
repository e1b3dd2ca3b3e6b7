/* The sharding layer: the hash and the jump, each key to its own shard, a
 * full shard holding only its own calls, refused keys, the in-flight bound,
 * cancel (waiting and sent), a failing shard, shutdown and close, and a
 * random run with exactly-once completion. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

TestSuite(shard, .init = h_setup, .fini = h_teardown);

enum { SHARDS = 4 };

static held_svc_t shards[SHARDS];
static ct_shard_t layer;
static int refused_id = -1; /* the key function refuses this id */

static int key_of(void *ctx, const void *request, uint64_t *hash) {
    uint64_t id = tmsg_id((void *)request);
    (void)ctx;
    if ((int)id == refused_id) return CT_SERVICE_ERROR(7);
    *hash = ct_shard_hash(&id, sizeof id);
    return 0;
}

/* The shard a request with this id goes to. */
static size_t shard_of(uint64_t id, size_t n) {
    return ct_shard_jump(ct_shard_hash(&id, sizeof id), n);
}

/* The first id from `from` on whose request goes to shard i of n. */
static uint64_t id_for(size_t i, size_t n, uint64_t from) {
    while (shard_of(from, n) != i)
        from++;
    return from;
}

/* shards[0..n) with the given capacity (0: none) behind the layer. */
static void wrap(size_t n, size_t capacity, size_t max_in_flight) {
    ct_service_t *list[SHARDS];
    ct_shard_config_t c = {0};
    size_t i;
    for (i = 0; i < n; i++) {
        held_init(&shards[i], capacity);
        list[i] = &shards[i].service;
    }
    c.shards = list;
    c.n_shards = n;
    c.key = key_of;
    c.max_in_flight = max_in_flight;
    c.free_msg = tmsg_free;
    refused_id = -1;
    cr_assert_eq(ct_shard_init(&layer, &H.ct, &c), 0);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&layer.service, tmsg_new(id), &r->op), 0);
}

static ct_shard_stats_t stats(size_t i) {
    ct_shard_stats_t st;
    cr_assert_eq(ct_shard_stats(&layer, i, &st), 0);
    return st;
}

/* ---- the hash and the jump ---------------------------------------------------- */

Test(shard, the_hash_is_fnv1a_and_the_jump_spreads_and_moves_little) {
    enum { KEYS = 20000 };
    size_t count[5] = {0}, moved = 0, i;
    cr_assert_eq(ct_shard_hash("", 0), 14695981039346656037ull);
    cr_assert_eq(ct_shard_hash("a", 1), 0xaf63dc4c8601ec8cull, "FNV-1a of \"a\"");
    for (i = 0; i < KEYS; i++) {
        uint64_t h = ct_shard_hash(&i, sizeof i);
        size_t four = ct_shard_jump(h, 4), five = ct_shard_jump(h, 5);
        cr_assert_eq(ct_shard_jump(h, 1), 0);
        cr_assert_lt(four, 4);
        count[four]++;
        if (five != four) {
            cr_assert_eq(five, 4, "a key moved between old shards");
            moved++;
        }
    }
    for (i = 0; i < 4; i++)
        cr_assert(count[i] > KEYS / 4 * 9 / 10 && count[i] < KEYS / 4 * 11 / 10,
                  "shard %zu has %zu of %d keys", i, count[i], KEYS);
    cr_assert(moved > KEYS / 5 * 9 / 10 && moved < KEYS / 5 * 11 / 10,
              "%zu keys moved to a fifth shard, not about a fifth", moved);
}

/* ---- routing -------------------------------------------------------------------- */

Test(shard, each_call_goes_to_its_keys_shard) {
    enum { N = 200 };
    static rec_op_t r[N];
    size_t per[SHARDS] = {0}, i, j;
    wrap(SHARDS, 0, 0);
    for (i = 0; i < N; i++) {
        call(&r[i], i);
        per[shard_of(i, SHARDS)]++;
    }
    for (i = 0; i < SHARDS; i++) {
        cr_assert_eq(shards[i].n, per[i], "shard %zu holds %zu, not %zu", i, shards[i].n, per[i]);
        cr_assert_eq(stats(i).in_flight, per[i]);
        for (j = 0; j < shards[i].n; j++)
            cr_assert_eq(shard_of(tmsg_id(shards[i].reqs[j]), SHARDS), i);
    }
    for (i = 0; i < SHARDS; i++)
        held_complete_all(&shards[i]);
    for (i = 0; i < N; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].status, 0);
        cr_assert_eq(r[i].response_id, i);
    }
    h_close_service(&layer.service);
}

/* Shard 0 takes one call at a time: its other calls wait, in order, while
 * shard 1's all go out. */
Test(shard, a_full_shard_holds_only_its_own_calls) {
    rec_op_t to0[4], to1[4];
    uint64_t ids0[4], id1 = 0;
    int i;
    wrap(2, 0, 0);
    shards[0].capacity = 1;
    for (i = 0; i < 4; i++) {
        ids0[i] = id_for(0, 2, i ? ids0[i - 1] + 1 : 0);
        call(&to0[i], ids0[i]);
        id1 = id_for(1, 2, i ? id1 + 1 : 0);
        call(&to1[i], id1);
    }
    cr_assert_eq(shards[0].n, 1);
    cr_assert_eq(stats(0).waiting, 3);
    cr_assert_eq(shards[1].n, 4, "the other shard's calls waited");
    for (i = 1; i < 4; i++) { /* each answer lets the next waiting call out, in order */
        held_complete(&shards[0], 0, 0);
        H_RUN_UNTIL(shards[0].n == 1 && tmsg_id(shards[0].reqs[0]) != ids0[i - 1]);
        cr_assert_eq(tmsg_id(shards[0].reqs[0]), ids0[i]);
    }
    held_complete_all(&shards[0]);
    held_complete_all(&shards[1]);
    for (i = 0; i < 4; i++) {
        H_RUN_UNTIL(to0[i].calls && to1[i].calls);
        cr_assert_eq(to0[i].status, 0);
        cr_assert_eq(to1[i].status, 0);
    }
    cr_assert(to0[0].order < to0[1].order && to0[1].order < to0[2].order &&
                  to0[2].order < to0[3].order,
              "the waiting calls went out of order");
    h_close_service(&layer.service);
}

Test(shard, a_refused_key_fails_that_call_alone) {
    rec_op_t r[3];
    int i;
    wrap(2, 0, 0);
    refused_id = 1;
    for (i = 0; i < 3; i++)
        call(&r[i], (uint64_t)i);
    held_complete_all(&shards[0]);
    held_complete_all(&shards[1]);
    for (i = 0; i < 3; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, i == 1 ? CT_SERVICE_ERROR(7) : 0);
    }
    cr_assert_eq(H.live_msgs, 0, "the refused request was not freed");
    h_close_service(&layer.service);
}

/* ---- bounds, cancel, failures ------------------------------------------------- */

Test(shard, the_in_flight_bound_holds_and_frees_up) {
    rec_op_t r[3];
    wrap(1, 0, 2);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    call(&r[0], 0);
    call(&r[1], 1);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_PENDING);
    call(&r[2], 2); /* without a READY, at the bound */
    H_RUN_UNTIL(r[2].calls);
    cr_assert_eq(r[2].status, CT_EOVERLOADED);
    held_complete(&shards[0], 0, 0);
    H_RUN_UNTIL(r[0].calls);
    cr_assert_eq(ct_service_poll_ready(&layer.service, NULL), CT_READY);
    ct_service_release(&layer.service);
    held_complete_all(&shards[0]);
    H_RUN_UNTIL(r[1].calls);
    h_close_service(&layer.service);
}

Test(shard, cancel_takes_a_waiting_call_back_and_a_sent_one_from_its_shard) {
    rec_op_t sent, waiting;
    wrap(1, 1, 0);
    call(&sent, 0);
    call(&waiting, 1);
    cr_assert_eq(stats(0).waiting, 1);
    ct_op_cancel(&waiting.op);
    H_RUN_UNTIL(waiting.calls);
    cr_assert_eq(waiting.status, CT_ECANCELED);
    cr_assert_eq(stats(0).waiting, 0);
    ct_op_cancel(&sent.op);
    H_RUN_UNTIL(sent.calls);
    cr_assert_eq(sent.status, CT_ECANCELED);
    cr_assert_eq(shards[0].n, 0, "the shard still holds the canceled call");
    cr_assert_eq(shards[0].calls, 1, "the waiting call was sent after all");
    h_close_service(&layer.service);
}

static int dead_poll(ct_service_t *svc, ct_waker_t *w) {
    (void)svc;
    (void)w;
    return CT_ECONNECT;
}

Test(shard, a_shard_that_cannot_take_calls_fails_its_own) {
    static ct_service_vtable_t dead;
    rec_op_t to_dead, to_live;
    wrap(2, 0, 0);
    dead = *shards[0].service.vtable;
    dead.poll_ready = dead_poll;
    shards[0].service.vtable = &dead;
    call(&to_dead, id_for(0, 2, 0));
    call(&to_live, id_for(1, 2, 0));
    H_RUN_UNTIL(to_dead.calls);
    cr_assert_eq(to_dead.status, CT_ECONNECT);
    held_complete_all(&shards[1]);
    H_RUN_UNTIL(to_live.calls);
    cr_assert_eq(to_live.status, 0);
    h_close_service(&layer.service);
}

/* ---- shutdown and close --------------------------------------------------------- */

static int drained, drain_status;
static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained = 1;
    drain_status = status;
}

/* The calls waiting still go out; then the shards are asked to shut down
 * (these cannot: CT_ENOTSUP is the layer's answer once all is sent). */
Test(shard, shutdown_sends_the_waiting_calls_first) {
    rec_op_t r[3];
    int i;
    wrap(1, 1, 0);
    for (i = 0; i < 3; i++)
        call(&r[i], (uint64_t)i);
    drained = 0;
    cr_assert_eq(ct_service_shutdown(&layer.service, on_drained), 0);
    h_turns(3);
    cr_assert_eq(drained, 0, "done with calls still waiting");
    for (i = 0; i < 3; i++) {
        H_RUN_UNTIL(shards[0].n == 1);
        held_complete(&shards[0], 0, 0);
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].status, 0);
    }
    H_RUN_UNTIL(drained);
    cr_assert_eq(drain_status, CT_ENOTSUP);
    cr_assert_eq(shards[0].calls, 3);
    h_close_service(&layer.service);
}

Test(shard, close_fails_the_waiting_calls_and_closes_every_shard) {
    rec_op_t r[3];
    int i;
    wrap(2, 1, 0);
    for (i = 0; i < 3; i++)
        call(&r[i], id_for(0, 2, 0)); /* all to shard 0 (the same key) */
    cr_assert_eq(stats(0).waiting, 2);
    h_close_service(&layer.service);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ECLOSED);
    }
    cr_assert_eq(H.live_msgs, 0);
}

Test(shard, bad_configurations_are_refused) {
    ct_shard_config_t c = {0};
    ct_service_t *list[2];
    ct_shard_t s;
    held_init(&shards[0], 0);
    list[0] = list[1] = &shards[0].service;
    c.shards = list;
    c.n_shards = 1;
    cr_assert_eq(ct_shard_init(&s, &H.ct, &c), CT_EINVAL, "no key function");
    c.key = key_of;
    c.n_shards = 0;
    cr_assert_eq(ct_shard_init(&s, &H.ct, &c), CT_EINVAL, "no shards");
    c.n_shards = 2;
    cr_assert_eq(ct_shard_init(&s, &H.ct, &c), CT_EINVAL, "one shard twice");
    cr_assert_null(shards[0].service.owner);
    h_close_service(&shards[0].service);
}

/* ---- exactly once ---------------------------------------------------------------- */

Test(shard, random_calls_cancels_and_answers_complete_once) {
    enum { N = 300 };
    static rec_op_t r[N];
    unsigned seed = 99;
    int i, k;
    wrap(SHARDS, 2, 64);
    for (i = 0; i < N; i++) {
        call(&r[i], (uint64_t)(rand_r(&seed) % 50));
        for (k = 0; k < 2; k++) {
            int a = rand_r(&seed) % 4;
            size_t s = (size_t)rand_r(&seed) % SHARDS;
            if (a == 0 && i > 0) {
                int j = rand_r(&seed) % i;
                if (ct_op_is_pending(&r[j].op)) ct_op_cancel(&r[j].op);
            } else if (a == 1 && shards[s].n > 0) {
                held_complete(&shards[s], 0, 0);
            }
        }
        h_turns(1);
    }
    for (k = 0; k < 100; k++) {
        size_t s;
        for (s = 0; s < SHARDS; s++)
            held_complete_all(&shards[s]);
        h_turns(2);
    }
    for (i = 0; i < N; i++) {
        H_RUN_UNTIL(r[i].calls);
        cr_assert_eq(r[i].calls, 1, "call %d completed %d times", i, r[i].calls);
        cr_assert(r[i].status == 0 || r[i].status == CT_ECANCELED || r[i].status == CT_EOVERLOADED,
                  "call %d: %s", i, ct_err_name(r[i].status));
    }
    h_close_service(&layer.service);
}

/* A call that waits for its full shard past its deadline is not sent when
 * the shard has room: it fails with its deadline as the cause. */
Test(shard, a_call_waiting_past_its_deadline_is_not_sent) {
    rec_op_t first, late;
    ct_context_t ctx;
    uint64_t a = id_for(0, 2, 0), b = id_for(0, 2, a + 1);
    wrap(2, 0, 0);
    shards[0].capacity = 1;
    call(&first, a);
    h_call_with_deadline(&layer.service, &late, &ctx, 10, b);
    cr_assert_eq(stats(0).waiting, 1);
    uv_sleep(20);
    uv_update_time(&H.uv);
    held_complete(&shards[0], 0, 0);
    H_RUN_UNTIL(first.calls && late.calls);
    cr_assert_eq(late.status, CT_ETIMEDOUT);
    cr_assert_eq(late.cause, CT_EDEADLINE);
    cr_assert_eq(shards[0].calls, 1, "the late call was sent");
    h_close_service(&layer.service);
}
