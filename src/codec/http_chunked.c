/* Chunked framing read strictly (http_chunked.h). */
#define _GNU_SOURCE /* memmem */
#include "http_chunked.h"

#include <string.h>

/* Where the line that starts at p ends, past its "\r\n"; NULL if the line
 * has a bare '\r' or '\n', or does not end before end. */
static const char *line_end(const char *p, const char *end) {
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    const char *lf;
    if (!cr || end - cr < 2 || cr[1] != '\n') return NULL;
    lf = memchr(p, '\n', (size_t)(cr - p));
    return lf ? NULL : cr + 2;
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* A chunk's size line: hex digits, then nothing or extensions (';' and
 * what follows, which http_parser skips). Sets *size; returns where the
 * chunk's data starts, or NULL. */
static const char *size_line(const char *p, const char *end, size_t *size) {
    const char *next = line_end(p, end), *q = p;
    int digits = 0, v;
    if (!next) return NULL;
    *size = 0;
    for (; q < next - 2 && (v = hex_value(*q)) >= 0; q++) {
        if (++digits > 15) return NULL; /* http_parser's bound: no overflow */
        *size = *size << 4 | (size_t)v;
    }
    if (digits == 0 || (q < next - 2 && *q != ';')) return NULL;
    return next;
}

int ct_http_chunked_ok(const char *msg, size_t len) {
    const char *end = msg + len, *p;
    size_t size;
    if (len < 4 || !(p = memmem(msg, len, "\r\n\r\n", 4))) return 0;
    p += 4;
    do {
        if (!(p = size_line(p, end, &size))) return 0;
        if (size == 0) break;
        if ((size_t)(end - p) < size + 2 || p[size] != '\r' || p[size + 1] != '\n') return 0;
        p += size + 2;
    } while (p < end);
    while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) /* trailer fields */
        if (!(p = line_end(p, end))) return 0;
    return end - p == 2;
}
