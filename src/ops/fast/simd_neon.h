/* simd_neon.h - AArch64 Advanced SIMD (NEON) helpers shared by the *_neon.c and *_neonbf16.c
 * kernels (include only from those files), and the declarations of those kernels for the ISA rows
 * (isa_neon.c, isa_neonbf16.c).
 *
 * exp: the one NEON exp, the same Cody-Waite reduction, cephes degree-6 polynomial and two-factor
 * 2^n scaling as simd_avx2.h, clamped to [-104, 88.8], operation for operation (vfmaq/vfmsq are fused
 * like FMA3), so it returns the same bits as the AVX2 one. NEON max/min return NaN when either
 * operand is NaN, so NaN propagates.
 * Tails: NEON has no masked loads or stores; the kernels run the last n % 4 elements through a
 * 4-float buffer padded with a neutral value (pi0_neon_load_tail / pi0_neon_store_tail), so nothing
 * outside [0, n) is touched and every element goes through the same vector arithmetic.
 */
#ifndef PI0_SIMD_NEON_H
#define PI0_SIMD_NEON_H

#include <arm_neon.h>
#include <string.h>

#include "ops/fast/isa.h"

static inline __attribute__((always_inline)) float32x4_t pi0_exp_neon(float32x4_t x) {
    x = vmaxq_f32(vdupq_n_f32(-104.0f), x);
    x = vminq_f32(vdupq_n_f32(88.8f), x);
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t ni = vcvtq_s32_f32(n);
    int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* The first `left` (1..3) floats of src, the other lanes `fill`. */
static inline float32x4_t pi0_neon_load_tail(const float *src, int64_t left, float fill) {
    float t[4] = {fill, fill, fill, fill};
    memcpy(t, src, sizeof(float) * (size_t)left);
    return vld1q_f32(t);
}
static inline void pi0_neon_store_tail(float *dst, float32x4_t v, int64_t left) {
    float t[4];
    vst1q_f32(t, v);
    memcpy(dst, t, sizeof(float) * (size_t)left);
}

/* fp32 rounded to bf16 precision (nearest even; NaN -> quiet NaN with its top bits), as integers:
 * the top 16 bits are the bf16 value, the low 16 bits are garbage (callers mask or narrow). */
static inline uint32x4_t pi0_neon_bf16_round(float32x4_t x) {
    uint32x4_t u = vreinterpretq_u32_f32(x);
    uint32x4_t rr = vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1))));
    uint32x4_t qn = vorrq_u32(u, vdupq_n_u32(0x400000));
    return vbslq_u32(vceqq_f32(x, x), rr, qn); /* x == x: not NaN */
}

/* The kernels of these ISAs (matmul_neon.c, vecmath_neon.c; matmul_neonbf16.c needs FEAT_BF16;
 * matmul_int8_neon.c: int8 on SDOT, needs FEAT_DotProd, PI0_CAP_NEON_DOT). */
extern const pi0_fast_gemm_kernels pi0_fast_gemm_neon_bf16, pi0_fast_gemm_neon_f32, pi0_fast_gemm_neonbf16_dot;
extern const pi0_fast_gemm_kernels pi0_fast_gemm_neon_i8dot;
void pi0_fast_gelu_tanh_neon(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_neon(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_neon(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_neon(float *y, const float *x, const float *w, int64_t d, float eps);

#endif
