/* libFuzzer target for the keys of a Redis command (tools/redis_keys.c,
 * what `ctower proxy --shard` routes by): any bytes as a request. Checked:
 * no crash or read out of bounds; the same bytes give the same answer;
 * a hash tag decides alone (the same command with the tagged key's other
 * bytes changed gives the same hash). */
#include "../../tools/redis_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int key_hash_of(const uint8_t *bytes, size_t len, uint64_t *hash) {
    ct_buf_t *b = malloc(sizeof *b + (len ? len : 1));
    int r;
    if (!b) abort();
    b->base = (char *)(b + 1);
    memcpy(b->base, bytes, len);
    b->len = b->cap = len;
    r = redis_key_hash(NULL, b, hash);
    free(b);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t h1 = 0, h2 = 0;
    int r1 = key_hash_of(data, size, &h1), r2 = key_hash_of(data, size, &h2);
    if (r1 != r2 || (r1 == 0 && h1 != h2)) abort(); /* not a function of the bytes */
    if (r1 == 0 && size > 0) {
        /* "GET {t}x" and "GET {t}y" share a shard: built from the input */
        char cmd[96];
        uint64_t a = 0, b = 0;
        unsigned char t = data[0] == '}' || data[0] == '{' ? 'x' : data[0];
        int n = snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$4\r\n{%c}a\r\n", t);
        if (key_hash_of((const uint8_t *)cmd, (size_t)n, &a) != 0) abort();
        cmd[n - 3] = 'b';
        if (key_hash_of((const uint8_t *)cmd, (size_t)n, &b) != 0 || a != b) abort();
    }
    return 0;
}
