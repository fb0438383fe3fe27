/* rope_embed.c - fast RoPE (half split), embedding gather and SigLIP patch extraction (ops.h).
 *
 * RoPE: per row the hd/2 angles θ_i = pos · base^(-2i/hd) are computed once in double (sin, cos
 * in double, then rounded to float, like the reference) into a stack array (hd <= 1024, checked
 * by supports()) and applied to all heads of the row. Embed reads table rows by id in the stored
 * dtype (F32/BF16/F16, no packing) and converts on the fly; ids are range-checked by supports().
 * All three split rows (tokens) by (ith, nth).
 */
#include <math.h>

#include "ops/fast/fast.h"

#define ROPE_MAX_HALF 512

void pi0_fast_rope(const pi0_rope_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    const int half = a->hd / 2;
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    double inv[ROPE_MAX_HALF];
    if (!a->cs)
        for (int i = 0; i < half; i++) inv[i] = pow((double)a->base, -2.0 * i / a->hd);
    for (int64_t r = lo; r < hi; r++) {
        const float *c = cs, *s = sn;
        if (a->cs) { /* precomputed by the model once per inference: read in place */
            c = a->cs + r * a->hd;
            s = c + half;
        } else {
            double pos = a->pos ? (double)a->pos[r] : 0.0;
            for (int i = 0; i < half; i++) {
                double th = pos * inv[i];
                cs[i] = (float)cos(th);
                sn[i] = (float)sin(th);
            }
        }
        for (int h = 0; h < a->n_heads; h++) {
            float *u = a->x + r * a->ld + (int64_t)h * a->hd;
            for (int i = 0; i < half; i++) {
                float x0 = u[i], x1 = u[i + half];
                u[i] = x0 * c[i] - x1 * s[i];
                u[i + half] = x1 * c[i] + x0 * s[i];
            }
        }
    }
}

static float f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) u = s;
        else {
            int sh = 0;
            while (!(m & 0x400)) { m <<= 1; sh++; }
            u = s | ((uint32_t)(113 - sh) << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) u = s | 0x7f800000u | (m << 13);
    else u = s | ((e + 112) << 23) | (m << 13);
    union { uint32_t u; float f; } v = {u};
    return v.f;
}

void pi0_fast_embed(const pi0_embed_args *a, int ith, int nth) {
    int64_t lo, hi;
    pi0_split(a->m, ith, nth, &lo, &hi);
    const pi0_weight *w = a->w;
    const int64_t d = w->cols;
    for (int64_t r = lo; r < hi; r++) {
        float *y = a->y + r * d;
        int64_t id = a->ids[r];
        if (id < 0 || id >= w->rows) { /* unreachable: supports() rejects such ids */
            for (int64_t i = 0; i < d; i++) y[i] = 0.0f;
            continue;
        }
        if (w->dtype == PI0_DT_BF16) {
            const uint16_t *e = (const uint16_t *)w->data + id * d;
            for (int64_t i = 0; i < d; i++) y[i] = pi0_fast_bf16_to_f32(e[i]) * a->scale;
        } else if (w->dtype == PI0_DT_F16) {
            const uint16_t *e = (const uint16_t *)w->data + id * d;
            for (int64_t i = 0; i < d; i++) y[i] = f16_to_f32(e[i]) * a->scale;
        } else {
            const float *e = (const float *)w->data + id * d;
            for (int64_t i = 0; i < d; i++) y[i] = e[i] * a->scale;
        }
    }
}

void pi0_fast_patches(const pi0_patches_args *a, int ith, int nth) {
    const int g = a->s / a->p, p = a->p, s = a->s;
    const int64_t cols = (int64_t)a->c * p * p;
    int64_t lo, hi;
    pi0_split((int64_t)g * g, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        int pr = (int)(t / g), pc = (int)(t % g);
        float *y = a->y + t * cols;
        for (int ch = 0; ch < a->c; ch++)
            for (int ky = 0; ky < p; ky++) {
                const float *src = a->img + ((int64_t)ch * s + (int64_t)pr * p + ky) * s + (int64_t)pc * p;
                float *dst = y + ((int64_t)ch * p + ky) * p;
                for (int kx = 0; kx < p; kx++) dst[kx] = src[kx];
            }
    }
}
