/* Address parsing: scheme, then a host (numeric, or a name kept for the
 * connector to resolve) and port, or a path. */
#include "ctower/address.h"
#include "ctower/error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Decimal digits only: strtol would also take " 80", "+80" and "-0". */
static int parse_port(const char *text, int *port) {
    long v = 0;
    const char *p;
    if (!*text) return CT_EBADADDR;
    for (p = text; *p; p++) {
        if (!isdigit((unsigned char)*p)) return CT_EBADADDR;
        v = v * 10 + (*p - '0');
        if (v > 65535) return CT_EBADADDR;
    }
    *port = (int)v;
    return 0;
}

/* A DNS name: dot-separated labels of letters, digits and hyphens, none
 * empty, over 63 characters, or starting or ending with a hyphen, and a last
 * label that is not all digits (so "300.1.1.1" is a bad IPv4 address, not a
 * name). Anything else (spaces, "%", "/") is refused here rather than handed
 * to a resolver. */
static int is_host_name(const char *name) {
    size_t label = 0;
    int digits_only = 1;
    const char *p;
    if (!*name || strlen(name) >= sizeof((ct_address_t *)0)->host) return 0;
    for (p = name; *p; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-') return 0;
            label = 0;
            digits_only = 1;
        } else if (isalnum((unsigned char)*p) || (*p == '-' && label > 0)) {
            if (++label > 63) return 0;
            if (!isdigit((unsigned char)*p)) digits_only = 0;
        } else {
            return 0;
        }
    }
    return label > 0 && p[-1] != '-' && !digits_only;
}

/* host was not numeric: keep it as a name to resolve when connecting. */
static int keep_name(const char *host, int port, ct_address_t *addr) {
    if (!is_host_name(host)) return CT_EBADADDR;
    strcpy(addr->host, host);
    addr->port = port;
    return 0;
}

static int parse_tcp(const char *rest, ct_address_t *addr) {
    char host[256];
    const char *colon;
    int port;
    size_t n;
    if (rest[0] == '[') { /* [v6]:port */
        const char *close = strchr(rest, ']');
        if (!close || close[1] != ':') return CT_EBADADDR;
        n = (size_t)(close - rest - 1);
        if (n == 0 || n >= sizeof host) return CT_EBADADDR;
        memcpy(host, rest + 1, n);
        host[n] = 0;
        if (parse_port(close + 2, &port) < 0) return CT_EBADADDR;
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr->sa) ? CT_EBADADDR : 0;
    }
    colon = strrchr(rest, ':');
    if (!colon) return CT_EBADADDR;
    n = (size_t)(colon - rest);
    if (n == 0 || n >= sizeof host) return CT_EBADADDR;
    memcpy(host, rest, n);
    host[n] = 0;
    if (parse_port(colon + 1, &port) < 0) return CT_EBADADDR;
    if (strchr(host, ':')) return CT_EBADADDR; /* an IPv6 host needs its brackets */
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr->sa) == 0) return 0;
    return keep_name(host, port, addr);
}

int ct_address_parse(const char *text, ct_address_t *addr) {
    memset(addr, 0, sizeof *addr);
    if (!text) return CT_EBADADDR;
    if (strncasecmp(text, "tcp://", 6) == 0) {
        addr->kind = CT_ADDRESS_TCP;
        return parse_tcp(text + 6, addr);
    }
    if (strncasecmp(text, "unix://", 7) == 0) {
        size_t n = strlen(text + 7);
        if (n == 0 || n >= sizeof addr->path) return CT_EBADADDR;
        addr->kind = CT_ADDRESS_UNIX;
        memcpy(addr->path, text + 7, n + 1);
        return 0;
    }
    return CT_EBADADDR;
}

int ct_address_format(const ct_address_t *addr, char *out, size_t size) {
    char host[64];
    int n;
    if (addr->kind == CT_ADDRESS_UNIX) {
        n = snprintf(out, size, "unix://%s", addr->path);
    } else if (addr->host[0]) {
        n = snprintf(out, size, "tcp://%s:%d", addr->host, addr->port);
    } else if (addr->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&addr->sa;
        uv_ip6_name(a, host, sizeof host);
        n = snprintf(out, size, "tcp://[%s]:%d", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&addr->sa;
        uv_ip4_name(a, host, sizeof host);
        n = snprintf(out, size, "tcp://%s:%d", host, ntohs(a->sin_port));
    }
    return n < 0 || (size_t)n >= size ? UV_ENOBUFS : 0;
}
