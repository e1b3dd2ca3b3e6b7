/* The raw libuv baseline: the fastest echo server and client that plain libuv
 * allows for ctower's benchmark workload (4-byte big-endian length + payload,
 * N connections, D requests in flight each), with no ctower at all.
 *
 * Server: each read is scanned for whole frames, which are echoed straight
 * from the read buffer with one uv_try_write (the rest, if the socket is
 * full, is copied and written with uv_write). Client: each read counts the
 * whole responses in it and sends as many new requests in one write. Server
 * and client run on two threads of one process, as `ctower bench` does.
 *
 *   baseline [--connections N] [--depth N] [--size BYTES] [--duration S] [--json]
 *            [--serve PORT | --port PORT]
 *
 * --serve PORT runs only the server, on 127.0.0.1:PORT, until killed;
 * --port PORT runs only the client, against a server already listening on
 * 127.0.0.1:PORT (this one's, or `ctower serve`, to compare servers alone).
 */
#include "ctower/stats.h" /* the same histogram as ctower bench's */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct opts {
    int connections, depth, size, json;
    int multiplex;
    double duration;
    int serve_port;  /* --serve: server only */
    int client_port; /* --port: client only */
} opts_t;

static opts_t O = {10, 16, 64, 0, 0, 5, -1, -1};

/* ---- shared: a growable byte buffer -------------------------------------- */

typedef struct bytes {
    char *p;
    size_t len, cap;
} bytes_t;

static void bytes_reserve(bytes_t *b, size_t need) {
    if (b->cap >= need) return;
    while (b->cap < need)
        b->cap = b->cap ? b->cap * 2 : 65536;
    b->p = realloc(b->p, b->cap);
}

static size_t whole_frames(const char *p, size_t len, size_t *count) {
    size_t at = 0;
    *count = 0;
    while (len - at >= 4) {
        const unsigned char *h = (const unsigned char *)p + at;
        size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
        if (len - at - 4 < n) break;
        at += 4 + n;
        (*count)++;
    }
    return at;
}

/* ---- server ------------------------------------------------------------------ */

typedef struct sconn {
    uv_tcp_t tcp;
    bytes_t in;
    bytes_t out; /* what the socket did not take at once */
    uv_write_t w;
    int writing;
} sconn_t;

static void s_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    sconn_t *c = h->data;
    (void)sz;
    bytes_reserve(&c->in, c->in.len + 65536);
    *b = uv_buf_init(c->in.p + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void s_closed(uv_handle_t *h) {
    sconn_t *c = h->data;
    free(c->in.p);
    free(c->out.p);
    free(c);
}

static void s_written(uv_write_t *w, int status) {
    sconn_t *c = w->data;
    c->writing = 0;
    c->out.len = 0;
    (void)status;
}

static void s_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    sconn_t *c = s->data;
    size_t count, whole;
    int sent = 0;
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, s_closed);
        return;
    }
    c->in.len += (size_t)n;
    whole = whole_frames(c->in.p, c->in.len, &count);
    if (whole == 0) return;
    if (!c->writing) {
        uv_buf_t ub = uv_buf_init(c->in.p, (unsigned)whole);
        sent = uv_try_write(s, &ub, 1);
        if (sent < 0) sent = 0;
    }
    if ((size_t)sent < whole) { /* keep the rest for a uv_write */
        bytes_reserve(&c->out, c->out.len + whole - (size_t)sent);
        memcpy(c->out.p + c->out.len, c->in.p + sent, whole - (size_t)sent);
        c->out.len += whole - (size_t)sent;
        if (!c->writing) {
            uv_buf_t ub = uv_buf_init(c->out.p, (unsigned)c->out.len);
            c->w.data = c;
            c->writing = 1;
            uv_write(&c->w, s, &ub, 1, s_written);
        }
    }
    memmove(c->in.p, c->in.p + whole, c->in.len - whole);
    c->in.len -= whole;
}

static void s_accept(uv_stream_t *server, int status) {
    sconn_t *c;
    if (status < 0) return;
    c = calloc(1, sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, s_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_read);
}

typedef struct server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    int port;
    uv_sem_t ready;
} server_t;

static void close_any(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->data && h->type == UV_TCP && h->data != (void *)1 ? s_closed : NULL);
}

static void on_stop(uv_async_t *a) {
    uv_walk(a->loop, close_any, NULL);
}

static void server_run(void *arg) {
    server_t *s = arg;
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_loop_init(&s->loop);
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = (void *)1; /* not a connection */
    uv_ip4_addr("127.0.0.1", s->port, &a);
    if (uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->listener, 4096, s_accept) != 0) {
        fprintf(stderr, "baseline: cannot listen on 127.0.0.1:%d\n", s->port);
        exit(1);
    }
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    if (O.serve_port >= 0) fprintf(stderr, "baseline: echo on tcp://127.0.0.1:%d\n", s->port);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = (void *)1;
    uv_sem_post(&s->ready);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
}

/* ---- client ------------------------------------------------------------------ */

typedef struct cconn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    bytes_t in, out;
    uint64_t *sent_at;   /* send times, depth long: a ring (pipeline), by tag (multiplex) */
    unsigned char *busy; /* multiplex: busy[tag] while that tag is in flight */
    size_t head, inflight;
    uv_write_t w;
    int writing;
    struct client *cl;
} cconn_t;

typedef struct client {
    uv_loop_t loop;
    uv_timer_t timer;
    cconn_t *conns;
    int connected, stopping, closed;
    uint64_t done, t_start, t_end;
    ct_histogram_t hist;
    char *frame; /* one request frame */
    size_t frame_len;
} client_t;

static void c_closed(uv_handle_t *h) {
    cconn_t *c = h->data;
    if (++c->cl->closed == O.connections) uv_close((uv_handle_t *)&c->cl->timer, NULL);
}

static void c_written(uv_write_t *w, int status) {
    cconn_t *c = w->data;
    (void)status;
    c->writing = 0;
    c->out.len = 0;
}

/* Writes what c->out holds: at once if the socket takes it, else the rest
 * with a uv_write. */
static void c_flush(cconn_t *c) {
    uv_buf_t ub;
    int sent;
    if (c->writing || c->out.len == 0) return;
    ub = uv_buf_init(c->out.p, (unsigned)c->out.len);
    sent = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
    if (sent < 0) sent = 0;
    if ((size_t)sent == c->out.len) {
        c->out.len = 0;
        return;
    }
    memmove(c->out.p, c->out.p + sent, c->out.len - (size_t)sent);
    c->out.len -= (size_t)sent;
    ub = uv_buf_init(c->out.p, (unsigned)c->out.len);
    c->w.data = c;
    c->writing = 1;
    uv_write(&c->w, (uv_stream_t *)&c->tcp, &ub, 1, c_written);
}

/* Sends n new requests in one write. */
static void c_send(cconn_t *c, size_t n) {
    uint64_t now = uv_hrtime();
    size_t i;
    bytes_reserve(&c->out, c->out.len + n * c->cl->frame_len);
    for (i = 0; i < n; i++) {
        memcpy(c->out.p + c->out.len, c->cl->frame, c->cl->frame_len);
        c->out.len += c->cl->frame_len;
        c->sent_at[(c->head + c->inflight++) % (size_t)O.depth] = now;
    }
    c_flush(c);
}

/* Multiplex: queues a request tagged tag (c->out must have room for it). */
static void c_queue_tagged(cconn_t *c, uint32_t tag, uint64_t now) {
    char *f = c->out.p + c->out.len;
    memcpy(f, c->cl->frame, c->cl->frame_len);
    f[4] = (char)(tag >> 24);
    f[5] = (char)(tag >> 16);
    f[6] = (char)(tag >> 8);
    f[7] = (char)tag;
    c->out.len += c->cl->frame_len;
    c->sent_at[tag] = now;
    c->busy[tag] = 1;
    c->inflight++;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Multiplex: completes the count responses in c->in's first whole bytes by
 * their tags, and sends each freed tag out again with a new request. */
static void c_complete_tagged(cconn_t *c, size_t whole, size_t count, uint64_t now) {
    client_t *cl = c->cl;
    size_t at = 0;
    if (!cl->stopping) bytes_reserve(&c->out, c->out.len + count * cl->frame_len);
    while (at < whole) {
        const unsigned char *h = (const unsigned char *)c->in.p + at;
        size_t n = be32(h);
        uint32_t tag = n >= 4 ? be32(h + 4) : UINT32_MAX;
        at += 4 + n;
        if (tag >= (uint32_t)O.depth || !c->busy[tag]) {
            fprintf(stderr, "baseline: a response answers no request in flight (tag %u)\n", tag);
            exit(1);
        }
        c->busy[tag] = 0;
        c->inflight--;
        ct_histogram_record(&cl->hist, now - c->sent_at[tag]);
        if (!cl->stopping) c_queue_tagged(c, tag, now);
    }
    cl->done += count;
    c_flush(c);
}

static void c_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    cconn_t *c = h->data;
    (void)sz;
    bytes_reserve(&c->in, c->in.len + 65536);
    *b = uv_buf_init(c->in.p + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    cconn_t *c = s->data;
    client_t *cl = c->cl;
    size_t count, whole, i;
    uint64_t now = uv_hrtime();
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, c_closed);
        return;
    }
    c->in.len += (size_t)n;
    whole = whole_frames(c->in.p, c->in.len, &count);
    if (O.multiplex) {
        c_complete_tagged(c, whole, count, now);
    } else {
        for (i = 0; i < count; i++) {
            ct_histogram_record(&cl->hist, now - c->sent_at[c->head]);
            c->head = (c->head + 1) % (size_t)O.depth;
            c->inflight--;
        }
        cl->done += count;
        if (!cl->stopping) c_send(c, count);
    }
    memmove(c->in.p, c->in.p + whole, c->in.len - whole);
    c->in.len -= whole;
    if (cl->stopping && c->inflight == 0) uv_close((uv_handle_t *)s, c_closed);
}

static void on_duration(uv_timer_t *t) {
    client_t *cl = t->data;
    int i;
    cl->stopping = 1;
    cl->t_end = uv_hrtime();
    for (i = 0; i < O.connections; i++)
        if (cl->conns[i].inflight == 0) uv_close((uv_handle_t *)&cl->conns[i].tcp, c_closed);
}

/* The first depth requests of a connection. */
static void c_start(cconn_t *c) {
    uint64_t now = uv_hrtime();
    uint32_t tag;
    if (!O.multiplex) {
        c_send(c, (size_t)O.depth);
        return;
    }
    bytes_reserve(&c->out, c->out.len + (size_t)O.depth * c->cl->frame_len);
    for (tag = 0; tag < (uint32_t)O.depth; tag++)
        c_queue_tagged(c, tag, now);
    c_flush(c);
}

static void c_connected(uv_connect_t *req, int status) {
    cconn_t *c = req->data;
    client_t *cl = c->cl;
    int i;
    if (status < 0) {
        fprintf(stderr, "baseline: connect: %s\n", uv_strerror(status));
        exit(1);
    }
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
    if (++cl->connected < O.connections) return;
    cl->t_start = uv_hrtime();
    uv_timer_start(&cl->timer, on_duration, (uint64_t)(O.duration * 1000), 0);
    for (i = 0; i < O.connections; i++)
        c_start(&cl->conns[i]);
}

static void client_run(client_t *cl, int port) {
    struct sockaddr_in a;
    int i;
    uv_loop_init(&cl->loop);
    uv_timer_init(&cl->loop, &cl->timer);
    cl->timer.data = cl;
    ct_histogram_init(&cl->hist);
    cl->frame_len = 4 + (size_t)O.size;
    cl->frame = calloc(1, cl->frame_len);
    cl->frame[0] = (char)(O.size >> 24);
    cl->frame[1] = (char)(O.size >> 16);
    cl->frame[2] = (char)(O.size >> 8);
    cl->frame[3] = (char)O.size;
    cl->conns = calloc((size_t)O.connections, sizeof *cl->conns);
    uv_ip4_addr("127.0.0.1", port, &a);
    for (i = 0; i < O.connections; i++) {
        cconn_t *c = &cl->conns[i];
        c->cl = cl;
        c->sent_at = calloc((size_t)O.depth, sizeof *c->sent_at);
        c->busy = calloc((size_t)O.depth, 1);
        uv_tcp_init(&cl->loop, &c->tcp);
        c->tcp.data = c;
        uv_tcp_nodelay(&c->tcp, 1);
        c->connect.data = c;
        uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&a, c_connected);
    }
    uv_run(&cl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&cl->loop);
}

int main(int argc, char **argv) {
    static server_t s;
    static client_t cl;
    uv_thread_t tid;
    double secs, rps;
    int i;
    signal(SIGPIPE, SIG_IGN); /* a reset peer ends its connection, not the process */
    for (i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "0";
        if (strcmp(argv[i], "--json") == 0) {
            O.json = 1;
            continue;
        }
        if (strcmp(argv[i], "--mode") == 0) {
            if (strcmp(v, "pipeline") != 0 && strcmp(v, "multiplex") != 0) {
                fprintf(stderr, "baseline: --mode is pipeline or multiplex, not '%s'\n", v);
                return 2;
            }
            O.multiplex = strcmp(v, "multiplex") == 0;
        } else if (strcmp(argv[i], "--connections") == 0)
            O.connections = atoi(v);
        else if (strcmp(argv[i], "--depth") == 0)
            O.depth = atoi(v);
        else if (strcmp(argv[i], "--size") == 0)
            O.size = atoi(v);
        else if (strcmp(argv[i], "--duration") == 0)
            O.duration = atof(v);
        else if (strcmp(argv[i], "--serve") == 0)
            O.serve_port = atoi(v);
        else if (strcmp(argv[i], "--port") == 0)
            O.client_port = atoi(v);
        else {
            fprintf(stderr, "usage: baseline [--mode pipeline|multiplex] [--connections N] "
                            "[--depth N] [--size BYTES] [--duration S] [--json] "
                            "[--serve PORT | --port PORT]\n");
            return 2;
        }
        i++;
    }
    if (O.connections < 1 || O.depth < 1 || O.size < 0 || O.duration <= 0 || O.serve_port > 65535 ||
        O.client_port > 65535 || (O.serve_port >= 0 && O.client_port >= 0)) {
        fprintf(stderr, "baseline: bad option value\n");
        return 2;
    }
    if (O.multiplex && O.size < 4) {
        fprintf(stderr, "baseline: --mode multiplex needs --size 4 or more (the tag)\n");
        return 2;
    }
    if (O.serve_port >= 0) { /* until killed */
        s.port = O.serve_port;
        uv_sem_init(&s.ready, 0);
        server_run(&s);
        return 0;
    }
    if (O.client_port >= 0) {
        client_run(&cl, O.client_port);
    } else {
        s.port = 0; /* a free one */
        uv_sem_init(&s.ready, 0);
        uv_thread_create(&tid, server_run, &s);
        uv_sem_wait(&s.ready);
        client_run(&cl, s.port);
        uv_async_send(&s.stop);
        uv_thread_join(&tid);
    }
    secs = (cl.t_end - cl.t_start) / 1e9;
    rps = cl.done / secs;
    if (O.json)
        printf("{\"requests_per_sec\": %.1f, \"mb_per_sec\": %.3f, \"p50_us\": %.1f, \"p90_us\": "
               "%.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, \"requests\": %llu, "
               "\"errors\": 0}\n",
               rps, rps * 2.0 * O.size / 1e6, ct_histogram_quantile(&cl.hist, 0.5) / 1e3,
               ct_histogram_quantile(&cl.hist, 0.9) / 1e3,
               ct_histogram_quantile(&cl.hist, 0.99) / 1e3,
               ct_histogram_quantile(&cl.hist, 0.999) / 1e3, cl.hist.max / 1e3,
               (unsigned long long)cl.done);
    else
        printf(
            "baseline (raw libuv, %s): %d connection(s) x depth %d, %d-byte payload: %.0f req/s, "
            "p50 %.1f us, p99 %.1f us\n",
            O.multiplex ? "multiplex" : "pipeline", O.connections, O.depth, O.size, rps,
            ct_histogram_quantile(&cl.hist, 0.5) / 1e3,
            ct_histogram_quantile(&cl.hist, 0.99) / 1e3);
    return 0;
}
