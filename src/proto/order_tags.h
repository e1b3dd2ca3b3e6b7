/* The implicit tag store of pipelines: the n-th response answers the n-th
 * request sent (private). */
#ifndef CTOWER_SRC_ORDER_TAGS_H
#define CTOWER_SRC_ORDER_TAGS_H

#include "ctower/client.h"

/* ring must hold capacity entries. */
void ct_order_tags_init(ct_order_tags_t *tags, size_t *ring, size_t capacity);

#endif
