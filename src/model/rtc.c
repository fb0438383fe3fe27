/* rtc.c - real-time chunking guidance (include/pi0.h, pi0_rtc_params). Formulas and sign
 * conventions from LeRobot src/lerobot/policies/rtc/modeling_rtc.py (RTCProcessor.denoise_step,
 * get_prefix_weights) and Physical-Intelligence/real-time-chunking-kinetix src/model.py
 * (realtime_action, get_prefix_weights), translated to openpi's time (t: 1 -> 0, dt < 0):
 * kinetix integrates tau = 1 - t upwards with velocity -v, so its v + g·Jᵀe becomes v - g·Jᵀe here.
 * Nothing is allocated or copied: the buffers live in the state, the finite-difference probe swaps
 * the x_t / v_t pointers instead of copying. Training-time RTC (LeRobot policies/common/
 * flow_matching.py euler_integrate's hard_prefix, policies/pi05/modeling_pi05.py
 * _prepare_trained_rtc_prefix) has no guidance: rows [0, d) of x are set to Y (pi0_rtc_clamp) and
 * conditioned at time 0 by denoise.c. */
#include <math.h>

#include "model/rtc.h"

pi0_rtc_params pi0_rtc_params_default(void) {
    pi0_rtc_params r = {0};
    r.mode = PI0_RTC_GUIDED;
    r.schedule = PI0_RTC_LINEAR;
    r.max_guidance = 10.0f;
    return r;
}

void pi0_rtc_prefix_weights(int schedule, int start, int end, int total, float *w) {
    if (start > end) start = end;
    for (int i = 0; i < total; i++) {
        double v;
        if (i >= end) v = 0.0;
        else if (schedule == PI0_RTC_ONES) v = 1.0;
        else if (schedule == PI0_RTC_ZEROS) v = i < start ? 1.0 : 0.0;
        else {
            /* 1 before start, then 1 - (i - start + 1) / (end - start + 1): linspace(1, 0, n + 2)[1:-1] */
            v = i < start ? 1.0 : 1.0 - (double)(i - start + 1) / (double)(end - start + 1);
            if (schedule == PI0_RTC_EXP) v = v * expm1(v) / (M_E - 1.0);
        }
        w[i] = (float)v;
    }
}

float pi0_rtc_guidance_weight(double t, double beta) {
    double tau = 1.0 - t;
    if (tau <= 0.0) return (float)beta;  /* c = (1 - tau) / tau = inf -> beta */
    if (tau >= 1.0) return 0.0f;         /* c · inv_r2 = 0 · inf = NaN -> 0 */
    double g = ((1.0 - tau) * (1.0 - tau) + tau * tau) / (tau * (1.0 - tau));
    return (float)(g < beta ? g : beta);
}

pi0_status pi0_rtc_check(const pi0_config *c, const pi0_rtc_params *r) {
    if (!r) return PI0_OK;
    int H = c->action_horizon, A = c->action_dim, d = r->delay, s = r->horizon;
    if (r->mode < PI0_RTC_GUIDED || r->mode > PI0_RTC_TRAINED)
        return pi0_err(PI0_ERR_ARG, "rtc.mode = %d, expected 0 (guided), 1 (guided_fd) or 2 (trained)", r->mode);
    if (r->mode == PI0_RTC_TRAINED) {
        /* LeRobot implements it for π0.5 only (PI05Config.rtc_training_max_delay; the per-token time
         * enters through the adaptive norms). π0's time is concatenated into the action tokens and
         * no public π0 trainer conditions on clean prefixes. */
        if (c->variant != PI0_VARIANT_PI05)
            return pi0_err(PI0_ERR_UNSUPPORTED, "rtc.mode = trained (training-time RTC) exists for π0.5 checkpoints only "
                                                "(LeRobot PI05Config.rtc_training_max_delay); use guided or guided_fd");
        if (c->rtc_training_max_delay <= 0)
            return pi0_err(PI0_ERR_UNSUPPORTED, "rtc.mode = trained needs a checkpoint trained with clean action prefixes, "
                                                "and this one's config.json has no rtc_training_max_delay > 0; use guided "
                                                "or guided_fd");
        if (d > c->rtc_training_max_delay)
            return pi0_err(PI0_ERR_ARG, "rtc: delay d = %d > the checkpoint's rtc_training_max_delay = %d (training never "
                                        "showed it a longer clean prefix)", d, c->rtc_training_max_delay);
    }
    if (r->schedule < PI0_RTC_LINEAR || r->schedule > PI0_RTC_ZEROS)
        return pi0_err(PI0_ERR_ARG, "rtc.schedule = %d, expected 0 (linear), 1 (exp), 2 (ones) or 3 (zeros)", r->schedule);
    if (!(r->max_guidance > 0.0f) || !isfinite(r->max_guidance))
        return pi0_err(PI0_ERR_ARG, "rtc.max_guidance = %g, expected a finite value > 0", (double)r->max_guidance);
    if (!(r->fd_step >= 0.0f) || !isfinite(r->fd_step))
        return pi0_err(PI0_ERR_ARG, "rtc.fd_step = %g, expected a finite value >= 0 (0 = default)", (double)r->fd_step);
    if (d < 0) return pi0_err(PI0_ERR_ARG, "rtc.delay d = %d, expected >= 0", d);
    if (d > s)
        return pi0_err(PI0_ERR_ARG, "rtc: delay d = %d > execution horizon s = %d (the robot executes s actions of the "
                                    "previous chunk before this one starts, the delay must fit in them)", d, s);
    if (s > H - d)
        return pi0_err(PI0_ERR_ARG, "rtc: execution horizon s = %d > H - d = %d - %d = %d (the previous chunk has no "
                                    "actions left to cover the delay)", s, H, d, H - d);
    if (!r->prev_actions) return pi0_err(PI0_ERR_ARG, "rtc.prev_actions is NULL (the previous chunk's unexecuted tail)");
    int cols = r->prev_dim ? r->prev_dim : A;
    if (cols < 1 || cols > A)
        return pi0_err(PI0_ERR_ARG, "rtc.prev_dim = %d, expected 1..action_dim (%d), or 0 for action_dim", r->prev_dim, A);
    if (r->n_prev < H - s || r->n_prev > H)
        return pi0_err(PI0_ERR_ARG, "rtc.prev_actions has %d rows, expected H - s = %d - %d = %d up to H = %d (the "
                                    "previous chunk's rows s..H-1)", r->n_prev, H, s, H - s, H);
    for (int i = 0; i < r->n_prev; i++)
        for (int j = 0; j < cols; j++)
            if (!isfinite(r->prev_actions[(size_t)i * cols + j]))
                return pi0_err(PI0_ERR_ARG, "rtc.prev_actions[%d, %d] = %g is not finite", i, j,
                               (double)r->prev_actions[(size_t)i * cols + j]);
    return PI0_OK;
}

void pi0_rtc_begin(pi0_state *st, const pi0_run_params *rp) {
    const pi0_rtc_params *r = rp->rtc;
    st->rtc_on = 0;
    st->rtc_clamp = 0;
    if (!r) return;
    const pi0_config *c = &st->ctx->cfg;
    int H = c->action_horizon, A = c->action_dim, cols = r->prev_dim ? r->prev_dim : A;
    int trained = r->mode == PI0_RTC_TRAINED;
    pi0_rtc_prefix_weights(trained ? PI0_RTC_ZEROS : r->schedule, r->delay, H - r->horizon, H, st->rtc_w);
    for (int h = 0; h < H; h++) {
        for (int j = 0; j < A; j++)
            st->rtc_y[(size_t)h * A + j] = h < r->n_prev && j < cols ? r->prev_actions[(size_t)h * cols + j] : 0.0f;
        if (st->rtc_w[h] != 0.0f && !trained) st->rtc_on = 1;
    }
    if (trained) st->rtc_clamp = r->delay; /* no guidance; W (zeros schedule) is only tapped: 1 on the clamped rows */
    if (rp->tap) {
        int64_t sy[2] = {H, A}, sw[1] = {H};
        pi0_tap(&st->ex, rp, st->rtc_y, 2, sy, NULL, 0, "rtc.y");
        pi0_tap(&st->ex, rp, st->rtc_w, 1, sw, NULL, 0, "rtc.w");
    }
}

void pi0_rtc_clamp(pi0_state *st) {
    size_t n = (size_t)st->rtc_clamp * st->ctx->cfg.action_dim;
    for (size_t i = 0; i < n; i++) st->x_t[i] = st->rtc_y[i];
}

/* e = W ⊙ (Y - (x - t·v)) on the rows with W > 0 (others 0); returns max |e|. */
static float prefix_error(const pi0_state *st, int H, int A, float t, float *e) {
    float m = 0.0f;
    for (int h = 0; h < H; h++) {
        float w = st->rtc_w[h];
        for (int j = 0; j < A; j++) {
            size_t i = (size_t)h * A + j;
            float ahat = st->x_t[i] - t * st->v_t[i];
            e[i] = w != 0.0f ? w * (st->rtc_y[i] - ahat) : 0.0f;
            if (fabsf(e[i]) > m) m = fabsf(e[i]);
        }
    }
    return m;
}

void pi0_rtc_guide(pi0_state *st, const pi0_run_params *rp, int step, float t) {
    const pi0_rtc_params *r = rp->rtc;
    if (!r || !st->rtc_on || st->ex.status != PI0_OK) return;
    const pi0_config *c = &st->ctx->cfg;
    int H = c->action_horizon, A = c->action_dim;
    size_t n = (size_t)H * A;
    float g = pi0_rtc_guidance_weight((double)t, (double)r->max_guidance);
    float *e = st->rtc_e;
    float m = prefix_error(st, H, A, t, e);
    if (r->mode == PI0_RTC_GUIDED_FD && m > 0.0f && g != 0.0f) {
        /* J·e ≈ (Â(x + εe) - Â(x)) / ε = e - t·(v(x + εe) - v(x)) / ε, with ε·max|e| = fd_step */
        float eps = (r->fd_step > 0.0f ? r->fd_step : 0.01f) / m;
        for (size_t i = 0; i < n; i++) st->rtc_x[i] = st->x_t[i] + eps * e[i];
        float *x0 = st->x_t, *v0 = st->v_t;
        st->x_t = st->rtc_x;
        st->v_t = st->rtc_v;
        pi0_denoise_velocity(st, rp, -1);
        st->x_t = x0;
        st->v_t = v0;
        if (st->ex.status != PI0_OK) return;
        /* c = J·e, scaled down to |c| <= |e|: J·e is not the gradient of |W ⊙ (Y - Â)|² (Jᵀe is),
         * and with |J| >> 1 (untrained weights) an unbounded step makes the loop diverge. For the
         * near-identity J of late steps of a trained model the bound is inactive. */
        double ee = 0, cc = 0;
        for (size_t i = 0; i < n; i++) {
            float ci = e[i] - t * (st->rtc_v[i] - v0[i]) / eps;
            ee += (double)e[i] * e[i];
            cc += (double)ci * ci;
            st->rtc_x[i] = ci;
        }
        float scale = cc > ee ? (float)sqrt(ee / cc) : 1.0f;
        for (size_t i = 0; i < n; i++) e[i] = scale * st->rtc_x[i];
    }
    if (rp->tap) {
        int64_t sa[2] = {H, A};
        pi0_tap(&st->ex, rp, st->v_t, 2, sa, NULL, 0, "denoise.s%02d.v_model", step);
        pi0_tap(&st->ex, rp, e, 2, sa, NULL, 0, "denoise.s%02d.rtc_corr", step);
    }
    if (g == 0.0f) return;
    for (size_t i = 0; i < n; i++)
        if (e[i] != 0.0f) st->v_t[i] -= g * e[i];
}
