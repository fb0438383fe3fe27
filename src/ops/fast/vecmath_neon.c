/* vecmath_neon.c - NEON row kernels for the fast backend's non-GEMM ops: GELU (tanh form), swish
 * and the LayerNorm / RMSNorm rows, 4 lanes. The same formulas as vecmath_avx2.c: gelu(x) =
 * x / (1 + e^(-2z)) (z = sqrt(2/pi)·(x + 0.044715 x³)), swish(x) = x / (1 + e^(-x)), with
 * simd_neon.h's exp, so GELU and swish give the AVX2 kernels' bits. The norms sum in 4 lanes and
 * then across them (vaddvq_f32, a fixed order), so their last bits differ from the 8- and 16-lane
 * x86 kernels. Tails go through simd_neon.h's padded buffer; each output depends only on its own
 * inputs or on its whole row, so results do not depend on the thread split.
 */
#include <math.h>

#include "ops/fast/simd_neon.h"

static inline float32x4_t gelu4(float32x4_t x) {
    const float32x4_t c0 = vdupq_n_f32(-2.0f * 0.7978845608028654f), c1 = vdupq_n_f32(0.044715f);
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t x2 = vmulq_f32(x, x);
    float32x4_t inner = vmulq_f32(x, vfmaq_f32(one, c1, x2)); /* x + 0.044715 x³ */
    float32x4_t e = pi0_exp_neon(vmulq_f32(c0, inner));       /* e^(-2z) */
    return vdivq_f32(x, vaddq_f32(one, e));
}

static inline float32x4_t swish4(float32x4_t x) {
    float32x4_t e = pi0_exp_neon(vnegq_f32(x));
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));
}

void pi0_fast_gelu_tanh_neon(float *y, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t g = gelu4(vld1q_f32(a + i));
        if (b) g = vmulq_f32(g, vld1q_f32(b + i));
        vst1q_f32(y + i, g);
    }
    if (i < n) {
        float32x4_t g = gelu4(pi0_neon_load_tail(a + i, n - i, 0.0f));
        if (b) g = vmulq_f32(g, pi0_neon_load_tail(b + i, n - i, 0.0f));
        pi0_neon_store_tail(y + i, g, n - i);
    }
}

void pi0_fast_swish_neon(float *y, const float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, swish4(vld1q_f32(a + i)));
    if (i < n) pi0_neon_store_tail(y + i, swish4(pi0_neon_load_tail(a + i, n - i, 0.0f)), n - i);
}

void pi0_fast_layernorm_row_neon(float *y, const float *x, const float *w, const float *b, int64_t d, float eps) {
    const int64_t dv = d & ~(int64_t)3, left = d - dv;
    float32x4_t s = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < dv; i += 4) s = vaddq_f32(s, vld1q_f32(x + i));
    if (left) s = vaddq_f32(s, pi0_neon_load_tail(x + dv, left, 0.0f));
    float mean = vaddvq_f32(s) / (float)d;
    float32x4_t vm = vdupq_n_f32(mean), q = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < dv; i += 4) {
        float32x4_t t = vsubq_f32(vld1q_f32(x + i), vm);
        q = vfmaq_f32(q, t, t);
    }
    if (left) {
        float32x4_t t = vsubq_f32(pi0_neon_load_tail(x + dv, left, mean), vm); /* padding lanes: 0 */
        q = vfmaq_f32(q, t, t);
    }
    float var = vaddvq_f32(q) / (float)d;
    float32x4_t r = vdupq_n_f32(1.0f / sqrtf(var + eps));
    for (int64_t i = 0; i < d; i += 4) {
        int full = i + 4 <= d;
        float32x4_t xv = full ? vld1q_f32(x + i) : pi0_neon_load_tail(x + i, left, 0.0f);
        float32x4_t t = vmulq_f32(vsubq_f32(xv, vm), r);
        if (w) t = vmulq_f32(t, full ? vld1q_f32(w + i) : pi0_neon_load_tail(w + i, left, 0.0f));
        if (b) t = vaddq_f32(t, full ? vld1q_f32(b + i) : pi0_neon_load_tail(b + i, left, 0.0f));
        if (full) vst1q_f32(y + i, t);
        else pi0_neon_store_tail(y + i, t, left);
    }
}

void pi0_fast_rmsnorm_row_neon(float *y, const float *x, const float *w, int64_t d, float eps) {
    const int64_t dv = d & ~(int64_t)3, left = d - dv;
    float32x4_t q = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < dv; i += 4) {
        float32x4_t t = vld1q_f32(x + i);
        q = vfmaq_f32(q, t, t);
    }
    if (left) {
        float32x4_t t = pi0_neon_load_tail(x + dv, left, 0.0f);
        q = vfmaq_f32(q, t, t);
    }
    float32x4_t r = vdupq_n_f32(1.0f / sqrtf(vaddvq_f32(q) / (float)d + eps));
    const float32x4_t one = vdupq_n_f32(1.0f);
    for (int64_t i = 0; i < d; i += 4) {
        int full = i + 4 <= d;
        float32x4_t t = vmulq_f32(full ? vld1q_f32(x + i) : pi0_neon_load_tail(x + i, left, 0.0f), r);
        if (w) t = vmulq_f32(t, vaddq_f32(one, full ? vld1q_f32(w + i) : pi0_neon_load_tail(w + i, left, 0.0f)));
        if (full) vst1q_f32(y + i, t);
        else pi0_neon_store_tail(y + i, t, left);
    }
}
