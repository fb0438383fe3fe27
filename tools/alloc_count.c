/* alloc_count.c - linker-wrapped allocation and copy counters (see alloc_count.h). Each wrapper
 * counts, then calls the real function; the counters are atomics, so any thread may allocate. */
#include "alloc_count.h"

#include <stdatomic.h>
#include <stddef.h>

static atomic_llong n_allocs, n_copied;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__real_memcpy(void *d, const void *s, size_t n);
void *__real_memmove(void *d, const void *s, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
void *__wrap_memcpy(void *d, const void *s, size_t n);
void *__wrap_memmove(void *d, const void *s, size_t n);

void *__wrap_malloc(size_t n) { atomic_fetch_add(&n_allocs, 1); return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { atomic_fetch_add(&n_allocs, 1); return __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { atomic_fetch_add(&n_allocs, 1); return __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { atomic_fetch_add(&n_allocs, 1); return __real_posix_memalign(p, a, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { atomic_fetch_add(&n_allocs, 1); return __real_aligned_alloc(a, n); }
void *__wrap_memcpy(void *d, const void *s, size_t n) { atomic_fetch_add(&n_copied, (long long)n); return __real_memcpy(d, s, n); }
void *__wrap_memmove(void *d, const void *s, size_t n) { atomic_fetch_add(&n_copied, (long long)n); return __real_memmove(d, s, n); }

int64_t pi0_count_allocs(void) { return atomic_load(&n_allocs); }
int64_t pi0_count_copied_bytes(void) { return atomic_load(&n_copied); }
