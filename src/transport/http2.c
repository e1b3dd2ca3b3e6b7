/* HTTP/2 over a byte transport, on nghttp2: nghttp2 keeps the session (the
 * frames, HPACK, flow control, stream states); http2_recv.c turns each
 * stream that arrives into one message written as HTTP/1.1, http2_send.c
 * each message sent into a stream, and this file is the transport around
 * them.
 *
 * Bytes read go to nghttp2_session_mem_recv(), whose callbacks assemble the
 * streams' messages; the messages finished by one read wait in a ring and
 * are delivered after it returns, never from inside nghttp2. What nghttp2
 * has to send (answers to SETTINGS and PING, window updates, the messages)
 * leaves through one pump: at once after a read, once per loop turn after
 * sends. */
#include "http2_stream.h"
#include "ctower/error.h"
#include "ctower/tag_store.h"
#include "../core/list.h"
#include "http2_mem.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers ------------------------------------------------------------ */

/* Room for n more bytes in *b, moving it to a bigger buffer if need be. */
int ct_http2_reserve(ct_http2_t *h2, ct_buf_t **b, size_t n) {
    ct_buf_t *old = *b, *grown;
    size_t cap = old ? old->len + n : n;
    if (old && old->cap - old->len >= n) return 0;
    if (old && cap < 2 * old->cap) cap = 2 * old->cap;
    grown = ct_buf_pool_get(h2->cfg.pool, cap);
    if (!grown) return UV_ENOMEM;
    if (old) {
        memcpy(grown->base, old->base, old->len);
        grown->len = old->len;
        ct_buf_pool_put(h2->cfg.pool, old);
    }
    *b = grown;
    return 0;
}

int ct_http2_append(ct_http2_t *h2, ct_buf_t **b, const void *p, size_t n) {
    int r = ct_http2_reserve(h2, b, n);
    if (r != 0) return r;
    if (n) memcpy((*b)->base + (*b)->len, p, n);
    (*b)->len += n;
    return 0;
}

void ct_http2_put(ct_http2_t *h2, ct_buf_t **b) {
    if (*b) ct_buf_pool_put(h2->cfg.pool, *b);
    *b = NULL;
}

/* ---- streams ------------------------------------------------------------ */

ct_http2_stream_t *ct_http2_stream_new(ct_http2_t *h2) {
    ct_http2_stream_t *st = h2->free_streams;
    if (st)
        h2->free_streams = st->next_free;
    else if (!(st = malloc(sizeof *st)))
        return NULL;
    memset(st, 0, sizeof *st);
    ct_list_push_back(&h2->streams, &st->link);
    return st;
}

void ct_http2_stream_release(ct_http2_t *h2, ct_http2_stream_t *st) {
    ct_http2_put(h2, &st->head);
    ct_http2_put(h2, &st->body);
    ct_http2_put(h2, &st->trailers);
    if (st->sent) h2->sending--;
    ct_http2_put(h2, &st->sent);
    ct_http2_put(h2, &st->trailers_out);
    ct_list_remove(&st->link);
    st->next_free = h2->free_streams;
    h2->free_streams = st;
}

/* ---- messages for the reader ---------------------------------------------- */

int ct_http2_queue_message(ct_http2_t *h2, ct_buf_t *msg) {
    if (h2->ready_count == h2->ready_cap) {
        size_t cap = h2->ready_cap ? 2 * h2->ready_cap : 16, i;
        ct_buf_t **grown = malloc(cap * sizeof *grown);
        if (!grown) return UV_ENOMEM;
        for (i = 0; i < h2->ready_count; i++)
            grown[i] = h2->ready[(h2->ready_head + i) % h2->ready_cap];
        free(h2->ready);
        h2->ready = grown;
        h2->ready_cap = cap;
        h2->ready_head = 0;
    }
    h2->ready[(h2->ready_head + h2->ready_count) % h2->ready_cap] = msg;
    h2->ready_count++;
    return 0;
}

/* Delivers what waits, while the reader wants it, then the end if known. */
static void deliver_ready(ct_http2_t *h2) {
    while (h2->reading && h2->ready_count > 0) {
        ct_buf_t *msg = h2->ready[h2->ready_head];
        h2->ready_head = (h2->ready_head + 1) % h2->ready_cap;
        h2->ready_count--;
        if (h2->cfg.server && (int32_t)ct_buf_get_tag(msg) > h2->last_delivered)
            h2->last_delivered = (int32_t)ct_buf_get_tag(msg);
        ct_transport_deliver(&h2->transport, 0, msg);
        if (ct_transport_is_closing(&h2->transport)) return;
    }
    if (h2->reading && h2->end_status && !h2->end_delivered) {
        h2->end_delivered = 1;
        ct_transport_deliver(&h2->transport, h2->end_status, NULL);
    }
}

static void ended(ct_http2_t *h2, int status) {
    if (h2->end_status) return;
    h2->end_status = status;
    if (h2->bytes_reading) ct_transport_recv_stop(h2->bytes);
}

/* A client's stream that ends without its response gets one of ours: 502
 * with the reason, so that the request's caller hears of it. */
int ct_http2_stand_in(ct_http2_t *h2, ct_http2_stream_t *st, const char *why) {
    char text[160];
    ct_buf_t *msg = NULL;
    int n = snprintf(text, sizeof text,
                     "HTTP/1.1 502 Bad Gateway\r\nx-ctower-error: %s\r\n"
                     "content-length: 0\r\n\r\n",
                     why);
    uint32_t be = htobe32(st->tag);
    st->answered = 1;
    if (ct_http2_append(h2, &msg, &be, 4) != 0 || ct_http2_append(h2, &msg, text, (size_t)n) != 0) {
        ct_http2_put(h2, &msg);
        return UV_ENOMEM;
    }
    return ct_http2_queue_message(h2, msg);
}

/* ---- the pump: what nghttp2 has to send goes below -------------------------- */

void ct_http2_schedule_pump(ct_http2_t *h2) {
    ct_task_post(h2->transport.loop, &h2->pump_task);
}

static void send_failed(ct_http2_t *h2, int status) {
    if (!h2->send_error) h2->send_error = status;
}

static void check_shutdown(ct_http2_t *h2);

/* Sends a chunk below. One the transport has no room for waits in
 * h2->stalled until bytes_ready pumps again. Returns 0, or -1 to stop. */
static int send_chunk(ct_http2_t *h2, ct_buf_t *chunk) {
    int r = ct_transport_send(h2->bytes, chunk);
    if (r == 0) return 0;
    if (r == UV_EAGAIN) {
        int ready = ct_transport_send_ready(h2->bytes, &h2->bytes_ready);
        if (ready == CT_PENDING) {
            h2->stalled = chunk;
            return -1;
        }
        r = ready < 0 ? ready : UV_EPIPE; /* no room, yet not waiting for any */
    }
    ct_buf_pool_put(h2->cfg.bytes_pool, chunk);
    send_failed(h2, r);
    return -1;
}

/* Copies a piece of nghttp2's output into h2->partial, a buffer of the
 * pool's size (or of the piece's, if larger). A full one goes below first.
 * Returns 0, or -1 to stop (the piece is kept all the same). */
static int take_piece(ct_http2_t *h2, const uint8_t *data, size_t n) {
    ct_buf_pool_t *pool = h2->cfg.bytes_pool;
    ct_buf_t *full = NULL;
    if (h2->partial && h2->partial->cap - h2->partial->len < n) {
        full = h2->partial;
        h2->partial = NULL;
    }
    if (!h2->partial) {
        h2->partial = ct_buf_pool_get(pool, n > pool->buf_cap ? n : pool->buf_cap);
        if (!h2->partial) {
            if (full) ct_buf_pool_put(pool, full);
            send_failed(h2, UV_ENOMEM); /* nghttp2's output is lost: so is the send side */
            return -1;
        }
    }
    memcpy(h2->partial->base + h2->partial->len, data, n);
    h2->partial->len += n;
    return full ? send_chunk(h2, full) : 0;
}

/* Sends what nghttp2 has to send, in chunks of the pool's buffers, while
 * the transport below has room. */
static void pump(ct_http2_t *h2) {
    ct_task_cancel(&h2->pump_task);
    if (h2->stalled) {
        ct_buf_t *chunk = h2->stalled;
        h2->stalled = NULL;
        if (send_chunk(h2, chunk) != 0) return;
    }
    while (!h2->send_error) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2->session, &data);
        if (n < 0) {
            send_failed(h2, n == NGHTTP2_ERR_NOMEM ? UV_ENOMEM : CT_EMALFORMED);
            break;
        }
        if (n == 0) {
            ct_buf_t *last = h2->partial;
            h2->partial = NULL;
            if (last && send_chunk(h2, last) != 0) return;
            break;
        }
        if (take_piece(h2, data, (size_t)n) != 0) return;
    }
    check_shutdown(h2);
}

static void check_end(ct_http2_t *h2);

static void on_pump_task(ct_task_t *task) {
    ct_http2_t *h2 = CT_CONTAINER_OF(task, ct_http2_t, pump_task);
    pump(h2);
    check_end(h2);
    deliver_ready(h2); /* stand-ins for requests nghttp2 could not send */
}

/* ---- the transport below ---------------------------------------------------- */

/* The peer reads nothing (the transport below has no room) while nghttp2
 * holds a queue of frames for it: reading more would only grow that queue. */
static int output_blocked(ct_http2_t *h2) {
    return h2->stalled &&
           nghttp2_session_get_outbound_queue_size(h2->session) > CT_HTTP2_MAX_QUEUED_FRAMES;
}

static void hold_input(ct_http2_t *h2) {
    h2->held = 1;
    if (h2->bytes_reading) ct_transport_recv_stop(h2->bytes);
    h2->bytes_reading = 0;
}

static void drop_input(ct_http2_t *h2) {
    if (h2->input) ct_buf_pool_put(h2->cfg.bytes_pool, h2->input);
    h2->input = NULL;
}

/* The flood budget is spent: GOAWAY ENHANCE_YOUR_CALM, and the end. */
static void flood_ends(ct_http2_t *h2) {
    if (h2->cfg.stats) ct_counter_add(&h2->cfg.stats->floods, 1);
    nghttp2_session_terminate_session(h2->session, NGHTTP2_ENHANCE_YOUR_CALM);
    h2->broken = CT_EFLOOD;
    drop_input(h2);
}

static void protocol_broken(ct_http2_t *h2, ssize_t r) {
    /* a GOAWAY tells the peer why, if the send side still works */
    nghttp2_session_terminate_session(h2->session, NGHTTP2_PROTOCOL_ERROR);
    h2->broken =
        r == NGHTTP2_ERR_CALLBACK_FAILURE || r == NGHTTP2_ERR_NOMEM ? UV_ENOMEM : CT_EMALFORMED;
    drop_input(h2);
}

/* Gives nghttp2 the input in slices, answering after each, until it is all
 * taken or the output is blocked: then the transport below stops, and what
 * is left waits, until the peer reads (on_bytes_ready). */
enum { FEED_SLICE = 16u << 10 };

static void on_bytes(ct_transport_t *t, int status, void *msg);

static void feed(ct_http2_t *h2) {
    while (h2->input && !h2->end_status && !h2->broken) {
        ct_buf_t *in = h2->input;
        size_t n = in->len - h2->input_off < FEED_SLICE ? in->len - h2->input_off : FEED_SLICE;
        ssize_t r =
            nghttp2_session_mem_recv(h2->session, (const uint8_t *)in->base + h2->input_off, n);
        if (r < 0) {
            protocol_broken(h2, r);
        } else if (h2->flooded) {
            flood_ends(h2);
        } else if ((h2->input_off += n) == in->len) {
            drop_input(h2);
        }
        pump(h2); /* answers go out with this read's write, not a turn later */
        if (output_blocked(h2)) {
            hold_input(h2);
            return;
        }
    }
}

/* Room below: the output goes on, and held input with it. */
static void on_bytes_ready(ct_waker_t *waker) {
    ct_http2_t *h2 = CT_CONTAINER_OF(waker, ct_http2_t, bytes_ready);
    pump(h2);
    if (!h2->held || output_blocked(h2)) return;
    h2->held = 0;
    feed(h2);
    if (!h2->held && !h2->end_status && !h2->goodbye &&
        ct_transport_recv_start(h2->bytes, on_bytes) == 0)
        h2->bytes_reading = 1;
    check_end(h2);
    deliver_ready(h2);
}

static void on_bytes(ct_transport_t *t, int status, void *msg) {
    ct_http2_t *h2 = t->owner;
    if (status != 0) {
        ended(h2, status);
        deliver_ready(h2);
        return;
    }
    if (h2->end_status || h2->broken) { /* after a protocol error nothing more is read */
        ct_buf_pool_put(h2->cfg.bytes_pool, msg);
        return;
    }
    h2->input = msg;
    h2->input_off = 0;
    feed(h2);
    check_end(h2);
    deliver_ready(h2);
}

/* The GOAWAY that says why the peer is dropped is out: now the end. */
static void on_goodbye_sent(ct_transport_t *t, int status) {
    ct_http2_t *h2 = t->owner;
    (void)status;
    if (ct_transport_is_closing(&h2->transport)) return;
    h2->goodbye = 2;
    ended(h2, h2->broken);
    deliver_ready(h2);
}

/* A connection the peer broke (the protocol, or a flood) ends once the
 * GOAWAY saying so is written: the transport below shuts down first,
 * reading nothing more. A peer that reads nothing (the output is stalled)
 * gets no GOAWAY: it ends at once. Returns 1 while the GOAWAY is under way. */
static int saying_goodbye(ct_http2_t *h2) {
    if (h2->goodbye == 0 && !h2->send_error && !h2->stalled && !h2->shut_pending) {
        h2->goodbye = 1;
        if (h2->bytes_reading) ct_transport_recv_stop(h2->bytes);
        h2->bytes_reading = 0;
        if (ct_transport_shutdown(h2->bytes, on_goodbye_sent) == 0) return 1;
        h2->goodbye = 2;
    }
    return h2->goodbye == 1;
}

/* The receive side ends when the connection is broken, or when both sides
 * said goodbye (GOAWAY) and nothing is left to do. */
static void check_end(ct_http2_t *h2) {
    if (h2->broken) {
        if (!saying_goodbye(h2)) ended(h2, h2->broken);
    } else if (!nghttp2_session_want_read(h2->session) && !nghttp2_session_want_write(h2->session))
        ended(h2, UV_EOF);
}

/* ---- the transport's vtable --------------------------------------------------- */

static int h2_send_ready(ct_transport_t *t, ct_waker_t *waker) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    if (h2->send_error) return h2->send_error;
    if (h2->shut_pending) return UV_EPIPE;
    return ct_transport_send_ready(h2->bytes, waker);
}

static int h2_send(ct_transport_t *t, void *msg) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    int r;
    if (h2->send_error) return h2->send_error;
    if (h2->shut_pending) return UV_EPIPE;
    r = h2->cfg.server ? ct_http2_send_response(h2, msg) : ct_http2_send_request(h2, msg);
    if (r == 0) ct_http2_schedule_pump(h2);
    return r;
}

static void on_deliver_task(ct_task_t *task) {
    deliver_ready(CT_CONTAINER_OF(task, ct_http2_t, deliver_task));
}

/* The bytes below are read from the first start on, whether the reader
 * takes messages or not: a session that stopped reading would hear no more
 * window updates, and a response waiting for one would never finish. What
 * the reader does not take waits in the ring; the peer cannot open more
 * streams than max_streams (nghttp2 refuses the others), which bounds it. */
static int h2_recv_start(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    int r;
    h2->reading = 1;
    if (!h2->bytes_reading && !h2->end_status && !h2->held && !h2->goodbye) {
        if ((r = ct_transport_recv_start(h2->bytes, on_bytes)) != 0) return r;
        h2->bytes_reading = 1;
    }
    if (h2->ready_count > 0 || (h2->end_status && !h2->end_delivered))
        ct_task_post(t->loop, &h2->deliver_task);
    return 0;
}

static int h2_recv_stop(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    h2->reading = 0;
    ct_task_cancel(&h2->deliver_task);
    return 0;
}

static void on_bytes_shut(ct_transport_t *t, int status) {
    ct_http2_t *h2 = t->owner;
    ct_transport_shutdown_done(&h2->transport, status);
}

/* Once nghttp2 has nothing more to send, the transport below shuts down. */
static void check_shutdown(ct_http2_t *h2) {
    int r;
    if (h2->shut_pending != 1) return;
    /* what was submitted goes out whole first, a body waiting for the
     * peer's window too (which want_write does not count) */
    if (!h2->send_error &&
        (h2->sending > 0 || h2->stalled || h2->partial || nghttp2_session_want_write(h2->session)))
        return;
    h2->shut_pending = 2;
    if (h2->send_error)
        ct_transport_shutdown_done(&h2->transport, h2->send_error);
    else if ((r = ct_transport_shutdown(h2->bytes, on_bytes_shut)) != 0)
        ct_transport_shutdown_done(&h2->transport, r);
}

/* GOAWAY names the last stream that will be answered: on a server, the
 * last request the reader took (the client hears the later ones as
 * refused, safe to send again); a client takes no streams. */
static int h2_shutdown(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    h2->shut_pending = 1;
    nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE, h2->last_delivered, NGHTTP2_NO_ERROR,
                          NULL, 0);
    ct_http2_schedule_pump(h2);
    return 0;
}

static void on_bytes_closed(ct_transport_t *t) {
    ct_http2_t *h2 = t->owner;
    ct_transport_closed(&h2->transport);
}

static void h2_close(ct_transport_t *t) {
    ct_http2_t *h2 = (ct_http2_t *)t;
    ct_http2_stream_t *st;
    ct_task_cancel(&h2->pump_task);
    ct_task_cancel(&h2->deliver_task);
    ct_waker_cancel(&h2->bytes_ready);
    if (h2->stalled) ct_buf_pool_put(h2->cfg.bytes_pool, h2->stalled);
    if (h2->partial) ct_buf_pool_put(h2->cfg.bytes_pool, h2->partial);
    h2->stalled = h2->partial = NULL;
    drop_input(h2);
    nghttp2_session_del(h2->session); /* its callbacks see the closing flag */
    h2->session = NULL;
    ct_http2_mem_destroy(&h2->mem);
    while (!ct_list_empty(&h2->streams))
        ct_http2_stream_release(h2, CT_CONTAINER_OF(h2->streams.next, ct_http2_stream_t, link));
    while ((st = h2->free_streams) != NULL) {
        h2->free_streams = st->next_free;
        free(st);
    }
    while (h2->ready_count > 0) {
        ct_buf_pool_put(h2->cfg.pool, h2->ready[h2->ready_head]);
        h2->ready_head = (h2->ready_head + 1) % h2->ready_cap;
        h2->ready_count--;
    }
    free(h2->ready);
    h2->ready = NULL;
    ct_transport_close(h2->bytes, on_bytes_closed);
}

static const ct_transport_vtable_t http2_vtable = {
    h2_send_ready, h2_send, h2_recv_start, h2_recv_stop, h2_shutdown, h2_close,
};

/* ---- setup ---------------------------------------------------------------- */

static int new_session(ct_http2_t *h2) {
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry settings[2];
    nghttp2_mem mem;
    int r;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return UV_ENOMEM;
    ct_http2_recv_callbacks(cbs);
    mem = ct_http2_mem_allocator(&h2->mem);
    r = h2->cfg.server ? nghttp2_session_server_new3(&h2->session, cbs, h2, NULL, &mem)
                       : nghttp2_session_client_new3(&h2->session, cbs, h2, NULL, &mem);
    nghttp2_session_callbacks_del(cbs);
    if (r != 0) return UV_ENOMEM;
    if (h2->cfg.server) {
        settings[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
        settings[0].value = h2->cfg.max_streams;
    } else { /* a client takes no pushed responses */
        settings[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
        settings[0].value = 0;
    }
    if (nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, settings, 1) != 0) {
        nghttp2_session_del(h2->session);
        ct_http2_mem_destroy(&h2->mem);
        return UV_ENOMEM;
    }
    return 0;
}

int ct_http2_init(ct_http2_t *h2, ct_loop_t *loop, ct_transport_t *bytes,
                  const ct_http2_config_t *cfg) {
    int r;
    if (!h2 || !loop || !bytes || !cfg || !cfg->pool || bytes->owner) return CT_EINVAL;
    memset(h2, 0, sizeof *h2);
    ct_transport_init(&h2->transport, loop, &http2_vtable);
    h2->cfg = *cfg;
    if (!h2->cfg.max_message) h2->cfg.max_message = 1u << 20;
    if (!h2->cfg.bytes_pool) h2->cfg.bytes_pool = h2->cfg.pool;
    if (!h2->cfg.max_streams) h2->cfg.max_streams = 100;
    if ((r = new_session(h2)) != 0) return r;
    /* a server holds no more requests than a client may open */
    if (h2->cfg.server) h2->transport.max_in_flight = h2->cfg.max_streams;
    h2->bytes = bytes;
    bytes->owner = h2;
    ct_list_init(&h2->streams);
    ct_waker_init(&h2->bytes_ready, loop, on_bytes_ready);
    ct_task_init(&h2->pump_task, on_pump_task);
    ct_task_init(&h2->deliver_task, on_deliver_task);
    h2->flood_budget = CT_HTTP2_FLOOD_BURST;
    h2->flood_at_ms = uv_now(loop->uv);
    ct_http2_schedule_pump(h2); /* the preface and settings */
    return 0;
}

int ct_http2_add_stats(const ct_http2_stats_t *st, ct_stats_t *s, const char *prefix,
                       const char *labels) {
    static const struct {
        const char *suffix, *help;
        size_t offset;
    } counters[] = {
        {"streams_total", "Streams closed.", offsetof(ct_http2_stats_t, streams)},
        {"resets_received_total", "RST_STREAM frames received.",
         offsetof(ct_http2_stats_t, resets_received)},
        {"resets_sent_total", "RST_STREAM frames sent.", offsetof(ct_http2_stats_t, resets_sent)},
        {"goaways_received_total", "GOAWAY frames received.",
         offsetof(ct_http2_stats_t, goaways_received)},
        {"goaways_sent_total", "GOAWAY frames sent.", offsetof(ct_http2_stats_t, goaways_sent)},
        {"floods_total", "Sessions ended for a flood of frames that do no work.",
         offsetof(ct_http2_stats_t, floods)},
    };
    size_t i;
    int r;
    for (i = 0; i < sizeof counters / sizeof *counters; i++)
        if ((r = ct_stats_add_named(s, CT_STATS_COUNTER, prefix, counters[i].suffix, labels,
                                    counters[i].help, 1, (const char *)st + counters[i].offset)))
            return r;
    return 0;
}
