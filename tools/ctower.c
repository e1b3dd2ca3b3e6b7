/* The ctower command-line tool: `ctower serve`, `ctower bench` and
 * `ctower call`. */
#include "bench.h"
#include "call.h"
#include "proxy.h"
#include "serve.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage:\n"
               "  ctower serve ADDR [--mode pipeline|multiplex] [--codec length|line|crlf|resp] "
               "[--threads N]\n"
               "  ctower bench [--server ADDR] [--mode pipeline|multiplex] [--codec "
               "length|line|crlf|resp]\n"
               "               [--connections N] [--depth N] [--size BYTES] [--duration S | "
               "--requests N]\n"
               "               [--threads N] [--reconnect] [--retry] [--json] [--command 'WORDS']\n"
               "  ctower proxy LISTEN BACKEND [BACKEND...] [--mode pipeline|multiplex]\n"
               "               [--codec length|line|crlf|resp] [--timeout S] [--retry]\n"
               "               [--max-in-flight N] [--rate N]\n"
               "  ctower call ADDR [--mode pipeline|multiplex] [--codec length|line|crlf|resp] "
               "[--timeout S]\n"
               "               [--] [MESSAGE ...]\n"
               "\n"
               "ADDR is tcp://HOST:PORT, tcp://[V6]:PORT or unix:///PATH. Without --server,\n"
               "bench starts an echo server of its own on a free loopback port; --reconnect\n"
               "makes each connection a reconnecting client (ct_reconnect_t), and --retry puts\n"
               "each one under a retry layer (ct_retry_t). With --codec resp each request is a\n"
               "Redis command, --command's words or PING; error replies count as errors.\n"
               "serve --threads N runs N loops, each accepting on ADDR (TCP only).\n"
               "call sends each MESSAGE (or each line of its input) and prints the answers.\n"
               "proxy sends the requests of every connection it accepts on LISTEN to BACKEND\n"
               "over one shared connection; each request must be answered within --timeout\n"
               "seconds (default 5), and --retry puts a retry layer on top. Several\n"
               "backends share the requests (ct_balance_t), one connection each.\n"
               "--max-in-flight and --rate bound the requests of all clients together\n"
               "(ct_limit_t): beyond them, clients wait, unread.\n");
}

int main(int argc, char **argv) {
    options_t o = {0};
    o.connections = 10;
    o.depth = 16;
    o.size = 64;
    o.duration_s = 5;
    o.threads = 1;
    o.timeout_s = 5;
    /* A peer that resets a connection while a write is pending would
     * otherwise kill the process: libuv writes with write(), which raises
     * SIGPIPE; ignored, the write fails with EPIPE and the connection ends. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "serve") == 0) {
        if (options_parse(&o, argc, argv, 2, CMD_SERVE)) return 2;
        return serve_main(&o);
    }
    if (strcmp(argv[1], "proxy") == 0) {
        if (options_parse(&o, argc, argv, 2, CMD_PROXY)) return 2;
        return proxy_main(&o);
    }
    if (strcmp(argv[1], "call") == 0) {
        if (options_parse(&o, argc, argv, 2, CMD_CALL)) return 2;
        return call_main(&o);
    }
    if (strcmp(argv[1], "bench") == 0) {
        if (options_parse(&o, argc, argv, 2, CMD_BENCH)) return 2;
        return bench_main(&o);
    }
    fprintf(stderr, "ctower: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
