/* libFuzzer target for address parsing. Any text either parses or is
 * CT_EBADADDR, and never reads or writes out of bounds; an address that
 * parses formats back to text that parses to the same address. */
#include <ctower/address.h>
#include <ctower/error.h>

#include <stdlib.h>
#include <string.h>

static int same_socket_address(const ct_address_t *a, const ct_address_t *b) {
    if (a->sa.ss_family != b->sa.ss_family) return 0;
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa.ss_family == AF_INET6) { /* the text form has no scope id */
        const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char text[600], again[600];
    ct_address_t a, b;
    int r;
    if (size >= sizeof text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    r = ct_address_parse(text, &a);
    if (r != 0) {
        if (r != CT_EBADADDR) abort();
        return 0;
    }
    if (ct_address_format(&a, again, sizeof again) != 0) abort();
    if (ct_address_parse(again, &b) != 0 || a.kind != b.kind) abort();
    if (a.kind == CT_ADDRESS_UNIX) {
        if (strcmp(a.path, b.path) != 0) abort();
    } else if (a.host[0]) {
        if (strcmp(a.host, b.host) != 0 || a.port != b.port) abort();
    } else if (b.host[0] || !same_socket_address(&a, &b)) {
        abort();
    }
    return 0;
}
