/* peak.c - run the peak microkernels on n threads (see peak.h). */
#include <pthread.h>
#include <time.h>

#include "peak.h"
#include "tools_api.h"

typedef struct {
    double (*fn)(long);
    long iters;
    double flops;
} job;

static void *run_job(void *p) {
    job *j = p;
    j->flops = j->fn(j->iters);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double measure(double (*fn)(long), int n, double seconds) {
    /* calibrate on one thread, then run all threads together */
    long iters = 1 << 20;
    double t = now_s();
    fn(iters);
    double dt = now_s() - t;
    if (dt > 0) iters = (long)((double)iters * seconds / dt);
    if (iters < 1) iters = 1;
    pthread_t th[64];
    job jobs[64];
    if (n > 64) n = 64;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        jobs[i] = (job){fn, iters, 0};
        if (i) pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    run_job(&jobs[0]);
    for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
    double el = now_s() - t0, flops = 0;
    for (int i = 0; i < n; i++) flops += jobs[i].flops;
    return flops / el / 1e9;
}

/* The peak kernels are x86 (peak_avx512.c, peak_avx2.c); elsewhere every figure stays 0 (not measured). */
pi0_peak pi0_measure_peak(int n_threads, double seconds) {
    pi0_peak p = {0, 0, 0, "none"};
#if defined(__x86_64__)
    const pi0_cpu_caps *caps = pi0_cpu_caps_get();
    if (caps->avx512) p.fp32_gflops = measure(pi0_peak_fp32_avx512, n_threads, seconds);
    if (caps->avx512bf16) p.bf16_gflops = measure(pi0_peak_bf16_avx512, n_threads, seconds);
    if (caps->avx512vnni) {
        p.int8_gops = measure(pi0_peak_int8_avx512vnni, n_threads, seconds);
        p.int8_isa = "avx512-vnni";
    } else if (caps->avxvnni) { /* rt/cpu.c; PI0_CPU_CAPS=avx2 turns it off */
        p.int8_gops = measure(pi0_peak_int8_avxvnni, n_threads, seconds);
        p.int8_isa = "avx-vnni";
    }
#else
    (void)n_threads; (void)seconds; (void)measure;
#endif
    return p;
}
