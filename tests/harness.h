/* harness.h - minimal test harness: labelled checks with numbers, and the closing summary line.
 *
 * Each CHECK prints its label; array comparisons print max |d|, the tolerance, PCC and the first
 * mismatches. main() ends with `return harness_summary();`, which prints "N passed, N failed" and
 * returns non-zero when anything failed. */
#ifndef PI0_HARNESS_H
#define PI0_HARNESS_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "debug_compare.h"

static int harness_pass, harness_fail;

static inline void harness_result(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) harness_pass++; else harness_fail++;
}

#define CHECK(cond, ...) harness_result((cond) ? 1 : 0, __VA_ARGS__)

/* PCC as pi0 check computes it (src/debug_compare.c). */
static inline double harness_pcc(const float *a, const float *b, int64_t n) { return pi0_pcc(a, b, n); }

/* Compare got vs want: passes when max|got - want| <= tol (absolute) and there are no NaN/Inf
 * mismatches. Returns the max abs difference. */
static inline double check_close(const char *label, const float *got, const float *want, int64_t n,
                                 double tol) {
    double maxd = 0, maxref = 0;
    int64_t bad = 0, shown = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) != isnan(want[i]) || (!isfinite(got[i]) && got[i] != want[i])) d = INFINITY;
        if (fabs(want[i]) > maxref) maxref = fabs(want[i]);
        if (d > maxd || isnan(d)) maxd = isnan(d) ? INFINITY : d;
        if (d > tol || isnan(d)) {
            if (shown < 5) {
                printf("     mismatch [%lld] got %.8g want %.8g\n", (long long)i, got[i], want[i]);
                shown++;
            }
            bad++;
        }
    }
    harness_result(bad == 0, "%s: n=%lld max|d|=%.3g (rel %.3g) tol=%.3g pcc=%.7f", label, (long long)n,
                   maxd, maxd / (maxref > 1 ? maxref : 1), tol, harness_pcc(got, want, n));
    return maxd;
}

static inline int harness_summary(void) {
    printf("%d passed, %d failed\n", harness_pass, harness_fail);
    return harness_fail ? 1 : 0;
}

#endif
