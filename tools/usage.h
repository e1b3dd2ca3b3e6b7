/* The tool's help texts. */
#ifndef CTOWER_TOOLS_USAGE_H
#define CTOWER_TOOLS_USAGE_H

#include "options.h"

#include <stdio.h>

/* Every command's synopsis and the notes they share. */
void usage_all(FILE *f);

/* One command's synopsis, options and notes. */
void usage_command(FILE *f, command_t cmd);

#endif
