/* quant_int8_avx512.c - the int8 outlier side-product kernel for the AVX-512 rows (isa.h entry
 * `side`, declared in fast.h; the portable one and what it computes: quant_int8.c).
 * Per outlier channel i the panel's 256-byte group (i/4) holds, per column j, the dword of inputs
 * 4(i/4)..4(i/4)+3: four 64-byte loads cover the 64 columns, and the byte i%4 of each dword is moved
 * to the top and shifted back arithmetically (sign-extended int32), converted to float, multiplied
 * by x_i and added (mul then add, as the portable kernel: same bits). */
#include <immintrin.h>

#include "ops/fast/fast.h"

void pi0_fast_i8_side_avx512(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int o = 0; o < n; o++) {
        const int8_t *g = panel + (idx[o] >> 2) * (4 * PI0_FAST_NR);
        const __m128i up = _mm_cvtsi32_si128(24 - 8 * (idx[o] & 3));
        const __m512 x = _mm512_set1_ps(xv[o]);
#define SIDE_COL(A, v)                                                                                 \
    A = _mm512_add_ps(A, _mm512_mul_ps(x, _mm512_cvtepi32_ps(_mm512_srai_epi32(                        \
                                              _mm512_sll_epi32(_mm512_load_si512(g + 64 * (v)), up), 24))))
        SIDE_COL(a0, 0);
        SIDE_COL(a1, 1);
        SIDE_COL(a2, 2);
        SIDE_COL(a3, 3);
#undef SIDE_COL
    }
    _mm512_storeu_ps(acc, a0);
    _mm512_storeu_ps(acc + 16, a1);
    _mm512_storeu_ps(acc + 32, a2);
    _mm512_storeu_ps(acc + 48, a3);
}
