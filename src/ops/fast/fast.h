/* fast.h - internals shared by the fast backend's files (src/ops/fast/): the packed weight layout,
 * the GEMM job, per-thread scratch and the portable kernels. The per-ISA kernels are reached only
 * through the ISA table (isa.h), chosen at run time from the CPU flags (rt/cpu.h).
 *
 * Packed weight layout (made once at load by pack(), independent of the ISA that reads it):
 *   the n output columns are cut into panels of PI0_FAST_NR = 64 columns (the last one zero-padded);
 *   bf16 kind: panel p is [kp/2][64][2] uint16 (kp = k rounded up to even, pad zero): element
 *              (col j, in i) of panel p sits at p*kp*64 + (i/2)*128 + j*2 + (i%2), so one 64-byte
 *              load holds 16 columns x 2 consecutive inputs, the operand of vdpbf16ps;
 *   f32 kind:  panel p is [k][64] float: element (j, i) at p*k*64 + i*64 + j.
 * Any k-range [k0, k1) with k0 even is a contiguous slice of a panel, so kernels block over k
 * without a second layout.
 */
#ifndef PI0_FAST_H
#define PI0_FAST_H

#include <stdint.h>
#include <stddef.h>

#include "ops/ops.h"

#define PI0_FAST_NR 64

typedef struct {
    int kind;          /* pi0_weight_kind: PI0_WEIGHTS_BF16 or PI0_WEIGHTS_F32 */
    int64_t n, k;      /* output columns (w->rows), inputs (w->cols) */
    int64_t kp;        /* k rounded up to even (bf16 kind) or k (f32 kind) */
    int64_t n_panels;  /* ceil(n / 64) */
    void *data;        /* 64-byte aligned panels, see above */
    size_t mapped;     /* pi0_fast_pack_weight: length of data's mmap (0 = from the heap) */
} pi0_fast_packed;

/* k blocks of a GEMM: kp cut into ceil(kp / kc_max) near-equal even blocks (1152 -> one block, 4304
 * -> 3 x 1436 rather than 4 x 1024 + 208), so no short tail block pays a full C reload and A
 * conversion. Returns the block length; the last block may be shorter. Row tiles and m blocks are
 * cut the same near-equal way by pi0_split (ops.h): 50 rows in 9 tiles -> 6,6,6,6,6,5,5,5,5. */
static inline int64_t pi0_fast_kblock(int64_t kp, int64_t kc_max) {
    int64_t nkb = (kp + kc_max - 1) / kc_max;
    return ((kp + nkb - 1) / nkb + 1) & ~(int64_t)1;
}

/* One GEMM job: c[m, cols of panels p0..p1) (=|+=) a[m, k] · Bᵀ + bias, B packed.
 * Columns >= b->n are never written. lda, ldc in floats. */
typedef struct {
    float *c; int64_t ldc;
    const float *a; int64_t lda;
    const pi0_fast_packed *b;
    const float *bias;       /* [n] or NULL */
    int64_t m;
    int accumulate;          /* 1: c += ..., 0: c = ... */
    int64_t p0, p1;          /* panel range */
} pi0_fast_gemm_job;

/* Run a GEMM job with the kernels of the ISA table's current row (pi0_fast_isa_get), or of a given
 * row (tests, benchmarks); the portable driver (matmul_generic.c: one row x one panel at a time)
 * when the row has no kernels for the weight format. */
struct pi0_fast_isa;
void pi0_fast_gemm(const pi0_fast_gemm_job *j);
void pi0_fast_gemm_isa(const struct pi0_fast_isa *isa, const pi0_fast_gemm_job *j);
void pi0_fast_gemm_generic(const pi0_fast_gemm_job *j);

/* Per-thread scratch owned by the fast backend: grown on first use (or when a bigger size is
 * asked), freed when the thread exits. slot 0..PI0_FAST_SCRATCH_SLOTS-1 lets one op hold several
 * buffers at once. Returns NULL only if the allocation fails. 64-byte aligned. */
#define PI0_FAST_SCRATCH_SLOTS 4
void *pi0_fast_scratch(int slot, size_t nbytes);

/* Pack a [n, k] weight (rows of k in the given dtype) into the layout above. */
pi0_status pi0_fast_pack_weight(pi0_fast_packed **out, const void *data, pi0_dtype dt, int64_t n,
                                int64_t k, int kind, const char *name);
void pi0_fast_packed_free(pi0_fast_packed *p);
size_t pi0_fast_packed_bytes(int64_t n, int64_t k, int kind);
/* Fill p->data (header already set, buffer of pi0_fast_packed_bytes) from [n, k] rows in dtype dt.
 * An ISA row's pack_fill must write the same bytes. Pure function: safe on several threads at once. */
void pi0_fast_pack_fill_generic(const pi0_fast_packed *p, const void *data, pi0_dtype dt);

/* The portable kernels (the generic ISA row, and what other rows fall back to or point at).
 * Attention for query rows [q0, q1) (attention.c); scratch holds a->nk floats. */
size_t pi0_fast_attention_generic_scratch(const pi0_attention_args *a);
int pi0_fast_attention_generic_ok(const pi0_attention_args *a);
void pi0_fast_attention_generic(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
/* Row kernels (vecmath_generic.c): GELU-tanh (times b unless NULL), swish on contiguous spans; one
 * row of LayerNorm (w, b may be NULL) / Gemma RMSNorm (y = x·r·(1 + w); w NULL = plain). */
void pi0_fast_gelu_tanh_generic(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_generic(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_generic(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_generic(float *y, const float *x, const float *w, int64_t d, float eps);

/* The backend (fast.c) and its op members (in the other files of this directory). */
extern const pi0_backend pi0_backend_fast;
void pi0_fast_matmul(const pi0_matmul_args *a, int ith, int nth);
void pi0_fast_attention(const pi0_attention_args *a, int ith, int nth);
void pi0_fast_layernorm(const pi0_norm_args *a, int ith, int nth);
void pi0_fast_rmsnorm(const pi0_norm_args *a, int ith, int nth);
void pi0_fast_ew(const pi0_ew_args *a, int ith, int nth);
void pi0_fast_mod(const pi0_mod_args *a, int ith, int nth);
void pi0_fast_rope(const pi0_rope_args *a, int ith, int nth);
void pi0_fast_embed(const pi0_embed_args *a, int ith, int nth);
void pi0_fast_patches(const pi0_patches_args *a, int ith, int nth);

/* bf16 helpers (round to nearest even; NaN stays NaN). */
static inline uint16_t pi0_fast_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    v.u += 0x7fffu + ((v.u >> 16) & 1);
    return (uint16_t)(v.u >> 16);
}
static inline float pi0_fast_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}

#endif
