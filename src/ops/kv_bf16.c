/* kv_bf16.c - the bf16 copy of a KV cache that attention may read instead of the fp32 rows
 * (pi0_attention_args.kb/vb, layout in ops.h). Made once per observation by the model (prefill),
 * never inside the denoising loop. K stays row-major; V is stored in key pairs so that one 32-bit
 * load holds (V[j][c], V[j+1][c]), the operand of a bf16 pair dot product over keys (vdpbf16ps). */
#include "ops/ops.h"

/* Round to nearest even (as pi0_f32_to_bf16; NaN stays NaN). */
static inline uint16_t to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    uint32_t r = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16, nan = (v.u >> 16) | 0x40u;
    return (uint16_t)((v.u & 0x7fffffffu) > 0x7f800000u ? nan : r);
}

static void round_row(uint16_t *restrict o, const float *restrict x, int64_t n, int64_t step) {
    for (int64_t c = 0; c < n; c++) o[c * step] = to_bf16(x[c]);
}

/* Scalar, on the calling thread: 304 prefix rows x 256 columns of K and V take ~0.11 ms per layer
 * (~2 ms per observation for 18 layers), against ~0.9 ms saved per layer by the prefill's own
 * attention alone (BENCHMARKS.md, Attention kernel). */
void pi0_kv_bf16_fill(uint16_t *kb, uint16_t *vb, const float *k, const float *v, int64_t ldk, int64_t r0, int64_t r1) {
    for (int64_t j = r0; j < r1; j++) {
        round_row(kb + j * ldk, k + j * ldk, ldk, 1);
        round_row(vb + (j / 2) * 2 * ldk + (j % 2), v + j * ldk, ldk, 2);
    }
    if (r1 > r0 && r1 % 2) {
        uint16_t *vo = vb + (r1 / 2) * 2 * ldk + 1;
        for (int64_t c = 0; c < ldk; c++) vo[2 * c] = 0;
    }
}
