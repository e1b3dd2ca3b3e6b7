/* RESP for people (see resp_text.h). The values printed were framed by the
 * RESP codec, so their structure is known to be sound; the walk still
 * checks every bound, and stops at the end of the bytes. */
#include "resp_text.h"

#include <ctower/codec/resp.h>

#include <stdlib.h>
#include <string.h>

uint8_t *resp_text_command(const char *text, size_t *len) {
    size_t n = strlen(text), argc = 0, i = 0;
    const char **argv = malloc((n / 2 + 1) * sizeof *argv); /* words are 1+ bytes, spaced */
    size_t *lens = malloc((n / 2 + 1) * sizeof *lens);
    uint8_t *out = NULL;
    while (argv && lens && i < n) {
        size_t start;
        while (i < n && (text[i] == ' ' || text[i] == '\t'))
            i++;
        if (i == n) break;
        start = i;
        while (i < n && text[i] != ' ' && text[i] != '\t')
            i++;
        argv[argc] = text + start;
        lens[argc++] = i - start;
    }
    if (argv && lens) {
        *len = ct_resp_format_command(NULL, 0, (int)argc, argv, lens);
        out = malloc(*len);
        if (out) ct_resp_format_command(out, *len, (int)argc, argv, lens);
    }
    free(argv);
    free(lens);
    return out;
}

static void print_escaped(FILE *out, const uint8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] == '\n')
            fputs("\\n", out);
        else if (p[i] == '\r')
            fputs("\\r", out);
        else if (p[i] == '\\')
            fputs("\\\\", out);
        else if (p[i] < 0x20 || p[i] == 0x7f)
            fprintf(out, "\\x%02x", p[i]);
        else
            fputc(p[i], out);
    }
}

/* Prints the value at p[*at..len) and moves *at past it: 0, or -1. */
static int print_value(FILE *out, const uint8_t *p, size_t len, size_t *at, int depth) {
    int pairs;
    int64_t i, items;
    ct_resp_item_t it;
    if (depth > 64 || ct_resp_read(p, len, at, &it) != 0) return -1;
    if (it.null) return fputs("(nil)", out), 0;
    switch (it.type) {
    case '+':
    case '$':
        break;
    case '-':
    case '!':
        fputs("(error) ", out);
        break;
    case ':':
        return fprintf(out, "(integer) %lld", (long long)it.n), 0;
    case ',':
        fputs("(double) ", out);
        break;
    case '(':
        fputs("(big number) ", out);
        break;
    case '#':
        return fputs(it.len == 1 && it.str[0] == 't' ? "(true)" : "(false)", out), 0;
    case '=': /* "txt:" or "mkd:", then the text */
        if (it.len >= 4) it.str += 4, it.len -= 4;
        break;
    default: /* an aggregate: [a, b], {k: v}, or attributes then their value */
        pairs = it.type == '%' || it.type == '|';
        fputs(it.type == '|' ? "(attributes) {" : pairs ? "{" : "[", out);
        items = it.n;
        for (i = 0; i < items; i++) {
            if (i > 0) fputs(pairs && i % 2 ? ": " : ", ", out);
            if (print_value(out, p, len, at, depth + 1) != 0) return -1;
        }
        fputs(pairs ? "}" : "]", out);
        if (it.type != '|') return 0;
        fputs(" ", out);
        return print_value(out, p, len, at, depth + 1);
    }
    print_escaped(out, it.str, it.len);
    return 0;
}

void resp_text_print(FILE *out, const uint8_t *p, size_t len) {
    size_t at = 0;
    if (print_value(out, p, len, &at, 0) != 0) fputs(" (cut short)", out);
}
