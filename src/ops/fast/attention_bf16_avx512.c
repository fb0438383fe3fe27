/* attention_bf16_avx512.c - AVX512_BF16 attention over the bf16 copy of the KV cache (contract and
 * copy layout in ops.h; dispatch in attention.c). The same blocked algorithm as the fp32 kernel
 * (attention_avx512.c: query (row, head) pairs of one KV head in blocks of 16·mv, two-pass softmax,
 * logits and weighted sum as register tiles), with every dot product a vdpbf16ps pair:
 *   logits  Sᵀ[j][p] = Σ_d K[j][d]·Q[p][d]: Qᵀ is stored as [hd/2][mb] pairs (Q[p][d], Q[p][d+1])
 *           in bf16 and K[j][d..d+1] (adjacent in a K row) is broadcast as one 32-bit value;
 *   output  Oᵀ[d][p] = Σ_j V[j][d]·P[j][p]: the weights are stored as [keys/2][mb] pairs
 *           (P[j][p], P[j+1][p]) in bf16 and (V[j][d], V[j+1][d]) is one 32-bit value of the copy's
 *           key-pair layout.
 * So q·scale, K, V and the softmax weights are rounded to bf16 (8 significant bits); products are
 * exact and accumulate in fp32, the softmax (max, exp, sum) is fp32. Half the bytes of K/V and
 * half the instructions of the fp32 kernel per multiply-add.
 * Keys come in two segments: [0, nkb) from the caller's copy, [nkb, nk) (the denoising step's own
 * rows, fp32 in the cache) rounded into this thread's scratch at the start of each call (51 rows x
 * 256 columns for π0: ~1 µs). Each segment's key count is padded to even with a zero weight, so
 * segments never share a pair. As in the fp32 kernel every output is computed by the same per-lane
 * sequence whatever the block, tile or thread split, so results do not depend on nth.
 */
#include <stdint.h>

#include "ops/fast/simd_avx512.h"

#define MASKED (-2.3819763e38f)
#define MB_MAX 64

typedef int32_t pair_t __attribute__((may_alias)); /* two bf16 values, 4-byte aligned */

/* idx for vpermw: interleave the low and high 16 bf16 of a vector (x0 y0 x1 y1 ...). */
static const uint16_t interleave_idx[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                            8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* (x[i], y[i]) as 16 bf16 pairs, x in the low half of each 32-bit lane. */
static inline __m512i pairs_bf16(__m512 x, __m512 y, __m512i il) {
    return _mm512_permutexvar_epi16(il, (__m512i)_mm512_cvtne2ps_pbh(y, x));
}

/* One block of query pairs against all keys of one KV head. */
typedef struct {
    const pi0_attention_args *a;
    const uint16_t *k[2], *v[2]; /* per segment, KV head g's first column: K rows, V key pairs */
    int64_t ld[2];               /* per segment: K row stride in elements (a V pair spans 2·ld) */
    int64_t n[2], j0[2], s0[2];  /* per segment: keys, first key index, first slot (even) */
    int hd, mv, mb;              /* head dim; pairs per block: mv vectors of 16 (mb = 16·mv) */
    int has_mask;
    __m512i qc[4];               /* per pair lane: qc of its row (0 without qc) */
    __mmask16 qok[4];            /* per pair lane: row valid (qpad) and lane < pairs in the block */
    pair_t *qt;                  /* [hd/2][mb] scaled queries, bf16 pairs along d */
    float *ot;                   /* [hd][mb] */
    float *st;                   /* [slots][mb] logits */
    pair_t *pt;                  /* [slots/2][mb] weights, bf16 pairs along keys */
    __m512 mx[4], l[4];          /* per pair lane: max logit, sum of weights */
} block;

/* Accumulators are named c<r><x> (see attention_avx512.c: GCC keeps arrays of them in memory). */
#define ROWS1(M, C) M(0, C)
#define ROWS4(M, C) M(0, C) M(1, C) M(2, C) M(3, C)
#define ROWS6(M, C) ROWS4(M, C) M(4, C) M(5, C)
#define ROWS8(M, C) ROWS6(M, C) M(6, C) M(7, C)
#define ROWS12(M, C) ROWS8(M, C) M(8, C) M(9, C) M(10, C) M(11, C)
#define COLS1(M, r) M(r, 0)
#define COLS2(M, r) COLS1(M, r) M(r, 1)
#define COLS3(M, r) COLS2(M, r) M(r, 2)
#define COLS4(M, r) COLS3(M, r) M(r, 3)
#define VECS1(M) M(0)
#define VECS2(M) VECS1(M) M(1)
#define VECS3(M) VECS2(M) M(2)
#define VECS4(M) VECS3(M) M(3)

#define ACC_ZERO(r, x) __m512 c##r##x = _mm512_setzero_ps();
#define ROW_ZERO(r, COLS) COLS(ACC_ZERO, r)
#define ACC_DP(r, x) c##r##x = _mm512_dpbf16_ps(c##r##x, (__m512bh)w##x, (__m512bh)bc);
#define LOAD_W(x) __m512i w##x = _mm512_load_si512(wp + 16 * (x));

/* ---- logits: Sᵀ of NR keys of one segment, masked, running max ------------------------------- */

static inline __attribute__((always_inline)) void logit_out(block *b, int64_t j, int64_t slot, int x, __m512 c) {
    const pi0_attention_args *a = b->a;
    if (b->has_mask) {
        int kok = a->kpad ? a->kpad[j] != 0 : 1;
        __m512i kc = _mm512_set1_epi32(a->kc ? a->kc[j] : 0);
        __mmask16 vis = kok ? _mm512_mask_cmple_epi32_mask(b->qok[x], kc, b->qc[x]) : 0;
        c = _mm512_mask_blend_ps(vis, _mm512_set1_ps(MASKED), c);
    }
    b->mx[x] = _mm512_max_ps(b->mx[x], c);
    _mm512_store_ps(b->st + slot * b->mb + 16 * x, c);
}

#define QK_ROW(r, COLS) { __m512i bc = _mm512_set1_epi32(*(const pair_t *)(k + (r) * ld + d)); COLS(ACC_DP, r) }
#define QK_OUT1(r, x) logit_out(b, b->j0[s] + i0 + (r), b->s0[s] + i0 + (r), x, c##r##x);
#define QK_OUT(r, COLS) COLS(QK_OUT1, r)
#define DEF_QK(MV, NR)                                                                        \
    static void qk_##MV##_##NR(block *b, int s, int64_t i0) {                               \
        const int64_t ld = b->ld[s];                                                        \
        const uint16_t *k = b->k[s] + i0 * ld;                                              \
        const pair_t *wp = b->qt;                                                           \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int d = 0; d < b->hd; d += 2, wp += 16 * MV) {                                 \
            VECS##MV(LOAD_W)                                                                \
            ROWS##NR(QK_ROW, COLS##MV)                                                      \
        }                                                                                   \
        ROWS##NR(QK_OUT, COLS##MV)                                                          \
    }

/* ---- weighted sum: Oᵀ[d0..d0+NR) over the key pairs of both segments ------------------------- */

#define PV_ROW(r, COLS) { __m512i bc = _mm512_set1_epi32(*(const pair_t *)(v + 2 * (r))); COLS(ACC_DP, r) }
#define PV_OUT1(r, x) _mm512_store_ps(ot + (r) * 16 * MVC + 16 * (x), c##r##x);
#define PV_OUT(r, COLS) COLS(PV_OUT1, r)
#define DEF_PV(MV, NR)                                                                        \
    static void pv_##MV##_##NR(block *b, int64_t d0) {                                      \
        enum { MVC = MV };                                                                  \
        const pair_t *wp = b->pt;                                                           \
        float *ot = b->ot + d0 * 16 * MV;                                                   \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int s = 0; s < 2; s++) {                                                       \
            const uint16_t *v = b->v[s] + 2 * d0;                                           \
            const int64_t np = (b->n[s] + 1) / 2, vs = 2 * b->ld[s];                        \
            for (int64_t i = 0; i < np; i++, v += vs, wp += 16 * MV) {                      \
                VECS##MV(LOAD_W)                                                            \
                ROWS##NR(PV_ROW, COLS##MV)                                                  \
            }                                                                               \
        }                                                                                   \
        ROWS##NR(PV_OUT, COLS##MV)                                                          \
    }

#define DEF_MV(MV, NR) DEF_QK(MV, NR) DEF_QK(MV, 4) DEF_QK(MV, 1) DEF_PV(MV, NR) DEF_PV(MV, 4) DEF_PV(MV, 1)
DEF_MV(1, 12)
DEF_MV(2, 12)
DEF_MV(3, 8)
DEF_MV(4, 6)

#define LOOP_QK(n, NR, f, s) do {                                    \
        int64_t r_ = 0;                                              \
        for (; r_ + NR <= (n); r_ += NR) f##_##NR(b, s, r_);         \
        for (; r_ + 4 <= (n); r_ += 4) f##_4(b, s, r_);              \
        for (; r_ < (n); r_++) f##_1(b, s, r_);                      \
    } while (0)
#define LOOP_PV(n, NR, f) do {                                       \
        int64_t r_ = 0;                                              \
        for (; r_ + NR <= (n); r_ += NR) f##_##NR(b, r_);            \
        for (; r_ + 4 <= (n); r_ += 4) f##_4(b, r_);                 \
        for (; r_ < (n); r_++) f##_1(b, r_);                         \
    } while (0)

static void logits(block *b) {
    for (int x = 0; x < b->mv; x++) b->mx[x] = _mm512_set1_ps(-__builtin_inff());
    for (int s = 0; s < 2; s++) {
        switch (b->mv) {
        case 1: LOOP_QK(b->n[s], 12, qk_1, s); break;
        case 2: LOOP_QK(b->n[s], 12, qk_2, s); break;
        case 3: LOOP_QK(b->n[s], 8, qk_3, s); break;
        default: LOOP_QK(b->n[s], 6, qk_4, s); break;
        }
    }
}

static void weighted_sum(block *b) {
    switch (b->mv) {
    case 1: LOOP_PV(b->hd, 12, pv_1); break;
    case 2: LOOP_PV(b->hd, 12, pv_2); break;
    case 3: LOOP_PV(b->hd, 8, pv_3); break;
    default: LOOP_PV(b->hd, 6, pv_4); break;
    }
}

/* ---- weights: P = exp(S - max) in bf16 key pairs, l = fp32 sums of the unrounded weights ------- */

static void weights(block *b) {
    const int mb = b->mb;
    const __m512i il = _mm512_loadu_si512(interleave_idx);
    for (int x = 0; x < b->mv; x++) {
        /* two partial sums (even, odd keys) halve the rounding growth of the nk-term sum */
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), m = b->mx[x];
        for (int s = 0; s < 2; s++) {
            const float *p = b->st + b->s0[s] * mb + 16 * x;
            pair_t *o = b->pt + b->s0[s] / 2 * mb + 16 * x;
            for (int64_t i = 0; i < b->n[s]; i += 2, p += 2 * mb, o += mb) {
                __m512 e0 = pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p), m));
                __m512 e1 = i + 1 < b->n[s] ? pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p + mb), m)) : _mm512_setzero_ps();
                s0 = _mm512_add_ps(s0, e0);
                s1 = _mm512_add_ps(s1, e1);
                _mm512_store_si512(o, pairs_bf16(e0, e1, il));
            }
        }
        b->l[x] = _mm512_add_ps(s0, s1);
    }
}

/* ---- driver ------------------------------------------------------------------------------------ */

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Scratch pieces in bytes (each a multiple of 64), for nk keys of which tail come from fp32. */
typedef struct { size_t qt, ot, st, pt, tk, tv; } pieces;
static pieces sizes(const pi0_attention_args *a, int64_t tail) {
    size_t hd = (size_t)a->hd, kv = (size_t)a->n_kv * hd, slots = (size_t)a->nk + 2;
    pieces z = {up64(MB_MAX * hd * 2), up64(MB_MAX * hd * 4), up64(MB_MAX * slots * 4), up64(MB_MAX * slots * 2),
                up64((size_t)tail * kv * 2), up64(((size_t)tail + 1) / 2 * 2 * kv * 2)};
    return z;
}

static int64_t n_copy(const pi0_attention_args *a) { return a->kb ? (a->nkb < a->nk ? a->nkb : a->nk) : 0; }

size_t pi0_fast_attention_bf16_avx512_scratch(const pi0_attention_args *a) {
    pieces z = sizes(a, a->nk - n_copy(a));
    return z.qt + z.ot + z.st + z.pt + z.tk + z.tv + 64;
}

int pi0_fast_attention_bf16_avx512_ok(const pi0_attention_args *a) {
    /* 32-bit pair loads: even head dim and row stride, 4-byte aligned copies; query offsets inside
     * one block are gathered with int32 indices */
    return a->hd % 2 == 0 && a->ldk % 2 == 0 && ((uintptr_t)a->kb | (uintptr_t)a->vb) % 4 == 0 &&
           (int64_t)(MB_MAX + 1) * a->ldq + (int64_t)a->n_heads * a->hd < INT32_MAX;
}

/* Keys [j0, j0 + nt) of a->k/v (fp32) into this thread's bf16 copy: K rows of kv, V key pairs. */
static void round_tail(const pi0_attention_args *a, int64_t j0, int64_t nt, int64_t kv, uint16_t *tk, uint16_t *tv) {
    const __m512i il = _mm512_loadu_si512(interleave_idx);
    for (int64_t i = 0; i < nt; i += 2) {
        const float *k0 = a->k + (j0 + i) * a->ldk, *v0 = a->v + (j0 + i) * a->ldk;
        int two = i + 1 < nt;
        for (int64_t c = 0; c < kv; c += 16) {
            __mmask16 m = pi0_mask16(kv - c);
            __m512 ka = _mm512_maskz_loadu_ps(m, k0 + c), va = _mm512_maskz_loadu_ps(m, v0 + c), vb = _mm512_setzero_ps();
            _mm256_mask_storeu_epi16(tk + i * kv + c, m, (__m256i)_mm512_cvtneps_pbh(ka));
            if (two) {
                __m512 kb = _mm512_maskz_loadu_ps(m, k0 + a->ldk + c);
                _mm256_mask_storeu_epi16(tk + (i + 1) * kv + c, m, (__m256i)_mm512_cvtneps_pbh(kb));
                vb = _mm512_maskz_loadu_ps(m, v0 + a->ldk + c);
            }
            _mm512_mask_storeu_epi32(tv + i * kv + 2 * c, m, pairs_bf16(va, vb, il));
        }
    }
}

/* Scaled queries of pairs [P0, P0 + np) as bf16 pairs along d (lanes past np zero), and the
 * per-lane mask inputs. */
static void load_queries(block *b, int64_t P0, int np, int G, int g) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb;
    const int64_t i0 = P0 / G;
    const float *base = a->q + i0 * a->ldq;
    int32_t off[MB_MAX], qcl[MB_MAX];
    uint64_t ok = 0;
    for (int p = 0; p < mb; p++) {
        off[p] = qcl[p] = 0;
        if (p >= np) continue;
        int64_t i = (P0 + p) / G;
        int h = g * G + (int)((P0 + p) % G);
        off[p] = (int32_t)((i - i0) * a->ldq + (int64_t)h * hd);
        qcl[p] = a->qc ? a->qc[i] : 0;
        if (!a->qpad || a->qpad[i]) ok |= 1ull << p;
    }
    const __m512 sc = _mm512_set1_ps(a->scale);
    const __m512i il = _mm512_loadu_si512(interleave_idx);
    for (int x = 0; x < b->mv; x++) {
        b->qc[x] = _mm512_loadu_si512(qcl + 16 * x);
        b->qok[x] = (__mmask16)(ok >> (16 * x));
        __m512i idx = _mm512_loadu_si512(off + 16 * x);
        __mmask16 m = pi0_mask16(np - 16 * x);
        pair_t *qt = b->qt + 16 * x;
        for (int d = 0; d < hd; d += 2, qt += mb) {
            __m512 q0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + d, 4);
            __m512 q1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + d + 1, 4);
            _mm512_store_si512(qt, pairs_bf16(_mm512_mul_ps(q0, sc), _mm512_mul_ps(q1, sc), il));
        }
    }
}

/* out[p][d] = Oᵀ[d][p] / l[p] for the np pairs of the block. */
static void store_out(const block *b, int64_t P0, int np, int G, int g) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb;
    const __m512i didx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(mb));
    for (int p = 0; p < np; p++) {
        int64_t i = (P0 + p) / G;
        int h = g * G + (int)((P0 + p) % G);
        float *out = a->out + i * a->ldo + (int64_t)h * hd;
        __m512 l = _mm512_set1_ps(b->l[p >> 4][p & 15]);
        for (int d = 0; d < hd; d += 16) {
            __mmask16 m = pi0_mask16(hd - d);
            __m512 o = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, didx, b->ot + (int64_t)d * mb + p, 4);
            _mm512_mask_storeu_ps(out + d, m, _mm512_div_ps(o, l));
        }
    }
}

void pi0_fast_attention_bf16_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    const int G = a->n_heads / a->n_kv;
    const int64_t nkb = n_copy(a), nt = a->nk - nkb, kv = (int64_t)a->n_kv * a->hd;
    pieces z = sizes(a, nt);
    char *p = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    block b = {.a = a, .hd = a->hd};
    b.has_mask = a->qc || a->kc || a->qpad || a->kpad;
    b.qt = (pair_t *)p;
    b.ot = (float *)(p += z.qt);
    b.st = (float *)(p += z.ot);
    b.pt = (pair_t *)(p += z.st);
    uint16_t *tk = (uint16_t *)(p += z.pt), *tv = (uint16_t *)(p += z.tk);
    round_tail(a, nkb, nt, kv, tk, tv);
    b.n[0] = nkb, b.j0[0] = 0, b.s0[0] = 0, b.ld[0] = a->ldk;
    b.n[1] = nt, b.j0[1] = nkb, b.s0[1] = (nkb + 1) & ~(int64_t)1, b.ld[1] = kv;
    /* pair P in [q0·G, q1·G) is (row P / G, head g·G + P % G); blocks as in attention_avx512.c */
    const int64_t n_pairs = (q1 - q0) * G, n_vec = (n_pairs + 15) / 16, n_blocks = (n_vec + 3) / 4;
    for (int g = 0; g < a->n_kv; g++) {
        b.k[0] = a->kb + (int64_t)g * b.hd;
        b.v[0] = a->vb + 2 * (int64_t)g * b.hd;
        b.k[1] = tk + (int64_t)g * b.hd;
        b.v[1] = tv + 2 * (int64_t)g * b.hd;
        int64_t P0 = q0 * G;
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            b.mv = (int)(n_vec / n_blocks + (blk < n_vec % n_blocks));
            b.mb = 16 * b.mv;
            int np = q1 * G - P0 < b.mb ? (int)(q1 * G - P0) : b.mb;
            load_queries(&b, P0, np, G, g);
            logits(&b);
            weights(&b);
            weighted_sum(&b);
            store_out(&b, P0, np, G, g);
            P0 += np;
        }
    }
}
