/* tap.c - hand named intermediates to the caller's tap callback (tests, audit), with the stage and step
 * they belong to; the stage names. Costs nothing when no tap is set: callers check rp->tap before
 * building names. */
#include <stdarg.h>
#include <stdio.h>

#include "debug.h"
#include "model/model.h"

const char *pi0_stage_name(pi0_stage s) {
    static const char *const names[PI0_STAGE_COUNT] = {"vision", "prefix", "denoise"};
    return (unsigned)s < PI0_STAGE_COUNT ? names[s] : "?";
}

void pi0_tap(const pi0_exec *ex, const pi0_run_params *rp, const float *data, int ndim, const int64_t *shape,
             const int32_t *rows, int row0, const char *fmt, ...) {
    if (!rp->tap) return;
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    pi0_tensor_view v = {.name = name, .data = data, .ndim = ndim, .rows = rows, .row0 = row0, .stage = ex->stage,
                         .step = ex->stage == PI0_STAGE_DENOISE ? ex->step : -1};
    for (int i = 0; i < ndim && i < 4; i++) v.shape[i] = shape[i];
    rp->tap(&v, rp->tap_user);
}
