/* isa.h - the fast backend's ISA table: one row per instruction set, each a set of function
 * pointers (GEMM microkernels per weight format, weight packing, attention, row kernels), chosen
 * once per call site from the CPU flags by pi0_fast_isa_get (isa.c, the only place that decides).
 *
 * A new ISA is new files plus one row: its kernels in <file>_<isa>.c (compiled with that ISA's
 * flags by a pattern rule in mk/fast.mk, only on its architecture), its SIMD helpers (exp,
 * horizontal sums, tail masks) in simd_<isa>.h, its row `pi0_fast_isa_<isa>` in isa_<isa>.c, and
 * that row in isa.c's list (best first). A row may point at the portable kernels for what it does
 * not specialize. A weight format is a pi0_weight_kind index of `gemm` in every row that implements
 * it (NULL: the portable GEMM) plus its packed layout (pack.c); the int8 kind's kernels have their
 * own output stage (pi0_fast_i8_epilogue) and quantizer, run by the same driver.
 *
 * Results are not bit-identical across rows (tests compare each row to the reference backend with
 * the tolerances of tests/test_ops.c): a sum of many terms depends on its order, and the rows differ
 * in order where their vector width does (horizontal sums of 4, 8 or 16 lanes in the norms, the
 * attention blocks), in how a bf16 pair is accumulated (vdpbf16ps and BFDOT add the pair's two
 * products before one accumulation; BFDOT also rounds its intermediate sum in its own way (round to
 * odd, denormals flushed); the widening kernels do two fused multiply-adds) and in exp (each ISA's
 * polynomial vs libm's expf in the portable kernels). Within one row every output is computed by
 * the same sequence whatever the thread split, so results never depend on the thread count.
 */
#ifndef PI0_FAST_ISA_H
#define PI0_FAST_ISA_H

#include "ops/fast/fast.h"

#define PI0_FAST_FORMATS 3 /* packed weight formats, indexed by pi0_weight_kind: BF16, F32, INT8 */
#define PI0_FAST_MR_MAX 8  /* most rows a register tile may have */

/* A register-tile microkernel: rows 0..R-1 of A (converted block, or the caller's fp32 rows) times
 * one packed weight slice (kk k-groups of one column group), into C (R x ncols, ncols <= cols).
 * loadc: start from C (else zero); bias: added once at the end (NULL = none). During its first
 * pf_n k-groups it prefetches one 64-byte line of pf per k-group (the next slice; may be NULL). */
typedef void (*pi0_fast_gemm_kern)(const void *a, int64_t lda, const void *b, int64_t kk, float *c, int64_t ldc,
                                   int loadc, const float *bias, int64_t ncols, const char *pf, int64_t pf_n);
/* Convert rows [0, mb) x inputs [k0, k0+kc) of fp32 A into the kernels' A block (row stride lds
 * elements), zero past k; prefetch pf_lines lines of pf meanwhile (the first weight slice). */
typedef void (*pi0_fast_gemm_convert)(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0,
                                      int64_t kc, int64_t k, const char *pf, int64_t pf_lines);

/* int8 kind: what a kernel's output stage needs to dequantize its tile (rows r, columns j):
 * c[r, j] = (loadc ? c[r, j] : 0) + (float)(sum_r,j - wsum[j]) * (step[r] * scale[j]) + bias[j],
 * sum_r,j the int32 sum of u8 x s8 products over this k block; wsum and bias only in the last k
 * block (else NULL). The outlier side product is added afterwards by the driver. */
typedef struct {
    const float *step;    /* per row of the tile: activation step (pi0_fast_i8_row.step) */
    const float *scale;   /* per column: weight scale */
    const int32_t *wsum;  /* per column: compensation, or NULL */
    const float *bias;    /* per column, or NULL */
    int loadc;
} pi0_fast_i8_epilogue;
typedef void (*pi0_fast_gemm_kern_i8)(const void *a, int64_t lda, const void *b, int64_t kk, float *c, int64_t ldc,
                                      const pi0_fast_i8_epilogue *e, int64_t ncols, const char *pf, int64_t pf_n);
/* Quantize rows [0, mb) x inputs [k0, k0+kc) of fp32 A into the u8 A block with each row's
 * pi0_fast_i8_row (same bytes as pi0_fast_i8_quantize_generic); prefetch as convert does. */
typedef void (*pi0_fast_gemm_quantize)(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0,
                                       int64_t kc, int64_t k, const pi0_fast_i8_row *rq, const char *pf,
                                       int64_t pf_lines);

/* One ISA's kernels for one weight format, run by the shared driver in matmul.c. */
typedef struct {
    int mr;                        /* rows of the largest tile: kern[1..mr] are set */
    int cols;                      /* columns per kernel call: 16, 32 or 64 (divides PI0_FAST_NR) */
    int64_t kc;                    /* most inputs per k block */
    int64_t mc;                    /* most rows per m block (converted A only) */
    size_t a_elem;                 /* bytes per element of the converted A block; 0: A is read in place
                                    * (fp32 rows), k blocks of exactly kc, bias in the first block */
    pi0_fast_gemm_convert convert; /* NULL when a_elem is 0 */
    pi0_fast_gemm_kern kern[PI0_FAST_MR_MAX + 1];
    unsigned needs;                /* PI0_CAP_* bits needed beyond the row's (int8: a VNNI bit); a CPU
                                    * without them runs the portable GEMM */
    /* int8 kind (a_elem 1; kern unused): row statistics (NULL: portable), block quantizer, kernels */
    pi0_fast_i8_scan_fn scan;
    pi0_fast_gemm_quantize quantize;
    pi0_fast_gemm_kern_i8 kern_i8[PI0_FAST_MR_MAX + 1];
    pi0_fast_i8_side_fn side;      /* outlier side-product kernel (NULL: portable) */
} pi0_fast_gemm_kernels;

typedef struct pi0_fast_isa {
    const char *name;   /* "avx512-bf16", "avx512", "avx2-vnni", "avx2", "neon-bf16", "neon", "generic" */
    unsigned needs;     /* PI0_CAP_* bits (rt/cpu.h) the CPU must report */
    const pi0_fast_gemm_kernels *gemm[PI0_FAST_FORMATS]; /* NULL: portable GEMM (matmul_generic.c) */
    /* Fill packed weights (header set); returns 0 without writing for a dtype it does not handle.
     * Must write the same bytes as pi0_fast_pack_fill_generic. NULL: portable filler. */
    int (*pack_fill)(const pi0_fast_packed *p, const void *data, pi0_dtype dt);
    /* Attention for query rows [q0, q1) with scratch of attention_scratch(a) bytes; attention_ok 0
     * when a shape does not fit this kernel (then the portable one runs). */
    size_t (*attention_scratch)(const pi0_attention_args *a);
    int (*attention_ok)(const pi0_attention_args *a);
    void (*attention)(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
    /* The same over a bf16 copy of keys [0, a->nkb) (a->kb/vb, ops.h), the rest from a->k/v; run
     * when a->kb is set and attention_bf16_ok(a). NULL: this row keeps the fp32 kernel above (rows
     * without a bf16 dot product gain nothing from widening bf16 in registers). */
    size_t (*attention_bf16_scratch)(const pi0_attention_args *a);
    int (*attention_bf16_ok)(const pi0_attention_args *a);
    void (*attention_bf16)(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
    /* Row kernels: GELU (tanh form, times b unless b is NULL) and swish over n contiguous values;
     * one row of LayerNorm (w, b may be NULL) / Gemma RMSNorm (y = x·r·(1 + w); w NULL = plain). */
    void (*gelu_tanh)(float *y, const float *a, const float *b, int64_t n);
    void (*swish)(float *y, const float *a, int64_t n);
    void (*layernorm_row)(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
    void (*rmsnorm_row)(float *y, const float *x, const float *w, int64_t d, float eps);
} pi0_fast_isa;

/* The row for this CPU: the first of isa.c's list whose needs the CPU flags cover (PI0_CPU_CAPS
 * lowers them), or the one pi0_fast_isa_force set. Cheap: called once per op call. */
const pi0_fast_isa *pi0_fast_isa_get(void);
/* The rows compiled into this build, best first (the last is always the portable one). */
int pi0_fast_isa_count(void);
const pi0_fast_isa *pi0_fast_isa_at(int i);
/* 1 if this CPU can run the row. */
int pi0_fast_isa_available(const pi0_fast_isa *isa);
/* TEST-ONLY: make pi0_fast_isa_get return `isa` (NULL: back to the CPU's choice). Returns 0 and
 * changes nothing if the CPU cannot run it. Not thread-safe: only while no op runs (test_ops). */
int pi0_fast_isa_force(const pi0_fast_isa *isa);

/* The rows (isa_<name>.c); only those of the target architecture are compiled. */
extern const pi0_fast_isa pi0_fast_isa_generic;
#if defined(__x86_64__)
extern const pi0_fast_isa pi0_fast_isa_avx512bf16, pi0_fast_isa_avx512, pi0_fast_isa_avx2vnni, pi0_fast_isa_avx2;
#endif
#if defined(__aarch64__)
extern const pi0_fast_isa pi0_fast_isa_neonbf16, pi0_fast_isa_neon;
#endif

#endif
