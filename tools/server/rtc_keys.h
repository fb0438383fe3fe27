/* rtc_keys.h - real-time chunking through `pi0 serve`: the request keys and the server options.
 *
 * Stateless: the client sends what it has not executed yet, so any replica behind a load balancer
 * can serve any request (the server keeps nothing between requests).
 *   "rtc_prev_actions"     [n, cols] numbers: the previous reply's actions the robot had not
 *                          executed when this observation was taken (rows s..H-1 of that reply,
 *                          robot units, as received); s = H - n is the execution horizon.
 *   "rtc_inference_delay"  int: d, the actions of that tail the robot executes while this request
 *                          is computed (d <= n and d <= s).
 * Both or neither; a request with neither (any openpi client) gets today's behaviour. Mode,
 * schedule and beta are server options (--rtc-mode, --rtc-schedule, --rtc-beta, --rtc-fd-step). */
#ifndef PI0_SERVE_RTC_KEYS_H
#define PI0_SERVE_RTC_KEYS_H

#include <stddef.h>

#include "msgpack_numpy.h"
#include "pi0.h"

/* Read the keys of obs. Returns 0 when the request has neither, 1 with *out filled (*buf holds the
 * tail as float32, caller frees) from `base` (the server's mode, schedule, beta), -1 with a message
 * naming the key at fault in err. H = the model's action horizon. */
int pi0_serve_rtc_keys(const pi0_mpk_obs *obs, int H, const pi0_rtc_params *base, pi0_rtc_params *out, float **buf,
                       char *err, size_t err_cap);

#endif
