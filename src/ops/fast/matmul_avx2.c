/* matmul_avx2.c - AVX2 + FMA GEMM microkernels and A-block conversion for the shared driver
 * (matmul.c; packed layout in fast.h), for CPUs without AVX-512 (compiled with -mavx2 -mfma -mf16c;
 * the ISA table's avx2 row, isa_avx2.c).
 *
 * bf16 kind: activation rows are rounded to bf16 (nearest even, NaN stays NaN: the same rounding
 * as the AVX-512 path) into the A block, kept as fp32 values (the low 16 bits zero) so the kernel
 * broadcasts them straight from memory. Weights are widened in registers: one 32-byte load holds
 * 8 columns x 2 consecutive inputs; << 16 gives the even input, & 0xffff0000 the odd one. A 6x16
 * register tile (12 ymm accumulators) adds, per k pair, the even product then the odd product with
 * FMA: the products of bf16 values are exact in fp32, so each accumulator sees the same fp32 sums as
 * the AVX-512 widening kernel (kern_wd_*). The group's weight slice (kc/2 x 64 bytes, <= 64 KB)
 * stays in L1/L2 across all row tiles.
 * f32 kind: x is read directly, 6x16 fp32 FMA tile.
 */
#include <string.h>

#include "ops/fast/simd_avx2.h"

#define NR PI0_FAST_NR
#define MR 6
#ifndef KC
#define KC 2048     /* max inputs per bf16 k block (even) */
#endif
#ifndef KC_F32
#define KC_F32 1024 /* inputs per f32 k block */
#endif
#define MC 512      /* rows per m block: A block <= 4 MB of fp32 per thread */

/* Kernel prologue/epilogue: C tile R rows x 16 columns (ncols of them valid, 1..16). loadc: start
 * from C (else zero); bias: added once (NULL = none). */
#define KERN_PROLOGUE(R)                                                                        \
    __m256 acc[R][2];                                                                           \
    const int full = ncols >= 16;                                                               \
    const __m256i m0 = pi0_mask8(ncols), m1 = pi0_mask8(ncols - 8);                             \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                       \
        if (!loadc) { acc[r][0] = acc[r][1] = _mm256_setzero_ps(); }                            \
        else if (full) {                                                                        \
            acc[r][0] = _mm256_loadu_ps(c + r * ldc);                                           \
            acc[r][1] = _mm256_loadu_ps(c + r * ldc + 8);                                       \
        } else {                                                                                \
            acc[r][0] = _mm256_maskload_ps(c + r * ldc, m0);                                    \
            acc[r][1] = _mm256_maskload_ps(c + r * ldc + 8, m1);                                \
        }                                                                                       \
    }

#define KERN_EPILOGUE(R)                                                                        \
    {                                                                                           \
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();                              \
        if (bias) { b0 = _mm256_maskload_ps(bias, m0); b1 = _mm256_maskload_ps(bias + 8, m1); } \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                   \
            __m256 y0 = _mm256_add_ps(acc[r][0], b0), y1 = _mm256_add_ps(acc[r][1], b1);        \
            if (full) { _mm256_storeu_ps(c + r * ldc, y0); _mm256_storeu_ps(c + r * ldc + 8, y1); } \
            else { _mm256_maskstore_ps(c + r * ldc, m0, y0); _mm256_maskstore_ps(c + r * ldc + 8, m1, y1); } \
        }                                                                                       \
    }

/* One k pair: b points at the group's 16 columns x 2 inputs (64 bytes) of pair p; a holds fp32
 * values already rounded to bf16, the pair at a[2p], a[2p+1]. Even inputs first, then odd. */
#define BF_STEP(R, p)                                                                           \
    do {                                                                                        \
        __m256i t0 = _mm256_load_si256((const __m256i *)(b + (p) * 128));                      \
        __m256i t1 = _mm256_load_si256((const __m256i *)(b + (p) * 128 + 16));                 \
        __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(t0, 16));                            \
        __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(t1, 16));                            \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                   \
            __m256 ae = _mm256_broadcast_ss(a + r * lda + 2 * (p));                             \
            acc[r][0] = _mm256_fmadd_ps(ae, e0, acc[r][0]);                                     \
            acc[r][1] = _mm256_fmadd_ps(ae, e1, acc[r][1]);                                     \
        }                                                                                       \
        __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(t0, hi));                              \
        __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(t1, hi));                              \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                   \
            __m256 ao = _mm256_broadcast_ss(a + r * lda + 2 * (p) + 1);                         \
            acc[r][0] = _mm256_fmadd_ps(ao, o0, acc[r][0]);                                     \
            acc[r][1] = _mm256_fmadd_ps(ao, o1, acc[r][1]);                                     \
        }                                                                                       \
    } while (0)

/* pf: during the first pf_n k pairs, one 64-byte line of pf per pair is prefetched into L2. */
#define DEF_KERN_BF(R)                                                                          \
    static void kern_bf_##R(const void *a_, int64_t lda, const void *b_, int64_t kpairs,        \
                            float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols, \
                            const char *pf, int64_t pf_n) {                                     \
        const float *a = a_;                                                                    \
        const uint16_t *b = b_;                                                                 \
        KERN_PROLOGUE(R)                                                                        \
        const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);                                 \
        int64_t p = 0;                                                                          \
        for (; p < pf_n; p++) {                                                                 \
            _mm_prefetch(pf + 64 * p, _MM_HINT_T1);                                             \
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
        KERN_PROLOGUE(R)                                                                        \
        for (int64_t i = 0; i < kk; i++) {                                                      \
            __m256 b0 = _mm256_load_ps(b + i * 64), b1 = _mm256_load_ps(b + i * 64 + 8);        \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                               \
                __m256 ar = _mm256_broadcast_ss(a + r * lda + i);                               \
                acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);                                 \
                acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);                                 \
            }                                                                                   \
        }                                                                                       \
        KERN_EPILOGUE(R)                                                                        \
    }

DEF_KERN_BF(1) DEF_KERN_BF(2) DEF_KERN_BF(3) DEF_KERN_BF(4) DEF_KERN_BF(5) DEF_KERN_BF(6)
DEF_KERN_F32(1) DEF_KERN_F32(2) DEF_KERN_F32(3) DEF_KERN_F32(4) DEF_KERN_F32(5) DEF_KERN_F32(6)

/* 8 floats rounded to bf16 (nearest even; NaN -> quiet NaN with its top bits), returned as fp32. */
static inline __m256 round_bf16(__m256 x) {
    const __m256i rnd = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256i u = _mm256_castps_si256(x);
    __m256i rr = _mm256_add_epi32(u, _mm256_add_epi32(rnd, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256i qn = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));
    rr = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(rr), _mm256_castsi256_ps(qn), isnan));
    return _mm256_castsi256_ps(_mm256_and_si256(rr, hi));
}

/* Rows [0, mb) x inputs [k0, k0+kc) of a rounded to bf16 precision into dst (fp32, row stride
 * lds), zero past k. Prefetches pf_lines 64-byte lines of pf (the first weight slice) meanwhile. */
static void convert_block(void *dst_, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                          int64_t k, const char *pf, int64_t pf_lines) {
    float *dst = dst_;
    int64_t valid = k - k0 < kc ? k - k0 : kc, full = valid & ~(int64_t)7;
    int64_t pf_row = mb > 0 ? (pf_lines + mb - 1) / mb : 0;
    for (int64_t r = 0; r < mb; r++) {
        for (int64_t l = 0; l < pf_row && pf_lines > 0; l++, pf_lines--, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
        const float *src = a + r * lda + k0;
        float *d = dst + r * lds;
        int64_t c = 0;
        for (; c < full; c += 8) _mm256_storeu_ps(d + c, round_bf16(_mm256_loadu_ps(src + c)));
        for (; c < valid; c++) d[c] = pi0_fast_bf16_to_f32(pi0_fast_f32_to_bf16(src[c]));
        for (; c < kc; c++) d[c] = 0.0f;
    }
}

#define KERNS(name) {0, name##_1, name##_2, name##_3, name##_4, name##_5, name##_6}
const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_bf16 = {
    .mr = MR, .cols = 16, .kc = KC, .mc = MC, .a_elem = 4, .convert = convert_block, .kern = KERNS(kern_bf)};
const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_f32 = {.mr = MR, .cols = 16, .kc = KC_F32, .kern = KERNS(kern_f32)};
