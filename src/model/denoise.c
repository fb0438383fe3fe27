/* denoise.c - the flow-matching loop (PI0_MODEL.md §5); openpi `sample_actions`. The prefix KV cache
 * is read in place; each step writes its suffix K/V into the rows after the prefix, never appending
 * to the cache. What the suffix holds and how it is embedded, conditioned on time and normalized is
 * the model family's (variant.h: variant_pi0.c, variant_pi05.c); this file is the same loop for
 * every family.
 *
 * Compact mode (fast path): suffix rows that do not depend on the step (π0's state token, §3.5)
 * are run through the expert once before the loop, filling their K/V rows; each step then
 * processes only the H action rows. Each step computes its time-dependent inputs once (the
 * family's step_time), then the velocity at x_t (pi0_denoise_velocity), which real-time
 * chunking's finite-difference mode (rtc.c) calls a second time at a probe point. Training-time
 * RTC keeps the first d action rows at Y and at time 0 (their own modulations, step.mods0). */
#include <math.h>
#include <string.h>

#include "model/linear.h"
#include "model/rtc.h"
#include "model/variant.h"

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
                            .a = st->s_a, .q = st->s_q, .o = st->s_o, .g = st->s_g, .t = st->s_t,
                            .n = Ns - t0, .pos = st->pos + P + t0, .qcum = st->kcum + P + t0, .qpad = st->kpad + P + t0,
                            .kc = st->kc[l], .vc = st->vc[l], .koff = P + t0,
                            .kb = st->kb ? st->kb[l] : NULL, .vb = st->vb ? st->vb[l] : NULL, .nkb = P,
                            .mod = mods ? mods + (int64_t)l * 6 * We : NULL, .sites = expert_sites};
        if (mods && st->step.mods0) { /* per-row time: families with adaptive norms have no state rows, */
            g.mod0 = st->step.mods0 + (int64_t)l * 6 * We; /* so the call's rows are the action rows */
            g.n0 = st->step.n0;
        }
        pi0_gemma_block(st, &g);
        if (rp->tap && step >= 0 && st->ex.status == PI0_OK) {
            int64_t sh[2] = {Ns - t0, We};
            pi0_tap(&st->ex, rp, st->s_x + (int64_t)t0 * We, 2, sh, NULL, t0, "denoise.s%02d.expert.L%02d", step, l);
        }
    }
}

/* Training-time RTC: the modulations of the clamped rows, at time 0, once per inference. */
static void prefix_time_cond(pi0_state *st, const pi0_variant_stages *vs) {
    const pi0_config *c = &st->ctx->cfg;
    time_embedding(st->tau, c->expert_width, 0.0, c->time_min_period, c->time_max_period);
    pi0_step_cond sc = vs->step_time(st);
    if (sc.mods)
        memcpy(st->rtc_mods0, sc.mods, (2 * (size_t)c->expert_depth + 1) * 3 * c->expert_width * sizeof(float));
}

void pi0_denoise_velocity(pi0_state *st, const pi0_run_params *rp, int step) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    const pi0_variant_stages *vs = pi0_variant_stages_of(c->variant);
    int H = c->action_horizon, We = c->expert_width;
    int first = pi0_variant_get(c->variant)->n_state_tokens, Ns = first + H;  /* suffix = [state rows, action rows] */
    int t0 = st->compact ? first : 0;                /* compact: the state rows' K/V are cached */
    float *xa = st->s_x + (int64_t)first * We;       /* the action rows */
    if (first && t0 == 0) vs->embed_state(st);
    vs->embed_actions(st, xa);
    int taps = rp->tap && step >= 0;
    if (taps && st->ex.status == PI0_OK) {
        int64_t sw[1] = {We}, ss[2] = {Ns - t0, We};
        pi0_tap(&st->ex, rp, st->tau, 1, sw, NULL, 0, "denoise.s%02d.time_emb", step);
        if (st->step.cond) pi0_tap(&st->ex, rp, st->step.cond, 1, sw, NULL, 0, "denoise.s%02d.cond", step);
        pi0_tap(&st->ex, rp, st->s_x + (int64_t)t0 * We, 2, ss, NULL, t0, "denoise.s%02d.suffix_embs", step);
    }
    expert_pass(st, t0, Ns, st->step.mods, step, rp);

    /* final norm over the action rows, output projection (§2.5) */
    vs->final_norm(st, xa);
    pi0_linear(&st->ex, "expert.action_out", st->v_t, st->s_a, &w->action_out, w->action_out_b, H);
    if (taps && st->ex.status == PI0_OK) {
        int64_t sh[2] = {H, We};
        pi0_tap(&st->ex, rp, st->s_a, 2, sh, NULL, first, "denoise.s%02d.expert_out", step);
    }
}

pi0_status pi0_denoise(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp, const float *noise, float *actions) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_variant_stages *vs = pi0_variant_stages_of(c->variant);
    int H = c->action_horizon, A = c->action_dim, We = c->expert_width, P = st->n_prefix;
    int first = pi0_variant_get(c->variant)->n_state_tokens, Ns = first + H;
    int n_steps = rp->n_steps > 0 ? rp->n_steps : c->n_steps;
    pi0_exec_stage(&st->ex, PI0_STAGE_DENOISE, -1); /* set-up before step 0 (state token, RTC) */

    /* Suffix mask blocks (§3.1); positions continue after the valid prefix tokens (§3.3). */
    vs->suffix_blocks(st->kcum + P, Ns);
    for (int s = 0; s < Ns; s++) {
        st->kpad[P + s] = 1;
        st->pos[P + s] = st->n_valid + s;
    }
    pi0_rope_table(st->rope_cs + (int64_t)P * c->head_dim, st->pos + P, Ns, c->head_dim, c->rope_base);
    for (int i = 0; i < A; i++) st->state_pad[i] = i < obs->state_dim && obs->state ? obs->state[i] : 0.0f;
    for (int i = 0; i < H * A; i++) st->x_t[i] = noise[i];
    pi0_rtc_begin(st, rp);
    if (st->rtc_clamp) prefix_time_cond(st, vs);

    if (first && st->compact) {
        vs->embed_state(st);
        expert_pass(st, 0, first, NULL, -1, rp); /* fills their K/V rows; the hidden states are not needed after */
    }
    /* openpi's loop (§5): float32 t and dt, t += dt while t >= -dt/2; or the caller's grid. */
    const float *grid = rp->timesteps;
    float dt = -1.0f / (float)n_steps, t = grid ? grid[0] : 1.0f;
    for (int step = 0; (grid ? step < n_steps : t >= -dt / 2) && st->ex.status == PI0_OK; step++) {
        pi0_exec_stage(&st->ex, PI0_STAGE_DENOISE, step);
        if (grid) {
            t = grid[step];
            dt = (step + 1 < n_steps ? grid[step + 1] : 0.0f) - t;
        }
        time_embedding(st->tau, We, (double)t, c->time_min_period, c->time_max_period);
        st->step = vs->step_time(st);
        if (st->rtc_clamp) { /* training-time RTC: rows [0, d) are Y at time 0 */
            st->step.mods0 = st->rtc_mods0;
            st->step.n0 = st->rtc_clamp;
            pi0_rtc_clamp(st);
        }
        pi0_denoise_velocity(st, rp, step);
        pi0_rtc_guide(st, rp, step, t); /* real-time chunking: no-op unless rp->rtc (rtc.c) */
        pi0_ew_args e = {.y = st->x_t, .a = st->x_t, .b = st->v_t, .n = (int64_t)H * A, .alpha = dt, .kind = PI0_EW_AXPY};
        pi0_op_ew(&st->ex, "expert.euler", &e);
        if (st->rtc_clamp) pi0_rtc_clamp(st);
        if (rp->tap && st->ex.status == PI0_OK) {
            int64_t sa[2] = {H, A};
            pi0_tap(&st->ex, rp, st->v_t, 2, sa, NULL, 0, "denoise.s%02d.v", step);
            pi0_tap(&st->ex, rp, st->x_t, 2, sa, NULL, 0, "denoise.s%02d.x", step);
        }
        t += dt;
    }
    if (st->ex.status == PI0_OK)
        for (int i = 0; i < H * A; i++) actions[i] = st->x_t[i];
    return st->ex.status;
}
