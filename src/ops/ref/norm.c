/* ref/norm.c - reference LayerNorm (two-pass, biased variance) and Gemma RMSNorm ((1 + w) scale;
 * w NULL = no scale, for π0.5's adaptive norm). Statistics in double. */
#include <math.h>

#include "ops/ref/ref.h"

void pi0_layernorm_ref(const pi0_norm_args *a, int ith, int nth) {
    int64_t lo, hi, d = a->d;
    pi0_split(a->m, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float *x = a->x + i * d;
        float *y = a->y + i * d;
        double mu = 0, var = 0;
        for (int64_t p = 0; p < d; p++) mu += x[p];
        mu /= (double)d;
        for (int64_t p = 0; p < d; p++) var += ((double)x[p] - mu) * ((double)x[p] - mu);
        var /= (double)d;
        double r = 1.0 / sqrt(var + a->eps);
        for (int64_t p = 0; p < d; p++) y[p] = (float)(((double)x[p] - mu) * r * a->w[p] + a->b[p]);
    }
}

void pi0_rmsnorm_ref(const pi0_norm_args *a, int ith, int nth) {
    int64_t lo, hi, d = a->d;
    pi0_split(a->m, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float *x = a->x + i * d;
        float *y = a->y + i * d;
        double ms = 0;
        for (int64_t p = 0; p < d; p++) ms += (double)x[p] * x[p];
        double r = 1.0 / sqrt(ms / (double)d + a->eps);
        for (int64_t p = 0; p < d; p++) y[p] = (float)(x[p] * r * (a->w ? 1.0 + a->w[p] : 1.0));
    }
}
