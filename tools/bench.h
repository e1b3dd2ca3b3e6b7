#ifndef CTOWER_TOOLS_BENCH_H
#define CTOWER_TOOLS_BENCH_H
#include "options.h"
/* Runs `ctower bench`; returns the exit code. */
int bench_main(const options_t *o);
#endif
