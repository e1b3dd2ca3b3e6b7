/* `ctower call ADDR [MESSAGE ...]`: sends each message (or, with none, each
 * line of the input) as one request over one connection, pipelined, and
 * prints the answers in request order, one per line: for trying a server by
 * hand and in scripts. Exit status 0 when every request was answered, 1
 * otherwise (each failure said on stderr), 2 on bad options.
 *
 * In multiplex mode the first 4 bytes of a payload are its tag (as for
 * `ctower serve`): call puts them before each message and takes them off
 * each answer. With --codec resp each message's words are a Redis command,
 * and each reply is printed on one line (resp_text.h). Every answer must come within --timeout
 * seconds of its request (the connect too), so a silent server ends the call. */
#include "call.h"
#include "http_echo.h"
#include "resp_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IN_FLIGHT = 64, TAG_BYTES = 4 };

typedef struct call_req {
    ct_op_t op;
    size_t index;     /* of the message */
    ct_context_t ctx; /* with --deadline */
} call_req_t;

typedef struct call {
    const options_t *o;
    ct_loop_t ct;
    wire_t wire;
    ct_connector_t connector;
    ct_stream_t stream;
    ct_http2_t h2; /* --codec http2: between the stream and the client */
    ct_client_t client;
    ct_slab_tags_t tags;
    ct_timeout_t timeout; /* over the client, which it owns */
    size_t prefix;        /* tag bytes before each payload */
    char **msgs;
    size_t n, next, done;
    ct_buf_t **answers; /* per message, NULL if it failed */
    int *status, *cause;
    int connect_error; /* then no request was sent */
    call_req_t reqs[IN_FLIGHT];
} call_t;

static void on_loop_closed(ct_loop_t *loop) {
    (void)loop;
}

static void on_closed(ct_service_t *svc) {
    call_t *c = svc->data;
    if (c->o->multiplex) ct_slab_tags_free(&c->tags);
    ct_loop_close(&c->ct, on_loop_closed);
}

static void failed(call_t *c, size_t index, int status, int cause) {
    c->status[index] = status;
    c->cause[index] = cause;
    c->done++;
}

static void issue(call_t *c, call_req_t *r);
static void close_when_done(call_t *c);

static void on_answer(ct_op_t *op, int status, void *response) {
    call_req_t *r = CT_CONTAINER_OF(op, call_req_t, op);
    call_t *c = op->data;
    if (status == 0) {
        c->answers[r->index] = response;
        c->done++;
    } else {
        failed(c, r->index, status, op->cause);
    }
    issue(c, r); /* the op is reusable in its own callback */
    close_when_done(c);
}

/* The Host field for the address called: its host and port, or localhost
 * for a Unix socket. */
static void host_field(const char *address, char *field, size_t cap) {
    const char *host = strncmp(address, "tcp://", 6) == 0 ? address + 6 : "localhost";
    snprintf(field, cap, "Host: %s\r\n", host);
}

/* With --codec http, msg is "METHOD TARGET [BODY]" or a TARGET alone (a
 * GET): the request it says, in a buffer to free(). NULL if msg says no
 * request (*len is then 0), or without memory. */
static uint8_t *http_request(const call_t *c, const ct_context_t *ctx, const char *msg,
                             size_t *len) {
    char method[32] = "GET", target[2048], field[300 + CT_HTTP_CONTEXT_FIELDS_MAX];
    const char *body = "";
    int n = 0;
    *len = 0;
    if (msg[0] != '/' && msg[0] != '*' && sscanf(msg, "%31s %2047s %n", method, target, &n) >= 2)
        body = msg + n;
    else if (sscanf(msg, "%2047s", target) != 1)
        return NULL;
    host_field(c->o->address, field, sizeof field - CT_HTTP_CONTEXT_FIELDS_MAX);
    if (ctx) /* the time left as it leaves, and the trace */
        ct_http_format_context(ctx, uv_now(c->ct.uv), field + strlen(field),
                               CT_HTTP_CONTEXT_FIELDS_MAX);
    return http_request_bytes(method, target, field, body, strlen(body), len);
}

/* The request for msg: the message (after the tag's room), or with --codec
 * resp its words as a command, with --codec http the request it says. NULL
 * without memory, or if msg says no request. */
static ct_buf_t *request_for(call_t *c, const ct_context_t *ctx, const char *msg,
                             size_t *request_len) {
    size_t len = strlen(msg);
    uint8_t *command = c->o->resp   ? resp_text_command(msg, &len)
                       : c->o->http ? http_request(c, ctx, msg, &len)
                                    : NULL;
    ct_buf_t *b = (c->o->resp || c->o->http) && !command
                      ? NULL
                      : ct_buf_pool_get(&c->wire.pool, c->prefix + len);
    if (b) {
        memset(b->base, 0, c->prefix); /* the tag's room: the client writes it */
        memcpy(b->base + c->prefix, command ? (const void *)command : msg, len);
        b->len = c->prefix + len;
    }
    free(command);
    *request_len = len;
    return b;
}

/* Starts the next message on r. One that cannot start (the connection is
 * gone: the client refuses at once) fails, and the next is tried. */
static void issue(call_t *c, call_req_t *r) {
    while (c->next < c->n) {
        size_t len = 0;
        ct_buf_t *b;
        if (c->o->deadline_ms) { /* each message's own, from when it leaves */
            ct_context_init(&r->ctx);
            ct_context_set_timeout(&r->ctx, uv_now(c->ct.uv), (uint64_t)c->o->deadline_ms);
            r->op.ctx = &r->ctx;
        }
        b = request_for(c, r->op.ctx, c->msgs[c->next], &len);
        int rc = c->o->http && len == 0 ? CT_EINVAL : UV_ENOMEM;
        r->index = c->next++;
        if (b) {
            rc = ct_service_call(&c->timeout.service, b, &r->op);
            if (rc == 0) return;
            ct_buf_pool_put(&c->wire.pool, b);
        }
        failed(c, r->index, rc, 0);
    }
}

/* Once every request has its outcome: the timeout layer closes the client,
 * which closes the connection. */
static void close_when_done(call_t *c) {
    if (c->done == c->n) ct_service_close(&c->timeout.service, on_closed);
}

/* The client, and the timeout layer that owns it. */
static int start_client(call_t *c) {
    ct_client_config_t ccfg = {0};
    ct_timeout_config_t tcfg = {0};
    ct_transport_t *t;
    int r;
    ccfg.max_in_flight = IN_FLIGHT;
    ccfg.free_msg = tcfg.free_msg = ct_buf_pool_free_msg;
    ccfg.free_ctx = tcfg.free_ctx = &c->wire.pool;
    if ((r = wire_client_transport(&c->wire, &c->ct, &c->stream, &c->h2, &t)) != 0) return r;
    if (c->o->multiplex) {
        r = ct_slab_tags_init(&c->tags, IN_FLIGHT, ct_buf_get_tag, ct_buf_set_tag);
        if (r == 0) r = ct_multiplex_client_init(&c->client, &c->ct, t, &c->tags.store, &ccfg);
        if (r < 0) ct_slab_tags_free(&c->tags);
    } else {
        r = ct_pipeline_client_init(&c->client, &c->ct, t, &ccfg);
    }
    if (r < 0) return r;
    tcfg.timeout_ms = (uint64_t)(c->o->timeout_s * 1000 + 0.5);
    tcfg.max_in_flight = IN_FLIGHT;
    return ct_timeout_init(&c->timeout, &c->ct, &c->client.service, &tcfg);
}

static void on_connected(ct_stream_t *stream, int status) {
    call_t *c = CT_CONTAINER_OF(stream, call_t, stream);
    size_t i;
    int r = status == 0 ? start_client(c) : status;
    if (r < 0) {
        /* the outermost transport, which closes the stream */
        if (status == 0)
            ct_transport_close(c->h2.bytes ? &c->h2.transport : &stream->transport, NULL);
        c->connect_error = r;
        ct_loop_close(&c->ct, on_loop_closed);
        return;
    }
    c->timeout.service.data = c;
    for (i = 0; i < IN_FLIGHT && c->next < c->n; i++) {
        ct_op_init(&c->reqs[i].op, on_answer);
        c->reqs[i].op.data = c;
        issue(c, &c->reqs[i]);
    }
    close_when_done(c);
}

/* The input's lines (without their newlines), when no message was given. */
static char **read_lines(size_t *n) {
    char **lines = NULL, *line = NULL;
    size_t cap = 0, size = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &size, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') line[len - 1] = '\0';
        if (*n == cap) {
            char **more = realloc(lines, (cap = cap ? 2 * cap : 64) * sizeof *lines);
            if (!more) break;
            lines = more;
        }
        lines[(*n)++] = line;
        line = NULL;
        size = 0;
    }
    free(line);
    return lines;
}

/* Prints the answers in request order; returns the exit status. */
static int report(call_t *c) {
    size_t i;
    int status = 0;
    if (c->connect_error) {
        fprintf(stderr, "ctower call: cannot call %s: %s\n", c->o->address,
                ct_strerror(c->connect_error));
        return 1;
    }
    for (i = 0; i < c->n; i++) {
        ct_buf_t *b = c->answers[i];
        if (!b) {
            fprintf(stderr, "ctower call: request %zu: %s", i + 1, ct_err_name(c->status[i]));
            if (c->cause[i]) fprintf(stderr, " (%s)", ct_err_name(c->cause[i]));
            fprintf(stderr, ": %s\n", ct_strerror(c->status[i]));
            printf("\n"); /* a line for each request, so that answers keep their places */
            status = 1;
            continue;
        }
        if (c->o->resp)
            resp_text_print(stdout, (const uint8_t *)b->base, b->len);
        else if (b->len >= c->prefix)
            fwrite(b->base + c->prefix, 1, b->len - c->prefix, stdout);
        printf("\n");
        ct_buf_pool_put(&c->wire.pool, b);
    }
    return status;
}

static int run(call_t *c) {
    uv_loop_t uv;
    int r;
    uv_loop_init(&uv);
    ct_loop_init(&c->ct, &uv);
    wire_init(&c->wire, c->o, (size_t)c->o->size);
    /* typed requests: the codec checks each one before it leaves */
    ct_http_codec_init_client(&c->wire.http_client, c->wire.http_client.codec.max_payload);
    c->wire.stream.tls = c->o->client_tls;
    r = ct_connector_init(&c->connector, &c->ct, c->o->address, &c->wire.stream);
    if (r == 0) {
        c->connector.timeout_ms = (uint64_t)(c->o->timeout_s * 1000 + 0.5);
        r = ct_connector_connect(&c->connector, &c->stream, on_connected);
    }
    if (r < 0) {
        fprintf(stderr, "ctower call: cannot call %s: %s\n", c->o->address, ct_strerror(r));
        ct_loop_close(&c->ct, on_loop_closed);
        uv_run(&uv, UV_RUN_DEFAULT);
        uv_loop_close(&uv);
        wire_destroy(&c->wire);
        return r == CT_EBADADDR ? 2 : 1;
    }
    uv_run(&uv, UV_RUN_DEFAULT);
    r = report(c);
    wire_destroy(&c->wire);
    if (uv_loop_close(&uv) != 0)
        fprintf(stderr, "ctower call: the loop closed with handles open\n");
    return r;
}

int call_main(const options_t *o) {
    static call_t c; /* large: not on the stack */
    char **lines = NULL;
    size_t i;
    int r;
    if (!o->address) {
        fprintf(stderr, "usage: ctower call ADDR [--mode pipeline|multiplex] [--codec "
                        "length|line|crlf|resp|http|http2]"
                        " [--timeout S] [--deadline MS] [--] [MESSAGE ...]\n");
        return 2;
    }
    c.o = o;
    c.prefix = o->multiplex ? TAG_BYTES : 0;
    if (o->nmessages > 0) {
        c.msgs = o->messages;
        c.n = (size_t)o->nmessages;
    } else {
        c.msgs = lines = read_lines(&c.n);
    }
    if (c.n == 0) return 0; /* nothing to ask */
    c.answers = calloc(c.n, sizeof *c.answers);
    c.status = calloc(c.n, sizeof *c.status);
    c.cause = calloc(c.n, sizeof *c.cause);
    if (!c.answers || !c.status || !c.cause)
        return fprintf(stderr, "ctower call: out of memory\n"), 1;
    r = run(&c);
    if (lines)
        for (i = 0; i < c.n; i++)
            free(lines[i]);
    free(lines);
    free(c.answers);
    free(c.status);
    free(c.cause);
    return r;
}
