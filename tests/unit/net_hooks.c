/* Stand-ins for two C library calls, linked into test_net: the executable's
 * definitions come before the C library's, for libuv's calls too.
 *
 * getaddrinfo: names under ctower.test resolve without asking DNS (which
 * would leave loopback): a name with two addresses, and one with none.
 * Every other name goes on to the real resolver.
 *
 * accept4: fails with EMFILE while ct_test_failing_accepts > 0, as when a
 * process has run out of descriptors. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*getaddrinfo_fn)(const char *node, const char *service, const struct addrinfo *hints,
                              struct addrinfo **res);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res);

/* Resolver threads call this at once: an atomic, not a lock, keeps it
 * cheap and free of a data race. */
static getaddrinfo_fn next_getaddrinfo(void) {
    static getaddrinfo_fn next;
    getaddrinfo_fn f = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        __atomic_store_n(&next, f, __ATOMIC_RELEASE);
    }
    return f;
}

/* One TCP address for a numeric host: one addrinfo, freed with the list. */
static int numeric(const char *host, const char *service, struct addrinfo **res) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    return next_getaddrinfo()(host, service, &hints, res);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    if (node && strcmp(node, "nowhere.ctower.test") == 0) return EAI_NONAME;
    if (node && strcmp(node, "two.ctower.test") == 0) {
        /* 127.0.0.2 first, where the tests' listeners (on 127.0.0.1) are not;
         * glibc's freeaddrinfo frees a list node by node, so two lists chain */
        struct addrinfo *first, *second;
        int r = numeric("127.0.0.2", service, &first);
        if (r != 0) return r;
        if ((r = numeric("127.0.0.1", service, &second)) != 0) {
            freeaddrinfo(first);
            return r;
        }
        first->ai_next = second;
        *res = first;
        return 0;
    }
    return next_getaddrinfo()(node, service, hints, res);
}

typedef int (*accept4_fn)(int fd, struct sockaddr *addr, socklen_t *len, int flags);

volatile int ct_test_failing_accepts;

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static accept4_fn next;
    accept4_fn f = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
    if (ct_test_failing_accepts > 0) {
        ct_test_failing_accepts--;
        errno = EMFILE;
        return -1;
    }
    if (!f) {
        f = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
        __atomic_store_n(&next, f, __ATOMIC_RELEASE);
    }
    return f(fd, addr, len, flags);
}
