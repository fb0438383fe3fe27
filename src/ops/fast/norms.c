/* norms.c - fast LayerNorm / Gemma RMSNorm (ops.h pi0_norm_args), the π0.5 modulate / gated
 * residual (pi0_mod_args) and the elementwise ops (pi0_ew_args). Rows (norms, mod) or contiguous
 * element ranges (ew) are split by (ith, nth); each output element is written by one thread with
 * arithmetic that does not depend on the split. Row kernels (vecmath_*.c) come from the ISA table
 * (isa.h).
 */
#include "ops/fast/isa.h"

void pi0_fast_layernorm(const pi0_norm_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    void (*row)(float *, const float *, const float *, const float *, int64_t, float) = pi0_fast_isa_get()->layernorm_row;
    for (int64_t r = lo; r < hi; r++) row(a->y + r * a->d, a->x + r * a->d, a->w, a->b, a->d, a->eps);
}

void pi0_fast_rmsnorm(const pi0_norm_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    void (*row)(float *, const float *, const float *, int64_t, float) = pi0_fast_isa_get()->rmsnorm_row;
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
    const pi0_fast_isa *isa = pi0_fast_isa_get();
    switch (a->kind) {
    case PI0_EW_GELU_TANH_MUL:
    case PI0_EW_GELU_TANH:
        if (a->kind == PI0_EW_GELU_TANH) b = NULL;
        isa->gelu_tanh(y, x, b, n);
        break;
    case PI0_EW_SWISH:
        isa->swish(y, x, n);
        break;
    case PI0_EW_ADD:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + b[i];
        break;
    case PI0_EW_AXPY:
        for (int64_t i = 0; i < n; i++) y[i] = x[i] + a->alpha * b[i];
        break;
    }
}
