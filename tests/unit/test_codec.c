#include "testutil.h"

static ct_length_codec_t len4;

static void length(unsigned size, int little, int64_t adjust, size_t max) {
    ct_length_codec_config_t cfg = {size, little, adjust, max};
    cr_assert_eq(ct_length_codec_init(&len4, &cfg), 0);
}

static size_t encode(ct_codec_t *c, const char *payload, uint8_t *out) {
    size_t written = 0;
    cr_assert_eq(ct_codec_encode(c, (const uint8_t *)payload, strlen(payload), out, &written), 0);
    return written;
}

Test(codec, length_round_trip_for_every_field_size_and_order) {
    static const unsigned sizes[] = {1, 2, 4, 8};
    int s, little;
    for (s = 0; s < 4; s++)
        for (little = 0; little < 2; little++) {
            uint8_t out[64];
            ct_frame_t f;
            size_t n;
            length(sizes[s], little, 0, 0);
            n = encode(&len4.codec, "hello", out);
            cr_assert_eq(n, sizes[s] + 5);
            cr_assert_eq(ct_codec_decode(&len4.codec, out, n, &f), CT_CODEC_FRAME);
            cr_assert_eq(f.payload_len, 5);
            cr_assert_eq(f.frame_len, n);
            cr_assert_eq(memcmp(out + f.payload_offset, "hello", 5), 0);
        }
}

Test(codec, length_field_byte_order) {
    uint8_t out[16];
    length(2, 0, 0, 0);
    encode(&len4.codec, "abc", out);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(out[1], 3);
    length(2, 1, 0, 0);
    encode(&len4.codec, "abc", out);
    cr_assert_eq(out[0], 3);
    cr_assert_eq(out[1], 0);
}

Test(codec, length_adjustment_counts_the_field_itself) {
    uint8_t out[16];
    ct_frame_t f;
    length(4, 0, -4, 0); /* the length includes its own 4 bytes */
    encode(&len4.codec, "xy", out);
    cr_assert_eq(out[3], 6);
    cr_assert_eq(ct_codec_decode(&len4.codec, out, 6, &f), CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 2);
    out[3] = 3; /* says 3 bytes in all: less than the field itself */
    ct_codec_reset(&len4.codec);
    cr_assert_eq(ct_codec_decode(&len4.codec, out, 6, &f), CT_EMALFORMED);
}

Test(codec, length_every_split_point_needs_more_until_whole) {
    uint8_t out[64];
    size_t n, cut;
    ct_frame_t f;
    length(4, 0, 0, 0);
    n = encode(&len4.codec, "split me anywhere", out);
    for (cut = 0; cut < n; cut++)
        cr_assert_eq(ct_codec_decode(&len4.codec, out, cut, &f), CT_CODEC_NEED_MORE, "cut %zu",
                     cut);
    cr_assert_eq(ct_codec_decode(&len4.codec, out, n, &f), CT_CODEC_FRAME);
}

Test(codec, length_many_frames_in_one_buffer) {
    uint8_t buf[4096];
    size_t n = 0, at = 0;
    int i, got = 0;
    ct_frame_t f;
    length(4, 0, 0, 0);
    for (i = 0; i < 100; i++)
        n += encode(&len4.codec, i % 2 ? "odd" : "even!", buf + n);
    while (ct_codec_decode(&len4.codec, buf + at, n - at, &f) == CT_CODEC_FRAME) {
        cr_assert_eq(f.payload_len, got % 2 ? 3u : 5u);
        at += f.frame_len;
        got++;
    }
    cr_assert_eq(got, 100);
    cr_assert_eq(at, n);
}

Test(codec, length_oversize_is_a_sticky_error) {
    uint8_t hdr[4] = {0, 0, 4, 1}; /* 1025 bytes */
    ct_frame_t f;
    length(4, 0, 0, 1024);
    cr_assert_eq(ct_codec_decode(&len4.codec, hdr, 4, &f), CT_EFRAMETOOLARGE);
    cr_assert_eq(ct_codec_decode(&len4.codec, (const uint8_t *)"\0\0\0\0", 4, &f),
                 CT_EFRAMETOOLARGE, "sticky: nothing after a framing error is trusted");
    cr_assert_eq(ct_codec_error(&len4.codec), CT_EFRAMETOOLARGE);
}

Test(codec, length_huge_8_byte_fields_do_not_overflow) {
    uint8_t hdr[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ct_frame_t f;
    length(8, 0, 100, 0);
    cr_assert_eq(ct_codec_decode(&len4.codec, hdr, 8, &f), CT_EFRAMETOOLARGE);
    length(8, 0, -9, 0);
    cr_assert_eq(ct_codec_decode(&len4.codec, hdr, 8, &f), CT_EFRAMETOOLARGE);
}

Test(codec, length_encode_refuses_what_the_field_cannot_hold) {
    uint8_t out[400];
    char big[301];
    size_t w;
    memset(big, 'a', 300);
    big[300] = 0;
    length(1, 0, 0, 0);
    cr_assert_eq(ct_codec_encode(&len4.codec, (const uint8_t *)big, 300, out, &w),
                 CT_EFRAMETOOLARGE);
    cr_assert_eq(ct_codec_encode(&len4.codec, (const uint8_t *)big, 255, out, &w), 0);
}

Test(codec, length_rejects_bad_config) {
    ct_length_codec_config_t cfg = {3, 0, 0, 0};
    cr_assert_eq(ct_length_codec_init(&len4, &cfg), CT_EINVAL);
    cr_assert_eq(ct_length_codec_init(&len4, NULL), 0);
    cr_assert_eq(len4.codec.overhead, 4);
}

Test(codec, line_frames_and_splits) {
    ct_line_codec_t line;
    const char *text = "first\nsecond line\n";
    size_t n = strlen(text), cut;
    ct_frame_t f;
    ct_line_codec_init(&line, 0);
    for (cut = 0; cut < 6; cut++)
        cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text, cut, &f),
                     CT_CODEC_NEED_MORE);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text, n, &f), CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 5);
    cr_assert_eq(f.frame_len, 6);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text + 6, n - 6, &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 11);
}

/* "\r\n" ends: encoded on every line, one '\r' dropped before a '\n', a
 * bare '\n' accepted; the maximum counts the payload alone. */
Test(codec, crlf_lines) {
    ct_line_codec_t line;
    const char *text = "+PONG\r\n:42\nab\r\r\n";
    uint8_t out[32];
    size_t w, n = strlen(text);
    ct_frame_t f;
    ct_line_codec_init_crlf(&line, 8);
    cr_assert_eq(line.codec.overhead, 2);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text, 6, &f), CT_CODEC_NEED_MORE);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text, n, &f), CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 5, "the '\\r' stays in the payload");
    cr_assert_eq(f.frame_len, 7);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text + 7, n - 7, &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 3);
    cr_assert_eq(f.frame_len, 4);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)text + 11, n - 11, &f),
                 CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 3, "only one '\\r' is the line's end");
    cr_assert_eq(ct_codec_encode(&line.codec, (const uint8_t *)"PING", 4, out, &w), 0);
    cr_assert_eq(w, 6);
    cr_assert(memcmp(out, "PING\r\n", 6) == 0);
    cr_assert_eq(ct_codec_encode(&line.codec, (const uint8_t *)"a\nb", 3, out, &w), CT_EINVAL);
    cr_assert_eq(ct_codec_encode(&line.codec, (const uint8_t *)"abcdefghi", 9, out, &w),
                 CT_EFRAMETOOLARGE);
}

Test(codec, crlf_line_over_the_maximum) {
    ct_line_codec_t line;
    ct_frame_t f;
    ct_line_codec_init_crlf(&line, 4);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)"abcd\r\n", 6, &f), CT_CODEC_FRAME);
    cr_assert_eq(f.payload_len, 4);
    ct_codec_reset(&line.codec);
    /* five bytes and a bare '\n' fit the window that a '\r' would have used */
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)"abcde\n", 6, &f),
                 CT_EFRAMETOOLARGE);
    ct_codec_reset(&line.codec);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)"abcdef", 6, &f), CT_EFRAMETOOLARGE);
    ct_codec_reset(&line.codec);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)"abcde", 5, &f), CT_CODEC_NEED_MORE);
}

Test(codec, line_too_long_and_unencodable) {
    ct_line_codec_t line;
    uint8_t out[32];
    size_t w;
    ct_frame_t f;
    ct_line_codec_init(&line, 4);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)"abcd\n", 5, &f), CT_CODEC_FRAME);
    cr_assert_eq(ct_codec_decode(&line.codec, (const uint8_t *)"abcde", 5, &f), CT_EFRAMETOOLARGE);
    cr_assert_eq(ct_codec_encode(&line.codec, (const uint8_t *)"a\nb", 3, out, &w), CT_EINVAL);
    cr_assert_eq(ct_codec_encode(&line.codec, (const uint8_t *)"abcde", 5, out, &w),
                 CT_EFRAMETOOLARGE);
    cr_assert_eq(ct_codec_encode(&line.codec, (const uint8_t *)"ab", 2, out, &w), 0);
    cr_assert_eq(w, 3);
    cr_assert_eq(out[2], '\n');
}

/* ---- RESP ------------------------------------------------------------------ */

static int resp_frame(ct_resp_codec_t *c, const char *text, size_t len, size_t *frame_len) {
    ct_frame_t f;
    int r;
    ct_codec_reset(&c->codec);
    r = ct_codec_decode(&c->codec, (const uint8_t *)text, len, &f);
    if (r == CT_CODEC_FRAME) {
        cr_assert_eq(f.payload_offset, 0);
        cr_assert_eq(f.payload_len, f.frame_len, "the payload is the whole value");
        *frame_len = f.frame_len;
    }
    return r;
}

/* Every type, whole values only, each cut short at every byte. */
Test(codec, resp_values_of_every_type) {
    static const char *const values[] = {"+OK\r\n",
                                         "-ERR unknown\r\n",
                                         ":-42\r\n",
                                         "$5\r\nhe\r\no\r\n",
                                         "$0\r\n\r\n",
                                         "$-1\r\n",
                                         "*-1\r\n",
                                         "*0\r\n",
                                         "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                                         "*2\r\n*1\r\n:1\r\n*0\r\n",
                                         "_\r\n",
                                         "#t\r\n",
                                         ",3.14\r\n",
                                         "(12345678901234567890\r\n",
                                         "!3\r\nbad\r\n",
                                         "=8\r\ntxt:abcd\r\n",
                                         "%1\r\n+key\r\n:1\r\n",
                                         "~2\r\n:1\r\n:2\r\n",
                                         ">2\r\n+message\r\n+hi\r\n",
                                         "|1\r\n+ttl\r\n:3\r\n+value\r\n"};
    ct_resp_codec_t c;
    size_t i, cut, n;
    ct_resp_codec_init(&c, 0);
    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        size_t len = strlen(values[i]);
        char twice[128];
        cr_assert_eq(resp_frame(&c, values[i], len, &n), CT_CODEC_FRAME, "%s", values[i]);
        cr_assert_eq(n, len, "%s", values[i]);
        for (cut = 0; cut < len; cut++)
            cr_assert_eq(resp_frame(&c, values[i], cut, &n), CT_CODEC_NEED_MORE, "%s cut at %zu",
                         values[i], cut);
        snprintf(twice, sizeof twice, "%s%s", values[i], values[i]); /* two in one read */
        cr_assert_eq(resp_frame(&c, twice, 2 * len, &n), CT_CODEC_FRAME);
        cr_assert_eq(n, len, "the first of two values: %s", values[i]);
    }
}

/* Values nested 1 to 12 deep (past the depth the codec can resume at),
 * then a flat array of 5,000 items, fed a few bytes more each call without
 * a reset in between, as a stream does: each is found whole, once all its
 * bytes are there, and not before. */
static void resp_fed_in_pieces(const char *v, size_t len, size_t step) {
    ct_resp_codec_t c;
    ct_frame_t f;
    size_t avail;
    ct_resp_codec_init(&c, 0);
    for (avail = 0; avail < len; avail += step)
        cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)v, avail, &f), CT_CODEC_NEED_MORE,
                     "%zu of %zu bytes", avail, len);
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)v, len, &f), CT_CODEC_FRAME);
    cr_assert_eq(f.frame_len, len);
}

Test(codec, resp_a_value_that_arrives_in_pieces) {
    static char v[64 * 1024];
    size_t len, depth, i, step;
    for (depth = 1; depth <= 12; depth++) { /* [[[... "abc" ...], +ok], +ok] */
        len = 0;
        for (i = 0; i < depth; i++)
            len += (size_t)snprintf(v + len, sizeof v - len, "*2\r\n");
        len += (size_t)snprintf(v + len, sizeof v - len, "$3\r\nabc\r\n");
        for (i = 0; i < depth; i++)
            len += (size_t)snprintf(v + len, sizeof v - len, "+ok\r\n");
        for (step = 1; step <= 7; step += 3)
            resp_fed_in_pieces(v, len, step);
    }
    len = (size_t)snprintf(v, sizeof v, "*5000\r\n");
    for (i = 0; i < 5000; i++)
        len += (size_t)snprintf(v + len, sizeof v - len, ":%zu\r\n", i);
    resp_fed_in_pieces(v, len, 1000);
    resp_fed_in_pieces(v, len, 1);
}

/* For a server's side: commands only, as Redis reads them. */
Test(codec, resp_commands_only) {
    static const char *const commands[] = {"*1\r\n$4\r\nPING\r\n",
                                           "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"};
    static const char *const others[] = {"+OK\r\n",           ":1\r\n",
                                         "$5\r\nhello\r\n",   "*0\r\n",
                                         "*-1\r\n",           "*1\r\n:1\r\n",
                                         "*1\r\n$-1\r\n",     "*1\r\n*1\r\n$1\r\na\r\n",
                                         "PING\r\n",          "%1\r\n$1\r\na\r\n$1\r\nb\r\n",
                                         "~1\r\n$1\r\na\r\n", "_\r\n"};
    ct_resp_codec_t c;
    size_t i, n;
    ct_resp_codec_init_commands(&c, 0, 0);
    for (i = 0; i < sizeof commands / sizeof *commands; i++) {
        cr_assert_eq(resp_frame(&c, commands[i], strlen(commands[i]), &n), CT_CODEC_FRAME);
        cr_assert_eq(n, strlen(commands[i]));
    }
    for (i = 0; i < sizeof others / sizeof *others; i++)
        cr_assert_eq(resp_frame(&c, others[i], strlen(others[i]), &n), CT_EMALFORMED, "%s",
                     others[i]);
    /* not a command from its first byte: refused before the rest arrives */
    cr_assert_eq(resp_frame(&c, "$100000\r\n", 10, &n), CT_EMALFORMED);
    ct_resp_codec_init(&c, 0); /* the ordinary codec takes them all but the inline one */
    cr_assert_eq(resp_frame(&c, others[2], strlen(others[2]), &n), CT_CODEC_FRAME);
}

/* With inline commands: lines, blank ones skipped, and RESP commands. */
Test(codec, resp_commands_with_inline_ones) {
    ct_resp_codec_t c;
    ct_frame_t f;
    const char *blank_then_resp = "\r\n  \r\n*1\r\n$4\r\nPING\r\n";
    ct_resp_codec_init_commands(&c, 64, 1);
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)"PING\r\n", 6, &f), CT_CODEC_FRAME);
    cr_assert(f.payload_offset == 0 && f.payload_len == 4 && f.frame_len == 6);
    ct_codec_reset(&c.codec);
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)"\r\n \t\nGET k\n", 12, &f),
                 CT_CODEC_FRAME, "blank lines are skipped, and a bare \\n ends a line");
    cr_assert(f.payload_offset == 5 && f.payload_len == 5 && f.frame_len == 11);
    ct_codec_reset(&c.codec);
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)blank_then_resp, 20, &f),
                 CT_CODEC_FRAME);
    cr_assert(f.payload_offset == 6 && f.payload_len == 14 && f.frame_len == 20);
    ct_codec_reset(&c.codec);
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)"\r\n\r\nPIN", 7, &f),
                 CT_CODEC_NEED_MORE);
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)"\r\n\r\n", 4, &f), CT_CODEC_NEED_MORE);
    {
        char line[100];
        memset(line, 'x', sizeof line);
        ct_codec_reset(&c.codec);
        cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)line, sizeof line, &f),
                     CT_EFRAMETOOLARGE, "a line longer than the maximum");
    }
    ct_resp_codec_init_commands(&c, 0, 0); /* without: a line is refused */
    cr_assert_eq(ct_codec_decode(&c.codec, (const uint8_t *)"PING\r\n", 6, &f), CT_EMALFORMED);
}

/* inline must turn into the command want (a want of NULL: error r). */
static void inline_is(const char *line, const char *want, int r) {
    uint8_t out[256];
    size_t size = 0;
    cr_assert_eq(
        ct_resp_inline_to_command((const uint8_t *)line, strlen(line), out, sizeof out, &size), r,
        "%s", line);
    if (!want) return;
    cr_assert_eq(size, strlen(want), "%s", line);
    cr_assert_eq(memcmp(out, want, size), 0, "%s: %.*s", line, (int)size, out);
}

Test(codec, resp_inline_commands_turn_into_arrays) {
    uint8_t small[8];
    size_t size = 0;
    inline_is("SET k v", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 0);
    inline_is("  PING \t", "*1\r\n$4\r\nPING\r\n", 0);
    inline_is("SET \"a b\" 'c\\'d'", "*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$3\r\nc'd\r\n", 0);
    inline_is("ECHO \"\\x41\\n\\t\\q\"", "*2\r\n$4\r\nECHO\r\n$4\r\nA\n\tq\r\n", 0);
    inline_is("ECHO a\"b c\"", "*2\r\n$4\r\nECHO\r\n$4\r\nab c\r\n", 0); /* a quote mid-word */
    inline_is("ECHO 'a\\b'", "*2\r\n$4\r\nECHO\r\n$3\r\na\\b\r\n", 0);
    inline_is("ECHO \"\"", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", 0);
    inline_is("ECHO \"open", NULL, CT_EMALFORMED);
    inline_is("ECHO 'open", NULL, CT_EMALFORMED);
    inline_is("ECHO \"a\"b", NULL, CT_EMALFORMED);
    inline_is("   ", NULL, CT_EINVAL);
    inline_is("", NULL, CT_EINVAL);
    { /* a NUL byte is a byte like any other (the fuzz target found a loop on it) */
        uint8_t out[64];
        size_t n = 0;
        cr_assert_eq(ct_resp_inline_to_command((const uint8_t *)"a\0b \0", 5, out, sizeof out, &n),
                     0);
        cr_assert_eq(n, 20);
        cr_assert_eq(memcmp(out, "*2\r\n$3\r\na\0b\r\n$1\r\n\0\r\n", n), 0);
    }
    /* too small a buffer: the size needed, all the same */
    cr_assert_eq(
        ct_resp_inline_to_command((const uint8_t *)"SET k v", 7, small, sizeof small, &size), 0);
    cr_assert_eq(size, 27);
}

Test(codec, resp_malformed_and_too_large) {
    static const char *const malformed[] = {
        "PING\r\n",       /* an inline command */
        "+OK\n",          /* a '\n' without its '\r' */
        "$3\r\nabcd\r\n", /* a bulk string longer than it said */
        "$x\r\n",         "$-2\r\n", "*-1x\r\n",
        "$\r\n",          "~-1\r\n", /* -1 is RESP2's, for $ and * only */
        ":1\r\n\n",
    };
    ct_resp_codec_t c;
    size_t i, n;
    char deep[256] = "";
    ct_resp_codec_init(&c, 0);
    for (i = 0; i < sizeof malformed / sizeof malformed[0] - 1; i++)
        cr_assert_eq(resp_frame(&c, malformed[i], strlen(malformed[i]), &n), CT_EMALFORMED, "%s",
                     malformed[i]);
    /* a value followed by a stray '\n' is fine until the next value is read */
    cr_assert_eq(resp_frame(&c, ":1\r\n\n", 5, &n), CT_CODEC_FRAME);
    for (i = 0; i < 33; i++)
        strcat(deep, "*1\r\n");
    strcat(deep, ":1\r\n");
    cr_assert_eq(resp_frame(&c, deep, strlen(deep), &n), CT_EMALFORMED, "33 levels deep");
    cr_assert_eq(resp_frame(&c, deep + 4, strlen(deep) - 4, &n), CT_CODEC_FRAME, "32 levels");
    ct_resp_codec_init(&c, 16);
    cr_assert_eq(resp_frame(&c, "$100\r\n", 6, &n), CT_EFRAMETOOLARGE, "known at the length");
    cr_assert_eq(resp_frame(&c, "+0123456789abcdefgh", 19, &n), CT_EFRAMETOOLARGE);
    cr_assert_eq(resp_frame(&c, "*1000\r\n", 7, &n), CT_EFRAMETOOLARGE);
    cr_assert_eq(resp_frame(&c, "$10\r\n0123456789\r\n", 17, &n), CT_EFRAMETOOLARGE);
    cr_assert_eq(resp_frame(&c, "$9\r\n012345678\r\n", 15, &n), CT_CODEC_FRAME);
}

Test(codec, resp_encodes_one_whole_value_and_formats_commands) {
    const char *argv[] = {"SET", "key", "a\r\nb"};
    const size_t lens[] = {3, 3, 4};
    const char *expect = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\na\r\nb\r\n";
    uint8_t out[64];
    size_t w, need;
    ct_resp_codec_t c;
    ct_resp_codec_init(&c, 31);
    need = ct_resp_format_command(NULL, 0, 3, argv, lens);
    cr_assert_eq(need, strlen(expect));
    cr_assert_eq(ct_resp_format_command(out, 10, 3, argv, lens), need, "too small: sized anyway");
    cr_assert_eq(ct_resp_format_command(out, sizeof out, 3, argv, lens), need);
    cr_assert(memcmp(out, expect, need) == 0);
    cr_assert_eq(ct_codec_encode(&c.codec, (const uint8_t *)expect, need, out, &w),
                 CT_EFRAMETOOLARGE);
    ct_resp_codec_init(&c, 0);
    cr_assert_eq(ct_codec_encode(&c.codec, (const uint8_t *)expect, need, out, &w), 0);
    cr_assert_eq(w, need);
    cr_assert(memcmp(out, expect, need) == 0);
    cr_assert_eq(ct_codec_encode(&c.codec, (const uint8_t *)"+OK\r\n+OK\r\n", 10, out, &w),
                 CT_EINVAL, "two values");
    cr_assert_eq(ct_codec_encode(&c.codec, (const uint8_t *)"*2\r\n:1\r\n", 8, out, &w), CT_EINVAL,
                 "half a value");
    cr_assert_eq(ct_codec_encode(&c.codec, (const uint8_t *)"PING", 4, out, &w), CT_EINVAL);
}

/* A client reads a reply item by item: an aggregate's header, then its
 * elements; every bound is checked. */
Test(codec, resp_read_walks_a_value) {
    const char *v = "*4\r\n:-7\r\n$2\r\nhi\r\n_\r\n%1\r\n+k\r\n*-1\r\n";
    const uint8_t *p = (const uint8_t *)v;
    size_t len = strlen(v), at = 0;
    ct_resp_item_t it;
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == '*' && it.n == 4 && !it.null && it.str == NULL);
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == ':' && it.n == -7);
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == '$' && it.len == 2 && memcmp(it.str, "hi", 2) == 0);
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == '_' && it.null);
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == '%' && it.n == 2, "a map counts its keys and values");
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == '+' && it.len == 1 && it.str[0] == 'k');
    cr_assert_eq(ct_resp_read(p, len, &at, &it), 0);
    cr_assert(it.type == '*' && it.null && it.n == 0);
    cr_assert_eq(at, len);
    cr_assert_eq(ct_resp_read(p, len, &at, &it), CT_ETRUNCATED, "nothing left");
    at = 0;
    cr_assert_eq(ct_resp_read((const uint8_t *)"$5\r\nhel", 7, &at, &it), CT_ETRUNCATED);
    cr_assert_eq(at, 0, "a refused item leaves *at alone");
}

Test(codec, resp_integers_are_64_bit) {
    ct_resp_item_t it;
    size_t at = 0;
    cr_assert_eq(ct_resp_read((const uint8_t *)":-9223372036854775808\r\n", 23, &at, &it), 0);
    cr_assert_eq(it.n, INT64_MIN);
    at = 0;
    cr_assert_eq(ct_resp_read((const uint8_t *)":9223372036854775807\r\n", 22, &at, &it), 0);
    cr_assert_eq(it.n, INT64_MAX);
    at = 0;
    cr_assert_eq(ct_resp_read((const uint8_t *)":9223372036854775808\r\n", 22, &at, &it),
                 CT_EMALFORMED);
    at = 0;
    cr_assert_eq(ct_resp_read((const uint8_t *)":12a\r\n", 6, &at, &it), CT_EMALFORMED);
    at = 0;
    cr_assert_eq(ct_resp_read((const uint8_t *)":\r\n", 3, &at, &it), CT_EMALFORMED);
}

/* One convention for every init of a codec: 0, or CT_EINVAL. */
Test(codec_init, every_codec_init_returns_0_or_einval) {
    ct_line_codec_t line;
    ct_raw_codec_t raw;
    ct_resp_codec_t resp;
    ct_http_codec_t http;
    ct_length_codec_t length;
    ct_length_codec_config_t bad = {.field_size = 3};
    cr_assert_eq(ct_line_codec_init(&line, 0), 0);
    cr_assert_eq(ct_line_codec_init_crlf(&line, 0), 0);
    cr_assert_eq(ct_raw_codec_init(&raw, 0), 0);
    cr_assert_eq(ct_resp_codec_init(&resp, 0), 0);
    cr_assert_eq(ct_resp_codec_init_commands(&resp, 0, 1), 0);
    cr_assert_eq(ct_http_codec_init_server(&http, 0), 0);
    cr_assert_eq(ct_http_codec_init_client(&http, 0), 0);
    cr_assert_eq(ct_length_codec_init(&length, NULL), 0);
    cr_assert_eq(ct_length_codec_init(&length, &bad), CT_EINVAL);
    cr_assert_eq(ct_line_codec_init(NULL, 0), CT_EINVAL);
    cr_assert_eq(ct_line_codec_init_crlf(NULL, 0), CT_EINVAL);
    cr_assert_eq(ct_raw_codec_init(NULL, 0), CT_EINVAL);
    cr_assert_eq(ct_resp_codec_init(NULL, 0), CT_EINVAL);
    cr_assert_eq(ct_resp_codec_init_commands(NULL, 0, 0), CT_EINVAL);
    cr_assert_eq(ct_http_codec_init_server(NULL, 0), CT_EINVAL);
    cr_assert_eq(ct_http_codec_init_client(NULL, 0), CT_EINVAL);
}
