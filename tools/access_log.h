/* `ctower proxy --access-log FILE`: a line per request, written when its
 * client is answered:
 *
 *   2026-12-07T20:54:33.123Z tcp://127.0.0.1:50412 200 0.000183 tcp://127.0.0.1:7000
 *
 * the time (UTC, milliseconds), the client's address, the outcome (HTTP:
 * the response's status code; other codecs: OK, or the error's name, such
 * as CT_ETIMEDOUT), the time from the request to its answer in seconds,
 * and the backend its first attempt went to ("-": none, the proxy answered
 * it itself or it waited past its end). The lines are gathered in a
 * 64 KiB buffer and written when it fills and every second: a write per
 * buffer, not per request. A write that fails (disk full) drops its lines;
 * they are counted and said at the end.
 *
 * It is a pair of tracing hooks (layer/observe.h) on the observing layer at
 * the top of the proxy's stack; the backends' observing layers tell it,
 * while their call is on the stack below the top's (its scope), which
 * backend a request went to. */
#ifndef CTOWER_TOOLS_ACCESS_LOG_H
#define CTOWER_TOOLS_ACCESS_LOG_H

#include "options.h"

enum { ACCESS_LOG_BUFFER = 64 * 1024 };

typedef struct access_record {
    const char *backend; /* its first attempt's backend, or NULL */
} access_record_t;

typedef struct access_log {
    int fd;
    int http; /* the outcome is the response's status code */
    uv_timer_t flush_timer;
    char *buf;
    size_t len;
    access_record_t *records;
    access_record_t **free_records; /* a stack */
    size_t nfree;
    access_record_t *current; /* the top's call being made on this stack */
    uint64_t lines, dropped;
    time_t stamp_second; /* the second stamp_text says */
    char stamp_text[32];
} access_log_t;

/* Opens path for appending (created 0644), with room for max_in_flight
 * requests at once. 0, or -1 after saying why. */
int access_log_open(access_log_t *log, uv_loop_t *uv, const char *path, size_t max_in_flight,
                    int http);

/* The top observing layer's hooks (ctx: the log). */
void *access_log_start(void *ctx, const ct_op_t *op, const void *request);
void access_log_called(void *ctx, void *span);
void access_log_end(void *ctx, void *span, const ct_op_t *op, int status, int cause,
                    const void *response, uint64_t duration_ns);

/* A backend's call starts (in its observing layer's on_start): under the
 * top's call on this stack, the request's backend is this one. */
void access_log_backend(access_log_t *log, const char *backend);

/* Writes what is buffered, stops the timer and closes the file (the loop
 * must then run for the timer's close). */
void access_log_close(access_log_t *log);

#endif
