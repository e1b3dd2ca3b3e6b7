/* A service in front of `ctower proxy --codec resp`'s shared backend
 * connection: it answers the Redis commands that cannot go over a
 * connection several clients share (subscriptions, MONITOR, transactions,
 * SELECT, blocking pops, ...) with an error reply, and passes the others on,
 * each with its caller's own op. */
#ifndef CTOWER_TOOLS_REDIS_FILTER_H
#define CTOWER_TOOLS_REDIS_FILTER_H

#include <ctower/ctower.h>

typedef struct redis_filter {
    ct_service_t service; /* first */
    ct_service_t *inner;  /* owned: closing the filter closes it */
    ct_buf_pool_t *pool;  /* where requests go back to */
} redis_filter_t;

void redis_filter_init(redis_filter_t *f, ct_loop_t *loop, ct_service_t *inner,
                       ct_buf_pool_t *pool);

#endif
