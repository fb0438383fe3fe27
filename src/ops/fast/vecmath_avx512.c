/* vecmath_avx512.c - AVX-512 row kernels for the fast backend's non-GEMM ops: exp-based GELU (tanh
 * form), swish, and the sum / sum-of-squares reductions of the norms.
 *
 * Accuracy: exp is simd_avx512.h's (~1 ulp). GELU uses the identity 0.5·(1 + tanh(z)) = 1 / (1 + e^(-2z)), so
 * gelu(x) = x / (1 + e^(-2z)) with no cancellation for large |x| (rel error ~1e-6 or better);
 * swish(x) = x / (1 + e^(-x)). NaN propagates (clamps take NaN from the second operand).
 */
#include <math.h>

#include "ops/fast/simd_avx512.h"

void pi0_fast_gelu_tanh_avx512(float *y, const float *a, const float *b, int64_t n) {
    const __m512 c0 = _mm512_set1_ps(-2.0f * 0.7978845608028654f), c1 = _mm512_set1_ps(0.044715f);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = pi0_mask16(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, a + i);
        __m512 x2 = _mm512_mul_ps(x, x);
        __m512 inner = _mm512_mul_ps(x, _mm512_fmadd_ps(c1, x2, one)); /* x + 0.044715 x³ */
        __m512 e = pi0_exp512(_mm512_mul_ps(c0, inner));                  /* e^(-2z) */
        __m512 g = _mm512_div_ps(x, _mm512_add_ps(one, e));
        if (b) g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, g);
    }
}

void pi0_fast_swish_avx512(float *y, const float *a, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = pi0_mask16(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, a + i);
        __m512 e = pi0_exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(x, _mm512_add_ps(one, e)));
    }
}

/* LayerNorm / RMSNorm rows (see norms.c for the contract). Sums in fp32 across 16 lanes, then a
 * fixed-order horizontal reduction. */
void pi0_fast_layernorm_row_avx512(float *y, const float *x, const float *w, const float *b, int64_t d, float eps) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(pi0_mask16(d - i), x + i));
    float mean = _mm512_reduce_add_ps(s) / (float)d;
    __m512 vm = _mm512_set1_ps(mean), q = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
        __mmask16 m = pi0_mask16(d - i);
        __m512 t = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
        q = _mm512_fmadd_ps(t, t, q);
    }
    float var = _mm512_reduce_add_ps(q) / (float)d;
    __m512 r = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    for (int64_t i = 0; i < d; i += 16) {
        __mmask16 m = pi0_mask16(d - i);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), r);
        if (w) t = _mm512_mul_ps(t, _mm512_maskz_loadu_ps(m, w + i));
        if (b) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, t);
    }
}

void pi0_fast_rmsnorm_row_avx512(float *y, const float *x, const float *w, int64_t d, float eps) {
    __m512 q = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
        __m512 t = _mm512_maskz_loadu_ps(pi0_mask16(d - i), x + i);
        q = _mm512_fmadd_ps(t, t, q);
    }
    __m512 r = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(q) / (float)d + eps));
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < d; i += 16) {
        __mmask16 m = pi0_mask16(d - i);
        __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r);
        if (w) t = _mm512_mul_ps(t, _mm512_add_ps(one, _mm512_maskz_loadu_ps(m, w + i)));
        _mm512_mask_storeu_ps(y + i, m, t);
    }
}
