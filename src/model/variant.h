/* variant.h - what differs between model families (π0, π0.5), in one place.
 *
 * A family is described twice over, once as data and once as code:
 *  - pi0_variant_desc (the table in variant.c): defaults, where the robot state goes, the expert's
 *    norm type, how time conditions the expert, the suffix layout. Read by config.c, weights.c,
 *    state.c, api.c, the policy and (through pi0_config_state_input) `pi0 bench`. Data only, so
 *    config parsing links without the model code.
 *  - pi0_variant_stages (variant_pi0.c, variant_pi05.c): binding of the family's own tensors and the
 *    per-step stages that differ: suffix embedding, mask blocks, final norm. denoise.c is the loop
 *    only: it calls these stages and never asks which family it runs.
 *
 * Adding a family: a pi0_variant value in pi0.h, a row in variant.c's table, a variant_<name>.c
 * defining its stages with one line in variant_stages.c, and its tensors (if new) in pi0_weights.
 * Nothing else branches on the family.
 *
 * Suffix layout (PI0_MODEL.md §4): n_state_tokens rows holding the robot state (π0: 1, π0.5: 0),
 * then the H action rows. Rows are (Ns = n_state_tokens + H, We) in st->s_x.
 */
#ifndef PI0_MODEL_VARIANT_H
#define PI0_MODEL_VARIANT_H

#include "model/model.h"

/* How the expert's pre-attention, pre-MLP and final norms are parameterized (§2.4). */
typedef enum {
    PI0_EXPERT_NORM_RMS,     /* Gemma RMSNorm with a learned offset (x·r·(1 + w)): π0 */
    PI0_EXPERT_NORM_ADAPTIVE /* plain RMSNorm, then scale/shift/gate from the time condition: π0.5 */
} pi0_expert_norm;

/* Where the flow-matching time τ enters the expert (§4.2, §4.3). */
typedef enum {
    PI0_TIME_IN_ACTION_TOKENS, /* concatenated with each action token inside an MLP: π0 */
    PI0_TIME_VIA_NORMS         /* a conditioning vector that drives the adaptive norms: π0.5 */
} pi0_time_cond;

typedef struct pi0_binder pi0_binder; /* weights.c; see the pi0_bind_* functions below */

typedef struct pi0_variant_desc {
    pi0_variant id;
    const char *name;        /* spelling in config.json ("variant", "model_type", "type") */
    const char *marker;      /* a tensor only this family has, to recognize it when config.json does not
                              * say (normalized name), or NULL for the fallback family */
    /* defaults that depend on the family (config.c, pi0_variant_set; discrete_state_input: pi0_load) */
    int max_token_len;       /* L */
    int discrete_state_input;/* state written into the prompt as discretized text */
    int quantile_norm;       /* openpi normalizes state and actions by quantiles (q01, q99), not z-score */
    /* layout */
    int n_state_tokens;      /* suffix rows before the actions that carry the robot state (pi0_obs.state) */
    pi0_expert_norm expert_norm;
    pi0_time_cond time_cond;
} pi0_variant_desc;

typedef struct pi0_variant_stages {
    /* Bind the tensors only this family reads (time MLP, state projection), after the shared ones. */
    pi0_status (*bind)(pi0_binder *b, pi0_weights *w, const pi0_config *c);
    /* Mask block ids of the Ns suffix rows (§3.1): kcum[s] for s in [0, Ns); prefix rows are block 0. */
    void (*suffix_blocks)(int32_t *kcum, int Ns);
    /* Rows [0, n_state_tokens) of st->s_x from st->state_pad; NULL when n_state_tokens is 0. These rows
     * do not depend on the step, so the fast path runs them through the expert once per observation
     * (without norm conditioning: a family with state tokens must not need pi0_step_cond.mods). */
    void (*embed_state)(pi0_state *st);
    /* Once per step: what depends on the time embedding st->tau alone (π0: the time MLP's bias;
     * π0.5: the conditioning vector and every adaptive norm's modulation). */
    pi0_step_cond (*step_time)(pi0_state *st);
    /* The action rows (H, We) at `rows` from st->x_t and step_time's results. Real-time chunking may
     * run this (and the rest of the velocity) twice per step at different x_t. */
    void (*embed_actions)(pi0_state *st, float *rows);
    /* The expert's final norm over the H action rows: st->s_a = norm(xa), conditioned by st->step. */
    void (*final_norm)(pi0_state *st, const float *xa);
} pi0_variant_stages;

/* The family with this pi0_variant id, or NULL. Ids run 0 .. pi0_variant_count() - 1. */
const pi0_variant_desc *pi0_variant_get(int id);
int pi0_variant_count(void);
/* variant_stages.c: the model code of family id (a valid id). */
const pi0_variant_stages *pi0_variant_stages_of(int id);
/* The family spelled `name` in config.json, or NULL. */
const pi0_variant_desc *pi0_variant_named(const char *name);
/* Make c a config of family id; max_token_len still at the current family's default takes the new
 * family's. discrete_state_input is not touched: pi0_load gives it the family's default when
 * config.json does not set it. */
void pi0_variant_set(pi0_config *c, int id);

/* ---- binding (weights.c), for a family's bind ------------------------------------------------ */
/* Names are the normalized checkpoint names; in listing mode (pi0_weights_expected) each call
 * reports the tensor instead of binding it, and pi0_bind_present answers 0. */
pi0_status pi0_bind_matrix(pi0_binder *b, pi0_weight *w, const char *name, int64_t rows, int64_t cols);
pi0_status pi0_bind_vector(pi0_binder *b, float **out, const char *name, int64_t n);
/* Bind (rows, cols) and keep only its columns [0, split) as left and [split, cols) as right, each a
 * contiguous matrix owned by the context. */
pi0_status pi0_bind_matrix_split(pi0_binder *b, pi0_weight *left, pi0_weight *right, const char *name, int64_t rows,
                                 int64_t cols, int64_t split);
int pi0_bind_present(pi0_binder *b, const char *name);

extern const pi0_variant_stages pi0_stages_pi0;  /* variant_pi0.c */
extern const pi0_variant_stages pi0_stages_pi05; /* variant_pi05.c */

#endif
