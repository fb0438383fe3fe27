/* quant_int8_avx2.c - the int8 outlier side-product kernel for the AVX2 rows (isa.h entry `side`,
 * declared in fast.h; the portable one and what it computes: quant_int8.c). As the AVX-512 one
 * (quant_int8_avx512.c) with eight 32-byte loads for the 64 columns: the byte i%4 of each dword
 * sign-extended by a shift up and an arithmetic shift down, converted, multiplied, added (same bits
 * as the portable kernel). */
#include <immintrin.h>

#include "ops/fast/fast.h"

void pi0_fast_i8_side_avx2(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n) {
    __m256 a[8];
    for (int v = 0; v < 8; v++) a[v] = _mm256_setzero_ps();
    for (int o = 0; o < n; o++) {
        const int8_t *g = panel + (idx[o] >> 2) * (4 * PI0_FAST_NR);
        const __m128i up = _mm_cvtsi32_si128(24 - 8 * (idx[o] & 3));
        const __m256 x = _mm256_set1_ps(xv[o]);
        for (int v = 0; v < 8; v++) {
            __m256i w = _mm256_srai_epi32(_mm256_sll_epi32(_mm256_load_si256((const __m256i *)(g + 32 * v)), up), 24);
            a[v] = _mm256_add_ps(a[v], _mm256_mul_ps(x, _mm256_cvtepi32_ps(w)));
        }
    }
    for (int v = 0; v < 8; v++) _mm256_storeu_ps(acc + 8 * v, a[v]);
}
