/* The shutdown chain: listeners, then services and stacks one by one, then
 * the loop. Each callback of the chain finds the ct_shutdown_t through the
 * data field of what it closed, borrowed for the length of that close and
 * given back first thing in the callback. */
#include "ctower/shutdown.h"
#include "ctower/error.h"

#include <string.h>

static void close_next(ct_shutdown_t *sd);

static void on_loop_closed(ct_loop_t *loop) {
    ct_shutdown_t *sd = loop->data;
    loop->data = sd->saved_loop_data;
    if (sd->cb) sd->cb(sd, sd->status); /* last: it may free sd */
}

static void on_timer_closed(uv_handle_t *handle) {
    ct_shutdown_t *sd = CT_CONTAINER_OF(handle, ct_shutdown_t, deadline);
    int r;
    sd->saved_loop_data = sd->loop->data;
    sd->loop->data = sd;
    if ((r = ct_loop_close(sd->loop, on_loop_closed)) != 0) {
        /* tasks still queued on the loop (of something not given to the
         * shutdown): the callback says so, the loop stays */
        sd->loop->data = sd->saved_loop_data;
        if (!sd->status) sd->status = r;
        if (sd->cb) sd->cb(sd, sd->status);
    }
}

static void finish(ct_shutdown_t *sd) {
    uv_timer_stop(&sd->deadline);
    uv_close((uv_handle_t *)&sd->deadline, on_timer_closed);
}

/* ---- services and stacks, in order ------------------------------------------------ */

static void on_service_closed(ct_service_t *svc) {
    ct_shutdown_t *sd = svc->data;
    svc->data = sd->saved_data;
    sd->next++;
    close_next(sd);
}

static void close_service(ct_shutdown_t *sd, ct_service_t *svc) {
    if (ct_service_close(svc, on_service_closed) != 0) { /* closed already */
        svc->data = sd->saved_data;
        sd->next++;
        close_next(sd);
    }
}

static void on_service_drained(ct_service_t *svc, int status) {
    ct_shutdown_t *sd = svc->data;
    if (sd->forcing) return; /* the close below the deadline's is under way */
    if (status != 0 && status != CT_ENOTSUP && !sd->status) sd->status = status;
    close_service(sd, svc);
}

static void on_stack_closed(ct_stack_t *stack) {
    ct_shutdown_t *sd = stack->data;
    stack->data = sd->saved_data;
    sd->next++;
    close_next(sd);
}

static void close_stack(ct_shutdown_t *sd, ct_stack_t *stack) {
    if (ct_stack_close(stack, on_stack_closed) != 0) {
        stack->data = sd->saved_data;
        sd->next++;
        close_next(sd);
    }
}

static void on_stack_drained(ct_stack_t *stack, int status) {
    ct_shutdown_t *sd = stack->data;
    if (sd->forcing) return;
    if (status != 0 && status != CT_ENOTSUP && !sd->status) sd->status = status;
    close_stack(sd, stack);
}

/* Drains the next one (or closes it, past the deadline), or ends. */
static void close_next(ct_shutdown_t *sd) {
    ct_service_t *svc;
    ct_stack_t *stack;
    sd->forcing = 0;
    if (sd->next == sd->nafter) {
        finish(sd);
        return;
    }
    svc = sd->after[sd->next].service;
    stack = sd->after[sd->next].stack;
    if (stack) {
        sd->saved_data = stack->data;
        stack->data = sd;
        if (!sd->late && ct_stack_shutdown(stack, on_stack_drained) == 0) return;
        close_stack(sd, stack);
        return;
    }
    sd->saved_data = svc->data;
    svc->data = sd;
    if (!sd->late && ct_service_shutdown(svc, on_service_drained) == 0) return;
    close_service(sd, svc);
}

/* ---- listeners ------------------------------------------------------------------------ */

static void on_listener_closed(ct_listener_t *l) {
    ct_shutdown_t *sd = l->data;
    size_t i;
    for (i = 0; i < sd->nlisteners; i++)
        if (sd->listeners[i] == l) l->data = sd->saved_listener_data[i];
    if (++sd->listeners_closed == sd->nlisteners) close_next(sd);
}

/* Past the deadline: the listeners cut their drains short by themselves;
 * a service still draining is closed now, and the rest without a drain. */
static void on_deadline(uv_timer_t *timer) {
    ct_shutdown_t *sd = CT_CONTAINER_OF(timer, ct_shutdown_t, deadline);
    ct_stack_t *stack;
    ct_service_t *svc;
    sd->late = 1;
    sd->status = CT_ETIMEDOUT;
    if (sd->listeners_closed < sd->nlisteners || sd->next == sd->nafter) return;
    stack = sd->after[sd->next].stack;
    svc = stack ? stack->service : sd->after[sd->next].service;
    /* draining, not yet closing: close it now */
    if (ct_service_is_closing(svc) || !ct_service_is_shutting_down(svc)) return;
    sd->forcing = 1;
    if (stack)
        close_stack(sd, stack);
    else
        close_service(sd, svc);
}

int ct_shutdown_init(ct_shutdown_t *sd, ct_loop_t *loop) {
    int r;
    if (!sd || !loop) return CT_EINVAL;
    memset(sd, 0, sizeof *sd);
    sd->loop = loop;
    if ((r = uv_timer_init(loop->uv, &sd->deadline)) != 0) return r;
    return 0;
}

int ct_shutdown_add_listener(ct_shutdown_t *sd, ct_listener_t *l) {
    if (!sd || !l || sd->started || sd->nlisteners == CT_SHUTDOWN_MAX) return CT_EINVAL;
    sd->listeners[sd->nlisteners++] = l;
    return 0;
}

int ct_shutdown_add_service(ct_shutdown_t *sd, ct_service_t *svc) {
    if (!sd || !svc || sd->started || sd->nafter == CT_SHUTDOWN_MAX) return CT_EINVAL;
    sd->after[sd->nafter].service = svc;
    sd->after[sd->nafter++].stack = NULL;
    return 0;
}

int ct_shutdown_add_stack(ct_shutdown_t *sd, ct_stack_t *stack) {
    if (!sd || !stack || sd->started || sd->nafter == CT_SHUTDOWN_MAX) return CT_EINVAL;
    sd->after[sd->nafter].service = NULL;
    sd->after[sd->nafter++].stack = stack;
    return 0;
}

int ct_shutdown_start(ct_shutdown_t *sd, uint64_t deadline_ms, ct_shutdown_done_cb cb) {
    size_t i;
    if (!sd) return CT_EINVAL;
    if (sd->started) return CT_ECLOSING;
    sd->started = 1;
    sd->cb = cb;
    if (deadline_ms) uv_timer_start(&sd->deadline, on_deadline, deadline_ms, 0);
    if (sd->nlisteners == 0) {
        close_next(sd);
        return 0;
    }
    for (i = 0; i < sd->nlisteners; i++) {
        ct_listener_t *l = sd->listeners[i];
        sd->saved_listener_data[i] = l->data;
        l->data = sd;
        if (ct_listener_shutdown(l, deadline_ms, on_listener_closed) != 0) {
            l->data = sd->saved_listener_data[i]; /* closing already: counted as closed */
            if (++sd->listeners_closed == sd->nlisteners) close_next(sd);
        }
    }
    return 0;
}
