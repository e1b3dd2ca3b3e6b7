/* Memory given back after a burst (trim.h). */
#include "trim.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

static void on_trim(uv_timer_t *timer) {
    trimmer_t *t = timer->data;
    size_t i;
    for (i = 0; i < sizeof t->pools / sizeof t->pools[0]; i++)
        if (t->pools[i]) ct_buf_pool_trim(t->pools[i], TRIM_KEEP);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void trimmer_start(trimmer_t *t, uv_loop_t *uv, ct_buf_pool_t *a, ct_buf_pool_t *b) {
    t->pools[0] = a;
    t->pools[1] = b;
    uv_timer_init(uv, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_trim, TRIM_PERIOD_MS, TRIM_PERIOD_MS);
    uv_unref((uv_handle_t *)&t->timer);
}

void trimmer_stop(trimmer_t *t) {
    uv_close((uv_handle_t *)&t->timer, NULL);
}
