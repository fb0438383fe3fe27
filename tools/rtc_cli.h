/* rtc_cli.h - `pi0 run`'s real-time chunking options (--prev-actions, --delay, --horizon, --rtc-*)
 * and --taps (the per-step tensors RTC tests compare against). */
#ifndef PI0_RTC_CLI_H
#define PI0_RTC_CLI_H

#include "opts.h"
#include "pi0.h"

typedef struct {
    const char *prev_path;   /* --prev-actions FILE: the previous chunk, as `pi0 run --out` wrote it */
    int delay, horizon;      /* --delay D, --horizon S (-1 = not given) */
    pi0_rtc_params params;   /* mode, schedule, beta, fd step; prev_actions set by rtc_cli_prepare */
    float *prev;             /* rows S.. of the file, owned */
    const char *taps_path;   /* --taps FILE */
} rtc_cli;

void rtc_cli_init(rtc_cli *o);
void rtc_cli_free(rtc_cli *o);
/* The options --prev-actions, --delay, --horizon, --taps and the --rtc-* block into *o (pi0 run). */
typedef struct { opt_spec s[12]; } rtc_opt_block;
const opt_spec *rtc_cli_options(rtc_opt_block *blk, rtc_cli *o);
/* Only --rtc-mode, --rtc-schedule, --rtc-beta, --rtc-fd-step into *p (pi0 serve: the rest comes with
 * each request). */
const opt_spec *rtc_params_options(rtc_opt_block *blk, pi0_rtc_params *p);
/* Read the previous chunk [rows, cols] (cols must equal `cols` when > 0: the model's action_dim for
 * model-level runs; robot-level runs pass 0 and the policy checks the robot's columns) and point
 * o->params at rows S..rows-1.
 * Returns 0 with *rtc = NULL when no --prev-actions was given, 1 after printing an error. */
int rtc_cli_prepare(rtc_cli *o, int cols, const pi0_rtc_params **rtc);

/* --taps: a tap callback keeping the RTC-related tensors (rtc.*, denoise.sNN.{x,v,v_model,rtc_corr})
 * and a writer for them (safetensors). */
typedef struct rtc_taps rtc_taps;
rtc_taps *rtc_taps_new(void);
void rtc_taps_cb(const pi0_tensor_view *t, void *user);
int rtc_taps_save(rtc_taps *tp, const char *path); /* 0 ok, 1 after printing an error */
void rtc_taps_free(rtc_taps *tp);

#endif
