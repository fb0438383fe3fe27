/* matmul_int8_avx2.c - int8 GEMM kernels of the AVX2 rows (isa_avx2.c) for the shared driver's
 * int8 mode (matmul.c: gemm_int8; packed layout in fast.h), plus an AVX2 row scan and block quantizer
 * that give the portable ones' bits (quant_int8.c). Compiled with the avx2 flags (mk/fast.mk).
 *
 * Both kernel sets read the same A block (u8 = q + 128, q in [-127, 127], 128 at padding and outlier
 * channels) and the same packed weights (s8 in [-127, 127]; one 64-byte row of a k group holds 16
 * columns x 4 inputs), and keep one int32 sum per (row, column): a 16-column group is two ymm
 * registers of 8 columns, a tile R rows x 16 columns.
 *
 * AVX-VNNI (kern_vnni_*, row avx2-vnni): vpdpbusd (VEX, 256-bit) adds the four u8 x s8 products of
 * each column's group to its int32 lane: sum = sum_i u8_i w_i, the portable path's integer, and the
 * output stage subtracts the compensation wsum = 128 sum_i w_i (last k block), so sum - wsum =
 * sum_i q_i w_i exactly. Range: |u8 w| <= 255 * 127 per product, a k block has <= KC = 4096 inputs:
 * |sum| <= 4096 * 255 * 127 = 132.6e6 < 2^31. These functions carry target("avxvnni") (not a
 * file-wide -mavxvnni), so the other kernels of this file cannot contain VNNI instructions and run
 * on CPUs without it.
 *
 * AVX2 without VNNI (kern_mb_*, row avx2): vpmaddubsw multiplies u8 by s8 and adds adjacent pairs
 * into int16 with signed saturation. With the u8 = q + 128 operand a pair can reach 2 * 255 * 127 =
 * 64770 > 32767 and would saturate, so the kernel uses the signed activations instead:
 *   q = u8 xor 0x80 (as int8, = u8 - 128, in [-127, 127]); unsigned operand |q| (vpabsb), signed
 *   operand w' = sign(q) * w (vpsignb: -w, 0 or w); |q| * w' = q * w for every product.
 * Overflow argument: |q| <= 127 and |w'| = |w| <= 127 (the quantizers clamp to [-127, 127], never
 * -128, so the negation in vpsignb is exact), hence each vpmaddubsw int16 lane is
 * |q_a| w'_a + |q_b| w'_b with absolute value <= 2 * 127 * 127 = 32258 <= 32767: never saturates.
 * vpmaddwd with ones then adds two such lanes exactly into int32 (<= 64516: the four products of a
 * column's k group), and the int32 sum over a k block is <= 4096 * 127 * 127 = 66.1e6 < 2^31.
 * The sum is then sum_i q_i w_i directly: this kernel ignores wsum (the compensation of the u8
 * offset it never adds), and the output stage gets the same integer as the portable path.
 * tests/test_ops.c (test_int8_exact) checks it with all activations and weights at +-127.
 *
 * Output stage (both): exactly the portable arithmetic per element, so one k block gives the same
 * bits as matmul_generic.c: v = (float)(sum [- wsum]) * (step_r * scale_j); v = c + v if loadc;
 * v = v + bias if bias (separate multiply and adds: this file is C11, no FP contraction). With
 * several k blocks the driver adds one such partial per block (the VNNI partials of the blocks
 * before the last include the 128 offset that the last one removes; the maddubs partials do not),
 * so only the last bits differ from the portable single sum.
 */
#include <math.h>
#include <string.h>

#include "ops/fast/simd_avx2.h"
#include "rt/cpu.h"

#define MR_VNNI 6   /* 12 accumulators + 2 weight registers + the broadcast */
#define MR_MB 4     /* 8 accumulators + 2 weights + ones + q, |q| and a product: 5 rows would spill */
#define KC 4096     /* inputs per k block (multiple of 4): a panel's slice is 4096 x 64 = 256 KB */
#define MC 512      /* rows per m block: A block <= 2 MB per thread */

/* ---- output stage ------------------------------------------------------------------------------ */

static inline __attribute__((always_inline)) void store_tile(int R, __m256i acc[][2], float *c, int64_t ldc,
                                                             const pi0_fast_i8_epilogue *e, int64_t ncols,
                                                             int use_wsum) {
    const int full = ncols >= 16;
    const __m256i m0 = pi0_mask8(ncols), m1 = pi0_mask8(ncols - 8);
    /* scale and wsum have 64 entries per panel (zero past n): whole 16-column loads are in bounds */
    const __m256 sc0 = _mm256_loadu_ps(e->scale), sc1 = _mm256_loadu_ps(e->scale + 8);
    __m256i ws0 = _mm256_setzero_si256(), ws1 = _mm256_setzero_si256();
    if (use_wsum && e->wsum) {
        ws0 = _mm256_loadu_si256((const __m256i *)e->wsum);
        ws1 = _mm256_loadu_si256((const __m256i *)(e->wsum + 8));
    }
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (e->bias) { b0 = _mm256_maskload_ps(e->bias, m0); b1 = _mm256_maskload_ps(e->bias + 8, m1); }
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        const __m256 st = _mm256_set1_ps(e->step[r]);
        __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][0], ws0)), _mm256_mul_ps(st, sc0));
        __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][1], ws1)), _mm256_mul_ps(st, sc1));
        float *cr = c + r * ldc;
        if (e->loadc) {
            if (full) {
                y0 = _mm256_add_ps(_mm256_loadu_ps(cr), y0);
                y1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), y1);
            } else {
                y0 = _mm256_add_ps(_mm256_maskload_ps(cr, m0), y0);
                y1 = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), y1);
            }
        }
        if (e->bias) { y0 = _mm256_add_ps(y0, b0); y1 = _mm256_add_ps(y1, b1); }
        if (full) { _mm256_storeu_ps(cr, y0); _mm256_storeu_ps(cr + 8, y1); }
        else { _mm256_maskstore_ps(cr, m0, y0); _mm256_maskstore_ps(cr + 8, m1, y1); }
    }
}

/* The 4 bytes of row r's k group t, broadcast to all 8 lanes. */
static inline __attribute__((always_inline)) __m256i group4(const uint8_t *a, int64_t lda, int r, int64_t t) {
    int32_t v;
    memcpy(&v, a + r * lda + 4 * t, sizeof v);
    return _mm256_set1_epi32(v);
}

/* ---- AVX-VNNI kernels ------------------------------------------------------------------------- */

__attribute__((target("avxvnni"))) static inline __attribute__((always_inline)) void
vnni_step(int R, __m256i acc[][2], const uint8_t *a, int64_t lda, const int8_t *b, int64_t t) {
    const __m256i w0 = _mm256_load_si256((const __m256i *)(b + t * 256));
    const __m256i w1 = _mm256_load_si256((const __m256i *)(b + t * 256 + 32));
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        const __m256i ar = group4(a, lda, r, t);
        acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], ar, w0);
        acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], ar, w1);
    }
}

__attribute__((target("avxvnni"))) static inline __attribute__((always_inline)) void
vnni_tile(int R, const void *a_, int64_t lda, const void *b_, int64_t kk, float *c, int64_t ldc,
          const pi0_fast_i8_epilogue *e, int64_t ncols, const char *pf, int64_t pf_n) {
    const uint8_t *a = a_;
    const int8_t *b = b_;
    __m256i acc[MR_VNNI][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    int64_t t = 0;
    for (; t < pf_n; t++) {
        _mm_prefetch(pf + 64 * t, _MM_HINT_T1);
        vnni_step(R, acc, a, lda, b, t);
    }
    for (; t < kk; t++) vnni_step(R, acc, a, lda, b, t);
    store_tile(R, acc, c, ldc, e, ncols, 1);
}

#define DEF_KERN_VNNI(R)                                                                                  \
    __attribute__((target("avxvnni"))) static void kern_vnni_##R(                                         \
        const void *a, int64_t lda, const void *b, int64_t kk, float *c, int64_t ldc,                      \
        const pi0_fast_i8_epilogue *e, int64_t ncols, const char *pf, int64_t pf_n) {                      \
        vnni_tile(R, a, lda, b, kk, c, ldc, e, ncols, pf, pf_n);                                           \
    }
DEF_KERN_VNNI(1) DEF_KERN_VNNI(2) DEF_KERN_VNNI(3) DEF_KERN_VNNI(4) DEF_KERN_VNNI(5) DEF_KERN_VNNI(6)

/* ---- AVX2 kernels (vpmaddubsw with signed activations; overflow argument at the top) ---------- */

static inline __attribute__((always_inline)) void mb_step(int R, __m256i acc[][2], const uint8_t *a, int64_t lda,
                                                          const int8_t *b, int64_t t, __m256i ones) {
    const __m256i w0 = _mm256_load_si256((const __m256i *)(b + t * 256));
    const __m256i w1 = _mm256_load_si256((const __m256i *)(b + t * 256 + 32));
    const __m256i x80 = _mm256_set1_epi8((char)0x80);
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
        const __m256i q = _mm256_xor_si256(group4(a, lda, r, t), x80); /* u8 - 128 as int8 */
        const __m256i aq = _mm256_abs_epi8(q);
        const __m256i p0 = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(w0, q));
        const __m256i p1 = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(w1, q));
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
    }
}

static inline __attribute__((always_inline)) void mb_tile(int R, const void *a_, int64_t lda, const void *b_,
                                                          int64_t kk, float *c, int64_t ldc,
                                                          const pi0_fast_i8_epilogue *e, int64_t ncols,
                                                          const char *pf, int64_t pf_n) {
    const uint8_t *a = a_;
    const int8_t *b = b_;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[MR_MB][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    int64_t t = 0;
    for (; t < pf_n; t++) {
        _mm_prefetch(pf + 64 * t, _MM_HINT_T1);
        mb_step(R, acc, a, lda, b, t, ones);
    }
    for (; t < kk; t++) mb_step(R, acc, a, lda, b, t, ones);
    store_tile(R, acc, c, ldc, e, ncols, 0);
}

#define DEF_KERN_MB(R)                                                                                    \
    static void kern_mb_##R(const void *a, int64_t lda, const void *b, int64_t kk, float *c, int64_t ldc,  \
                            const pi0_fast_i8_epilogue *e, int64_t ncols, const char *pf, int64_t pf_n) {  \
        mb_tile(R, a, lda, b, kk, c, ldc, e, ncols, pf, pf_n);                                             \
    }
DEF_KERN_MB(1) DEF_KERN_MB(2) DEF_KERN_MB(3) DEF_KERN_MB(4)

/* ---- row scan and block quantizer (same bits as quant_int8.c's portable ones) ----------------- */

/* pi0_fast_i8_scan_fn: 16 elements per step, lanes 0-7 and 8-15 in two registers, each lane adding
 * its elements in index order (multiply, then add: no FMA), elements above thr adding +0 (the lane
 * sums are >= +0 or NaN, so adding +0 changes no bit). Comparisons are ordered (a NaN is not above
 * thr, as in C), the maximum is taken on the bit patterns (non-negative as int32). The tail past the
 * last multiple of 16 continues the same lanes in scalar code. */
static void scan_row(const float *x, int64_t k, float thr, float lanes[16], uint32_t *maxbits, int64_t *count,
                     int32_t *idx, int64_t cap) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), th = _mm256_set1_ps(thr);
    __m256 l0 = _mm256_setzero_ps(), l1 = _mm256_setzero_ps();
    __m256i mx = _mm256_setzero_si256();
    int64_t cnt = 0, i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256 a0 = _mm256_and_ps(_mm256_loadu_ps(x + i), absmask), a1 = _mm256_and_ps(_mm256_loadu_ps(x + i + 8), absmask);
        __m256 g0 = _mm256_cmp_ps(a0, th, _CMP_GT_OQ), g1 = _mm256_cmp_ps(a1, th, _CMP_GT_OQ);
        l0 = _mm256_add_ps(l0, _mm256_andnot_ps(g0, _mm256_mul_ps(a0, a0)));
        l1 = _mm256_add_ps(l1, _mm256_andnot_ps(g1, _mm256_mul_ps(a1, a1)));
        mx = _mm256_max_epi32(mx, _mm256_castps_si256(_mm256_andnot_ps(g0, a0)));
        mx = _mm256_max_epi32(mx, _mm256_castps_si256(_mm256_andnot_ps(g1, a1)));
        unsigned big = (unsigned)_mm256_movemask_ps(g0) | (unsigned)_mm256_movemask_ps(g1) << 8;
        for (; big; big &= big - 1) { /* rare: ascending indices */
            if (cnt < cap) idx[cnt] = (int32_t)(i + __builtin_ctz(big));
            cnt++;
        }
    }
    _mm256_storeu_ps(lanes, l0);
    _mm256_storeu_ps(lanes + 8, l1);
    uint32_t m8[8], mb = 0;
    _mm256_storeu_si256((__m256i *)m8, mx);
    for (int l = 0; l < 8; l++) mb = m8[l] > mb ? m8[l] : mb;
    for (; i < k; i++) {
        float a = fabsf(x[i]);
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        bits &= 0x7fffffffu;
        if (a > thr) {
            if (cnt < cap) idx[cnt] = (int32_t)i;
            cnt++;
        } else {
            float sq = a * a;
            lanes[i & 15] = lanes[i & 15] + sq;
            mb = bits > mb ? bits : mb;
        }
    }
    *maxbits = mb;
    *count = cnt;
}

/* 32 floats to 32 bytes u8 = nearest-even(clamp(x * inv, -127, 127)) + 128: vmaxps(v, -127) gives
 * -127 for a NaN v (the portable quantizer's rule), vcvtps2dq rounds to nearest even (the default
 * MXCSR mode, as nearbyintf), the packs keep [-127, 127] unchanged, xor 0x80 adds 128 mod 256. */
static inline __m256i quant32(const float *x, __m256 inv) {
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i q[4];
    for (int v = 0; v < 4; v++) {
        __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * v), inv);
        q[v] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(y, lo), hi));
    }
    /* packs work per 128-bit lane: dwords come out as x0-3 x8-11 x16-19 x24-27 | x4-7 x12-15 ... */
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    return _mm256_xor_si256(b, _mm256_set1_epi8((char)0x80));
}

/* pi0_fast_gemm_quantize: the bytes of pi0_fast_i8_quantize_generic. */
static void quantize_block(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                           int64_t k, const pi0_fast_i8_row *rq, const char *pf, int64_t pf_lines) {
    int64_t valid = k - k0 < kc ? k - k0 : kc;
    if (valid < 0) valid = 0;
    const int64_t full = valid & ~(int64_t)31;
    int64_t pf_row = mb > 0 ? (pf_lines + mb - 1) / mb : 0;
    for (int64_t r = 0; r < mb; r++) {
        for (int64_t l = 0; l < pf_row && pf_lines > 0; l++, pf_lines--, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
        uint8_t *d = (uint8_t *)dst + r * lds;
        const float *x = a + r * lda + k0;
        const __m256 inv = _mm256_set1_ps(rq[r].inv);
        int64_t c = 0;
        for (; c < full; c += 32) _mm256_storeu_si256((__m256i *)(d + c), quant32(x + c, inv));
        if (c < valid) { /* tail through a zero-padded copy */
            float t[32] = {0};
            uint8_t u[32];
            memcpy(t, x + c, sizeof(float) * (size_t)(valid - c));
            _mm256_storeu_si256((__m256i *)u, quant32(t, inv));
            memcpy(d + c, u, (size_t)(valid - c));
        }
        memset(d + valid, 128, (size_t)(kc - valid));
        for (int o = 0; o < rq[r].n_out; o++)
            if (rq[r].out[o] >= k0 && rq[r].out[o] < k0 + kc) d[rq[r].out[o] - k0] = 128;
    }
}

#define KERNS6(name) {0, name##_1, name##_2, name##_3, name##_4, name##_5, name##_6}
#define KERNS4(name) {0, name##_1, name##_2, name##_3, name##_4}
const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_i8vnni = {
    .mr = MR_VNNI, .cols = 16, .kc = KC, .mc = MC, .a_elem = 1, .needs = PI0_CAP_AVXVNNI,
    .scan = scan_row, .quantize = quantize_block, .kern_i8 = KERNS6(kern_vnni), .side = pi0_fast_i8_side_avx2};
const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_i8 = {
    .mr = MR_MB, .cols = 16, .kc = KC, .mc = MC, .a_elem = 1,
    .scan = scan_row, .quantize = quantize_block, .kern_i8 = KERNS4(kern_mb), .side = pi0_fast_i8_side_avx2};
