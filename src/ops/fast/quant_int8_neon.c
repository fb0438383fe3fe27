/* quant_int8_neon.c - the int8 outlier side-product kernel for the NEON rows (isa.h entry `side`,
 * declared in fast.h; the portable one and what it computes: quant_int8.c). As the AVX-512 one
 * (quant_int8_avx512.c) with sixteen 16-byte loads for the 64 columns: the byte i%4 of each dword
 * shifted to the top (vshlq by a register) and back arithmetically, converted, multiplied, then
 * added (vmulq + vaddq, not the fused vfmaq: same bits as the portable kernel). */
#include <arm_neon.h>

#include "ops/fast/fast.h"

void pi0_fast_i8_side_neon(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n) {
    float32x4_t a[16];
    for (int v = 0; v < 16; v++) a[v] = vdupq_n_f32(0.0f);
    for (int o = 0; o < n; o++) {
        const int8_t *g = panel + (idx[o] >> 2) * (4 * PI0_FAST_NR);
        const int32x4_t up = vdupq_n_s32(24 - 8 * (idx[o] & 3));
        const float32x4_t x = vdupq_n_f32(xv[o]);
        for (int v = 0; v < 16; v++) {
            int32x4_t w = vshrq_n_s32(vshlq_s32(vld1q_s32((const int32_t *)(const void *)(g + 16 * v)), up), 24);
            a[v] = vaddq_f32(a[v], vmulq_f32(x, vcvtq_f32_s32(w)));
        }
    }
    for (int v = 0; v < 16; v++) vst1q_f32(acc + 4 * v, a[v]);
}
