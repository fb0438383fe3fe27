/* simd_avx2.h - AVX2 + FMA helpers shared by the *_avx2.c kernels (include only from files built
 * with the avx2 flags, mk/fast.mk), and the declarations of those kernels for the ISA row
 * (isa_avx2.c).
 *
 * exp: the one AVX2 exp, the same reduction and cephes degree-6 polynomial as simd_avx512.h (~1 ulp),
 * clamped to [-104, 88.8]. AVX2 has no vscalefps, so 2^n is applied as two exact power-of-two factors
 * 2^(n>>1) · 2^(n - (n>>1)), each a normal float for n in [-150, 128]: the first product is exact,
 * the second rounds once, so underflow to subnormals and overflow to inf come out as with vscalefps.
 * NaN propagates (max/min return the second operand when either is NaN, and the clamps put x second).
 */
#ifndef PI0_SIMD_AVX2_H
#define PI0_SIMD_AVX2_H

#include <immintrin.h>

#include "ops/fast/isa.h"

static inline __attribute__((always_inline)) __m256 pi0_exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.8f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* Lane mask of the first `left` of 8 lanes (all ones in lane i when i < left), as an integer vector
 * for maskload/maskstore (0 when left <= 0, all when left >= 8). */
static inline __m256i pi0_mask8(int64_t left) {
    int n = left >= 8 ? 8 : left <= 0 ? 0 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Horizontal sum in a fixed lane order (the same every call). */
static inline float pi0_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The kernels of this ISA (matmul_avx2.c, matmul_int8_avx2.c, attention_avx2.c, vecmath_avx2.c). The
 * int8 sets: i8vnni needs AVX-VNNI (PI0_CAP_AVXVNNI), i8 plain AVX2. */
extern const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_bf16, pi0_fast_gemm_avx2_f32;
extern const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_i8vnni, pi0_fast_gemm_avx2_i8;
size_t pi0_fast_attention_avx2_scratch(const pi0_attention_args *a);
int pi0_fast_attention_avx2_ok(const pi0_attention_args *a);
void pi0_fast_attention_avx2(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
void pi0_fast_gelu_tanh_avx2(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_avx2(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_avx2(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_avx2(float *y, const float *x, const float *w, int64_t d, float eps);

#endif
