/* matmul_neonbf16.c - GEMM microkernels for AArch64 cores with FEAT_BF16 (BFDOT; HWCAP2_BF16: Apple
 * M2+, Neoverse V1/V2 (Grace), Cortex-A710+/X2+): the bf16 kind of the ISA table's neon-bf16 row
 * (isa_neonbf16.c). Built with -march=armv8.2-a+bf16 (mk/fast.mk), called only when the CPU says so.
 *
 * The A block holds bf16 (the same rounding and bytes as the x86 A block). The packed layout already
 * is BFDOT's operand: one 16-byte load holds 4 columns x 2 consecutive inputs, and BFDOT adds, per
 * 32-bit lane, the pair's two products to the fp32 accumulator; the A pair is broadcast to all lanes.
 * BFDOT's arithmetic is not IEEE fp32 (the Arm ARM's BFDotAdd: the products summed with round to odd,
 * denormal inputs and results flushed to zero, unless FEAT_EBF16's extended mode is on), so results
 * differ in the last bits from the widening kernels; the bf16 tolerance of tests/test_ops.c covers it.
 * Tile: 4 rows x 16 columns; partial column groups through a 16-float buffer.
 */
#include <string.h>

#include "ops/fast/simd_neon.h"

#define MR 4
#define KC 2048
#define MC 1024 /* rows per m block: A block <= 4 MB of bf16 per thread */

#define DEF_KERN_DOT(R)                                                                         \
    static void kern_dot_##R(const void *a_, int64_t lda, const void *b_, int64_t kpairs,       \
                             float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols, \
                             const char *pf, int64_t pf_n) {                                     \
        const uint16_t *a = a_, *b = b_;                                                        \
        float32x4_t acc[R][4];                                                                  \
        const int full = ncols >= 16;                                                           \
        for (int r = 0; r < R; r++) {                                                           \
            float t[16] = {0};                                                                  \
            const float *src = c + r * ldc;                                                     \
            if (loadc && !full) { memcpy(t, src, sizeof(float) * (size_t)ncols); src = t; }     \
            for (int v = 0; v < 4; v++) acc[r][v] = loadc ? vld1q_f32(src + 4 * v) : vdupq_n_f32(0.0f); \
        }                                                                                       \
        for (int64_t p = 0; p < kpairs; p++) {                                                  \
            if (p < pf_n) __builtin_prefetch(pf + 64 * p, 0, 2);                                \
            bfloat16x8_t w[4];                                                                  \
            for (int v = 0; v < 4; v++) w[v] = vreinterpretq_bf16_u16(vld1q_u16(b + p * 128 + 8 * v)); \
            for (int r = 0; r < R; r++) {                                                       \
                uint32_t pair;                                                                  \
                memcpy(&pair, a + r * lda + 2 * p, sizeof pair);                                \
                bfloat16x8_t ar = vreinterpretq_bf16_u32(vdupq_n_u32(pair));                    \
                for (int v = 0; v < 4; v++) acc[r][v] = vbfdotq_f32(acc[r][v], ar, w[v]);       \
            }                                                                                   \
        }                                                                                       \
        float32x4_t bb[4];                                                                      \
        float tb[16] = {0};                                                                     \
        if (bias && !full) memcpy(tb, bias, sizeof(float) * (size_t)ncols);                     \
        for (int v = 0; v < 4; v++) bb[v] = bias ? vld1q_f32((full ? bias : tb) + 4 * v) : vdupq_n_f32(0.0f); \
        for (int r = 0; r < R; r++) {                                                           \
            float t[16];                                                                        \
            float *dst = full ? c + r * ldc : t;                                                \
            for (int v = 0; v < 4; v++) vst1q_f32(dst + 4 * v, vaddq_f32(acc[r][v], bb[v]));    \
            if (!full) memcpy(c + r * ldc, t, sizeof(float) * (size_t)ncols);                   \
        }                                                                                       \
    }

DEF_KERN_DOT(1) DEF_KERN_DOT(2) DEF_KERN_DOT(3) DEF_KERN_DOT(4)

/* Rows [0, mb) x inputs [k0, k0+kc) of a rounded to bf16 into dst (row stride lds), zero past k. */
static void convert_block(void *dst_, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                          int64_t k, const char *pf, int64_t pf_lines) {
    uint16_t *dst = dst_;
    int64_t valid = k - k0 < kc ? k - k0 : kc, full = valid & ~(int64_t)3;
    int64_t pf_row = mb > 0 ? (pf_lines + mb - 1) / mb : 0;
    for (int64_t r = 0; r < mb; r++) {
        for (int64_t l = 0; l < pf_row && pf_lines > 0; l++, pf_lines--, pf += 64) __builtin_prefetch(pf, 0, 2);
        const float *src = a + r * lda + k0;
        uint16_t *d = dst + r * lds;
        int64_t c = 0;
        for (; c < full; c += 4) vst1_u16(d + c, vshrn_n_u32(pi0_neon_bf16_round(vld1q_f32(src + c)), 16));
        for (; c < valid; c++) d[c] = pi0_fast_f32_to_bf16(src[c]);
        for (; c < kc; c++) d[c] = 0;
    }
}

const pi0_fast_gemm_kernels pi0_fast_gemm_neonbf16_dot = {
    .mr = MR, .cols = 16, .kc = KC, .mc = MC, .a_elem = 2, .convert = convert_block,
    .kern = {0, kern_dot_1, kern_dot_2, kern_dot_3, kern_dot_4}};
