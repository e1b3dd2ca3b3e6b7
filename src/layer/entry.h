/* What the layers that wrap each call in an op of their own (an "entry":
 * limit, balance, shard, breaker) do the same way (private). The entry
 * keeps its caller's op in *outer until the caller is answered: by the
 * inner op's answer, or earlier by a cancel, after which the answer that
 * still comes has nobody to go to. */
#ifndef CTOWER_SRC_LAYER_ENTRY_H
#define CTOWER_SRC_LAYER_ENTRY_H

#include "ctower/error.h"
#include "ctower/op.h"
#include "ctower/transport.h"

/* The inner op answered: the caller gets it from here (the inner op's
 * callback is a fresh stack), or, answered already, the response is freed. */
static inline void ct_entry_answer(ct_op_t **outer, const ct_op_t *inner, int status,
                                   void *response, ct_msg_free_fn free_msg, void *free_ctx) {
    ct_op_t *op = *outer;
    if (!op) { /* canceled: nobody waits for it */
        if (response && free_msg) free_msg(response, free_ctx);
        return;
    }
    *outer = NULL;
    ct_op_complete_now(op, status, inner->cause, response);
}

/* The caller cancels: answered CT_ECANCELED now; the inner op is canceled,
 * and its callback gives the entry back. */
static inline void ct_entry_cancel(ct_op_t **outer, ct_op_t *inner) {
    ct_op_t *op = *outer;
    *outer = NULL;
    ct_op_complete(op, CT_ECANCELED, 0, NULL);
    ct_op_cancel(inner);
}

#endif
