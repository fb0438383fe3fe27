/* matmul_neon.c - NEON GEMM microkernels and A-block conversion for the shared driver (matmul.c;
 * packed layout in fast.h): the ISA table's neon row (isa_neon.c), every ARMv8 core.
 *
 * bf16 kind: activation rows rounded to bf16 (nearest even, NaN stays NaN) into the A block, kept as
 * fp32 values (low 16 bits zero). Weights widened in registers, as in matmul_avx2.c: one 16-byte
 * load holds 4 columns x 2 consecutive inputs; << 16 gives the even input, & 0xffff0000 the odd one.
 * Per k pair the even product, then the odd one, is added with a fused multiply-add (FMLA by
 * element): bf16 x bf16 products are exact in fp32, so every accumulator sees the same fp32 sums, in
 * the same order, as the AVX2 and AVX-512 widening kernels: the bf16 GEMM gives their bits.
 * f32 kind: x read in place, one FMLA per input: the AVX2 f32 kernel's bits too.
 * Tile: 4 rows x 16 columns (16 accumulators + 8 weight registers of the 32). Partial column groups
 * (ncols < 16) go through a 16-float buffer, since NEON has no masked loads and stores.
 */
#include <string.h>

#include "ops/fast/simd_neon.h"

#define MR 4
#define KC 2048     /* max inputs per bf16 k block (even), as on x86 */
#define KC_F32 1024 /* inputs per f32 k block */
#define MC 512      /* rows per m block: A block <= 4 MB of fp32 per thread */

/* C tile R x 16 (ncols valid): start from C or zero; at the end add the bias and store. */
#define KERN_PROLOGUE(R)                                                                        \
    float32x4_t acc[R][4];                                                                      \
    const int full = ncols >= 16;                                                               \
    for (int r = 0; r < R; r++) {                                                               \
        float t[16] = {0};                                                                      \
        const float *src = c + r * ldc;                                                         \
        if (loadc && !full) { memcpy(t, src, sizeof(float) * (size_t)ncols); src = t; }         \
        for (int v = 0; v < 4; v++) acc[r][v] = loadc ? vld1q_f32(src + 4 * v) : vdupq_n_f32(0.0f); \
    }

#define KERN_EPILOGUE(R)                                                                        \
    {                                                                                           \
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

#define BF_STEP(R, p)                                                                           \
    do {                                                                                        \
        uint32x4_t t[4];                                                                        \
        float32x4_t w[4];                                                                       \
        for (int v = 0; v < 4; v++) t[v] = vreinterpretq_u32_u16(vld1q_u16(b + (p) * 128 + 8 * v)); \
        for (int v = 0; v < 4; v++) w[v] = vreinterpretq_f32_u32(vshlq_n_u32(t[v], 16));       \
        for (int r = 0; r < R; r++) {                                                           \
            float ae = a[r * lda + 2 * (p)];                                                    \
            for (int v = 0; v < 4; v++) acc[r][v] = vfmaq_n_f32(acc[r][v], w[v], ae);           \
        }                                                                                       \
        for (int v = 0; v < 4; v++) w[v] = vreinterpretq_f32_u32(vandq_u32(t[v], hi));         \
        for (int r = 0; r < R; r++) {                                                           \
            float ao = a[r * lda + 2 * (p) + 1];                                                \
            for (int v = 0; v < 4; v++) acc[r][v] = vfmaq_n_f32(acc[r][v], w[v], ao);           \
        }                                                                                       \
    } while (0)

#define DEF_KERN_BF(R)                                                                          \
    static void kern_bf_##R(const void *a_, int64_t lda, const void *b_, int64_t kpairs,        \
                            float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols, \
                            const char *pf, int64_t pf_n) {                                     \
        const float *a = a_;                                                                    \
        const uint16_t *b = b_;                                                                 \
        const uint32x4_t hi = vdupq_n_u32(0xffff0000u);                                         \
        KERN_PROLOGUE(R)                                                                        \
        int64_t p = 0;                                                                          \
        for (; p < pf_n; p++) {                                                                 \
            __builtin_prefetch(pf + 64 * p, 0, 2);                                              \
            BF_STEP(R, p);                                                                      \
        }                                                                                       \
        for (; p < kpairs; p++) BF_STEP(R, p);                                                  \
        KERN_EPILOGUE(R)                                                                        \
    }

#define DEF_KERN_F32(R)                                                                         \
    static void kern_f32_##R(const void *a_, int64_t lda, const void *b_, int64_t kk,           \
                             float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols, \
                             const char *pf, int64_t pf_n) {                                     \
        const float *a = a_, *b = b_;                                                            \
        (void)pf; (void)pf_n;                                                                    \
        KERN_PROLOGUE(R)                                                                         \
        for (int64_t i = 0; i < kk; i++) {                                                       \
            float32x4_t w[4];                                                                    \
            for (int v = 0; v < 4; v++) w[v] = vld1q_f32(b + i * 64 + 4 * v);                    \
            for (int r = 0; r < R; r++) {                                                        \
                float ar = a[r * lda + i];                                                       \
                for (int v = 0; v < 4; v++) acc[r][v] = vfmaq_n_f32(acc[r][v], w[v], ar);        \
            }                                                                                    \
        }                                                                                        \
        KERN_EPILOGUE(R)                                                                         \
    }

DEF_KERN_BF(1) DEF_KERN_BF(2) DEF_KERN_BF(3) DEF_KERN_BF(4)
DEF_KERN_F32(1) DEF_KERN_F32(2) DEF_KERN_F32(3) DEF_KERN_F32(4)

/* Rows [0, mb) x inputs [k0, k0+kc) of a rounded to bf16 precision into dst (fp32, row stride
 * lds), zero past k; prefetches pf_lines 64-byte lines of pf (the first weight slice) meanwhile. */
static void convert_block(void *dst_, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                          int64_t k, const char *pf, int64_t pf_lines) {
    float *dst = dst_;
    int64_t valid = k - k0 < kc ? k - k0 : kc, full = valid & ~(int64_t)3;
    int64_t pf_row = mb > 0 ? (pf_lines + mb - 1) / mb : 0;
    const uint32x4_t hi = vdupq_n_u32(0xffff0000u);
    for (int64_t r = 0; r < mb; r++) {
        for (int64_t l = 0; l < pf_row && pf_lines > 0; l++, pf_lines--, pf += 64) __builtin_prefetch(pf, 0, 2);
        const float *src = a + r * lda + k0;
        float *d = dst + r * lds;
        int64_t c = 0;
        for (; c < full; c += 4)
            vst1q_f32(d + c, vreinterpretq_f32_u32(vandq_u32(pi0_neon_bf16_round(vld1q_f32(src + c)), hi)));
        for (; c < valid; c++) d[c] = pi0_fast_bf16_to_f32(pi0_fast_f32_to_bf16(src[c]));
        for (; c < kc; c++) d[c] = 0.0f;
    }
}

#define KERNS(name) {0, name##_1, name##_2, name##_3, name##_4}
const pi0_fast_gemm_kernels pi0_fast_gemm_neon_bf16 = {
    .mr = MR, .cols = 16, .kc = KC, .mc = MC, .a_elem = 4, .convert = convert_block, .kern = KERNS(kern_bf)};
const pi0_fast_gemm_kernels pi0_fast_gemm_neon_f32 = {.mr = MR, .cols = 16, .kc = KC_F32, .kern = KERNS(kern_f32)};
