#ifndef CTOWER_TOOLS_PROXY_H
#define CTOWER_TOOLS_PROXY_H
#include "options.h"
/* Runs `ctower proxy`; returns the exit code. */
int proxy_main(const options_t *o);
#endif
