/* vecmath_avx2.c - AVX2 + FMA row kernels for the fast backend's non-GEMM ops, a port of
 * vecmath_avx512.c to 256-bit vectors: exp-based GELU (tanh form), swish, and the
 * LayerNorm / RMSNorm rows. The ISA table's avx2 row (isa_avx2.c) points at them.
 *
 * Same formulas and accuracy as the AVX-512 file: exp is simd_avx2.h's (~1 ulp);
 * gelu(x) = x / (1 + e^(-2z)) (z = sqrt(2/pi)·(x + 0.044715 x³)), swish(x) = x / (1 + e^(-x)),
 * rel error ~1e-6 or better vs the double reference.
 *
 * Tails: whole 8-float vectors first, then one masked vector (_mm256_maskload_ps / _mm256_maskstore_ps)
 * for the last n % 8 elements, so nothing outside [0, n) is read or written. Each output depends only
 * on its own inputs (elementwise) or on a whole row (norms: fixed-order reductions), so results
 * do not depend on how rows or spans are split among threads.
 */
#include <math.h>

#include "ops/fast/simd_avx2.h"

static inline __m256 gelu8(__m256 x) {
    const __m256 c0 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c1 = _mm256_set1_ps(0.044715f);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 inner = _mm256_mul_ps(x, _mm256_fmadd_ps(c1, x2, one)); /* x + 0.044715 x³ */
    __m256 e = pi0_exp256(_mm256_mul_ps(c0, inner));                  /* e^(-2z) */
    return _mm256_div_ps(x, _mm256_add_ps(one, e));
}

static inline __m256 swish8(__m256 x) {
    __m256 e = pi0_exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

void pi0_fast_gelu_tanh_avx2(float *y, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = gelu8(_mm256_loadu_ps(a + i));
        if (b) g = _mm256_mul_ps(g, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, g);
    }
    if (i < n) {
        __m256i m = pi0_mask8(n - i);
        __m256 g = gelu8(_mm256_maskload_ps(a + i, m));
        if (b) g = _mm256_mul_ps(g, _mm256_maskload_ps(b + i, m));
        _mm256_maskstore_ps(y + i, m, g);
    }
}

void pi0_fast_swish_avx2(float *y, const float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, swish8(_mm256_loadu_ps(a + i)));
    if (i < n) {
        __m256i m = pi0_mask8(n - i);
        _mm256_maskstore_ps(y + i, m, swish8(_mm256_maskload_ps(a + i, m)));
    }
}

/* LayerNorm / RMSNorm rows (see norms.c for the contract). Sums in fp32 across 8 lanes (masked-off
 * tail lanes contribute 0), then the fixed-order horizontal reduction above. */
void pi0_fast_layernorm_row_avx2(float *y, const float *x, const float *w, const float *b, int64_t d, float eps) {
    const int64_t dv = d & ~(int64_t)7;
    const __m256i m = pi0_mask8(d - dv);
    const __m256 mf = _mm256_castsi256_ps(m);
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = 0; i < dv; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    if (dv < d) s = _mm256_add_ps(s, _mm256_maskload_ps(x + dv, m));
    float mean = pi0_hsum256(s) / (float)d;
    __m256 vm = _mm256_set1_ps(mean), q = _mm256_setzero_ps();
    for (int64_t i = 0; i < dv; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        q = _mm256_fmadd_ps(t, t, q);
    }
    if (dv < d) {
        __m256 t = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + dv, m), vm), mf);
        q = _mm256_fmadd_ps(t, t, q);
    }
    float var = pi0_hsum256(q) / (float)d;
    __m256 r = _mm256_set1_ps(1.0f / sqrtf(var + eps));
    for (int64_t i = 0; i < d; i += 8) {
        int full = i + 8 <= d;
        __m256 xv = full ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, m);
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(xv, vm), r);
        if (w) t = _mm256_mul_ps(t, full ? _mm256_loadu_ps(w + i) : _mm256_maskload_ps(w + i, m));
        if (b) t = _mm256_add_ps(t, full ? _mm256_loadu_ps(b + i) : _mm256_maskload_ps(b + i, m));
        if (full) _mm256_storeu_ps(y + i, t);
        else _mm256_maskstore_ps(y + i, m, t);
    }
}

void pi0_fast_rmsnorm_row_avx2(float *y, const float *x, const float *w, int64_t d, float eps) {
    const int64_t dv = d & ~(int64_t)7;
    const __m256i m = pi0_mask8(d - dv);
    __m256 q = _mm256_setzero_ps();
    for (int64_t i = 0; i < dv; i += 8) {
        __m256 t = _mm256_loadu_ps(x + i);
        q = _mm256_fmadd_ps(t, t, q);
    }
    if (dv < d) {
        __m256 t = _mm256_maskload_ps(x + dv, m);
        q = _mm256_fmadd_ps(t, t, q);
    }
    __m256 r = _mm256_set1_ps(1.0f / sqrtf(pi0_hsum256(q) / (float)d + eps));
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < d; i += 8) {
        int full = i + 8 <= d;
        __m256 t = _mm256_mul_ps(full ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, m), r);
        if (w) t = _mm256_mul_ps(t, _mm256_add_ps(one, full ? _mm256_loadu_ps(w + i) : _mm256_maskload_ps(w + i, m)));
        if (full) _mm256_storeu_ps(y + i, t);
        else _mm256_maskstore_ps(y + i, m, t);
    }
}
