/* ct_buf_t: a heap byte buffer, the message type for the common case.
 *
 * One allocation holds the header and the bytes. ct_buf_free_msg() fits the
 * free_msg hooks of transports, clients and servers.
 */
#ifndef CTOWER_BUF_H
#define CTOWER_BUF_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A message: len bytes of data at base, in a buffer of cap bytes, allocated with its header. */
typedef struct ct_buf {
    char *base; /* points just past the header, in the same allocation */
    size_t len; /* bytes of data at base */
    size_t cap; /* bytes base has room for */
    /* private */
    struct ct_buf *next_free; /* in a pool's free list */
} ct_buf_t;

/* A buffer with room for cap bytes and len 0, or NULL if out of memory. */
ct_buf_t *ct_buf_new(size_t cap);

/* A buffer holding a copy of len bytes at data, or NULL if out of memory. */
ct_buf_t *ct_buf_from(const void *data, size_t len);

/* Frees buf (NULL is allowed). */
void ct_buf_free(ct_buf_t *buf);

/* ct_buf_free() in the shape of a free_msg hook; ctx is ignored. */
void ct_buf_free_msg(void *msg, void *ctx);

/* A copy of msg (a ct_buf_t) in a new buffer, in the shape of a copy hook
 * (the retry layer's); ctx is ignored. NULL if out of memory. */
void *ct_buf_copy_msg(const void *msg, void *ctx);

/* The memory a ct_buf_t message holds (its capacity): a server's byte
 * bound (ct_server_config_t.msg_size). */
size_t ct_buf_msg_size(const void *msg);

/* A free list of buffers of one size, so that steady-state traffic does not
 * call malloc per message. Single-threaded, like everything on a loop. */
typedef struct ct_buf_pool {
    size_t buf_cap;  /* capacity of pooled buffers */
    size_t max_free; /* free buffers kept at most; the rest go back to malloc */
    /* private */
    ct_buf_t *free_list;
    size_t nfree;
} ct_buf_pool_t;

/* Initializes pool for buffers of buf_cap bytes, keeping up to max_free. */
void ct_buf_pool_init(ct_buf_pool_t *pool, size_t buf_cap, size_t max_free);

/* A buffer with room for at least cap bytes and len 0 (a pooled one when cap
 * fits), or NULL if out of memory. */
ct_buf_t *ct_buf_pool_get(ct_buf_pool_t *pool, size_t cap);

/* Gives buf back: kept for reuse if it is of the pool's size and the pool is
 * not full, freed otherwise. */
void ct_buf_pool_put(ct_buf_pool_t *pool, ct_buf_t *buf);

/* ct_buf_pool_put() in the shape of a free_msg hook; ctx is the pool. */
void ct_buf_pool_free_msg(void *msg, void *ctx);

/* A copy of msg (a ct_buf_t) in a buffer from the pool ctx, in the shape of
 * a copy hook (the retry layer's). NULL if out of memory. */
void *ct_buf_pool_copy_msg(const void *msg, void *ctx);

/* Frees the buffers the pool keeps beyond keep: after a burst, what a
 * quieter load will not use again (the pool never shrinks by itself). */
void ct_buf_pool_trim(ct_buf_pool_t *pool, size_t keep);

/* Frees every buffer the pool keeps. */
void ct_buf_pool_destroy(ct_buf_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif
