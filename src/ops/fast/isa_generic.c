/* isa_generic.c - the ISA table's portable row (isa.h): plain C that builds on any target, the
 * last row of every architecture's list. No GEMM microkernels: matmul.c then runs the portable
 * driver (matmul_generic.c). */
#include "ops/fast/isa.h"

const pi0_fast_isa pi0_fast_isa_generic = {
    .name = "generic",
    .needs = 0,
    .attention_scratch = pi0_fast_attention_generic_scratch,
    .attention_ok = pi0_fast_attention_generic_ok,
    .attention = pi0_fast_attention_generic,
    .attention_bf16_scratch = pi0_fast_attention_bf16_generic_scratch,
    .attention_bf16_ok = pi0_fast_attention_bf16_generic_ok,
    .attention_bf16 = pi0_fast_attention_bf16_generic,
    .gelu_tanh = pi0_fast_gelu_tanh_generic,
    .swish = pi0_fast_swish_generic,
    .layernorm_row = pi0_fast_layernorm_row_generic,
    .rmsnorm_row = pi0_fast_rmsnorm_row_generic,
};
