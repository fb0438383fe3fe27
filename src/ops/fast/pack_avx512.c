/* pack_avx512.c - AVX-512 (F+BW) version of pi0_fast_pack_f32_bf16 for attention's per-call K/V
 * packing (the scalar version costs ~5 ns per element, too slow for 18 layers x 10 steps).
 * Rounding is the same integer round-to-nearest-even as pi0_fast_f32_to_bf16 (NaN stays NaN), so
 * both versions produce identical bytes. Needs no AVX512_BF16.
 */
#include <immintrin.h>
#include <string.h>

#include "ops/fast/fast.h"

#define NR PI0_FAST_NR

/* 16 floats -> 16 bf16 in the low 16 bits of each dword. */
static inline __m512i rne16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    return _mm512_srli_epi32(r, 16);
}

static inline __mmask16 lm(int64_t left) {
    return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

void pi0_fast_pack_f32_bf16_avx512(pi0_fast_packed *p, void *data, const float *src, int64_t ld, int64_t n,
                                   int64_t k, int trans) {
    p->kind = PI0_WEIGHTS_BF16;
    p->n = n;
    p->k = k;
    p->kp = (k + 1) & ~(int64_t)1;
    p->n_panels = (n + NR - 1) / NR;
    p->data = data;
    const int64_t kp = p->kp, npairs = kp / 2;
    uint32_t *d = data; /* one dword = (col j, inputs 2q, 2q+1) */
    if (!trans) {
        /* row j of src holds the k inputs of output column j: pair q -> dword q*NR + jj. */
        const __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                  _mm512_set1_epi32(NR));
        for (int64_t pn = 0; pn < p->n_panels; pn++) {
            uint32_t *panel = d + pn * npairs * NR;
            for (int64_t jj = 0; jj < NR; jj++) {
                int64_t j = pn * NR + jj;
                for (int64_t q0 = 0; q0 < npairs; q0 += 16) {
                    int64_t i0 = 2 * q0;
                    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
                    if (j < n) {
                        /* 32 consecutive inputs: even ones in `lo`, odd ones in `hi` */
                        __m512 a = _mm512_maskz_loadu_ps(lm(k - i0), src + j * ld + i0);
                        __m512 b = _mm512_maskz_loadu_ps(lm(k - i0 - 16), src + j * ld + i0 + 16);
                        __m512i ra = rne16(a), rb = rne16(b);
                        /* dword t of (ra, rb) = input i0 + t; pair q = (2q, 2q+1) */
                        __m512i ev = _mm512_permutex2var_epi32(ra, _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0), rb);
                        __m512i od = _mm512_permutex2var_epi32(ra, _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1), rb);
                        lo = ev;
                        hi = od;
                    }
                    __m512i w = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
                    _mm512_mask_i32scatter_epi32(panel + q0 * NR + jj, lm(npairs - q0), stride, w, 4);
                }
            }
        }
    } else {
        /* src row i holds input i for all n columns: dword (q, jj) = src[2q][j] | src[2q+1][j] << 16 */
        for (int64_t pn = 0; pn < p->n_panels; pn++) {
            uint32_t *panel = d + pn * npairs * NR;
            for (int64_t q = 0; q < npairs; q++) {
                const float *r0 = src + 2 * q * ld, *r1 = r0 + ld;
                int has1 = 2 * q + 1 < k;
                for (int64_t c = 0; c < NR; c += 16) {
                    int64_t j0 = pn * NR + c;
                    __mmask16 m = lm(n - j0);
                    __m512i a = rne16(_mm512_maskz_loadu_ps(m, r0 + j0));
                    __m512i b = has1 ? rne16(_mm512_maskz_loadu_ps(m, r1 + j0)) : _mm512_setzero_si512();
                    a = _mm512_maskz_mov_epi32(m, a);
                    b = _mm512_maskz_mov_epi32(m, b);
                    _mm512_store_si512(panel + q * NR + c, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
                }
            }
        }
    }
}
