/* The implicit tag store of pipelines: the n-th response answers the n-th
 * request sent (private). */
#ifndef CTOWER_SRC_ORDER_TAGS_H
#define CTOWER_SRC_ORDER_TAGS_H

#include "ctower/client.h"
#include "ctower/error.h"
#include "../core/ring.h"

/* ring must hold capacity entries. */
void ct_order_tags_init(ct_order_tags_t *tags, size_t *ring, size_t capacity);

/* The store's operations, inline for the client's own use (through the
 * vtable they cost an indirect call each, twice per request). */
static inline void ct_order_tags_push(ct_order_tags_t *t, size_t slot) {
    t->ring[ct_ring_pos(t->head, t->count, t->store.capacity)] = slot;
    t->count++;
}

static inline int ct_order_tags_pop(ct_order_tags_t *t, size_t *slot) {
    if (t->count == 0) return CT_EDESYNC; /* nothing was asked */
    *slot = t->ring[t->head];
    t->head = ct_ring_pos(t->head, 1, t->store.capacity);
    t->count--;
    return 0;
}

#endif
