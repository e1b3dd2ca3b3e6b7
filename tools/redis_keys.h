/* The key of a Redis command, for `ctower proxy --shard`: which shard
 * (ct_shard_t) holds what the command touches. */
#ifndef CTOWER_TOOLS_REDIS_KEYS_H
#define CTOWER_TOOLS_REDIS_KEYS_H

#include <ctower/ctower.h>

/* A command whose keys are not all in one shard: it is refused, as Redis
 * Cluster refuses one across its slots (CROSSSLOT). */
#define REDIS_CROSS_SHARD CT_SERVICE_ERROR(1)

/* ct_shard_key_fn over a command (an array of bulk strings in a ct_buf_t):
 * the hash of its key, the part between the first '{' and the next '}' if
 * that is not empty (Redis Cluster's hash tags, so that keys used together
 * can be kept together). Commands of several keys (MGET, MSET, DEL, SUNION,
 * RENAME, ...) must have one hash for all of them: REDIS_CROSS_SHARD
 * otherwise. A command with no argument goes to the first shard. */
int redis_key_hash(void *ctx, const void *request, uint64_t *hash);

#endif
