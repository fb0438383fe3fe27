/* matmul_generic.c - portable C GEMM driver over the packed layout (fast.h): builds and runs on
 * any 64-bit target; used when the CPU has neither AVX2 nor AVX-512. Same numerics as the SIMD
 * drivers: bf16 kind rounds activations to bf16 and accumulates bf16 x bf16 products in fp32 (the
 * products are exact in fp32); f32 kind is plain fp32. One row x one 64-column panel at a time,
 * inner loop over 64 contiguous columns so the compiler can vectorize it.
 */
#include <string.h>

#include "ops/fast/fast.h"

#define NR PI0_FAST_NR

void pi0_fast_gemm_generic(const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, kp = b->kp, n = b->n;
    for (int64_t i = 0; i < j->m; i++) {
        const float *x = j->a + i * j->lda;
        float *y = j->c + i * j->ldc;
        for (int64_t p = j->p0; p < j->p1; p++) {
            float acc[NR];
            int64_t ncols = n - p * NR < NR ? n - p * NR : NR;
            for (int64_t c = 0; c < NR; c++) acc[c] = 0.0f;
            if (b->kind == PI0_WEIGHTS_F32) {
                const float *w = (const float *)b->data + p * k * NR;
                for (int64_t kk = 0; kk < k; kk++) {
                    float xv = x[kk];
                    for (int64_t c = 0; c < NR; c++) acc[c] += xv * w[kk * NR + c];
                }
            } else {
                const uint16_t *w = (const uint16_t *)b->data + p * kp * NR;
                for (int64_t kk = 0; kk < kp; kk += 2) {
                    float x0 = pi0_fast_bf16_to_f32(pi0_fast_f32_to_bf16(x[kk]));
                    float x1 = kk + 1 < k ? pi0_fast_bf16_to_f32(pi0_fast_f32_to_bf16(x[kk + 1])) : 0.0f;
                    const uint16_t *wp = w + kk * NR;
                    for (int64_t c = 0; c < NR; c++)
                        acc[c] += x0 * pi0_fast_bf16_to_f32(wp[2 * c]) + x1 * pi0_fast_bf16_to_f32(wp[2 * c + 1]);
                }
            }
            float *yp = y + p * NR;
            for (int64_t c = 0; c < ncols; c++) {
                float v = acc[c];
                if (j->accumulate) v = yp[c] + v;
                if (j->bias) v += j->bias[p * NR + c];
                yp[c] = v;
            }
        }
    }
}
