/* HTTP for the tool: the echo service of `serve --codec http` and of
 * bench's in-process server, the request bench and call send, and the
 * proxy's answer when a backend fails. */
#ifndef CTOWER_TOOLS_HTTP_ECHO_H
#define CTOWER_TOOLS_HTTP_ECHO_H

#include <ctower/ctower.h>

/* A service answering each request with 200 and the request's body (none
 * for HEAD), in buffers of pool. A request the view cannot hold (too many
 * fields) gets 431. With tagged (HTTP/2), each message has 4 bytes of tag
 * before it: the request's are skipped, the response's left for the
 * server to fill. */
void http_echo_init(ct_service_fn_t *svc, ct_loop_t *loop, ct_buf_pool_t *pool, int tagged);

/* A request written by ct_http_format_request() into a buffer to free(),
 * *len its size; NULL if the arguments say no request (*len is then 0), or
 * without memory. */
uint8_t *http_request_bytes(const char *method, const char *target, const char *fields,
                            const void *body, size_t body_len, size_t *len);

/* The request bench sends: a POST of size bytes of 'x' (a GET when size is
 * 0), after room bytes of zeros (a tag's room), in a buffer to free();
 * NULL without memory. */
uint8_t *http_bench_request(int size, size_t room, long deadline_ms, size_t *len);

/* A ct_server_error_fn: 502 (504 for a timeout), no body (so that it also
 * answers a HEAD), the error's name in an X-Ctower-Error field. */
int http_error_reply(ct_server_t *srv, int status, void **response);

/* The same after 4 bytes of room, for the server to write the request's
 * tag in (HTTP/2). */
int http2_error_reply(ct_server_t *srv, int status, void **response);

#endif
