/* attention.c - fast multi-query / multi-head attention (contract and mask rule in ops.h).
 *
 * Per KV head g, K_g [nk, hd] and V_g [nk, hd] are packed to bf16 in the GEMM weight layout
 * (K as a [nk out, hd in] weight, V transposed as [hd out, nk in]) into per-thread scratch, then
 * for each query head h of the group and each block of QB query rows:
 *   S = Q_h · K_gᵀ (bf16 GEMM, fp32 accumulate) -> scale, mask (-2.3819763e38 like openpi, so a
 *   fully masked row gets uniform weights), softmax in fp32 -> O_h = S · V_g (bf16 GEMM).
 * Work split: query rows by (ith, nth); each thread packs the K/V it needs itself (O(nk·hd),
 * small next to the O(nq·nk·hd) products), so no thread waits on another. Every output element is
 * written by one thread; results do not depend on nth.
 */
#include <math.h>
#include <string.h>

#include "ops/fast/fast.h"
#include "rt/cpu.h"

#define QB 128              /* query rows per S block */
#define MASKED (-2.3819763e38f)

/* Fallback without scratch (allocation failed): fp32, one (row, head) at a time, online softmax
 * with the same mask value. Slow but never leaves the output unwritten. */
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
                int vis = (a->qpad ? a->qpad[i] != 0 : 1) && (a->kpad ? a->kpad[j] != 0 : 1) &&
                          (a->kc ? a->kc[j] : 0) <= (a->qc ? a->qc[i] : 0);
                float l = MASKED;
                if (vis) {
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

void pi0_fast_attention(const pi0_attention_args *a, int ith, int nth) {
    int64_t q0, q1;
    pi0_split(a->nq, ith, nth, &q0, &q1);
    if (q0 >= q1) return;
    const int hd = a->hd, group = a->n_heads / a->n_kv;
    const int64_t nk = a->nk;
    const int avx512 = pi0_cpu_caps_get()->avx512;
    pi0_fast_packed pk, pv;
    void *kbuf = pi0_fast_scratch(1, pi0_fast_packed_bytes(nk, hd, PI0_WEIGHTS_BF16));
    void *vbuf = pi0_fast_scratch(2, pi0_fast_packed_bytes(hd, nk, PI0_WEIGHTS_BF16));
    float *s = pi0_fast_scratch(3, sizeof(float) * QB * (size_t)nk);
    if (!kbuf || !vbuf || !s) { attention_direct(a, q0, q1); return; } /* out of memory */
    for (int g = 0; g < a->n_kv; g++) {
        const float *kg = a->k + (int64_t)g * hd, *vg = a->v + (int64_t)g * hd;
        if (avx512) {
            pi0_fast_pack_f32_bf16_avx512(&pk, kbuf, kg, a->ldk, nk, hd, 0);
            pi0_fast_pack_f32_bf16_avx512(&pv, vbuf, vg, a->ldk, hd, nk, 1);
        } else {
            pi0_fast_pack_f32_bf16(&pk, kbuf, kg, a->ldk, nk, hd, 0);
            pi0_fast_pack_f32_bf16(&pv, vbuf, vg, a->ldk, hd, nk, 1);
        }
        for (int h = g * group; h < (g + 1) * group; h++) {
            for (int64_t r0 = q0; r0 < q1; r0 += QB) {
                int64_t rows = q1 - r0 < QB ? q1 - r0 : QB;
                pi0_fast_gemm_job js = {.c = s, .ldc = nk, .a = a->q + r0 * a->ldq + (int64_t)h * hd, .lda = a->ldq,
                                        .b = &pk, .bias = NULL, .m = rows, .accumulate = 0,
                                        .p0 = 0, .p1 = pk.n_panels};
                pi0_fast_gemm(&js);
                for (int64_t r = 0; r < rows; r++) {
                    int64_t i = r0 + r;
                    float *row = s + r * nk;
                    int qok = a->qpad ? a->qpad[i] != 0 : 1;
                    int32_t qc = a->qc ? a->qc[i] : 0;
                    for (int64_t jk = 0; jk < nk; jk++) {
                        int vis = qok && (a->kpad ? a->kpad[jk] != 0 : 1) && (a->kc ? a->kc[jk] : 0) <= qc;
                        row[jk] = vis ? row[jk] * a->scale : MASKED;
                    }
                    if (avx512) pi0_fast_softmax_avx512(row, nk);
                    else pi0_fast_softmax_generic(row, nk);
                }
                pi0_fast_gemm_job jo = {.c = a->out + r0 * a->ldo + (int64_t)h * hd, .ldc = a->ldo, .a = s, .lda = nk,
                                        .b = &pv, .bias = NULL, .m = rows, .accumulate = 0,
                                        .p0 = 0, .p1 = pv.n_panels};
                pi0_fast_gemm(&jo);
            }
        }
    }
}
