/* ct_address_t: where to connect or listen, parsed from text:
 *
 *   tcp://127.0.0.1:7000   tcp://[::1]:7000   tcp://db.internal:7000
 *   unix:///run/app.sock
 *
 * A numeric host (IPv4, or IPv6 in brackets) is parsed into sa. Any other host
 * must be a DNS name; parsing keeps it as text and never calls a resolver.
 * A connector resolves it asynchronously on each connect (uv_getaddrinfo, in
 * libuv's thread pool) and tries the addresses in the resolver's order. A
 * listener binds only numeric hosts, and "localhost" (127.0.0.1). Port 0
 * asks the system for a free one.
 */
#ifndef CTOWER_ADDRESS_H
#define CTOWER_ADDRESS_H

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CT_ADDRESS_TCP = 1, CT_ADDRESS_UNIX = 2 };

/* A parsed address: a TCP host and port (numeric, or a name to resolve) or a Unix socket's path. */
typedef struct ct_address {
    int kind;                   /* CT_ADDRESS_TCP or CT_ADDRESS_UNIX */
    struct sockaddr_storage sa; /* CT_ADDRESS_TCP with a numeric host */
    char path[108];             /* CT_ADDRESS_UNIX */
    char host[256];             /* CT_ADDRESS_TCP by name (empty otherwise) */
    int port;                   /* with host */
} ct_address_t;

/* Parses text into addr; the scheme may be in any case (TCP://). Returns 0
 * or CT_EBADADDR (an unknown scheme, no
 * port or one over 65535, a malformed IP address or host name, a path too
 * long for a socket). */
int ct_address_parse(const char *text, ct_address_t *addr);

/* Writes addr as text (the form ct_address_parse reads). Returns 0 or
 * UV_ENOBUFS. */
int ct_address_format(const ct_address_t *addr, char *out, size_t size);

#ifdef __cplusplus
}
#endif
#endif
