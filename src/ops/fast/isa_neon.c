/* isa_neon.c - the ISA table's NEON row (isa.h): every AArch64 core (ARMv8.2: Cortex-A76 in the
 * Raspberry Pi 5, A78AE in Jetson Orin, Apple M1). GEMM and row kernels in *_neon.c; attention and
 * packing are the portable ones (compilers vectorize their inner loops for NEON). int8 GEMM on SDOT
 * (matmul_int8_neon.c) where the core has the dot product, else the portable one. */
#include "ops/fast/simd_neon.h"
#include "rt/cpu.h"

const pi0_fast_isa pi0_fast_isa_neon = {
    .name = "neon",
    .needs = PI0_CAP_NEON,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_neon_bf16, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_neon_f32,
             [PI0_WEIGHTS_INT8] = &pi0_fast_gemm_neon_i8dot},
    .attention_scratch = pi0_fast_attention_generic_scratch,
    .attention_ok = pi0_fast_attention_generic_ok,
    .attention = pi0_fast_attention_generic,
    .gelu_tanh = pi0_fast_gelu_tanh_neon,
    .swish = pi0_fast_swish_neon,
    .layernorm_row = pi0_fast_layernorm_row_neon,
    .rmsnorm_row = pi0_fast_rmsnorm_row_neon,
};
