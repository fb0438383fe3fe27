/* isa_avx512.c - the ISA table's AVX-512 rows (isa.h): with AVX512_BF16 (vdpbf16ps GEMM) and
 * without (bf16 widened to fp32 + FMA; same packed weights, same A block bytes). Both use the
 * AVX-512 packer, attention and row kernels. Only pointers here: the kernels are in *_avx512.c. */
#include "ops/fast/isa.h"
#include "rt/cpu.h"

/* The kernels of this ISA (matmul_avx512.c, pack_avx512.c, attention_avx512.c, vecmath_avx512.c). */
extern const pi0_fast_gemm_kernels pi0_fast_gemm_avx512_dp, pi0_fast_gemm_avx512_wd, pi0_fast_gemm_avx512_f32;
int pi0_fast_pack_fill_avx512(const pi0_fast_packed *p, const void *data, pi0_dtype dt);
size_t pi0_fast_attention_avx512_scratch(const pi0_attention_args *a);
int pi0_fast_attention_avx512_ok(const pi0_attention_args *a);
void pi0_fast_attention_avx512(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
void pi0_fast_gelu_tanh_avx512(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_avx512(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_avx512(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_avx512(float *y, const float *x, const float *w, int64_t d, float eps);

#define AVX512_COMMON                                                                          \
    .pack_fill = pi0_fast_pack_fill_avx512, .attention_scratch = pi0_fast_attention_avx512_scratch, \
    .attention_ok = pi0_fast_attention_avx512_ok, .attention = pi0_fast_attention_avx512,     \
    .gelu_tanh = pi0_fast_gelu_tanh_avx512, .swish = pi0_fast_swish_avx512,                  \
    .layernorm_row = pi0_fast_layernorm_row_avx512, .rmsnorm_row = pi0_fast_rmsnorm_row_avx512

const pi0_fast_isa pi0_fast_isa_avx512bf16 = {
    .name = "avx512-bf16",
    .needs = PI0_CAP_AVX512 | PI0_CAP_AVX512BF16,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx512_dp, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx512_f32},
    AVX512_COMMON,
};

const pi0_fast_isa pi0_fast_isa_avx512 = {
    .name = "avx512",
    .needs = PI0_CAP_AVX512,
    .gemm = {[PI0_WEIGHTS_BF16] = &pi0_fast_gemm_avx512_wd, [PI0_WEIGHTS_F32] = &pi0_fast_gemm_avx512_f32},
    AVX512_COMMON,
};
