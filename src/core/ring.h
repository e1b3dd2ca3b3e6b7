/* Positions in fixed-capacity rings of indexes or pointers (private).
 *
 * The capacity is a runtime value, so `% cap` compiles to a divide
 * instruction, tens of cycles; rings are stepped several times per message,
 * and those divides were a visible share of the whole request path. A compare
 * and a subtract give the same positions. */
#ifndef CTOWER_SRC_RING_H
#define CTOWER_SRC_RING_H

#include <stddef.h>

/* The position offset steps after head; needs head < cap and offset <= cap. */
static inline size_t ct_ring_pos(size_t head, size_t offset, size_t cap) {
    size_t i = head + offset;
    return i >= cap ? i - cap : i;
}

#endif
