/* ct_service_fn_t: a plain C function as a service, and the echo service.
 *
 * The function runs inside ct_service_call() and its result completes the op
 * at once (the callback still runs from a fresh stack). It is always ready.
 */
#ifndef CTOWER_SERVICE_FN_H
#define CTOWER_SERVICE_FN_H

#include "ctower/service.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Turns request (owned by the function from now on) into *response. Returns 0,
 * or a negative error code (CT_SERVICE_ERROR(n) for the function's own), in
 * which case *response is ignored. */
typedef int (*ct_service_fn_cb)(void *ctx, void *request, void **response);

/* A service that answers with a plain C function. */
typedef struct ct_service_fn {
    ct_service_t service; /* first: a ct_service_fn_t * is a ct_service_t * */
    /* private */
    ct_service_fn_cb fn;
    void *ctx;
} ct_service_fn_t;

/* Initializes svc to answer each request with fn(ctx, request, &response).
 * Returns 0, or CT_EINVAL if svc, loop or fn is NULL. */
int ct_service_fn_init(ct_service_fn_t *svc, ct_loop_t *loop, ct_service_fn_cb fn, void *ctx);

/* Initializes svc as the echo service: the response is the request itself.
 * Returns 0 or CT_EINVAL. */
int ct_echo_service_init(ct_service_fn_t *svc, ct_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif
