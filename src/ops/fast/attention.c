/* attention.c - fast multi-query / multi-head attention (contract and mask rule in ops.h).
 *
 * K and V are read in place from the caller's arrays: nothing of the KV cache is copied or converted
 * per call (the denoising loop calls this 18 times per step against the prefix cache). When the
 * caller passes a bf16 copy of the leading keys (kb/vb, made once per observation) and the ISA row
 * has a bf16 kernel (avx512-bf16: vdpbf16ps in attention_avx512.c; the portable row), that copy is
 * read instead: half the bytes, and twice the multiply-adds per instruction. With round_bf16 the
 * SIMD bf16 kernel also rounds the keys outside the copy, per call into its scratch (SigLIP).
 * Otherwise, and in what follows, fp32. Logits, softmax and the weighted sum are fp32 with fp32
 * accumulation; masked logits are replaced by -2.3819763e38 as openpi does, so a fully masked row
 * gets uniform weights.
 * Work split: when the KV heads divide evenly among the threads (SigLIP's 16), whole KV groups by
 * (ith, nth), all rows; otherwise (π0's single KV head) query rows, each thread computing all heads
 * of its rows. Every output element is written once by one thread. The kernel comes from the ISA table (isa.h: AVX-512F in
 * attention_avx512.c, AVX2 + FMA in attention_avx2.c, or the portable C kernel below). Each computes
 * each output with a per-(row, head) sequence of operations that does not depend on the split, so
 * results do not depend on nth.
 * Per-thread scratch (a logits block; for the SIMD kernels also the transposed query block) comes from
 * pi0_fast_scratch, allocated on first use and reused. Sized for at least 1024 keys so the model's
 * growing key counts (prefix, then prefix + suffix) do not regrow it in the loop.
 */
#include <math.h>
#include <string.h>

#include "ops/fast/isa.h"

#define MASKED (-2.3819763e38f)
#define MIN_KEYS 1024
#define INLINE static inline __attribute__((always_inline))

INLINE int visible(const pi0_attention_args *a, int64_t i, int64_t j) {
    int32_t qc = a->qc ? a->qc[i] : 0, kc = a->kc ? a->kc[j] : 0;
    int qv = a->qpad ? a->qpad[i] != 0 : 1, kv = a->kpad ? a->kpad[j] != 0 : 1;
    return kc <= qc && qv && kv;
}

/* K and V of key j at column c0, fp32 rows or (keys [0, nkb)) the bf16 copy, widened exactly: the
 * only difference between the portable fp32 and bf16 kernels. The copy is chosen per key, so the
 * inner loops over d stay plain loops the compiler vectorizes. */
INLINE float dot_key(const pi0_attention_args *a, int64_t nkb, const float *q, int64_t j, int64_t c0) {
    float acc = 0.0f;
    if (j < nkb) {
        const uint16_t *kj = a->kb + j * a->ldk + c0;
        for (int d = 0; d < a->hd; d++) acc += q[d] * pi0_fast_bf16_to_f32(kj[d]);
    } else {
        const float *kj = a->k + j * a->ldk + c0;
        for (int d = 0; d < a->hd; d++) acc += q[d] * kj[d];
    }
    return acc;
}

/* o[d] = o[d]·c + p·V[j][c0 + d] (c = 1: a plain accumulation, the product folded away once
 * inlined). V pairs: (j, c) at (j/2)·2·ldk + 2c + j%2. */
INLINE void add_value(const pi0_attention_args *a, int64_t nkb, float *o, float c, float p, int64_t j, int64_t c0) {
    if (j < nkb) {
        const uint16_t *vj = a->vb + (j / 2) * 2 * a->ldk + 2 * c0 + (j % 2);
        for (int d = 0; d < a->hd; d++) o[d] = o[d] * c + p * pi0_fast_bf16_to_f32(vj[2 * d]);
    } else {
        const float *vj = a->v + j * a->ldk + c0;
        for (int d = 0; d < a->hd; d++) o[d] = o[d] * c + p * vj[d];
    }
}

/* One (row i, head) with scratch s[nk]: logits, exact two-pass softmax, then the weighted sum over
 * keys (inner loop over hd, contiguous in V and out, so compilers vectorize it). */
INLINE void row_two_pass(const pi0_attention_args *a, int64_t nkb, int64_t i, const float *q, float *o, int64_t off,
                         float *s) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < a->nk; j++) {
        float l = visible(a, i, j) ? dot_key(a, nkb, q, j, off) * a->scale : MASKED;
        s[j] = l;
        if (l > mx) mx = l;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < a->nk; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    for (int d = 0; d < a->hd; d++) o[d] = 0.0f;
    for (int64_t j = 0; j < a->nk; j++) add_value(a, nkb, o, 1.0f, s[j], j, off);
    for (int d = 0; d < a->hd; d++) o[d] /= sum;
}

/* The same without scratch (allocation failed): online softmax. Slow, but never leaves the output
 * unwritten. */
INLINE void row_online(const pi0_attention_args *a, int64_t nkb, int64_t i, const float *q, float *o, int64_t off) {
    float mx = -INFINITY, sum = 0.0f;
    for (int d = 0; d < a->hd; d++) o[d] = 0.0f;
    for (int64_t j = 0; j < a->nk; j++) {
        float l = visible(a, i, j) ? dot_key(a, nkb, q, j, off) * a->scale : MASKED;
        float nm = l > mx ? l : mx, c = expf(mx - nm), e = expf(l - nm);
        sum = sum * c + e;
        add_value(a, nkb, o, c, e, j, off);
        mx = nm;
    }
    for (int d = 0; d < a->hd; d++) o[d] /= sum;
}

/* Portable kernels, one row loop: fp32 K/V, or keys [0, nkb) from the bf16 copy and the rest from
 * the fp32 rows; s NULL: no scratch. */
INLINE void attention_rows(const pi0_attention_args *a, int64_t nkb, int64_t q0, int64_t q1, float *s) {
    const int hd = a->hd, group = a->n_heads / a->n_kv;
    for (int64_t i = q0; i < q1; i++)
        for (int h = 0; h < a->n_heads; h++) {
            const float *q = a->q + i * a->ldq + (int64_t)h * hd;
            float *o = a->out + i * a->ldo + (int64_t)h * hd;
            int64_t off = (int64_t)(h / group) * hd;
            if (s) row_two_pass(a, nkb, i, q, o, off, s);
            else row_online(a, nkb, i, q, o, off);
        }
}

/* Keys read from the caller's bf16 copy. */
static int64_t n_copy(const pi0_attention_args *a) {
    return a->kb && a->vb ? (a->nkb < a->nk ? a->nkb : a->nk) : 0;
}

size_t pi0_fast_attention_generic_scratch(const pi0_attention_args *a) { return sizeof(float) * (size_t)a->nk; }
int pi0_fast_attention_generic_ok(const pi0_attention_args *a) { (void)a; return 1; }
void pi0_fast_attention_generic(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    attention_rows(a, 0, q0, q1, scratch);
}

/* Over the bf16 copy: keys [0, nkb) read from kb/vb. Keys outside the copy stay fp32 even with
 * round_bf16 (rounding them here would only lose accuracy: no bf16 dot product to gain from). */
size_t pi0_fast_attention_bf16_generic_scratch(const pi0_attention_args *a) { return sizeof(float) * (size_t)a->nk; }
int pi0_fast_attention_bf16_generic_ok(const pi0_attention_args *a) { (void)a; return 1; }
void pi0_fast_attention_bf16_generic(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    attention_rows(a, n_copy(a), q0, q1, scratch);
}

/* The ISA row's bf16 kernel when the caller gave a copy or allows rounding (round_bf16) and the row
 * has one for this shape, else its fp32 kernel, else the portable fp32 one. */
void pi0_fast_attention(const pi0_attention_args *a, int ith, int nth) {
    pi0_attention_args part = *a;
    int64_t q0 = 0, q1 = a->nq;
    if (nth > 1 && a->n_kv % nth == 0) {
        /* whole KV groups per thread (SigLIP: 16 heads of their own K/V): each thread reads, and the
         * bf16 kernel rounds, only its own heads' K/V */
        int64_t g0, g1;
        pi0_split(a->n_kv, ith, nth, &g0, &g1);
        if (g0 >= g1) return;
        const int64_t G = a->n_heads / a->n_kv, hd = a->hd;
        part.q += g0 * G * hd, part.out += g0 * G * hd, part.k += g0 * hd, part.v += g0 * hd;
        if (part.kb) part.kb += g0 * hd;
        if (part.vb) part.vb += 2 * g0 * hd;
        part.n_kv = (int)(g1 - g0), part.n_heads = (int)((g1 - g0) * G);
    } else {
        pi0_split(a->nq, ith, nth, &q0, &q1);
        if (q0 >= q1) return;
    }
    a = &part;
    pi0_attention_args sized = part;
    if (sized.nk < MIN_KEYS) sized.nk = MIN_KEYS; /* scratch size only */
    const pi0_fast_isa *isa = pi0_fast_isa_get();
    if ((n_copy(a) > 0 || a->round_bf16) && isa->attention_bf16 && isa->attention_bf16_ok(a)) {
        void *s = pi0_fast_scratch(1, isa->attention_bf16_scratch(&sized));
        if (s) { isa->attention_bf16(a, q0, q1, s); return; }
    }
    if (!isa->attention || !isa->attention_ok(a)) isa = &pi0_fast_isa_generic;
    void *s = pi0_fast_scratch(1, isa->attention_scratch(&sized));
    if (s) isa->attention(a, q0, q1, s);
    else attention_rows(a, 0, q0, q1, NULL);
}
