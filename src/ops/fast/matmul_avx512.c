/* matmul_avx512.c - AVX-512 GEMM driver for packed weights (layout in fast.h).
 *
 * bf16 kind: activation rows are rounded to bf16 (nearest even) block by block into a per-thread
 * scratch A block [mb rows, KC inputs], then a 6x64 register tile accumulates in fp32 with
 * vdpbf16ps (or, without AVX512_BF16, by widening both bf16 operands and using FMA: same products,
 * same fp32 accumulation order per pair). f32 kind: x is read directly, 6x64 fp32 FMA tile.
 * Loop order: m block (<= MC rows; the bf16 A block, <= 2 MB, stays in L2/L3) > k block (KC) >
 * panels of the job > row tiles; the 64-column weight slice of a k block (KC*128 bytes = 128 KB)
 * stays in L2 across all row tiles, so weights stream from DRAM once per call. KC = 1024 measured
 * best on Zen 5 (256: 62-75 %, 1024: 79-90 % of one core's bf16 peak on the model shapes).
 * Every output element is produced by one thread in a fixed k order, whatever the job split.
 */
#include <immintrin.h>
#include <string.h>

#include "ops/fast/fast.h"

#define NR PI0_FAST_NR
#define MR 6
#ifndef KC
#define KC 1024    /* inputs per k block (even): weight slice 128 KB (L2), C reloaded k/KC times */
#endif
#ifndef MC
#define MC 1024    /* rows per m block: A block <= 2 MB of bf16 per thread */
#endif

typedef int32_t i32u __attribute__((may_alias, aligned(2)));

static inline __mmask16 col_mask(int64_t ncols, int v) {
    int64_t r = ncols - 16 * v;
    if (r >= 16) return 0xffff;
    if (r <= 0) return 0;
    return (__mmask16)((1u << r) - 1);
}

/* Kernel signature: R rows of A (bf16 pairs or f32), one weight panel slice, C tile R x ncols.
 * loadc: start from C (else zero); bias: added once (NULL = none). */
#define KERN_PROLOGUE(R)                                                                        \
    __m512 acc[R][4];                                                                           \
    __mmask16 mk[4];                                                                            \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) mk[v] = col_mask(ncols, v);             \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                         \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)                                         \
        acc[r][v] = loadc ? _mm512_maskz_loadu_ps(mk[v], c + r * ldc + 16 * v) : _mm512_setzero_ps();

#define KERN_EPILOGUE(R)                                                                        \
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                       \
        __m512 bb = bias ? _mm512_maskz_loadu_ps(mk[v], bias + 16 * v) : _mm512_setzero_ps();   \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                     \
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mk[v], _mm512_add_ps(acc[r][v], bb));   \
    }

#define DEF_KERN_DP(R)                                                                          \
    static void kern_dp_##R(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t kpairs,  \
                            float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols) {\
        KERN_PROLOGUE(R)                                                                        \
        for (int64_t p = 0; p < kpairs; p++) {                                                  \
            __m512i b0 = _mm512_load_si512(b + p * 128), b1 = _mm512_load_si512(b + p * 128 + 32); \
            __m512i b2 = _mm512_load_si512(b + p * 128 + 64), b3 = _mm512_load_si512(b + p * 128 + 96); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                               \
                __m512i ar = _mm512_set1_epi32(*(const i32u *)(a + r * lda + 2 * p));           \
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], (__m512bh)ar, (__m512bh)b0);            \
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], (__m512bh)ar, (__m512bh)b1);            \
                acc[r][2] = _mm512_dpbf16_ps(acc[r][2], (__m512bh)ar, (__m512bh)b2);            \
                acc[r][3] = _mm512_dpbf16_ps(acc[r][3], (__m512bh)ar, (__m512bh)b3);            \
            }                                                                                   \
        }                                                                                       \
        KERN_EPILOGUE(R)                                                                        \
    }

/* Without AVX512_BF16: widen bf16 pairs (low half = even input, high half = odd input). */
#define DEF_KERN_WIDEN(R)                                                                       \
    static void kern_wd_##R(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t kpairs,  \
                            float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols) {\
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
    static void kern_f32_##R(const float *a, int64_t lda, const float *b, int64_t kk,           \
                             float *c, int64_t ldc, int loadc, const float *bias, int64_t ncols) {\
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

typedef void (*kern_bf16_fn)(const uint16_t *, int64_t, const uint16_t *, int64_t, float *, int64_t, int,
                             const float *, int64_t);
typedef void (*kern_f32_fn)(const float *, int64_t, const float *, int64_t, float *, int64_t, int,
                            const float *, int64_t);
static const kern_bf16_fn k_dp[MR + 1] = {0, kern_dp_1, kern_dp_2, kern_dp_3, kern_dp_4, kern_dp_5, kern_dp_6};
static const kern_bf16_fn k_wd[MR + 1] = {0, kern_wd_1, kern_wd_2, kern_wd_3, kern_wd_4, kern_wd_5, kern_wd_6};
static const kern_f32_fn k_f32[MR + 1] = {0, kern_f32_1, kern_f32_2, kern_f32_3, kern_f32_4, kern_f32_5, kern_f32_6};

/* Row tiles: nb = ceil(mb/MR) tiles of near-equal size (50 rows -> 6,6,6,6,6,5,5,5,5) so no tile
 * runs nearly empty. Tile t starts at tile_lo(t) and has tile_lo(t+1) - tile_lo(t) rows. */
static inline int64_t tile_lo(int64_t mb, int64_t nb, int64_t t) {
    int64_t q = mb / nb, r = mb % nb;
    return t * q + (t < r ? t : r);
}

/* Round rows [i0, i0+mb) x inputs [k0, k0+kc) of x to bf16 into dst [mb][kc]; zero past k. */
static void convert_block(uint16_t *dst, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                          int64_t k, int has_bf16) {
    int64_t valid = k - k0 < kc ? k - k0 : kc;
    const __m512i rnd = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    for (int64_t r = 0; r < mb; r++) {
        const float *src = a + r * lda + k0;
        uint16_t *d = dst + r * kc;
        for (int64_t c = 0; c < kc; c += 16) {
            int64_t nv = valid - c, ns = kc - c;
            __mmask16 lm = nv >= 16 ? 0xffff : nv <= 0 ? 0 : (__mmask16)((1u << nv) - 1);
            __mmask16 sm = ns >= 16 ? 0xffff : (__mmask16)((1u << ns) - 1);
            __m512 x = _mm512_maskz_loadu_ps(lm, src + c);
            __m256i h;
            if (has_bf16) {
                h = (__m256i)_mm512_cvtneps_pbh(x);
            } else {
                __m512i u = _mm512_castps_si512(x);
                __m512i rr = _mm512_add_epi32(u, _mm512_add_epi32(rnd, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
                __mmask16 isnan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
                rr = _mm512_mask_mov_epi32(rr, isnan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
                h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(rr, 16));
            }
            _mm256_mask_storeu_epi16(d + c, sm, h);
        }
    }
}

static void gemm_bf16(const pi0_fast_gemm_job *j, int has_bf16) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, kp = b->kp, n = b->n;
    uint16_t *abuf = pi0_fast_scratch(0, (size_t)MC * KC * sizeof(uint16_t));
    if (!abuf) { pi0_fast_gemm_generic(j); return; } /* out of memory: slow but correct */
    const kern_bf16_fn *kern = has_bf16 ? k_dp : k_wd;
    const uint16_t *B = b->data;
    int64_t n_mblk = (j->m + MC - 1) / MC;
    for (int64_t ib = 0; ib < n_mblk; ib++) {
        int64_t i0 = tile_lo(j->m, n_mblk, ib), mb = tile_lo(j->m, n_mblk, ib + 1) - i0;
        int64_t nb = (mb + MR - 1) / MR;
        for (int64_t k0 = 0; k0 < kp; k0 += KC) {
            int64_t kc = kp - k0 < KC ? kp - k0 : KC;
            convert_block(abuf, j->a + i0 * j->lda, j->lda, mb, k0, kc, k, has_bf16);
            int loadc = k0 > 0 || j->accumulate;
            for (int64_t p = j->p0; p < j->p1; p++) {
                const uint16_t *bp = B + p * kp * NR + k0 * NR;
                int64_t ncols = n - p * NR < NR ? n - p * NR : NR;
                const float *bias = (k0 == 0 && j->bias) ? j->bias + p * NR : NULL;
                for (int64_t t = 0; t < nb; t++) {
                    int64_t r0 = tile_lo(mb, nb, t), rows = tile_lo(mb, nb, t + 1) - r0;
                    kern[rows](abuf + r0 * kc, kc, bp, kc / 2, j->c + (i0 + r0) * j->ldc + p * NR, j->ldc,
                               loadc, bias, ncols);
                }
            }
        }
    }
}

static void gemm_f32(const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, n = b->n;
    const float *B = b->data;
    int64_t nb = (j->m + MR - 1) / MR;
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        int64_t kc = k - k0 < KC ? k - k0 : KC;
        int loadc = k0 > 0 || j->accumulate;
        for (int64_t p = j->p0; p < j->p1; p++) {
            const float *bp = B + p * k * NR + k0 * NR;
            int64_t ncols = n - p * NR < NR ? n - p * NR : NR;
            const float *bias = (k0 == 0 && j->bias) ? j->bias + p * NR : NULL;
            for (int64_t t = 0; t < nb; t++) {
                int64_t r0 = tile_lo(j->m, nb, t), rows = tile_lo(j->m, nb, t + 1) - r0;
                k_f32[rows](j->a + r0 * j->lda + k0, j->lda, bp, kc, j->c + r0 * j->ldc + p * NR, j->ldc,
                            loadc, bias, ncols);
            }
        }
    }
}

void pi0_fast_gemm_avx512(const pi0_fast_gemm_job *j, int has_bf16) {
    if (j->m <= 0 || j->p0 >= j->p1) return;
    if (j->b->kind == PI0_WEIGHTS_F32) gemm_f32(j);
    else gemm_bf16(j, has_bf16);
}
