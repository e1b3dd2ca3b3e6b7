/* The slab tag store: tag = generation << index_bits | slot index. A slot's
 * generation moves on each time it is tagged, so an answer to an earlier use
 * of the slot no longer matches. */
#include "slab_tags.h"

#include <stdlib.h>
#include <uv.h>

#define MAX_CAPACITY ((size_t)1 << 24) /* leaves at least 8 bits of generation */

static int slab_assign(ct_tag_store_t *store, void *request, size_t slot) {
    return ct_slab_assign((ct_slab_tags_t *)store, request, slot);
}

static int slab_finish(ct_tag_store_t *store, const void *response, size_t *slot) {
    return ct_slab_finish((ct_slab_tags_t *)store, response, slot);
}

static void slab_unassign(ct_tag_store_t *store, size_t slot) {
    ct_slab_unassign((ct_slab_tags_t *)store, slot);
}

const ct_tag_store_vtable_t ct_slab_tags_vtable = {slab_assign, slab_finish, slab_unassign};

int ct_slab_tags_init(ct_slab_tags_t *t, size_t capacity, ct_tag_get_fn get, ct_tag_set_fn set) {
    if (!t || !get || !set || capacity == 0 || capacity > MAX_CAPACITY) return CT_EINVAL;
    t->uses = calloc(capacity, sizeof *t->uses);
    if (!t->uses) return UV_ENOMEM;
    t->store.vtable = &ct_slab_tags_vtable;
    t->store.capacity = capacity;
    t->get = get;
    t->set = set;
    t->index_bits = 0;
    while (((size_t)1 << t->index_bits) < capacity)
        t->index_bits++;
    t->index_mask = (uint32_t)(((uint64_t)1 << t->index_bits) - 1);
    t->generation_mask = (uint32_t)(0xffffffffu >> t->index_bits);
    return 0;
}

void ct_slab_tags_free(ct_slab_tags_t *t) {
    free(t->uses);
    t->uses = NULL;
}

/* One load or store and a byte swap (four per request in multiplex mode);
 * the client and server recognize these two and do it inline. */
uint32_t ct_buf_get_tag(const void *msg) {
    return ct_buf_tag_inline(msg);
}

void ct_buf_set_tag(void *msg, uint32_t tag) {
    ct_buf_set_tag_inline(msg, tag);
}
