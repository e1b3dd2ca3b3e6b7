/* Redis's inline commands ("SET k v" typed on a line) as RESP commands.
 * Words are split as Redis splits them (sdssplitargs): spaces between
 * words; "double quotes" with the escapes \n \r \t \b \a \\ \" and \xHH (any
 * other \c is c); 'single quotes' with \' only; a quote may open anywhere in
 * a word, and its closing quote must end the word. */
#include "ctower/codec/resp.h"
#include "ctower/error.h"
#include "resp_header.h"

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

static size_t skip_spaces(const uint8_t *line, size_t len, size_t i) {
    while (i < len && is_space(line[i]))
        i++;
    return i;
}

/* The words of line, counted: 0 and *words, or CT_EMALFORMED. */
static int count_words(const uint8_t *line, size_t len, size_t *words) {
    size_t i = 0, n;
    int r;
    *words = 0;
    while ((i = skip_spaces(line, len, i)) < len) {
        if ((r = next_word(line, len, &i, NULL, &n)) < 0) return r;
        (*words)++;
    }
    return 0;
}

/* The word at line[*i] (count_words checked it) as a bulk string at out +
 * *at, if it fits in cap; *i and *at move past it either way. */
static void put_word(const uint8_t *line, size_t len, size_t *i, uint8_t *out, size_t cap,
                     size_t *at) {
    size_t start = *i, n;
    int fits;
    next_word(line, len, i, NULL, &n); /* its size first, for its header */
    ct_resp_put_header(out, cap, at, '$', n);
    fits = *at + n + 2 <= cap;
    *i = start;
    next_word(line, len, i, fits ? out + *at : NULL, &n);
    if (fits) memcpy(out + *at + n, "\r\n", 2);
    *at += n + 2;
}

int ct_resp_inline_to_command(const uint8_t *line, size_t len, uint8_t *out, size_t cap,
                              size_t *size) {
    size_t i = 0, at = 0, words;
    int r = count_words(line, len, &words);
    if (r < 0) return r;
    if (words == 0) return CT_EINVAL;
    ct_resp_put_header(out, cap, &at, '*', words);
    while ((i = skip_spaces(line, len, i)) < len)
        put_word(line, len, &i, out, cap, &at);
    *size = at;
    return 0;
}
