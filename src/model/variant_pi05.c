/* variant_pi05.c - π0.5's suffix (PI0_MODEL.md §4.3): no state token (the state, if used, is text in
 * the prompt); the time embedding becomes a conditioning vector whose dense layers give every
 * adaptive norm of the expert its (scale, shift, gate) for the step. Suffix = [a_1 .. a_H], one
 * mask block. */
#include <stdio.h>

#include "model/linear.h"
#include "model/variant.h"

#define TRY(x) do { pi0_status s_ = (x); if (s_) return s_; } while (0)

static pi0_status bind(pi0_binder *b, pi0_weights *w, const pi0_config *c) {
    int64_t We = c->expert_width;
    /* LeRobot may keep the π0.5 time MLP under the π0 names (then shaped (We, We)). */
    int alias = !pi0_bind_present(b, "time_mlp_in.weight") && pi0_bind_present(b, "action_time_mlp_in.weight");
    const char *in = alias ? "action_time_mlp_in" : "time_mlp_in", *out = alias ? "action_time_mlp_out" : "time_mlp_out";
    char n[64];
    snprintf(n, sizeof n, "%s.weight", in);
    TRY(pi0_bind_matrix(b, &w->time_mlp_in, n, We, We));
    snprintf(n, sizeof n, "%s.bias", in);
    TRY(pi0_bind_vector(b, &w->time_mlp_in_b, n, We));
    snprintf(n, sizeof n, "%s.weight", out);
    TRY(pi0_bind_matrix(b, &w->time_out, n, We, We));
    snprintf(n, sizeof n, "%s.bias", out);
    TRY(pi0_bind_vector(b, &w->time_out_b, n, We));
    return PI0_OK;
}

/* openpi ar_mask [1, 0, ...] -> every action row in block 1 (§3.1) */
static void suffix_blocks(int32_t *kcum, int Ns) {
    for (int s = 0; s < Ns; s++) kcum[s] = 1;
}

/* cond = swish(time_out(swish(time_in(τ)))), then every adaptive norm's (scale, shift, gate) for this
 * step: two per layer (attention, MLP) and the final norm. */
static pi0_step_cond step_time(pi0_state *st) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    int We = c->expert_width;
    pi0_linear(&st->ex, "suffix.time_mlp_in", st->cond_t, st->tau, &w->time_mlp_in, w->time_mlp_in_b, 1);
    pi0_ew_args s1 = {.y = st->cond_t, .a = st->cond_t, .n = We, .kind = PI0_EW_SWISH};
    pi0_op_ew(&st->ex, "suffix.swish", &s1);
    pi0_linear(&st->ex, "suffix.time_mlp_out", st->cond, st->cond_t, &w->time_out, w->time_out_b, 1);
    pi0_ew_args s2 = {.y = st->cond, .a = st->cond, .n = We, .kind = PI0_EW_SWISH};
    pi0_op_ew(&st->ex, "suffix.swish", &s2);
    for (int l = 0; l < c->expert_depth; l++) {
        const pi0_gemma_layer *L = &w->expert[l];
        float *mod = st->mods + (int64_t)l * 6 * We;
        pi0_linear(&st->ex, "suffix.adarms", mod, st->cond, &L->attn_ada, L->attn_ada_b, 1);
        pi0_linear(&st->ex, "suffix.adarms", mod + 3 * We, st->cond, &L->mlp_ada, L->mlp_ada_b, 1);
    }
    pi0_linear(&st->ex, "suffix.adarms", st->mods + (int64_t)c->expert_depth * 6 * We, st->cond, &w->expert_norm_ada,
               w->expert_norm_ada_b, 1);
    return (pi0_step_cond){.cond = st->cond, .mods = st->mods};
}

/* action tokens = action_in(x_t) */
static void embed_actions(pi0_state *st, float *rows) {
    const pi0_weights *w = &st->ctx->w;
    pi0_linear(&st->ex, "suffix.action_in", rows, st->x_t, &w->action_in, w->action_in_b, st->ctx->cfg.action_horizon);
}

/* plain RMSNorm, then the final norm's (1 + scale), + shift (its gate is unused) */
static void final_norm(pi0_state *st, const float *xa) {
    const pi0_config *c = &st->ctx->cfg;
    int H = c->action_horizon, We = c->expert_width;
    int64_t at = (int64_t)c->expert_depth * 6 * We;
    int n0 = st->step.mods0 ? st->step.n0 : 0; /* rows [0, n0): their own time's modulation */
    pi0_norm_args n = {.y = st->s_a, .x = xa, .m = H, .d = We, .eps = c->rms_eps};
    pi0_op_rmsnorm(&st->ex, "expert.final_norm", &n);
    if (n0 > 0) {
        const float *f0 = st->step.mods0 + at;
        pi0_mod_args m0 = {.y = st->s_a, .scale = f0, .shift = f0 + We, .m = n0, .d = We, .kind = PI0_MOD_SCALE_SHIFT};
        pi0_op_mod(&st->ex, "expert.final_norm", &m0);
    }
    const float *fm = st->step.mods + at;
    pi0_mod_args m = {.y = st->s_a + (int64_t)n0 * We, .scale = fm, .shift = fm + We, .m = H - n0, .d = We,
                      .kind = PI0_MOD_SCALE_SHIFT};
    pi0_op_mod(&st->ex, "expert.final_norm", &m);
}

/* the model code of π0.5 (variant.h); its data is variant.c's PI0_VARIANT_PI05 row */
const pi0_variant_stages pi0_stages_pi05 = {
    .bind = bind,
    .suffix_blocks = suffix_blocks,
    .embed_state = NULL,
    .step_time = step_time,
    .embed_actions = embed_actions,
    .final_norm = final_norm,
};
