/* The rule of `ctower proxy --codec resp`'s filter (filter.h): it answers
 * the Redis commands that cannot go over a connection several clients share
 * (subscriptions, MONITOR, transactions, SELECT, blocking pops, ...) with an
 * error reply, turns inline commands into arrays, and passes the others on. */
#ifndef CTOWER_TOOLS_REDIS_FILTER_H
#define CTOWER_TOOLS_REDIS_FILTER_H

#include "filter.h"

filter_verdict_t redis_filter_rule(ct_buf_pool_t *pool, const filter_hop_t *hop, ct_buf_t **request,
                                   ct_buf_t **answer);

#endif
