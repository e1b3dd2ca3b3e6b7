/* Intrusive circular doubly-linked lists over ct_link_t (private). */
#ifndef CTOWER_SRC_LIST_H
#define CTOWER_SRC_LIST_H

#include "ctower/loop.h"

static inline void ct_list_init(ct_link_t *head) {
    head->prev = head;
    head->next = head;
}

static inline int ct_list_empty(const ct_link_t *head) {
    return head->next == head;
}

static inline void ct_list_push_back(ct_link_t *head, ct_link_t *node) {
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void ct_list_remove(ct_link_t *node) {
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node;
    node->next = node;
}

/* Moves every node of from to the back of to, in order; from ends empty. */
static inline void ct_list_splice_back(ct_link_t *to, ct_link_t *from) {
    if (ct_list_empty(from)) return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    ct_list_init(from);
}

static inline ct_link_t *ct_list_pop_front(ct_link_t *head) {
    ct_link_t *node = head->next;
    if (node == head) return NULL;
    ct_list_remove(node);
    return node;
}

#endif
