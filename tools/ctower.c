/* The ctower command-line tool: `ctower serve`, `bench`, `proxy` and `call`,
 * and their help. */
#include "bench.h"
#include "call.h"
#include "proxy.h"
#include "serve.h"
#include "usage.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    command_t cmd;
    int (*run)(const options_t *o);
} commands[] = {
    {"serve", CMD_SERVE, serve_main},
    {"proxy", CMD_PROXY, proxy_main},
    {"call", CMD_CALL, call_main},
    {"bench", CMD_BENCH, bench_main},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static size_t find_command(const char *name) {
    size_t i;
    for (i = 0; i < NCOMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0) break;
    return i;
}

static int is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

int main(int argc, char **argv) {
    options_t o = {0};
    size_t i;
    int r;
    o.connections = 10;
    o.depth = 16;
    o.size = 64;
    o.duration_s = 5;
    o.threads = 1;
    o.timeout_s = 5;
    o.header_timeout_s = 10;
    o.body_timeout_s = 60;
    o.idle_timeout_s = 60;
    o.memory_budget = 64 << 20;
    /* A peer that resets a connection while a write is pending would
     * otherwise kill the process: libuv writes with write(), which raises
     * SIGPIPE; ignored, the write fails with EPIPE and the connection ends. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage_all(stderr);
        return 2;
    }
    if (is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc < 3 || strcmp(argv[1], "help") != 0) {
            usage_all(stdout);
            return 0;
        }
        if ((i = find_command(argv[2])) == NCOMMANDS) {
            fprintf(stderr, "ctower help: unknown command '%s' (serve, bench, proxy, call)\n",
                    argv[2]);
            return 2;
        }
        usage_command(stdout, commands[i].cmd);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("ctower %s\n", ct_version_string());
        return 0;
    }
    if ((i = find_command(argv[1])) == NCOMMANDS) {
        fprintf(stderr, "ctower: unknown command '%s'; `ctower --help` lists them\n", argv[1]);
        return 2;
    }
    r = options_parse(&o, argc, argv, 2, commands[i].cmd);
    if (r == OPTIONS_HELP) {
        usage_command(stdout, commands[i].cmd);
        return 0;
    }
    if (r != 0 || options_tls(&o, commands[i].cmd)) return 2;
    r = commands[i].run(&o);
    options_tls_free(&o);
    return r;
}
