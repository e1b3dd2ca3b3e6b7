/* The errors that say a service is broken, rather than that one call went
 * wrong (private): the balancer leaves an endpoint out for them, and the
 * circuit breaker counts them. It could not connect, its connection broke,
 * it answered nothing that was asked, it did not answer in time, or its own
 * breaker is open. A service's own error (CT_SERVICE_ERROR), an overloaded
 * service or a canceled call say nothing of the kind. */
#ifndef CTOWER_SRC_LAYER_FAILURE_H
#define CTOWER_SRC_LAYER_FAILURE_H

#include "ctower/error.h"

static inline int ct_failure_default(int status) {
    switch (status) {
    case CT_ECONNECT:
    case CT_ESENDBROKEN:
    case CT_ERECVBROKEN:
    case CT_EDESYNC:
    case CT_ETIMEDOUT:
    case CT_EOPEN:
        return 1;
    default:
        return 0;
    }
}

#endif
