/* isa_avx2.c - the ISA table's AVX2 + FMA row (isa.h): CPUs without AVX-512. Packing is the
 * portable filler (load time only). Only pointers here: the kernels are in *_avx2.c. */
#include "ops/fast/isa.h"
#include "rt/cpu.h"

/* The kernels of this ISA (matmul_avx2.c, attention_avx2.c, vecmath_avx2.c). */
extern const pi0_fast_gemm_kernels pi0_fast_gemm_avx2_bf16, pi0_fast_gemm_avx2_f32;
size_t pi0_fast_attention_avx2_scratch(const pi0_attention_args *a);
int pi0_fast_attention_avx2_ok(const pi0_attention_args *a);
void pi0_fast_attention_avx2(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
void pi0_fast_gelu_tanh_avx2(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_avx2(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_avx2(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_avx2(float *y, const float *x, const float *w, int64_t d, float eps);

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
