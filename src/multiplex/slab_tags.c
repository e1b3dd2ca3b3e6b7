/* The slab tag store: tag = generation << index_bits | slot index. A slot's
 * generation moves on each time it is tagged, so an answer to an earlier use
 * of the slot no longer matches. */
#include "ctower/tag_store.h"
#include "ctower/buf.h"
#include "ctower/error.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_CAPACITY ((size_t)1 << 24) /* leaves at least 8 bits of generation */

static uint32_t index_mask(const ct_slab_tags_t *t) {
    return ((uint32_t)1 << t->index_bits) - 1;
}

static int slab_assign(ct_tag_store_t *store, void *request, size_t slot) {
    ct_slab_tags_t *t = (ct_slab_tags_t *)store;
    uint32_t generation_mask = (uint32_t)(0xffffffffu >> t->index_bits);
    if (slot >= store->capacity || t->in_use[slot]) return CT_EINVAL;
    t->generation[slot] = (t->generation[slot] + 1) & generation_mask;
    t->in_use[slot] = 1;
    t->set(request, t->generation[slot] << t->index_bits | (uint32_t)slot);
    return 0;
}

static int slab_finish(ct_tag_store_t *store, const void *response, size_t *slot) {
    ct_slab_tags_t *t = (ct_slab_tags_t *)store;
    uint32_t tag = t->get(response);
    size_t index = tag & index_mask(t);
    if (index >= store->capacity || !t->in_use[index] ||
        t->generation[index] != tag >> t->index_bits)
        return CT_EDESYNC;
    t->in_use[index] = 0;
    *slot = index;
    return 0;
}

/* The generation stays bumped: harmless, as nothing carried the tag. */
static void slab_unassign(ct_tag_store_t *store, size_t slot) {
    ((ct_slab_tags_t *)store)->in_use[slot] = 0;
}

static const ct_tag_store_vtable_t slab_vtable = {slab_assign, slab_finish, slab_unassign};

int ct_slab_tags_init(ct_slab_tags_t *t, size_t capacity, ct_tag_get_fn get, ct_tag_set_fn set) {
    if (!t || !get || !set || capacity == 0 || capacity > MAX_CAPACITY) return CT_EINVAL;
    t->generation = calloc(capacity, sizeof *t->generation);
    t->in_use = calloc(capacity, 1);
    if (!t->generation || !t->in_use) {
        ct_slab_tags_free(t);
        return UV_ENOMEM;
    }
    t->store.vtable = &slab_vtable;
    t->store.capacity = capacity;
    t->get = get;
    t->set = set;
    t->index_bits = 0;
    while (((size_t)1 << t->index_bits) < capacity)
        t->index_bits++;
    return 0;
}

void ct_slab_tags_free(ct_slab_tags_t *t) {
    free(t->generation);
    free(t->in_use);
    t->generation = NULL;
    t->in_use = NULL;
}

/* One load or store and a byte swap (four per request in multiplex mode). */
uint32_t ct_buf_get_tag(const void *msg) {
    const ct_buf_t *b = msg;
    uint32_t be;
    if (b->len < 4) return 0;
    memcpy(&be, b->base, 4);
    return be32toh(be);
}

void ct_buf_set_tag(void *msg, uint32_t tag) {
    ct_buf_t *b = msg;
    uint32_t be = htobe32(tag);
    if (b->len < 4) return;
    memcpy(b->base, &be, 4);
}
