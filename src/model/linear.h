/* linear.h - the dense layer y = x·Wᵀ + b over contiguous rows, the op call the model makes most
 * (vision, VLM, expert, projections). Named arguments instead of a positional pi0_matmul_args: the
 * row strides follow from the weight's shape (x rows hold w->cols floats, y rows w->rows), so a
 * call site states only what differs. Calls with other strides build pi0_matmul_args with
 * designated initializers. */
#ifndef PI0_MODEL_LINEAR_H
#define PI0_MODEL_LINEAR_H

#include "ops/dispatch.h"

/* y (m, w->rows) = x (m, w->cols) · Wᵀ + bias (bias may be NULL). */
static inline void pi0_linear(pi0_exec *ex, const char *site, float *y, const float *x, const pi0_weight *w,
                              const float *bias, int64_t m) {
    pi0_matmul_args a = {.y = y, .x = x, .w = w, .bias = bias, .m = m, .ldx = w->cols, .ldy = w->rows};
    pi0_op_matmul(ex, site, &a);
}

/* y (m, w->rows) += x (m, w->cols) · Wᵀ + bias: a residual branch added in place. */
static inline void pi0_linear_add(pi0_exec *ex, const char *site, float *y, const float *x, const pi0_weight *w,
                                  const float *bias, int64_t m) {
    pi0_matmul_args a = {.y = y, .x = x, .w = w, .bias = bias, .m = m, .ldx = w->cols, .ldy = w->rows, .accumulate = 1};
    pi0_op_matmul(ex, site, &a);
}

#endif
