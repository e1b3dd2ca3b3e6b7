/* Model-based fuzz target for the clients. The input is a script: calls,
 * cancels, replies in or out of order, stray and duplicate replies, broken
 * and closed transports, messages the transport refuses, shutdowns and loop turns, played against a
 * pipeline or multiplex client over the in-memory channel, with the test as the peer. Whatever the
 * script, every op that started completes exactly once and only ever with its own request's answer,
 * no callback runs inside a call, nothing leaks, and the loop closes clean. */
#include <ctower/ctower.h>

#include <stdlib.h>
#include <string.h>

enum { OPS = 24, PEER_MAX = 64 };

typedef struct msg {
    uint32_t tag;
    uint32_t id;
} msg_t;

typedef struct rec {
    ct_op_t op;
    int started;
    int calls;
    uint32_t id; /* of the request: the peer echoes it, so the answer has it */
} rec_t;

static struct {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_channel_t client_end, peer;
    ct_client_t client;
    ct_slab_tags_t tags;
    int multiplex;
    rec_t recs[OPS];
    msg_t *inbox[PEER_MAX]; /* requests the peer received, unanswered */
    int inbox_n;
    uint32_t last_tag, last_id;
    long live;
    int nested;
    int peer_closed, client_closing, client_closed;
    int pipeline_off_step; /* a pipeline's peer sent an extra answer or lost one */
} S;

static void must(int cond) {
    if (!cond) abort();
}

static uint32_t get_tag(const void *m) {
    return ((const msg_t *)m)->tag;
}
static void set_tag(void *m, uint32_t t) {
    ((msg_t *)m)->tag = t;
}
static void free_msg(void *m, void *ctx) {
    (void)ctx;
    if (!m) return;
    S.live--;
    free(m);
}
static msg_t *new_msg(uint32_t id) {
    msg_t *m = malloc(sizeof *m);
    must(m != NULL);
    m->tag = 0;
    m->id = id;
    S.live++;
    return m;
}

static void on_done(ct_op_t *op, int status, void *response) {
    rec_t *r = CT_CONTAINER_OF(op, rec_t, op);
    must(S.nested == 0);
    must(r->started);
    r->calls++;
    must(r->calls == 1);
    must((status == 0) == (response != NULL));
    /* Never another's answer; except that a pipeline cannot tell a stray or
     * repeated answer from the one due, nor notice one lost, after which its
     * matching is off. */
    must(status != 0 || ((msg_t *)response)->id == r->id || S.pipeline_off_step);
    free_msg(response, NULL);
}

static void on_peer(ct_transport_t *t, int status, void *m) {
    (void)t;
    if (status < 0) return;
    if (S.inbox_n == PEER_MAX) {
        free_msg(m, NULL);
        return;
    }
    S.inbox[S.inbox_n++] = m;
}

static void peer_send(msg_t *m) {
    if (S.peer_closed || ct_transport_send(&S.peer.transport, m) != 0) {
        free_msg(m, NULL); /* dropped: a pipeline's later answers are off by one */
        S.pipeline_off_step |= !S.multiplex;
    }
}

static void answer(unsigned k) {
    msg_t *m;
    if (S.inbox_n == 0) return;
    k = S.multiplex ? k % (unsigned)S.inbox_n : 0; /* a pipeline peer answers in order */
    m = S.inbox[k];
    memmove(&S.inbox[k], &S.inbox[k + 1], (size_t)(S.inbox_n - (int)k - 1) * sizeof *S.inbox);
    S.inbox_n--;
    S.last_tag = m->tag;
    S.last_id = m->id;
    peer_send(m);
}

static void on_client_closed(ct_service_t *svc) {
    (void)svc;
    S.client_closed = 1;
}

static void turns(int n) {
    while (n-- > 0)
        uv_run(&S.uv, UV_RUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ct_client_config_t cfg = {0};
    size_t i;
    uint32_t next_id = 1;
    if (size < 2) return 0;
    memset(&S, 0, sizeof S);
    S.multiplex = data[0] & 1;
    cfg.max_in_flight = 1 + (data[0] >> 1) % 8;
    cfg.free_msg = free_msg;
    must(uv_loop_init(&S.uv) == 0);
    must(ct_loop_init(&S.ct, &S.uv) == 0);
    must(ct_channel_pair_init(&S.ct, &S.client_end, &S.peer, 1 + data[1] % 4, free_msg, NULL) == 0);
    if (S.multiplex) {
        static ct_tag_store_vtable_t no_unassign;
        must(ct_slab_tags_init(&S.tags, cfg.max_in_flight, get_tag, set_tag) == 0);
        if (data[1] & 0x10) { /* a user's store that cannot give a tag back */
            no_unassign = *S.tags.store.vtable;
            no_unassign.unassign = NULL;
            S.tags.store.vtable = &no_unassign;
        }
        must(ct_multiplex_client_init(&S.client, &S.ct, &S.client_end.transport, &S.tags.store,
                                      &cfg) == 0);
    } else {
        must(ct_pipeline_client_init(&S.client, &S.ct, &S.client_end.transport, &cfg) == 0);
    }
    must(ct_transport_recv_start(&S.peer.transport, on_peer) == 0);
    for (i = 0; i < OPS; i++)
        ct_op_init(&S.recs[i].op, on_done);

    for (i = 2; i < size; i++) {
        unsigned byte = data[i], arg = byte >> 4;
        rec_t *r = &S.recs[arg % OPS];
        switch (byte & 15) {
        case 0:
        case 1: /* call */
            if (!ct_op_is_pending(&r->op) && !S.client_closing &&
                r->calls == (r->started ? 1 : 0)) {
                msg_t *m = new_msg(next_id++);
                int rc;
                r->id = m->id;
                if (r->started) r->calls = 0; /* a completed op may be reused */
                S.nested++;
                rc = ct_service_call(&S.client.service, m, &r->op);
                S.nested--;
                if (rc < 0) {
                    must(!ct_op_is_pending(&r->op));
                    free_msg(m, NULL);
                    if (r->started) r->calls = 1;
                } else {
                    r->started = 1;
                }
            }
            break;
        case 2: /* cancel */
            ct_op_cancel(&r->op);
            break;
        case 3:
        case 4:
        case 5: /* the peer answers */
            answer(arg);
            break;
        case 6: { /* a stray answer */
            msg_t *m = new_msg(0);
            S.pipeline_off_step |= !S.multiplex;
            m->tag = arg * 0x01010101u;
            peer_send(m);
            break;
        }
        case 7: { /* the last answer, again (it stands in for the first if
                   * that was dropped at a full channel) */
            msg_t *m = new_msg(S.last_id);
            S.pipeline_off_step |= !S.multiplex;
            m->tag = S.last_tag;
            peer_send(m);
            break;
        }
        case 8:
        case 9:
        case 10: /* loop turns */
            turns(1 + (int)(arg % 3));
            break;
        case 11: /* the receive side breaks */
            if (!S.client_closing) ct_channel_fail_recv(&S.client_end, UV_ECONNRESET);
            break;
        case 12: /* the send side breaks, or refuses one message */
            if (S.client_closing) break;
            if (arg < 12)
                must(ct_channel_refuse_next(&S.client_end,
                                            arg & 1 ? CT_EINVAL : CT_EFRAMETOOLARGE) == 0);
            else
                ct_channel_fail_send(&S.client_end, UV_EPIPE);
            break;
        case 13: /* the peer goes away */
            if (!S.peer_closed) {
                S.peer_closed = 1;
                ct_transport_close(&S.peer.transport, NULL);
            }
            break;
        case 14: /* graceful shutdown */
            if (!S.client_closing) ct_service_shutdown(&S.client.service, NULL);
            break;
        case 15: /* readiness, reservation, release */
            if (!S.client_closing) {
                int rr = ct_service_poll_ready(&S.client.service, NULL);
                must(rr == CT_READY || rr == CT_PENDING || rr < 0);
                if (rr == CT_READY && (arg & 1)) ct_service_release(&S.client.service);
            }
            break;
        }
    }

    /* The end: close everything; every started op must have completed once. */
    S.client_closing = 1;
    must(ct_service_close(&S.client.service, on_client_closed) == 0);
    if (!S.peer_closed) ct_transport_close(&S.peer.transport, NULL);
    S.peer_closed = 1;
    while (!S.client_closed)
        uv_run(&S.uv, UV_RUN_NOWAIT);
    for (i = 0; i < (size_t)S.inbox_n; i++)
        free_msg(S.inbox[i], NULL);
    for (i = 0; i < OPS; i++)
        must(!S.recs[i].started || S.recs[i].calls == 1);
    must(ct_loop_close(&S.ct, NULL) == 0);
    uv_run(&S.uv, UV_RUN_DEFAULT);
    must(uv_loop_close(&S.uv) == 0);
    if (S.multiplex) ct_slab_tags_free(&S.tags);
    must(S.live == 0);
    return 0;
}
