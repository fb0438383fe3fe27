/* attention_avx512.c - fp32 AVX-512F attention kernel of the fast backend (contract in ops.h; the
 * dispatch, the portable fallback and the work split are in attention.c).
 *
 * K and V are read in place from the caller's arrays (row stride ldk); nothing of them is copied or
 * converted. Query (row, head) pairs that share one KV head g (the n_heads/n_kv heads of a group,
 * for every row of this thread) form a [pairs, hd] query matrix; it is processed in blocks of MB
 * pairs (32 for hd > 128, else 64, so one block's transposed queries stay in L1):
 *   1. Qᵀ = scale · Q_blockᵀ            [hd][MB]  per-thread scratch (a copy of q only, O(MB·hd))
 *   2. Sᵀ[j][p] = K[j] · Qᵀ[:, p]       [nk][MB]  tiles of NR keys x MB pairs: each K element is
 *      broadcast from memory into one FMA per 16 pairs, so all heads of the group share every K
 *      load (MQA). The epilogue applies the mask (masked logit := -2.3819763e38 as openpi) and keeps
 *      the running per-pair maximum.
 *   3. Pᵀ = exp(Sᵀ - max) in place, l[p] = Σ_j P[j][p]   (exact two-pass softmax, no rescaling)
 *   4. Oᵀ[d][p] = Σ_j V[j][d] · Pᵀ[j][p] [hd][MB]  tiles of DR dims x MB pairs over all keys, the
 *      mirror image of step 2: each V element is broadcast once per block, the accumulators stay in
 *      registers for the whole key range, and no V rows need to stay cached. (A tile that re-reads
 *      V rows from L1 loses ~25% when ldk is 256 floats: rows 1 KB apart share 4 of the 64 L1 sets.)
 *   5. out[p][d] = Oᵀ[d][p] / l[p], gathered along d, written once per element.
 * Everything is fp32 with fp32 accumulation. Every output value is computed by the same per-lane
 * instruction sequence whatever block or tile it falls in (lanes never mix; sums over d, j run in a
 * fixed order), so results do not depend on how rows are split among threads.
 */
#include <stdint.h>

#include "ops/fast/simd_avx512.h"

#define MASKED (-2.3819763e38f)

#define INLINE static inline __attribute__((always_inline))

/* One block of query pairs against all keys of one KV head. */
typedef struct {
    const pi0_attention_args *a;
    const float *k, *v; /* KV head g's first column in K and V */
    int64_t nk, ldk;
    int hd, mv, mb;     /* head dim; pairs per block: mv vectors of 16 (mb = 16·mv) */
    int has_mask;
    __m512i qc[4];      /* per pair lane: qc of its row (0 without qc) */
    __mmask16 qok[4];   /* per pair lane: row valid (qpad) and lane < pairs in the block */
    float *qt;          /* [hd][mb] */
    float *ot;          /* [hd][mb] */
    float *st;          /* [nk][mb]: logits, then unnormalized weights */
    __m512 mx[4], l[4]; /* per pair lane: max logit, sum of weights */
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

#define ACC_ZERO(r, x) __m512 c##r##x = _mm512_setzero_ps();
#define ROW_ZERO(r, COLS) COLS(ACC_ZERO, r)
#define ACC_FMA(r, x) c##r##x = _mm512_fmadd_ps(bc, w##x, c##r##x);
#define LOAD_W(x) __m512 w##x = _mm512_load_ps(wp + 16 * (x));

/* ---- 2. logits: Sᵀ[j0..j0+NR) = K rows · Qᵀ, masked, running max -------------------------------- */

/* Epilogue of one key row j: mask, running max, store 16 lanes of pair vector x. */
INLINE void logit_out(block *b, int64_t j, int x, __m512 c) {
    const pi0_attention_args *a = b->a;
    if (b->has_mask) {
        int kok = a->kpad ? a->kpad[j] != 0 : 1;
        __m512i kc = _mm512_set1_epi32(a->kc ? a->kc[j] : 0);
        __mmask16 vis = kok ? _mm512_mask_cmple_epi32_mask(b->qok[x], kc, b->qc[x]) : 0;
        c = _mm512_mask_blend_ps(vis, _mm512_set1_ps(MASKED), c);
    }
    b->mx[x] = _mm512_max_ps(b->mx[x], c);
    _mm512_store_ps(b->st + j * b->mb + 16 * x, c);
}

#define QK_ROW(r, COLS) { __m512 bc = _mm512_set1_ps(k[(r) * ldk + d]); COLS(ACC_FMA, r) }
#define QK_OUT1(r, x) logit_out(b, j0 + (r), x, c##r##x);
#define QK_OUT(r, COLS) COLS(QK_OUT1, r)
/* NR keys x MV pair vectors: per d, MV loads of Qᵀ and NR broadcasts of K[j][d]. */
#define DEF_QK(MV, NR)                                                                        \
    static void qk_##MV##_##NR(block *b, int64_t j0) {                                      \
        const float *k = b->k + j0 * b->ldk, *wp = b->qt;                                   \
        const int64_t ldk = b->ldk;                                                         \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int d = 0; d < b->hd; d++, wp += 16 * MV) {                                    \
            VECS##MV(LOAD_W)                                                                \
            ROWS##NR(QK_ROW, COLS##MV)                                                      \
        }                                                                                   \
        ROWS##NR(QK_OUT, COLS##MV)                                                          \
    }

/* ---- 4. Oᵀ[d0..d0+NR) = Σ_j V[j][d0..d0+NR) · Pᵀ[j] ------------------------------------------- */

#define PV_ROW(r, COLS) { __m512 bc = _mm512_set1_ps(v[r]); COLS(ACC_FMA, r) }
#define PV_OUT1(r, x) _mm512_store_ps(ot + (r) * 16 * MVC + 16 * (x), c##r##x);
#define PV_OUT(r, COLS) COLS(PV_OUT1, r)
/* NR dims x MV pair vectors: per key j, MV loads of Pᵀ[j] and NR broadcasts of V[j][d]. The mirror
 * image of the logits kernel; each V element is read once per block. */
#define DEF_PV(MV, NR)                                                                        \
    static void pv_##MV##_##NR(block *b, int d0) {                                          \
        enum { MVC = MV };                                                                  \
        const float *v = b->v + d0, *wp = b->st;                                            \
        float *ot = b->ot + (int64_t)d0 * 16 * MV;                                          \
        ROWS##NR(ROW_ZERO, COLS##MV)                                                        \
        for (int64_t j = 0; j < b->nk; j++, v += b->ldk, wp += 16 * MV) {                   \
            VECS##MV(LOAD_W)                                                                \
            ROWS##NR(PV_ROW, COLS##MV)                                                      \
        }                                                                                   \
        ROWS##NR(PV_OUT, COLS##MV)                                                          \
    }

/* Tiles of about 24 accumulators (MV·NR), tails of 4 and 1 rows. */
#define DEF_MV(MV, NR) DEF_QK(MV, NR) DEF_QK(MV, 4) DEF_QK(MV, 1) DEF_PV(MV, NR) DEF_PV(MV, 4) DEF_PV(MV, 1)
DEF_MV(1, 12)
DEF_MV(2, 12)
DEF_MV(3, 8)
DEF_MV(4, 6)

#define LOOP3(n, NR, f, arg) do {                       \
        int64_t r_ = 0;                                 \
        for (; r_ + NR <= (n); r_ += NR) f##_##NR(arg, r_); \
        for (; r_ + 4 <= (n); r_ += 4) f##_4(arg, r_);  \
        for (; r_ < (n); r_++) f##_1(arg, r_);          \
    } while (0)

static void logits(block *b) {
    for (int x = 0; x < b->mv; x++) b->mx[x] = _mm512_set1_ps(-__builtin_inff());
    switch (b->mv) {
    case 1: LOOP3(b->nk, 12, qk_1, b); break;
    case 2: LOOP3(b->nk, 12, qk_2, b); break;
    case 3: LOOP3(b->nk, 8, qk_3, b); break;
    default: LOOP3(b->nk, 6, qk_4, b); break;
    }
}

static void weighted_sum(block *b) {
    switch (b->mv) {
    case 1: LOOP3(b->hd, 12, pv_1, b); break;
    case 2: LOOP3(b->hd, 12, pv_2, b); break;
    case 3: LOOP3(b->hd, 8, pv_3, b); break;
    default: LOOP3(b->hd, 6, pv_4, b); break;
    }
}

/* ---- 3. weights: Pᵀ = exp(Sᵀ - max), l = column sums --------------------------------------------- */

static void weights(block *b) {
    const int mb = b->mb;
    for (int x = 0; x < b->mv; x++) {
        /* two partial sums (even, odd keys) halve the rounding growth of the nk-term sum */
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), m = b->mx[x];
        float *p = b->st + 16 * x;
        int64_t j = 0;
        for (; j + 2 <= b->nk; j += 2) {
            __m512 e0 = pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p + j * mb), m));
            __m512 e1 = pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p + (j + 1) * mb), m));
            _mm512_store_ps(p + j * mb, e0);
            _mm512_store_ps(p + (j + 1) * mb, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        if (j < b->nk) {
            __m512 e0 = pi0_exp512(_mm512_sub_ps(_mm512_load_ps(p + j * mb), m));
            _mm512_store_ps(p + j * mb, e0);
            s0 = _mm512_add_ps(s0, e0);
        }
        b->l[x] = _mm512_add_ps(s0, s1);
    }
}

/* ---- driver --------------------------------------------------------------------------------------- */

#define MB_MAX 64 /* pairs per block: Qᵀ of hd = 256 is 64 KB (L2), Sᵀ of 867 keys 220 KB */

size_t pi0_fast_attention_avx512_scratch(const pi0_attention_args *a) {
    return sizeof(float) * MB_MAX * (2 * (size_t)a->hd + (size_t)a->nk) + 64;
}

/* 1. Qᵀ of pairs [P0, P0 + np) (scaled; lanes past np are zero) and the per-lane mask inputs. */
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
    for (int x = 0; x < b->mv; x++) {
        b->qc[x] = _mm512_loadu_si512(qcl + 16 * x);
        b->qok[x] = (__mmask16)(ok >> (16 * x));
        __m512i idx = _mm512_loadu_si512(off + 16 * x);
        __mmask16 m = pi0_mask16(np - 16 * x);
        float *qt = b->qt + 16 * x;
        for (int d = 0; d < hd; d++, qt += mb) {
            __m512 q = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + d, 4);
            _mm512_store_ps(qt, _mm512_mul_ps(q, sc));
        }
    }
}

/* 5. out[p][d] = Oᵀ[d][p] / l[p] for the np pairs of the block. */
static void store_out(const block *b, int64_t P0, int np, int G, int g) {
    const pi0_attention_args *a = b->a;
    const int hd = b->hd, mb = b->mb;
    const __m512i didx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(mb));
    for (int p = 0; p < np; p++) {
        int64_t i = (P0 + p) / G;
        int h = g * G + (int)((P0 + p) % G);
        float *out = a->out + i * a->ldo + (int64_t)h * hd;
        __m512 l = _mm512_set1_ps(b->l[p >> 4][p & 15]); /* GCC vector subscript: no spill copy */
        for (int d = 0; d < hd; d += 16) {
            __mmask16 m = pi0_mask16(hd - d);
            __m512 o = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, didx, b->ot + (int64_t)d * mb + p, 4);
            _mm512_mask_storeu_ps(out + d, m, _mm512_div_ps(o, l));
        }
    }
}

int pi0_fast_attention_avx512_ok(const pi0_attention_args *a) {
    /* query offsets inside one block are gathered with int32 indices */
    return (int64_t)(MB_MAX + 1) * a->ldq + (int64_t)a->n_heads * a->hd < INT32_MAX;
}

void pi0_fast_attention_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    const int G = a->n_heads / a->n_kv;
    block b = {.a = a, .nk = a->nk, .ldk = a->ldk, .hd = a->hd};
    b.has_mask = a->qc || a->kc || a->qpad || a->kpad;
    b.qt = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    b.ot = b.qt + (int64_t)MB_MAX * b.hd;
    b.st = b.ot + (int64_t)MB_MAX * b.hd;
    /* pair P in [q0·G, q1·G) is (row P / G, head g·G + P % G). The thread's n_vec vectors of 16
     * pairs are dealt into the fewest blocks of <= 4 vectors, as evenly as possible (e.g. 13 vectors
     * -> 4+3+3+3, not 4+4+4+1), so at most the last vector is partly empty. */
    const int64_t n_pairs = (q1 - q0) * G, n_vec = (n_pairs + 15) / 16, n_blocks = (n_vec + 3) / 4;
    for (int g = 0; g < a->n_kv; g++) {
        b.k = a->k + (int64_t)g * b.hd;
        b.v = a->v + (int64_t)g * b.hd;
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
