/* nghttp2 allocates for every stream: the stream itself, the header fields
 * it copies from each request or response submitted, the frames it queues,
 * the values HPACK decodes. In front of malloc, each session keeps the
 * blocks it frees, by size class (powers of two from 32 bytes to 16 KiB),
 * up to CACHE_BYTES in all: after warm-up a connection's requests allocate
 * nothing, and an idle connection keeps at most that much. Larger blocks
 * (the HPACK tables, done once) go to malloc. */
#include "http2_mem.h"

#include <stdlib.h>
#include <string.h>

enum { MIN_SHIFT = 5, LARGE = CT_HTTP2_MEM_CLASSES, CACHE_BYTES = 64u << 10 };

/* Before every block: its class (LARGE: from malloc as it is) and, for a
 * large one, its size. 16 bytes keep the block aligned as malloc's. */
typedef struct header {
    size_t cls;
    size_t size;
} header_t;

static size_t class_size(size_t cls) {
    return (size_t)1 << (cls + MIN_SHIFT);
}

/* The smallest class that holds size bytes, or LARGE. */
static size_t class_of(size_t size) {
    size_t bits;
    if (size <= class_size(0)) return 0;
    bits = (size_t)(64 - __builtin_clzll((unsigned long long)(size - 1))); /* 2^bits >= size */
    return bits - MIN_SHIFT < LARGE ? bits - MIN_SHIFT : LARGE;
}

static void *mem_malloc(size_t size, void *user) {
    ct_http2_mem_t *mem = user;
    size_t cls = class_of(size);
    header_t *h;
    if (cls < LARGE && mem->free[cls]) {
        h = mem->free[cls];
        memcpy(&mem->free[cls], h + 1, sizeof(void *)); /* the next free block */
        mem->cached -= class_size(cls);
        return h + 1;
    }
    h = malloc(sizeof *h + (cls < LARGE ? class_size(cls) : size));
    if (!h) return NULL;
    h->cls = cls;
    h->size = size;
    return h + 1;
}

static void mem_free(void *ptr, void *user) {
    ct_http2_mem_t *mem = user;
    header_t *h;
    if (!ptr) return;
    h = (header_t *)ptr - 1;
    if (h->cls == LARGE || mem->cached + class_size(h->cls) > CACHE_BYTES) {
        free(h);
        return;
    }
    memcpy(ptr, &mem->free[h->cls], sizeof(void *));
    mem->free[h->cls] = h;
    mem->cached += class_size(h->cls);
}

static void *mem_calloc(size_t n, size_t size, void *user) {
    void *p;
    if (size && n > (size_t)-1 / size) return NULL;
    if ((p = mem_malloc(n * size, user)) != NULL) memset(p, 0, n * size);
    return p;
}

static void *mem_realloc(void *ptr, size_t size, void *user) {
    header_t *h = ptr ? (header_t *)ptr - 1 : NULL;
    size_t room = h ? (h->cls == LARGE ? h->size : class_size(h->cls)) : 0;
    void *grown;
    if (h && size <= room && h->cls != LARGE) return ptr; /* it fits where it is */
    if (!(grown = mem_malloc(size, user))) return NULL;
    if (h) memcpy(grown, ptr, room < size ? room : size);
    mem_free(ptr, user);
    return grown;
}

nghttp2_mem ct_http2_mem_allocator(ct_http2_mem_t *mem) {
    nghttp2_mem m;
    m.mem_user_data = mem;
    m.malloc = mem_malloc;
    m.free = mem_free;
    m.calloc = mem_calloc;
    m.realloc = mem_realloc;
    return m;
}

void ct_http2_mem_destroy(ct_http2_mem_t *mem) {
    size_t cls;
    for (cls = 0; cls < LARGE; cls++)
        while (mem->free[cls]) {
            header_t *h = mem->free[cls];
            memcpy(&mem->free[cls], h + 1, sizeof(void *));
            free(h);
        }
    mem->cached = 0;
}
