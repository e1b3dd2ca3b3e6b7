/* Heap byte buffers: header and bytes in one allocation. */
#include "ctower/buf.h"

#include <stdlib.h>
#include <string.h>

ct_buf_t *ct_buf_new(size_t cap) {
    ct_buf_t *buf;
    if (cap > (size_t)-1 - sizeof *buf) return NULL;
    buf = malloc(sizeof *buf + cap);
    if (!buf) return NULL;
    buf->base = (char *)(buf + 1);
    buf->len = 0;
    buf->cap = cap;
    buf->next_free = NULL;
    return buf;
}

ct_buf_t *ct_buf_from(const void *data, size_t len) {
    ct_buf_t *buf = ct_buf_new(len);
    if (!buf) return NULL;
    if (len) memcpy(buf->base, data, len);
    buf->len = len;
    return buf;
}

void ct_buf_free(ct_buf_t *buf) {
    free(buf);
}

void ct_buf_free_msg(void *msg, void *ctx) {
    (void)ctx;
    free(msg);
}

size_t ct_buf_msg_size(const void *msg) {
    return ((const ct_buf_t *)msg)->cap;
}

void *ct_buf_copy_msg(const void *msg, void *ctx) {
    const ct_buf_t *b = msg;
    (void)ctx;
    return ct_buf_from(b->base, b->len);
}

void ct_buf_pool_init(ct_buf_pool_t *pool, size_t buf_cap, size_t max_free) {
    pool->buf_cap = buf_cap;
    pool->max_free = max_free;
    pool->free_list = NULL;
    pool->nfree = 0;
}

ct_buf_t *ct_buf_pool_get(ct_buf_pool_t *pool, size_t cap) {
    ct_buf_t *buf;
    if (cap > pool->buf_cap) return ct_buf_new(cap);
    buf = pool->free_list;
    if (!buf) return ct_buf_new(pool->buf_cap);
    pool->free_list = buf->next_free;
    pool->nfree--;
    buf->next_free = NULL;
    buf->len = 0;
    return buf;
}

void ct_buf_pool_put(ct_buf_pool_t *pool, ct_buf_t *buf) {
    if (!buf) return;
    if (buf->cap != pool->buf_cap || pool->nfree >= pool->max_free) {
        free(buf);
        return;
    }
    buf->next_free = pool->free_list;
    pool->free_list = buf;
    pool->nfree++;
}

void ct_buf_pool_free_msg(void *msg, void *ctx) {
    ct_buf_pool_put((ct_buf_pool_t *)ctx, (ct_buf_t *)msg);
}

void *ct_buf_pool_copy_msg(const void *msg, void *ctx) {
    const ct_buf_t *b = msg;
    ct_buf_t *copy = ct_buf_pool_get((ct_buf_pool_t *)ctx, b->len);
    if (!copy) return NULL;
    if (b->len) memcpy(copy->base, b->base, b->len);
    copy->len = b->len;
    return copy;
}

void ct_buf_pool_trim(ct_buf_pool_t *pool, size_t keep) {
    while (pool->nfree > keep) {
        ct_buf_t *buf = pool->free_list;
        pool->free_list = buf->next_free;
        pool->nfree--;
        free(buf);
    }
}

void ct_buf_pool_destroy(ct_buf_pool_t *pool) {
    ct_buf_pool_trim(pool, 0);
}
