#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { LINE_MAX_LEN = 640 };

static void flush(access_log_t *log) {
    size_t off = 0;
    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { /* what is left is dropped: count its lines */
            const char *p;
            for (p = log->buf + off; p < log->buf + log->len; p++)
                log->dropped += *p == '\n';
            break;
        }
        off += (size_t)n;
    }
    log->len = 0;
}

static void on_flush_timer(uv_timer_t *t) {
    access_log_t *log = t->data;
    if (log->len) flush(log);
}

int access_log_open(access_log_t *log, uv_loop_t *uv, const char *path, size_t max_in_flight,
                    int http) {
    size_t i;
    memset(log, 0, sizeof *log);
    log->http = http;
    if ((log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "ctower proxy: --access-log %s: %s\n", path, strerror(errno));
        return -1;
    }
    log->buf = malloc(ACCESS_LOG_BUFFER);
    log->records = calloc(max_in_flight, sizeof *log->records + sizeof *log->free_records);
    if (!log->buf || !log->records) {
        fprintf(stderr, "ctower proxy: --access-log: out of memory\n");
        free(log->buf);
        free(log->records);
        close(log->fd);
        return -1;
    }
    log->free_records = (access_record_t **)(log->records + max_in_flight);
    for (i = 0; i < max_in_flight; i++)
        log->free_records[log->nfree++] = &log->records[i];
    uv_timer_init(uv, &log->flush_timer);
    log->flush_timer.data = log;
    uv_timer_start(&log->flush_timer, on_flush_timer, 1000, 1000);
    uv_unref((uv_handle_t *)&log->flush_timer); /* it does not keep the proxy running */
    return 0;
}

void *access_log_start(void *ctx, const ct_op_t *op, const void *request) {
    access_log_t *log = ctx;
    access_record_t *rec;
    (void)op;
    (void)request;
    /* (the observing layer bounds the calls in flight to the records) */
    rec = log->nfree ? log->free_records[--log->nfree] : NULL;
    if (rec) rec->backend = NULL;
    log->current = rec;
    return rec;
}

void access_log_called(void *ctx, void *span) {
    access_log_t *log = ctx;
    (void)span;
    log->current = NULL; /* the top's call has left the stack */
}

void access_log_backend(access_log_t *log, const char *backend) {
    if (log->current && !log->current->backend) log->current->backend = backend;
}

/* "2026-12-07T20:54:33", made again only when the second changes. */
static const char *stamp(access_log_t *log, const struct timespec *now) {
    if (now->tv_sec != log->stamp_second) {
        struct tm tm;
        gmtime_r(&now->tv_sec, &tm);
        strftime(log->stamp_text, sizeof log->stamp_text, "%Y-%m-%dT%H:%M:%S", &tm);
        log->stamp_second = now->tv_sec;
    }
    return log->stamp_text;
}

/* The outcome: an HTTP response's status code, OK, or the error's name. */
static void outcome(const access_log_t *log, int status, const void *response, char *out,
                    size_t size) {
    if (status < 0) {
        snprintf(out, size, "%s", ct_err_name(status));
        return;
    }
    if (log->http && response) {
        const ct_buf_t *b = response;
        /* "HTTP/1.1 200 ..." */
        if (b->len >= 12 && memcmp(b->base, "HTTP/1.", 7) == 0) {
            snprintf(out, size, "%.3s", b->base + 9);
            return;
        }
    }
    snprintf(out, size, "OK");
}

void access_log_end(void *ctx, void *span, const ct_op_t *op, int status, int cause,
                    const void *response, uint64_t duration_ns) {
    access_log_t *log = ctx;
    access_record_t *rec = span;
    ct_address_t peer;
    char client[160] = "-", what[48];
    struct timespec now;
    int n;
    (void)cause;
    if (ct_listener_peer(ct_server_of_call(op), &peer) == 0 &&
        (peer.kind == CT_ADDRESS_UNIX || peer.sa.ss_family != 0))
        ct_address_format(&peer, client, sizeof client);
    outcome(log, status, response, what, sizeof what);
    clock_gettime(CLOCK_REALTIME, &now);
    if (ACCESS_LOG_BUFFER - log->len < LINE_MAX_LEN) flush(log);
    n = snprintf(log->buf + log->len, LINE_MAX_LEN, "%s.%03ldZ %s %s %.6f %s\n", stamp(log, &now),
                 now.tv_nsec / 1000000, client, what, (double)duration_ns * 1e-9,
                 rec && rec->backend ? rec->backend : "-");
    if (n > 0 && n < LINE_MAX_LEN) {
        log->len += (size_t)n;
        log->lines++;
    }
    if (rec) log->free_records[log->nfree++] = rec;
}

void access_log_close(access_log_t *log) {
    if (log->fd < 0) return;
    flush(log);
    close(log->fd);
    log->fd = -1;
    uv_close((uv_handle_t *)&log->flush_timer, NULL);
    free(log->buf);
    free(log->records);
    log->buf = NULL;
    log->records = NULL;
    if (log->dropped)
        fprintf(stderr, "ctower proxy: --access-log: %llu lines could not be written\n",
                (unsigned long long)log->dropped);
}
