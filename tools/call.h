#ifndef CTOWER_TOOLS_CALL_H
#define CTOWER_TOOLS_CALL_H
#include "options.h"
/* Runs `ctower call`; returns the exit code. */
int call_main(const options_t *o);
#endif
