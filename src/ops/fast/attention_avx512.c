/* attention_avx512.c - the AVX-512 attention kernels of the fast backend (contract and bf16 copy
 * layout in ops.h; dispatch, portable kernels and work split in attention.c): fp32 (AVX-512F FMA
 * over the caller's fp32 K/V, read in place) and bf16 (AVX512_BF16 vdpbf16ps over the bf16 KV copy).
 * One blocked algorithm; what varies is the element a 32-bit "word" of the operands holds: one fp32
 * value (E = 1), or a bf16 pair (E = 2: two adjacent values of a K row or of Qᵀ along d, or two
 * adjacent keys of V and of the weights), so every dot-product instruction does E multiply-adds per
 * lane.
 *
 * Query (row, head) pairs that share one KV head g (the n_heads/n_kv heads of a group, for every row
 * of this thread) form a [pairs, hd] query matrix, processed in blocks of mb = 16·mv pairs (mv <= 4;
 * a thread's vectors of 16 pairs are dealt into the fewest blocks as evenly as possible, e.g. 13 ->
 * 4+3+3+3, so at most the last vector is partly empty):
 *   1. Qᵀ = scale · Q_blockᵀ as [hd/E][mb] words: rows loaded contiguously, 16x16 register transposes
 *      (E = 2: rounded to bf16 pairs (Q[p][d], Q[p][d+1]) before the transpose).
 *   2. Sᵀ[j][p] = K[j] · Qᵀ[:, p]  [keys][mb] fp32, register tiles of NR keys x mv vectors: each K
 *      word is broadcast from memory into one instruction per 16 pairs, so all heads of the group
 *      share every K load (MQA). The epilogue applies the mask (masked logit := -2.3819763e38 as
 *      openpi) and keeps the running per-pair maximum.
 *   3. P = exp(Sᵀ - max), l[p] = Σ_j P[j][p] in fp32 over the unrounded weights (exact two-pass
 *      softmax); P written over Sᵀ as words (E = 2: pairs (P[j][p], P[j+1][p]) in bf16).
 *   4. Oᵀ[d][p] = Σ_j V[j][d] · P[j][p]  [hd][mb], tiles of NR dims x mv vectors over all keys, the
 *      mirror image of step 2: each V word (fp32 V[j][d], or the copy's key pair (V[j][d], V[j+1][d]))
 *      is broadcast once per block, the accumulators stay in registers for the whole key range, and
 *      no V rows need to stay cached. (A tile that re-reads V rows from L1 loses ~25% when ldk is 256
 *      floats: rows 1 KB apart share 4 of the 64 L1 sets.)
 *   5. out[p][d] = Oᵀ[d][p] · (1 / l[p]) by 16x16 transposes, written once per element.
 * Keys come in two segments, each padded to an even count with a zero weight so segments never share
 * a pair: fp32, the caller's K/V [0, nk) and an empty second one; bf16, keys [0, nkb) from the
 * caller's copy and [nkb, nk) (the denoising step's own rows, or every key when the caller allows
 * rounding without a copy: SigLIP) rounded from fp32 into this thread's scratch per KV head per call
 * (51 rows x 256 columns for π0: ~1 µs). bf16 rounds q·scale, K, V and the weights (8 significant
 * bits); products are exact and accumulate in fp32, the softmax (max, exp, sum) is fp32.
 * Every output value is computed by the same per-lane instruction sequence whatever block, tile or
 * thread it falls in (lanes never mix; sums over d, j run in a fixed order), so results do not depend
 * on how rows are split among threads.
 */
#include <stdint.h>

#include "ops/fast/simd_avx512.h"

#define MASKED (-2.3819763e38f)
#define MB_MAX 64 /* pairs per block: Qᵀ of hd = 256 is 64 KB fp32 (L2), Sᵀ of 867 keys 220 KB */

#define INLINE static inline __attribute__((always_inline))

typedef float word_t __attribute__((may_alias)); /* one 32-bit operand word: fp32, or two bf16 */

/* One block of query pairs against all keys of one KV head. */
typedef struct {
    const pi0_attention_args *a;
    const void *k[2], *v[2];    /* per segment, KV head g's first column: K rows, V rows (E = 2: key pairs) */
    int64_t ld[2];              /* per segment: K row stride in elements (a V word row spans E·ld) */
    int64_t n[2], j0[2], s0[2]; /* per segment: keys, first key index, first slot (even) */
    int hd, mv, mb;             /* head dim; pairs per block: mv vectors of 16 (mb = 16·mv) */
    int has_mask;
    __m512i qc[4];              /* per pair lane: qc of its row (0 without qc) */
    __mmask16 qok[4];           /* per pair lane: row valid (qpad) and lane < pairs in the block */
    float *qt;                  /* [hd/E rounded up to 16][mb] words: scaled queries */
    float *ot;                  /* [hd][mb] */
    float *st;                  /* [slots][mb] logits, then the weights as [slots/E][mb] words */
    __m512 mx[4], l[4];         /* per pair lane: max logit, sum of weights */
} block;

/* The micro-kernels name every accumulator c<r><x> (row r of the tile, pair vector x) through
 * macros, because GCC keeps arrays of __m512 accumulators in memory (a load and a store per FMA).
 * ROWSn(M, C) expands M(r, C) for r < n; COLSn(M, r) expands M(r, x) for x < n; VECSn(M) M(x). */
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

/* Per element kind T (f32, or bf16 pairs): element type, elements per word, the dot product. */
#define ELEM_f32 float
#define ELEM_bf16 uint16_t
#define E_f32 1
#define E_bf16 2
#define DOT_f32(c, w, bc) _mm512_fmadd_ps(bc, w, c)
#define DOT_bf16(c, w, bc) _mm512_dpbf16_ps(c, (__m512bh)(w), (__m512bh)(bc))

#define ACC_ZERO(r, x) __m512 c##r##x = _mm512_setzero_ps();
#define ROW_ZERO(r, COLS) COLS(ACC_ZERO, r)
#define LOAD_W(x) __m512 w##x = _mm512_load_ps(wp + 16 * (x));

/* ---- 2. logits: Sᵀ of NR keys of one segment, masked, running max ------------------------------ */

/* Epilogue of key j (scratch slot `slot`): mask, running max, store 16 lanes of pair vector x. */
INLINE void logit_out(block *b, int64_t j, int64_t slot, int x, __m512 c) {
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

#define QK_FMA(r, x) c##r##x = DOT(c##r##x, w##x, bc);
#define QK_ROW(r, COLS) { __m512 bc = _mm512_set1_ps(*(const word_t *)(k + (r) * ld + d)); COLS(QK_FMA, r) }
#define QK_OUT1(r, x) logit_out(b, b->j0[s] + i0 + (r), b->s0[s] + i0 + (r), x, c##r##x);
#define QK_OUT(r, COLS) COLS(QK_OUT1, r)
/* Keys [i0, i0 + NR) of segment s x MV pair vectors: per word of d, MV loads of Qᵀ and NR broadcasts
 * of a K word. */
#define DEF_QK(T, MV, NR)                                                                     \
    static void qk_##T##_##MV##_##NR(block *b, int s, int64_t i0) {                         \
        enum { E = E_##T };                                                                 \
        const int64_t ld = b->ld[s];                                                        \
        const ELEM_##T *k = (const ELEM_##T *)b->k[s] + i0 * ld;                            \
        const float *wp = b->qt;                                                            \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int d = 0; d < b->hd; d += E, wp += 16 * MV) {                                 \
            VECS##MV(LOAD_W)                                                                \
            ROWS##NR(QK_ROW, COLS##MV)                                                      \
        }                                                                                   \
        ROWS##NR(QK_OUT, COLS##MV)                                                          \
    }

/* ---- 4. weighted sum: Oᵀ[d0..d0+NR) over the keys of both segments ----------------------------- */

#define PV_ROW(r, COLS) { __m512 bc = _mm512_set1_ps(*(const word_t *)(v + E * (r))); COLS(QK_FMA, r) }
#define PV_OUT1(r, x) _mm512_store_ps(ot + (r) * 16 * MVC + 16 * (x), c##r##x);
#define PV_OUT(r, COLS) COLS(PV_OUT1, r)
/* Dims [d0, d0 + NR) x MV pair vectors: per word of keys, MV loads of the weights and NR broadcasts
 * of a V word. */
#define DEF_PV(T, MV, NR)                                                                     \
    static void pv_##T##_##MV##_##NR(block *b, int64_t d0) {                                \
        enum { E = E_##T, MVC = MV };                                                             \
        const float *wp = b->st;                                                            \
        float *ot = b->ot + d0 * 16 * MV;                                                   \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int s = 0; s < 2; s++) {                                                       \
            const ELEM_##T *v = (const ELEM_##T *)b->v[s] + E * d0;                         \
            const int64_t nw = (b->n[s] + E - 1) / E, vs = E * b->ld[s];                    \
            for (int64_t i = 0; i < nw; i++, v += vs, wp += 16 * MV) {                      \
                VECS##MV(LOAD_W)                                                            \
                ROWS##NR(PV_ROW, COLS##MV)                                                  \
            }                                                                               \
        }                                                                                   \
        ROWS##NR(PV_OUT, COLS##MV)                                                          \
    }

/* Tiles of about 24 accumulators (MV·NR), tails of 4 and 1 rows, per element kind. */
#define DEF_MV(T, MV, NR) DEF_QK(T, MV, NR) DEF_QK(T, MV, 4) DEF_QK(T, MV, 1) \
                          DEF_PV(T, MV, NR) DEF_PV(T, MV, 4) DEF_PV(T, MV, 1)
#define DEF_KIND(T) DEF_MV(T, 1, 12) DEF_MV(T, 2, 12) DEF_MV(T, 3, 8) DEF_MV(T, 4, 6)
#define DOT DOT_f32
DEF_KIND(f32)
#undef DOT
#define DOT DOT_bf16
DEF_KIND(bf16)
#undef DOT

#define LOOP3(n, NR, f, ...) do {                                           \
        int64_t r_ = 0;                                                     \
        for (; r_ + NR <= (n); r_ += NR) f##_##NR(b, __VA_ARGS__ r_);       \
        for (; r_ + 4 <= (n); r_ += 4) f##_4(b, __VA_ARGS__ r_);            \
        for (; r_ < (n); r_++) f##_1(b, __VA_ARGS__ r_);                    \
    } while (0)

/* Per mv, the tile kernels of kind T over n rows (keys of segment s, or dims). */
#define BY_MV(T, n, what, ...) switch (b->mv) {                                   \
    case 1: LOOP3(n, 12, what##_##T##_1, __VA_ARGS__); break;                   \
    case 2: LOOP3(n, 12, what##_##T##_2, __VA_ARGS__); break;                   \
    case 3: LOOP3(n, 8, what##_##T##_3, __VA_ARGS__); break;                    \
    default: LOOP3(n, 6, what##_##T##_4, __VA_ARGS__); break;                   \
    }

INLINE void logits(block *b, const int bf) {
    for (int x = 0; x < b->mv; x++) b->mx[x] = _mm512_set1_ps(-__builtin_inff());
    for (int s = 0; s < 2; s++) {
        if (bf) BY_MV(bf16, b->n[s], qk, s,)
        else BY_MV(f32, b->n[s], qk, s,)
    }
}

INLINE void weighted_sum(block *b, const int bf) {
    if (bf) BY_MV(bf16, b->hd, pv, )
    else BY_MV(f32, b->hd, pv, )
}

/* ---- 3. weights: P = exp(S - max) as words over S, l = fp32 sums of the unrounded weights ------ */

/* idx for vpermw: interleave the low and high 16 bf16 of a vector (x0 y0 x1 y1 ...). */
static const uint16_t interleave_idx[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                            8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* (x[i], y[i]) as 16 bf16 pairs, x in the low half of each 32-bit lane. */
INLINE __m512i pairs_bf16(__m512 x, __m512 y, __m512i il) {
    return _mm512_permutexvar_epi16(il, (__m512i)_mm512_cvtne2ps_pbh(y, x));
}

/* In place: word row i of a segment (slot s0/E + i) is written after slots s0 + E·i .. E·i + E - 1
 * of the same lanes were read, and s0/E + i <= s0 + E·i, so no logit is overwritten before use. */
INLINE void weights(block *b, const int bf) {
    const int mb = b->mb, E = bf ? 2 : 1;
    const __m512i il = _mm512_loadu_si512(interleave_idx);
    for (int x = 0; x < b->mv; x++) {
        /* two partial sums (even, odd keys) halve the rounding growth of the nk-term sum */
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), m = b->mx[x];
        for (int s = 0; s < 2; s++) {
            const float *p = b->st + b->s0[s] * mb + 16 * x;
            float *o = b->st + b->s0[s] / E * mb + 16 * x;
            const int64_t n = b->n[s];
            for (int64_t i = 0; i < n; i += 2, p += 2 * mb, o += 2 / E * mb) {
                __m512 e0 = pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p), m));
                __m512 e1 = i + 1 < n ? pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p + mb), m)) : _mm512_setzero_ps();
                s0 = _mm512_add_ps(s0, e0);
                s1 = _mm512_add_ps(s1, e1);
                if (bf) {
                    _mm512_store_si512(o, pairs_bf16(e0, e1, il));
                } else {
                    _mm512_store_ps(o, e0);
                    if (i + 1 < n) _mm512_store_ps(o + mb, e1);
                }
            }
        }
        b->l[x] = _mm512_add_ps(s0, s1);
    }
}

/* ---- 1, 5: queries in, outputs out, through 16x16 transposes ----------------------------------- */

/* r[i][c] -> r[c][i] for 16 vectors of 16 32-bit values: pairs of rows interleaved (unpack), then
 * 4x4 blocks inside each 128-bit lane (shuffle), then the 128-bit lanes across vectors. */
INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i + c], 128-bit lane k: rows 4i..4i+3 of column 4k + c */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        __m512 u2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88), u3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
        t[c] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(u0, u2, 0xdd);
        t[4 + c] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(u1, u3, 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* 1. Qᵀ of pairs [P0, P0 + np) (scaled; lanes past np are zero) and the per-lane mask inputs. */
INLINE void load_queries(block *b, int64_t P0, int np, int G, int g, const int bf) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb, E = bf ? 2 : 1, nw = (hd + E - 1) / E;
    const __m512 sc = _mm512_set1_ps(a->scale);
    for (int x = 0; x < b->mv; x++) {
        const float *row[16];
        int32_t qcl[16];
        unsigned ok = 0;
        for (int i = 0; i < 16; i++) {
            int64_t P = P0 + 16 * x + i, r = P / G;
            row[i] = NULL, qcl[i] = 0;
            if (16 * x + i >= np) continue;
            row[i] = a->q + r * a->ldq + (int64_t)(g * G + (int)(P % G)) * hd;
            qcl[i] = a->qc ? a->qc[r] : 0;
            if (!a->qpad || a->qpad[r]) ok |= 1u << i;
        }
        b->qc[x] = _mm512_loadu_si512(qcl);
        b->qok[x] = (__mmask16)ok;
        for (int w0 = 0; w0 < nw; w0 += 16) {
            __m512 r[16];
            int d0 = E * w0;
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) {
                if (!row[i]) { r[i] = _mm512_setzero_ps(); continue; }
                __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(pi0_mask16(hd - d0), row[i] + d0), sc);
                if (bf) {
                    __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(pi0_mask16(hd - d0 - 16), row[i] + d0 + 16), sc);
                    lo = (__m512)_mm512_cvtne2ps_pbh(hi, lo); /* word w: (q[2w], q[2w + 1]) */
                }
                r[i] = lo;
            }
            transpose16(r);
#pragma GCC unroll 16
            for (int w = 0; w < 16; w++) _mm512_store_ps(b->qt + (int64_t)(w0 + w) * mb + 16 * x, r[w]);
        }
    }
}

/* 5. out[p][d] = Oᵀ[d][p] · (1 / l[p]) for the np pairs of the block. */
INLINE void store_out(const block *b, int64_t P0, int np, int G, int g) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb;
    for (int x = 0; x < b->mv; x++) {
        /* one division per pair, then products: hd divisions per pair cost as much as SigLIP's
         * (hd 72) logits */
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), b->l[x]);
        float *out[16];
        for (int i = 0; i < 16; i++) {
            int64_t P = P0 + 16 * x + i;
            out[i] = 16 * x + i < np ? a->out + P / G * a->ldo + (int64_t)(g * G + (int)(P % G)) * hd : NULL;
        }
        for (int d0 = 0; d0 < hd; d0 += 16) {
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = d0 + i < hd ? _mm512_mul_ps(_mm512_load_ps(b->ot + (int64_t)(d0 + i) * mb + 16 * x), inv)
                                   : _mm512_setzero_ps();
            transpose16(r);
            __mmask16 m = pi0_mask16(hd - d0);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                if (out[i]) _mm512_mask_storeu_ps(out[i] + d0, m, r[i]);
        }
    }
}

/* ---- bf16: the keys outside the copy, rounded per call ------------------------------------------ */

/* Keys [j0, j0 + nt), columns [c0, c0 + hd) of a->k/v (fp32) into this thread's copy: K rows of hd,
 * V key pairs (a trailing odd key paired with 0). */
static void round_keys(const pi0_attention_args *a, int64_t j0, int64_t nt, int64_t c0, int hd, uint16_t *tk,
                       uint16_t *tv) {
    const __m512i il = _mm512_loadu_si512(interleave_idx);
    for (int64_t i = 0; i < nt; i += 2) {
        const float *k0 = a->k + (j0 + i) * a->ldk + c0, *v0 = a->v + (j0 + i) * a->ldk + c0;
        int two = i + 1 < nt;
        for (int c = 0; c < hd; c += 16) {
            __mmask16 m = pi0_mask16(hd - c);
            __m512 ka = _mm512_maskz_loadu_ps(m, k0 + c), va = _mm512_maskz_loadu_ps(m, v0 + c), vb = _mm512_setzero_ps();
            _mm256_mask_storeu_epi16(tk + i * hd + c, m, (__m256i)_mm512_cvtneps_pbh(ka));
            if (two) {
                __m512 kb = _mm512_maskz_loadu_ps(m, k0 + a->ldk + c);
                _mm256_mask_storeu_epi16(tk + (i + 1) * hd + c, m, (__m256i)_mm512_cvtneps_pbh(kb));
                vb = _mm512_maskz_loadu_ps(m, v0 + a->ldk + c);
            }
            _mm512_mask_storeu_epi32(tv + i * hd + 2 * c, m, pairs_bf16(va, vb, il));
        }
    }
}

/* ---- driver ------------------------------------------------------------------------------------ */

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Scratch pieces in bytes (each a multiple of 64), for nk keys of which tail are rounded per call. */
typedef struct { size_t qt, ot, st, tk, tv; } pieces;
static pieces sizes(const pi0_attention_args *a, int bf, int64_t tail) {
    size_t hd = (size_t)a->hd, nw = (hd + (size_t)bf) / (1 + (size_t)bf), slots = (size_t)a->nk + 2;
    pieces z = {up64(MB_MAX * ((nw + 15) & ~(size_t)15) * 4), up64(MB_MAX * hd * 4), up64(MB_MAX * slots * 4),
                up64((size_t)tail * hd * 2), up64(((size_t)tail + 1) / 2 * 2 * hd * 2)};
    return z;
}

/* Keys read from the caller's bf16 copy. */
static int64_t n_copy(const pi0_attention_args *a) {
    return a->kb && a->vb ? (a->nkb < a->nk ? a->nkb : a->nk) : 0;
}

INLINE void attention(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch, const int bf) {
    const int G = a->n_heads / a->n_kv, hd = a->hd;
    const int64_t nkb = bf ? n_copy(a) : a->nk, nt = a->nk - nkb;
    pieces z = sizes(a, bf, nt);
    char *p = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    block b = {.a = a, .hd = hd};
    b.has_mask = a->qc || a->kc || a->qpad || a->kpad;
    b.qt = (float *)p;
    b.ot = (float *)(p += z.qt);
    b.st = (float *)(p += z.ot);
    uint16_t *tk = (uint16_t *)(p += z.st), *tv = (uint16_t *)(p += z.tk);
    b.n[0] = nkb, b.j0[0] = 0, b.s0[0] = 0, b.ld[0] = a->ldk;
    b.n[1] = nt, b.j0[1] = nkb, b.s0[1] = (nkb + 1) & ~(int64_t)1, b.ld[1] = hd;
    const int64_t n_pairs = (q1 - q0) * G, n_vec = (n_pairs + 15) / 16, n_blocks = (n_vec + 3) / 4;
    for (int g = 0; g < a->n_kv; g++) {
        /* an empty segment points at the other one's head (never read) */
        if (bf) {
            if (nt) round_keys(a, nkb, nt, (int64_t)g * hd, hd, tk, tv);
            b.k[1] = tk, b.v[1] = tv;
            b.k[0] = nkb ? a->kb + (int64_t)g * hd : b.k[1];
            b.v[0] = nkb ? a->vb + 2 * (int64_t)g * hd : b.v[1];
        } else {
            b.k[0] = b.k[1] = a->k + (int64_t)g * hd;
            b.v[0] = b.v[1] = a->v + (int64_t)g * hd;
        }
        int64_t P0 = q0 * G;
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            b.mv = (int)(n_vec / n_blocks + (blk < n_vec % n_blocks));
            b.mb = 16 * b.mv;
            int np = q1 * G - P0 < b.mb ? (int)(q1 * G - P0) : b.mb;
            load_queries(&b, P0, np, G, g, bf);
            logits(&b, bf);
            weights(&b, bf);
            weighted_sum(&b, bf);
            store_out(&b, P0, np, G, g);
            P0 += np;
        }
    }
}

size_t pi0_fast_attention_avx512_scratch(const pi0_attention_args *a) {
    pieces z = sizes(a, 0, 0);
    return z.qt + z.ot + z.st + 64;
}

int pi0_fast_attention_avx512_ok(const pi0_attention_args *a) { (void)a; return 1; }

void pi0_fast_attention_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    attention(a, q0, q1, scratch, 0);
}

size_t pi0_fast_attention_bf16_avx512_scratch(const pi0_attention_args *a) {
    pieces z = sizes(a, 1, a->nk - n_copy(a));
    return z.qt + z.ot + z.st + z.tk + z.tv + 64;
}

int pi0_fast_attention_bf16_avx512_ok(const pi0_attention_args *a) {
    /* 32-bit pair loads: even head dim and row stride, 4-byte aligned copies */
    return a->hd % 2 == 0 && a->ldk % 2 == 0 && ((uintptr_t)a->kb | (uintptr_t)a->vb) % 4 == 0;
}

void pi0_fast_attention_bf16_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    attention(a, q0, q1, scratch, 1);
}
