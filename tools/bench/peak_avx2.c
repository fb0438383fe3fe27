/* peak_avx2.c - register-only 256-bit loop for CPUs with AVX-VNNI (VEX-encoded vpdpbusd, e.g. Intel
 * Alder Lake and later, AMD Zen 5): the int8 peak where AVX-512 VNNI is absent. Built with AVX2 flags
 * (file suffix); AVX-VNNI itself is enabled for this one function and it is called only when the CPU
 * reports it (peak.c). 12 independent accumulators hide the instruction's latency. */
#include <immintrin.h>

#include "peak.h"

/* Each 32-bit lane adds four u8 x s8 products: 8 lanes x 8 int ops = 64 ops per instruction. The s8
 * bytes are +1, -1, +1, -1, so every instruction adds 0 and the accumulators cannot overflow. */
__attribute__((target("avxvnni"))) double pi0_peak_int8_avxvnni(long iters) {
    const __m256i x = _mm256_set1_epi8(1), y = _mm256_set1_epi32((int)0xFF01FF01);
    __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2), a3 = _mm256_set1_epi32(3);
    __m256i a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5), a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7);
    __m256i a8 = _mm256_set1_epi32(8), a9 = _mm256_set1_epi32(9), a10 = _mm256_set1_epi32(10), a11 = _mm256_set1_epi32(11);
#define DP(a) a = _mm256_dpbusd_avx_epi32(a, x, y)
    for (long it = 0; it < iters; it++) {
        DP(a0); DP(a1); DP(a2); DP(a3); DP(a4); DP(a5); DP(a6); DP(a7); DP(a8); DP(a9); DP(a10); DP(a11);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                 _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(a8, a9), _mm256_add_epi32(a10, a11)));
    int out[8];
    _mm256_storeu_si256((__m256i *)out, s);
    volatile int sink = out[0];
    (void)sink;
    return (double)iters * 12 * 8 * 4 * 2;
}
