/* The backends of `ctower proxy`: a client stack (ct_stack_t) over them,
 * each a reconnecting client under a timeout layer (and a breaker with
 * --breaker), a balancer over several of them or over those a file names,
 * or with --shard a sharding layer (each Redis command to the backend that
 * holds its key), and a retry layer on top with --retry. With
 * --backends-file the set follows the file: read at start and again on
 * each reload (SIGHUP), a backend gone from the file is removed (its
 * requests in flight are answered first) and a new one added, while the
 * proxy runs. */
#ifndef CTOWER_TOOLS_BACKENDS_H
#define CTOWER_TOOLS_BACKENDS_H

#include "options.h"
#include "access_log.h"
#include "redis_keys.h"

typedef struct backend_set {
    ct_loop_t *ct;
    const options_t *o;
    wire_t *wire;
    ct_stack_t stack;
    ct_retry_config_t retry;
    ct_breaker_config_t breaker;
    char names[OPTIONS_MAX_BACKENDS][256]; /* the backends in use, in the order added */
    int n;
    ct_service_t *service; /* the set as one service: the stack */
    ct_stats_t *stats;     /* where each backend's metrics go (may be NULL) */
    access_log_t *log;     /* told which backend each request goes to (may be NULL) */
} backend_set_t;

/* The backends the options name (positional, or --backends-file), their
 * metrics in stats (may be NULL), labelled backend="ADDRESS", and each
 * request's backend told to log (may be NULL). Returns 0, or -1 after
 * saying what was wrong. The set closes with the service over it. */
int backend_set_init(backend_set_t *s, ct_loop_t *ct, const options_t *o, wire_t *wire,
                     ct_stats_t *stats, access_log_t *log);

/* --backends-file: reads the file again, removes the backends it no longer
 * names and adds the new ones; says what changed on stderr. A file that
 * cannot be read, or names a bad address or too many, changes nothing
 * (-1, said; else 0). */
int backend_set_reload(backend_set_t *s);

/* A line per backend on stderr: its connects, and with a balancer its
 * requests, failures, requests in flight and state. */
void backend_set_report(const backend_set_t *s);

/* The retry layer's counts (zeros without --retry). */
ct_retry_counts_t backend_set_retries(const backend_set_t *s);

#endif
