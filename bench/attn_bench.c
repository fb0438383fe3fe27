/* attn_bench.c - microbenchmark of the fast backend's attention on the π0 model shapes, with an
 * fp32 FMA peak loop timed in the same run (the machine is shared and noisy, so the ratio to that
 * loop is the comparable number). The loop is 512-bit with avx512 caps, 256-bit with avx2 caps
 * (e.g. PI0_CPU_CAPS=avx2), absent (0) with generic caps.
 *
 * nth persistent threads meet at a barrier around every call (as in the model's pool) and each runs
 * its (ith, nth) share; a call's time is the wall time between the barriers. Reported: the fastest
 * of --reps calls after 2 warm-up calls, GFLOP/s counting 4·nq·nk·n_heads·hd (q·k and p·v, 2 flops
 * per multiply-add), and the percentage of the FMA loop's GFLOP/s. The "cpu" columns use the
 * busiest thread's CPU time instead of wall time (CLOCK_THREAD_CPUTIME_ID): on a shared machine a
 * long call is often preempted, and this shows what the kernel does while it actually runs. Masks are passed as the model
 * passes them (qc, kc, qpad, kpad present; here all keys visible, the prefix-LM case).
 *
 * Each shape is timed twice: fp32 K/V read in place, and in bf16 as the model calls it: with a bf16
 * copy of the first nkb keys (pi0_kv_bf16_fill; "bf16 KV") or, for nkb 0 (SigLIP), with round_bf16
 * and no copy ("bf16 rnd": the kernel rounds every key per call); the kernel the ISA row has for it
 * (avx512-bf16: vdpbf16ps). The GFLOP/s count the same multiply-adds for both; the % column is
 * against the fp32 FMA loop either way.
 *
 * --pool instead times the model's per-op thread hand-off: pi0_pool_run (rt/threadpool.c) of an
 * empty job, back to back and after some serial work on the caller.
 *
 * Build and run: bench/build.sh  (then build/attn_bench [--threads N] [--reps R] [--nomask] [--pool])
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/fast/fast.h"
#include "rt/cpu.h"
#include "rt/threadpool.h"

/* nkb: keys of the bf16 KV copy in the "bf16 KV" line (the prefix rows; a denoising step's own 51
 * rows stay fp32 in the cache and are rounded by the kernel per call); 0: no copy, round_bf16. */
typedef struct { const char *what; int64_t nq, nk, nkb; int n_heads, n_kv, hd; } shape;
static const shape shapes[] = {
    {"prefix", 816, 816, 816, 8, 1, 256}, {"prefix", 304, 304, 304, 8, 1, 256}, {"denoise", 51, 867, 816, 8, 1, 256},
    {"denoise", 50, 355, 304, 8, 1, 256}, {"siglip", 256, 256, 0, 16, 16, 72},
};

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static float *frand_buf(int64_t n, float scale) {
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) & ~63));
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        p[i] = scale * ((float)((s >> 40) * (1.0 / 8388608.0)) - 1.0f);
    }
    return p;
}

/* ---- fp32 FMA peak: 12 independent zmm accumulators per thread ------------------------------- */

/* 12 independent accumulator chains (FMA latency 4 x 2 pipes needs >= 8), all in registers: the
 * loop body is one asm block so the compiler cannot spill them. */
__attribute__((target("avx512f,fma"))) static float fma_loop(long iters) {
    float out[16];
    __asm__ volatile(
        "vbroadcastss %2, %%zmm12\n\t"
        "vbroadcastss %3, %%zmm13\n\t"
        "vxorps %%zmm0, %%zmm0, %%zmm0\n\t"
        "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"
        "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"
        "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"
        "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t"
        "1:\n\t"
        "vfmadd213ps %%zmm13, %%zmm12, %%zmm0\n\t vfmadd213ps %%zmm13, %%zmm12, %%zmm1\n\t"
        "vfmadd213ps %%zmm13, %%zmm12, %%zmm2\n\t vfmadd213ps %%zmm13, %%zmm12, %%zmm3\n\t"
        "vfmadd213ps %%zmm13, %%zmm12, %%zmm4\n\t vfmadd213ps %%zmm13, %%zmm12, %%zmm5\n\t"
        "vfmadd213ps %%zmm13, %%zmm12, %%zmm6\n\t vfmadd213ps %%zmm13, %%zmm12, %%zmm7\n\t"
        "vfmadd213ps %%zmm13, %%zmm12, %%zmm8\n\t vfmadd213ps %%zmm13, %%zmm12, %%zmm9\n\t"
        "vfmadd213ps %%zmm13, %%zmm12, %%zmm10\n\t vfmadd213ps %%zmm13, %%zmm12, %%zmm11\n\t"
        "dec %1\n\t"
        "jnz 1b\n\t"
        "vaddps %%zmm1, %%zmm0, %%zmm0\n\t"
        "vmovups %%zmm0, %0\n\t"
        : "=m"(out), "+r"(iters)
        : "m"(*(const float[1]){0.999999f}), "m"(*(const float[1]){1e-7f})
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "cc");
    return out[0];
}

/* The same 12 chains on ymm registers, for AVX2-only CPUs (or PI0_CPU_CAPS=avx2). */
__attribute__((target("avx2,fma"))) static float fma_loop256(long iters) {
    float out[8];
    __asm__ volatile(
        "vbroadcastss %2, %%ymm12\n\t"
        "vbroadcastss %3, %%ymm13\n\t"
        "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
        "vmovaps %%ymm0, %%ymm1\n\t vmovaps %%ymm0, %%ymm2\n\t vmovaps %%ymm0, %%ymm3\n\t"
        "vmovaps %%ymm0, %%ymm4\n\t vmovaps %%ymm0, %%ymm5\n\t vmovaps %%ymm0, %%ymm6\n\t"
        "vmovaps %%ymm0, %%ymm7\n\t vmovaps %%ymm0, %%ymm8\n\t vmovaps %%ymm0, %%ymm9\n\t"
        "vmovaps %%ymm0, %%ymm10\n\t vmovaps %%ymm0, %%ymm11\n\t"
        "1:\n\t"
        "vfmadd213ps %%ymm13, %%ymm12, %%ymm0\n\t vfmadd213ps %%ymm13, %%ymm12, %%ymm1\n\t"
        "vfmadd213ps %%ymm13, %%ymm12, %%ymm2\n\t vfmadd213ps %%ymm13, %%ymm12, %%ymm3\n\t"
        "vfmadd213ps %%ymm13, %%ymm12, %%ymm4\n\t vfmadd213ps %%ymm13, %%ymm12, %%ymm5\n\t"
        "vfmadd213ps %%ymm13, %%ymm12, %%ymm6\n\t vfmadd213ps %%ymm13, %%ymm12, %%ymm7\n\t"
        "vfmadd213ps %%ymm13, %%ymm12, %%ymm8\n\t vfmadd213ps %%ymm13, %%ymm12, %%ymm9\n\t"
        "vfmadd213ps %%ymm13, %%ymm12, %%ymm10\n\t vfmadd213ps %%ymm13, %%ymm12, %%ymm11\n\t"
        "dec %1\n\t"
        "jnz 1b\n\t"
        "vaddps %%ymm1, %%ymm0, %%ymm0\n\t"
        "vmovups %%ymm0, %0\n\t"
        "vzeroupper\n\t"
        : "=m"(out), "+r"(iters)
        : "m"(*(const float[1]){0.999999f}), "m"(*(const float[1]){1e-7f})
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "cc");
    return out[0];
}

/* FMA loop at the widest width the caps allow: 16 (zmm), 8 (ymm) lanes, or 0 (generic: none). */
static int fma_lanes(void) { return pi0_cpu_caps_get()->avx512 ? 16 : pi0_cpu_caps_get()->avx2 ? 8 : 0; }
static float fma_run(long iters) {
    int l = fma_lanes();
    return l == 16 ? fma_loop(iters) : l == 8 ? fma_loop256(iters) : 0.0f;
}

/* ---- persistent threads ------------------------------------------------------------------------- */

typedef struct {
    pthread_barrier_t bar;
    int nth, reps, mode; /* mode 0: attention, 1: FMA loop */
    pi0_attention_args *args;
    long fma_iters;
    double *times, *cpu; /* per call: wall time; largest thread CPU time */
    double thread_cpu[64];
    volatile float sink;
} run_ctx;
typedef struct { run_ctx *c; int ith; } worker;

static void *worker_main(void *p) {
    worker *w = p;
    run_ctx *c = w->c;
    for (int r = -2; r < c->reps; r++) {
        pthread_barrier_wait(&c->bar);
        double t0 = now(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (c->mode == 0) pi0_backend_fast.attention(c->args, w->ith, c->nth);
        else c->sink = fma_run(c->fma_iters);
        c->thread_cpu[w->ith] = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        pthread_barrier_wait(&c->bar);
        if (w->ith == 0 && r >= 0) {
            c->times[r] = now() - t0;
            c->cpu[r] = 0;
            for (int i = 0; i < c->nth; i++) if (c->thread_cpu[i] > c->cpu[r]) c->cpu[r] = c->thread_cpu[i];
        }
    }
    return NULL;
}

/* Returns the fastest call's wall time; *cpu gets the fastest call's largest thread CPU time (time
 * the busiest thread actually ran: excludes preemption by other processes on a shared machine). */
static double run(run_ctx *c, double *cpu) {
    c->cpu = calloc((size_t)c->reps, sizeof(double));
    pthread_barrier_init(&c->bar, NULL, (unsigned)c->nth);
    pthread_t th[64];
    worker wk[64];
    for (int i = 0; i < c->nth; i++) {
        wk[i] = (worker){c, i};
        if (i) pthread_create(&th[i], NULL, worker_main, &wk[i]);
    }
    worker_main(&wk[0]);
    for (int i = 1; i < c->nth; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&c->bar);
    double best = c->times[0], best_cpu = c->cpu[0];
    for (int r = 1; r < c->reps; r++) {
        if (c->times[r] < best) best = c->times[r];
        if (c->cpu[r] < best_cpu) best_cpu = c->cpu[r];
    }
    if (cpu) *cpu = best_cpu;
    free(c->cpu);
    return best;
}

static double fma_gflops(int nth, int reps) {
    run_ctx c = {.nth = nth, .reps = reps, .mode = 1, .fma_iters = 2000000, .times = calloc((size_t)reps, sizeof(double))};
    double t = run(&c, NULL);
    free(c.times);
    return 12.0 * fma_lanes() * 2 * (double)c.fma_iters * nth * 1e-9 / t;
}

/* ---- --pool: the model's thread hand-off (rt/threadpool.c), one pi0_pool_run per op ------------ */

static void empty_job(void *arg, int ith, int nth) { (void)arg; (void)ith; (void)nth; }

/* Wall time of pi0_pool_run with an empty job: back to back (the workers are spinning, as between
 * the ops of a layer), and after a pause of `gap_us` on the caller (a serial op in between). */
static void pool_bench(int nth, int reps) {
    pi0_pool *pool;
    if (pi0_pool_new(nth, &pool) != PI0_OK) { printf("pool: cannot start\n"); return; }
    for (int gap_us = 0; gap_us <= 20; gap_us += 10) {
        double best = 1e9, sum = 0;
        int n = reps * 100;
        for (int r = 0; r < n; r++) {
            double g0 = now();
            while (gap_us && now() - g0 < gap_us * 1e-6) {}
            double t0 = now();
            pi0_pool_run(pool, empty_job, NULL);
            double t = now() - t0;
            sum += t;
            if (t < best) best = t;
        }
        printf("pool hand-off (%d threads, empty job, %2d us of serial work before it): best %.2f us, mean %.2f us over %d\n",
               nth, gap_us, best * 1e6, sum / n * 1e6, n);
    }
    pi0_pool_free(pool);
}

int main(int argc, char **argv) {
    int nth = 2, reps = 20, masks = 1, pool = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) nth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nomask")) masks = 0;
        else if (!strcmp(argv[i], "--pool")) pool = 1;
        else { fprintf(stderr, "usage: %s [--threads N] [--reps R] [--nomask] [--pool]\n", argv[0]); return 2; }
    }
    if (nth < 1 || nth > 64 || reps < 1) { fprintf(stderr, "bad --threads or --reps\n"); return 2; }
    if (pool) { pool_bench(nth, reps); return 0; }
    printf("cpu: %s, %d threads, best of %d calls, masks %s\n", pi0_cpu_caps_str(), nth, reps, masks ? "on" : "off");
    double peak = fma_gflops(nth, 5);
    printf("fp32 FMA loop: %.0f GFLOP/s\n", peak);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        int64_t ldq = (int64_t)sh->n_heads * sh->hd, ldk = (int64_t)sh->n_kv * sh->hd;
        float *q = frand_buf(sh->nq * ldq, 3.0f), *k = frand_buf(sh->nk * ldk, 1.0f), *v = frand_buf(sh->nk * ldk, 1.0f);
        float *o = frand_buf(sh->nq * ldq, 1.0f);
        int32_t *qc = calloc((size_t)sh->nq, 4), *kc = calloc((size_t)sh->nk, 4);
        uint8_t *qp = malloc((size_t)sh->nq), *kp = malloc((size_t)sh->nk);
        memset(qp, 1, (size_t)sh->nq);
        memset(kp, 1, (size_t)sh->nk);
        pi0_attention_args a = {.out = o, .q = q, .k = k, .v = v, .nq = sh->nq, .nk = sh->nk, .ldq = ldq, .ldk = ldk,
                                .ldo = ldq, .n_heads = sh->n_heads, .n_kv = sh->n_kv, .hd = sh->hd,
                                .scale = 1.0f / 16.0f};
        if (masks) { a.qc = qc; a.kc = kc; a.qpad = qp; a.kpad = kp; }
        uint16_t *kb = aligned_alloc(64, (size_t)(sh->nk + 1) * ldk * 2 + 64), *vb = aligned_alloc(64, (size_t)(sh->nk + 1) * ldk * 2 + 64);
        pi0_kv_bf16_fill(kb, vb, k, v, ldk, 0, sh->nkb);
        for (int bf = 0; bf < 2; bf++) {
            if (bf && sh->nkb) { a.kb = kb; a.vb = vb; a.nkb = sh->nkb; }
            if (bf && !sh->nkb) a.round_bf16 = 1;
            run_ctx c = {.nth = nth, .reps = reps, .mode = 0, .args = &a, .times = calloc((size_t)reps, sizeof(double))};
            double tc, t = run(&c, &tc);
            double fl = 4.0 * (double)sh->nq * (double)sh->nk * sh->n_heads * sh->hd * 1e-9, gf = fl / t, gc = fl / tc;
            printf("%-8s %-7s nq=%4lld nk=%4lld nkb=%4lld heads=%2d kv=%2d hd=%3d: %7.3f ms %6.1f GFLOP/s %5.1f%% | cpu %7.3f ms %6.1f GFLOP/s %5.1f%%\n",
                   sh->what, bf ? sh->nkb ? "bf16 KV" : "bf16 rnd" : "fp32", (long long)sh->nq, (long long)sh->nk, bf ? (long long)sh->nkb : 0LL,
                   sh->n_heads, sh->n_kv, sh->hd, t * 1e3, gf, 100.0 * gf / peak, tc * 1e3, gc, 100.0 * gc / peak);
            free(c.times);
        }
        free(q); free(k); free(v); free(o); free(qc); free(kc); free(qp); free(kp); free(kb); free(vb);
    }
    printf("fp32 FMA loop (again): %.0f GFLOP/s\n", fma_gflops(nth, 5));
    return 0;
}
