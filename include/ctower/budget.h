/* ct_budget_t: the bytes that the connections of one loop may hold
 * together, in requests read and not answered (servers) and in output the
 * peer has not taken (streams).
 *
 * Past limit, whoever holds anything stops growing: a server that holds a
 * request or an answer stops reading until its own answers have left, and
 * a stream that holds unwritten output says PENDING to senders until it is
 * written. The connections that hold the most (peers that send and never
 * read) therefore stop where they are, while a connection that holds
 * nothing (a client waiting for its answer) is still read and answered.
 * Nobody needs waking when the budget frees: each connection resumes on
 * its own progress.
 *
 * Caller-allocated, one per loop (no lock); shared by pointer through
 * ct_server_config_t.budget and ct_stream_config_t.budget. */
#ifndef CTOWER_BUDGET_H
#define CTOWER_BUDGET_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The bytes the connections of one loop may hold together, and who holds the most. */
typedef struct ct_budget {
    size_t limit; /* bytes */
    size_t used;  /* counted by its users; read it, do not write it */
} ct_budget_t;

/* Non-zero if b (NULL: no budget) is spent. */
static inline int ct_budget_spent(const ct_budget_t *b) {
    return b && b->used >= b->limit;
}

#ifdef __cplusplus
}
#endif

#endif
