/* ct_tag_store_t: how a response finds its request.
 *
 * A client gives every request it sends a slot (0 <= slot < capacity). The
 * tag store writes into the request what will let it find that slot again,
 * and reads it back from the response: the C form of tokio-tower's TagStore.
 * Tags live in the user's message format, so the store is an interface that
 * the user implements for their messages. ct_slab_tags_t is a ready one for
 * messages that carry a 32-bit tag field.
 *
 * (A pipeline client needs no store: responses answer requests in the order
 * they were sent.)
 */
#ifndef CTOWER_TAG_STORE_H
#define CTOWER_TAG_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_tag_store ct_tag_store_t;

/* What a tag store implements. */
typedef struct ct_tag_store_vtable {
    /* Tags request, which is about to be sent for slot. Returns 0, or a
     * negative error that fails this request alone. */
    int (*assign)(ct_tag_store_t *store, void *request, size_t slot);
    /* Finds the slot that response answers and retires its tag: returns 0
     * and sets *slot, or CT_EDESYNC if the response answers no tag in use
     * (unknown, stale, or already answered). */
    int (*finish)(ct_tag_store_t *store, const void *response, size_t *slot);
    /* May be NULL. Gives back the tag that the last assign gave to slot, whose
     * request was not sent after all (the transport was full, or could not
     * encode it). With it the client sends first and asks the transport for
     * room only when a send is refused, and a request the codec cannot carry
     * fails alone; without it, the client asks for room before every send,
     * and a request the codec cannot carry ends the client. */
    void (*unassign)(ct_tag_store_t *store, size_t slot);
} ct_tag_store_vtable_t;

/* How a multiplex client finds a response's request: tags assigned and retired. */
struct ct_tag_store {
    const ct_tag_store_vtable_t *vtable; /* the store's operations */
    size_t capacity; /* slots it can tell apart; bounds the client's in-flight */
};

/* ---- the slab store: a 32-bit tag field --------------------------------- */

typedef uint32_t (*ct_tag_get_fn)(const void *msg);
/* Writes tag into the message msg. */
typedef void (*ct_tag_set_fn)(void *msg, uint32_t tag);

/* Tags are the slot index in the low bits and a generation in the high bits,
 * bumped each time a slot is reused: an answer that comes after its slot was
 * handed to another request carries the old generation and is refused, never
 * delivered to the new request. (A generation wraps after 2^(32 - index bits)
 * reuses of one slot.) */
typedef struct ct_slab_tags {
    ct_tag_store_t store; /* first: a ct_slab_tags_t * is a ct_tag_store_t * */
    /* private */
    ct_tag_get_fn get;
    ct_tag_set_fn set;
    struct ct_slab_use {
        uint32_t generation;
        uint32_t in_use;
    } * uses; /* per slot: both in one place, one cache line per request */
    unsigned index_bits;
    uint32_t index_mask, generation_mask; /* from index_bits, once */
} ct_slab_tags_t;

/* Initializes tags for up to capacity (1 .. 2^24) requests in flight, reading
 * and writing the tag field through get and set. Returns 0, CT_EINVAL or
 * UV_ENOMEM. */
int ct_slab_tags_init(ct_slab_tags_t *tags, size_t capacity, ct_tag_get_fn get, ct_tag_set_fn set);

/* Frees what ct_slab_tags_init() allocated. Only once no client uses it. */
void ct_slab_tags_free(ct_slab_tags_t *tags);

/* Tag accessors for ct_buf_t messages whose payload starts with a 32-bit
 * big-endian tag (the message must hold at least 4 bytes; get reads 0 from a
 * shorter one, set leaves it alone). A slab store with ct_buf_set_tag refuses
 * a shorter request with CT_EINVAL: that request fails alone. */
uint32_t ct_buf_get_tag(const void *msg);
void ct_buf_set_tag(void *msg, uint32_t tag);

#ifdef __cplusplus
}
#endif
#endif
