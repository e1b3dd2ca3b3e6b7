/* ct_address_t: where to connect or listen, parsed from text:
 *
 *   tcp://127.0.0.1:7000   tcp://localhost:7000   tcp://[::1]:7000
 *   unix:///run/app.sock
 *
 * Hosts are numeric (IPv4 or IPv6) or "localhost" (127.0.0.1): parsing never
 * blocks on a resolver. Port 0 asks the system for a free one.
 */
#ifndef CTOWER_ADDRESS_H
#define CTOWER_ADDRESS_H

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CT_ADDRESS_TCP = 1, CT_ADDRESS_UNIX = 2 };

typedef struct ct_address {
    int kind;
    struct sockaddr_storage sa; /* for CT_ADDRESS_TCP */
    char path[108];             /* for CT_ADDRESS_UNIX */
} ct_address_t;

/* Parses text into addr. Returns 0 or CT_EBADADDR. */
int ct_address_parse(const char *text, ct_address_t *addr);

/* Writes addr as text (the form ct_address_parse reads). Returns 0 or
 * UV_ENOBUFS. */
int ct_address_format(const ct_address_t *addr, char *out, size_t size);

#ifdef __cplusplus
}
#endif
#endif
