/* The rule of `ctower proxy --codec http`'s filter (filter.h): the fields
 * that speak for one connection only (hop-by-hop, RFC 9110 7.6.1) are for
 * the proxy, not the backend. A client's "Connection: close" passed on
 * would make the backend close the connection that every client shares,
 * failing everyone's requests in flight. So each request passed on loses
 * its Connection, Keep-Alive and Proxy-Connection fields and the fields its
 * Connection names (but never Content-Length, Transfer-Encoding or Host,
 * which frame and route it), and an HTTP/1.0 request says "Connection:
 * keep-alive". The client's own connection still ends after the answer to
 * its last request: its codec saw the request as it came.
 *
 * The request context (context.h) goes on with the request: a request
 * that came with ctower-timeout or traceparent leaves with them written
 * anew, the time left as of now (what the proxy spent is gone from it) and
 * the trace with a span id of the proxy's own. */
#ifndef CTOWER_TOOLS_HTTP_FILTER_H
#define CTOWER_TOOLS_HTTP_FILTER_H

#include "filter.h"

filter_verdict_t http_filter_rule(ct_buf_pool_t *pool, const filter_hop_t *hop, ct_buf_t **request,
                                  ct_buf_t **answer);

/* The listener's read_context for HTTP requests (ct_http_read_context over a
 * ct_buf_t, past its tag for HTTP/2); ctx is a context_reader_t
 * (context_block.h), which counts the requests whose fields did not read. */
int http_read_context(void *ctx, const void *request, uint64_t now, ct_context_t *out);

#endif
