/* matmul_int8_neon.c - int8 GEMM kernels of the NEON rows (isa_neon.c, isa_neonbf16.c) for the shared
 * driver's int8 mode (matmul.c: gemm_int8; packed layout in fast.h), on the ARMv8.2 dot product
 * (FEAT_DotProd: SDOT; Cortex-A76 in the Raspberry Pi 5, A78AE in Jetson Orin, Apple M1; Linux
 * reports it as HWCAP_ASIMDDP, rt/cpu.c: PI0_CAP_NEON_DOT). A core without it runs the portable int8
 * GEMM (the kernel set's `needs`). Row scan and block quantizer are the portable ones.
 *
 * SDOT multiplies signed by signed bytes, so the kernels undo the A block's unsigned offset: q = u8
 * xor 0x80 (= u8 - 128 as int8, in [-127, 127]) and add sum_i q_i w_i into int32 lanes directly. The
 * compensation wsum (the offset's, which is never added here) is not used, and the output stage gets
 * the portable path's integer sum_i (u8_i - 128) w_i. Range: |q w| <= 127 * 127 per product, a k
 * block has <= KC = 4096 inputs: |sum| <= 4096 * 16129 = 66.1e6 < 2^31; SDOT adds each 4-product
 * group into its int32 lane exactly (no intermediate narrowing).
 *
 * Tile: 4 rows x 16 columns, 16 int32x4 accumulators (one register = 4 columns); per k group the 4
 * weight registers (16 bytes = 4 columns x 4 inputs each) and, per row, its 4 bytes broadcast to all
 * lanes (LD1R). (SDOT by element on 16 bytes of 4 groups saves loads but made GCC 12 spill
 * accumulators in the loop.)
 * Output stage: the portable arithmetic element by element (multiply, then adds; C11: no FP
 * contraction), so one k block gives the portable path's bits; partial column groups go through a
 * 16-float buffer (NEON has no masked stores). The functions using SDOT carry target("+dotprod"), so
 * the file builds with the neon row's flags (armv8-a) and nothing else in it needs the extension.
 */
#include <string.h>

#include "ops/fast/simd_neon.h"
#include "rt/cpu.h"

#define MR 4
#define KC 4096 /* inputs per k block (multiple of 4): a panel's slice is 4096 x 64 = 256 KB */
#define MC 512  /* rows per m block */

#define DOT_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))

/* Output stage: sum (int32, R x 16) -> c, as matmul_generic.c computes it per element. */
static inline __attribute__((always_inline)) void store_tile(int R, int32x4_t acc[][4], float *c, int64_t ldc,
                                                             const pi0_fast_i8_epilogue *e, int64_t ncols) {
    const int full = ncols >= 16;
    float tb[16] = {0};
    const float *bias = e->bias;
    if (bias && !full) { memcpy(tb, bias, sizeof(float) * (size_t)ncols); bias = tb; }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
        const float32x4_t st = vdupq_n_f32(e->step[r]);
        float t[16];
        float *cr = c + r * ldc, *dst = full ? cr : t;
        if (e->loadc && !full) memcpy(t, cr, sizeof(float) * (size_t)ncols);
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
            /* scale has 64 entries per panel (zero past n): the 16-column load is in bounds */
            float32x4_t y = vmulq_f32(vcvtq_f32_s32(acc[r][v]), vmulq_f32(st, vld1q_f32(e->scale + 4 * v)));
            if (e->loadc) y = vaddq_f32(vld1q_f32(dst + 4 * v), y);
            if (bias) y = vaddq_f32(y, vld1q_f32(bias + 4 * v));
            vst1q_f32(dst + 4 * v, y);
        }
        if (!full) memcpy(cr, t, sizeof(float) * (size_t)ncols);
    }
}

DOT_TARGET static inline __attribute__((always_inline)) void
dot_tile(int R, const void *a_, int64_t lda, const void *b_, int64_t kk, float *c, int64_t ldc,
         const pi0_fast_i8_epilogue *e, int64_t ncols, const char *pf, int64_t pf_n) {
    const uint8_t *a = a_;
    const int8_t *b = b_;
    const uint8x16_t x80 = vdupq_n_u8(0x80);
    int32x4_t acc[MR][4];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[r][v] = vdupq_n_s32(0);
    for (int64_t t = 0; t < kk; t++) {
        if (t < pf_n) __builtin_prefetch(pf + 64 * t, 0, 2);
        int8x16_t w[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) w[v] = vld1q_s8(b + t * 256 + 16 * v);
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
            /* row r's 4 bytes of group t in every lane, offset removed */
            int8x16_t q = vreinterpretq_s8_u8(
                veorq_u8(vreinterpretq_u8_u32(vld1q_dup_u32((const uint32_t *)(const void *)(a + r * lda + 4 * t))), x80));
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[r][v] = vdotq_s32(acc[r][v], w[v], q);
        }
    }
    store_tile(R, acc, c, ldc, e, ncols);
}

#define DEF_KERN(R)                                                                                       \
    DOT_TARGET static void kern_dot_##R(const void *a, int64_t lda, const void *b, int64_t kk, float *c,    \
                                        int64_t ldc, const pi0_fast_i8_epilogue *e, int64_t ncols,          \
                                        const char *pf, int64_t pf_n) {                                     \
        dot_tile(R, a, lda, b, kk, c, ldc, e, ncols, pf, pf_n);                                            \
    }
DEF_KERN(1) DEF_KERN(2) DEF_KERN(3) DEF_KERN(4)

const pi0_fast_gemm_kernels pi0_fast_gemm_neon_i8dot = {
    .mr = MR, .cols = 16, .kc = KC, .mc = MC, .a_elem = 1, .needs = PI0_CAP_NEON_DOT,
    .quantize = pi0_fast_i8_quantize_generic, .kern_i8 = {0, kern_dot_1, kern_dot_2, kern_dot_3, kern_dot_4},
    .side = pi0_fast_i8_side_neon};
