/* peak_avx512.c - register-only AVX-512 loops: 12 independent accumulators (named variables, so
 * they stay in registers) hide the FMA/dot latency, so the loop runs at the units' throughput.
 * Built with AVX-512 flags (file suffix); called only when rt/cpu.h says the CPU has them. */
#include <immintrin.h>

#include "peak.h"

#define ACC12(OP)                                                                                 \
    a0 = OP(a0); a1 = OP(a1); a2 = OP(a2); a3 = OP(a3); a4 = OP(a4); a5 = OP(a5);                \
    a6 = OP(a6); a7 = OP(a7); a8 = OP(a8); a9 = OP(a9); a10 = OP(a10); a11 = OP(a11);

#define SUM12() _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),        \
                              _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)), \
                                            _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11))))

double pi0_peak_fp32_avx512(long iters) {
    const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(-1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
#define FMA(a) _mm512_fmadd_ps(a, x, y)
    for (long it = 0; it < iters; it++) { ACC12(FMA) }
    volatile float sink = _mm512_reduce_add_ps(SUM12());
    (void)sink;
    return (double)iters * 12 * 16 * 2;
}

double pi0_peak_bf16_avx512(long iters) {
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3c00);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
#define DOT(a) _mm512_dpbf16_ps(a, x, y)
    for (long it = 0; it < iters; it++) { ACC12(DOT) }
    volatile float sink = _mm512_reduce_add_ps(SUM12());
    (void)sink;
    return (double)iters * 12 * 16 * 2 * 2; /* 16 lanes x 2 bf16 pairs x (mul + add) */
}

/* vpdpbusd: each 32-bit lane adds four u8 x s8 products (4 multiplies + 4 adds = 8 int ops), so one
 * instruction is 16 lanes x 8 = 128 ops. AVX512_VNNI is not in this file's compile flags (the
 * Makefile's _avx512 rule), so this one function enables it; it is called only when rt/cpu.h
 * reports avx512vnni. The s8 bytes are +1, -1, +1, -1: every instruction adds 0, so the int32
 * accumulators never move and cannot overflow however long the loop runs. */
__attribute__((target("avx512vnni"))) double pi0_peak_int8_avx512vnni(long iters) {
    const __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi32((int)0xFF01FF01);
    __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2), a3 = _mm512_set1_epi32(3);
    __m512i a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5), a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7);
    __m512i a8 = _mm512_set1_epi32(8), a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11);
#define DPBUSD(a) _mm512_dpbusd_epi32(a, x, y)
    for (long it = 0; it < iters; it++) { ACC12(DPBUSD) }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
    volatile int sink = _mm512_cvtsi512_si32(s); /* one lane: the 16-lane sum could overflow int (UBSan) */
    (void)sink;
    return (double)iters * 12 * 16 * 4 * 2;
}
