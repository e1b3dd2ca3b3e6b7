/* The backends of `ctower proxy`: each a reconnecting client under a timeout
 * layer, and over several of them, or over those a file names, a balancer
 * (ct_balance_t), or with --shard a sharding layer (ct_shard_t: each Redis
 * command to the backend that holds its key). With --backends-file the set follows the file: read
 * at start and again on each reload (SIGHUP), a backend gone from the file is removed (its requests
 * in flight are answered first) and a new one added, while the proxy runs. */
#ifndef CTOWER_TOOLS_BACKENDS_H
#define CTOWER_TOOLS_BACKENDS_H

#include "options.h"
#include "access_log.h"
#include "redis_keys.h"

typedef struct backend {
    ct_reconnect_t client;
    ct_timeout_t timeout; /* over the client */
    ct_breaker_t breaker; /* --breaker: over the timeout layer */
    ct_observe_t observe; /* its requests, errors and latency: over the breaker or timeout */
    ct_service_t *top;    /* the backend as a service: the observing layer */
    char address[256];
    int id;       /* in the balancer */
    int removing; /* taken out of the balancer, draining */
    struct backend_set *set;
} backend_t;

typedef struct backend_set {
    ct_loop_t *ct;
    const options_t *o;
    wire_t *wire;
    backend_t *list[OPTIONS_MAX_BACKENDS];
    int n;
    int balanced; /* a balancer over them (several, or a file) */
    ct_balance_t balance;
    int sharded; /* --shard: each request to the backend its key names */
    ct_shard_t shard;
    ct_service_t *service; /* the set as one service: the balancer, or the one backend */
    ct_stats_t *stats;     /* where each backend's metrics go (may be NULL) */
    access_log_t *log;     /* told which backend each request goes to (may be NULL) */
} backend_set_t;

/* The backends the options name (positional, or --backends-file), their
 * metrics in stats (may be NULL), labelled backend="ADDRESS", and each
 * request's backend told to log (may be NULL). Returns
 * 0, or -1 after saying what was wrong. */
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

/* Frees what is left once the service stack over the set has closed. */
void backend_set_free(backend_set_t *s);

#endif
