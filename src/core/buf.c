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
