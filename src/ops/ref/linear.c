/* ref/linear.c - reference matmul, embedding gather and patch extraction.
 * float32, plain loops, no SIMD; each output element is one dot product accumulated in a fixed
 * order (in double, so the oracle's rounding error stays far below the test tolerance). */
#include "ops/ref/ref.h"

/* Each thread owns a range of output columns j; weight row j is widened to float once (exactly) and
 * dotted with every input row. The dot product keeps 4 partial sums in double (element p goes to
 * sum p % 4, added in a fixed order at the end): one chain would wait on the add latency at every
 * element, and the order is still fixed, so results do not depend on the thread count. */
#define REF_MAX_K 65536
static _Thread_local float wrow[REF_MAX_K];

/* One output: x · (the widened weight row wr, or row j of w when k > REF_MAX_K), 4 partial sums in
 * double added in a fixed order. */
static double dot_ref(const float *x, const float *wr, const pi0_weight *w, int64_t j, int64_t k) {
    double s4[4] = {0, 0, 0, 0};
    if (wr)
        for (int64_t p = 0; p < k; p++) s4[p & 3] += (double)x[p] * wr[p];
    else
        for (int64_t p = 0; p < k; p++) s4[p & 3] += (double)x[p] * pi0_weight_at(w, j * k + p);
    return (s4[0] + s4[1]) + (s4[2] + s4[3]);
}

void pi0_matmul_ref(const pi0_matmul_args *a, int ith, int nth) {
    const pi0_weight *w = a->w;
    int64_t n = w->rows, k = w->cols, lo, hi;
    pi0_split(n, ith, nth, &lo, &hi);
    for (int64_t j = lo; j < hi; j++) {
        if (k <= REF_MAX_K)
            for (int64_t p = 0; p < k; p++) wrow[p] = pi0_weight_at(w, j * k + p);
        for (int64_t i = 0; i < a->m; i++) {
            double acc = dot_ref(a->x + i * a->ldx, k <= REF_MAX_K ? wrow : NULL, w, j, k);
            if (a->bias) acc += a->bias[j];
            float *y = a->y + i * a->ldy + j;
            *y = a->accumulate ? *y + (float)acc : (float)acc;
        }
    }
}

/* GeGLU: each output from the gate and up dot products rounded to float, as the matmuls into two
 * buffers and the elementwise gelu_tanh(g) * u would give (the same bits). */
static _Thread_local float urow[REF_MAX_K];
void pi0_geglu_ref(const pi0_geglu_args *a, int ith, int nth) {
    const pi0_weight *g = a->gate, *u = a->up;
    int64_t n = g->rows, k = g->cols, lo, hi;
    int widen = k <= REF_MAX_K;
    pi0_split(n, ith, nth, &lo, &hi);
    for (int64_t j = lo; j < hi; j++) {
        for (int64_t p = 0; widen && p < k; p++) {
            wrow[p] = pi0_weight_at(g, j * k + p);
            urow[p] = pi0_weight_at(u, j * k + p);
        }
        for (int64_t i = 0; i < a->m; i++) {
            const float *x = a->x + i * a->ldx;
            float gv = (float)dot_ref(x, widen ? wrow : NULL, g, j, k), uv = (float)dot_ref(x, widen ? urow : NULL, u, j, k);
            a->y[i * a->ldy + j] = pi0_gelu_tanh_ref(gv) * uv;
        }
    }
}

void pi0_embed_ref(const pi0_embed_args *a, int ith, int nth) {
    int64_t d = a->w->cols, lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        for (int64_t p = 0; p < d; p++)
            a->y[i * d + p] = pi0_weight_at(a->w, (int64_t)a->ids[i] * d + p) * a->scale;
}

void pi0_patches_ref(const pi0_patches_args *a, int ith, int nth) {
    int g = a->s / a->p, pp = a->p * a->p;
    int64_t lo, hi, row = (int64_t)a->c * pp;
    pi0_split((int64_t)g * g, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        int pr = (int)(t / g), pc = (int)(t % g);
        for (int ch = 0; ch < a->c; ch++)
            for (int i = 0; i < a->p; i++)
                for (int j = 0; j < a->p; j++)
                    a->y[t * row + ch * pp + i * a->p + j] =
                        a->img[((int64_t)ch * a->s + pr * a->p + i) * a->s + pc * a->p + j];
    }
}
