/* Counts heap allocations while ct_test_counting is set, by interposing
 * malloc and friends over glibc's, and fails callocs on demand. Linked only into the allocation
 * test (not under ASan, which interposes them itself). */
#include <stddef.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

volatile long ct_test_allocs;
volatile int ct_test_counting;        /* volatile: compilers assume malloc reads no globals */
volatile int ct_test_failing_callocs; /* while > 0, calloc fails (and counts down) */

void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n) {
    ct_test_allocs += ct_test_counting;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    ct_test_allocs += ct_test_counting;
    if (ct_test_failing_callocs > 0) {
        ct_test_failing_callocs--;
        return NULL;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    ct_test_allocs += ct_test_counting;
    return __libc_realloc(p, n);
}

void free(void *p) {
    __libc_free(p);
}
