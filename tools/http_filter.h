/* The rule of `ctower proxy --codec http`'s filter (filter.h): the fields
 * that speak for one connection only (hop-by-hop, RFC 9110 7.6.1) are for
 * the proxy, not the backend. A client's "Connection: close" passed on
 * would make the backend close the connection that every client shares,
 * failing everyone's requests in flight. So each request passed on loses
 * its Connection, Keep-Alive and Proxy-Connection fields and the fields its
 * Connection names (but never Content-Length, Transfer-Encoding or Host,
 * which frame and route it), and an HTTP/1.0 request says "Connection:
 * keep-alive". The client's own connection still ends after the answer to
 * its last request: its codec saw the request as it came. */
#ifndef CTOWER_TOOLS_HTTP_FILTER_H
#define CTOWER_TOOLS_HTTP_FILTER_H

#include "filter.h"

filter_verdict_t http_filter_rule(ct_buf_pool_t *pool, ct_buf_t **request, ct_buf_t **answer);

#endif
