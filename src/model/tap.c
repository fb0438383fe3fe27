/* tap.c - hand named intermediates to the caller's tap callback (tests, audit). Costs nothing when
 * no tap is set: callers check rp->tap before building names. */
#include <stdarg.h>
#include <stdio.h>

#include "model/model.h"

void pi0_tap(const pi0_run_params *rp, const float *data, int ndim, const int64_t *shape, const int32_t *rows,
             int row0, const char *fmt, ...) {
    if (!rp->tap) return;
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    pi0_tensor_view v = {name, data, ndim, {0, 0, 0, 0}, rows, row0};
    for (int i = 0; i < ndim && i < 4; i++) v.shape[i] = shape[i];
    rp->tap(&v, rp->tap_user);
}
