/* The slab tag store's operations, inline (private): the client uses them
 * directly when its store is a ct_slab_tags_t, instead of two indirect calls
 * each way (the store's, then the tag accessor's), and so do the store's own
 * vtable functions. Tags of ct_buf_t messages (ct_buf_get_tag/ct_buf_set_tag)
 * are read and written inline too. */
#ifndef CTOWER_SRC_SLAB_TAGS_H
#define CTOWER_SRC_SLAB_TAGS_H

#include "ctower/buf.h"
#include "ctower/error.h"
#include "ctower/tag_store.h"

#include <endian.h>
#include <string.h>

extern const ct_tag_store_vtable_t ct_slab_tags_vtable;

static inline int ct_is_slab_store(const ct_tag_store_t *store) {
    return store->vtable == &ct_slab_tags_vtable;
}

static inline uint32_t ct_buf_tag_inline(const void *msg) {
    const ct_buf_t *b = msg;
    uint32_t be;
    if (b->len < 4) return 0;
    memcpy(&be, b->base, 4);
    return be32toh(be);
}

static inline void ct_buf_set_tag_inline(void *msg, uint32_t tag) {
    ct_buf_t *b = msg;
    uint32_t be = htobe32(tag);
    if (b->len < 4) return;
    memcpy(b->base, &be, 4);
}

static inline int ct_slab_assign(ct_slab_tags_t *t, void *request, size_t slot) {
    uint32_t tag;
    struct ct_slab_use *use;
    if (slot >= t->store.capacity || t->uses[slot].in_use) return CT_EINVAL;
    /* A ct_buf shorter than its tag field cannot carry a tag: sent untagged,
     * its answer would match no request and end the client (CT_EDESYNC). */
    if (t->set == ct_buf_set_tag && ((const ct_buf_t *)request)->len < 4) return CT_EINVAL;
    use = &t->uses[slot];
    use->generation = (use->generation + 1) & t->generation_mask;
    use->in_use = 1;
    tag = use->generation << t->index_bits | (uint32_t)slot;
    if (t->set == ct_buf_set_tag)
        ct_buf_set_tag_inline(request, tag);
    else
        t->set(request, tag);
    return 0;
}

static inline int ct_slab_finish(ct_slab_tags_t *t, const void *response, size_t *slot) {
    uint32_t tag = t->get == ct_buf_get_tag ? ct_buf_tag_inline(response) : t->get(response);
    size_t index = tag & t->index_mask;
    struct ct_slab_use *use;
    if (index >= t->store.capacity) return CT_EDESYNC;
    use = &t->uses[index];
    if (!use->in_use || use->generation != tag >> t->index_bits) return CT_EDESYNC;
    use->in_use = 0;
    *slot = index;
    return 0;
}

/* The generation stays bumped: harmless, as nothing carried the tag. */
static inline void ct_slab_unassign(ct_slab_tags_t *t, size_t slot) {
    t->uses[slot].in_use = 0;
}

#endif
