/* Redis's inline commands ("SET k v" typed on a line) as RESP commands.
 * Words are split as Redis splits them (sdssplitargs): spaces between
 * words; "double quotes" with the escapes \n \r \t \b \a \\ \" and \xHH (any
 * other \c is c); 'single quotes' with \' only; a quote may open anywhere in
 * a word, and its closing quote must end the word. */
#include "ctower/codec/resp.h"
#include "ctower/error.h"

#include <stdio.h>
#include <string.h>

/* Between words (isspace()'s set, as Redis skips them). */
static int is_space(uint8_t ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* What ends a word that is not in quotes: Redis's set but its '\0' (which
 * ends a C string there; here it is a byte like any other, and a word made
 * only of it must still move on). */
static int ends_word(uint8_t ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int hex_value(uint8_t ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The escape at p[*i] (just past a backslash) inside double quotes: its byte,
 * *i moved past it. */
static uint8_t escaped(const uint8_t *p, size_t len, size_t *i) {
    uint8_t ch = p[*i];
    if (ch == 'x' && *i + 2 < len && hex_value(p[*i + 1]) >= 0 && hex_value(p[*i + 2]) >= 0) {
        uint8_t v = (uint8_t)(hex_value(p[*i + 1]) * 16 + hex_value(p[*i + 2]));
        *i += 3;
        return v;
    }
    *i += 1;
    switch (ch) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return ch;
    }
}

/* The word that starts at p[*i] (not a space): its bytes written to out if
 * out is not NULL, their count in *n, *i moved past it. A quote anywhere in
 * a word opens a quoted part, which must end the word. 0, or CT_EMALFORMED
 * for a quote left open or closed in the middle of a word. */
static int next_word(const uint8_t *p, size_t len, size_t *i, uint8_t *out, size_t *n) {
    uint8_t quote = 0;
    *n = 0;
    while (*i < len) {
        uint8_t ch = p[*i];
        if (!quote) {
            if (ends_word(ch)) return 0;
            (*i)++;
            if (ch == '"' || ch == '\'') {
                quote = ch;
                continue;
            }
        } else if (ch == quote) {
            (*i)++;
            return *i < len && !is_space(p[*i]) ? CT_EMALFORMED : 0;
        } else if (quote == '"' && ch == '\\' && *i + 1 < len) {
            (*i)++;
            ch = escaped(p, len, i);
        } else if (quote == '\'' && ch == '\\' && *i + 1 < len && p[*i + 1] == '\'') {
            ch = '\'';
            *i += 2;
        } else {
            (*i)++;
        }
        if (out) out[*n] = ch;
        (*n)++;
    }
    return quote ? CT_EMALFORMED : 0;
}

/* "<type><n>\r\n" at out + *at if it fits in cap; *at moves on either way. */
static void put_header(uint8_t *out, size_t cap, size_t *at, char type, size_t n) {
    char text[32];
    int k = snprintf(text, sizeof text, "%c%zu\r\n", type, n);
    if (out && *at + (size_t)k <= cap) memcpy(out + *at, text, (size_t)k);
    *at += (size_t)k;
}

int ct_resp_inline_to_command(const uint8_t *line, size_t len, uint8_t *out, size_t cap,
                              size_t *size) {
    size_t i = 0, at = 0, words = 0, n, pass;
    int r;
    /* pass 0 counts the words; pass 1 sizes them and, if they fit, writes */
    for (pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (words == 0) return CT_EINVAL;
            put_header(out, cap, &at, '*', words);
        }
        for (i = 0;;) {
            while (i < len && is_space(line[i]))
                i++;
            if (i == len) break;
            if (pass == 0) {
                if ((r = next_word(line, len, &i, NULL, &n)) < 0) return r;
                words++;
                continue;
            }
            {
                size_t start = i;
                next_word(line, len, &i, NULL, &n); /* its size, for its header */
                put_header(out, cap, &at, '$', n);
                i = start;
                next_word(line, len, &i, out && at + n + 2 <= cap ? out + at : NULL, &n);
                if (out && at + n + 2 <= cap) memcpy(out + at + n, "\r\n", 2);
                at += n + 2;
            }
        }
    }
    *size = at;
    return 0;
}
