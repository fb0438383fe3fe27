/* model.h - the π0 / π0.5 model: weights (context), per-inference buffers (state), forward stages.
 *
 * Dimension letters used in shape comments (PI0_MODEL.md §1):
 *   T  = image tokens per slot ((S/p)^2: 256), Dv = vision width (1152), Iv = vision MLP (4304),
 *   Cp = C·p·p patch vector (588), W = VLM width (2048), M = VLM MLP (16384), We = expert width
 *   (1024), Me = expert MLP (4096), nh/nkv/hd = heads / KV heads / head dim (8/1/256), HD = nh·hd,
 *   KV = nkv·hd, V = vocab, H = horizon, A = action dim, P = prefix tokens, Ns = suffix tokens.
 */
#ifndef PI0_MODEL_H
#define PI0_MODEL_H

#include "err.h"
#include "ops/dispatch.h"
#include "pi0.h"

typedef struct {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* (Dv) */
    pi0_weight q, k, v, o;                /* (Dv, Dv) */
    float *q_b, *k_b, *v_b, *o_b;         /* (Dv) */
    pi0_weight fc1;                       /* (Iv, Dv) */
    float *fc1_b;                         /* (Iv) */
    pi0_weight fc2;                       /* (Dv, Iv) */
    float *fc2_b;                         /* (Dv) */
} pi0_vision_layer;

/* A Gemma block; the VLM and the expert share this layout. Plain norms have attn_norm/mlp_norm
 * weights (width); adaptive (π0.5 expert) norms have a dense layer (3·width, cond) instead. */
typedef struct {
    float *attn_norm, *mlp_norm;         /* (D) plain RMSNorm offsets, or NULL */
    pi0_weight attn_ada, mlp_ada;        /* (3D, We) adaptive-norm dense, π0.5 expert only */
    float *attn_ada_b, *mlp_ada_b;       /* (3D) */
    pi0_weight q;                        /* (HD, D) */
    pi0_weight k, v;                     /* (KV, D) */
    pi0_weight o;                        /* (D, HD) */
    pi0_weight gate, up;                 /* (Mx, D) */
    pi0_weight down;                     /* (D, Mx) */
} pi0_gemma_layer;

typedef struct {
    /* vision tower */
    pi0_weight patch;                    /* (Dv, Cp) conv weight flattened (ch, ky, kx) */
    float *patch_b;                      /* (Dv) */
    float *pos_emb;                      /* (T, Dv) */
    pi0_vision_layer *vision;            /* [vision_depth] */
    float *post_ln_w, *post_ln_b;        /* (Dv) */
    pi0_weight proj;                     /* (W, Dv) */
    float *proj_b;                       /* (W) */
    /* VLM */
    pi0_weight embed;                    /* (V, W) embed_tokens or the tied lm_head */
    pi0_gemma_layer *vlm;                /* [vlm_depth] */
    float *vlm_norm;                     /* (W) final norm (unused by the policy) */
    /* action expert (its norms: RMS offsets or adaptive dense layers, as the family says) */
    pi0_gemma_layer *expert;             /* [expert_depth] */
    float *expert_norm;                  /* (We) final norm, RMS families (π0) */
    pi0_weight expert_norm_ada;          /* (3We, We) final norm, adaptive families (π0.5) */
    float *expert_norm_ada_b;            /* (3We) */
    /* projections every family has */
    pi0_weight action_in;                /* (We, A) */
    float *action_in_b;                  /* (We) */
    pi0_weight action_out;               /* (A, We) */
    float *action_out_b;                 /* (A) */
    /* bound by variant_pi0.c */
    pi0_weight state_proj;               /* (We, A) */
    float *state_proj_b;                 /* (We) */
    pi0_weight time_in_act, time_in_tau; /* action_time_mlp_in split by input columns: (We, We) each */
    float *time_in_b;                    /* (We) */
    /* bound by variant_pi0.c (action_time_mlp_out) and variant_pi05.c (time_mlp_out) */
    pi0_weight time_out;                 /* (We, We) */
    float *time_out_b;                   /* (We) */
    /* bound by variant_pi05.c */
    pi0_weight time_mlp_in;              /* (We, We) */
    float *time_mlp_in_b;                /* (We) */
} pi0_weights;

/* What a bound matrix is in the model (weights.c tags each one as it binds it): decides what
 * --weights int8 quantizes (pi0_role_weight_kind) and what it keeps in bf16. */
typedef enum {
    PI0_ROLE_VISION = 0,    /* SigLIP patch embedding (reads raw pixels; kept bf16 even with int8_vision) */
    PI0_ROLE_PROJECTOR,     /* multi-modal projector (vision width -> VLM width) */
    PI0_ROLE_EMBED,         /* token embedding (gathered by row, never packed) */
    PI0_ROLE_VLM_LINEAR,    /* Gemma 2B q/k/v/o, gate/up, down */
    PI0_ROLE_EXPERT_LINEAR, /* action expert q/k/v/o, gate/up, down */
    PI0_ROLE_MODULATION,    /* π0.5 adaptive-norm dense layers (per-layer and final) */
    PI0_ROLE_HEAD,          /* action in/out projections, state projection, time MLPs */
    PI0_ROLE_VISION_LINEAR, /* SigLIP encoder q/k/v/o, fc1, fc2: int8 only with pi0_params.int8_vision */
    PI0_ROLE_COUNT
} pi0_weight_role;

/* The kind a matrix of this role is packed into when the load asks for `kind` (pi0_weight_kind):
 * INT8 applies to the Gemma linear layers (VLM and expert), and to the SigLIP encoder's linear layers
 * when int8_vision is set (opt-in: the vision tower is the part published int8 work found sensitive);
 * every other role is kept in BF16. */
static inline int pi0_role_weight_kind(int role, int kind, int int8_vision) {
    if (kind != PI0_WEIGHTS_INT8) return kind;
    if (role == PI0_ROLE_VLM_LINEAR || role == PI0_ROLE_EXPERT_LINEAR) return PI0_WEIGHTS_INT8;
    if (role == PI0_ROLE_VISION_LINEAR && int8_vision) return PI0_WEIGHTS_INT8;
    return PI0_WEIGHTS_BF16;
}

struct pi0_ctx {
    pi0_config cfg;
    pi0_params params;
    pi0_weights w;
    void *files;          /* pi0_st_file ** (shards) */
    int n_files;
    void **owned;         /* float arrays and split weights made at load */
    int n_owned, cap_owned;
    pi0_weight **matrices;/* every pi0_weight bound (for packing) */
    unsigned char *roles; /* [n_matrices] pi0_weight_role of each */
    int n_matrices, cap_matrices;
    int64_t n_params, n_bytes;
    int discrete_state_given; /* config.json set discrete_state_input (the policy's robot default yields) */
};

/* One denoising step's time conditioning, from the model family's step_time (variant.h). */
typedef struct {
    const float *cond; /* (We) the conditioning vector (tapped as denoise.sNN.cond), or NULL */
    const float *mods; /* (2·depth + 1, 3We) per-layer adaptive-norm (scale, shift, gate), or NULL */
    /* Per-row time (training-time RTC): the first n0 action rows are at another time, whose
     * modulations (same layout as mods) are mods0; n0 = 0: every row uses mods. */
    const float *mods0;
    int n0;
} pi0_step_cond;

/* Per-inference buffers, sized once at pi0_state_new for the configured maxima. */
struct pi0_state {
    pi0_ctx *ctx;
    pi0_exec ex;
    int compact;          /* drop masked prefix tokens, cache π0 state K/V, skip unused layer-17 work */
    int kv_bf16;          /* attention reads the bf16 copy kb/vb of the prefix KV cache (fast path) */
    float *arena;         /* the one float allocation every buffer below points into */
    /* vision (rows = slots·T) */
    float *v_patches;     /* (slots·T, Cp) */
    float *v_h, *v_a;     /* (slots·T, Dv) */
    float *v_q, *v_k, *v_v, *v_o; /* (slots·T, Dv) */
    float *v_mlp;         /* (slots·T, Iv) */
    /* prefix (rows = Pmax) */
    float *p_x, *p_a;     /* (Pmax, W) */
    float *p_q, *p_o;     /* (Pmax, HD) */
    float *p_g;           /* (Pmax, M) */
    float **kc, **vc;     /* [depth] -> (Pmax + Ns, KV): prefix rows then suffix rows */
    uint16_t **kb, **vb;  /* [depth] -> (Pmax + 1, KV) bf16 copy of kc/vc's prefix rows, made by the
                           * prefill (pi0_kv_bf16_fill: attention reads it, ops.h), or NULL: fp32 KV */
    int32_t *pos;         /* (Pmax + Ns) RoPE positions of the kept prefix rows, then the suffix */
    float *rope_cs;       /* (Pmax + Ns, hd) cos | sin of each row's RoPE angles (pi0_rope_table) */
    int32_t *rows;        /* (Pmax) index of each kept prefix row in the full prefix */
    int32_t *kcum;        /* (Pmax + Ns) mask block ids c */
    uint8_t *kpad;        /* (Pmax + Ns) key validity */
    int32_t *tok_ids;     /* (Lmax) kept token ids */
    /* suffix (rows = Ns) */
    float *s_x, *s_a;     /* (Ns, We) */
    float *s_q, *s_o;     /* (Ns, HD) */
    float *s_g;           /* (Ns, Me) */
    float *s_t;           /* (Ns, We) temporary (gated residual branch, time MLP) */
    float *tau;           /* (We) time embedding of the step */
    float *tau_b;         /* (We) time MLP bias of the step, families with time in the action tokens (π0) */
    float *cond, *cond_t; /* (We) conditioning vector, families with time via the norms (π0.5); else empty */
    float *mods;          /* (2·depth + 1, 3We) adaptive-norm modulations of one step (π0.5); else empty */
    float *x_t, *v_t;     /* (H, A) */
    float *state_pad;     /* (A) */
    pi0_step_cond step;   /* the current step's conditioning (points into cond, mods) */
    /* real-time chunking (rtc.c) */
    float *rtc_y;         /* (H, A) previous chunk's tail Y, zero-padded */
    float *rtc_w;         /* (H) prefix weights W */
    float *rtc_e;         /* (H, A) e = W ⊙ (Y - Â), then the correction c */
    float *rtc_x, *rtc_v; /* (H, A) finite-difference probe x + εe and its velocity */
    int rtc_on;           /* guidance active for this inference (some W > 0) */
    int rtc_clamp;        /* training-time RTC: rows [0, rtc_clamp) of x are Y at time 0 (0 = off) */
    float *rtc_mods0;     /* (2·depth + 1, 3We) adaptive-norm modulations at time 0 (π0.5) */
    int n_prefix;         /* P of the current observation (kept rows) */
    int n_valid;          /* valid prefix tokens (positions of the suffix start here) */
};

/* ---- stages (one file each) ----------------------------------------------------------------- */

/* siglip.c: encode n_img images ((n_img, C, S, S) each CHW) and write their projected tokens into
 * out rows (n_img·T, W) with row stride W. slot_ids names the slots for taps. */
void pi0_vision_forward(pi0_state *st, const float *const *images, const int *slot_ids, int n_img, float *out,
                        const pi0_run_params *rp);

/* gemma.c: one Gemma block over n rows of x (n, D). Keys/values of these rows are written to rows
 * [koff, koff + n) of kc/vc; queries attend to keys [0, koff + n) with the mask arrays (qcum/qpad
 * for the n query rows, st->kcum/kpad for keys). kv_only: stop after writing K/V (layer 17 of the
 * prefill). mod: π0.5 modulations for this layer (2 × 3D: attention norm, MLP norm) or NULL;
 * mod0/n0: the first n0 rows' modulations when they differ (training-time RTC). */
typedef struct {
    const pi0_gemma_layer *L;
    int D, Mx;
    float *x, *a, *q, *o, *g, *t;     /* buffers: x (n,D), a (n,D), q/o (n,HD), g (n,Mx): the GeGLU, t (n,D) */
    int n;
    const int32_t *pos;                 /* (n) rows of st->pos (RoPE angles are read from st->rope_cs) */
    const int32_t *qcum; const uint8_t *qpad; /* (n) */
    float *kc, *vc;
    int koff;
    uint16_t *kb, *vb;                  /* bf16 copy of kc/vc (or NULL): attention reads its keys [0, nkb) */
    int nkb;
    int kb_fill;                        /* write this call's K/V rows into the copy first (the prefill) */
    int kv_only;
    const float *mod;
    const float *mod0; int n0;          /* rows [0, n0) use mod0 instead of mod (per-row time), n0 = 0: none */
    const char *const *sites;           /* 10 static site names: norm1 q k v rope attn o norm2 mlp down */
} pi0_gemma_call;
void pi0_gemma_block(pi0_state *st, const pi0_gemma_call *c);

/* prefix.c: build the prefix (images, language), run the VLM, fill the KV cache. */
pi0_status pi0_prefix_forward(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp);

/* denoise.c: the flow-matching loop on the cached prefix; writes actions (H, A). */
pi0_status pi0_denoise(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp, const float *noise,
                       float *actions);

/* denoise.c: st->v_t = v(st->x_t) at the current step's time, whose time-dependent inputs (time
 * embedding; π0 time bias, π0.5 modulations) are already computed. step < 0: no taps (RTC probe). */
void pi0_denoise_velocity(pi0_state *st, const pi0_run_params *rp, int step);

/* Tap helper: emit a named tensor if rp->tap is set (name formatted printf-style), with the stage and
 * step ex is in (pi0_exec_stage). */
void pi0_tap(const pi0_exec *ex, const pi0_run_params *rp, const float *data, int ndim, const int64_t *shape,
             const int32_t *rows, int row0, const char *fmt, ...) PI0_PRINTF(8, 9);

/* weights.c: bind every expected tensor of the checkpoint; config.c: parse config.json. */
pi0_status pi0_config_load(const char *path, pi0_config *cfg, int *variant_given);
pi0_status pi0_weights_bind(pi0_ctx *ctx, const char *dir, int variant_given);
/* Call fn for every tensor a checkpoint of this config must hold (names as LeRobot writes them). */
pi0_status pi0_weights_expected(const pi0_config *cfg, void (*fn)(const char *name, int nd, const int64_t *shape, void *user),
                                void *user);
/* config.c: parse config.json text held in memory (`path` names it in errors); every numeric field is
 * checked for type and range, naming the field. */
pi0_status pi0_config_parse(const char *json, size_t len, const char *path, pi0_config *cfg, int *variant_given);

#endif
