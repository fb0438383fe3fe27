/* matmul_avx512.c - AVX-512 GEMM microkernels and A-block conversion for the shared driver
 * (matmul.c; packed layout in fast.h), in three sets for the ISA table (isa_avx512.c):
 *
 * bf16 kind, AVX512_BF16: activation rows rounded to bf16 (vcvtneps2bf16) into the A block, a 6x64
 * register tile accumulating in fp32 with vdpbf16ps (each k pair's two products summed, then added);
 * bf16 kind, AVX-512 without BF16: the same A block rounded by integer arithmetic (same bytes), bf16
 * pairs widened (<< 16, & 0xffff0000) and two FMAs per pair: exact products, fp32 sums in the same
 * order as the AVX2 and NEON widening kernels;
 * f32 kind: x read in place, 6x64 fp32 FMA tile.
 * The kernels prefetch the next weight slice (pf) one line per k pair, as the driver asks.
 */
#include <string.h>

#include "ops/fast/simd_avx512.h"

#define NR PI0_FAST_NR
#define MR 6
#ifndef KC
#define KC 2048    /* max inputs per bf16 k block (even): weight slice <= 256 KB (L2) */
#endif
#define KC_F32 1024 /* inputs per f32 k block: weight slice 256 KB */
#ifndef MC
#define MC 1024    /* rows per m block: A block <= 4 MB of bf16 per thread */
#endif
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T1
#endif

typedef int32_t i32u __attribute__((may_alias, aligned(2)));

/* Kernel signature: R rows of A (bf16 pairs or f32), one weight panel slice, C tile R x ncols.
 * loadc: start from C (else zero); bias: added once (NULL = none). */
#define KERN_PROLOGUE(R)                                                                        \
    __m512 acc[R][4];                                                                           \
    __mmask16 mk[4];                                                                            \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) mk[v] = pi0_mask16(ncols - 16 * v);             \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                         \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)                                         \
        acc[r][v] = loadc ? _mm512_maskz_loadu_ps(mk[v], c + r * ldc + 16 * v) : _mm512_setzero_ps();

#define KERN_EPILOGUE(R)                                                                        \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                       \
        __m512 bb = bias ? _mm512_maskz_loadu_ps(mk[v], bias + 16 * v) : _mm512_setzero_ps();   \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                     \
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mk[v], _mm512_add_ps(acc[r][v], bb));   \
    }

/* One k pair of the vdpbf16ps kernel: 4 weight vectors (64 columns x 2 inputs), R broadcasts. */
#define DP_STEP(R, p)                                                                           \
    do {                                                                                        \
        __m512i b0 = _mm512_load_si512(b + (p) * 128), b1 = _mm512_load_si512(b + (p) * 128 + 32); \
        __m512i b2 = _mm512_load_si512(b + (p) * 128 + 64), b3 = _mm512_load_si512(b + (p) * 128 + 96); \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                   \
            __m512i ar = _mm512_set1_epi32(*(const i32u *)(a + r * lda + 2 * (p)));             \
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], (__m512bh)ar, (__m512bh)b0);                \
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], (__m512bh)ar, (__m512bh)b1);                \
            acc[r][2] = _mm512_dpbf16_ps(acc[r][2], (__m512bh)ar, (__m512bh)b2);                \
            acc[r][3] = _mm512_dpbf16_ps(acc[r][3], (__m512bh)ar, (__m512bh)b3);                \
        }                                                                                       \
    } while (0)

/* pf: during the first pf_n k pairs, one 64-byte line of pf per pair is prefetched into L2 (the
 * driver points it at the weight slice the next kernel calls will read from DRAM). */
#define DEF_KERN_DP(R)                                                                          \
    static void kern_dp_##R(const void *a_, int64_t lda, const void *b_, int64_t kpairs,        \
                            float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols, \
                            const char *pf, int64_t pf_n) {                                     \
        const uint16_t *a = a_, *b = b_;                                                        \
        KERN_PROLOGUE(R)                                                                        \
        int64_t p = 0;                                                                          \
        for (; p < pf_n; p++) {                                                                 \
            _mm_prefetch(pf + 64 * p, PF_HINT);                                                 \
            DP_STEP(R, p);                                                                      \
        }                                                                                       \
        for (; p < kpairs; p++) DP_STEP(R, p);                                                  \
        KERN_EPILOGUE(R)                                                                        \
    }

/* Without AVX512_BF16: widen bf16 pairs (low half = even input, high half = odd input). */
#define DEF_KERN_WIDEN(R)                                                                       \
    static void kern_wd_##R(const void *a_, int64_t lda, const void *b_, int64_t kpairs,        \
                            float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols, \
                            const char *pf, int64_t pf_n) {                                     \
        const uint16_t *a = a_, *b = b_;                                                        \
        (void)pf; (void)pf_n;                                                                   \
        KERN_PROLOGUE(R)                                                                        \
        const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);                                 \
        for (int64_t p = 0; p < kpairs; p++) {                                                  \
            __m512 be[4], bo[4];                                                                \
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                               \
                __m512i t = _mm512_load_si512(b + p * 128 + 32 * v);                            \
                be[v] = _mm512_castsi512_ps(_mm512_slli_epi32(t, 16));                          \
                bo[v] = _mm512_castsi512_ps(_mm512_and_si512(t, hi));                           \
            }                                                                                   \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                               \
                __m512i ar = _mm512_set1_epi32(*(const i32u *)(a + r * lda + 2 * p));           \
                __m512 ae = _mm512_castsi512_ps(_mm512_slli_epi32(ar, 16));                     \
                __m512 ao = _mm512_castsi512_ps(_mm512_and_si512(ar, hi));                      \
                _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)                             \
                    acc[r][v] = _mm512_fmadd_ps(ao, bo[v], _mm512_fmadd_ps(ae, be[v], acc[r][v])); \
            }                                                                                   \
        }                                                                                       \
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
            __m512 b0 = _mm512_load_ps(b + i * 64), b1 = _mm512_load_ps(b + i * 64 + 16);       \
            __m512 b2 = _mm512_load_ps(b + i * 64 + 32), b3 = _mm512_load_ps(b + i * 64 + 48);  \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                               \
                __m512 ar = _mm512_set1_ps(a[r * lda + i]);                                     \
                acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);                                 \
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);                                 \
                acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);                                 \
                acc[r][3] = _mm512_fmadd_ps(ar, b3, acc[r][3]);                                 \
            }                                                                                   \
        }                                                                                       \
        KERN_EPILOGUE(R)                                                                        \
    }

DEF_KERN_DP(1) DEF_KERN_DP(2) DEF_KERN_DP(3) DEF_KERN_DP(4) DEF_KERN_DP(5) DEF_KERN_DP(6)
DEF_KERN_WIDEN(1) DEF_KERN_WIDEN(2) DEF_KERN_WIDEN(3) DEF_KERN_WIDEN(4) DEF_KERN_WIDEN(5) DEF_KERN_WIDEN(6)
DEF_KERN_F32(1) DEF_KERN_F32(2) DEF_KERN_F32(3) DEF_KERN_F32(4) DEF_KERN_F32(5) DEF_KERN_F32(6)

/* 16 floats -> 16 bf16, round to nearest even, NaN stays NaN (quiet bit set). */
static inline __m256i to_bf16(__m512 x, int has_bf16) {
    if (has_bf16) return (__m256i)_mm512_cvtneps_pbh(x);
    const __m512i rnd = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    __m512i u = _mm512_castps_si512(x);
    __m512i rr = _mm512_add_epi32(u, _mm512_add_epi32(rnd, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
    __mmask16 isnan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    rr = _mm512_mask_mov_epi32(rr, isnan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rr, 16));
}

/* Round rows [0, mb) x inputs [k0, k0+kc) of a to bf16 into dst (row stride lds); zero past k.
 * While it streams A it also prefetches pf_lines 64-byte lines of pf (the first weight slice the
 * kernels will read), which the DRAM would otherwise not be asked for until the conversion ends. */
static inline void convert_block(uint16_t *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0,
                                 int64_t kc, int64_t k, int has_bf16, const char *pf, int64_t pf_lines) {
    int64_t valid = k - k0 < kc ? k - k0 : kc, full = valid & ~(int64_t)15;
    int64_t pf_row = mb > 0 ? (pf_lines + mb - 1) / mb : 0;
    for (int64_t r = 0; r < mb; r++) {
        for (int64_t l = 0; l < pf_row && pf_lines > 0; l++, pf_lines--, pf += 64) _mm_prefetch(pf, PF_HINT);
        const float *src = a + r * lda + k0;
        uint16_t *d = dst + r * lds;
        int64_t c = 0;
        if (has_bf16)
            for (; c < full; c += 16) _mm256_storeu_si256((__m256i *)(d + c), to_bf16(_mm512_loadu_ps(src + c), 1));
        else
            for (; c < full; c += 16) _mm256_storeu_si256((__m256i *)(d + c), to_bf16(_mm512_loadu_ps(src + c), 0));
        for (; c < kc; c += 16) {
            int64_t nv = valid - c, ns = kc - c;
            __mmask16 lm = nv >= 16 ? 0xffff : nv <= 0 ? 0 : (__mmask16)((1u << nv) - 1);
            __mmask16 sm = ns >= 16 ? 0xffff : (__mmask16)((1u << ns) - 1);
            _mm256_mask_storeu_epi16(d + c, sm, to_bf16(_mm512_maskz_loadu_ps(lm, src + c), has_bf16));
        }
    }
}

static void convert_cvt(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                        int64_t k, const char *pf, int64_t pf_lines) {
    convert_block(dst, lds, a, lda, mb, k0, kc, k, 1, pf, pf_lines);
}
static void convert_int(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                        int64_t k, const char *pf, int64_t pf_lines) {
    convert_block(dst, lds, a, lda, mb, k0, kc, k, 0, pf, pf_lines);
}

#define KERNS(name) {0, name##_1, name##_2, name##_3, name##_4, name##_5, name##_6}
const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_dp = {
    .mr = MR, .cols = 64, .kc = KC, .mc = MC, .a_elem = 2, .convert = convert_cvt, .kern = KERNS(kern_dp)};
const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_wd = {
    .mr = MR, .cols = 64, .kc = KC, .mc = MC, .a_elem = 2, .convert = convert_int, .kern = KERNS(kern_wd)};
const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_f32 = {.mr = MR, .cols = 64, .kc = KC_F32, .kern = KERNS(kern_f32)};
