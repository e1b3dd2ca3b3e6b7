/* Send order as a tag store: assign remembers the order, finish pops it. */
#include "order_tags.h"

static int order_assign(ct_tag_store_t *store, void *request, size_t slot) {
    (void)request;
    ct_order_tags_push((ct_order_tags_t *)store, slot);
    return 0;
}

static int order_finish(ct_tag_store_t *store, const void *response, size_t *slot) {
    (void)response;
    return ct_order_tags_pop((ct_order_tags_t *)store, slot);
}

/* Only the last assign is ever given back, so it is the newest entry. */
static void order_unassign(ct_tag_store_t *store, size_t slot) {
    ct_order_tags_t *t = (ct_order_tags_t *)store;
    (void)slot;
    t->count--;
}

static const ct_tag_store_vtable_t order_vtable = {order_assign, order_finish, order_unassign};

void ct_order_tags_init(ct_order_tags_t *t, size_t *ring, size_t capacity) {
    t->store.vtable = &order_vtable;
    t->store.capacity = capacity;
    t->ring = ring;
    t->head = 0;
    t->count = 0;
}
