/* ct_shutdown_t: a program's whole shutdown in one call.
 *
 * Before uv_loop_close() can succeed, every listener must drain and close,
 * then the services they called, the client stacks, and the ctower loop:
 * a chain of callbacks. A ct_shutdown_t runs the chain. Give it what the
 * program made, then start it once (from a signal handler's callback, or
 * when the work is done):
 *
 *  1. every listener stops accepting and drains (ct_listener_shutdown():
 *     requests read are answered, idle connections close), within the
 *     deadline;
 *  2. then the services and stacks, in the order they were added: a
 *     service is drained (ct_service_shutdown(), when it can) and closed;
 *     past the deadline what is still draining is closed at once, its
 *     calls failing with CT_ECLOSED;
 *  3. then the ctower loop (ct_loop_close()), and the callback: from then
 *     on nothing of ctower holds a handle, and uv_run() returns.
 *
 * The callback's status is 0, or CT_ETIMEDOUT when the deadline cut a
 * drain short, or ct_loop_close()'s error (CT_EBUSY: tasks still queued,
 * then the loop is not closed). Anything of ctower not given to it (a
 * listener, a timer's user) keeps its handles, and uv_run() goes on. Memory given to it
 * must outlive the callback. While each thing closes, its data field (and
 * the loop's) is borrowed, and given back before anything else of the
 * program's runs for it.
 */
#ifndef CTOWER_SHUTDOWN_H
#define CTOWER_SHUTDOWN_H

#include "ctower/listener.h"
#include "ctower/service.h"
#include "ctower/stack.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CT_SHUTDOWN_MAX = 16 }; /* listeners, and services and stacks, each */

typedef struct ct_shutdown ct_shutdown_t;
/* What ct_shutdown_start() calls back, once the loop has closed. */
typedef void (*ct_shutdown_done_cb)(ct_shutdown_t *shutdown, int status);

/* A program's shutdown: what it closes, in order, and its deadline. */
struct ct_shutdown {
    void *data; /* for the user */
    /* private */
    ct_loop_t *loop;
    ct_listener_t *listeners[CT_SHUTDOWN_MAX];
    size_t nlisteners, listeners_closed;
    struct {
        ct_service_t *service; /* or */
        ct_stack_t *stack;
    } after[CT_SHUTDOWN_MAX];
    size_t nafter, next; /* the one being closed */
    uv_timer_t deadline;
    int started, late, forcing, status;
    ct_shutdown_done_cb cb;
    /* the data fields borrowed while each closes */
    void *saved_listener_data[CT_SHUTDOWN_MAX];
    void *saved_data, *saved_loop_data;
};

/* Initializes shutdown for what runs on loop. Returns 0 or a libuv error
 * (its timer). */
int ct_shutdown_init(ct_shutdown_t *shutdown, ct_loop_t *loop);

/* What to shut down, before ct_shutdown_start(). Each returns 0, or
 * CT_EINVAL (CT_SHUTDOWN_MAX of that kind already, or started). A service
 * added must be one the program closes itself: the top of a stack of
 * layers, not a layer another owns. */
int ct_shutdown_add_listener(ct_shutdown_t *shutdown, ct_listener_t *listener);
int ct_shutdown_add_service(ct_shutdown_t *shutdown, ct_service_t *service);
int ct_shutdown_add_stack(ct_shutdown_t *shutdown, ct_stack_t *stack);

/* Starts it, with deadline_ms for the drains (0: as long as they take).
 * cb (may be NULL) runs once, after the ctower loop has closed. Returns 0,
 * or CT_ECLOSING if started before. */
int ct_shutdown_start(ct_shutdown_t *shutdown, uint64_t deadline_ms, ct_shutdown_done_cb cb);

#ifdef __cplusplus
}
#endif
#endif
