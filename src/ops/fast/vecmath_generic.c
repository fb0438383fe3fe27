/* vecmath_generic.c - portable versions of the row kernels in vecmath_avx512.c (same formulas:
 * gelu(x) = x / (1 + e^(-2z)), swish(x) = x / (1 + e^(-x)),
 * two-pass LayerNorm, Gemma RMSNorm). float arithmetic with libm expf. */
#include <math.h>

#include "ops/fast/fast.h"

void pi0_fast_gelu_tanh_generic(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = a[i], z = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        float g = x / (1.0f + expf(-2.0f * z));
        y[i] = b ? g * b[i] : g;
    }
}

void pi0_fast_swish_generic(float *y, const float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] / (1.0f + expf(-a[i]));
}

void pi0_fast_layernorm_row_generic(float *y, const float *x, const float *w, const float *b, int64_t d, float eps) {
    float s = 0.0f, q = 0.0f;
    for (int64_t i = 0; i < d; i++) s += x[i];
    float mean = s / (float)d;
    for (int64_t i = 0; i < d; i++) q += (x[i] - mean) * (x[i] - mean);
    float r = 1.0f / sqrtf(q / (float)d + eps);
    for (int64_t i = 0; i < d; i++) {
        float t = (x[i] - mean) * r;
        if (w) t *= w[i];
        if (b) t += b[i];
        y[i] = t;
    }
}

void pi0_fast_rmsnorm_row_generic(float *y, const float *x, const float *w, int64_t d, float eps) {
    float q = 0.0f;
    for (int64_t i = 0; i < d; i++) q += x[i] * x[i];
    float r = 1.0f / sqrtf(q / (float)d + eps);
    for (int64_t i = 0; i < d; i++) y[i] = w ? x[i] * r * (1.0f + w[i]) : x[i] * r;
}
