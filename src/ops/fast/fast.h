/* fast.h - internals shared by the fast backend's files (src/ops/fast/): the packed weight layout,
 * the GEMM job, per-thread scratch and the portable kernels. The per-ISA kernels are reached only
 * through the ISA table (isa.h), chosen at run time from the CPU flags (rt/cpu.h).
 *
 * Packed weight layout (made once at load by pack(), independent of the ISA that reads it):
 *   the n output columns are cut into panels of PI0_FAST_NR = 64 columns (the last one zero-padded);
 *   bf16 kind: panel p is [kp/2][64][2] uint16 (kp = k rounded up to even, pad zero): element
 *              (col j, in i) of panel p sits at p*kp*64 + (i/2)*128 + j*2 + (i%2), so one 64-byte
 *              load holds 16 columns x 2 consecutive inputs, the operand of vdpbf16ps;
 *   f32 kind:  panel p is [k][64] float: element (j, i) at p*k*64 + i*64 + j;
 *   int8 kind: panel p is [kp/4][64][4] int8 (kp = k rounded up to a multiple of 4, pad zero):
 *              element (j, i) at p*kp*64 + (i/4)*256 + j*4 + (i%4), so one 64-byte load holds 16
 *              columns x 4 consecutive inputs, the signed operand of vpdpbusd. The weights are
 *              quantized symmetrically per output channel j (quant_int8.c): scale_j = max_i |w_ji|
 *              / 127, q = round-to-nearest-even(w / scale_j) in [-127, 127] (a zero row: scale 0,
 *              q 0). After the panels (n_panels*kp*64 bytes, a multiple of 64) come scale[j] (float)
 *              and wsum[j] = 128 * sum_i q_ji (int32), n_panels*64 of each, zero past n: the
 *              compensation of the unsigned activation offset (activations enter the kernels as
 *              u8 = q + 128, so sum_i u8_i q_ji - wsum[j] = sum_i q_i q_ji exactly).
 * Any k-range [k0, k1) with k0 a multiple of the kind's input group (2, 1, 4) is a contiguous
 * slice of a panel, so kernels block over k without a second layout.
 * GeGLU pair (pair = 1, pi0_fast_pack_pair): a gate and an up projection [n, k] packed as one
 *   matrix whose panels alternate: panel 2q holds gate columns [64q, 64q + 64), panel 2q + 1 the up
 *   columns of the same range (each in the kind's layout above, so n_panels = 2 ceil(n / 64); int8:
 *   scale/wsum indexed by the panel's own 64 slots, 2q·64 + j and (2q + 1)·64 + j). A GEMM job on
 *   it writes gelu_tanh(gate) * up to its [m, n] output (pi0_fast_gemm_job).
 */
#ifndef PI0_FAST_H
#define PI0_FAST_H

#include <stdint.h>
#include <stddef.h>

#include "ops/ops.h"

#define PI0_FAST_NR 64

typedef struct {
    int kind;          /* pi0_weight_kind: PI0_WEIGHTS_BF16, PI0_WEIGHTS_F32 or PI0_WEIGHTS_INT8 */
    int64_t n, k;      /* output columns (w->rows), inputs (w->cols) */
    int64_t kp;        /* k rounded up to even (bf16), to a multiple of 4 (int8), or k (f32) */
    int64_t n_panels;  /* ceil(n / 64) */
    void *data;        /* 64-byte aligned panels, see above */
    size_t mapped;     /* pi0_fast_pack_weight: length of data's mmap (0 = from the heap) */
    float *scale;      /* int8 kind: per-column weight scale, in data after the panels (else NULL) */
    int32_t *wsum;     /* int8 kind: per-column compensation 128 * sum_i q_ji, after scale */
    /* int8 kind: the input columns kept exactly (quant_int8.c, pi0_fast_i8_pick_exact): n_exact
     * (<= PI0_I8_EXACT_CAP; a GeGLU pair: the union of its two matrices', <= 2x) indices ascending,
     * and their weights in fp32 as exact[e][j] (row stride n_panels*64, zero past n), one allocation
     * (exact_idx first) freed with the packed weight. */
    int n_exact;
    int32_t *exact_idx;
    float *exact;
    const char *name;  /* the weight's name (diagnostics: PI0_INT8_STATS); the caller's string */
    int pair;          /* 1: a GeGLU gate|up pair (panels alternate, see above); n is each one's columns */
} pi0_fast_packed;

/* Columns of panel p that hold weights (64, or fewer in the last panel, or last pair). */
static inline int64_t pi0_fast_panel_cols(const pi0_fast_packed *b, int64_t p) {
    int64_t left = b->n - (b->pair ? p / 2 : p) * 64;
    return left < 64 ? left : 64;
}

/* k blocks of a GEMM: kp cut into ceil(kp / kc_max) near-equal even blocks (1152 -> one block, 4304
 * -> 3 x 1436 rather than 4 x 1024 + 208), so no short tail block pays a full C reload and A
 * conversion. Returns the block length; the last block may be shorter. Row tiles and m blocks are
 * cut the same near-equal way by pi0_split (ops.h): 50 rows in 9 tiles -> 6,6,6,6,6,5,5,5,5. */
static inline int64_t pi0_fast_kblock(int64_t kp, int64_t kc_max) {
    int64_t nkb = (kp + kc_max - 1) / kc_max;
    return ((kp + nkb - 1) / nkb + 1) & ~(int64_t)1;
}
/* The same with blocks a multiple of 4 (int8 kind: kp and kc_max multiples of 4). */
static inline int64_t pi0_fast_kblock4(int64_t kp, int64_t kc_max) {
    int64_t nkb = (kp + kc_max - 1) / kc_max;
    return ((kp + nkb - 1) / nkb + 3) & ~(int64_t)3;
}

/* One GEMM job: c[m, cols of panels p0..p1) (=|+=) a[m, k] · Bᵀ + bias, B packed.
 * Columns >= b->n are never written. lda, ldc in floats.
 * B a GeGLU pair (b->pair): p0, p1 even, c[m, columns 64·p0/2 .. 64·p1/2) = gelu_tanh(a·Gateᵀ) ⊙
 * (a·Upᵀ); accumulate 0 and bias NULL. The drivers keep the pair's two C tiles in a per-thread
 * scratch and write only the product. */
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

/* int8 kind (quant_int8.c): activations are quantized per row (token) with a dynamic scale over the
 * whole row; a few outlier channels per row (|x_i| > PI0_I8_OUTLIER_T * rms of the rest, at most
 * PI0_I8_OUTLIER_CAP) are left out of the int8 product (quantized as 0) and added exactly in fp32
 * as a side product x_i * scale_j * q_ji. Why these numbers: quant_int8.c. */
#define PI0_I8_OUTLIER_T 6.0f
#define PI0_I8_OUTLIER_CAP 16
/* One activation row's quantization: q_i = round(x_i * inv) in [-127, 127] (outliers: 0),
 * x_i ~ q_i * step. step NaN when the row has a NaN or an infinity (its outputs are then NaN). */
typedef struct {
    float step, inv;
    int n_out;                          /* outlier channels, indices ascending */
    int32_t out[PI0_I8_OUTLIER_CAP];
    uint8_t scans;                      /* diagnostics (PI0_INT8_STATS): row scans made */
    uint8_t whole;                      /* 1: heavy-tailed (too many or still growing), quantized whole */
} pi0_fast_i8_row;
/* Row statistics primitive (an ISA row may provide its own; it must give the same bits): over
 * |x_i| for i < k, those <= thr add x_i^2 into lane i % 16 of lanes (in index order, multiply then
 * add, no FMA) and their largest bit pattern into *maxbits (NaN > inf > finite); those > thr are
 * counted in *count and the first `cap` of them (ascending) stored in idx. */
typedef void (*pi0_fast_i8_scan_fn)(const float *x, int64_t k, float thr, float lanes[16], uint32_t *maxbits,
                                    int64_t *count, int32_t *idx, int64_t cap);
void pi0_fast_i8_scan_generic(const float *x, int64_t k, float thr, float lanes[16], uint32_t *maxbits,
                              int64_t *count, int32_t *idx, int64_t cap);
/* Quantization of the row x[0..k) (scan: the ISA's primitive, NULL = portable). */
void pi0_fast_i8_row_prepare(pi0_fast_i8_row *r, const float *x, int64_t k, pi0_fast_i8_scan_fn scan);
/* Portable block quantizer (the int8 kernels' A block): rows [0, mb) x inputs [k0, k0 + kc) to
 * u8 = q + 128 (row stride lds bytes), 128 past k and at outlier channels. */
void pi0_fast_i8_quantize_generic(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0,
                                  int64_t kc, int64_t k, const pi0_fast_i8_row *rq, const char *pf, int64_t pf_lines);
/* Side-product kernel (an ISA row's entry, isa.h; all give the portable one's bits): for the 64
 * columns of one int8 panel, acc[j] = sum over o = 0..n-1, in that order, of xv[o] * (float)q_j,idx[o]
 * (a product rounded, then added: no FMA), acc starting at 0. */
typedef void (*pi0_fast_i8_side_fn)(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n);
void pi0_fast_i8_side_generic(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n);
#if defined(__x86_64__)
void pi0_fast_i8_side_avx512(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n);
void pi0_fast_i8_side_avx2(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n);
#endif
#if defined(__aarch64__)
void pi0_fast_i8_side_neon(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n);
#endif
/* Adds the outlier side product of rows [0, mb) to the columns of panel p: over the row's outlier
 * channels o, c[r, j] += scale_j * sum_o x[r, o] * q_jo, and for the channels among b's exact
 * columns (their int8 weights keep too few levels, pi0_fast_i8_pick_exact) c[r, j] += sum_o x[r, o]
 * * w_jo with the exact weight instead. kern: the ISA's side-product kernel (NULL: portable). */
void pi0_fast_i8_side(float *c, int64_t ldc, const float *a, int64_t lda, int64_t mb, const pi0_fast_i8_row *rq,
                      const pi0_fast_packed *b, int64_t p, pi0_fast_i8_side_fn kern);
/* At load, after packing (pack.c): choose the input columns of an int8 weight whose int8 values keep
 * too few levels (relative quantization error of the column > PI0_I8_EXACT_REL, at most
 * PI0_I8_EXACT_CAP, the worst first) and keep them in fp32 (b->exact*). data: the [n, k] source rows. */
#define PI0_I8_EXACT_CAP 32
pi0_status pi0_fast_i8_pick_exact(pi0_fast_packed *b, const void *data, pi0_dtype dt);
/* TEST-ONLY: use the exact columns in the side product (1, the default) or not (0: the int8 weights
 * of every outlier channel); PI0_INT8_EXACT=0 starts it off. Not thread-safe: only while no op runs. */
void pi0_fast_int8_exact(int on);
/* TEST-ONLY: outlier handling on (1, the default) or off (0); the environment variable
 * PI0_INT8_OUTLIERS=0, read once at first use, starts it off (diagnostics). Not thread-safe: only
 * while no op runs. */
void pi0_fast_int8_outliers(int on);
int pi0_fast_int8_outliers_on(void);
/* MEASUREMENT-ONLY (bench/quant_outliers.c): the threshold T (<= 0: back to PI0_I8_OUTLIER_T). */
void pi0_fast_int8_outlier_threshold(float t);

/* Per-thread scratch owned by the fast backend: grown on first use (or when a bigger size is
 * asked), freed when the thread exits. slot 0..PI0_FAST_SCRATCH_SLOTS-1 lets one op hold several
 * buffers at once. Returns NULL only if the allocation fails. 64-byte aligned. */
#define PI0_FAST_SCRATCH_SLOTS 4
void *pi0_fast_scratch(int slot, size_t nbytes);

/* Pack a [n, k] weight (rows of k in the given dtype) into the layout above. */
pi0_status pi0_fast_pack_weight(pi0_fast_packed **out, const void *data, pi0_dtype dt, int64_t n,
                                int64_t k, int kind, const char *name);
/* Pack a GeGLU gate and up projection (both [n, k] in dtype dt) as one pair (layout above). */
pi0_status pi0_fast_pack_pair(pi0_fast_packed **out, const void *gate, const void *up, pi0_dtype dt, int64_t n,
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
/* The same reading keys [0, a->nkb) from the bf16 copy a->kb/vb (widened exactly); scratch a->nk floats. */
size_t pi0_fast_attention_bf16_generic_scratch(const pi0_attention_args *a);
int pi0_fast_attention_bf16_generic_ok(const pi0_attention_args *a);
void pi0_fast_attention_bf16_generic(const pi0_attention_args *a, int64_t q0, int64_t q1, void *scratch);
/* Row kernels (vecmath_generic.c): GELU-tanh (times b unless NULL), swish on contiguous spans; one
 * row of LayerNorm (w, b may be NULL) / Gemma RMSNorm (y = x·r·(1 + w); w NULL = plain). */
void pi0_fast_gelu_tanh_generic(float *y, const float *a, const float *b, int64_t n);
void pi0_fast_swish_generic(float *y, const float *a, int64_t n);
void pi0_fast_layernorm_row_generic(float *y, const float *x, const float *w, const float *b, int64_t d, float eps);
void pi0_fast_rmsnorm_row_generic(float *y, const float *x, const float *w, int64_t d, float eps);

/* The backend (fast.c) and its op members (in the other files of this directory). */
extern const pi0_backend pi0_backend_fast;
void pi0_fast_matmul(const pi0_matmul_args *a, int ith, int nth);
void pi0_fast_geglu(const pi0_geglu_args *a, int ith, int nth);
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
