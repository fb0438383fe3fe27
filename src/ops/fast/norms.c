/* norms.c - fast LayerNorm / Gemma RMSNorm (ops.h pi0_norm_args), the π0.5 modulate / gated
 * residual (pi0_mod_args) and the elementwise ops (pi0_ew_args). Rows (norms, mod) or contiguous
 * element ranges (ew) are split by (ith, nth); each output element is written by one thread with
 * arithmetic that does not depend on the split. Row kernels are in vecmath_*.c, chosen per call from
 * the cached CPU caps (rt/cpu.h): avx512, else avx2, else generic.
 */
#include "ops/fast/fast.h"
#include "rt/cpu.h"

enum { ISA_GENERIC, ISA_AVX2, ISA_AVX512 };

static int isa(void) {
    const pi0_cpu_caps *c = pi0_cpu_caps_get();
    return c->avx512 ? ISA_AVX512 : c->avx2 ? ISA_AVX2 : ISA_GENERIC;
}

void pi0_fast_layernorm(const pi0_norm_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    int v = isa();
    void (*row)(float *, const float *, const float *, const float *, int64_t, float) =
        v == ISA_AVX512 ? pi0_fast_layernorm_row_avx512 : v == ISA_AVX2 ? pi0_fast_layernorm_row_avx2
                                                                        : pi0_fast_layernorm_row_generic;
    for (int64_t r = lo; r < hi; r++) row(a->y + r * a->d, a->x + r * a->d, a->w, a->b, a->d, a->eps);
}

void pi0_fast_rmsnorm(const pi0_norm_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    int v = isa();
    void (*row)(float *, const float *, const float *, int64_t, float) =
        v == ISA_AVX512 ? pi0_fast_rmsnorm_row_avx512 : v == ISA_AVX2 ? pi0_fast_rmsnorm_row_avx2 : pi0_fast_rmsnorm_row_generic;
    for (int64_t r = lo; r < hi; r++) row(a->y + r * a->d, a->x + r * a->d, a->w, a->d, a->eps);
}

void pi0_fast_mod(const pi0_mod_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    const int64_t d = a->d;
    for (int64_t r = lo; r < hi; r++) {
        float *y = a->y + r * d;
        if (a->kind == PI0_MOD_SCALE_SHIFT) {
            for (int64_t i = 0; i < d; i++) y[i] = y[i] * (1.0f + a->scale[i]) + a->shift[i];
        } else {
            const float *f = a->f + r * d;
            for (int64_t i = 0; i < d; i++) y[i] += f[i] * a->gate[i];
        }
    }
}

void pi0_fast_ew(const pi0_ew_args *a, int ith, int nth) {
    /* split in whole 16-float vectors so chunk edges do not change which lanes a value uses */
    int64_t nv = (a->n + 15) / 16, lo, hi;
    pi0_split(nv, ith, nth, &lo, &hi);
    lo *= 16;
    hi = hi * 16 < a->n ? hi * 16 : a->n;
    if (lo >= hi) return;
    int64_t n = hi - lo;
    float *y = a->y + lo;
    const float *x = a->a + lo, *b = a->b ? a->b + lo : NULL;
    int v = isa();
    switch (a->kind) {
    case PI0_EW_GELU_TANH_MUL:
    case PI0_EW_GELU_TANH:
        if (a->kind == PI0_EW_GELU_TANH) b = NULL;
        if (v == ISA_AVX512) pi0_fast_gelu_tanh_avx512(y, x, b, n);
        else if (v == ISA_AVX2) pi0_fast_gelu_tanh_avx2(y, x, b, n);
        else pi0_fast_gelu_tanh_generic(y, x, b, n);
        break;
    case PI0_EW_SWISH:
        if (v == ISA_AVX512) pi0_fast_swish_avx512(y, x, n);
        else if (v == ISA_AVX2) pi0_fast_swish_avx2(y, x, n);
        else pi0_fast_swish_generic(y, x, n);
        break;
    case PI0_EW_ADD:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + b[i];
        break;
    case PI0_EW_AXPY:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + a->alpha * b[i];
        break;
    }
}
