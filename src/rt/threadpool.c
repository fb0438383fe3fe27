/* threadpool.c - see threadpool.h. Generation counter + done counter (C11 atomics); a mutex and
 * condition variable only for workers that have gone to sleep. */
#include "rt/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before sleeping (~50-100 µs): long enough to bridge the gap between two ops. */
#define SPIN_ITERS 20000

typedef struct {
    pi0_pool *pool;
    int ith;
} worker_arg;

struct pi0_pool {
    int n;
    pthread_t *threads;
    worker_arg *args;
    atomic_uint gen;  /* incremented for each job */
    atomic_int done;  /* workers finished with the current job */
    atomic_int quit;
    pi0_pool_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleepers;
};

static void *worker_main(void *p) {
    worker_arg *wa = p;
    pi0_pool *pool = wa->pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->gen, memory_order_acquire) == seen) {
            if (++spins < SPIN_ITERS) { cpu_relax(); continue; }
            pthread_mutex_lock(&pool->mu);
            pool->sleepers++;
            while (atomic_load_explicit(&pool->gen, memory_order_acquire) == seen) pthread_cond_wait(&pool->cv, &pool->mu);
            pool->sleepers--;
            pthread_mutex_unlock(&pool->mu);
        }
        seen = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (atomic_load(&pool->quit)) break;
        pool->fn(pool->arg, wa->ith, pool->n);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
    }
    return NULL;
}

int pi0_cpu_count(void) {
    /* The CPUs this process may run on (taskset, numactl, a cgroup cpuset), not every online CPU: a
     * replica pinned to 2 of 32 cores must start 2 threads, not 32 that share 2 cores. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

pi0_status pi0_pool_new(int n_threads, pi0_pool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > PI0_MAX_THREADS)
        return pi0_err(PI0_ERR_ARG, "n_threads %d out of range 1..%d", n_threads, PI0_MAX_THREADS);
    pi0_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return pi0_err(PI0_ERR_NOMEM, "thread pool: out of memory");
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    pool->args = calloc((size_t)n_threads, sizeof *pool->args);
    if (!pool->threads || !pool->args) { pool->n = 1; pi0_pool_free(pool); return pi0_err(PI0_ERR_NOMEM, "thread pool: out of memory"); }
    for (int i = 1; i < n_threads; i++) {
        pool->args[i].pool = pool;
        pool->args[i].ith = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->args[i]) != 0) {
            pool->n = i; /* join the ones that started */
            pi0_pool_free(pool);
            return pi0_err(PI0_ERR_INTERNAL, "thread pool: cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = pool;
    return PI0_OK;
}

static void wake_all(pi0_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_acq_rel);
    if (pool->sleepers) pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

void pi0_pool_free(pi0_pool *pool) {
    if (!pool) return;
    if (pool->threads) {
        atomic_store(&pool->quit, 1);
        wake_all(pool);
        for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool->args);
    free(pool);
}

int pi0_pool_size(const pi0_pool *pool) { return pool ? pool->n : 1; }

void pi0_pool_run(pi0_pool *pool, pi0_pool_fn fn, void *arg) {
    if (!pool || pool->n == 1) { fn(arg, 0, 1); return; }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    wake_all(pool);
    fn(arg, 0, pool->n);
    /* Spin briefly, then yield: if the machine is oversubscribed, a worker may be descheduled and
     * a pure spin would burn the time slice it needs. */
    for (int spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < pool->n - 1; spins++) {
        if (spins < SPIN_ITERS) cpu_relax(); else sched_yield();
    }
}
