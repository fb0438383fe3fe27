/* rtc.h - real-time chunking (include/pi0.h, pi0_rtc_params): prefix weights, argument checks and
 * the per-step velocity guidance called by the denoising loop (denoise.c). */
#ifndef PI0_RTC_H
#define PI0_RTC_H

#include "model/model.h"

/* Prefix weights w[total] of `schedule` (pi0_rtc_schedule) with start (inclusive: rows < start
 * weigh 1) and end (exclusive: rows >= end weigh 0); start is lowered to end if larger. Same values
 * as LeRobot's RTCProcessor.get_prefix_weights(start, end, total) and kinetix get_prefix_weights. */
void pi0_rtc_prefix_weights(int schedule, int start, int end, int total, float *w);

/* Guidance weight at openpi time t: min(beta, ((1-tau)² + tau²) / (tau (1-tau))), tau = 1 - t;
 * beta at t = 1 and 0 at t = 0 (LeRobot's nan_to_num of the same expression). */
float pi0_rtc_guidance_weight(double t, double beta);

/* Check r against the model (sizes, ranges, finite values); PI0_OK for r == NULL. */
pi0_status pi0_rtc_check(const pi0_config *c, const pi0_rtc_params *r);

/* Before the loop: fill st->rtc_y, st->rtc_w, st->rtc_on (guidance) and st->rtc_clamp (training-time
 * RTC: d) from rp->rtc (checked). */
void pi0_rtc_begin(pi0_state *st, const pi0_run_params *rp);

/* Training-time RTC (st->rtc_clamp = d > 0): rows [0, d) of st->x_t = Y, before the velocity and
 * after the Euler update of every step. */
void pi0_rtc_clamp(pi0_state *st);

/* After the model velocity of this step is in st->v_t (for st->x_t at time t), replace it by the
 * guided velocity. GUIDED_FD runs one more velocity pass (pi0_denoise_velocity) at x + εe. */
void pi0_rtc_guide(pi0_state *st, const pi0_run_params *rp, int step, float t);

#endif
