#ifndef CTOWER_TOOLS_SERVE_H
#define CTOWER_TOOLS_SERVE_H
#include "options.h"
/* Runs `ctower serve`; returns the exit code. */
int serve_main(const options_t *o);
#endif
