/* isa_avx512.c - the ISA table's AVX-512 rows (isa.h): with AVX512_BF16 (vdpbf16ps GEMM) and
 * without (bf16 widened to fp32 + FMA; same packed weights, same A block bytes). The int8 kind:
 * vpdpbusd kernels in both rows, run only where the CPU also has AVX512_VNNI (their `needs`);
 * elsewhere the portable int8 GEMM. Both use the
 * AVX-512 packer, attention and row kernels. Only pointers here: the kernels are in *_avx512.c. */
#include "ops/fast/simd_avx512.h"
#include "rt/cpu.h"

#define AVX512_COMMON                                                                          \
    .pack_fill = pi0_fast_pack_fill_avx512, .attention_scratch = pi0_fast_attention_avx512_scratch, \
    .attention_ok = pi0_fast_attention_avx512_ok, .attention = pi0_fast_attention_avx512,     \
    .gelu_tanh = pi0_fast_gelu_tanh_avx512, .swish = pi0_fast_swish_avx512,                  \
    .layernorm_row = pi0_fast_layernorm_row_avx512, .rmsnorm_row = pi0_fast_rmsnorm_row_avx512

const pi0_fast_isa pi0_fast_isa_avx512bf16 = {
    .name = "avx512-bf16",
    .needs = PI0_CAP_AVX512 | PI0_CAP_AVX512BF16,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx512_dp, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx512_f32,
             [PI0_WEIGHTS_INT8] = &pi0_fast_gemm_avx512_vnni},
    AVX512_COMMON,
    .attention_bf16_scratch = pi0_fast_attention_bf16_avx512_scratch,
    .attention_bf16_ok = pi0_fast_attention_bf16_avx512_ok,
    .attention_bf16 = pi0_fast_attention_bf16_avx512,
};

const pi0_fast_isa pi0_fast_isa_avx512 = {
    .name = "avx512",
    .needs = PI0_CAP_AVX512,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx512_wd, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx512_f32,
             [PI0_WEIGHTS_INT8] = &pi0_fast_gemm_avx512_vnni},
    AVX512_COMMON,
};
