/* rtc_prev.c - the previous chunk's tail from robot units to model units (see rtc_prev.h). The
 * output path is unnormalize -> absolute (delta dims + state) -> robot columns; this runs it
 * backwards with the new observation's state, so the tail is re-anchored for delta-action robots
 * (openpi ALOHA, DROID joint position, legacy LIBERO; LeRobot relative actions). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "policy/rtc_prev.h"

pi0_status pi0_policy_rtc_to_model(const pi0_robot *r, const pi0_norm_stats *ns, pi0_norm_mode mode,
                                   const double *state, int state_dim, int A, const pi0_rtc_params *in,
                                   pi0_rtc_params *out, float **y) {
    *y = NULL;
    int cols = r->n_out ? r->n_out : A;
    if (!in->prev_actions) return pi0_err(PI0_ERR_ARG, "rtc.prev_actions is NULL (the previous chunk's unexecuted tail)");
    if (in->prev_dim != cols)
        return pi0_err(PI0_ERR_ARG, "rtc.prev_dim = %d, but robot '%s' returns %d action columns (prev_actions are in robot "
                                    "units at the policy level)", in->prev_dim, r->name, cols);
    if (in->n_prev < 1 || in->n_prev > 100000) return pi0_err(PI0_ERR_ARG, "rtc.n_prev = %d, expected >= 1", in->n_prev);
    size_t n = (size_t)in->n_prev;
    double *a = malloc(sizeof(double) * n * (size_t)A);
    float *yy = malloc(sizeof(float) * n * (size_t)A);
    if (!a || !yy) {
        free(a);
        free(yy);
        return pi0_err(PI0_ERR_NOMEM, "rtc: previous chunk of %d rows", in->n_prev);
    }
    pi0_robot_outputs_inv(r, in->prev_actions, in->n_prev, cols, A, a);
    int nd = r->n_delta < cols ? r->n_delta : cols;
    if (nd > state_dim) nd = state_dim;
    pi0_status st = PI0_OK;
    for (size_t t = 0; t < n && !st; t++) {
        double *row = a + t * (size_t)A;
        for (int i = 0; i < nd; i++)
            if (r->delta[i]) row[i] -= state[i];
        if (ns) st = pi0_norm_apply(&ns->actions, mode, "actions", row, row, cols);
        for (int i = 0; i < A; i++) yy[t * (size_t)A + i] = i < cols ? (float)row[i] : 0.0f;
    }
    free(a);
    if (st) {
        free(yy);
        return pi0_err_prefix(st, "rtc.prev_actions: %s", ns->path);
    }
    *out = *in;
    out->prev_actions = yy;
    out->prev_dim = A;
    *y = yy;
    return PI0_OK;
}

pi0_status pi0_policy_rtc_to_model_lerobot(const pi0_lerobot *lr, const float *rawstate, int state_dim, int A,
                                           const pi0_rtc_params *in, pi0_rtc_params *out, float **y) {
    *y = NULL;
    int ad = lr->action_dim;
    if (!in->prev_actions) return pi0_err(PI0_ERR_ARG, "rtc.prev_actions is NULL (the previous chunk's unexecuted tail)");
    if (in->prev_dim != ad)
        return pi0_err(PI0_ERR_ARG, "rtc.prev_dim = %d, but %s returns %d action columns (prev_actions are in robot units "
                                    "at the policy level)", in->prev_dim, lr->dir, ad);
    if (in->n_prev < 1 || in->n_prev > 100000) return pi0_err(PI0_ERR_ARG, "rtc.n_prev = %d, expected >= 1", in->n_prev);
    float *yy = calloc((size_t)in->n_prev * (size_t)A, sizeof(float));
    if (!yy) return pi0_err(PI0_ERR_NOMEM, "rtc: previous chunk of %d rows", in->n_prev);
    for (int t = 0; t < in->n_prev; t++) {
        float *row = yy + (size_t)t * A;
        for (int i = 0; i < ad; i++) row[i] = in->prev_actions[(size_t)t * ad + i];
        if (lr->relative) /* to_relative_actions: float32, masked dims minus the raw state */
            for (int i = 0; i < lr->n_rel && i < state_dim && i < ad; i++)
                if (lr->rel_mask[i]) row[i] = row[i] - rawstate[i];
        pi0_status st = pi0_lr_apply(&lr->action_unnorm, 0, "action", row, ad);
        if (st) {
            free(yy);
            return pi0_err_prefix(st, "rtc.prev_actions: %s/policy_postprocessor.json", lr->dir);
        }
    }
    *out = *in;
    out->prev_actions = yy;
    out->prev_dim = A;
    *y = yy;
    return PI0_OK;
}
