/* denoise.c - suffix embedding (PI0_MODEL.md §4) and the flow-matching loop (§5); openpi
 * `embed_suffix` + `sample_actions`. The prefix KV cache is read in place; each step writes its
 * suffix K/V into the rows after the prefix, never appending to the cache.
 *
 * π0 in compact mode: the state token depends only on the prefix and the state (§3.5), so one
 * pass over it alone fills its K/V row before the loop, and each step processes the H action rows.
 * Each step computes its time-dependent inputs once (time_pi0 / time_pi05), then the velocity at
 * x_t (pi0_denoise_velocity), which real-time chunking's finite-difference mode (rtc.c) calls a
 * second time at a probe point. */
#include <math.h>

#include "model/linear.h"
#include "model/model.h"
#include "model/rtc.h"

static const char *const expert_sites[10] = {"expert.norm1", "expert.attn.q", "expert.attn.k", "expert.attn.v",
                                             "expert.rope", "expert.attn", "expert.attn.out", "expert.norm2",
                                             "expert.mlp.gate_up", "expert.mlp.down"};

/* τ(t): sines then cosines, periods min·(max/min)^(i/(K-1)), computed in double (§4.1). */
static void time_embedding(float *tau, int D, double t, double min_p, double max_p) {
    int K = D / 2;
    for (int i = 0; i < K; i++) {
        double f = K > 1 ? (double)i / (double)(K - 1) : 0.0;
        double period = min_p * pow(max_p / min_p, f);
        double arg = 2.0 * M_PI / period * t;
        tau[i] = (float)sin(arg);
        tau[K + i] = (float)cos(arg);
    }
}

/* Run the expert layers over suffix rows [t0, Ns) (keys: prefix + suffix rows [0, Ns)). */
static void expert_pass(pi0_state *st, int t0, int Ns, const float *mods, int step, const pi0_run_params *rp) {
    const pi0_config *c = &st->ctx->cfg;
    int P = st->n_prefix, We = c->expert_width;
    for (int l = 0; l < c->expert_depth && st->ex.status == PI0_OK; l++) {
        pi0_gemma_call g = {.L = &st->ctx->w.expert[l], .D = We, .Mx = c->expert_mlp_dim, .x = st->s_x + (int64_t)t0 * We,
                            .a = st->s_a, .q = st->s_q, .o = st->s_o, .g = st->s_g, .u = st->s_u, .t = st->s_t,
                            .n = Ns - t0, .pos = st->pos + P + t0, .qcum = st->kcum + P + t0, .qpad = st->kpad + P + t0,
                            .kc = st->kc[l], .vc = st->vc[l], .koff = P + t0,
                            .mod = mods ? mods + (int64_t)l * 6 * We : NULL, .sites = expert_sites};
        pi0_gemma_block(st, &g);
        if (rp->tap && step >= 0 && st->ex.status == PI0_OK) {
            int64_t sh[2] = {Ns - t0, We};
            pi0_tap(rp, st->s_x + (int64_t)t0 * We, 2, sh, NULL, t0, "denoise.s%02d.expert.L%02d", step, l);
        }
    }
}

static void state_token(pi0_state *st) {
    const pi0_weights *w = &st->ctx->w;
    pi0_linear(&st->ex, "suffix.state_proj", st->s_x, st->state_pad, &w->state_proj, w->state_proj_b, 1);
}

/* π0 time part of the action tokens: tau_b = W_tau·τ + b (§4.2). */
static void time_pi0(pi0_state *st) {
    const pi0_weights *w = &st->ctx->w;
    pi0_linear(&st->ex, "suffix.time_mlp_in", st->tau_b, st->tau, &w->time_in_tau, w->time_in_b, 1);
}

/* π0: action tokens = time_out(swish(W_act·a + tau_b)) with a = action_in(x_t) (§4.2). */
static void actions_pi0(pi0_state *st, float *xrows) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    int H = c->action_horizon, We = c->expert_width;
    pi0_linear(&st->ex, "suffix.action_in", st->s_a, st->x_t, &w->action_in, w->action_in_b, H);
    pi0_linear(&st->ex, "suffix.time_mlp_in", st->s_t, st->s_a, &w->time_in_act, st->tau_b, H);
    pi0_ew_args sw = {.y = st->s_t, .a = st->s_t, .n = (int64_t)H * We, .kind = PI0_EW_SWISH};
    pi0_op_ew(&st->ex, "suffix.swish", &sw);
    pi0_linear(&st->ex, "suffix.time_mlp_out", xrows, st->s_t, &w->time_out, w->time_out_b, H);
}

/* π0.5 time part: cond = swish(time_out(swish(time_in(τ)))), then every adaptive norm's
 * (scale, shift, gate) for this step (§4.3). */
static void time_pi05(pi0_state *st) {
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
}

/* π0.5: action tokens = action_in(x_t). */
static void actions_pi05(pi0_state *st, float *xrows) {
    const pi0_weights *w = &st->ctx->w;
    pi0_linear(&st->ex, "suffix.action_in", xrows, st->x_t, &w->action_in, w->action_in_b, st->ctx->cfg.action_horizon);
}

void pi0_denoise_velocity(pi0_state *st, const pi0_run_params *rp, int step) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    int pi05 = c->variant == PI0_VARIANT_PI05;
    int H = c->action_horizon, We = c->expert_width;
    int Ns = H + (pi05 ? 0 : 1), first = pi05 ? 0 : 1; /* first action row in the suffix */
    int t0 = !pi05 && st->compact ? 1 : 0;             /* π0 compact: the state token's K/V row is cached */
    if (!pi05 && t0 == 0) state_token(st);
    if (pi05) actions_pi05(st, st->s_x); else actions_pi0(st, st->s_x + (int64_t)first * We);
    int taps = rp->tap && step >= 0;
    if (taps && st->ex.status == PI0_OK) {
        int64_t sw[1] = {We}, ss[2] = {Ns - t0, We};
        pi0_tap(rp, st->tau, 1, sw, NULL, 0, "denoise.s%02d.time_emb", step);
        if (pi05) pi0_tap(rp, st->cond, 1, sw, NULL, 0, "denoise.s%02d.cond", step);
        pi0_tap(rp, st->s_x + (int64_t)t0 * We, 2, ss, NULL, t0, "denoise.s%02d.suffix_embs", step);
    }
    expert_pass(st, t0, Ns, pi05 ? st->mods : NULL, step, rp);

    /* final norm over the action rows, output projection (§2.5) */
    float *xa = st->s_x + (int64_t)first * We;
    const float *fm = pi05 ? st->mods + (int64_t)c->expert_depth * 6 * We : NULL;
    pi0_norm_args n = {.y = st->s_a, .x = xa, .w = pi05 ? NULL : w->expert_norm, .m = H, .d = We, .eps = c->rms_eps};
    pi0_op_rmsnorm(&st->ex, "expert.final_norm", &n);
    if (fm) {
        pi0_mod_args m = {.y = st->s_a, .scale = fm, .shift = fm + We, .m = H, .d = We, .kind = PI0_MOD_SCALE_SHIFT};
        pi0_op_mod(&st->ex, "expert.final_norm", &m);
    }
    pi0_linear(&st->ex, "expert.action_out", st->v_t, st->s_a, &w->action_out, w->action_out_b, H);
    if (taps && st->ex.status == PI0_OK) {
        int64_t sh[2] = {H, We};
        pi0_tap(rp, st->s_a, 2, sh, NULL, first, "denoise.s%02d.expert_out", step);
    }
}

pi0_status pi0_denoise(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp, const float *noise, float *actions) {
    const pi0_config *c = &st->ctx->cfg;
    int pi05 = c->variant == PI0_VARIANT_PI05;
    int H = c->action_horizon, A = c->action_dim, We = c->expert_width, P = st->n_prefix;
    int Ns = H + (pi05 ? 0 : 1);
    int n_steps = rp->n_steps > 0 ? rp->n_steps : c->n_steps;

    /* Suffix mask blocks (§3.1): π0 ar = [1, 1, 0...] -> c = 1, 2, 2...; π0.5 ar = [1, 0...] -> c = 1...
     * Positions continue after the valid prefix tokens (§3.3). */
    for (int s = 0; s < Ns; s++) {
        st->kcum[P + s] = pi05 ? 1 : (s == 0 ? 1 : 2);
        st->kpad[P + s] = 1;
        st->pos[P + s] = st->n_valid + s;
    }
    pi0_rope_table(st->rope_cs + (int64_t)P * c->head_dim, st->pos + P, Ns, c->head_dim, c->rope_base);
    for (int i = 0; i < A; i++) st->state_pad[i] = i < obs->state_dim && obs->state ? obs->state[i] : 0.0f;
    for (int i = 0; i < H * A; i++) st->x_t[i] = noise[i];
    pi0_rtc_begin(st, rp);

    if (!pi05 && st->compact) {
        state_token(st);
        expert_pass(st, 0, 1, NULL, -1, rp); /* fills K/V row P; the hidden state is not needed after */
    }
    /* openpi's loop (§5): float32 t and dt, t += dt while t >= -dt/2; or the caller's grid. */
    const float *grid = rp->timesteps;
    float dt = -1.0f / (float)n_steps, t = grid ? grid[0] : 1.0f;
    for (int step = 0; (grid ? step < n_steps : t >= -dt / 2) && st->ex.status == PI0_OK; step++) {
        if (grid) {
            t = grid[step];
            dt = (step + 1 < n_steps ? grid[step + 1] : 0.0f) - t;
        }
        time_embedding(st->tau, We, (double)t, c->time_min_period, c->time_max_period);
        if (pi05) time_pi05(st); else time_pi0(st);
        pi0_denoise_velocity(st, rp, step);
        pi0_rtc_guide(st, rp, step, t); /* real-time chunking: no-op unless rp->rtc (rtc.c) */
        pi0_ew_args e = {.y = st->x_t, .a = st->x_t, .b = st->v_t, .n = (int64_t)H * A, .alpha = dt, .kind = PI0_EW_AXPY};
        pi0_op_ew(&st->ex, "expert.euler", &e);
        if (rp->tap && st->ex.status == PI0_OK) {
            int64_t sa[2] = {H, A};
            pi0_tap(rp, st->v_t, 2, sa, NULL, 0, "denoise.s%02d.v", step);
            pi0_tap(rp, st->x_t, 2, sa, NULL, 0, "denoise.s%02d.x", step);
        }
        t += dt;
    }
    if (st->ex.status == PI0_OK)
        for (int i = 0; i < H * A; i++) actions[i] = st->x_t[i];
    return st->ex.status;
}
