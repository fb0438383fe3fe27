/* norm.h - openpi normalization statistics (norm_stats.json) and the Normalize / Unnormalize
 * transforms (PI0_IO.md §3, PI0_MODEL.md §7.5).
 *
 * Contract:
 * - pi0_norm_load/parse read {"norm_stats": {"state": S, "actions": S}} with
 *   S = {"mean": [...], "std": [...], "q01": [...] | null, "q99": [...] | null}. Numbers are
 *   parsed as double. mean/std are required; q01/q99 may be null or absent (quantile mode then
 *   refuses to run). All present arrays of one S must have the same length. Unknown keys are
 *   ignored. Errors name the file and the field ("norm_stats.state.q01[3]"). Python's NaN, Infinity
 *   and -Infinity tokens are accepted (see pi0_norm_check); a negative std is an error.
 * - Maths in double with eps 1e-6, exactly openpi's expressions (shared/normalize.py):
 *     normalize   z-score   (x - mean[:d]) / (std[:d] + 1e-6)
 *                 quantile  (x - q01[:d]) / (q99[:d] - q01[:d] + 1e-6) * 2 - 1
 *     unnormalize z-score   x * (std + 1e-6) + mean, stats padded with mean 0 / std 1 to d
 *                 quantile  first len(q01) dims (x + 1) / 2 * (q99 - q01 + 1e-6) + q01, rest unchanged
 *   normalize needs d <= n (the stats length), as openpi's broadcasting does.
 */
#ifndef PI0_NORM_H
#define PI0_NORM_H

#include <stddef.h>

#include "pi0.h"

typedef enum { PI0_NORM_ZSCORE = 0, PI0_NORM_QUANTILE = 1 } pi0_norm_mode;

#define PI0_NORM_EPS 1e-6

typedef struct {
    int n;                      /* dims; 0 when the entry is absent from the file */
    double *mean, *std;         /* [n] */
    double *q01, *q99;          /* [n] or NULL (null in the file) */
} pi0_norm_stat;

typedef struct {
    pi0_norm_stat state, actions;
    char *path;                 /* file the stats came from (for messages) */
} pi0_norm_stats;

/* Parse a norm_stats.json file. On error *out is zeroed and the message names path and field. */
pi0_status pi0_norm_load(const char *path, pi0_norm_stats *out);
/* Same from memory; `name` is used in messages and stored as out->path. */
pi0_status pi0_norm_parse(const char *json, size_t len, const char *name, pi0_norm_stats *out);
void pi0_norm_free(pi0_norm_stats *ns);   /* NULL-safe; zeroes the struct */

/* Normalize x[d] -> y[d] (may alias). `what` names the entry in messages ("state"). Fails when
 * d > s->n, when s is absent (n == 0), or in quantile mode when q01/q99 are missing. */
pi0_status pi0_norm_apply(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const double *x,
                          double *y, int d);
/* Unnormalize x[d] -> y[d] (may alias) with openpi's padding rules. Fails when s is absent, when
 * z-score stats are longer than d (openpi cannot broadcast them), or quantiles are missing. */
pi0_status pi0_norm_unapply(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const double *x,
                            double *y, int d);
/* Same for float32 input (the model's actions, the echoed float32 state), following numpy's type
 * promotion as openpi runs it: a float32 array combined with Python floats stays float32, so the
 * quantile path computes (x + 1.0) / 2.0 in float32 and only then multiplies by the float64 stats;
 * the z-score path is float64 throughout (float32 array * float64 array). */
pi0_status pi0_norm_unapply_f32(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const float *x,
                                double *y, int d);

/* Fail (PI0_ERR_FORMAT, naming "norm_stats.<what>.<stat>[i]") when a statistic the mode uses is NaN
 * or infinite in dims [0, d) — Python's json.dump writes NaN, which the parser accepts so that a
 * NaN in a dim the robot never uses does not stop anything. pi0_norm_apply runs this itself. */
pi0_status pi0_norm_check(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, int d);
/* Log one warning when a dim is constant (std 0, or q99 == q01): openpi then divides by 1e-6. */
void pi0_norm_warn_constant(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const char *path);

#endif
