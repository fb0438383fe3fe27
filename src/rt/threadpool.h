/* threadpool.h - a fixed pool of worker threads for data-parallel ops.
 *
 * pi0_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for every ith in [0, nth) - ith 0 on the
 * calling thread - and returns when all have finished. Workers spin briefly between jobs (ops come
 * back to back) and then sleep on a condition variable, so an idle pool costs no CPU. */
#ifndef PI0_THREADPOOL_H
#define PI0_THREADPOOL_H

#include "pi0.h"

typedef struct pi0_pool pi0_pool;
typedef void (*pi0_pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (including the caller). */
pi0_status pi0_pool_new(int n_threads, pi0_pool **out);
/* Stops and joins the workers; NULL is a no-op. */
void pi0_pool_free(pi0_pool *pool);
int pi0_pool_size(const pi0_pool *pool);
void pi0_pool_run(pi0_pool *pool, pi0_pool_fn fn, void *arg);
/* Number of CPUs this process may run on (its affinity mask, e.g. under taskset; >= 1). */
int pi0_cpu_count(void);

#endif
