/* The allocator behind each HTTP/2 session (private). */
#ifndef CTOWER_SRC_HTTP2_MEM_H
#define CTOWER_SRC_HTTP2_MEM_H

#include "ctower/http2.h"

#include <nghttp2/nghttp2.h>

/* An nghttp2 allocator over mem, which must be zeroed first. */
nghttp2_mem ct_http2_mem_allocator(ct_http2_mem_t *mem);

/* Frees the blocks mem keeps (once the session is deleted). */
void ct_http2_mem_destroy(ct_http2_mem_t *mem);

#endif
