/* isa_avx2.c - the ISA table's AVX2 + FMA row (isa.h): CPUs without AVX-512. Packing is the
 * portable filler (load time only). Only pointers here: the kernels are in *_avx2.c. */
#include "ops/fast/simd_avx2.h"
#include "rt/cpu.h"

const pi0_fast_isa pi0_fast_isa_avx2 = {
    .name = "avx2",
    .needs = PI0_CAP_AVX2,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx2_bf16, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx2_f32},
    .attention_scratch = pi0_fast_attention_avx2_scratch,
    .attention_ok = pi0_fast_attention_avx2_ok,
    .attention = pi0_fast_attention_avx2,
    .gelu_tanh = pi0_fast_gelu_tanh_avx2,
    .swish = pi0_fast_swish_avx2,
    .layernorm_row = pi0_fast_layernorm_row_avx2,
    .rmsnorm_row = pi0_fast_rmsnorm_row_avx2,
};
