/* rtc_prev.h - real-time chunking at the robot level: the previous chunk's tail, given in robot
 * units (rows of an earlier pi0_actions reply), converted to the model units pi0_infer expects. */
#ifndef PI0_RTC_PREV_H
#define PI0_RTC_PREV_H

#include "io/lerobot.h"
#include "io/norm.h"
#include "io/robot.h"
#include "pi0.h"

/* in->prev_actions [n_prev, prev_dim] robot units -> *y [n_prev, A] model units (malloc'd, caller
 * frees), the inverse of the policy's output path: robot columns -> model dims (ALOHA's joint
 * conventions undone), delta dims re-expressed relative to the current raw state (LeRobot
 * policies/rtc/relative.py: the tail is absolute, the model predicts relative to the new state),
 * then normalized (ns NULL: identity); dims the robot does not return are 0, as padded actions.
 * *out is *in with prev_actions = *y and prev_dim = A. */
pi0_status pi0_policy_rtc_to_model(const pi0_robot *r, const pi0_norm_stats *ns, pi0_norm_mode mode,
                                   const double *state, int state_dim, int A, const pi0_rtc_params *in,
                                   pi0_rtc_params *out, float **y);

/* The same for a LeRobot checkpoint (LeRobot policies/rtc/relative.py reanchor_relative_rtc_prefix):
 * float32 actions [n_prev, lr->action_dim] -> relative to the current raw state on the relative
 * dims -> normalized with the action statistics -> padded with 0 to A. */
pi0_status pi0_policy_rtc_to_model_lerobot(const pi0_lerobot *lr, const float *rawstate, int state_dim, int A,
                                           const pi0_rtc_params *in, pi0_rtc_params *out, float **y);

#endif
