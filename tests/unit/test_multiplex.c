/* The multiplex client and server: tags, out-of-order answers, retired and
 * versioned tags, and the absence of head-of-line blocking. */
#include "testutil.h"

#include <stdlib.h>

TestSuite(multiplex, .init = h_setup, .fini = h_teardown);

static ct_channel_t client_end, peer;
static ct_client_t client;
static ct_slab_tags_t tags;

/* ---- the client against a peer played by the test -------------------- */

static void *inbox[64];
static int inbox_n;

static void on_peer_recv(ct_transport_t *t, int status, void *msg) {
    (void)t;
    if (status == 0) inbox[inbox_n++] = msg;
}

static void setup_client(size_t tag_capacity, size_t max_in_flight) {
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = max_in_flight;
    cfg.free_msg = tmsg_free;
    inbox_n = 0;
    cr_assert_eq(ct_slab_tags_init(&tags, tag_capacity, tmsg_get_tag, tmsg_set_tag), 0);
    cr_assert_eq(ct_channel_pair_init(&H.ct, &client_end, &peer, 64, tmsg_free, NULL), 0);
    cr_assert_eq(ct_multiplex_client_init(&client, &H.ct, &client_end.transport, &tags.store, &cfg),
                 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
}

/* Closes the client and the peer, and frees what the peer still holds. */
static void close_both(void) {
    int i;
    h_close_service(&client.service);
    for (i = 0; i < inbox_n; i++)
        tmsg_free(inbox[i], NULL);
    ct_transport_close(&peer.transport, NULL);
    h_run();
}

static void teardown_client(void) {
    close_both();
    ct_slab_tags_free(&tags);
}

static void call(rec_op_t *r, uint64_t id) {
    rec_op_init(r);
    cr_assert_eq(h_call(&client.service, tmsg_new(id), &r->op), 0);
}

/* The peer answers request i (in arrival order) with the message itself. */
static void answer(int i) {
    cr_assert_not_null(inbox[i]);
    cr_assert_eq(ct_transport_send(&peer.transport, inbox[i]), 0);
    inbox[i] = NULL;
}

static void answer_copy(int i, uint64_t id) {
    tmsg_t *m = tmsg_new(id);
    m->tag = ((tmsg_t *)inbox[i])->tag;
    cr_assert_eq(ct_transport_send(&peer.transport, m), 0);
}

Test(multiplex, rejects_bad_arguments) {
    ct_slab_tags_t t;
    ct_client_t c;
    cr_assert_eq(ct_slab_tags_init(&t, 0, tmsg_get_tag, tmsg_set_tag), CT_EINVAL);
    cr_assert_eq(ct_slab_tags_init(&t, 4, NULL, tmsg_set_tag), CT_EINVAL);
    cr_assert_eq(ct_slab_tags_init(&t, ((size_t)1 << 24) + 1, tmsg_get_tag, tmsg_set_tag),
                 CT_EINVAL);
    cr_assert_eq(ct_multiplex_client_init(&c, &H.ct, &client_end.transport, NULL, NULL), CT_EINVAL);
}

Test(multiplex, answers_in_any_order_reach_their_own_requests) {
    rec_op_t r[4];
    int i;
    setup_client(16, 16);
    for (i = 0; i < 4; i++)
        call(&r[i], 10 + i);
    h_turns(2);
    cr_assert_eq(inbox_n, 4);
    answer(2);
    answer(0);
    answer(3);
    answer(1);
    h_turns(2);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].response_id, 10u + i);
    }
    cr_assert_lt(r[2].order, r[0].order, "completed in the order the answers came");
    cr_assert_lt(r[3].order, r[1].order);
    teardown_client();
}

static int woken;
static void on_wake(ct_waker_t *w) {
    (void)w;
    woken++;
}

Test(multiplex, tag_exhaustion_is_pending_until_a_tag_frees) {
    rec_op_t r[3];
    ct_waker_t w;
    setup_client(2, 64); /* the store has two tags: they bound the client */
    woken = 0;
    ct_waker_init(&w, &H.ct, on_wake);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    call(&r[0], 1);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    call(&r[1], 2);
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_PENDING);
    h_turns(2);
    cr_assert_eq(woken, 0);
    answer(1);
    h_turns(2);
    cr_assert_eq(woken, 1, "readiness returns when a tag frees up");
    cr_assert_eq(ct_service_poll_ready(&client.service, &w), CT_READY);
    call(&r[2], 3);
    h_turns(2);
    answer(0);
    answer(2);
    h_turns(2);
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(r[2].response_id, 3);
    teardown_client();
}

Test(multiplex, unknown_tag_is_desync_for_every_op) {
    rec_op_t r[2];
    tmsg_t *stray = tmsg_new(99);
    setup_client(8, 8);
    call(&r[0], 1);
    call(&r[1], 2);
    h_turns(2);
    stray->tag = 0xdead0007; /* a slot index in range, a generation never used */
    cr_assert_eq(ct_transport_send(&peer.transport, stray), 0);
    h_turns(2);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(r[0].status, CT_EDESYNC);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_EDESYNC);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_EDESYNC);
    teardown_client();
}

Test(multiplex, duplicate_answer_is_desync_not_a_gift_to_the_next_request) {
    rec_op_t r[2];
    setup_client(1, 1); /* one slot: the second request reuses it */
    call(&r[0], 1);
    h_turns(2);
    answer_copy(0, 1);
    h_turns(2);
    cr_assert_eq(r[0].response_id, 1);
    call(&r[1], 2);
    h_turns(2);
    cr_assert_eq(inbox_n, 2);
    cr_assert_neq(((tmsg_t *)inbox[0])->tag, ((tmsg_t *)inbox[1])->tag,
                  "a reused slot gets a new tag");
    answer(0); /* the same answer again, after its slot was reused */
    h_turns(2);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_EDESYNC, "the stale answer was not given to request 2");
    teardown_client();
}

Test(multiplex, transport_closed_with_requests_in_flight) {
    rec_op_t r[3];
    int i;
    setup_client(8, 8);
    for (i = 0; i < 3; i++)
        call(&r[i], i);
    h_turns(2);
    answer(1);
    for (i = 0; i < inbox_n; i++)
        if (inbox[i]) tmsg_free(inbox[i], NULL);
    inbox_n = 0;
    ct_transport_close(&peer.transport, NULL);
    h_turns(3);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[0].status, CT_ERECVBROKEN);
    cr_assert_eq(r[0].cause, UV_EOF);
    cr_assert_eq(r[2].status, CT_ERECVBROKEN);
    for (i = 0; i < 3; i++)
        cr_assert_eq(r[i].calls, 1);
    h_close_service(&client.service);
    h_run();
    ct_slab_tags_free(&tags);
}

Test(multiplex, client_closed_with_requests_in_flight) {
    rec_op_t r[3];
    int i;
    setup_client(8, 8);
    for (i = 0; i < 3; i++)
        call(&r[i], i);
    h_turns(2);
    teardown_client();
    for (i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].status, CT_ECLOSED);
    }
}

Test(multiplex, late_answer_to_a_canceled_request_is_discarded) {
    rec_op_t r[2];
    setup_client(1, 1);
    call(&r[0], 1);
    h_turns(2);
    ct_op_cancel(&r[0].op);
    h_turns(1);
    cr_assert_eq(r[0].status, CT_ECANCELED);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_PENDING,
                 "the canceled request's tag stays retired until its answer");
    answer(0); /* the server's late answer */
    h_turns(2);
    cr_assert_eq(r[0].calls, 1);
    cr_assert_eq(ct_service_poll_ready(&client.service, NULL), CT_READY);
    call(&r[1], 2);
    h_turns(2);
    answer(1);
    h_turns(2);
    cr_assert_eq(r[1].status, 0);
    cr_assert_eq(r[1].response_id, 2, "the next request got its own answer");
    teardown_client();
}

static int drained = 1;
static void on_drained(ct_service_t *svc, int status) {
    (void)svc;
    drained = status;
}

/* A shutdown waits for the callers, not for the answers to canceled calls. */
Test(multiplex, a_shutdown_does_not_wait_for_answers_nobody_waits_for) {
    rec_op_t r[3];
    setup_client(8, 8);
    drained = 1;
    call(&r[0], 1);
    call(&r[1], 2);
    call(&r[2], 3);
    h_turns(2);
    cr_assert_eq(inbox_n, 3);
    ct_op_cancel(&r[0].op);
    ct_op_cancel(&r[2].op);
    cr_assert_eq(ct_service_shutdown(&client.service, on_drained), 0);
    h_turns(3);
    cr_assert_eq(drained, 1, "request 2's caller still waits");
    answer(2); /* a canceled call's late answer */
    h_turns(3);
    cr_assert_eq(drained, 1);
    answer(1);
    h_turns(3);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(drained, 0, "only a canceled call's answer is left: drained");
    teardown_client();
}

/* ---- client and server back to back ----------------------------------- */

static ct_channel_t server_end;
static ct_server_t srv;
static int server_closed;

static void on_server_closed(ct_server_t *s, int status) {
    (void)s;
    (void)status;
    server_closed = 1;
}

static h_pair_t pair;

static void random_order(size_t depth) {
    batch_svc_t s;
    batch_init(&s, depth, 1);
    h_pair_connect(&pair, &s.service, 1, depth, 64);
    if (depth > 2)
        cr_assert_gt(h_drive(&pair.client.service, depth, 100000), 0, "the service did reorder");
    else
        h_drive(&pair.client.service, depth, 100000);
    h_pair_disconnect(&pair, &s.service);
}

Test(multiplex, random_order_100k_depth_1) {
    random_order(1);
}
Test(multiplex, random_order_100k_depth_16) {
    random_order(16);
}
Test(multiplex, random_order_100k_depth_256) {
    random_order(256);
}
Test(multiplex, random_order_100k_depth_4096) {
    random_order(4096);
}

/* Holds request 0 until released; answers every other one at once. */
typedef struct hold_first {
    ct_service_t service;
    ct_op_t *held_op;
    void *held_req;
} hold_first_t;

static int hold_ready(ct_service_t *svc, ct_waker_t *w) {
    (void)svc;
    (void)w;
    return CT_READY;
}

static int hold_call(ct_service_t *svc, void *req, ct_op_t *op) {
    hold_first_t *h = (hold_first_t *)svc;
    if (tmsg_id(req) == 0) {
        h->held_op = op;
        h->held_req = req;
    } else {
        ct_op_complete(op, 0, 0, req);
    }
    return 0;
}

static void hold_release(hold_first_t *h) {
    ct_op_t *op = h->held_op;
    h->held_op = NULL;
    ct_op_complete(op, 0, 0, h->held_req);
}

static void hold_cancel(ct_service_t *svc, ct_op_t *op) {
    hold_first_t *h = (hold_first_t *)svc;
    cr_assert_eq(op, h->held_op);
    h->held_op = NULL;
    tmsg_free(h->held_req, NULL);
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
}

static void hold_close(ct_service_t *svc) {
    ct_service_closed(svc);
}

static const ct_service_vtable_t hold_vtable = {
    hold_ready, hold_call, hold_cancel, NULL, NULL, hold_close, NULL,
};

enum { HOL_OTHERS = 10000, HOL_DEPTH = 64 };
static long first_order;
static long others_before_first;
static long others_done;

static void on_hol_done(ct_op_t *op, int status, void *response);

typedef struct hol_op {
    ct_op_t op;
    uint64_t expect;
} hol_op_t;

static hol_op_t hol_ops[HOL_DEPTH];
static uint64_t hol_next;

static void hol_issue(hol_op_t *d) {
    d->expect = hol_next++;
    cr_assert_eq(h_call(&pair.client.service, tmsg_new(d->expect), &d->op), 0);
}

static void on_hol_done(ct_op_t *op, int status, void *response) {
    hol_op_t *d = CT_CONTAINER_OF(op, hol_op_t, op);
    cr_assert_eq(status, 0);
    cr_assert_eq(tmsg_id(response), d->expect);
    tmsg_free(response, NULL);
    if (d->expect == 0) {
        first_order = 1;
    } else {
        others_done++;
        if (!first_order) others_before_first++;
    }
    if (hol_next <= HOL_OTHERS) hol_issue(d);
}

static void head_of_line(int multiplexed) {
    hold_first_t h;
    int i;
    memset(&h, 0, sizeof h);
    ct_service_init(&h.service, &H.ct, &hold_vtable);
    h_pair_connect(&pair, &h.service, multiplexed, HOL_DEPTH, 64);
    first_order = others_before_first = others_done = 0;
    hol_next = 0;
    for (i = 0; i < HOL_DEPTH; i++) {
        ct_op_init(&hol_ops[i].op, on_hol_done);
        hol_issue(&hol_ops[i]);
    }
    h_run(); /* until nothing more can happen while request 0 is held */
    cr_assert_not_null(h.held_op, "request 0 is still held");
    if (multiplexed)
        cr_assert_eq(others_done, HOL_OTHERS, "every other request completed around it");
    else
        cr_assert_eq(others_done, 0, "in a pipeline every answer waits for the first");
    hold_release(&h);
    h_run();
    cr_assert_eq(first_order, 1);
    cr_assert_eq(others_done, HOL_OTHERS);
    cr_assert_eq(others_before_first, multiplexed ? HOL_OTHERS : 0);
    h_pair_disconnect(&pair, &h.service);
}

Test(multiplex, no_head_of_line_blocking) {
    head_of_line(1);
}

Test(multiplex, a_pipeline_under_the_same_load_blocks) {
    head_of_line(0);
}

/* ---- the multiplex server against a peer played by the test ------------- */

Test(multiplex, server_sends_in_completion_order_with_tags_copied) {
    held_svc_t held;
    ct_server_config_t cfg = {0};
    int i;
    held_init(&held, 0);
    cfg.free_msg = tmsg_free;
    cfg.get_tag = tmsg_get_tag;
    cfg.set_tag = tmsg_set_tag;
    server_closed = 0;
    inbox_n = 0;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &server_end, &peer, 16, tmsg_free, NULL), 0);
    cr_assert_eq(ct_multiplex_server_init(&srv, &H.ct, &server_end.transport, &held.service, &cfg,
                                          on_server_closed),
                 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
    for (i = 0; i < 3; i++) {
        tmsg_t *m = tmsg_new(i);
        m->tag = 100 + i;
        cr_assert_eq(ct_transport_send(&peer.transport, m), 0);
    }
    h_turns(2);
    cr_assert_eq(held.n, 3);
    /* The service answers with fresh messages; the server carries the tags. */
    held_complete(&held, 2, 0);
    h_turns(2);
    cr_assert_eq(inbox_n, 1, "an answer leaves as soon as it is ready");
    held_complete(&held, 0, 0);
    held_complete(&held, 0, 0);
    h_turns(2);
    cr_assert_eq(inbox_n, 3);
    cr_assert_eq(tmsg_id(inbox[0]), 2);
    cr_assert_eq(tmsg_get_tag(inbox[0]), 102);
    cr_assert_eq(tmsg_id(inbox[1]), 0);
    cr_assert_eq(tmsg_get_tag(inbox[1]), 100);
    cr_assert_eq(tmsg_get_tag(inbox[2]), 101);
    for (i = 0; i < inbox_n; i++)
        tmsg_free(inbox[i], NULL);
    cr_assert_eq(ct_server_close(&srv), 0);
    H_RUN_UNTIL(server_closed);
    ct_transport_close(&peer.transport, NULL);
    h_close_service(&held.service);
    held_free(&held);
}

Test(multiplex, pipeline_server_refuses_tag_functions) {
    held_svc_t held;
    ct_server_config_t cfg = {0};
    held_init(&held, 0);
    cfg.get_tag = tmsg_get_tag;
    cfg.set_tag = tmsg_set_tag;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &server_end, &peer, 4, tmsg_free, NULL), 0);
    cr_assert_eq(
        ct_pipeline_server_init(&srv, &H.ct, &server_end.transport, &held.service, &cfg, NULL),
        CT_EINVAL);
    cfg.set_tag = NULL;
    cr_assert_eq(
        ct_multiplex_server_init(&srv, &H.ct, &server_end.transport, &held.service, &cfg, NULL),
        CT_EINVAL, "get_tag without set_tag");
    ct_transport_close(&server_end.transport, NULL);
    ct_transport_close(&peer.transport, NULL);
    h_close_service(&held.service);
    held_free(&held);
}

/* ---- a tag store of the user's own, through its vtable ------------------ */

/* The tag is the slot plus 100 (so that a tag is never a slot by accident);
 * assign refuses requests whose id is 666. */
typedef struct user_store {
    ct_tag_store_t store;
    int in_use[16];
    int assigns, finishes, unassigns;
} user_store_t;

static int user_assign(ct_tag_store_t *store, void *request, size_t slot) {
    user_store_t *u = (user_store_t *)store;
    u->assigns++;
    cr_assert_eq(u->in_use[slot], 0, "a slot is tagged again only after its answer");
    if (tmsg_id(request) == 666) return CT_SERVICE_ERROR(9);
    u->in_use[slot] = 1;
    tmsg_set_tag(request, (uint32_t)slot + 100);
    return 0;
}

static int user_finish(ct_tag_store_t *store, const void *response, size_t *slot) {
    user_store_t *u = (user_store_t *)store;
    uint32_t tag = tmsg_get_tag(response);
    u->finishes++;
    if (tag < 100 || tag >= 116 || !u->in_use[tag - 100]) return CT_EDESYNC;
    u->in_use[tag - 100] = 0;
    *slot = tag - 100;
    return 0;
}

static void user_unassign(ct_tag_store_t *store, size_t slot) {
    user_store_t *u = (user_store_t *)store;
    u->unassigns++;
    u->in_use[slot] = 0;
}

static const ct_tag_store_vtable_t user_with_unassign = {user_assign, user_finish, user_unassign};
static const ct_tag_store_vtable_t user_without_unassign = {user_assign, user_finish, NULL};
static user_store_t ustore;

/* A client over a channel that holds channel_cap messages each way. */
static void setup_user_client(const ct_tag_store_vtable_t *vtable, size_t channel_cap) {
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = 16;
    cfg.free_msg = tmsg_free;
    inbox_n = 0;
    memset(&ustore, 0, sizeof ustore);
    ustore.store.vtable = vtable;
    ustore.store.capacity = 16;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &client_end, &peer, channel_cap, tmsg_free, NULL), 0);
    cr_assert_eq(
        ct_multiplex_client_init(&client, &H.ct, &client_end.transport, &ustore.store, &cfg), 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_recv), 0);
}

/* Requests beyond the channel's room wait and go out in call order; answers
 * in reverse order reach their own requests; a request the store refuses
 * fails alone. With and without unassign (without it, the client asks for
 * room before every send, so a tag is never taken back). */
static void user_store_round_trip(const ct_tag_store_vtable_t *vtable) {
    rec_op_t r[5];
    static const uint64_t ids[5] = {1, 2, 666, 4, 5};
    int i;
    setup_user_client(vtable, 2);
    for (i = 0; i < 5; i++)
        call(&r[i], ids[i]);
    h_turns(6);
    cr_assert_eq(r[2].calls, 1);
    cr_assert_eq(r[2].status, CT_SERVICE_ERROR(9), "the store's refusal fails that request");
    cr_assert_eq(inbox_n, 4, "the others all went out, two at a time");
    for (i = 3; i >= 0; i--) {
        answer(i);
        h_turns(2);
    }
    for (i = 0; i < 5; i++)
        cr_assert_eq(r[i].calls, 1, "op %d completed once", i);
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[1].response_id, 2);
    cr_assert_eq(r[3].response_id, 4);
    cr_assert_eq(r[4].response_id, 5);
    cr_assert_eq(ustore.finishes, 4);
    cr_assert_eq(ct_client_in_flight(&client), 0);
    if (!vtable->unassign) cr_assert_eq(ustore.unassigns, 0);
    close_both();
}

Test(multiplex, a_user_store_with_unassign) {
    user_store_round_trip(&user_with_unassign);
    cr_assert_gt(ustore.unassigns, 0, "tags of requests refused for room were given back");
}

Test(multiplex, a_user_store_without_unassign) {
    user_store_round_trip(&user_without_unassign);
}

/* Without unassign, a request the transport cannot encode leaves a tag that
 * cannot be taken back: the client ends, every op with CT_ESENDBROKEN. */
Test(multiplex, a_user_store_without_unassign_cannot_survive_a_refused_request) {
    rec_op_t r[2];
    setup_user_client(&user_without_unassign, 8);
    call(&r[0], 1);
    h_turns(2);
    cr_assert_eq(ct_channel_refuse_next(&client_end, CT_EFRAMETOOLARGE), 0);
    call(&r[1], 2);
    h_turns(2);
    cr_assert_eq(r[1].status, CT_ESENDBROKEN);
    cr_assert_eq(r[1].cause, CT_EFRAMETOOLARGE);
    cr_assert_eq(r[0].status, CT_ESENDBROKEN, "the client is dead: every op fails");
    close_both();
}

/* A request canceled while it waits for room never goes out; the ones around
 * it do, and get their own answers. */
Test(multiplex, cancel_before_sending_drops_the_request) {
    rec_op_t r[3];
    setup_user_client(&user_with_unassign, 1);
    call(&r[0], 1);
    call(&r[1], 2); /* these wait for room in the channel */
    call(&r[2], 3);
    ct_op_cancel(&r[1].op);
    h_turns(6);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_ECANCELED);
    cr_assert_eq(inbox_n, 2);
    cr_assert_eq(tmsg_id(inbox[0]), 1);
    cr_assert_eq(tmsg_id(inbox[1]), 3, "the canceled request never went out");
    answer(1);
    h_turns(2);
    answer(0);
    h_turns(2);
    cr_assert_eq(r[0].response_id, 1);
    cr_assert_eq(r[2].response_id, 3);
    cr_assert_eq(ct_client_in_flight(&client), 0);
    close_both();
}

/* Without unassign the client asks for room before tagging: a send side
 * already broken is seen there, and every op fails with CT_ESENDBROKEN and
 * its cause. */
Test(multiplex, a_user_store_without_unassign_sees_a_broken_send_side_first) {
    rec_op_t r;
    setup_user_client(&user_without_unassign, 8);
    ct_channel_fail_send(&client_end, UV_EPIPE);
    call(&r, 1);
    h_turns(2);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, CT_ESENDBROKEN);
    cr_assert_eq(r.cause, UV_EPIPE);
    cr_assert_eq(ustore.assigns, 0, "nothing was tagged");
    close_both();
}

/* Two clients that share one slab store (a mistake, but a possible one):
 * a slot whose tag the other client holds refuses the request alone. */
Test(multiplex, a_slab_slot_in_use_elsewhere_fails_that_request_alone) {
    static ct_channel_t other_end, other_peer;
    static ct_client_t other;
    ct_client_config_t cfg = {0};
    rec_op_t r[3];
    setup_client(4, 4);
    cfg.max_in_flight = 4;
    cfg.free_msg = tmsg_free;
    cr_assert_eq(ct_channel_pair_init(&H.ct, &other_end, &other_peer, 8, tmsg_free, NULL), 0);
    cr_assert_eq(ct_multiplex_client_init(&other, &H.ct, &other_end.transport, &tags.store, &cfg),
                 0);
    call(&r[0], 1); /* slot 0 of the first client: the tag of slot 0 is taken */
    rec_op_init(&r[1]);
    cr_assert_eq(h_call(&other.service, tmsg_new(2), &r[1].op), 0);
    h_turns(2);
    cr_assert_eq(r[1].calls, 1);
    cr_assert_eq(r[1].status, CT_EINVAL, "%s", ct_err_name(r[1].status));
    cr_assert_eq(inbox_n, 1);
    answer(0);
    h_turns(2);
    cr_assert_eq(r[0].response_id, 1, "the first client goes on");
    call(&r[2], 3);
    h_turns(2);
    answer(1);
    h_turns(2);
    cr_assert_eq(r[2].response_id, 3);
    h_close_service(&other.service);
    ct_transport_close(&other_peer.transport, NULL);
    teardown_client();
}

/* Random calls and cancels against a peer that answers what it holds in a
 * random order, as room in each direction allows: every op completes once,
 * with its own answer or CT_ECANCELED, through tombstones and requests
 * dropped while they waited for room. */
enum { RANDOM_OPS = 4000, HELD_MAX = 64 };
static void *held_msgs[HELD_MAX];
static int held_n;

static void on_peer_hold(ct_transport_t *t, int status, void *msg) {
    (void)t;
    if (status != 0) return;
    cr_assert_lt(held_n, HELD_MAX);
    held_msgs[held_n++] = msg;
}

/* The peer answers up to n of the requests it holds, picked at random. */
static void peer_answer_random(unsigned *seed, int n) {
    while (n-- > 0 && held_n > 0) {
        int k;
        *seed = *seed * 1103515245u + 12345u;
        k = (int)((*seed >> 16) % (unsigned)held_n);
        if (ct_transport_send(&peer.transport, held_msgs[k]) != 0) return; /* no room */
        held_msgs[k] = held_msgs[--held_n];
    }
}

Test(multiplex, random_calls_cancels_and_answers_keep_each_answer_with_its_op) {
    static rec_op_t r[RANDOM_OPS];
    ct_client_config_t cfg = {0};
    cfg.max_in_flight = 8;
    cfg.free_msg = tmsg_free;
    held_n = 0;
    cr_assert_eq(ct_slab_tags_init(&tags, 8, tmsg_get_tag, tmsg_set_tag), 0);
    cr_assert_eq(ct_channel_pair_init(&H.ct, &client_end, &peer, 3, tmsg_free, NULL), 0);
    cr_assert_eq(ct_multiplex_client_init(&client, &H.ct, &client_end.transport, &tags.store, &cfg),
                 0);
    cr_assert_eq(ct_transport_recv_start(&peer.transport, on_peer_hold), 0);
    h_random_calls_and_cancels(&client, r, RANDOM_OPS, 8, peer_answer_random, 777);
    cr_assert_eq(held_n, 0);
    h_close_service(&client.service);
    ct_transport_close(&peer.transport, NULL);
    h_run();
    ct_slab_tags_free(&tags);
}
