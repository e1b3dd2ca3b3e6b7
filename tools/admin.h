/* `--admin ADDR` of serve and proxy: an HTTP/1.1 listener of its own, on
 * the first loop, served by ctower's own server, that answers
 *   GET /metrics  the Prometheus text exposition of every loop's stats
 *                 (stats.h), summed over the loops;
 *   GET /healthz  200 "serving" while the process serves, 503 "draining"
 *                 once it shuts down;
 * and 404 for any other path, 405 for another method. Its listener has the
 * same header and body timeouts as the process's (a slow scraper is
 * closed), its own small connection bound, and a request size bound, so
 * that nothing on it disturbs the data path. */
#ifndef CTOWER_TOOLS_ADMIN_H
#define CTOWER_TOOLS_ADMIN_H

#include "options.h"

typedef struct admin admin_t;
typedef void (*admin_closed_fn)(admin_t *a);

struct admin {
    ct_listener_t listener;
    ct_service_fn_t service;
    ct_http_codec_t codec;
    ct_buf_pool_t pool;
    ct_budget_t budget;
    ct_stats_t stats;            /* the admin listener's own metrics */
    const ct_stats_t *loops[65]; /* the loops', then its own */
    size_t nloops;
    int draining;
    admin_closed_fn closed;
    void *data;
};

/* Listens on address, on loop, for the stats of loops[0..n) (n <= 64,
 * registered before: they are read, never changed, from here on). 0, or an
 * error said on stderr. */
int admin_start(admin_t *a, ct_loop_t *loop, const options_t *o, const ct_stats_t *const *loops,
                size_t n);

/* From now on /healthz answers 503. */
void admin_draining(admin_t *a);

/* Shuts the listener down (1 s for scrapes under way), closes the service,
 * then closed(a). */
void admin_close(admin_t *a, admin_closed_fn closed);

#endif
