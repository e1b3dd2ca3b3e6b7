/* --context: the request context as a binary block at the start of each
 * request's payload (after its tag when multiplexed), for the
 * length-delimited framing of `ctower serve`, `bench`, `call` and `proxy`
 * (context.h's ct_context_*_block). Both ends must be given --context: to a
 * peer that is not, the block is part of the payload.
 *
 * A proxy rewrites the block in place for the next hop: the time left as
 * of now, and a span of its own; what does not read as a block goes on as
 * it came. Requests whose block did not read are counted.
 *
 * An error's answer (a deadline that passed, a backend that failed) is a
 * payload of nothing but its tag: with --context a request answered so
 * failed, and the connection goes on. */
#ifndef CTOWER_TOOLS_CONTEXT_BLOCK_H
#define CTOWER_TOOLS_CONTEXT_BLOCK_H

#include "filter.h"

typedef struct context_reader {
    size_t room;      /* bytes before the block: the tag's, or none */
    uint64_t refused; /* requests whose block did not read */
} context_reader_t;

/* A listener's read_context (server.h); ctx is a context_reader_t. */
int block_read_context(void *ctx, const void *request, uint64_t now, ct_context_t *out);

/* Writes ctx's block (NULL: an empty one) into b after room bytes, as of
 * now; b must hold room + CT_CONTEXT_BLOCK_SIZE bytes. */
void block_write(ct_buf_t *b, size_t room, const ct_context_t *ctx, uint64_t now);

/* A server's on_error with --context: an answer of no payload (after its
 * tag's room, which the server fills), the framing's "no answer came".
 * Without it an error would end the connection, and in a proxy the
 * connection from the hop before, which every client shares. */
int block_error_reply(ct_server_t *srv, int status, void **response);
int block_error_reply_tagged(ct_server_t *srv, int status, void **response);

/* The proxy's filter rule (filter.h): the block written anew in place. */
filter_verdict_t block_filter_rule(ct_buf_pool_t *pool, const filter_hop_t *hop, ct_buf_t **request,
                                   ct_buf_t **answer);

#endif
