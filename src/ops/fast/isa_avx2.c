/* isa_avx2.c - the ISA table's AVX2 + FMA rows (isa.h): CPUs without AVX-512. Two rows that differ
 * only in the int8 GEMM: avx2-vnni (AVX-VNNI's 256-bit vpdpbusd: Intel Alder Lake and later client
 * cores, AMD Zen 5) before avx2 (vpmaddubsw on signed activations: Haswell to Zen 3), so isa.c's
 * first-match rule picks the VNNI kernels when the CPU has them. Packing is the portable filler
 * (load time only). Only pointers here: the kernels are in *_avx2.c. */
#include "ops/fast/simd_avx2.h"
#include "rt/cpu.h"

#define AVX2_COMMON                                                                                      \
    .attention_scratch = pi0_fast_attention_avx2_scratch, .attention_ok = pi0_fast_attention_avx2_ok,    \
    .attention = pi0_fast_attention_avx2, .gelu_tanh = pi0_fast_gelu_tanh_avx2, .swish = pi0_fast_swish_avx2, \
    .layernorm_row = pi0_fast_layernorm_row_avx2, .rmsnorm_row = pi0_fast_rmsnorm_row_avx2

const pi0_fast_isa pi0_fast_isa_avx2vnni = {
    .name = "avx2-vnni",
    .needs = PI0_CAP_AVX2 | PI0_CAP_AVXVNNI,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx2_bf16, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx2_f32,
             [PI0_WEIGHTS_INT8] = &pi0_fast_gemm_avx2_i8vnni},
    AVX2_COMMON,
};

const pi0_fast_isa pi0_fast_isa_avx2 = {
    .name = "avx2",
    .needs = PI0_CAP_AVX2,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx2_bf16, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx2_f32,
             [PI0_WEIGHTS_INT8] = &pi0_fast_gemm_avx2_i8},
    AVX2_COMMON,
};
