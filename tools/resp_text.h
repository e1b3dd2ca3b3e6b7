/* RESP for people: `ctower call --codec resp` turns each message's words into
 * a command and prints each reply on one line. */
#ifndef CTOWER_TOOLS_RESP_TEXT_H
#define CTOWER_TOOLS_RESP_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The words of text (split on spaces and tabs) as a RESP command, in a new
 * buffer of *len bytes (free() it), or NULL without memory. */
uint8_t *resp_text_command(const char *text, size_t *len);

/* Prints the value p[0..len) (one whole value, as the RESP codec delivers
 * it) on one line: "+OK" as OK, errors as "(error) ...", integers as
 * "(integer) 42", nulls as "(nil)", bulk strings with \r, \n, \\ and other
 * control bytes escaped, aggregates as [a, b], maps as {k: v}. */
void resp_text_print(FILE *out, const uint8_t *p, size_t len);

#endif
