/* pack_avx512.c - AVX-512 (F, BW) load-time weight packing into the panel layout of fast.h.
 *
 * Both packed kinds are 32-bit transposes: in the bf16 kind, dword (pair q, column j) of a panel is
 * inputs (2q, 2q+1) of weight row j, which is dword q of row j when the row is stored as bf16; in
 * the f32 kind it is float i of row j. So each panel is built from 16x16 dword tiles: 16 weight rows
 * x 16 source dwords are loaded (with the dtype conversion folded into the load), transposed in
 * registers (3 shuffle stages) and written as 16 full 64-byte lines with streaming stores (the
 * packed copy is not read again during load, so it should not evict the source from the caches).
 * Conversions give the same bytes as the portable packer in pack.c: f32 -> bf16 is the integer
 * round-to-nearest-even of pi0_fast_f32_to_bf16 (NaN stays NaN), bf16 -> f32 a shift. F16 sources
 * are left to pack.c (returns 0). The int8 kind: rows quantized as pack.c does (same bits), then
 * the same transpose of 4-byte groups (fill_int8). Pure function of its arguments: safe to call
 * from several threads at once on different weights.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/fast/simd_avx512.h"

#define NR PI0_FAST_NR

static inline __mmask16 m16(int64_t left) {
    return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}
static inline __mmask32 m32(int64_t left) {
    return left >= 32 ? 0xffffffffu : left <= 0 ? 0 : (__mmask32)((1u << left) - 1);
}

/* 16 floats -> 16 bf16 in the low 16 bits of each dword (round to nearest even, NaN stays NaN). */
static inline __m512i rne16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    return _mm512_srli_epi32(r, 16);
}

enum { BF16_TO_BF16, F32_TO_BF16, F32_TO_F32, BF16_TO_F32 };

/* Dwords [r0, r0 + 16) of packed row j (r counts pairs for the bf16 kind, inputs for f32), zero
 * past k. `row` points at the start of weight row j in its stored dtype. */
static inline __attribute__((always_inline)) __m512i load_row(const void *row, int mode, int64_t r0, int64_t k) {
    switch (mode) {
    case BF16_TO_BF16: /* 32 bf16 = 16 pairs; an odd k leaves the last pair's high half zero */
        return _mm512_maskz_loadu_epi16(m32(k - 2 * r0), (const uint16_t *)row + 2 * r0);
    case F32_TO_BF16: {
        const float *f = (const float *)row + 2 * r0;
        __m512i a = rne16(_mm512_maskz_loadu_ps(m16(k - 2 * r0), f));
        __m512i b = rne16(_mm512_maskz_loadu_ps(m16(k - 2 * r0 - 16), f + 16));
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
    }
    case F32_TO_F32:
        return _mm512_castps_si512(_mm512_maskz_loadu_ps(m16(k - r0), (const float *)row + r0));
    default: /* BF16_TO_F32 */
        return _mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m16(k - r0), (const uint16_t *)row + r0)), 16);
    }
}

/* In-register transpose of 16 vectors of 16 dwords: r[i] lane t -> r[t] lane i. */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* now r[4a + b] holds, in each 128-bit lane L, rows 4L'..: column group b of rows 4a..4a+3 */
    for (int i = 0; i < 4; i++) {
        __m512i x0 = r[i], x1 = r[4 + i], x2 = r[8 + i], x3 = r[12 + i];
        __m512i y0 = _mm512_shuffle_i32x4(x0, x1, 0x88), y1 = _mm512_shuffle_i32x4(x0, x1, 0xdd);
        __m512i y2 = _mm512_shuffle_i32x4(x2, x3, 0x88), y3 = _mm512_shuffle_i32x4(x2, x3, 0xdd);
        t[i] = _mm512_shuffle_i32x4(y0, y2, 0x88);
        t[8 + i] = _mm512_shuffle_i32x4(y0, y2, 0xdd);
        t[4 + i] = _mm512_shuffle_i32x4(y1, y3, 0x88);
        t[12 + i] = _mm512_shuffle_i32x4(y1, y3, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

static inline __attribute__((always_inline)) void fill(const pi0_fast_packed *p, const void *data, int mode) {
    const int64_t n = p->n, k = p->k, R = p->kind == PI0_WEIGHTS_F32 ? k : p->kp / 2; /* dword rows per panel */
    const size_t es = mode == F32_TO_BF16 || mode == F32_TO_F32 ? 4 : 2;
    uint32_t *d = p->data;
    for (int64_t pn = 0; pn < p->n_panels; pn++) {
        uint32_t *panel = d + pn * R * NR;
        for (int64_t r0 = 0; r0 < R; r0 += 16) {
            for (int c = 0; c < NR; c += 16) {
                __m512i v[16];
                for (int t = 0; t < 16; t++) {
                    int64_t j = pn * NR + c + t;
                    v[t] = j < n ? load_row((const char *)data + (size_t)j * (size_t)k * es, mode, r0, k)
                                 : _mm512_setzero_si512();
                }
                transpose16(v);
                int64_t rows = R - r0 < 16 ? R - r0 : 16;
                for (int t = 0; t < rows; t++) _mm512_stream_si512((__m512i *)(panel + (r0 + t) * NR + c), v[t]);
            }
        }
    }
    _mm_sfence(); /* streaming stores are weakly ordered: make them visible before the weight is used */
}

/* 16 inputs [i, i + 16) of a weight row in its dtype (F32 or BF16) as floats, zero past k. */
static inline __m512 load16(const void *row, int bf16, int64_t i, int64_t k) {
    if (bf16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m16(k - i), (const uint16_t *)row + i)), 16));
    return _mm512_maskz_loadu_ps(m16(k - i), (const float *)row + i);
}

/* One weight row to int8 as pack.c's fill_int8 does it (same bits): max |w| (a NaN or infinity:
 * scale NaN, q 0), q = nearest-even(clamp(w * (127 / max))), zero to kpr; returns sum q. */
static int32_t quant_row(const void *row, int bf16, int64_t k, int64_t kpr, int8_t *out, float *scale) {
    __m512i mb = _mm512_setzero_si512();
    const __m512i absm = _mm512_set1_epi32(0x7fffffff);
    for (int64_t i = 0; i < k; i += 16)
        mb = _mm512_max_epu32(mb, _mm512_and_si512(_mm512_castps_si512(load16(row, bf16, i, k)), absm));
    uint32_t bits = (uint32_t)_mm512_reduce_max_epu32(mb);
    int finite = bits < 0x7f800000u;
    float amax;
    memcpy(&amax, &bits, sizeof amax);
    const __m512 inv = _mm512_set1_ps(finite && amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t i = 0; i < kpr; i += 16) {
        __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(load16(row, bf16, i, k), inv), lo), hi);
        __m512i q = finite ? _mm512_cvtps_epi32(v) : _mm512_setzero_si512();
        sum = _mm512_add_epi32(sum, q);
        _mm_store_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(q));
    }
    *scale = finite ? amax / 127.0f : NAN;
    return _mm512_reduce_add_epi32(sum);
}

/* int8 kind: a panel's 64 rows are quantized into a row-major scratch [64][kpr] (kpr = kp rounded
 * up to 64, so every 16-dword load stays inside), then written as dword (group g, column j) =
 * inputs 4g..4g+3 of row j with the 16x16 dword transpose. Returns 0 (portable filler) for F16 or
 * without memory for the scratch. */
static int fill_int8(const pi0_fast_packed *p, const void *data, pi0_dtype dt) {
    if (dt != PI0_DT_F32 && dt != PI0_DT_BF16) return 0;
    const int64_t n = p->n, k = p->k, R = p->kp / 4, kpr = (p->kp + 63) & ~(int64_t)63;
    const size_t es = dt == PI0_DT_F32 ? 4 : 2;
    int8_t *tmp = aligned_alloc(64, (size_t)(NR * kpr));
    if (!tmp) return 0;
    uint32_t *d = p->data;
    for (int64_t pn = 0; pn < p->n_panels; pn++) {
        for (int64_t jj = 0; jj < NR; jj++) {
            int64_t j = pn * NR + jj;
            int8_t *row = tmp + jj * kpr;
            if (j >= n) {
                memset(row, 0, (size_t)kpr);
                p->scale[j] = 0.0f;
                p->wsum[j] = 0;
                continue;
            }
            p->wsum[j] = 128 * quant_row((const char *)data + (size_t)j * (size_t)k * es, dt == PI0_DT_BF16, k, kpr,
                                         row, &p->scale[j]);
        }
        uint32_t *panel = d + pn * R * NR;
        for (int64_t r0 = 0; r0 < R; r0 += 16)
            for (int c = 0; c < NR; c += 16) {
                __m512i v[16];
                for (int t = 0; t < 16; t++) v[t] = _mm512_load_si512((const void *)(tmp + (c + t) * kpr + 4 * r0));
                transpose16(v);
                int64_t rows = R - r0 < 16 ? R - r0 : 16;
                for (int t = 0; t < rows; t++) _mm512_stream_si512((__m512i *)(panel + (r0 + t) * NR + c), v[t]);
            }
    }
    _mm_sfence();
    free(tmp);
    return 1;
}

int pi0_fast_pack_fill_avx512(const pi0_fast_packed *p, const void *data, pi0_dtype dt) {
    int bf = p->kind == PI0_WEIGHTS_BF16;
    if (p->kind == PI0_WEIGHTS_INT8) return fill_int8(p, data, dt);
    if (dt == PI0_DT_BF16) fill(p, data, bf ? BF16_TO_BF16 : BF16_TO_F32);
    else if (dt == PI0_DT_F32) fill(p, data, bf ? F32_TO_BF16 : F32_TO_F32);
    else return 0;
    return 1;
}
