/* What `ctower --help`, `ctower help COMMAND` and `ctower COMMAND --help`
 * print: each command's synopsis and options, then the notes they share. */
#include "usage.h"

#include <ctower/version.h>
#include <string.h>

static const char *const synopsis[] = {
    [CMD_SERVE] = "  ctower serve ADDR [--mode pipeline|multiplex] [--codec CODEC] [--threads N]\n"
                  "               [--tls-cert FILE --tls-key FILE] [--context] [--admin ADDR]\n"
                  "               [LIMITS]\n",
    [CMD_BENCH] = "  ctower bench [--server ADDR] [--mode pipeline|multiplex] [--codec CODEC]\n"
                  "               [--connections N] [--depth N] [--size BYTES]\n"
                  "               [--duration S | --requests N] [--threads N] [--reconnect]\n"
                  "               [--retry] [--json] [--command 'WORDS'] [--deadline MS]\n"
                  "               [--context] [--tls [--tls-ca FILE]]\n",
    [CMD_PROXY] = "  ctower proxy LISTEN (BACKEND [BACKEND...] | --backends-file FILE)\n"
                  "               [--mode pipeline|multiplex] [--codec CODEC] [--timeout S]\n"
                  "               [--retry] [--max-in-flight N] [--rate N]\n"
                  "               [--load in-flight|peak-ewma] [--shard] [--breaker N]\n"
                  "               [--context] [--admin ADDR] [--access-log FILE]\n"
                  "               [--tls-cert FILE --tls-key FILE] [--tls [--tls-ca FILE]]\n"
                  "               [LIMITS]\n",
    [CMD_CALL] = "  ctower call ADDR [--mode pipeline|multiplex] [--codec CODEC] [--timeout S]\n"
                 "               [--deadline MS] [--tls [--tls-ca FILE]] [--] [MESSAGE ...]\n",
};

static const char *const details[] = {
    [CMD_SERVE] = "serve answers every request with itself (an echo server; with --codec http,\n"
                  "200 and the request's body).\n"
                  "  --threads N         N loops, each accepting on ADDR (TCP only)\n"
                  "  --tls-cert, --tls-key FILE  listen with TLS (PEM files)\n"
                  "  --context           (length codec) a 32-byte context block before each\n"
                  "                      request's payload, after its tag\n"
                  "  --admin ADDR        GET /metrics (Prometheus) and /healthz (200 serving,\n"
                  "                      503 draining) on a listener of their own\n",
    [CMD_BENCH] =
        "bench sends requests as fast as they are answered and prints requests/s,\n"
        "MB/s, latency percentiles and errors. Without --server it starts an echo\n"
        "server of its own on a free loopback port.\n"
        "  --connections N     connections (10), each with --depth N requests in\n"
        "                      flight (16) of --size BYTES (64)\n"
        "  --duration S        for S seconds (5), or --requests N in all\n"
        "  --threads N         N loops, the connections shared among them\n"
        "  --reconnect         each connection a reconnecting client (ct_reconnect_t)\n"
        "  --retry             each connection under a retry layer (ct_retry_t)\n"
        "  --json              the results as one JSON object\n"
        "  --command 'WORDS'   (--codec resp) the command each request sends (PING);\n"
        "                      error replies count as errors\n"
        "  --deadline MS       each call's context gives it MS milliseconds\n"
        "  --tls               connect with TLS (without --server, its own server has a\n"
        "                      self-signed certificate); --tls-ca FILE: the CAs trusted\n",
    [CMD_PROXY] =
        "proxy sends the requests of every connection it accepts on LISTEN to its\n"
        "backends, over one shared connection to each, balanced (ct_balance_t).\n"
        "  --backends-file FILE  the backends' addresses, one per line, read again on\n"
        "                      SIGHUP (those gone are removed once answered)\n"
        "  --timeout S         each request answered within S seconds (5)\n"
        "  --retry             a retry layer on top (ct_retry_t)\n"
        "  --max-in-flight N, --rate N  requests in flight, and started per second, of\n"
        "                      all clients together (ct_limit_t): beyond, clients wait\n"
        "  --load peak-ewma    weigh each backend's round-trip time too\n"
        "  --shard             (--codec resp) each command to the backend its key\n"
        "                      hashes to (ct_shard_t; {hash tags} keep keys together)\n"
        "  --breaker N         a backend failing N times in a row fails at once for a\n"
        "                      while (ct_breaker_t)\n"
        "  --context           (length codec) a context block before each payload: give\n"
        "                      it to every hop or to none. With --codec http the proxy\n"
        "                      reads ctower-timeout and traceparent, answers 504 once the\n"
        "                      time is up, and sends what is left to the backend\n"
        "  --admin ADDR        /metrics (its requests, each backend's, its layers') and\n"
        "                      /healthz\n"
        "  --access-log FILE   a line per request (time, client, outcome, seconds,\n"
        "                      backend), written a buffer at a time\n"
        "  --tls-cert, --tls-key FILE  listen with TLS; --tls: to the backends with TLS,\n"
        "                      --tls-ca FILE the CAs trusted (else the system's)\n",
    [CMD_CALL] = "call sends each MESSAGE (or each line of its input) and prints the answers;\n"
                 "with --codec http a message is METHOD TARGET [BODY]. After --, arguments\n"
                 "that start with '-' are messages too.\n"
                 "  --timeout S         for the connect, and for each answer (5)\n"
                 "  --deadline MS       each call's context gives it MS milliseconds (sent as\n"
                 "                      ctower-timeout with --codec http); past it, CT_ETIMEDOUT\n"
                 "  --tls               connect with TLS; --tls-ca FILE the CAs trusted\n",
};

static const char common[] =
    "ADDR is tcp://HOST:PORT, tcp://[V6]:PORT or unix:///PATH. CODEC is length (a\n"
    "4-byte length before each message), line, crlf, resp (Redis), http (HTTP/1.1)\n"
    "or http2. --mode multiplex: requests carry tags and are answered in any order.\n";

static const char limits[] =
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
    "                      Each connection holds 1 MiB at most in any case\n";

static const command_t order[] = {CMD_SERVE, CMD_BENCH, CMD_PROXY, CMD_CALL};

void usage_all(FILE *f) {
    size_t i;
    fprintf(f, "ctower %s: network clients and servers as services\n\nusage:\n",
            ct_version_string());
    for (i = 0; i < sizeof order / sizeof order[0]; i++)
        fputs(synopsis[order[i]], f);
    fputs("  ctower help [COMMAND]     this, or COMMAND's options (also COMMAND --help)\n"
          "  ctower --version\n\n",
          f);
    fputs(common, f);
    fputc('\n', f);
    fputs(limits, f);
    fputs("\n`ctower help COMMAND` tells each command's options; man ctower(1).\n", f);
}

void usage_command(FILE *f, command_t cmd) {
    fprintf(f, "usage:\n%s\n%s\n%s", synopsis[cmd], details[cmd], common);
    if (cmd == CMD_SERVE || cmd == CMD_PROXY) {
        fputc('\n', f);
        fputs(limits, f);
    }
}
