/* matmul_generic.c - portable C GEMM driver over the packed layout (fast.h): builds and runs on
 * any 64-bit target; used when the CPU has neither AVX2 nor AVX-512, and for the int8 kind on rows
 * without int8 kernels. Same numerics as the SIMD drivers: bf16 kind rounds activations to bf16
 * and accumulates bf16 x bf16 products in fp32 (the products are exact in fp32); f32 kind is plain
 * fp32; int8 kind quantizes each activation row (quant_int8.c), sums u8 x s8 products in int32
 * over the whole k (exact), subtracts the compensation and dequantizes once:
 * y = (float)(sum - wsum_j) * (step_r * scale_j) [+ y] [+ bias], then the outlier side product.
 * One row x one 64-column panel at a time, inner loop over 64 contiguous columns so the compiler
 * can vectorize it.
 */
#include <string.h>

#include "ops/fast/fast.h"

#define NR PI0_FAST_NR

/* int8 kind: up to 4 rows at a time (each weight group read once for them), each quantized into a
 * per-thread u8 row of kp bytes. The sums are kept per (column, input of the group of 4) in
 * acc4[4 * 64], which is an elementwise multiply-add over the panel's contiguous 256-byte groups (so
 * the compiler vectorizes it), and folded per column at the end: the same integers as any order. */
#define ROWS 4
static void gemm_int8(const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, kp = b->kp;
    uint8_t *u = pi0_fast_scratch(3, (size_t)(ROWS * kp));
    for (int64_t i0 = 0; i0 < j->m; i0 += ROWS) {
        int64_t nr = j->m - i0 < ROWS ? j->m - i0 : ROWS;
        pi0_fast_i8_row rq[ROWS];
        float tile[ROWS][2 * NR]; /* GeGLU pair: the gate and up results of these rows */
        for (int64_t r = 0; r < nr; r++) pi0_fast_i8_row_prepare(&rq[r], j->a + (i0 + r) * j->lda, k, NULL);
        if (u) pi0_fast_i8_quantize_generic(u, kp, j->a + i0 * j->lda, j->lda, nr, 0, kp, k, rq, NULL, 0);
        for (int64_t p = j->p0; p < j->p1; p++) {
            int32_t acc4[ROWS][4 * NR];
            memset(acc4, 0, sizeof acc4);
            int64_t ncols = pi0_fast_panel_cols(b, p);
            const int8_t *w = (const int8_t *)b->data + p * kp * NR;
            for (int64_t g = 0; g < kp; g += 4) {
                const int8_t *wg = w + g * NR;
                for (int64_t r = 0; r < nr; r++) {
                    uint8_t one[4]; /* no scratch (out of memory): quantize these 4 inputs here */
                    const uint8_t *ug = u ? u + r * kp + g : one;
                    if (!u) pi0_fast_i8_quantize_generic(one, 4, j->a + (i0 + r) * j->lda, 0, 1, g, 4, k, &rq[r], NULL, 0);
                    const int32_t u0 = ug[0], u1 = ug[1], u2 = ug[2], u3 = ug[3];
                    int32_t *a = acc4[r];
                    for (int64_t c = 0; c < 4 * NR; c += 4) {
                        a[c] += u0 * wg[c];
                        a[c + 1] += u1 * wg[c + 1];
                        a[c + 2] += u2 * wg[c + 2];
                        a[c + 3] += u3 * wg[c + 3];
                    }
                }
            }
            for (int64_t r = 0; r < nr; r++) {
                float *yp = b->pair ? tile[r] + (p & 1) * NR : j->c + (i0 + r) * j->ldc + p * NR;
                for (int64_t c = 0; c < ncols; c++) {
                    int32_t sum = acc4[r][4 * c] + acc4[r][4 * c + 1] + acc4[r][4 * c + 2] + acc4[r][4 * c + 3];
                    float v = (float)(sum - b->wsum[p * NR + c]) * (rq[r].step * b->scale[p * NR + c]);
                    if (j->accumulate) v = yp[c] + v;
                    if (j->bias) v += j->bias[p * NR + c];
                    yp[c] = v;
                }
                pi0_fast_i8_side(yp, j->ldc, j->a + (i0 + r) * j->lda, j->lda, 1, &rq[r], b, p, NULL);
                if (b->pair && (p & 1))
                    pi0_fast_gelu_tanh_generic(j->c + (i0 + r) * j->ldc + (p / 2) * NR, tile[r], tile[r] + NR, ncols);
            }
        }
    }
}

/* A GeGLU pair (b->pair) keeps each row's gate panel result in gacc until its up panel is done. */
void pi0_fast_gemm_generic(const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, kp = b->kp;
    if (b->kind == PI0_WEIGHTS_INT8) { gemm_int8(j); return; }
    for (int64_t i = 0; i < j->m; i++) {
        const float *x = j->a + i * j->lda;
        float *y = j->c + i * j->ldc, gacc[NR];
        for (int64_t p = j->p0; p < j->p1; p++) {
            float acc[NR];
            int64_t ncols = pi0_fast_panel_cols(b, p);
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
            if (b->pair) {
                if (!(p & 1)) for (int64_t c = 0; c < NR; c++) gacc[c] = acc[c];
                else pi0_fast_gelu_tanh_generic(y + (p / 2) * NR, gacc, acc, ncols);
                continue;
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
