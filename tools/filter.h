/* A service in front of `ctower proxy`'s shared backend connections that
 * looks at each request first: a rule passes it on (as it is, or
 * rewritten), or answers it itself. Each request passed on keeps its
 * caller's own op. The rules are the protocols': redis_filter.h,
 * http_filter.h. */
#ifndef CTOWER_TOOLS_FILTER_H
#define CTOWER_TOOLS_FILTER_H

#include <ctower/ctower.h>

typedef enum filter_verdict { FILTER_PASS, FILTER_ANSWER } filter_verdict_t;

/* What a rule knows of the hop besides the request: the caller's context
 * (NULL: none; the listener's read_context found it), the loop's time, and
 * with a traced context a random span id for this hop. */
typedef struct filter_hop {
    const ct_context_t *ctx;
    uint64_t now;
    uint64_t span;
    size_t room; /* bytes before the message, kept as they are (HTTP/2's tag) */
} filter_hop_t;

/* Looks at *request: FILTER_PASS sends *request on (a rule that rewrites it
 * replaces it, and gives the old one back to pool); FILTER_ANSWER answers
 * with *answer (NULL: out of memory) and the filter gives the request back. */
typedef filter_verdict_t (*filter_rule_fn)(ct_buf_pool_t *pool, const filter_hop_t *hop,
                                           ct_buf_t **request, ct_buf_t **answer);

typedef struct filter {
    ct_service_t service; /* first */
    ct_service_t *inner;  /* owned: closing the filter closes it */
    ct_buf_pool_t *pool;  /* where requests go back to */
    filter_rule_fn rule;
    size_t room;
} filter_t;

/* room: the bytes each request (and the rule's answers) has before its
 * message, which the rule keeps as they are (HTTP/2's tag: 4). */
void filter_init(filter_t *f, ct_loop_t *loop, ct_service_t *inner, ct_buf_pool_t *pool,
                 filter_rule_fn rule, size_t room);

#endif
