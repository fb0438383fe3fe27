/* matmul_avx512vnni.c - the int8 kind's AVX-512 VNNI kernels for the shared GEMM driver (matmul.c,
 * gemm_int8; packed layout in fast.h, row quantization in quant_int8.c), in the ISA table's AVX-512
 * rows (isa_avx512.c) with `needs` = AVX512_VNNI, so a CPU without VNNI runs the portable GEMM.
 *
 * Kernel: a 6x64 register tile of int32 accumulators; per group of 4 inputs, 4 weight vectors (64
 * columns x 4 int8) and one broadcast of the row's 4 u8 per row, vpdpbusd (u8 x s8, 4 products
 * summed into each int32 lane, no saturation: |sum| <= 4096 x 255 x 127 < 2^31 per k block).
 * Output stage: (float)(sum - wsum) * (step_r * scale_j), added to C after the first k block, bias
 * in the last: the same float operations in the same order as the portable GEMM, so with one k
 * block the result is bit-identical to it. Quantizer and row scan: the same bits as the portable
 * ones (quant_int8.c), 16 lanes at a time.
 */
#include <string.h>

#include "ops/fast/simd_avx512.h"
#include "rt/cpu.h"

#define MR 6
#ifndef KC_I8
#define KC_I8 4096 /* max inputs per k block (multiple of 4): weight slice 256 KB */
#endif
#define MC_I8 1024
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T1
#endif

typedef int32_t i32u __attribute__((may_alias, aligned(1)));

#define I8_STEP(R, g)                                                                           \
    do {                                                                                        \
        __m512i b0 = _mm512_load_si512(b + (g) * 256), b1 = _mm512_load_si512(b + (g) * 256 + 64); \
        __m512i b2 = _mm512_load_si512(b + (g) * 256 + 128), b3 = _mm512_load_si512(b + (g) * 256 + 192); \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                   \
            __m512i ar = _mm512_set1_epi32(*(const i32u *)(a + r * lda + 4 * (g)));             \
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], ar, b0);                                 \
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], ar, b1);                                 \
            acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], ar, b2);                                 \
            acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], ar, b3);                                 \
        }                                                                                       \
    } while (0)

#define DEF_KERN_I8(R)                                                                          \
    static void kern_i8_##R(const void *a_, int64_t lda, const void *b_, int64_t kk, float *c,  \
                            int64_t ldc, const pi0_fast_i8_epilogue *e, int64_t ncols,          \
                            const char *pf, int64_t pf_n) {                                     \
        const uint8_t *a = a_;                                                                  \
        const int8_t *b = b_;                                                                   \
        __m512i acc[R][4];                                                                      \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                     \
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_si512(); \
        int64_t g = 0;                                                                          \
        for (; g < pf_n; g++) {                                                                 \
            _mm_prefetch(pf + 64 * g, PF_HINT);                                                 \
            I8_STEP(R, g);                                                                      \
        }                                                                                       \
        for (; g < kk; g++) I8_STEP(R, g);                                                      \
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                   \
            __mmask16 mk = pi0_mask16(ncols - 16 * v);                                          \
            __m512 sc = _mm512_maskz_loadu_ps(mk, e->scale + 16 * v);                           \
            __m512i ws = e->wsum ? _mm512_maskz_loadu_epi32(mk, e->wsum + 16 * v) : _mm512_setzero_si512(); \
            __m512 bb = e->bias ? _mm512_maskz_loadu_ps(mk, e->bias + 16 * v) : _mm512_setzero_ps(); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                               \
                __m512 o = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], ws)),     \
                                         _mm512_mul_ps(_mm512_set1_ps(e->step[r]), sc));        \
                if (e->loadc) o = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, c + r * ldc + 16 * v), o); \
                if (e->bias) o = _mm512_add_ps(o, bb);                                          \
                _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mk, o);                             \
            }                                                                                   \
        }                                                                                       \
    }

DEF_KERN_I8(1) DEF_KERN_I8(2) DEF_KERN_I8(3) DEF_KERN_I8(4) DEF_KERN_I8(5) DEF_KERN_I8(6)

/* Same lanes, order and bits as pi0_fast_i8_scan_generic: lane l sums x_i^2 of i = l mod 16. */
static void scan(const float *x, int64_t k, float thr, float lanes[16], uint32_t *maxbits, int64_t *count,
                 int32_t *idx, int64_t cap) {
    const __m512i absm = _mm512_set1_epi32(0x7fffffff);
    const __m512 t = _mm512_set1_ps(thr);
    __m512 acc = _mm512_setzero_ps();
    __m512i mb = _mm512_setzero_si512();
    int64_t cnt = 0;
    for (int64_t i = 0; i < k; i += 16) {
        __mmask16 valid = pi0_mask16(k - i);
        __m512i u = _mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(valid, x + i)), absm);
        __m512 a = _mm512_castsi512_ps(u);
        __mmask16 gt = _mm512_mask_cmp_ps_mask(valid, a, t, _CMP_GT_OQ), le = (__mmask16)(valid & ~gt);
        acc = _mm512_mask_add_ps(acc, le, acc, _mm512_mul_ps(a, a));
        mb = _mm512_mask_max_epu32(mb, le, mb, u);
        while (gt) {
            int l = __builtin_ctz(gt);
            if (cnt < cap) idx[cnt] = (int32_t)(i + l);
            cnt++;
            gt &= (__mmask16)(gt - 1);
        }
    }
    _mm512_storeu_ps(lanes, acc);
    *maxbits = (uint32_t)_mm512_reduce_max_epu32(mb);
    *count = cnt;
}

/* rows [0, mb) x inputs [k0, k0 + kc) to u8 = q + 128 (same bytes as the portable quantizer),
 * prefetching pf_lines lines of pf spread over the rows. */
static void quantize(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0, int64_t kc,
                     int64_t k, const pi0_fast_i8_row *rq, const char *pf, int64_t pf_lines) {
    const int64_t valid = k - k0 < kc ? k - k0 : kc;
    const int64_t pf_row = mb > 0 ? (pf_lines + mb - 1) / mb : 0;
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512i off = _mm512_set1_epi32(128);
    for (int64_t r = 0; r < mb; r++) {
        for (int64_t l = 0; l < pf_row && pf_lines > 0; l++, pf_lines--, pf += 64) _mm_prefetch(pf, PF_HINT);
        const float *src = a + r * lda + k0;
        uint8_t *d = (uint8_t *)dst + r * lds;
        const __m512 inv = _mm512_set1_ps(rq[r].inv);
        for (int64_t c = 0; c < kc; c += 16) {
            __mmask16 lm = pi0_mask16(valid - c), sm = pi0_mask16(kc - c);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, src + c), inv);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi); /* vmaxps(NaN, -127) = -127, as the portable one */
            __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), off);
            _mm_mask_storeu_epi8(d + c, sm, _mm512_cvtepi32_epi8(q));
        }
        for (int o = 0; o < rq[r].n_out; o++)
            if (rq[r].out[o] >= k0 && rq[r].out[o] < k0 + kc) d[rq[r].out[o] - k0] = 128;
    }
}

const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_vnni = {
    .mr = MR, .cols = 64, .kc = KC_I8, .mc = MC_I8, .a_elem = 1, .needs = PI0_CAP_AVX512VNNI,
    .scan = scan, .quantize = quantize,
    .kern_i8 = {0, kern_i8_1, kern_i8_2, kern_i8_3, kern_i8_4, kern_i8_5, kern_i8_6},
    .side = pi0_fast_i8_side_avx512};
