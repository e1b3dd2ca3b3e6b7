/* Options shared by `ctower serve`, `ctower bench` and `ctower call`. */
#ifndef CTOWER_TOOLS_OPTIONS_H
#define CTOWER_TOOLS_OPTIONS_H

#include <ctower/ctower.h>

enum { OPTIONS_MAX_BACKENDS = 64 };

typedef enum command { CMD_BENCH, CMD_SERVE, CMD_CALL, CMD_PROXY } command_t;

typedef struct options {
    const char *address; /* serve, proxy: where to listen; bench: --server; call: where to call */
    const char *backends[OPTIONS_MAX_BACKENDS]; /* proxy: where the requests go */
    int nbackends;
    const char *backends_file; /* proxy: the backends, one address per line, read again on SIGHUP */
    int peak_ewma;             /* proxy --load peak-ewma: the balancer weighs round-trip times */
    int shard;                 /* proxy --shard: the backends hold different keys */
    int breaker; /* proxy --breaker N: failures in a row that open a backend's breaker */
    int multiplex;
    int line_codec; /* --codec line or crlf */
    int crlf;       /* --codec crlf: lines end in "\r\n" */
    int resp;       /* --codec resp: Redis's protocol */
    int http;  /* --codec http or http2: HTTP messages (requests one way, responses the other) */
    int http2; /* --codec http2: over HTTP/2 (multiplexed; each message after its tag) */
    int connections;
    int depth;
    int size;
    double duration_s;
    long long requests; /* 0: run for duration_s */
    int threads;
    double header_timeout_s; /* serve, proxy: a request's head must arrive within it (0: never) */
    double body_timeout_s;   /* ... and the whole request within it */
    double idle_timeout_s;   /* ... a connection with no request for it is closed */
    long max_connections;    /* ... open at most (0: the fd limit less a reserve) */
    double memory_budget;    /* ... bytes the connections may hold, all loops together */
    int json;
    int reconnect;       /* bench: each connection is a ct_reconnect_t */
    int retry;           /* bench: each connection under a ct_retry_t */
    const char *command; /* bench --codec resp: the words of the command each request sends */
    double timeout_s;    /* call: for the connect, and for each answer */
    long deadline_ms;    /* bench, call: each call's context gives its caller this long (0: none) */
    int context;         /* serve, bench, proxy: --context, a block before each request's payload */
    const char *admin;   /* serve, proxy: --admin ADDR, /metrics and /healthz */
    const char *access_log; /* proxy: --access-log FILE, a line per request */
    long max_in_flight;     /* proxy: requests in flight at most, over all clients (0: none) */
    long rate_per_s;        /* proxy: requests started per second at most (0: none) */
    char **messages;        /* call: the requests given as arguments */
    int nmessages;
    int tls;              /* bench, call, proxy's backends: --tls, connect with TLS */
    const char *tls_ca;   /* --tls-ca: the CA certificates to trust (default: the system's) */
    const char *tls_cert; /* serve, proxy: --tls-cert and --tls-key, listen with TLS */
    const char *tls_key;
    /* made by options_tls() from the four above; NULL: plain */
    const ct_tls_config_t *client_tls, *server_tls;
    ct_tls_config_t client_tls_cfg, server_tls_cfg;
} options_t;

enum { OPTIONS_HELP = 1 };

/* Parses argv[first..argc) into o (defaults already set) for cmd: serve
 * and call take an address and only their own options, call also its
 * messages. Returns 0, OPTIONS_HELP where -h or --help stands as an
 * option, or -1 after printing what was wrong. */
int options_parse(options_t *o, int argc, char **argv, int first, command_t cmd);

/* Makes the TLS contexts the options ask for (for bench without --server,
 * a self-signed pair for its in-process server and its clients). Returns 0,
 * or -1 after printing what was wrong. */
int options_tls(options_t *o, command_t cmd);
void options_tls_free(options_t *o);

/* The codec, stream and pool setup for one loop; the pool keeps buffers of
 * pool_cap bytes (a larger message gets a buffer of its own). */
typedef struct wire {
    ct_buf_pool_t pool;
    ct_buf_pool_t bytes_pool; /* with HTTP/2: the streams' chunks of bytes */
    ct_length_codec_t length;
    ct_line_codec_t line;
    ct_resp_codec_t resp;
    ct_http_codec_t http_client, http_server;
    ct_raw_codec_t raw; /* with HTTP/2: the bytes, as they come */
    ct_http2_config_t h2_client, h2_server;
    ct_stream_config_t stream;        /* for connections made (clients) */
    ct_stream_config_t listen_stream; /* for connections accepted (servers) */
} wire_t;

void wire_init(wire_t *w, const options_t *o, size_t pool_cap);

/* The listener settings of serve and proxy: the timeouts and the
 * connection bound (by default the fd limit less a reserve, per loop). */
size_t options_max_connections(const options_t *o);
void options_listener(const options_t *o, ct_listener_config_t *cfg, ct_budget_t *budget);
void wire_destroy(wire_t *w);

/* The transport a client uses over stream, just connected: the stream, or
 * HTTP/2 over it (in h2). 0 or an error (stream is then still the
 * caller's). */
int wire_client_transport(wire_t *w, ct_loop_t *loop, ct_stream_t *stream, ct_http2_t *h2,
                          ct_transport_t **out);

/* "length", "line", "crlf", "resp", "http" or "http2". */
const char *codec_name(const options_t *o);

#endif
