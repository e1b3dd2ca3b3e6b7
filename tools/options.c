#include "options.h"

#include <sys/resource.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number from min to max (NaN is not one); whole: no fraction. */
static int parse_number(const char *name, const char *text, double min, double max, int whole,
                        double *out) {
    char *end;
    double v = strtod(text ? text : "", &end);
    if (!text || !*text || *end || !(v >= min && v <= max) ||
        (whole && v != (double)(long long)v)) {
        fprintf(stderr, "ctower: %s wants a %s from %g to %g, not '%s'\n", name,
                whole ? "whole number" : "number", min, max, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int number(const char *name, const char *text, double min, double max, double *out) {
    return parse_number(name, text, min, max, 0, out);
}

static int whole_number(const char *name, const char *text, double min, double max, double *out) {
    return parse_number(name, text, min, max, 1, out);
}

/* A count of bytes, with an optional K, M or G (powers of 1024). */
static int byte_count(const char *name, const char *text, double *out) {
    char digits[32];
    size_t len = strlen(text);
    double unit = 1;
    if (len > 0 && len < sizeof digits && strchr("KkMmGg", text[len - 1])) {
        unit = strchr("Kk", text[len - 1])   ? 1024.0
               : strchr("Mm", text[len - 1]) ? 1048576.0
                                             : 1073741824.0;
        memcpy(digits, text, len - 1);
        digits[len - 1] = 0;
        text = digits;
    }
    if (parse_number(name, text, 1, 1e15, 1, out)) return -1;
    *out *= unit;
    return 0;
}

static const char *const command_names[] = {"bench", "serve", "call", "proxy"};

/* Which commands take each option (bits 1 << command_t). A name not listed
 * is for bench to refuse as unknown, and for the others to refuse as not
 * theirs. */
enum {
    BENCH = 1 << CMD_BENCH,
    SERVE = 1 << CMD_SERVE,
    CALL = 1 << CMD_CALL,
    PROXY = 1 << CMD_PROXY
};
static const struct {
    const char *name;
    int commands;
} option_commands[] = {
    {"--mode", BENCH | SERVE | CALL | PROXY},
    {"--codec", BENCH | SERVE | CALL | PROXY},
    {"--tls", BENCH | CALL | PROXY},
    {"--tls-ca", BENCH | CALL | PROXY},
    {"--tls-cert", SERVE | PROXY},
    {"--tls-key", SERVE | PROXY},
    {"--threads", BENCH | SERVE},
    {"--header-timeout", SERVE | PROXY},
    {"--body-timeout", SERVE | PROXY},
    {"--idle-timeout", SERVE | PROXY},
    {"--max-connections", SERVE | PROXY},
    {"--memory-budget", SERVE | PROXY},
    {"--timeout", CALL | PROXY},
    {"--deadline", BENCH | CALL},
    {"--context", BENCH | SERVE | PROXY},
    {"--admin", SERVE | PROXY},
    {"--access-log", PROXY},
    {"--retry", BENCH | PROXY},
    {"--max-in-flight", PROXY},
    {"--rate", PROXY},
    {"--backends-file", PROXY},
    {"--load", PROXY},
    {"--shard", PROXY},
    {"--breaker", PROXY},
    {"--server", BENCH},
    {"--connections", BENCH},
    {"--depth", BENCH},
    {"--size", BENCH},
    {"--duration", BENCH},
    {"--requests", BENCH},
    {"--json", BENCH},
    {"--reconnect", BENCH},
    {"--command", BENCH},
};

static int takes(command_t cmd, const char *name) {
    size_t i;
    for (i = 0; i < sizeof option_commands / sizeof option_commands[0]; i++)
        if (strcmp(name, option_commands[i].name) == 0)
            return (option_commands[i].commands & (1 << cmd)) != 0;
    return 0; /* no command's: refused as not this one's, with where to look */
}

/* An argument that is not an option: serve's, call's and proxy's address,
 * then call's messages or proxy's backends. */
static int positional(options_t *o, command_t cmd, char **argv, int i) {
    if (cmd != CMD_BENCH && !o->address) {
        o->address = argv[i];
        return 0;
    }
    if (cmd == CMD_PROXY) {
        if (o->nbackends == OPTIONS_MAX_BACKENDS) {
            fprintf(stderr, "ctower proxy: %d backends at most\n", OPTIONS_MAX_BACKENDS);
            return -1;
        }
        o->backends[o->nbackends++] = argv[i];
        return 0;
    }
    if (cmd == CMD_CALL) {
        /* from the first message on, every argument is one (options_parse),
         * so they follow one another in argv */
        if (!o->messages) o->messages = &argv[i];
        o->nmessages++;
        return 0;
    }
    fprintf(stderr, "ctower: unexpected argument '%s'\n", argv[i]);
    return -1;
}

static int check_mode(options_t *o, command_t cmd, int mode_given);

int options_parse(options_t *o, int argc, char **argv, int first, command_t cmd) {
    int i, only_positional = 0, mode_given = 0;
    for (i = first; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (cmd == CMD_CALL && !only_positional && o->nmessages == 0 && strcmp(a, "--") == 0) {
            only_positional = 1; /* messages that start with '-' */
            continue;
        }
        if (a[0] != '-' || only_positional || o->nmessages > 0) {
            if (positional(o, cmd, argv, i) != 0) return -1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return OPTIONS_HELP;
        if (!takes(cmd, a)) {
            fprintf(stderr, "ctower %s: %s is not an option of %s (ctower %s --help)\n",
                    command_names[cmd], a, command_names[cmd], command_names[cmd]);
            return -1;
        }
        if (strcmp(a, "--json") == 0) { /* the flags, which take no value */
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--reconnect") == 0) {
            o->reconnect = 1;
            continue;
        }
        if (strcmp(a, "--retry") == 0) {
            o->retry = 1;
            continue;
        }
        if (strcmp(a, "--tls") == 0) {
            o->tls = 1;
            continue;
        }
        if (strcmp(a, "--shard") == 0) {
            o->shard = 1;
            continue;
        }
        if (strcmp(a, "--context") == 0) {
            o->context = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ctower: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "pipeline") && strcmp(v, "multiplex")) {
                fprintf(stderr, "ctower: --mode is pipeline or multiplex, not '%s'\n", v);
                return -1;
            }
            o->multiplex = strcmp(v, "multiplex") == 0;
            mode_given = 1;
        } else if (strcmp(a, "--codec") == 0) {
            if (strcmp(v, "length") && strcmp(v, "line") && strcmp(v, "crlf") &&
                strcmp(v, "resp") && strcmp(v, "http") && strcmp(v, "http2")) {
                fprintf(stderr,
                        "ctower: --codec is length, line, crlf, resp, http or http2, not '%s'\n",
                        v);
                return -1;
            }
            o->resp = strcmp(v, "resp") == 0;
            o->http2 = strcmp(v, "http2") == 0;
            o->http = o->http2 || strcmp(v, "http") == 0;
            o->crlf = strcmp(v, "crlf") == 0;
            o->line_codec = o->crlf || strcmp(v, "line") == 0;
        } else if (strcmp(a, "--server") == 0) {
            o->address = v;
        } else if (strcmp(a, "--backends-file") == 0) {
            o->backends_file = v;
        } else if (strcmp(a, "--breaker") == 0) {
            if (whole_number(a, v, 1, 1000000, &d)) return -1;
            o->breaker = (int)d;
        } else if (strcmp(a, "--load") == 0) {
            if (strcmp(v, "in-flight") && strcmp(v, "peak-ewma")) {
                fprintf(stderr, "ctower: --load is in-flight or peak-ewma, not '%s'\n", v);
                return -1;
            }
            o->peak_ewma = strcmp(v, "peak-ewma") == 0;
        } else if (strcmp(a, "--tls-ca") == 0) {
            o->tls_ca = v;
        } else if (strcmp(a, "--tls-cert") == 0) {
            o->tls_cert = v;
        } else if (strcmp(a, "--tls-key") == 0) {
            o->tls_key = v;
        } else if (strcmp(a, "--command") == 0) {
            if (strspn(v, " \t") == strlen(v)) {
                fprintf(stderr, "ctower: --command wants the words of a command, not '%s'\n", v);
                return -1;
            }
            o->command = v;
        } else if (strcmp(a, "--connections") == 0) {
            if (whole_number(a, v, 1, 100000, &d)) return -1;
            o->connections = (int)d;
        } else if (strcmp(a, "--depth") == 0) {
            if (whole_number(a, v, 1, 65536, &d)) return -1;
            o->depth = (int)d;
        } else if (strcmp(a, "--size") == 0) {
            if (whole_number(a, v, 0, 16 << 20, &d)) return -1;
            o->size = (int)d;
        } else if (strcmp(a, "--duration") == 0) {
            if (number(a, v, 0.1, 86400, &d)) return -1;
            o->duration_s = d;
        } else if (strcmp(a, "--requests") == 0) {
            if (whole_number(a, v, 1, 1e15, &d)) return -1;
            o->requests = (long long)d;
        } else if (strcmp(a, "--timeout") == 0) {
            if (number(a, v, 0.001, 86400, &d)) return -1;
            o->timeout_s = d;
        } else if (strcmp(a, "--admin") == 0) {
            o->admin = v;
        } else if (strcmp(a, "--access-log") == 0) {
            o->access_log = v;
        } else if (strcmp(a, "--deadline") == 0) {
            if (whole_number(a, v, 0, 99999999, &d)) return -1;
            o->deadline_ms = (long)d;
        } else if (strcmp(a, "--max-in-flight") == 0) {
            if (whole_number(a, v, 1, 1 << 24, &d)) return -1;
            o->max_in_flight = (long)d;
        } else if (strcmp(a, "--rate") == 0) {
            if (whole_number(a, v, 1, 1e9, &d)) return -1;
            o->rate_per_s = (long)d;
        } else if (strcmp(a, "--header-timeout") == 0) {
            if (number(a, v, 0, 86400, &d)) return -1;
            o->header_timeout_s = d;
        } else if (strcmp(a, "--body-timeout") == 0) {
            if (number(a, v, 0, 86400, &d)) return -1;
            o->body_timeout_s = d;
        } else if (strcmp(a, "--idle-timeout") == 0) {
            if (number(a, v, 0, 86400, &d)) return -1;
            o->idle_timeout_s = d;
        } else if (strcmp(a, "--max-connections") == 0) {
            if (whole_number(a, v, 1, 1e7, &d)) return -1;
            o->max_connections = (long)d;
        } else if (strcmp(a, "--memory-budget") == 0) {
            if (byte_count(a, v, &d)) return -1;
            o->memory_budget = d;
        } else if (strcmp(a, "--threads") == 0) {
            if (whole_number(a, v, 1, 64, &d)) return -1;
            o->threads = (int)d;
        } else {
            fprintf(stderr, "ctower: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (o->size < 4 && !o->http) { /* HTTP's 0: GETs, without a body */
        fprintf(stderr,
                "ctower: --size wants a whole number from 4 (0 with --codec http), not %d\n",
                o->size);
        return -1;
    }
    if (o->context && (o->line_codec || o->resp || o->http)) {
        fprintf(stderr,
                "ctower %s: --context is for the length codec (HTTP carries a context "
                "in its fields, always)\n",
                command_names[cmd]);
        return -1;
    }
    if (o->context && o->size < (o->multiplex ? 4 : 0) + CT_CONTEXT_BLOCK_SIZE) {
        fprintf(stderr,
                "ctower %s: --context needs --size %d at least (the block, after the tag)\n",
                command_names[cmd], (o->multiplex ? 4 : 0) + CT_CONTEXT_BLOCK_SIZE);
        return -1;
    }
    return check_mode(o, cmd, mode_given);
}

/* Multiplexing needs binary tags, which HTTP/2 carries by itself; HTTP/2 is
 * multiplexed by nature, and not everywhere yet. */
static int check_mode(options_t *o, command_t cmd, int mode_given) {
    if (!o->http2) {
        if (o->multiplex && (o->line_codec || o->resp || o->http)) {
            fprintf(stderr, "ctower %s: multiplex needs the length codec (tags are binary)\n",
                    command_names[cmd]);
            return -1;
        }
        return 0;
    }
    if (mode_given && !o->multiplex) {
        fprintf(stderr, "ctower %s: --codec http2 is multiplexed (no --mode pipeline)\n",
                command_names[cmd]);
        return -1;
    }
    o->multiplex = 1;
    return 0;
}

static int tls_failed(const char *what, const char *file, int r) {
    fprintf(stderr, "ctower: %s%s%s: %s\n", what, file ? " " : "", file ? file : "",
            ct_strerror(r));
    return -1;
}

int options_tls(options_t *o, command_t cmd) {
    struct ssl_ctx_st *server = NULL, *client = NULL;
    int r;
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "ctower: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (o->tls_ca && !o->tls) {
        fprintf(stderr, "ctower: --tls-ca is for --tls\n");
        return -1;
    }
    if (cmd == CMD_BENCH && o->tls && !o->address) {
        /* the in-process server is on 127.0.0.1 */
        if ((r = ct_tls_self_signed(&server, &client, "127.0.0.1")) != 0)
            return tls_failed("a self-signed certificate", NULL, r);
    } else {
        if (o->tls_cert && (r = ct_tls_server_context(&server, o->tls_cert, o->tls_key)) != 0)
            return tls_failed("the certificate and key in", o->tls_cert, r);
        if (o->tls && (r = ct_tls_client_context(&client, o->tls_ca)) != 0) {
            ct_tls_context_free(server);
            return tls_failed("the CA certificates in",
                              o->tls_ca ? o->tls_ca : "the system's store", r);
        }
    }
    /* HTTP/2 over TLS is negotiated in the handshake (ALPN "h2") */
    if (o->http2 && server) ct_tls_context_alpn(server, 1, CT_TLS_ALPN_H2);
    if (o->http2 && client) ct_tls_context_alpn(client, 0, CT_TLS_ALPN_H2);
    o->server_tls_cfg.ctx = server;
    o->client_tls_cfg.ctx = client;
    o->server_tls = server ? &o->server_tls_cfg : NULL;
    o->client_tls = client ? &o->client_tls_cfg : NULL;
    return 0;
}

void options_tls_free(options_t *o) {
    ct_tls_context_free(o->server_tls_cfg.ctx);
    ct_tls_context_free(o->client_tls_cfg.ctx);
    o->server_tls = o->client_tls = NULL;
}

void wire_init(wire_t *w, const options_t *o, size_t pool_cap) {
    size_t max_payload = (size_t)o->size > (64u << 10) ? (size_t)o->size : (64u << 10);
    ct_length_codec_config_t cfg = {4, 0, 0, max_payload};
    ct_buf_pool_init(&w->pool, pool_cap, 1 << 16);
    ct_buf_pool_init(&w->bytes_pool, 16u << 10, 256);
    ct_length_codec_init(&w->length, &cfg);
    if (o->crlf)
        ct_line_codec_init_crlf(&w->line, max_payload);
    else
        ct_line_codec_init(&w->line, max_payload);
    memset(&w->stream, 0, sizeof w->stream);
    ct_resp_codec_init(&w->resp, max_payload);
    ct_http_codec_init_client(&w->http_client, max_payload);
    ct_http_codec_init_server(&w->http_server, max_payload);
    /* what the tool sends is written by ct_http_format_*() or was framed by
     * an HTTP codec (the proxy's); call, whose requests a user types, checks */
    ct_http_codec_trust_sent(&w->http_client);
    ct_http_codec_trust_sent(&w->http_server);
    w->stream.codec = o->resp         ? &w->resp.codec
                      : o->http       ? &w->http_client.codec
                      : o->line_codec ? &w->line.codec
                                      : &w->length.codec;
    w->stream.pool = &w->pool;
    w->listen_stream = w->stream;
    /* A client that never reads holds this much of our output (with the
     * bytes of --memory-budget): 256 KiB, not the library's 1 MiB, so that
     * a thousand of them fit a small machine. */
    w->listen_stream.high_water = 256u << 10;
    if (o->http) w->listen_stream.codec = &w->http_server.codec;
    if (o->http2) {
        ct_raw_codec_init(&w->raw, w->bytes_pool.buf_cap);
        w->stream.codec = &w->raw.codec;
        w->stream.pool = w->listen_stream.pool = &w->bytes_pool;
        w->listen_stream.codec = NULL; /* a listener with http2 frames the bytes itself */
        memset(&w->h2_client, 0, sizeof w->h2_client);
        w->h2_client.pool = &w->pool;
        w->h2_client.bytes_pool = &w->bytes_pool;
        w->h2_client.scheme = o->tls ? "https" : "http";
        w->h2_client.max_message = max_payload + (16u << 10); /* a body of --size, and a head */
        w->h2_server = w->h2_client;
        w->h2_server.server = 1;
        w->h2_server.max_streams = o->depth > 128 ? (uint32_t)o->depth : 128;
    }
}

void wire_destroy(wire_t *w) {
    ct_buf_pool_destroy(&w->pool);
    ct_buf_pool_destroy(&w->bytes_pool);
}

int wire_client_transport(wire_t *w, ct_loop_t *loop, ct_stream_t *stream, ct_http2_t *h2,
                          ct_transport_t **out) {
    int r;
    *out = &stream->transport;
    if (w->stream.codec != &w->raw.codec) return 0;
    if ((r = ct_http2_init(h2, loop, &stream->transport, &w->h2_client)) != 0) return r;
    *out = &h2->transport;
    return 0;
}

const char *codec_name(const options_t *o) {
    return o->resp         ? "resp"
           : o->http2      ? "http2"
           : o->http       ? "http"
           : o->crlf       ? "crlf"
           : o->line_codec ? "line"
                           : "length";
}

/* The fd limit less a reserve for the process's own files (backends, logs,
 * the listening sockets), shared by the loops: past it new clients wait in
 * the backlog rather than make accept() fail with EMFILE. */
size_t options_max_connections(const options_t *o) {
    struct rlimit rl;
    size_t n;
    if (o->max_connections) return (size_t)o->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 10000;
    n = rl.rlim_cur > 128 ? (size_t)rl.rlim_cur - 64 - (size_t)rl.rlim_cur / 20 : 16;
    return n / (size_t)(o->threads > 0 ? o->threads : 1);
}

/* The connections of one loop share budget, their loop's part of
 * --memory-budget: requests and answers their servers hold, output their
 * streams hold. */
void options_listener(const options_t *o, ct_listener_config_t *cfg, ct_budget_t *budget) {
    budget->limit = (size_t)(o->memory_budget / (o->threads > 0 ? o->threads : 1));
    budget->used = 0;
    cfg->server.budget = budget;
    cfg->stream.budget = budget;
    cfg->header_timeout_ms = (uint64_t)(o->header_timeout_s * 1000);
    cfg->body_timeout_ms = (uint64_t)(o->body_timeout_s * 1000);
    cfg->idle_timeout_ms = (uint64_t)(o->idle_timeout_s * 1000);
    cfg->max_connections = options_max_connections(o);
}
