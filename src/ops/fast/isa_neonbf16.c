/* isa_neonbf16.c - the ISA table's NEON + BF16 row (isa.h): the neon row with the bf16 GEMM on BFDOT
 * (matmul_neonbf16.c), for cores whose HWCAP2 reports BF16. */
#include "ops/fast/simd_neon.h"
#include "rt/cpu.h"

const pi0_fast_isa pi0_fast_isa_neonbf16 = {
    .name = "neon-bf16",
    .needs = PI0_CAP_NEON | PI0_CAP_NEON_BF16,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_neonbf16_dot, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_neon_f32,
             [PI0_WEIGHTS_INT8] = &pi0_fast_gemm_neon_i8dot},
    .attention_scratch = pi0_fast_attention_generic_scratch,
    .attention_ok = pi0_fast_attention_generic_ok,
    .attention = pi0_fast_attention_generic,
    .gelu_tanh = pi0_fast_gelu_tanh_neon,
    .swish = pi0_fast_swish_neon,
    .layernorm_row = pi0_fast_layernorm_row_neon,
    .rmsnorm_row = pi0_fast_rmsnorm_row_neon,
};
