/* ops.h - the op interface shared by the reference and fast backends.
 *
 * Model code never calls a backend directly: it calls pi0_op_*(ex, site, ...) (dispatch.c), which
 * picks the fast member when it exists and supports the shape, else the reference member, records
 * {site, op, backend, reason, calls, ns}, and in strict mode turns a fallback into an error.
 *
 * Every op works on raw float32 row-major arrays with explicit sizes. A backend member receives the
 * op's argument struct plus (ith, nth): it computes its share of the output (split by rows) and
 * must write every output element exactly once, so results do not depend on nth for the reference.
 * Weights ([out, in], PyTorch layout, y = x Wᵀ + b) are pi0_weight: the mapped checkpoint data in
 * its own dtype, plus an optional packed copy that the fast backend made at load.
 */
#ifndef PI0_OPS_H
#define PI0_OPS_H

#include <stdint.h>
#include <stddef.h>

#include "pi0.h"

typedef enum { PI0_DT_F32 = 0, PI0_DT_BF16 = 1, PI0_DT_F16 = 2, PI0_DT_I32 = 3, PI0_DT_I64 = 4 } pi0_dtype;

typedef struct pi0_weight {
    const char *name;   /* checkpoint tensor name (messages, audit) */
    pi0_dtype dtype;    /* dtype of `data` */
    const void *data;   /* [rows, cols] as stored in the checkpoint (memory-mapped) */
    int64_t rows, cols; /* out, in */
    void *packed;       /* fast backend's packed copy (owned by the context), or NULL */
    /* A GeGLU MLP's two input projections (set by the loader, NULL elsewhere): on the gate, its up
     * projection (same shape); on the up projection, its gate. A backend may prepare the pair as
     * one matrix for pi0_op_geglu (the fast one: gate->packed holds both, up->packed stays NULL). */
    struct pi0_weight *geglu_up, *geglu_gate;
} pi0_weight;

/* Exact conversion of one stored element to float (bf16 and f16 widen exactly). */
float pi0_weight_at(const pi0_weight *w, int64_t i);
float pi0_bf16_to_f32(uint16_t h);
float pi0_f16_to_f32(uint16_t h);
uint16_t pi0_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */

/* ---- op argument structs ------------------------------------------------------------------- */

/* y[m, n] = x[m, k] · Wᵀ + bias (n = w->rows, k = w->cols); accumulate: y += instead of y =.
 * Row strides: x has ldx floats per row (>= k), y has ldy (>= n). */
typedef struct {
    float *y; const float *x; const pi0_weight *w; const float *bias;
    int64_t m, ldx, ldy; int accumulate;
} pi0_matmul_args;

/* GeGLU MLP input: y[m, n] = gelu_tanh(x · Gᵀ) ⊙ (x · Uᵀ), G = gate, U = up ([n, k] each, n =
 * gate->rows, k = gate->cols), one op instead of two matmuls and a PI0_EW_GELU_TANH_MUL. The
 * reference computes each output from the two float dot products exactly as those three ops do.
 * Row strides: x has ldx floats per row (>= k), y has ldy (>= n). */
typedef struct {
    float *y; const float *x; const pi0_weight *gate, *up;
    int64_t m, ldx, ldy;
} pi0_geglu_args;

/* Multi-query / multi-head attention with the big_vision mask rule:
 * query i may see key j iff kc[j] <= qc[i] && qpad[i] && kpad[j] (a NULL array means all zero for
 * qc/kc, all valid for qpad/kpad). Masked logits are replaced by -2.3819763e38 as openpi does, so a
 * query with no visible key gets uniform weights. Query head h uses KV head h / (n_heads / n_kv).
 * out/q: [nq, n_heads*hd] (row stride ldq for q and ldo for out); k, v: [nk, n_kv*hd] (stride ldk). */
typedef struct {
    float *out; const float *q; const float *k; const float *v;
    int64_t nq, nk, ldq, ldk, ldo; int n_heads, n_kv, hd; float scale;
    const int32_t *qc, *kc; const uint8_t *qpad, *kpad;
    /* Optional bf16 copy of keys [0, nkb) (pi0_kv_bf16_fill): kb [nkb][ldk] row-major, vb in key pairs
     * (element (j, c) at (j/2)·2·ldk + 2c + j%2). k/v must still hold all nk keys in fp32: a backend
     * may read the copy instead of those rows (the fast one does where its ISA row has a bf16 kernel;
     * the reference never does). kb NULL or nkb 0: none. */
    const uint16_t *kb, *vb; int64_t nkb;
    /* Nonzero: a backend may round keys [nkb, nk) too (with q·scale and the softmax weights, as it
     * does over the copy; fp32 accumulation). The fast one does where its ISA row has a bf16 kernel,
     * per call into its own scratch (SigLIP: no copy, every key). */
    int round_bf16;
} pi0_attention_args;

/* Round K/V rows [r0, r1) (row stride ldk floats, ldk columns) to bf16 into the layout above
 * (round to nearest even); when r1 is odd, the unused second half of V's last pair is zeroed. */
void pi0_kv_bf16_fill(uint16_t *kb, uint16_t *vb, const float *k, const float *v, int64_t ldk, int64_t r0, int64_t r1);

/* LayerNorm (w, b) or Gemma RMSNorm (y = x·r·(1 + w)) over rows of d; w NULL for a plain
 * RMSNorm (used by the adaptive norm, which then applies pi0_modulate). */
typedef struct {
    float *y; const float *x; const float *w; const float *b; int64_t m, d; float eps;
} pi0_norm_args;

/* Elementwise ops on n values (rows ignored): see pi0_ew_kind. */
typedef enum {
    PI0_EW_GELU_TANH_MUL, /* y = gelu_tanh(a) * b          (GeGLU) */
    PI0_EW_GELU_TANH,     /* y = gelu_tanh(a) */
    PI0_EW_SWISH,         /* y = a * sigmoid(a) */
    PI0_EW_ADD,           /* y = a + b */
    PI0_EW_AXPY           /* y = a + alpha * b  (Euler step) */
} pi0_ew_kind;
typedef struct {
    float *y; const float *a; const float *b; int64_t n; float alpha; pi0_ew_kind kind;
} pi0_ew_args;

/* π0.5 adaptive norm apply, per row of d: y = y*(1 + scale) + shift (y already RMS-normalized),
 * and gated residual x += gate ⊙ f. kind selects which. */
typedef enum {
    PI0_MOD_SCALE_SHIFT,   /* y = y * (1 + scale) + shift  (reads scale, shift) */
    PI0_MOD_GATED_RESIDUAL /* y += f * gate                (reads f, gate) */
} pi0_mod_kind;
typedef struct {
    float *y; const float *f; const float *scale; const float *shift; const float *gate;
    int64_t m, d; pi0_mod_kind kind;
} pi0_mod_args;

/* RoPE (half split): for each row r, for each of n_heads heads of hd dims at stride ld,
 * θ_i = pos[r] * base^(-2i/hd); (u_i, u_{i+hd/2}) rotated. In place. cs, if not NULL, holds the
 * rows' precomputed (float)cos θ_i at cs[r*hd + i] and (float)sin θ_i at cs[r*hd + hd/2 + i]
 * (pi0_rope_table), so a model computes them once per inference instead of once per call. */
typedef struct {
    float *x; const int32_t *pos; int64_t m, ld; int n_heads, hd; float base; const float *cs;
} pi0_rope_args;

/* Fill cs[n][hd] for positions pos[n]: angles in double, cos/sin rounded to float. */
void pi0_rope_table(float *cs, const int32_t *pos, int64_t n, int hd, float base);

/* Gather rows of an embedding table: y[i] = scale * E[ids[i]] (E: w, rows = vocab). */
typedef struct {
    float *y; const pi0_weight *w; const int32_t *ids; int64_t m; float scale;
} pi0_embed_args;

/* SigLIP patch extraction (im2col): image [C, S, S] -> patches [(S/p)^2, C*p*p] in PyTorch
 * weight order (ch, ky, kx); token t = row-major patch index. */
typedef struct {
    float *y; const float *img; int c, s, p;
} pi0_patches_args;

/* The op list, written once. X(ENUM, member, "name", args type): the pi0_op enum, the backend
 * members, pi0_op_name, dispatch's switches and its pi0_op_<member> wrappers are generated from it.
 * Adding an op: one row here, its args struct above, a work estimate in dispatch.c (the build fails
 * without one), and the member in each backend that implements it (NULL = falls back to ref). */
#define PI0_OP_LIST(X)                                        \
    X(MATMUL, matmul, "matmul", pi0_matmul_args)             \
    X(GEGLU, geglu, "geglu", pi0_geglu_args)                 \
    X(ATTENTION, attention, "attention", pi0_attention_args) \
    X(LAYERNORM, layernorm, "layernorm", pi0_norm_args)      \
    X(RMSNORM, rmsnorm, "rmsnorm", pi0_norm_args)            \
    X(EW, ew, "elementwise", pi0_ew_args)                    \
    X(MOD, mod, "modulate", pi0_mod_args)                    \
    X(ROPE, rope, "rope", pi0_rope_args)                     \
    X(EMBED, embed, "embed", pi0_embed_args)                 \
    X(PATCHES, patches, "patches", pi0_patches_args)

#define PI0_OP_ENUM_(E, m, s, T) PI0_OP_##E,
typedef enum { PI0_OP_LIST(PI0_OP_ENUM_) PI0_OP_COUNT } pi0_op;
#undef PI0_OP_ENUM_

const char *pi0_op_name(pi0_op op);

/* What a backend's prepare step receives: the weight matrices to get ready for matmul (for the fast
 * backend: pack into w->packed; an accelerator would upload them), in the weight kind asked for:
 * kinds[i] for w[i] when kinds is given (the model decides per matrix: --weights int8 quantizes the
 * Gemma linear layers and keeps the rest bf16), else weight_kind for all.
 * Weights in `skip` are left as stored (the embedding table, which is gathered by row). */
typedef struct {
    pi0_weight *const *w; int n;
    const pi0_weight *skip;
    int weight_kind;                      /* pi0_weight_kind */
    const int *kinds;                     /* [n] pi0_weight_kind per weight, or NULL (= weight_kind) */
    int n_threads;                        /* > 0 */
    int drop_source;                      /* w->data is a file mapping whose pages may be dropped
                                           * (madvise) once a weight is prepared */
    void (*progress)(float done, void *user); /* optional: fraction of the weights prepared, by stored bytes */
    void *progress_user;
} pi0_prepare_args;

/* A backend: one member per op (NULL = not implemented), and an optional predicate for shapes
 * it cannot handle; it writes the reason into `why` (e.g. "k=1153 not a multiple of 32").
 * Backends are found through pi0_backend_get / pi0_backend_find (backend.c), never named by model
 * code. */
#define PI0_OP_MEMBER_(E, m, s, T) void (*m)(const T *a, int ith, int nth);
typedef struct pi0_backend {
    const char *name;
    PI0_OP_LIST(PI0_OP_MEMBER_)
    /* Returns 1 if the op with these args is supported; else 0 and a reason in why[n]. NULL = all. */
    int (*supports)(pi0_op op, const void *args, char *why, size_t n);
    /* Load time: prepare the weights (pack / convert / upload); NULL = nothing to do. release undoes
     * it for the same weights (safe on weights prepare did not reach). */
    pi0_status (*prepare)(const pi0_prepare_args *a);
    void (*release)(pi0_weight *const *w, int n);
    /* The state arena (every activation buffer of a pi0_state, one block): NULL = host memory. */
    void *(*arena_alloc)(size_t bytes);
    void (*arena_free)(void *p);
} pi0_backend;
#undef PI0_OP_MEMBER_

/* The backends (backend.c): by the pi0_backend_kind of pi0.h, by name ("fast", "ref"), or all of
 * them in order (tests run every backend against ref). NULL when unknown. */
const pi0_backend *pi0_backend_get(pi0_backend_kind kind);
const pi0_backend *pi0_backend_find(const char *name);
int pi0_backend_count(void);
const pi0_backend *pi0_backend_at(int i);
/* The reference backend: the oracle, and what every other backend falls back to per op. */
const pi0_backend *pi0_backend_reference(void);
/* prepare / release one weight on the calling thread (tests, benchmarks). */
pi0_status pi0_backend_prepare_weight(const pi0_backend *be, pi0_weight *w, int weight_kind);
void pi0_backend_release_weight(const pi0_backend *be, pi0_weight *w);
/* The state arena through the backend's allocator (64-byte aligned, zeroed; NULL if out of memory). */
void *pi0_backend_arena_alloc(const pi0_backend *be, size_t bytes);
void pi0_backend_arena_free(const pi0_backend *be, void *p);

/* Split [0, n) into nth near-equal chunks; chunk ith is [*lo, *hi). */
static inline void pi0_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

#endif
