/* The libuv stream transport: reads decoded in batches from the loop's shared
 * read buffer, answers encoded into its shared write buffer and written at
 * the end of the read; buffers of the stream's own (a double output buffer)
 * only for what is left over, and for sends from elsewhere, written once per
 * loop turn. */
#include "ctower/stream.h"
#include "ctower/error.h"
#include "../codec/prefix_be32.h"
#include "../core/buf_take.h"
#include "../core/grow.h"
#include "tls_session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void flush(ct_task_t *task);
static void decode_buffered(ct_stream_t *s);
static void flush_now(ct_stream_t *s);
static void tls_flush(ct_stream_t *s);
static void tls_send(ct_stream_t *s);
static void stop_polling(ct_stream_t *s);
static void tls_landing(ct_stream_t *s, uv_buf_t *out);
static void tls_failed(ct_stream_t *s, int status);
static void shutdown_if_flushed(ct_stream_t *s);
static void shut_after_last(ct_stream_t *s);

static ct_codec_t *codec(ct_stream_t *s) {
    return &s->codec.base;
}

static size_t buffered_out(const ct_stream_t *s) {
    return s->wlen + s->wbusy_len;
}

/* The output held now is what cfg.budget counts of this stream. */
static inline void count_output(ct_stream_t *s) {
    size_t now;
    if (!s->cfg.budget) return;
    now = buffered_out(s);
    s->cfg.budget->used = s->cfg.budget->used - s->budgeted + now;
    s->budgeted = now;
}

/* No room for more output: past the high watermark, or holding some while
 * the loop's budget is spent. send_ready and send agree on it. */
static inline int no_room(const ct_stream_t *s) {
    size_t out = buffered_out(s);
    return out >= s->cfg.high_water || (out > 0 && ct_budget_spent(s->cfg.budget));
}

static void end_stream(ct_stream_t *s, int status) {
    if (s->ended) return;
    s->ended = 1;
    s->reading = 0;
    if (s->uv_reading) uv_read_stop(&s->h.stream);
    s->uv_reading = 0;
    ct_transport_deliver(&s->transport, status, NULL);
}

static void write_failed(ct_stream_t *s, int status) {
    if (!s->send_error) s->send_error = status;
    ct_waitq_wake_all(&s->send_waiters);
    /* The socket is gone: the reader must hear of it even if nothing more is
     * sent, and a shutdown waiting for the output to drain, that it will
     * not. */
    if (s->reading) end_stream(s, status);
    shutdown_if_flushed(s);
}

/* ---- receive ------------------------------------------------------------ */

/* With nothing of an earlier read left, the read goes into the loop's shared
 * buffer: most reads end on a frame boundary, and then a connection needs no
 * read buffer of its own (10,000 idle ones hold none). */
static int borrow_shared(ct_stream_t *s) {
    size_t len = 0;
    uint8_t *shared = ct_loop_lend_buffer(s->transport.loop, CT_LOOP_READ_BUFFER, &len);
    if (!shared) return 0;
    s->rown = s->rbuf;
    s->rown_cap = s->rcap;
    s->rbuf = shared;
    s->rcap = len;
    s->rstart = 0;
    s->rshared = 1;
    return 1;
}

/* At the end of the read callback: what the reader has not taken (a frame
 * still arriving, or frames left while it stopped) moves to our own buffer,
 * and the shared one goes back. Returns 0 or UV_ENOMEM. */
static int return_shared(ct_stream_t *s) {
    const uint8_t *left = s->rbuf + s->rstart;
    int r = 0;
    s->rbuf = s->rown;
    s->rcap = s->rown_cap;
    s->rstart = 0;
    s->rshared = 0;
    if (s->rlen > 0) {
        size_t need = s->rlen > s->cfg.read_buffer ? s->rlen : s->cfg.read_buffer;
        if (s->rcap < s->rlen && (r = ct_grow(&s->rbuf, &s->rcap, need)) != 0)
            s->rlen = 0;
        else
            memcpy(s->rbuf, left, s->rlen);
    }
    ct_loop_return_buffer(s->transport.loop, CT_LOOP_READ_BUFFER);
    return r;
}

/* Room after what our own read buffer holds: made by moving a frame still
 * arriving to the front, or by growing the buffer up to one whole frame.
 * Empty when the buffer is full of frames the reader has not taken, or
 * when no buffer could be had. */
static uv_buf_t read_room(ct_stream_t *s) {
    size_t max = codec(s)->max_payload, overhead = codec(s)->overhead;
    size_t want = max > SIZE_MAX - overhead ? SIZE_MAX : max + overhead; /* no wrap */
    /* TLS decrypts a record (16 KiB at most) at a time: more is not needed
     * until a frame is larger. */
    size_t first = s->tls && s->cfg.read_buffer > (16u << 10) ? 16u << 10 : s->cfg.read_buffer;
    if (s->rcap == 0 && ct_grow(&s->rbuf, &s->rcap, first) != 0) return uv_buf_init(NULL, 0);
    if (s->rstart > 0 && s->rstart + s->rlen == s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rstart, s->rlen);
        s->rstart = 0;
    }
    if (s->rstart + s->rlen == s->rcap && s->rcap < want)
        ct_grow(&s->rbuf, &s->rcap, s->rcap + 1 < want ? s->rcap + 1 : want);
    return uv_buf_init((char *)s->rbuf + s->rstart + s->rlen,
                       (unsigned)(s->rcap - s->rstart - s->rlen));
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *out) {
    ct_stream_t *s = handle->data;
    (void)suggested;
    if (s->tls) {
        tls_landing(s, out);
        return;
    }
    if (s->rlen == 0 && borrow_shared(s)) {
        out->base = (char *)s->rbuf;
        out->len = s->rcap;
        return;
    }
    *out = read_room(s); /* empty: on_read hears UV_ENOBUFS */
}

/* Takes the socket out of the poll set: data arrived while the reader has
 * stopped, so the kernel's buffer must now apply the back-pressure. */
static void stop_polling(ct_stream_t *s) {
    if (s->uv_reading) uv_read_stop(&s->h.stream);
    s->uv_reading = 0;
}

static void take_read(ct_stream_t *s, ssize_t nread);

static void borrow_shared_out(ct_stream_t *s);
static void give_back_out(ct_stream_t *s);

static void tls_on_read(ct_stream_t *s, ssize_t nread, const uint8_t *cipher);

static void count(ct_counter_t *c, ssize_t n) {
    if (n > 0) ct_counter_add(c, (uint64_t)n);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    ct_stream_t *s = stream->data;
    ct_loop_clock_stale(s->transport.loop); /* a batch begins */
    if (s->cfg.stats) count(&s->cfg.stats->bytes_read, nread);
    if (s->tls) {
        tls_on_read(s, nread, (const uint8_t *)buf->base);
        return;
    }
    if (nread > 0) borrow_shared_out(s);
    take_read(s, nread);
    if (s->rshared && return_shared(s) != 0) end_stream(s, UV_ENOMEM);
    give_back_out(s);
}

static void take_read(ct_stream_t *s, ssize_t nread) {
    if (nread > 0) {
        s->rlen += (size_t)nread;
        s->last_read_ms = uv_now(s->h.stream.loop);
        if (s->reading) {
            decode_buffered(s);
            flush_now(s);
        } else {
            stop_polling(s);
        }
    } else if (nread == UV_ENOBUFS && s->rcap == 0) {
        end_stream(s, UV_ENOMEM); /* no buffer could be had */
    } else if (nread == UV_ENOBUFS) {
        stop_polling(s); /* the buffer is full of what the reader has not taken */
    } else if (nread == UV_EOF) {
        end_stream(s, s->rlen > 0 ? CT_ETRUNCATED : UV_EOF);
    } else if (nread < 0) {
        end_stream(s, (int)nread);
    }
}

/* Takes the frame at the front of the read buffer as a message: payload_len
 * bytes at payload_offset, frame_len bytes consumed. Returns 0 to go on, or
 * -1 to stop: no memory (the stream has then ended), or the reader closed
 * the transport when it got the message. */
static inline int deliver_frame(ct_stream_t *s, size_t payload_offset, size_t payload_len,
                                size_t frame_len) {
    ct_buf_t *msg = ct_buf_pool_take(s->cfg.pool, payload_len);
    if (!msg) {
        end_stream(s, UV_ENOMEM);
        return -1;
    }
    /* rlen and rstart are updated apart: as a pair the compiler loads them
     * as one 16-byte vector, which cannot be forwarded from the two stores of
     * the previous frame and stalled every frame. */
    s->rlen -= frame_len;
    memcpy(msg->base, s->rbuf + s->rstart + payload_offset, payload_len);
    msg->len = payload_len;
    s->rstart += frame_len;
    ct_transport_deliver(&s->transport, 0, msg);
    return ct_transport_is_closing(&s->transport) ? -1 : 0;
}

/* The codec's error ends the stream; it stays the codec's sticky error. */
static void framing_failed(ct_stream_t *s, int error) {
    codec(s)->error = error;
    end_stream(s, error);
}

/* The common framing (codec->prefix_be32) decoded inline, with the same
 * results as ct_codec_decode() but without its per-frame bookkeeping: this
 * loop runs for every message received. Returns 0, or -1 if it must stop
 * (the stream ended or is closing). */
static int decode_be32(ct_stream_t *s) {
    const size_t max_payload = codec(s)->max_payload;
    while (s->reading && s->rlen >= 4) { /* fewer is a frame still arriving */
        size_t n = 0;
        int r = ct_prefix_be32_frame(s->rbuf + s->rstart, s->rlen, max_payload, &n);
        if (r == CT_CODEC_NEED_MORE) break;
        if (r < 0) {
            framing_failed(s, r);
            return -1;
        }
        if (deliver_frame(s, 4, n, 4 + n) != 0) return -1;
    }
    return 0;
}

static __attribute__((noinline)) int grow_out(ct_stream_t *s, size_t need);

/* What a decode asked to be written (codec.h's reply: HTTP/1.1's 100
 * Continue), after what is already out. */
static __attribute__((noinline, cold)) void write_reply(ct_stream_t *s, ct_codec_t *c) {
    size_t len = c->reply_len;
    c->reply_len = 0;
    if (s->send_error || s->shut_pending) return;
    if (s->wlen + len > s->wcap && grow_out(s, s->wlen + len) != 0) return; /* (it waits) */
    memcpy(s->wbuf + s->wlen, c->reply, len);
    s->wlen += len;
    ct_loop_post_flush(s->transport.loop, &s->flush_task);
}

/* Any other codec, through its vtable. */
static int decode_generic(ct_stream_t *s) {
    while (s->reading && s->rlen > 0) {
        ct_frame_t f;
        int r = ct_codec_decode(codec(s), s->rbuf + s->rstart, s->rlen, &f);
        if (r == CT_CODEC_NEED_MORE) {
            if (codec(s)->reply_len) write_reply(s, codec(s));
            break;
        }
        if (r < 0) {
            end_stream(s, r);
            return -1;
        }
        if (deliver_frame(s, f.payload_offset, f.payload_len, f.frame_len) != 0) return -1;
    }
    return 0;
}

/* A frame still arriving, while the reader wants it, has been since the
 * read that brought its first byte (the listener's header and body
 * timeouts); frames taken end it. */
static void note_partial(ct_stream_t *s, size_t before) {
    if (s->rlen < before || s->rlen == 0 || !s->reading) s->partial_since_ms = 0;
    if (s->rlen > 0 && s->reading && !s->partial_since_ms)
        s->partial_since_ms = uv_now(s->h.stream.loop);
}

/* Delivers every whole frame buffered, while the reader wants them. */
static void decode_buffered(ct_stream_t *s) {
    ct_codec_t *c = codec(s);
    size_t before = s->rlen;
    int r;
    if (c->error) { /* sticky: a stream that went wrong stays wrong */
        end_stream(s, c->error);
        return;
    }
    r = c->prefix_be32 ? decode_be32(s) : decode_generic(s);
    if (r == 0 && s->rlen == 0) s->rstart = 0;
    note_partial(s, before);
}

static void tls_pump(ct_stream_t *s);

static void on_decode_task(ct_task_t *task) {
    ct_stream_t *s = CT_CONTAINER_OF(task, ct_stream_t, decode_task);
    if (s->tls) {
        tls_pump(s);
        if (ct_tls_session_keep(s->tls) != 0 && s->handle_open) tls_failed(s, UV_ENOMEM);
        return;
    }
    decode_buffered(s);
    flush_now(s);
}

static int st_recv_start(ct_transport_t *t) {
    ct_stream_t *s = (ct_stream_t *)t;
    int r;
    if (s->ended) return 0;
    s->reading = 1;
    if (!s->uv_reading) {
        if ((r = uv_read_start(&s->h.stream, on_alloc, on_read)) != 0) return r;
        s->uv_reading = 1;
    }
    /* Frames already buffered are delivered from a fresh stack. */
    if (s->rlen > 0 || (s->tls && ct_tls_session_has_input(s->tls)))
        ct_task_post(t->loop, &s->decode_task);
    return 0;
}

/* Stopping is lazy: the socket stays in the poll set until bytes actually
 * arrive while stopped (then on_read stops polling). A server that pauses at
 * its bound and resumes within the same turn costs no system call. */
static int st_recv_stop(ct_transport_t *t) {
    ct_stream_t *s = (ct_stream_t *)t;
    s->reading = 0;
    ct_task_cancel(&s->decode_task);
    return 0;
}

/* ---- send --------------------------------------------------------------- */

static int st_send_ready(ct_transport_t *t, ct_waker_t *waker) {
    ct_stream_t *s = (ct_stream_t *)t;
    if (s->send_error) return s->send_error;
    if (s->shut_pending) return UV_EPIPE;
    if (!no_room(s)) return CT_READY;
    if (waker) ct_waitq_add(&s->send_waiters, waker);
    return CT_PENDING;
}

/* Why st_send takes nothing now (the rare case, out of the hot path). */
static int send_refusal(const ct_stream_t *s) {
    if (s->send_error) return s->send_error;
    if (s->shut_pending) return UV_EPIPE;
    return UV_EAGAIN; /* same rule as send_ready */
}

/* During its read callback a stream with no output pending writes through
 * the loop's shared write buffer: what the frames just read make (a server's
 * answers, a client's next requests) is encoded there and written at the end
 * of the callback (flush_now). Only what the socket does not take, or what
 * outgrows the shared buffer, moves to a buffer of the stream's own. */
static void borrow_shared_out(ct_stream_t *s) {
    size_t len = 0;
    uint8_t *shared;
    if (s->wlen > 0 || s->writing || s->wshared) return;
    shared = ct_loop_lend_buffer(s->transport.loop, CT_LOOP_WRITE_BUFFER, &len);
    if (!shared) return;
    s->wown = s->wbuf;
    s->wown_cap = s->wcap;
    s->wbuf = shared;
    s->wcap = len;
    s->wshared = 1;
}

static void return_shared_out(ct_stream_t *s) {
    s->wbuf = s->wown;
    s->wcap = s->wown_cap;
    s->wshared = 0;
    ct_loop_return_buffer(s->transport.loop, CT_LOOP_WRITE_BUFFER);
}

/* Moves the output from byte `from` on into the stream's own buffer, with
 * room for need bytes, and gives the shared buffer back. Returns 0, or
 * UV_ENOMEM with nothing changed. */
static int unshare_out(ct_stream_t *s, size_t from, size_t need) {
    uint8_t *own = s->wown;
    size_t cap = s->wown_cap, keep = s->wlen - from;
    if (need < keep) need = keep;
    if (need > cap && ct_grow(&own, &cap, need) != 0) return UV_ENOMEM;
    memcpy(own, s->wbuf + from, keep);
    s->wown = own;
    s->wown_cap = cap;
    return_shared_out(s);
    s->wlen = keep;
    return 0;
}

/* At the end of the read callback: what is still to be written moves to
 * our own buffer (the flush task writes it), unless the stream is done. */
static void give_back_out(ct_stream_t *s) {
    int keep;
    if (!s->wshared) return;
    keep = s->wlen > 0 && s->handle_open && !s->send_error;
    if (keep && unshare_out(s, 0, 0) == 0) return;
    return_shared_out(s);
    s->wlen = 0;
    if (keep) write_failed(s, UV_ENOMEM); /* what was sent cannot be kept */
}

static __attribute__((noinline)) int grow_out(ct_stream_t *s, size_t need) {
    if (s->wshared) return unshare_out(s, 0, need);
    return ct_grow(&s->wbuf, &s->wcap, need);
}

/* The codec's rare results, out of st_send's path: a refusal (r < 0,
 * returned), or the connection's last message (CT_CODEC_LAST: sent like any
 * other, then the sending side closes; returns 0). */
static __attribute__((noinline, cold)) int encoded_rarely(ct_stream_t *s, int r) {
    if (r < 0) return r;
    shut_after_last(s);
    return 0;
}

static int st_send(ct_transport_t *t, void *msg) {
    ct_stream_t *s = (ct_stream_t *)t;
    ct_buf_t *buf = msg;
    size_t need = s->wlen + buf->len + codec(s)->overhead;
    size_t written = 0;
    int r;
    if ((s->send_error | s->shut_pending) != 0 || no_room(s)) return send_refusal(s);
    if (need > s->wcap && (r = grow_out(s, need)) != 0) return r;
    r = ct_codec_encode(codec(s), (const uint8_t *)buf->base, buf->len, s->wbuf + s->wlen,
                        &written);
    if (r != 0 && (r = encoded_rarely(s, r)) < 0) return r;
    s->wlen += written;
    count_output(s);
    ct_buf_pool_put(s->cfg.pool, buf);
    ct_loop_post_flush(t->loop, &s->flush_task);
    return 0;
}

/* The sending side is closed: the owner's shutdown is done, if it asked for
 * one; otherwise (the codec's last message) the result waits for it. */
static void shutdown_finished(ct_stream_t *s, int status) {
    if (s->shut_by_codec && !s->shut_asked) {
        s->shut_finished = 1;
        s->shut_status = status;
        return;
    }
    ct_transport_shutdown_done(&s->transport, status);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    shutdown_finished(req->data, status);
}

static void shutdown_if_flushed(ct_stream_t *s) {
    int r;
    if (s->shut_pending == 1 && s->send_error) { /* what was to go first cannot */
        s->shut_pending = 2;
        shutdown_finished(s, s->send_error);
        return;
    }
    if (s->shut_pending != 1 || s->writing || s->wlen > 0) return;
    if (s->tls && s->tls->secure && !s->tls->notified) {
        /* TLS's closing message goes before the socket's. */
        ct_tls_session_close_notify(s->tls);
        tls_send(s); /* comes back here once written */
        return;
    }
    s->shut_pending = 2;
    s->shutdown_req.data = s;
    r = uv_shutdown(&s->shutdown_req, &s->h.stream, on_shutdown);
    if (r < 0) shutdown_finished(s, r);
}

/* The codec framed the connection's last message: nothing more is sent, and
 * the sending side closes once it is out, as a shutdown the owner did not
 * ask for (reading goes on, until the peer closes). */
static void shut_after_last(ct_stream_t *s) {
    if (s->shut_pending) return;
    s->shut_by_codec = 1;
    s->shut_pending = 1;
}

static void after_write(ct_stream_t *s) {
    count_output(s);
    if (buffered_out(s) <= s->cfg.low_water) ct_waitq_wake_all(&s->send_waiters);
    shutdown_if_flushed(s);
}

static void on_write(uv_write_t *req, int status) {
    ct_stream_t *s = req->data;
    if (s->cfg.stats && status == 0)
        count(&s->cfg.stats->bytes_written, (ssize_t)(s->tls ? s->tls->sending_len : s->wbusy_len));
    s->writing = 0;
    s->wbusy_len = 0;
    if (status < 0) {
        if (status != UV_ECANCELED) write_failed(s, status);
        return;
    }
    /* Keep the pipe full: what accumulated meanwhile goes out now. */
    if (s->wlen > 0 || (s->tls && ct_tls_session_pending(s->tls) > 0)) flush(&s->flush_task);
    after_write(s);
}

/* One write for everything sent since the last one. */
static void flush(ct_task_t *task) {
    ct_stream_t *s = CT_CONTAINER_OF(task, ct_stream_t, flush_task);
    uv_buf_t b;
    int n, r;
    uint8_t *tmp;
    size_t tmp_cap;
    if (s->tls) {
        tls_flush(s);
        return;
    }
    if (s->writing || s->wlen == 0 || s->send_error || !s->handle_open) return;
    b = uv_buf_init((char *)s->wbuf, (unsigned)s->wlen);
    n = uv_try_write(&s->h.stream, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (s->cfg.stats) count(&s->cfg.stats->bytes_written, n);
    if (n < 0) {
        write_failed(s, n);
        return;
    }
    if ((size_t)n == s->wlen) {
        s->wlen = 0;
        after_write(s);
        return;
    }
    /* The socket took part of it: the rest is written from the busy buffer
     * while new messages accumulate in the other one. The shared buffer is
     * only lent for this callback: the rest moves to our own first. */
    if (s->wshared) {
        if (unshare_out(s, (size_t)n, 0) != 0) {
            write_failed(s, UV_ENOMEM);
            return;
        }
        n = 0;
    }
    tmp = s->wbusy;
    tmp_cap = s->wbusy_cap;
    s->wbusy = s->wbuf;
    s->wbusy_cap = s->wcap;
    s->wbusy_len = s->wlen - (size_t)n;
    s->wbuf = tmp;
    s->wcap = tmp_cap;
    s->wlen = 0;
    b = uv_buf_init((char *)s->wbusy + n, (unsigned)s->wbusy_len);
    s->write_req.data = s;
    r = uv_write(&s->write_req, &s->h.stream, &b, 1, on_write);
    if (r < 0) {
        s->wbusy_len = 0;
        write_failed(s, r);
        return;
    }
    s->writing = 1;
    count_output(s);
}

/* What the reader sent while taking a batch of frames (a server's answers,
 * a client's next requests) goes out at once, in one write, as a
 * hand-written server does, rather than after the reads of every other
 * connection ready in this loop turn: waiting for them delays each round
 * trip by all of their work, and leaves the peer idle meanwhile. Sends from
 * anywhere else still gather until the turn ends. */
static void flush_now(ct_stream_t *s) {
    if (!ct_task_is_queued(&s->flush_task)) return;
    ct_task_cancel(&s->flush_task);
    flush(&s->flush_task);
}

static int st_shutdown(ct_transport_t *t) {
    ct_stream_t *s = (ct_stream_t *)t;
    s->shut_asked = 1;
    if (s->shut_by_codec) { /* already under way, or done */
        if (s->shut_finished) ct_transport_shutdown_done(t, s->shut_status);
        return 0;
    }
    s->shut_pending = 1;
    flush(&s->flush_task);
    shutdown_if_flushed(s);
    return 0;
}

/* ---- TLS ---------------------------------------------------------------- */

/* A TLS stream reads ciphertext into the loop's read buffer (or a landing
 * buffer of its session's when that is lent) and decrypts into a read
 * buffer of its own (never the loop's: the plaintext
 * of one read may be needed after it); what it sends is encoded into its
 * own output buffer as a plain stream's is, and encrypted as a whole when
 * flushed, so a batch of messages is still one write. */

/* The handshake's outcome, to whoever waits for it (once). */
static void secure_done(ct_stream_t *s, int status) {
    void (*cb)(ct_stream_t *, int) = s->secure_cb;
    s->secure_cb = NULL;
    if (cb) cb(s, status);
}

/* A failure before the handshake succeeded. A server's reader hears it as
 * the end of the stream; a client's stream has no reader yet: its connector
 * hears it. */
static void tls_failed(ct_stream_t *s, int status) {
    if (s->cfg.stats) ct_counter_add(&s->cfg.stats->tls_failures, 1);
    tls_send(s); /* OpenSSL's alert for the peer, if the socket takes it */
    write_failed(s, status);
    if (s->tls->is_server) {
        end_stream(s, status);
    } else {
        stop_polling(s);
        secure_done(s, status);
    }
}

static void tls_write_failed(ct_stream_t *s, int status) {
    write_failed(s, status);
    if (!s->tls->secure) secure_done(s, status);
}

/* Writes the ciphertext waiting: uv_try_write, then uv_write for what the
 * socket did not take; while a write is under way, the next ciphertext
 * waits in the session and counts as output being written. */
static void tls_send(ct_stream_t *s) {
    ct_tls_session_t *t = s->tls;
    ssize_t len;
    uv_buf_t b;
    int n;
    if (!s->handle_open || s->send_error) return;
    if (s->writing) {
        s->wbusy_len = t->sending_len + ct_tls_session_pending(t);
        count_output(s);
        return;
    }
    if ((len = (ssize_t)ct_tls_session_take(t)) == 0) return;
    b = uv_buf_init((char *)t->sending, (unsigned)len);
    n = uv_try_write(&s->h.stream, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (s->cfg.stats) count(&s->cfg.stats->bytes_written, n);
    if (n < 0) {
        tls_write_failed(s, n);
        return;
    }
    if (n == len) {
        after_write(s);
        return;
    }
    t->sending_len = (size_t)(len - n);
    b = uv_buf_init((char *)t->sending + n, (unsigned)t->sending_len);
    s->write_req.data = s;
    if ((n = uv_write(&s->write_req, &s->h.stream, &b, 1, on_write)) < 0) {
        tls_write_failed(s, n);
        return;
    }
    s->writing = 1;
    s->wbusy_len = t->sending_len;
    count_output(s);
}

/* Encrypts what was sent (once the handshake allows) and writes it. */
static void tls_flush(ct_stream_t *s) {
    int r;
    if (s->send_error || !s->handle_open) return;
    if (s->wlen > 0 && s->tls->secure) {
        if ((r = ct_tls_session_write(s->tls, s->wbuf, s->wlen)) < 0) {
            write_failed(s, r);
            return;
        }
        s->wlen = 0;
    }
    tls_send(s);
}

/* Decrypts and delivers frames while the reader wants them. */
static void tls_decrypt(ct_stream_t *s) {
    decode_buffered(s); /* frames left from when the reader stopped */
    while (s->reading && !s->ended) {
        uv_buf_t room = read_room(s);
        ssize_t n;
        if (room.len == 0) {
            if (s->rcap == 0) end_stream(s, UV_ENOMEM);
            return;
        }
        n = ct_tls_session_read(s->tls, (uint8_t *)room.base, room.len);
        if (n == 0) return;
        if (n < 0) {
            end_stream(s, n == UV_EOF && s->rlen > 0 ? CT_ETRUNCATED : (int)n);
            return;
        }
        s->rlen += (size_t)n;
        decode_buffered(s);
    }
}

/* Moves the session along with what was read: the handshake, then the
 * frames, then what either made to send. */
static void tls_pump(ct_stream_t *s) {
    ct_tls_session_t *t = s->tls;
    if (!t->secure) {
        int r = ct_tls_session_handshake(t);
        if (r < 0) {
            tls_failed(s, r);
            return;
        }
        tls_send(s); /* the handshake's next messages */
        if (r == 0 || !s->handle_open) return;
        if (s->cfg.stats) ct_counter_add(&s->cfg.stats->tls_handshakes, 1);
        secure_done(s, 0); /* the stream may be closed, or reading, now */
        if (!s->handle_open) return;
    }
    if (s->reading) tls_decrypt(s);
    /* Input waits in the kernel while the reader has stopped; a client's
     * stream reads only once its reader starts. */
    if (!s->reading && s->handle_open && (ct_tls_session_has_input(t) || !t->is_server))
        stop_polling(s);
    if (ct_task_is_queued(&s->flush_task)) ct_task_cancel(&s->flush_task); /* done here */
    tls_flush(s);
}

/* Ciphertext lands in the loop's read buffer when it is free (OpenSSL's
 * input takes all of it at once), else in a buffer of the session's. */
static void tls_landing(ct_stream_t *s, uv_buf_t *out) {
    size_t len = 0;
    uint8_t *shared = ct_loop_lend_buffer(s->transport.loop, CT_LOOP_READ_BUFFER, &len);
    if (shared) {
        s->tls->landing_shared = 1;
        *out = uv_buf_init((char *)shared, (unsigned)len);
    } else {
        uint8_t *own = ct_tls_session_landing(s->tls, &len);
        *out = uv_buf_init((char *)own, (unsigned)len); /* none: on_read hears UV_ENOBUFS */
    }
}

/* OpenSSL reads the ciphertext where it landed; what it has not read when
 * the pump is done (the reader stopped) is kept before the buffer goes. */
static void tls_on_read(ct_stream_t *s, ssize_t nread, const uint8_t *cipher) {
    ct_tls_session_t *t = s->tls;
    int r = 0;
    if (nread > 0) {
        s->last_read_ms = uv_now(s->h.stream.loop);
        if ((r = ct_tls_session_lend(t, cipher, (size_t)nread)) == 0) tls_pump(s);
        if (r == 0) r = ct_tls_session_keep(t);
    }
    if (t->landing_shared) {
        t->landing_shared = 0;
        ct_loop_return_buffer(s->transport.loop, CT_LOOP_READ_BUFFER);
    }
    if (nread > 0) {
        if (r != 0 && s->handle_open) tls_failed(s, r);
    } else if (nread == UV_ENOBUFS) {
        tls_failed(s, UV_ENOMEM); /* no landing buffer could be had */
    } else if (nread < 0 && !s->tls->secure) {
        tls_failed(s, nread == UV_EOF ? CT_ETLS : (int)nread);
    } else {
        take_read(s, nread); /* the end or an error, as for plain bytes */
    }
}

const char *ct_stream_tls_protocol(const ct_stream_t *s, size_t *len) {
    *len = 0;
    return s->tls ? ct_tls_session_protocol(s->tls, len) : NULL;
}

int ct_stream_tls_start(ct_stream_t *s, int is_server, const char *peer_name,
                        void (*cb)(ct_stream_t *stream, int status)) {
    const ct_tls_config_t *cfg = s ? s->cfg.tls : NULL;
    int r;
    if (!cfg || s->tls || (!is_server && !cb)) return CT_EINVAL;
    if (!is_server && cfg->server_name) peer_name = cfg->server_name;
    if ((r = ct_tls_session_new(&s->tls, cfg, is_server, peer_name)) != 0) return r;
    if (!is_server) {
        /* The client speaks first. A failure here is returned, not
         * reported: cb is not set yet. */
        if ((r = ct_tls_session_handshake(s->tls)) < 0) return r;
        tls_send(s);
        if (s->send_error) return s->send_error;
        if ((r = uv_read_start(&s->h.stream, on_alloc, on_read)) != 0) return r;
        s->uv_reading = 1;
    }
    s->secure_cb = cb;
    return 0;
}

/* ---- close -------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *handle) {
    ct_stream_t *s = handle->data;
    if (s->cfg.budget) s->cfg.budget->used -= s->budgeted; /* all of it goes */
    s->budgeted = 0;
    free(s->rbuf);
    free(s->wbuf);
    free(s->wbusy);
    s->rbuf = s->wbuf = s->wbusy = NULL;
    ct_tls_session_free(s->tls);
    s->tls = NULL;
    ct_transport_closed(&s->transport);
}

static void st_close(ct_transport_t *t) {
    ct_stream_t *s = (ct_stream_t *)t;
    ct_task_cancel(&s->flush_task);
    ct_task_cancel(&s->decode_task);
    ct_waitq_init(&s->send_waiters);
    s->reading = 0;
    s->handle_open = 0;
    s->secure_cb = NULL;
    uv_close(&s->h.handle, on_handle_closed);
}

static const ct_transport_vtable_t stream_vtable = {
    st_send_ready, st_send, st_recv_start, st_recv_stop, st_shutdown, st_close,
};

int ct_stream_add_stats(const ct_stream_stats_t *st, ct_stats_t *s, const char *prefix,
                        const char *labels) {
    int r;
    if ((r = ct_stats_add_named(s, CT_STATS_COUNTER, prefix, "bytes_read_total", labels,
                                "Bytes read from the network.", 1, &st->bytes_read)) ||
        (r = ct_stats_add_named(s, CT_STATS_COUNTER, prefix, "bytes_written_total", labels,
                                "Bytes written to the network.", 1, &st->bytes_written)) ||
        (r = ct_stats_add_named(s, CT_STATS_COUNTER, prefix, "tls_handshakes_total", labels,
                                "TLS handshakes that succeeded.", 1, &st->tls_handshakes)))
        return r;
    return ct_stats_add_named(s, CT_STATS_COUNTER, prefix, "tls_failures_total", labels,
                              "TLS handshakes that failed.", 1, &st->tls_failures);
}

int ct_stream_config_check(const ct_stream_config_t *cfg) {
    if (!cfg || !cfg->codec || !cfg->pool) return CT_EINVAL;
    if (cfg->codec->size == 0 || cfg->codec->size > sizeof(ct_codec_storage_t)) return CT_EINVAL;
    return 0;
}

int ct_stream_init(ct_stream_t *s, ct_loop_t *loop, int is_pipe, const ct_stream_config_t *cfg) {
    int r;
    if (!s || !loop || ct_stream_config_check(cfg) != 0) return CT_EINVAL;
    memset(s, 0, sizeof *s);
    ct_transport_init(&s->transport, loop, &stream_vtable);
    memcpy(&s->codec, cfg->codec, cfg->codec->size);
    ct_codec_reset(codec(s));
    s->transport.max_in_flight = cfg->codec->max_pending;
    s->cfg = *cfg;
    if (!s->cfg.read_buffer) s->cfg.read_buffer = 64u << 10;
    if (!s->cfg.high_water) s->cfg.high_water = 1u << 20;
    if (!s->cfg.low_water || s->cfg.low_water > s->cfg.high_water)
        s->cfg.low_water = s->cfg.high_water / 4;
    ct_task_init(&s->flush_task, flush);
    ct_task_init(&s->decode_task, on_decode_task);
    ct_waitq_init(&s->send_waiters);
    /* No read buffer yet: reads borrow the loop's (see borrow_shared). */
    r = is_pipe ? uv_pipe_init(loop->uv, &s->h.pipe, 0) : uv_tcp_init(loop->uv, &s->h.tcp);
    if (r != 0) return r;
    s->h.handle.data = s;
    s->handle_open = 1;
    s->last_read_ms = uv_now(loop->uv);
    return 0;
}

int ct_stream_connected(ct_stream_t *s) {
    /* Requests are small and answers wait on them: no Nagle delay. */
    int r = uv_tcp_nodelay(&s->h.tcp, 1);
    if (r == 0 && s->cfg.keepalive_s) r = uv_tcp_keepalive(&s->h.tcp, 1, s->cfg.keepalive_s);
    return r;
}

uv_stream_t *ct_stream_uv(ct_stream_t *s) {
    return &s->h.stream;
}

uint64_t ct_stream_last_read(const ct_stream_t *s) {
    return s->last_read_ms;
}

uint64_t ct_stream_partial_since(const ct_stream_t *s, int *in_header) {
    if (in_header) *in_header = s->codec.base.in_header;
    return s->ended ? 0 : s->partial_since_ms;
}
