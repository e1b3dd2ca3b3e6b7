#include "redis_keys.h"

#include <string.h>
#include <strings.h>

/* Commands whose every argument is a key, and those whose keys and values
 * alternate (key, value, key, value...). Any other command's key is its
 * first argument. A few listed commands take a last argument that is not a
 * key (SMOVE's member, LMOVE's directions): hashing it too can only refuse
 * such a command across shards, never send it to the wrong one. */
static const char *const all_keys[] = {
    "MGET",     "DEL",        "UNLINK",      "EXISTS",      "TOUCH",   "SDIFF",   "SINTER",
    "SUNION",   "SDIFFSTORE", "SINTERSTORE", "SUNIONSTORE", "PFCOUNT", "PFMERGE", "RENAME",
    "RENAMENX", "RPOPLPUSH",  "SMOVE",       "COPY",        NULL,
};
static const char *const pairs[] = {"MSET", "MSETNX", NULL};

static int listed(const ct_resp_item_t *name, const char *const *list) {
    size_t i;
    for (i = 0; list[i]; i++)
        if (strlen(list[i]) == name->len &&
            strncasecmp((const char *)name->str, list[i], name->len) == 0)
            return 1;
    return 0;
}

/* A key's hash: of its hash tag, if it has a non-empty one. */
static uint64_t key_hash(const uint8_t *key, size_t len) {
    const uint8_t *open = memchr(key, '{', len), *close;
    if (open) {
        close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1) return ct_shard_hash(open + 1, (size_t)(close - open - 1));
    }
    return ct_shard_hash(key, len);
}

int redis_key_hash(void *ctx, const void *request, uint64_t *hash) {
    const ct_buf_t *b = request;
    const uint8_t *p = (const uint8_t *)b->base;
    ct_resp_item_t head, name, arg;
    size_t at = 0;
    int64_t i;
    int every, step;
    (void)ctx;
    *hash = 0;
    if (ct_resp_read(p, b->len, &at, &head) != 0 || head.type != '*' || head.n < 1 ||
        ct_resp_read(p, b->len, &at, &name) != 0 || name.type != '$' || name.null)
        return CT_EMALFORMED; /* (the proxy's codec lets only commands through) */
    if (head.n == 1) return 0;
    every = listed(&name, all_keys);
    step = listed(&name, pairs) ? 2 : 1;
    for (i = 1; i < head.n; i++) {
        uint64_t h;
        if (ct_resp_read(p, b->len, &at, &arg) != 0 || arg.type != '$' || arg.null)
            return CT_EMALFORMED;          /* a command's arguments are bulk strings */
        if ((i - 1) % step != 0) continue; /* a value */
        h = key_hash(arg.str, arg.len);
        if (i == 1)
            *hash = h;
        else if (h != *hash)
            return REDIS_CROSS_SHARD;
        if (!every && step == 1) break; /* one key */
    }
    return 0;
}
