/* Options shared by `ctower serve` and `ctower bench`. */
#ifndef CTOWER_TOOLS_OPTIONS_H
#define CTOWER_TOOLS_OPTIONS_H

#include <ctower/ctower.h>

typedef struct options {
    const char *address; /* serve: where to listen; bench: --server */
    int multiplex;
    int line_codec;
    int connections;
    int depth;
    int size;
    double duration_s;
    long long requests; /* 0: run for duration_s */
    int threads;
    int json;
} options_t;

/* Parses argv[first..argc) into o (defaults already set); serve: for `ctower
 * serve`, which takes an address and only its own options. Returns 0, or -1
 * after printing what was wrong. */
int options_parse(options_t *o, int argc, char **argv, int first, int serve);

/* The codec, stream and pool setup for one loop. */
typedef struct wire {
    ct_buf_pool_t pool;
    ct_length_codec_t length;
    ct_line_codec_t line;
    ct_stream_config_t stream;
} wire_t;

void wire_init(wire_t *w, const options_t *o);

#endif
