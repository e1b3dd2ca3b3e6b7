/* The Redis commands `ctower proxy --codec resp` answers itself instead of
 * passing them on: those that break, or take over, the one connection all
 * its clients share. */
#include "redis_filter.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Commands after which Redis sends no reply, or more than one (the
 * subscriptions, MONITOR, replication, CLIENT REPLY), or changes the
 * protocol (HELLO, RESET): every later reply would reach the wrong client.
 * Then the ones that hold the connection's state (a database, a
 * transaction, a login) or block it for everyone, and QUIT, which closes it.
 * By length, so that a command is compared with few names (none for the
 * three-letter ones, GET, SET, DEL): this runs for every request. */
enum { LONGEST = 12 };
static const char *const refused_by_length[LONGEST + 1][8] = {
    [4] = {"SYNC", "EXEC", "AUTH", "QUIT", "WAIT"},
    [5] = {"PSYNC", "HELLO", "RESET", "MULTI", "WATCH", "BLPOP", "BRPOP"},
    [6] = {"CLIENT", "SELECT", "BLMOVE", "BLMPOP", "BZMPOP"},
    [7] = {"MONITOR", "DISCARD", "UNWATCH", "WAITAOF"},
    [8] = {"READONLY", "BZPOPMIN", "BZPOPMAX"},
    [9] = {"SUBSCRIBE", "READWRITE"},
    [10] = {"PSUBSCRIBE", "SSUBSCRIBE", "BRPOPLPUSH"},
    [11] = {"UNSUBSCRIBE"},
    [12] = {"PUNSUBSCRIBE", "SUNSUBSCRIBE"},
};

/* Whether the argument item equals word, in any case. */
static int is_word(const ct_resp_item_t *item, const char *word) {
    size_t n = strlen(word);
    return item->len == n && strncasecmp((const char *)item->str, word, n) == 0;
}

/* XREAD and XREADGROUP block only when asked to: their name, with " BLOCK",
 * if one of the n - 1 arguments after the name (at *at) is BLOCK. */
static const char *blocking_read(const uint8_t *p, size_t len, size_t *at,
                                 const ct_resp_item_t *name, int64_t n) {
    ct_resp_item_t arg;
    int64_t k;
    if (!is_word(name, "XREAD") && !is_word(name, "XREADGROUP")) return NULL;
    for (k = 1; k < n; k++)
        if (ct_resp_read(p, len, at, &arg) == 0 && is_word(&arg, "BLOCK"))
            return name->len == 5 ? "XREAD BLOCK" : "XREADGROUP BLOCK";
    return NULL;
}

/* The command's name if the proxy must not pass it on, else NULL. The
 * request is a command the codec checked (ct_resp_codec_init_commands). */
static const char *refused_name(const ct_buf_t *request) {
    const uint8_t *p = (const uint8_t *)request->base;
    ct_resp_item_t head, name;
    size_t at = 0, i;
    if (ct_resp_read(p, request->len, &at, &head) != 0 || head.n < 1 ||
        ct_resp_read(p, request->len, &at, &name) != 0 || name.len > LONGEST)
        return NULL;
    for (i = 0; refused_by_length[name.len][i]; i++)
        if (strncasecmp((const char *)name.str, refused_by_length[name.len][i], name.len) == 0)
            return refused_by_length[name.len][i];
    return name.len == 5 || name.len == 10 ? blocking_read(p, request->len, &at, &name, head.n)
                                           : NULL;
}

/* An error reply of text, or NULL without memory. */
static ct_buf_t *error_reply(const char *text) {
    return ct_buf_from(text, strlen(text));
}

/* An inline command (the codec's frame: a line, not '*') as a command in a
 * buffer of its own; *request replaced. 0, or the conversion's error. */
static int from_inline(ct_buf_pool_t *pool, ct_buf_t **request) {
    ct_buf_t *line = *request, *command;
    size_t size = 0;
    int r = ct_resp_inline_to_command((const uint8_t *)line->base, line->len, NULL, 0, &size);
    if (r < 0) return r;
    if (!(command = ct_buf_pool_get(pool, size))) return UV_ENOMEM;
    ct_resp_inline_to_command((const uint8_t *)line->base, line->len, (uint8_t *)command->base,
                              size, &command->len);
    ct_buf_pool_put(pool, line);
    *request = command;
    return 0;
}

filter_verdict_t redis_filter_rule(ct_buf_pool_t *pool, const filter_hop_t *hop, ct_buf_t **request,
                                   ct_buf_t **answer) {
    const char *name;
    char text[160];
    (void)hop; /* RESP has nowhere to carry a context */
    int r = (*request)->len > 0 && (*request)->base[0] != '*' ? from_inline(pool, request) : 0;
    if (r == CT_EMALFORMED) { /* Redis's own words for it */
        *answer = error_reply("-ERR Protocol error: unbalanced quotes in request\r\n");
        return FILTER_ANSWER;
    }
    if (r < 0) {
        *answer = error_reply("-ERR ctower proxy: out of memory\r\n");
        return FILTER_ANSWER;
    }
    if (!(name = refused_name(*request))) return FILTER_PASS;
    snprintf(text, sizeof text,
             "-ERR ctower proxy: %s is not served through a connection that clients share\r\n",
             name);
    *answer = error_reply(text);
    return FILTER_ANSWER;
}
