/* ref/attention.c - reference attention: logits, mask by replacement, softmax, weighted sum.
 * One (query row, head) pair per work item; float32 values, double accumulation. */
#include <math.h>

#include "ops/ref/ref.h"

static int visible(const pi0_attention_args *a, int64_t i, int64_t j) {
    int32_t qc = a->qc ? a->qc[i] : 0, kc = a->kc ? a->kc[j] : 0;
    int qv = a->qpad ? a->qpad[i] : 1, kv = a->kpad ? a->kpad[j] : 1;
    return kc <= qc && qv && kv;
}

void pi0_attention_ref(const pi0_attention_args *a, int ith, int nth) {
    int64_t lo, hi;
    int group = a->n_heads / a->n_kv;
    pi0_split(a->nq * a->n_heads, ith, nth, &lo, &hi);
    /* logits for one (row, head) need nk floats; use the output row's tail? No: keep a small
     * stack buffer and process keys in two passes (max, then sum) to avoid any allocation. */
    for (int64_t idx = lo; idx < hi; idx++) {
        int64_t i = idx / a->n_heads;
        int h = (int)(idx % a->n_heads), kvh = h / group;
        const float *q = a->q + i * a->ldq + (int64_t)h * a->hd;
        float *o = a->out + i * a->ldo + (int64_t)h * a->hd;
        /* pass 1: max logit */
        float mx = -INFINITY;
        for (int64_t j = 0; j < a->nk; j++) {
            float l = PI0_MASK_FILL;
            if (visible(a, i, j)) {
                const float *k = a->k + j * a->ldk + (int64_t)kvh * a->hd;
                double s = 0;
                for (int d = 0; d < a->hd; d++) s += (double)q[d] * k[d];
                l = (float)s * a->scale;
            }
            if (l > mx) mx = l;
        }
        /* pass 2: sum of exp and weighted values (recomputing logits keeps it allocation-free) */
        double denom = 0;
        double acc[512];
        int hd = a->hd;
        for (int d = 0; d < hd; d++) acc[d] = 0;
        for (int64_t j = 0; j < a->nk; j++) {
            float l = PI0_MASK_FILL;
            if (visible(a, i, j)) {
                const float *k = a->k + j * a->ldk + (int64_t)kvh * a->hd;
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)q[d] * k[d];
                l = (float)s * a->scale;
            }
            float e = expf(l - mx);
            denom += e;
            const float *v = a->v + j * a->ldk + (int64_t)kvh * a->hd;
            for (int d = 0; d < hd; d++) acc[d] += (double)e * v[d];
        }
        for (int d = 0; d < hd; d++) o[d] = (float)(acc[d] / denom);
    }
}
