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

typedef struct ct_buf {
    char *base; /* points just past the header, in the same allocation */
    size_t len;
    size_t cap;
} ct_buf_t;

/* A buffer with room for cap bytes and len 0, or NULL if out of memory. */
ct_buf_t *ct_buf_new(size_t cap);

/* A buffer holding a copy of len bytes at data, or NULL if out of memory. */
ct_buf_t *ct_buf_from(const void *data, size_t len);

/* Frees buf (NULL is allowed). */
void ct_buf_free(ct_buf_t *buf);

/* ct_buf_free() in the shape of a free_msg hook; ctx is ignored. */
void ct_buf_free_msg(void *msg, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
