/* ref/elementwise.c - reference GELU(tanh), swish, add, axpy, adaptive-norm modulation, RoPE. */
#include <math.h>

#include "ops/ref/ref.h"

float pi0_gelu_tanh_ref(float x) {
    /* PI0_MODEL.md §2.0: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
    double xd = x;
    return (float)(0.5 * xd * (1.0 + tanh(0.7978845608028654 * (xd + 0.044715 * xd * xd * xd))));
}

void pi0_ew_ref(const pi0_ew_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        switch (a->kind) {
        case PI0_EW_GELU_TANH_MUL: a->y[i] = pi0_gelu_tanh_ref(a->a[i]) * a->b[i]; break;
        case PI0_EW_GELU_TANH: a->y[i] = pi0_gelu_tanh_ref(a->a[i]); break;
        case PI0_EW_SWISH: a->y[i] = (float)((double)a->a[i] / (1.0 + exp(-(double)a->a[i]))); break;
        case PI0_EW_ADD: a->y[i] = a->a[i] + a->b[i]; break;
        case PI0_EW_AXPY: a->y[i] = a->a[i] + a->alpha * a->b[i]; break;
        }
    }
}

void pi0_mod_ref(const pi0_mod_args *a, int ith, int nth) {
    int64_t lo, hi, d = a->d;
    pi0_split(a->m, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        float *y = a->y + i * d;
        if (a->kind == PI0_MOD_SCALE_SHIFT)
            for (int64_t p = 0; p < d; p++) y[p] = y[p] * (1.0f + a->scale[p]) + a->shift[p];
        else
            for (int64_t p = 0; p < d; p++) y[p] += a->f[i * d + p] * a->gate[p];
    }
}

void pi0_rope_table(float *cs, const int32_t *pos, int64_t n, int hd, float base) {
    int half = hd / 2;
    for (int64_t r = 0; r < n; r++)
        for (int i = 0; i < half; i++) {
            /* θ_i = pos · base^(-2i/hd), in double (PI0_MODEL.md §8.3) */
            double th = (double)pos[r] * pow((double)base, -2.0 * i / hd);
            cs[r * hd + i] = (float)cos(th);
            cs[r * hd + half + i] = (float)sin(th);
        }
}

void pi0_rope_ref(const pi0_rope_args *a, int ith, int nth) {
    int64_t lo, hi;
    int half = a->hd / 2;
    pi0_split(a->m, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float row[1024]; /* this row's cos | sin, when no table is given (hd <= 1024 by config) */
        const float *cs = a->cs ? a->cs + r * a->hd : row;
        if (!a->cs) pi0_rope_table(row, a->pos + r, 1, a->hd, a->base);
        for (int h = 0; h < a->n_heads; h++) {
            float *u = a->x + r * a->ld + (int64_t)h * a->hd;
            for (int i = 0; i < half; i++) {
                float x0 = u[i], x1 = u[i + half], c = cs[i], s = cs[half + i];
                u[i] = x0 * c - x1 * s;
                u[i + half] = x1 * c + x0 * s;
            }
        }
    }
}
