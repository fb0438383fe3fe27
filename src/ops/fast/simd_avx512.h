/* simd_avx512.h - AVX-512 helpers shared by the *_avx512.c kernels (include only from files built
 * with the avx512 flags, mk/fast.mk), and the declarations of those kernels for the ISA rows
 * (isa_avx512.c).
 *
 * exp: the one AVX-512 exp. Cody-Waite reduction by ln2 (two-part constant), cephes degree-6
 * polynomial on |r| <= ln2/2 (~1 ulp), vscalefps for the 2^n scaling (handles under/overflow).
 * Clamped to [-104, 88.8] so very negative inputs (the attention mask value ≈ -2.4e38, -inf) give 0
 * and large ones inf, not NaN; NaN propagates (the clamps take NaN from the second operand).
 */
#ifndef PI0_SIMD_AVX512_H
#define PI0_SIMD_AVX512_H

#include <immintrin.h>

#include "ops/fast/isa.h"

static inline __attribute__((always_inline)) __m512 pi0_exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* Lane mask of the first `left` of 16 lanes (0 when left <= 0, all when left >= 16). */
static inline __mmask16 pi0_mask16(int64_t left) {
    return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* The kernels of this ISA (matmul_avx512.c, pack_avx512.c, attention_avx512.c, vecmath_avx512.c). */
extern const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_dp, pi0_fast_gemm_avx512_wd, pi0_fast_gemm_avx512_f32;
extern const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_vnni; /* int8 kind (matmul_avx512vnni.c), needs VNNI */
int pi0_fast_pack_fill_avx512(const pi0_fast_packed *p, const void *data, pi0_dtype dt);
/* attention_avx512.c: fp32 FMA (every shape), and vdpbf16ps over the bf16 KV copy and keys rounded
 * per call (AVX512_BF16 rows only; _ok is 0 for an odd hd or ldk: its 32-bit pair loads must be
 * aligned). Scratch grows with a->nk and a->hd. */
size_t pi0_fast_attention_avx512_scratch(const pi0_attention_args *a);
int pi0_fast_attention_avx512_ok(const pi0_attention_args *a);
void pi0_fast_attention_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
size_t pi0_fast_attention_bf16_avx512_scratch(const pi0_attention_args *a);
int pi0_fast_attention_bf16_avx512_ok(const pi0_attention_args *a);
void pi0_fast_attention_bf16_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
void pi0_fast_gelu_tanh_avx512(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_avx512(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_avx512(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_avx512(float *y, const float *x, const float *w, int64_t d, float eps);

#endif
