/* Memory given back after a burst: a process that served a flood of
 * connections keeps the heap they freed unless told to return it, so RSS
 * would stay at the flood's peak. Every TRIM_PERIOD_MS, the loop's pools
 * keep at most TRIM_KEEP free buffers and the C library returns free heap
 * pages to the system (malloc_trim). The cost is paid when idle memory
 * exists: a steady load re-takes what it needs, a few mallocs per period. */
#ifndef CTOWER_TOOLS_TRIM_H
#define CTOWER_TOOLS_TRIM_H

#include <ctower/buf.h>
#include <uv.h>

enum { TRIM_PERIOD_MS = 5000, TRIM_KEEP = 256 };

typedef struct trimmer {
    uv_timer_t timer;
    ct_buf_pool_t *pools[2];
} trimmer_t;

/* Starts trimming pools a and b (b may be NULL) on uv; the timer does not
 * keep the loop alive. */
void trimmer_start(trimmer_t *t, uv_loop_t *uv, ct_buf_pool_t *a, ct_buf_pool_t *b);

/* Stops it (its handle closes with the loop's next turn). */
void trimmer_stop(trimmer_t *t);

#endif
