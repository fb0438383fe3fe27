/* variant_pi0.c - π0's suffix (PI0_MODEL.md §4.2): a state token from the robot state, then action
 * tokens that mix in the flow-matching time through an MLP; plain (learned-offset) RMSNorms in the
 * expert. Suffix = [state, a_1 .. a_H], mask blocks 1, 2, 2, ... (actions see the state, the state
 * does not see the actions). */
#include "model/linear.h"
#include "model/variant.h"

#define TRY(x) do { pi0_status s_ = (x); if (s_) return s_; } while (0)

static pi0_status bind(pi0_binder *b, pi0_weights *w, const pi0_config *c) {
    int64_t We = c->expert_width, A = c->action_dim;
    TRY(pi0_bind_matrix(b, &w->state_proj, "state_proj.weight", We, A));
    TRY(pi0_bind_vector(b, &w->state_proj_b, "state_proj.bias", We));
    /* Input columns 0..We-1 read the action features, We..2We-1 the time embedding (§4.2): split so
     * the time half becomes a per-step bias and no concatenated input is ever built. */
    TRY(pi0_bind_matrix_split(b, &w->time_in_act, &w->time_in_tau, "action_time_mlp_in.weight", We, 2 * We, We));
    TRY(pi0_bind_vector(b, &w->time_in_b, "action_time_mlp_in.bias", We));
    TRY(pi0_bind_matrix(b, &w->time_out, "action_time_mlp_out.weight", We, We));
    TRY(pi0_bind_vector(b, &w->time_out_b, "action_time_mlp_out.bias", We));
    return PI0_OK;
}

/* openpi ar_mask [1, 1, 0, ...] -> cumulative block ids 1, 2, 2, ... (§3.1) */
static void suffix_blocks(int32_t *kcum, int Ns) {
    for (int s = 0; s < Ns; s++) kcum[s] = s == 0 ? 1 : 2;
}

static void embed_state(pi0_state *st) {
    const pi0_weights *w = &st->ctx->w;
    pi0_linear(&st->ex, "suffix.state_proj", st->s_x, st->state_pad, &w->state_proj, w->state_proj_b, 1);
}

/* the time half of action_time_mlp_in: tau_b = W_tau·τ + b, shared by the H action rows */
static pi0_step_cond step_time(pi0_state *st) {
    const pi0_weights *w = &st->ctx->w;
    pi0_linear(&st->ex, "suffix.time_mlp_in", st->tau_b, st->tau, &w->time_in_tau, w->time_in_b, 1);
    return (pi0_step_cond){.cond = NULL, .mods = NULL};
}

/* action tokens = time_out(swish(W_act·a + tau_b)) with a = action_in(x_t) */
static void embed_actions(pi0_state *st, float *rows) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    int H = c->action_horizon, We = c->expert_width;
    pi0_linear(&st->ex, "suffix.action_in", st->s_a, st->x_t, &w->action_in, w->action_in_b, H);
    pi0_linear(&st->ex, "suffix.time_mlp_in", st->s_t, st->s_a, &w->time_in_act, st->tau_b, H);
    pi0_ew_args sw = {.y = st->s_t, .a = st->s_t, .n = (int64_t)H * We, .kind = PI0_EW_SWISH};
    pi0_op_ew(&st->ex, "suffix.swish", &sw);
    pi0_linear(&st->ex, "suffix.time_mlp_out", rows, st->s_t, &w->time_out, w->time_out_b, H);
}

static void final_norm(pi0_state *st, const float *xa) {
    const pi0_config *c = &st->ctx->cfg;
    pi0_norm_args n = {.y = st->s_a, .x = xa, .w = st->ctx->w.expert_norm, .m = c->action_horizon, .d = c->expert_width,
                       .eps = c->rms_eps};
    pi0_op_rmsnorm(&st->ex, "expert.final_norm", &n);
}

/* the model code of π0 (variant.h); its data is variant.c's PI0_VARIANT_PI0 row */
const pi0_variant_stages pi0_stages_pi0 = {
    .bind = bind,
    .suffix_blocks = suffix_blocks,
    .embed_state = embed_state,
    .step_time = step_time,
    .embed_actions = embed_actions,
    .final_norm = final_norm,
};
