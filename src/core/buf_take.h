/* The pool's common case in line, for the stream's receive loop (private):
 * every frame received takes a buffer, and ct_buf_pool_get() across files
 * stayed a call even with link-time optimization (16 instructions a frame,
 * two frames a request). The buffer's len is the caller's to set. */
#ifndef CTOWER_SRC_BUF_TAKE_H
#define CTOWER_SRC_BUF_TAKE_H

#include "ctower/buf.h"

static inline ct_buf_t *ct_buf_pool_take(ct_buf_pool_t *pool, size_t cap) {
    ct_buf_t *buf = pool->free_list;
    if (cap > pool->buf_cap || !buf) return ct_buf_pool_get(pool, cap);
    pool->free_list = buf->next_free;
    pool->nfree--;
    buf->next_free = NULL;
    return buf;
}

#endif
