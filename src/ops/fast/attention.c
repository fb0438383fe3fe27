/* attention.c - fast multi-query / multi-head attention (contract and mask rule in ops.h).
 *
 * K and V are read in place from the caller's arrays: nothing of the KV cache is copied or converted
 * per call (the denoising loop calls this 18 times per step against the prefix cache). When the
 * caller passes a bf16 copy of the leading keys (kb/vb, made once per observation) and the ISA row
 * has a bf16 kernel (avx512-bf16: vdpbf16ps, attention_bf16_avx512.c; the portable row), that copy
 * is read instead: half the bytes, and twice the multiply-adds per instruction. Otherwise, and in
 * what follows, fp32. Logits,
 * softmax and the weighted sum are fp32 with fp32 accumulation; masked logits are replaced by
 * -2.3819763e38 as openpi does, so a fully masked row gets uniform weights.
 * Work split: query rows by (ith, nth); each thread computes all heads of its rows, and every output
 * element is written once by one thread. The kernel comes from the ISA table (isa.h: AVX-512F in
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

static int visible(const pi0_attention_args *a, int64_t i, int64_t j) {
    int32_t qc = a->qc ? a->qc[i] : 0, kc = a->kc ? a->kc[j] : 0;
    int qv = a->qpad ? a->qpad[i] != 0 : 1, kv = a->kpad ? a->kpad[j] != 0 : 1;
    return kc <= qc && qv && kv;
}

/* Without scratch (allocation failed): online softmax, one (row, head) at a time. Slow, but never
 * leaves the output unwritten. */
static void attention_direct(const pi0_attention_args *a, int64_t q0, int64_t q1) {
    const int hd = a->hd, group = a->n_heads / a->n_kv;
    for (int64_t i = q0; i < q1; i++)
        for (int h = 0; h < a->n_heads; h++) {
            const float *q = a->q + i * a->ldq + (int64_t)h * hd;
            float *o = a->out + i * a->ldo + (int64_t)h * hd;
            int64_t off = (int64_t)(h / group) * hd;
            float mx = -INFINITY, sum = 0.0f;
            for (int d = 0; d < hd; d++) o[d] = 0.0f;
            for (int64_t j = 0; j < a->nk; j++) {
                const float *kj = a->k + j * a->ldk + off, *vj = a->v + j * a->ldk + off;
                float l = MASKED;
                if (visible(a, i, j)) {
                    l = 0.0f;
                    for (int d = 0; d < hd; d++) l += q[d] * kj[d];
                    l *= a->scale;
                }
                float nm = l > mx ? l : mx, c = expf(mx - nm), e = expf(l - nm);
                sum = sum * c + e;
                for (int d = 0; d < hd; d++) o[d] = o[d] * c + e * vj[d];
                mx = nm;
            }
            for (int d = 0; d < hd; d++) o[d] /= sum;
        }
}

/* Portable kernel: per (row, head), logits into s[nk], exact two-pass softmax, then the weighted
 * sum over keys (inner loop over hd, contiguous in V and out, so compilers vectorize it). */
size_t pi0_fast_attention_generic_scratch(const pi0_attention_args *a) { return sizeof(float) * (size_t)a->nk; }
int pi0_fast_attention_generic_ok(const pi0_attention_args *a) { (void)a; return 1; }

void pi0_fast_attention_generic(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    float *s = scratch;
    const int hd = a->hd, group = a->n_heads / a->n_kv;
    for (int64_t i = q0; i < q1; i++)
        for (int h = 0; h < a->n_heads; h++) {
            const float *q = a->q + i * a->ldq + (int64_t)h * hd;
            float *o = a->out + i * a->ldo + (int64_t)h * hd;
            int64_t off = (int64_t)(h / group) * hd;
            float mx = -INFINITY;
            for (int64_t j = 0; j < a->nk; j++) {
                float l = MASKED;
                if (visible(a, i, j)) {
                    const float *kj = a->k + j * a->ldk + off;
                    float acc = 0.0f;
                    for (int d = 0; d < hd; d++) acc += q[d] * kj[d];
                    l = acc * a->scale;
                }
                s[j] = l;
                if (l > mx) mx = l;
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < a->nk; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            for (int d = 0; d < hd; d++) o[d] = 0.0f;
            for (int64_t j = 0; j < a->nk; j++) {
                const float *vj = a->v + j * a->ldk + off;
                float p = s[j];
                for (int d = 0; d < hd; d++) o[d] += p * vj[d];
            }
            for (int d = 0; d < hd; d++) o[d] /= sum;
        }
}

/* Portable kernel over the bf16 KV copy: the one above with keys [0, nkb) read from kb (row-major)
 * and vb (key pairs), widened exactly; keys [nkb, nk) from the fp32 rows. */
size_t pi0_fast_attention_bf16_generic_scratch(const pi0_attention_args *a) { return sizeof(float) * (size_t)a->nk; }
int pi0_fast_attention_bf16_generic_ok(const pi0_attention_args *a) { (void)a; return 1; }

static float kb_at(const pi0_attention_args *a, int64_t j, int64_t c) {
    return pi0_fast_bf16_to_f32(a->kb[j * a->ldk + c]);
}
static float vb_at(const pi0_attention_args *a, int64_t j, int64_t c) {
    return pi0_fast_bf16_to_f32(a->vb[(j / 2) * 2 * a->ldk + 2 * c + (j % 2)]);
}

void pi0_fast_attention_bf16_generic(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch) {
    float *s = scratch;
    const int hd = a->hd, group = a->n_heads / a->n_kv;
    const int64_t nkb = a->kb ? (a->nkb < a->nk ? a->nkb : a->nk) : 0;
    for (int64_t i = q0; i < q1; i++)
        for (int h = 0; h < a->n_heads; h++) {
            const float *q = a->q + i * a->ldq + (int64_t)h * hd;
            float *o = a->out + i * a->ldo + (int64_t)h * hd;
            int64_t off = (int64_t)(h / group) * hd;
            float mx = -INFINITY;
            for (int64_t j = 0; j < a->nk; j++) {
                float l = MASKED;
                if (visible(a, i, j)) {
                    float acc = 0.0f;
                    if (j < nkb)
                        for (int d = 0; d < hd; d++) acc += q[d] * kb_at(a, j, off + d);
                    else
                        for (int d = 0; d < hd; d++) acc += q[d] * a->k[j * a->ldk + off + d];
                    l = acc * a->scale;
                }
                s[j] = l;
                if (l > mx) mx = l;
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < a->nk; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            for (int d = 0; d < hd; d++) o[d] = 0.0f;
            for (int64_t j = 0; j < a->nk; j++) {
                float p = s[j];
                if (j < nkb)
                    for (int d = 0; d < hd; d++) o[d] += p * vb_at(a, j, off + d);
                else
                    for (int d = 0; d < hd; d++) o[d] += p * a->v[j * a->ldk + off + d];
            }
            for (int d = 0; d < hd; d++) o[d] /= sum;
        }
}

/* The ISA row's bf16-copy kernel when the caller gave a copy and the row has one for this shape,
 * else its fp32 kernel, else the portable fp32 one. */
void pi0_fast_attention(const pi0_attention_args *a, int ith, int nth) {
    int64_t q0, q1;
    pi0_split(a->nq, ith, nth, &q0, &q1);
    if (q0 >= q1) return;
    pi0_attention_args sized = *a;
    if (sized.nk < MIN_KEYS) sized.nk = MIN_KEYS; /* scratch size only */
    const pi0_fast_isa *isa = pi0_fast_isa_get();
    if (a->kb && a->vb && a->nkb > 0 && isa->attention_bf16 && isa->attention_bf16_ok(a)) {
        void *s = pi0_fast_scratch(1, isa->attention_bf16_scratch(&sized));
        if (s) { isa->attention_bf16(a, q0, q1, s); return; }
    }
    if (!isa->attention || !isa->attention_ok(a)) isa = &pi0_fast_isa_generic;
    void *s = pi0_fast_scratch(1, isa->attention_scratch(&sized));
    if (s) isa->attention(a, q0, q1, s);
    else attention_direct(a, q0, q1);
}
