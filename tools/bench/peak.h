/* peak.h - the machine's arithmetic peak, measured by register-only microkernels on n threads:
 * the baseline `pi0 bench` reports achieved GFLOP/s against. */
#ifndef PI0_PEAK_H
#define PI0_PEAK_H

typedef struct {
    double fp32_gflops; /* fused multiply-add, float32 (0 if not measurable) */
    double bf16_gflops; /* bf16 dot product (vdpbf16ps), 0 if the CPU has none */
    double int8_gops;   /* u8 x s8 dot product into int32 (vpdpbusd), 0 if the CPU has no VNNI */
    const char *int8_isa; /* "avx512-vnni" (512-bit), "avx-vnni" (256-bit) or "none" */
} pi0_peak;

/* Runs each microkernel for about `seconds` on n_threads threads. */
pi0_peak pi0_measure_peak(int n_threads, double seconds);

/* Kernels (peak_avx512.c): iters loop trips; return the flops executed. */
double pi0_peak_fp32_avx512(long iters);
double pi0_peak_bf16_avx512(long iters);
double pi0_peak_int8_avx512vnni(long iters); /* needs AVX512_VNNI on top of AVX-512 */
/* Kernel (peak_avx2.c): 256-bit vpdpbusd, VEX-encoded (AVX-VNNI; CPUs with AVX2 but no AVX-512). */
double pi0_peak_int8_avxvnni(long iters);

#endif
