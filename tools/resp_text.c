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

/* The line at p[at..): its text is p[at + 1 .. *cr). 0, or -1 if cut. */
static int line_end(const uint8_t *p, size_t len, size_t at, size_t *cr) {
    const uint8_t *nl = at < len ? memchr(p + at, '\n', len - at) : NULL;
    if (!nl || nl == p + at) return -1;
    *cr = (size_t)(nl - p) - 1;
    return 0;
}

static long long number(const uint8_t *p, size_t from, size_t to) {
    char text[24];
    size_t n = to - from < sizeof text - 1 ? to - from : sizeof text - 1;
    memcpy(text, p + from, n);
    text[n] = '\0';
    return atoll(text);
}

/* Prints the value at p[*at..len) and moves *at past it: 0, or -1. */
static int print_value(FILE *out, const uint8_t *p, size_t len, size_t *at, int depth) {
    static const char *const labels[256] = {
        ['-'] = "(error) ", [':'] = "(integer) ", [','] = "(double) ", ['('] = "(big number) "};
    size_t cr, i;
    long long n;
    uint8_t type;
    if (depth > 64 || line_end(p, len, *at, &cr) != 0) return -1;
    type = p[*at];
    switch (type) {
    case '+':
    case '-':
    case ':':
    case ',':
    case '(':
        if (labels[type]) fputs(labels[type], out);
        print_escaped(out, p + *at + 1, cr - *at - 1);
        *at = cr + 2;
        return 0;
    case '_':
        fputs("(nil)", out);
        *at = cr + 2;
        return 0;
    case '#':
        fputs(cr > *at + 1 && p[*at + 1] == 't' ? "(true)" : "(false)", out);
        *at = cr + 2;
        return 0;
    case '$':
    case '!':
    case '=':
        n = number(p, *at + 1, cr);
        *at = cr + 2;
        if (n < 0) return fputs("(nil)", out), 0;
        if ((size_t)n > len - *at) return -1;
        if (type == '!') fputs("(error) ", out);
        if (type == '=' && n >= 4) /* "txt:" or "mkd:" */
            print_escaped(out, p + *at + 4, (size_t)n - 4);
        else
            print_escaped(out, p + *at, (size_t)n);
        *at += (size_t)n + 2;
        return 0;
    default: /* an aggregate */
        n = number(p, *at + 1, cr);
        *at = cr + 2;
        if (n < 0) return fputs("(nil)", out), 0;
        if (type == '|') fputs("(attributes) {", out);
        fputs(type == '%' ? "{" : type == '|' ? "" : "[", out);
        for (i = 0; i < (size_t)n * (type == '%' || type == '|' ? 2 : 1); i++) {
            if (i > 0) fputs((type == '%' || type == '|') && i % 2 ? ": " : ", ", out);
            if (print_value(out, p, len, at, depth + 1) != 0) return -1;
        }
        fputs(type == '%' || type == '|' ? "}" : "]", out);
        if (type != '|') return 0;
        fputs(" ", out); /* then the value the attributes describe */
        return print_value(out, p, len, at, depth + 1);
    }
}

void resp_text_print(FILE *out, const uint8_t *p, size_t len) {
    size_t at = 0;
    if (print_value(out, p, len, &at, 0) != 0) fputs(" (cut short)", out);
}
