/* ct_shard_t: a middleware that sends each call to one of several services,
 * its shards, chosen by a key its request carries: the same key always
 * goes to the same shard (a Redis key to the server that holds it). This
 * is partitioning, as twemproxy and Finagle's partitioning clients do it;
 * ct_balance_t is for interchangeable servers instead.
 *
 * key_fn gives a request's key as a 64-bit hash (ct_shard_hash() hashes
 * bytes); jump consistent hashing (Lamping and Veach, ct_shard_jump())
 * turns it into a shard: evenly, with no table, and when a shard is added
 * at the end only the keys that go to the new one move. A request that
 * key_fn refuses (no key, keys of several shards, ...) fails with key_fn's
 * error, and its request is freed.
 *
 * Readiness: the layer cannot know a call's shard before it sees the
 * request, and one full shard must not hold the calls of the others. So
 * poll_ready is READY while the layer has room (max_in_flight calls,
 * waiting or in flight), and a call whose shard is not ready waits in that
 * shard's queue, in call order, until it is. A READY holds one place for
 * the next call; ct_service_release() gives it back. A call made without a
 * READY when the layer is full fails with CT_EOVERLOADED. A shard whose
 * poll_ready fails fails the calls waiting for it, and each later call to
 * it, with that error.
 *
 * Cancel: a waiting call is taken back (its request freed); a sent one is
 * canceled in its shard. Shutdown: the calls waiting are still sent, then
 * every shard shuts down; the layer is done when all are (with the first
 * error). Close: the calls waiting fail with CT_ECLOSED, and every shard is
 * closed.
 */
#ifndef CTOWER_LAYER_SHARD_H
#define CTOWER_LAYER_SHARD_H

#include "ctower/service.h"
#include "ctower/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The key of request, as a hash: 0 and *hash, or a negative error for a
 * request that cannot be sent to one shard. */
typedef int (*ct_shard_key_fn)(void *ctx, const void *request, uint64_t *hash);

/* The shards, and how a call's key is found. */
typedef struct ct_shard_config {
    /* The shards, at least one, each a distinct service that no layer wraps
     * yet; the layer owns them from a successful init on. Their order is
     * the partitioning: keep it. The array may go once init returns. */
    ct_service_t **shards;
    size_t n_shards;
    ct_shard_key_fn key;
    void *key_ctx;
    /* Calls waiting or in flight at most, over all shards (0: 1024). */
    size_t max_in_flight;
    /* Frees a request the layer refuses or takes back, and a response
     * nobody waits for any more. May be NULL. */
    ct_msg_free_fn free_msg;
    void *free_ctx;
} ct_shard_config_t;

/* One shard's calls, waiting and in flight (ct_shard_stats()). */
typedef struct ct_shard_stats {
    uint64_t calls;   /* calls sent to it */
    size_t waiting;   /* calls waiting for it to be ready */
    size_t in_flight; /* calls sent that have not called back */
} ct_shard_stats_t;

struct ct_shard_part;
struct ct_shard_entry;

/* The sharding layer: a service over its shards. */
typedef struct ct_shard {
    ct_service_t service; /* first: a sharding layer is a service */
    /* private */
    ct_shard_config_t cfg;
    struct ct_shard_part *parts;
    size_t n;
    struct ct_shard_entry *entries;
    struct ct_shard_entry **free_entries; /* a stack */
    size_t nfree;
    struct ct_shard_entry *held; /* the place a READY holds */
    size_t waiting;              /* calls in the shards' queues */
    size_t shutting, closing;
    int shut_down, shutdown_status;
    ct_waitq_t waiters;
} ct_shard_t;

/* FNV-1a, 64 bits: a stable hash of a key's bytes (the same in every
 * process and on every machine, as a partitioning must be). */
uint64_t ct_shard_hash(const void *bytes, size_t len);

/* The shard of hash among n (n >= 1), by jump consistent hashing. */
size_t ct_shard_jump(uint64_t hash, size_t n);

/* Initializes s over cfg->shards. Returns 0, CT_EINVAL (no shards, one
 * listed twice or already wrapped, no key function) or UV_ENOMEM; on error
 * the shards are still the caller's. */
int ct_shard_init(ct_shard_t *s, ct_loop_t *loop, const ct_shard_config_t *cfg);

/* Shard i's figures. Returns 0, or CT_EINVAL if there is no shard i. */
int ct_shard_stats(const ct_shard_t *s, size_t i, ct_shard_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
