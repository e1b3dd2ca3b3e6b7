/* The --context block of the tools' length-delimited framing
 * (context_block.h). */
#include "context_block.h"

#include <string.h>

int block_read_context(void *ctx, const void *request, uint64_t now, ct_context_t *out) {
    context_reader_t *reader = ctx;
    const ct_buf_t *b = request;
    int r = b->len < reader->room ? CT_EMALFORMED
                                  : ct_context_read_block((const uint8_t *)b->base + reader->room,
                                                          b->len - reader->room, now, out);
    if (r < 0) reader->refused++;
    return r;
}

void block_write(ct_buf_t *b, size_t room, const ct_context_t *ctx, uint64_t now) {
    ct_context_t none;
    if (!ctx) {
        ct_context_init(&none);
        ctx = &none;
    }
    ct_context_write_block(ctx, now, (uint8_t *)b->base + room);
}

filter_verdict_t block_filter_rule(ct_buf_pool_t *pool, const filter_hop_t *hop, ct_buf_t **request,
                                   ct_buf_t **answer) {
    ct_context_t next;
    (void)pool;
    (void)answer;
    if (!hop->ctx) return FILTER_PASS; /* none read: as it came */
    next = *hop->ctx;
    if (ct_context_traced(&next)) memcpy(next.span_id, &hop->span, sizeof next.span_id);
    block_write(*request, hop->room, &next, hop->now);
    return FILTER_PASS;
}

static int empty_reply(size_t room, int status, void **response) {
    static const uint8_t zeros[4] = {0};
    (void)status;
    *response = ct_buf_from(zeros, room);
    return *response ? 0 : status;
}

int block_error_reply(ct_server_t *srv, int status, void **response) {
    (void)srv;
    return empty_reply(0, status, response);
}

int block_error_reply_tagged(ct_server_t *srv, int status, void **response) {
    (void)srv;
    return empty_reply(4, status, response);
}
