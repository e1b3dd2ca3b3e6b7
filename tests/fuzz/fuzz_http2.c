/* Fuzz target for ct_http2_t. The input is what a peer sends, cut into
 * chunks, to the HTTP/2 server side (a multiplex server over it, whose
 * service reads every request it is given) or to the client side (a
 * multiplex client that has sent four requests). Whatever the bytes: every
 * request delivered reads as one whole HTTP/1.1 request, every response as
 * one whole response to its request, every request the client started
 * completes exactly once, nothing leaks, and the loop closes clean.
 *
 * Input: byte 0 picks the side (bit 0: client) and, for the server side,
 * whether the client's preface comes first by itself (bit 1); then chunks,
 * each a length byte n and the n + 1 bytes that follow. */
#include <ctower/ctower.h>
#include <nghttp2/nghttp2.h>

#include <stdlib.h>
#include <string.h>

enum { REQUESTS = 4 };

static struct {
    uv_loop_t uv;
    ct_loop_t ct;
    ct_buf_pool_t pool;
    ct_channel_t below, peer;
    ct_http2_t h2;
    ct_service_fn_t svc;
    ct_server_t server;
    ct_slab_tags_t tags;
    ct_client_t client;
    ct_op_t ops[REQUESTS];
    int calls[REQUESTS];
    int client_side, closed;
} S;

static void must(int cond) {
    if (!cond) abort();
}

/* A message must read as one whole message of its kind; only more fields
 * than a view holds (CT_HTTP_MAX_HEADERS) may stop the reading, as they
 * would an HTTP/1.1 message's. */
static int readable(int r) {
    return r == 0 || r == CT_EFRAMETOOLARGE;
}

/* The server's service: the request must read as one; the answer is 200
 * with the target as its body. */
static int read_request(void *ctx, void *request, void **response) {
    ct_buf_t *req = request, *res;
    ct_http_message_t m;
    size_t size = 0;
    int r;
    (void)ctx;
    must(req->len >= 4);
    r = ct_http_parse_request((uint8_t *)req->base + 4, req->len - 4, &m);
    must(readable(r));
    if (r != 0) m.target.len = 0;
    must(ct_http_format_response(NULL, 0, 200, NULL, m.target.p, m.target.len, &size) == 0);
    res = ct_buf_pool_get(&S.pool, 4 + size);
    must(res != NULL);
    must(ct_http_format_response((uint8_t *)res->base + 4, size, 200, NULL, m.target.p,
                                 m.target.len, &size) == 0);
    res->len = 4 + size;
    ct_buf_pool_put(&S.pool, req);
    *response = res;
    return 0;
}

static void on_answer(ct_op_t *op, int status, void *response) {
    size_t i = (size_t)(op - S.ops);
    ct_buf_t *res = response;
    ct_http_message_t m;
    S.calls[i]++;
    must(S.calls[i] == 1);
    must((status == 0) == (res != NULL));
    if (!res) return;
    must(res->len >= 4);
    must(readable(ct_http_parse_response((uint8_t *)res->base + 4, res->len - 4, i == 1, &m)));
    ct_buf_pool_put(&S.pool, res);
}

static void start_requests(void) {
    static const char *const texts[REQUESTS] = {
        "GET /0 HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD /1 HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET /3 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
    };
    ct_client_config_t cfg = {0};
    size_t i;
    cfg.max_in_flight = REQUESTS;
    cfg.free_msg = ct_buf_pool_free_msg;
    cfg.free_ctx = &S.pool;
    must(ct_slab_tags_init(&S.tags, REQUESTS, ct_buf_get_tag, ct_buf_set_tag) == 0);
    must(ct_multiplex_client_init(&S.client, &S.ct, &S.h2.transport, &S.tags.store, &cfg) == 0);
    for (i = 0; i < REQUESTS; i++) {
        size_t len = strlen(texts[i]);
        ct_buf_t *b = ct_buf_pool_get(&S.pool, 4 + len);
        must(b != NULL);
        memcpy(b->base + 4, texts[i], len);
        b->len = 4 + len;
        ct_op_init(&S.ops[i], on_answer);
        must(ct_service_call(&S.client.service, b, &S.ops[i]) == 0);
    }
}

static void on_peer_recv(ct_transport_t *t, int status, void *msg) {
    (void)t;
    (void)status;
    if (msg) ct_buf_pool_put(&S.pool, msg);
}

static void on_server_closed(ct_server_t *srv, int status) {
    (void)srv;
    (void)status;
    S.closed = 1;
}

static void on_client_closed(ct_service_t *svc) {
    (void)svc;
    S.closed = 1;
}

static void turns(int n) {
    while (n-- > 0)
        uv_run(&S.uv, UV_RUN_NOWAIT);
}

/* The peer sends len bytes at data, as one chunk. */
static void peer_sends(const uint8_t *data, size_t len) {
    ct_buf_t *b = ct_buf_pool_get(&S.pool, len);
    must(b != NULL);
    memcpy(b->base, data, len);
    b->len = len;
    if (ct_transport_send(&S.peer.transport, b) != 0) ct_buf_pool_put(&S.pool, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ct_http2_config_t cfg = {0};
    size_t at = 1, i;
    if (size < 1) return 0;
    memset(&S, 0, sizeof S);
    S.client_side = data[0] & 1;
    must(uv_loop_init(&S.uv) == 0);
    must(ct_loop_init(&S.ct, &S.uv) == 0);
    ct_buf_pool_init(&S.pool, 256, 64);
    must(ct_channel_pair_init(&S.ct, &S.below, &S.peer, 4096, ct_buf_pool_free_msg, &S.pool) == 0);
    cfg.server = !S.client_side;
    cfg.pool = &S.pool;
    cfg.max_message = 4096;
    cfg.max_streams = 8;
    must(ct_http2_init(&S.h2, &S.ct, &S.below.transport, &cfg) == 0);
    must(ct_transport_recv_start(&S.peer.transport, on_peer_recv) == 0);
    if (S.client_side) {
        start_requests();
    } else {
        ct_server_config_t scfg = {0};
        scfg.get_tag = ct_buf_get_tag;
        scfg.set_tag = ct_buf_set_tag;
        scfg.free_msg = ct_buf_pool_free_msg;
        scfg.free_ctx = &S.pool;
        ct_service_fn_init(&S.svc, &S.ct, read_request, NULL);
        must(ct_multiplex_server_init(&S.server, &S.ct, &S.h2.transport, &S.svc.service, &scfg,
                                      on_server_closed) == 0);
        if (data[0] & 2)
            peer_sends((const uint8_t *)NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
    }
    turns(2);
    while (at < size) {
        size_t n = (size_t)data[at++] + 1;
        if (n > size - at) n = size - at;
        if (n == 0) break;
        peer_sends(data + at, n);
        at += n;
        turns(2);
    }
    /* the peer goes away; then everything closes */
    ct_transport_shutdown(&S.peer.transport, NULL);
    turns(4);
    if (S.client_side)
        must(ct_service_close(&S.client.service, on_client_closed) == 0);
    else
        ct_server_close(&S.server);
    ct_transport_close(&S.peer.transport, NULL);
    while (!S.closed)
        uv_run(&S.uv, UV_RUN_NOWAIT);
    if (S.client_side) {
        for (i = 0; i < REQUESTS; i++)
            must(S.calls[i] == 1);
        ct_slab_tags_free(&S.tags);
    } else {
        ct_service_close(&S.svc.service, NULL);
    }
    turns(4); /* the closes' callbacks */
    must(ct_loop_close(&S.ct, NULL) == 0);
    uv_run(&S.uv, UV_RUN_DEFAULT);
    must(uv_loop_close(&S.uv) == 0);
    ct_buf_pool_destroy(&S.pool);
    return 0;
}
