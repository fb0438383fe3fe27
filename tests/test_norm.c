/* test_norm.c - norm_stats.json parsing and openpi Normalize / Unnormalize (src/io/norm.c).
 *
 * Expected values are computed by hand (exact rationals, eps = 1e-6, written next to each check)
 * and compared with |got - want| <= 1e-13 * max(1, |want|): the double expressions round a few ulps
 * of their operands, and `a*2 - 1` near 0 cancels (an absolute error of ~1e-16, as in numpy). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/norm.h"

/* state: mean [1, -2, 0.5], std [2, 0.5, 0], q01 [0, -3, 0], q99 [4, 1, 0]; actions without quantiles. */
static const char *good =
    "{\"norm_stats\": {\"state\": {\"mean\": [1, -2, 0.5], \"std\": [2, 0.5, 0], \"q01\": [0, -3, 0],"
    " \"q99\": [4, 1, 0]}, \"actions\": {\"mean\": [1, -2, 0.5], \"std\": [2, 0.5, 0], \"q01\": null, \"q99\": null,"
    " \"extra\": 5}}}";

static void check_vals(const char *label, const double *got, const double *want, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double r = fabs(got[i] - want[i]) / (fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0);
        if (!(r <= worst)) worst = r;
    }
    CHECK(worst <= 1e-13, "%s: max err %.3g (tol 1e-13 * max(1, |want|))", label, worst);
    if (worst > 1e-13)
        for (int i = 0; i < n; i++) printf("     [%d] got %.17g want %.17g\n", i, got[i], want[i]);
}

static void test_math(void) {
    pi0_norm_stats ns;
    pi0_status st = pi0_norm_parse(good, strlen(good), "good.json", &ns);
    CHECK(st == PI0_OK && ns.state.n == 3 && ns.actions.n == 3 && ns.state.q01 && !ns.actions.q01,
          "parse: state n=3 with quantiles, actions n=3 with null quantiles (%s)", pi0_last_error());
    if (st) return;
    double x[3] = {3, -1, 0.5}, y[5];
    /* z-score: (3-1)/(2+1e-6) = 2/2.000001 = 0.99999950000025
     *          (-1+2)/(0.5+1e-6) = 1/0.500001 = 1.999996000008
     *          (0.5-0.5)/(0+1e-6) = 0 */
    st = pi0_norm_apply(&ns.state, PI0_NORM_ZSCORE, "state", x, y, 3);
    check_vals("z-score normalize", y, (double[]){0.99999950000025, 1.999996000008, 0.0}, 3);
    /* quantile: 3/(4+1e-6)*2-1 = 6/4.000001 - 1 = 0.499999625000094 (0.49999962500009376)
     *           (-1+3)/(1+3+1e-6)*2-1 = 4/4.000001 - 1 = -2.49999937500016e-7
     *           0.5/(0-0+1e-6)*2-1 = 999999 */
    st = pi0_norm_apply(&ns.state, PI0_NORM_QUANTILE, "state", x, y, 3);
    check_vals("quantile normalize", y, (double[]){0.49999962500009376, -2.4999993750001564e-07, 999999.0}, 3);
    /* first d dims only: d = 2 uses mean[:2], std[:2] */
    st = pi0_norm_apply(&ns.state, PI0_NORM_ZSCORE, "state", x, y, 2);
    check_vals("z-score normalize, d=2 < n", y, (double[]){0.99999950000025, 1.999996000008}, 2);
    /* unnormalize z-score, d = 5 > n = 3: stats padded with mean 0, std 1.
     *   1*(2+1e-6)+1 = 3.000001; 2*(0.5+1e-6)-2 = -0.999998; 0*(0+1e-6)+0.5 = 0.5;
     *   1*(1+1e-6)+0 = 1.000001; -1*(1+1e-6) = -1.000001 */
    double u[5] = {1, 2, 0, 1, -1};
    st = pi0_norm_unapply(&ns.state, PI0_NORM_ZSCORE, "actions", u, y, 5);
    check_vals("z-score unnormalize, padded", y, (double[]){3.000001, -0.999998, 0.5, 1.000001, -1.000001}, 5);
    /* unnormalize quantile, d = 5: first 3 dims (x+1)/2*(q99-q01+1e-6)+q01, the rest unchanged.
     *   1.5/2*4.000001 = 3.00000075; 0/2*4.000001-3 = -3; 2/2*(0+1e-6)+0 = 1e-6; 7; -7 */
    double q[5] = {0.5, -1, 1, 7, -7};
    st = pi0_norm_unapply(&ns.state, PI0_NORM_QUANTILE, "actions", q, y, 5);
    check_vals("quantile unnormalize, extra dims pass", y, (double[]){3.00000075, -3.0, 1e-6, 7, -7}, 5);
    /* float32 input, numpy promotion (expected values from numpy 1.24 running openpi's expressions on
     * np.float32([0.3, -0.7]) with the state stats):
     *   quantile ((x + 1.0) / 2.0 stays float32) * (q99 - q01 + 1e-6) + q01 -> 2.6000005546325444, -2.399999826158136
     *   z-score  x * (std + 1e-6) + mean (float64)                       -> 1.6000003238418699, -2.3500006940395237 */
    st = pi0_norm_unapply_f32(&ns.state, PI0_NORM_QUANTILE, "actions", (float[]){0.3f, -0.7f, 0.0f}, y, 3);
    CHECK(st == PI0_OK && y[0] == 2.6000005546325444 && y[1] == -2.399999826158136,
          "quantile unnormalize of float32 = numpy bit for bit: %.17g %.17g", y[0], y[1]);
    st = pi0_norm_unapply_f32(&ns.state, PI0_NORM_ZSCORE, "actions", (float[]){0.3f, -0.7f, 0.0f}, y, 3);
    CHECK(st == PI0_OK && y[0] == 1.6000003238418699 && y[1] == -2.3500006940395237,
          "z-score unnormalize of float32 = numpy bit for bit: %.17g %.17g", y[0], y[1]);
    /* round trip in place */
    double r[3] = {3, -1, 0.25};
    pi0_norm_apply(&ns.state, PI0_NORM_QUANTILE, "state", r, r, 3);
    pi0_norm_unapply(&ns.state, PI0_NORM_QUANTILE, "state", r, r, 3);
    CHECK(fabs(r[0] - 3) < 1e-12 && fabs(r[1] + 1) < 1e-12 && fabs(r[2] - 0.25) < 1e-9, "quantile round trip in place");
    /* refusals */
    st = pi0_norm_apply(&ns.actions, PI0_NORM_QUANTILE, "actions", x, y, 3);
    CHECK(st == PI0_ERR_UNSUPPORTED && strstr(pi0_last_error(), "q01"), "quantile with null q01: %s", pi0_last_error());
    st = pi0_norm_apply(&ns.state, PI0_NORM_ZSCORE, "state", u, y, 5);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "5 dims"), "normalize d > n: %s", pi0_last_error());
    st = pi0_norm_unapply(&ns.state, PI0_NORM_ZSCORE, "actions", u, y, 2);
    CHECK(st == PI0_ERR_ARG, "z-score unnormalize with stats longer than d: %s", pi0_last_error());
    pi0_norm_free(&ns);
    pi0_norm_free(&ns);   /* idempotent */
}

static void expect_bad(const char *json, const char *needle) {
    pi0_norm_stats ns;
    pi0_status st = pi0_norm_parse(json, strlen(json), "bad.json", &ns);
    const char *m = pi0_last_error();
    CHECK(st == PI0_ERR_FORMAT && strstr(m, "bad.json") && strstr(m, needle), "bad file -> \"%s\"", m);
}

static void test_bad(void) {
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [1, 2], \"std\": [1, 2}}}", "near byte");
    expect_bad("{\"stats\": {}}", "'norm_stats'");
    expect_bad("{\"norm_stats\": {\"state\": {\"std\": [1]}}}", "norm_stats.state.mean");
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [1, \"x\"], \"std\": [1, 2]}}}", "norm_stats.state.mean[1]");
    expect_bad("{\"norm_stats\": {\"actions\": {\"mean\": [1, 2], \"std\": [1]}}}", "norm_stats.actions.std");
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [1], \"std\": [1], \"q01\": [0]}}}", "q01/q99");
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [], \"std\": []}}}", "norm_stats.state.mean");
    expect_bad("{\"norm_stats\": {}}", "neither");
    pi0_norm_stats ns;
    pi0_status st = pi0_norm_load("/nonexistent/norm_stats.json", &ns);
    CHECK(st == PI0_ERR_IO && strstr(pi0_last_error(), "/nonexistent/norm_stats.json"), "missing file: %s",
          pi0_last_error());
    /* From a file, with a real openpi-like layout. */
    char path[] = "/tmp/pi0_test_norm_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs(good, f);
    fclose(f);
    st = pi0_norm_load(path, &ns);
    CHECK(st == PI0_OK && ns.path && !strcmp(ns.path, path) && ns.state.std[1] == 0.5, "load from file");
    pi0_norm_free(&ns);
    remove(path);
}

/* Python's json.dump writes NaN / Infinity / -Infinity: parsed, then refused only where used. */
static void test_nonfinite(void) {
    const char *js = "{\"note\": \"NaN Infinity in a string stays text\", \"norm_stats\": {"
                     "\"state\": {\"mean\": [0.5, NaN, 1], \"std\": [1, 2, Infinity]},"
                     "\"actions\": {\"mean\": [-Infinity, 0], \"std\": [1, 1], \"q01\": null, \"q99\": null}}}";
    pi0_norm_stats ns;
    pi0_status st = pi0_norm_parse(js, strlen(js), "nan.json", &ns);
    CHECK(st == PI0_OK && isnan(ns.state.mean[1]) && isinf(ns.state.std[2]) && ns.state.std[2] > 0 &&
              isinf(ns.actions.mean[0]) && ns.actions.mean[0] < 0 && ns.state.mean[2] == 1.0,
          "NaN, Infinity, -Infinity tokens parse (%s)", st ? pi0_last_error() : "");
    if (st) return;
    double x[3] = {1, 2, 3}, y[3];
    st = pi0_norm_apply(&ns.state, PI0_NORM_ZSCORE, "state", x, y, 1);
    CHECK(st == PI0_OK && y[0] == (1 - 0.5) / (1 + 1e-6), "dim 0 only: the NaN in dim 1 is never used");
    st = pi0_norm_apply(&ns.state, PI0_NORM_ZSCORE, "state", x, y, 2);
    CHECK(st == PI0_ERR_FORMAT && strstr(pi0_last_error(), "'norm_stats.state.mean[1]' is NaN"),
          "dims 0-1: named error: %s", pi0_last_error());
    st = pi0_norm_check(&ns.state, PI0_NORM_ZSCORE, "state", 3);
    CHECK(st == PI0_ERR_FORMAT && strstr(pi0_last_error(), "'norm_stats.state.mean[1]'"), "first bad field named: %s",
          pi0_last_error());
    st = pi0_norm_check(&ns.actions, PI0_NORM_ZSCORE, "actions", 2);
    CHECK(st == PI0_ERR_FORMAT && strstr(pi0_last_error(), "'norm_stats.actions.mean[0]' is infinite"),
          "-Infinity named: %s", pi0_last_error());
    pi0_norm_free(&ns);
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [0, 0, 0], \"std\": [1, 1, -0.5]}}}",
               "'norm_stats.state.std[2]' is negative");
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [0, Nan], \"std\": [1, 1]}}}", "byte");
    expect_bad("{\"norm_stats\": {\"state\": {\"mean\": [0, \"N\"x], \"std\": [1, 1]}}}", "byte");
}

int main(void) {
    test_math();
    test_bad();
    test_nonfinite();
    return harness_summary();
}
