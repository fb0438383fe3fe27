/* peak.h - the machine's arithmetic peak, measured by register-only microkernels on n threads:
 * the baseline `pi0 bench` reports achieved GFLOP/s against. */
#ifndef PI0_PEAK_H
#define PI0_PEAK_H

typedef struct {
    double fp32_gflops; /* fused multiply-add, float32 (0 if not measurable) */
    double bf16_gflops; /* bf16 dot product (vdpbf16ps), 0 if the CPU has none */
} pi0_peak;

/* Runs each microkernel for about `seconds` on n_threads threads. */
pi0_peak pi0_measure_peak(int n_threads, double seconds);

/* Kernels (peak_avx512.c): iters loop trips; return the flops executed. */
double pi0_peak_fp32_avx512(long iters);
double pi0_peak_bf16_avx512(long iters);

#endif
