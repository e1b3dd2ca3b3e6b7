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
    fprintf(f,
            "usage:\n"
            "  ctower serve ADDR [--mode pipeline|multiplex] [--codec length|line|crlf|resp|http] "
            "[--threads N]\n"
            "               [--tls-cert FILE --tls-key FILE] [--context] [--admin ADDR] [LIMITS]\n"
            "  ctower bench [--server ADDR] [--mode pipeline|multiplex] [--codec "
            "length|line|crlf|resp|http]\n"
            "               [--connections N] [--depth N] [--size BYTES] [--duration S | "
            "--requests N]\n"
            "               [--threads N] [--reconnect] [--retry] [--json] [--command 'WORDS']\n"
            "               [--deadline MS] [--context] [--tls [--tls-ca FILE]]\n"
            "  ctower proxy LISTEN (BACKEND [BACKEND...] | --backends-file FILE)\n"
            "               [--mode pipeline|multiplex]\n"
            "               [--codec length|line|crlf|resp|http] [--timeout S] [--retry]\n"
            "               [--max-in-flight N] [--rate N] [--load in-flight|peak-ewma] [--shard]\n"
            "               [--breaker N] [--context] [--admin ADDR] [--access-log FILE]\n"
            "               [--tls-cert FILE --tls-key FILE] [LIMITS]\n"
            "               [--tls [--tls-ca FILE]]\n"
            "  ctower call ADDR [--mode pipeline|multiplex] [--codec length|line|crlf|resp|http] "
            "[--timeout S]\n"
            "               [--deadline MS] [--tls [--tls-ca FILE]] [--] [MESSAGE ...]\n"
            "\n"
            "LIMITS of serve and proxy, for clients that are slow or hostile:\n"
            "  --header-timeout S  a request's head must arrive within S seconds of its\n"
            "                      first byte (default 10; 0: no limit); else 408, close\n"
            "  --body-timeout S    the whole request within S seconds (default 60; 0: none)\n"
            "  --idle-timeout S    close a connection with no request for S seconds\n"
            "                      (default 60; 0: never)\n"
            "  --max-connections N open at most (default: the fd limit less a reserve);\n"
            "                      beyond it new clients wait in the kernel's backlog\n"
            "  --memory-budget B   bytes all connections may hold in requests and answers\n"
            "                      (K, M, G: powers of 1024; default 64M); past it those\n"
            "                      holding the most are not read until their answers leave.\n"
            "                      Each connection holds 1 MiB at most in any case\n"
            "\n"
            "ADDR is tcp://HOST:PORT, tcp://[V6]:PORT or unix:///PATH. Without --server,\n"
            "bench starts an echo server of its own on a free loopback port; --reconnect\n"
            "makes each connection a reconnecting client (ct_reconnect_t), and --retry puts\n"
            "each one under a retry layer (ct_retry_t). With --codec resp each request is a\n"
            "Redis command, --command's words or PING; error replies count as errors.\n"
            "With --codec http, serve answers each request with 200 and its body, bench\n"
            "sends POSTs of --size bytes, and call's messages are METHOD TARGET [BODY].\n"
            "serve --threads N runs N loops, each accepting on ADDR (TCP only).\n"
            "call sends each MESSAGE (or each line of its input) and prints the answers.\n"
            "proxy sends the requests of every connection it accepts on LISTEN to BACKEND\n"
            "over one shared connection; each request must be answered within --timeout\n"
            "seconds (default 5), and --retry puts a retry layer on top. Several\n"
            "backends share the requests (ct_balance_t), one connection each; with\n"
            "--backends-file they are the addresses in FILE, one per line, read again\n"
            "on SIGHUP (backends gone from it are removed once their requests are\n"
            "answered). --load peak-ewma weighs each backend's round-trip time too.\n"
            "--shard (with --codec resp): the backends hold different keys, and each\n"
            "command goes to the one its key hashes to (ct_shard_t; {hash tags} keep\n"
            "keys together; a command over keys of several backends is refused).\n"
            "--breaker N: a backend whose requests fail N times in a row (time-outs,\n"
            "broken connections) has its requests fail at once for a while (ct_breaker_t).\n"
            "--max-in-flight and --rate bound the requests of all clients together\n"
            "(ct_limit_t): beyond them, clients wait, unread.\n"
            "Request contexts (context.h): with --codec http, proxy reads each request's\n"
            "ctower-timeout (the time its caller has left, as grpc-timeout writes it:\n"
            "250m) and traceparent (W3C), answers 504 once that time is up, and sends\n"
            "what is left of it, and the trace, to the backend. bench and call\n"
            "--deadline MS give each call MS milliseconds (sent as ctower-timeout with\n"
            "--codec http); a call past it fails with CT_ETIMEDOUT. With the length codec,\n"
            "--context puts the context in a 32-byte block before each request's payload\n"
            "(after its tag): give it to every hop (serve, bench, proxy) or to none; an\n"
            "error is then answered with an empty payload.\n"
            "--admin ADDR (serve, proxy): GET /metrics, the Prometheus exposition of the\n"
            "listeners' and servers' counts over every loop (proxy: its requests, each\n"
            "backend's, and its layers'); GET /healthz, 200 while serving, 503 while\n"
            "draining.\n"
            "--access-log FILE (proxy): a line per request (time, client, outcome,\n"
            "seconds, backend), written a buffer at a time.\n"
            "--tls-cert and --tls-key (PEM files) make serve and proxy listen with TLS;\n"
            "--tls makes bench, call and proxy (to its backends) connect with TLS, trusting\n"
            "the CA certificates in --tls-ca or else the system's. bench --tls without\n"
            "--server gives its own server a self-signed certificate.\n");
}

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
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (options_parse(&o, argc, argv, 2, commands[i].cmd) || options_tls(&o, commands[i].cmd))
            return 2;
        r = commands[i].run(&o);
        options_tls_free(&o);
        return r;
    }
    fprintf(stderr, "ctower: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
