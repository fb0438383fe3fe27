/* attention_avx2.c - fp32 AVX2 + FMA attention kernel of the fast backend (contract in ops.h; the
 * dispatch, the portable fallback and the work split are in attention.c). A port of
 * attention_avx512.c to 256-bit vectors (8 lanes), called only when rt/cpu.h reports avx2.
 *
 * K and V are read in place from the caller's arrays (row stride ldk); nothing of them is copied or
 * converted. Query (row, head) pairs that share one KV head g (the n_heads/n_kv heads of a group,
 * for every row of this thread) form a [pairs, hd] query matrix; it is processed in blocks of MB
 * pairs (MB = 8·mv, mv <= MV_MAX vectors of 8 pairs):
 *   1. Qᵀ = scale · Q_blockᵀ            [hd][MB]  per-thread scratch (a copy of q only, O(MB·hd))
 *   2. Sᵀ[j][p] = K[j] · Qᵀ[:, p]       [nk][MB]  tiles of NR keys x 2 (or 1) pair vectors: each K
 *      element is broadcast from memory into one FMA per 8 pairs, so all heads of the group share
 *      every K load (MQA). Key tiles are the outer loop and pair vectors the inner one, so a tile's
 *      K rows (NR·hd floats) stay in L1 while the block's pairs go past. The epilogue applies the
 *      mask (masked logit := -2.3819763e38 as openpi) and keeps the running per-pair maximum.
 *   3. Pᵀ = exp(Sᵀ - max) in place, l[p] = Σ_j P[j][p]   (exact two-pass softmax, no rescaling)
 *   4. Oᵀ[d][p] = Σ_j V[j][d] · Pᵀ[j][p] [hd][MB]  tiles of NR dims x 2 (or 1) pair vectors over all
 *      keys, the mirror image of step 2; the accumulators stay in registers for the whole key range.
 *   5. out[p][d] = Oᵀ[d][p] / l[p], gathered along d, written once per element (masked tail store).
 * 16 ymm registers: a tile holds 12 accumulators + 2 operand loads + 1 broadcast.
 * Everything is fp32 with fp32 accumulation. Every output value is computed by the same per-lane
 * instruction sequence whatever block or tile it falls in (lanes never mix; sums over d, j run in a
 * fixed order), so results do not depend on how rows are split among threads.
 */
#include <stdint.h>

#include "ops/fast/simd_avx2.h"

#define MASKED (-2.3819763e38f)

#define INLINE static inline __attribute__((always_inline))

#define MV_MAX 4 /* pair vectors of 8 per block: MB <= 32 (Qᵀ of hd = 256 is 32 KB, Sᵀ of 867 keys 111 KB) */
#define MB_MAX (8 * MV_MAX)

/* One block of query pairs against all keys of one KV head. */
typedef struct {
    const pi0_attention_args *a;
    const float *k, *v; /* KV head g's first column in K and V */
    int64_t nk, ldk;
    int hd, mv, mb;     /* head dim; pairs per block: mv vectors of 8 (mb = 8·mv) */
    int has_mask;
    __m256i qc[MV_MAX];  /* per pair lane: qc of its row (0 without qc) */
    __m256i qok[MV_MAX]; /* per pair lane: all ones if row valid (qpad) and lane < pairs in the block */
    float *qt;           /* [hd][mb] */
    float *ot;           /* [hd][mb] */
    float *st;           /* [nk][mb]: logits, then unnormalized weights */
    __m256 mx[MV_MAX], l[MV_MAX]; /* per pair lane: max logit, sum of weights */
} block;

/* The micro-kernels name every accumulator c<r><x> (row r of the tile, pair vector x) through
 * macros, because GCC keeps arrays of vector accumulators in memory (a load and a store per FMA).
 * ROWSn(M, C) expands M(r, C) for r < n; COLSn(M, r) expands M(r, x) for x < n; VECSn(M) M(x). */
#define ROWS1(M, C) M(0, C)
#define ROWS4(M, C) M(0, C) M(1, C) M(2, C) M(3, C)
#define ROWS6(M, C) ROWS4(M, C) M(4, C) M(5, C)
#define ROWS8(M, C) ROWS6(M, C) M(6, C) M(7, C)
#define ROWS12(M, C) ROWS8(M, C) M(8, C) M(9, C) M(10, C) M(11, C)
#define COLS1(M, r) M(r, 0)
#define COLS2(M, r) COLS1(M, r) M(r, 1)
#define VECS1(M) M(0)
#define VECS2(M) VECS1(M) M(1)

#define ACC_ZERO(r, x) __m256 c##r##x = _mm256_setzero_ps();
#define ROW_ZERO(r, COLS) COLS(ACC_ZERO, r)
#define ACC_FMA(r, x) c##r##x = _mm256_fmadd_ps(bc, w##x, c##r##x);
#define LOAD_W(x) __m256 w##x = _mm256_load_ps(wp + 8 * (x));

/* ---- 2. logits: Sᵀ[j0..j0+NR) = K rows · Qᵀ, masked, running max -------------------------------- */

/* Epilogue of one key row j: mask, running max, store 8 lanes of pair vector x. */
INLINE void logit_out(block *b, int64_t j, int x, __m256 c) {
    const pi0_attention_args *a = b->a;
    if (b->has_mask) {
        int kok = a->kpad ? a->kpad[j] != 0 : 1;
        __m256 vis = _mm256_setzero_ps();
        if (kok) {
            __m256i kc = _mm256_set1_epi32(a->kc ? a->kc[j] : 0);
            vis = _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(kc, b->qc[x]), b->qok[x]));
        }
        c = _mm256_blendv_ps(_mm256_set1_ps(MASKED), c, vis);
    }
    b->mx[x] = _mm256_max_ps(b->mx[x], c);
    _mm256_store_ps(b->st + j * b->mb + 8 * x, c);
}

#define QK_ROW(r, COLS) { __m256 bc = _mm256_broadcast_ss(k + (r) * ldk + d); COLS(ACC_FMA, r) }
#define QK_OUT1(r, x) logit_out(b, j0 + (r), x0 + (x), c##r##x);
#define QK_OUT(r, COLS) COLS(QK_OUT1, r)
/* NR keys x MV pair vectors (from vector x0): per d, MV loads of Qᵀ and NR broadcasts of K[j][d]. */
#define DEF_QK(MV, NR)                                                                        \
    static void qk_##MV##_##NR(block *b, int64_t j0, int x0) {                              \
        const float *k = b->k + j0 * b->ldk, *wp = b->qt + 8 * x0;                          \
        const int64_t ldk = b->ldk;                                                         \
        const int mb = b->mb;                                                               \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int d = 0; d < b->hd; d++, wp += mb) {                                         \
            VECS##MV(LOAD_W)                                                                \
            ROWS##NR(QK_ROW, COLS##MV)                                                      \
        }                                                                                   \
        ROWS##NR(QK_OUT, COLS##MV)                                                          \
    }

/* ---- 4. Oᵀ[d0..d0+NR) = Σ_j V[j][d0..d0+NR) · Pᵀ[j] ------------------------------------------- */

#define PV_ROW(r, COLS) { __m256 bc = _mm256_broadcast_ss(v + (r)); COLS(ACC_FMA, r) }
#define PV_OUT1(r, x) _mm256_store_ps(ot + (int64_t)(r) * mb + 8 * (x), c##r##x);
#define PV_OUT(r, COLS) COLS(PV_OUT1, r)
/* NR dims x MV pair vectors (from vector x0): per key j, MV loads of Pᵀ[j] and NR broadcasts of
 * V[j][d]. The mirror image of the logits kernel. */
#define DEF_PV(MV, NR)                                                                        \
    static void pv_##MV##_##NR(block *b, int64_t d0, int x0) {                              \
        const int mb = b->mb;                                                               \
        const float *v = b->v + d0, *wp = b->st + 8 * x0;                                   \
        float *ot = b->ot + d0 * mb + 8 * x0;                                               \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int64_t j = 0; j < b->nk; j++, v += b->ldk, wp += mb) {                        \
            VECS##MV(LOAD_W)                                                                \
            ROWS##NR(PV_ROW, COLS##MV)                                                      \
        }                                                                                   \
        ROWS##NR(PV_OUT, COLS##MV)                                                          \
    }

/* Tiles of 12 accumulators (MV·NR), tails of 4 and 1 rows. */
#define DEF_MV(MV, NR) DEF_QK(MV, NR) DEF_QK(MV, 4) DEF_QK(MV, 1) DEF_PV(MV, NR) DEF_PV(MV, 4) DEF_PV(MV, 1)
DEF_MV(1, 12)
DEF_MV(2, 6)

static void logits(block *b) {
    for (int x = 0; x < b->mv; x++) b->mx[x] = _mm256_set1_ps(-__builtin_inff());
    int64_t r = 0;
    for (; r + 12 <= b->nk; r += 12) {
        int x = 0;
        for (; x + 2 <= b->mv; x += 2) { qk_2_6(b, r, x); qk_2_6(b, r + 6, x); }
        if (x < b->mv) qk_1_12(b, r, x);
    }
    for (; r + 4 <= b->nk; r += 4) {
        int x = 0;
        for (; x + 2 <= b->mv; x += 2) qk_2_4(b, r, x);
        if (x < b->mv) qk_1_4(b, r, x);
    }
    for (; r < b->nk; r++) {
        int x = 0;
        for (; x + 2 <= b->mv; x += 2) qk_2_1(b, r, x);
        if (x < b->mv) qk_1_1(b, r, x);
    }
}

static void weighted_sum(block *b) {
    int64_t r = 0;
    const int64_t hd = b->hd;
    for (; r + 12 <= hd; r += 12) {
        int x = 0;
        for (; x + 2 <= b->mv; x += 2) { pv_2_6(b, r, x); pv_2_6(b, r + 6, x); }
        if (x < b->mv) pv_1_12(b, r, x);
    }
    for (; r + 4 <= hd; r += 4) {
        int x = 0;
        for (; x + 2 <= b->mv; x += 2) pv_2_4(b, r, x);
        if (x < b->mv) pv_1_4(b, r, x);
    }
    for (; r < hd; r++) {
        int x = 0;
        for (; x + 2 <= b->mv; x += 2) pv_2_1(b, r, x);
        if (x < b->mv) pv_1_1(b, r, x);
    }
}

/* ---- 3. weights: Pᵀ = exp(Sᵀ - max), l = column sums --------------------------------------------- */

static void weights(block *b) {
    const int mb = b->mb;
    for (int x = 0; x < b->mv; x++) {
        /* two partial sums (even, odd keys) halve the rounding growth of the nk-term sum */
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), m = b->mx[x];
        float *p = b->st + 8 * x;
        int64_t j = 0;
        for (; j + 2 <= b->nk; j += 2) {
            __m256 e0 = pi0_exp256(_mm256_sub_ps(_mm256_load_ps(p + j * mb), m));
            __m256 e1 = pi0_exp256(_mm256_sub_ps(_mm256_load_ps(p + (j + 1) * mb), m));
            _mm256_store_ps(p + j * mb, e0);
            _mm256_store_ps(p + (j + 1) * mb, e1);
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
        }
        if (j < b->nk) {
            __m256 e0 = pi0_exp256(_mm256_sub_ps(_mm256_load_ps(p + j * mb), m));
            _mm256_store_ps(p + j * mb, e0);
            s0 = _mm256_add_ps(s0, e0);
        }
        b->l[x] = _mm256_add_ps(s0, s1);
    }
}

/* ---- driver --------------------------------------------------------------------------------------- */

size_t pi0_fast_attention_avx2_scratch(const pi0_attention_args *a) {
    return sizeof(float) * MB_MAX * (2 * (size_t)a->hd + (size_t)a->nk) + 64;
}

/* 1. Qᵀ of pairs [P0, P0 + np) (scaled; lanes past np are zero) and the per-lane mask inputs. */
static void load_queries(block *b, int64_t P0, int np, int G, int g) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb;
    const int64_t i0 = P0 / G;
    const float *base = a->q + i0 * a->ldq;
    int32_t off[MB_MAX], qcl[MB_MAX], okl[MB_MAX];
    for (int p = 0; p < mb; p++) {
        off[p] = qcl[p] = okl[p] = 0;
        if (p >= np) continue;
        int64_t i = (P0 + p) / G;
        int h = g * G + (int)((P0 + p) % G);
        off[p] = (int32_t)((i - i0) * a->ldq + (int64_t)h * hd);
        qcl[p] = a->qc ? a->qc[i] : 0;
        okl[p] = !a->qpad || a->qpad[i] ? -1 : 0;
    }
    const __m256 sc = _mm256_set1_ps(a->scale);
    for (int x = 0; x < b->mv; x++) {
        b->qc[x] = _mm256_loadu_si256((const __m256i *)(qcl + 8 * x));
        b->qok[x] = _mm256_loadu_si256((const __m256i *)(okl + 8 * x));
        __m256i idx = _mm256_loadu_si256((const __m256i *)(off + 8 * x));
        __m256 m = _mm256_castsi256_ps(pi0_mask8(np - 8 * x));
        float *qt = b->qt + 8 * x;
        for (int d = 0; d < hd; d++, qt += mb) {
            __m256 q = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base + d, idx, m, 4);
            _mm256_store_ps(qt, _mm256_mul_ps(q, sc));
        }
    }
}

/* 5. out[p][d] = Oᵀ[d][p] / l[p] for the np pairs of the block. */
static void store_out(const block *b, int64_t P0, int np, int G, int g) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb;
    const __m256i didx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(mb));
    for (int p = 0; p < np; p++) {
        int64_t i = (P0 + p) / G;
        int h = g * G + (int)((P0 + p) % G);
        float *out = a->out + i * a->ldo + (int64_t)h * hd;
        __m256 l = _mm256_set1_ps(b->l[p >> 3][p & 7]); /* GCC vector subscript: no spill copy */
        int d = 0;
        for (; d + 8 <= hd; d += 8) {
            __m256 o = _mm256_i32gather_ps(b->ot + (int64_t)d * mb + p, didx, 4);
            _mm256_storeu_ps(out + d, _mm256_div_ps(o, l));
        }
        if (d < hd) {
            __m256i m = pi0_mask8(hd - d);
            __m256 o = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), b->ot + (int64_t)d * mb + p, didx,
                                                _mm256_castsi256_ps(m), 4);
            _mm256_maskstore_ps(out + d, m, _mm256_div_ps(o, l));
        }
    }
}

int pi0_fast_attention_avx2_ok(const pi0_attention_args *a) {
    /* query offsets inside one block are gathered with int32 indices */
    return (int64_t)(MB_MAX + 1) * a->ldq + (int64_t)a->n_heads * a->hd < INT32_MAX;
}

void pi0_fast_attention_avx2(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    const int G = a->n_heads / a->n_kv;
    block b = {.a = a, .nk = a->nk, .ldk = a->ldk, .hd = a->hd};
    b.has_mask = a->qc || a->kc || a->qpad || a->kpad;
    b.qt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    b.ot = b.qt + (int64_t)MB_MAX * b.hd;
    b.st = b.ot + (int64_t)MB_MAX * b.hd;
    /* pair P in [q0·G, q1·G) is (row P / G, head g·G + P % G). The thread's n_vec vectors of 8
     * pairs are dealt into the fewest blocks of <= MV_MAX vectors, as evenly as possible, so at
     * most the last vector is partly empty. */
    const int64_t n_pairs = (q1 - q0) * G, n_vec = (n_pairs + 7) / 8, n_blocks = (n_vec + MV_MAX - 1) / MV_MAX;
    for (int g = 0; g < a->n_kv; g++) {
        b.k = a->k + (int64_t)g * b.hd;
        b.v = a->v + (int64_t)g * b.hd;
        int64_t P0 = q0 * G;
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            b.mv = (int)(n_vec / n_blocks + (blk < n_vec % n_blocks));
            b.mb = 8 * b.mv;
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
