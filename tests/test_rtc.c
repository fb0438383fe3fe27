/* test_rtc.c - real-time chunking (src/model/rtc.c):
 *   - prefix-weight schedules and guidance weights against the golden values of LeRobot's
 *     tests/policies/rtc/test_modeling_rtc.py (values produced by LeRobot, not by us);
 *   - W = 0 gives actions bit-identical to a run without RTC (both modes, fast and ref);
 *   - the finite-difference product J·e of GUIDED_FD against J built column by column by central
 *     differences of the same path in double (tap callback at each step), and against Jᵀe (the
 *     paper's vector-Jacobian product);
 *   - misuse: each bad argument fails with PI0_ERR_ARG and a message naming it.
 * The identity-Jacobian mode is checked against a numpy re-implementation in tests/test_rtc.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "case_io.h"
#include "harness.h"
#include "model/model.h"
#include "model/rtc.h"
#include "pi0.h"

static int close_to(const float *w, const float *want, int n, double tol) {
    for (int i = 0; i < n; i++)
        if (fabs((double)w[i] - want[i]) > tol) {
            printf("     [%d] got %.6f want %.6f\n", i, w[i], want[i]);
            return 0;
        }
    return 1;
}

static void test_schedules(void) {
    float w[32];
    /* linear, start 5, end 14, total 25: ones, then 0.9 ... 0.1, then zeros */
    float lin[25] = {1, 1, 1, 1, 1, 0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f};
    pi0_rtc_prefix_weights(PI0_RTC_LINEAR, 5, 14, 25, w);
    CHECK(close_to(w, lin, 25, 1e-6), "linear schedule (5, 14, 25) = LeRobot golden values");
    float ex[25] = {1, 1, 1, 1, 1, 0.7645f, 0.5706f, 0.4130f, 0.2871f, 0.1888f, 0.1145f, 0.0611f, 0.0258f, 0.0061f};
    pi0_rtc_prefix_weights(PI0_RTC_EXP, 5, 14, 25, w);
    CHECK(close_to(w, ex, 25, 1e-4), "exp schedule (5, 14, 25) = LeRobot golden values (atol 1e-4, as LeRobot's test)");
    float z[20] = {1, 1, 1, 1, 1};
    pi0_rtc_prefix_weights(PI0_RTC_ZEROS, 5, 10, 20, w);
    CHECK(close_to(w, z, 20, 0), "zeros schedule (5, 10, 20): 1 before start, 0 after");
    float o[20] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    pi0_rtc_prefix_weights(PI0_RTC_ONES, 5, 15, 20, w);
    CHECK(close_to(w, o, 20, 0), "ones schedule (5, 15, 20): 1 before end, 0 after");
    float se[20] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    pi0_rtc_prefix_weights(PI0_RTC_LINEAR, 10, 10, 20, w);
    CHECK(close_to(w, se, 20, 0), "linear, start == end (10, 10, 20)");
    pi0_rtc_prefix_weights(PI0_RTC_LINEAR, 15, 10, 20, w);
    CHECK(close_to(w, se, 20, 0), "linear, start > end is clamped to end (15, 10, 20)");
    float ones5[5] = {1, 1, 1, 1, 1};
    pi0_rtc_prefix_weights(PI0_RTC_LINEAR, 10, 10, 5, w);
    CHECK(close_to(w, ones5, 5, 0), "linear, total < start (10, 10, 5): all ones");

    /* LeRobot test_denoise_step_with_prev_chunk: x = 1, Y = 0.1, v = 0.5, time 0.5, d = 5, end = 10,
     * linear, beta 10 -> v - g·W·(Y - (x - t·v)); and test_..._custom_execution_horizon (end 15) */
    float want10[20] = {1.8f, 1.8f, 1.8f, 1.8f, 1.8f, 1.5833f, 1.3667f, 1.15f, 0.9333f, 0.7167f,
                        0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    float want15[20] = {1.8f, 1.8f, 1.8f, 1.8f, 1.8f, 1.6818f, 1.5636f, 1.4455f, 1.3273f, 1.2091f,
                        1.0909f, 0.9727f, 0.8545f, 0.7364f, 0.6182f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    const int ends[2] = {10, 15};
    const float *wants[2] = {want10, want15};
    for (int k = 0; k < 2; k++) {
        float got[20];
        pi0_rtc_prefix_weights(PI0_RTC_LINEAR, 5, ends[k], 20, w);
        float g = pi0_rtc_guidance_weight(0.5, 10.0);
        for (int i = 0; i < 20; i++) got[i] = 0.5f - g * w[i] * (0.1f - (1.0f - 0.5f * 0.5f));
        CHECK(close_to(got, wants[k], 20, 1e-4), "guided velocity, end %d = LeRobot golden values (atol 1e-4)", ends[k]);
    }
    CHECK(pi0_rtc_guidance_weight(0.0, 10.0) == 0.0f, "guidance weight at t = 0 is 0 (LeRobot test_..._at_time_zero)");
    CHECK(pi0_rtc_guidance_weight(1.0, 10.0) == 10.0f, "guidance weight at t = 1 is beta");
    CHECK(pi0_rtc_guidance_weight(0.5, 10.0) == 2.0f, "guidance weight at t = 0.5 is 2");
}

typedef struct {
    pi0_ctx *ctx;
    pi0_state *st;
    const pi0_config *c;
    case_inputs ci;
    pi0_obs obs;
    int H, A;
} model;

static int open_model(model *m, const char *dir, const char *case_path, int backend, int pi05) {
    memset(m, 0, sizeof *m);
    pi0_params p = pi0_params_default();
    p.backend = backend;
    p.n_threads = 2;
    if (backend == PI0_BACKEND_FAST + 8) { p.backend = PI0_BACKEND_FAST; p.weights = PI0_WEIGHTS_F32; }
    if (pi0_load(dir, &p, &m->ctx) || pi0_state_new(m->ctx, &m->st)) {
        CHECK(0, "load %s: %s", dir, pi0_last_error());
        return 0;
    }
    m->c = pi0_config_of(m->ctx);
    m->H = m->c->action_horizon;
    m->A = m->c->action_dim;
    if (!read_case(case_path, &m->ci, pi05)) { CHECK(0, "read %s", case_path); return 0; }
    m->obs = case_obs(&m->ci);
    return 1;
}

static void close_model(model *m) {
    free_case(&m->ci);
    pi0_state_free(m->st);
    pi0_free(m->ctx);
}

/* previous-chunk tail: a smooth made-up trajectory */
static void make_prev(float *y, int rows, int A) {
    for (int h = 0; h < rows; h++)
        for (int j = 0; j < A; j++) y[h * A + j] = 0.5f * sinf(0.3f * (float)h + 0.7f * (float)j);
}

static void test_bit_identical(const char *dir, const char *case_path, int backend, int pi05) {
    model m;
    if (!open_model(&m, dir, case_path, backend, pi05)) return;
    int H = m.H, A = m.A;
    size_t n = (size_t)H * A;
    float *a0 = malloc(n * 4), *a1 = malloc(n * 4), *a2 = malloc(n * 4), *y = malloc(n * 4);
    make_prev(y, H, A);
    const char *bk = backend == PI0_BACKEND_REF ? "ref" : "fast";
    pi0_run_params rp = pi0_run_params_default();
    pi0_status s = pi0_infer(m.st, &m.obs, &rp, m.ci.noise, a0, n);
    CHECK(s == PI0_OK, "%s %s: no RTC runs", dir, bk);
    for (int mode = PI0_RTC_GUIDED; mode <= PI0_RTC_GUIDED_FD; mode++) {
        pi0_rtc_params r = pi0_rtc_params_default();
        r.mode = mode;
        r.schedule = PI0_RTC_ZEROS; /* d = 0: W = 0 everywhere */
        r.delay = 0;
        r.horizon = 1;
        r.prev_actions = y + A;
        r.n_prev = H - 1;
        rp.rtc = &r;
        s = pi0_infer(m.st, &m.obs, &rp, m.ci.noise, a1, n);
        CHECK(s == PI0_OK && !memcmp(a0, a1, n * 4), "%s %s: mode %d, W = 0 (zeros schedule, d = 0): bit-identical to no RTC",
              dir, bk, mode);
        r.schedule = PI0_RTC_LINEAR;
        r.delay = 1;
        s = pi0_infer(m.st, &m.obs, &rp, m.ci.noise, a2, n);
        double d = 0;
        for (size_t i = 0; i < n; i++) d = fmax(d, fabs(a2[i] - a0[i]));
        CHECK(s == PI0_OK && d > 1e-3, "%s %s: mode %d, d = 1 linear: actions move (max |d| %.3g > 1e-3)", dir, bk, mode, d);
        rp.rtc = NULL;
    }
    free(a0); free(a1); free(a2); free(y);
    close_model(&m);
}

/* Tap probe for the finite-difference check: at each step's rtc_corr tap (x_t, v_t = model velocity
 * and the step's time inputs are in place), build J = dÂ/dx by central differences in double. */
typedef struct {
    pi0_state *st;
    int H, A, n_steps;
    const float *y, *w;        /* padded Y, W */
    float *xp, *vp;            /* probe buffers */
    double *J, *e;
    double worst_je, worst_jte; /* lowest cosines over the steps */
    int steps_seen;
} fd_probe;

static double cosine(const double *a, const double *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

static void fd_tap(const pi0_tensor_view *t, void *user) {
    fd_probe *p = user;
    const char *k = strrchr(t->name, '.');
    if (t->step < 0 || !k || strcmp(k, ".rtc_corr")) return;
    int step = t->step;
    pi0_state *st = p->st;
    size_t n = (size_t)p->H * p->A;
    /* the step's time: openpi's float32 grid */
    float tt = 1.0f, dt = -1.0f / (float)p->n_steps;
    for (int k = 0; k < step; k++) tt += dt;
    float *x0 = st->x_t, *v0 = st->v_t;
    for (size_t i = 0; i < n; i++) {
        double ahat = (double)x0[i] - (double)tt * v0[i];
        p->e[i] = p->w[i / p->A] * ((double)p->y[i] - ahat);
    }
    pi0_run_params quiet = pi0_run_params_default();
    const double hstep = 1e-2;
    for (size_t col = 0; col < n; col++) {
        double ap[2][256];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (size_t i = 0; i < n; i++) p->xp[i] = x0[i];
            p->xp[col] += (float)(sgn ? -hstep : hstep);
            st->x_t = p->xp;
            st->v_t = p->vp;
            pi0_denoise_velocity(st, &quiet, -1);
            for (size_t i = 0; i < n; i++) ap[sgn][i] = (double)p->xp[i] - (double)tt * p->vp[i];
        }
        for (size_t i = 0; i < n; i++) p->J[i * n + col] = (ap[0][i] - ap[1][i]) / (2 * hstep);
    }
    st->x_t = x0;
    st->v_t = v0;
    double je[256], jte[256], fd[256];
    for (size_t i = 0; i < n; i++) {
        je[i] = jte[i] = 0;
        fd[i] = t->data[i];
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < n; k++) {
            je[i] += p->J[i * n + k] * p->e[k];
            jte[i] += p->J[k * n + i] * p->e[k];
        }
    double c1 = cosine(fd, je, n), c2 = cosine(fd, jte, n);
    printf("     step %d (t %.2f): cos(FD J·e, J·e) %.6f, cos(FD J·e, Jᵀe) %.4f, cos(e, J·e) %.4f\n", step, tt, c1, c2,
           cosine(p->e, je, n));
    if (c1 < p->worst_je) p->worst_je = c1;
    if (c2 < p->worst_jte) p->worst_jte = c2;
    p->steps_seen++;
}

static void test_fd_product(const char *dir, const char *case_path, int backend, int pi05) {
    model m;
    if (!open_model(&m, dir, case_path, backend, pi05)) return;
    int H = m.H, A = m.A;
    size_t n = (size_t)H * A;
    if (n > 256) { CHECK(0, "tiny model expected"); close_model(&m); return; }
    float *y = malloc(n * 4), *act = malloc(n * 4);
    make_prev(y, H, A);
    pi0_rtc_params r = pi0_rtc_params_default();
    r.mode = PI0_RTC_GUIDED_FD;
    r.schedule = PI0_RTC_EXP;
    r.delay = 1;
    r.horizon = 1;
    r.prev_actions = y;
    r.n_prev = H - 1;
    float w[64];
    pi0_rtc_prefix_weights(r.schedule, r.delay, H - r.horizon, H, w);
    float *ypad = calloc(n, 4);
    memcpy(ypad, y, (size_t)(H - 1) * A * 4);
    fd_probe p = {m.st, H, A, m.c->n_steps, ypad, w, malloc(n * 4), malloc(n * 4), malloc(n * n * 8), malloc(n * 8),
                  2.0, 2.0, 0};
    pi0_run_params rp = pi0_run_params_default();
    rp.rtc = &r;
    rp.tap = fd_tap;
    rp.tap_user = &p;
    pi0_status s = pi0_infer(m.st, &m.obs, &rp, m.ci.noise, act, n);
    const char *bk = backend == PI0_BACKEND_REF ? "ref" : "fast";
    CHECK(s == PI0_OK && p.steps_seen == m.c->n_steps, "%s %s: GUIDED_FD runs, %d steps probed (%s)", dir, bk,
          p.steps_seen, s ? pi0_last_error() : "ok");
    /* J·e by one forward difference (probe fd_step 0.01) vs central differences (1e-2 per column):
     * they differ by the curvature over the probe. On the bf16 fast path the difference quotient is
     * dominated by bf16 rounding of activations (printed, not asserted; README). Jᵀe (the paper's
     * VJP) equals J·e only for a symmetric J, which a trained flow model has (J = I - t·dv/dx with a
     * near-symmetric dv/dx, Tweedie) and a random one does not: printed for information. */
    const char *kind = backend == PI0_BACKEND_REF ? "ref" : backend == PI0_BACKEND_FAST ? "fast bf16" : "fast f32";
    if (backend == PI0_BACKEND_FAST)
        printf("info %s %s: cos(FD J·e, exact J·e) worst over steps %.4f (bf16 rounding)\n", dir, kind, p.worst_je);
    else
        CHECK(p.worst_je >= 0.99, "%s %s: cos(FD J·e, exact J·e) worst over steps %.6f >= 0.99", dir, kind, p.worst_je);
    printf("info %s %s: cos(FD J·e, exact Jᵀe) worst over steps %.4f (random weights: J not symmetric)\n", dir, kind,
           p.worst_jte);
    free(p.xp); free(p.vp); free(p.J); free(p.e); free(y); free(act); free(ypad);
    close_model(&m);
}

static void expect_err(model *m, pi0_rtc_params r, pi0_status want, const char *needle, const char *what) {
    size_t n = (size_t)m->H * m->A;
    float *act = malloc(n * 4);
    pi0_run_params rp = pi0_run_params_default();
    rp.rtc = &r;
    pi0_status s = pi0_infer(m->st, &m->obs, &rp, m->ci.noise, act, n);
    CHECK(s == want && strstr(pi0_last_error(), needle), "%s: %s (\"%s\")", what, pi0_status_str(s), pi0_last_error());
    free(act);
}

static void test_misuse(const char *dir, const char *case_path) {
    model m;
    if (!open_model(&m, dir, case_path, PI0_BACKEND_FAST, 0)) return;
    int H = m.H, A = m.A; /* 5, 8 */
    float y[64 * 64];
    make_prev(y, H, A);
    pi0_rtc_params ok = pi0_rtc_params_default();
    ok.delay = 1;
    ok.horizon = 2;
    ok.prev_actions = y;
    ok.n_prev = H - 2;
    pi0_rtc_params r = ok;
    r.n_prev = H - 3;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.prev_actions has 2 rows, expected H - s = 5 - 2 = 3", "too few rows of Y");
    r.n_prev = H + 1;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.prev_actions has 6 rows", "more rows than H");
    r = ok;
    r.delay = 3;
    r.horizon = 2;
    expect_err(&m, r, PI0_ERR_ARG, "delay d = 3 > execution horizon s = 2", "d > s");
    r = ok;
    r.delay = 2;
    r.horizon = 4;
    r.n_prev = 1;
    expect_err(&m, r, PI0_ERR_ARG, "execution horizon s = 4 > H - d = 5 - 2 = 3", "s > H - d");
    r = ok;
    r.delay = -1;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.delay d = -1", "negative delay");
    r = ok;
    r.prev_actions = NULL;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.prev_actions is NULL", "no Y");
    r = ok;
    r.prev_dim = A + 1;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.prev_dim = 9", "Y wider than the model");
    r = ok;
    r.max_guidance = 0;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.max_guidance", "beta = 0");
    r = ok;
    r.schedule = 7;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.schedule = 7", "unknown schedule");
    r = ok;
    r.mode = 9;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.mode = 9", "unknown mode");
    r = ok;
    r.mode = PI0_RTC_TRAINED;
    expect_err(&m, r, PI0_ERR_UNSUPPORTED, "training-time RTC", "trained mode");
    r = ok;
    y[A + 3] = NAN;
    expect_err(&m, r, PI0_ERR_ARG, "rtc.prev_actions[1, 3] = nan is not finite", "NaN in Y");
    close_model(&m);
}

int main(void) {
    test_schedules();
    test_misuse("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors");
    test_bit_identical("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors", PI0_BACKEND_FAST, 0);
    test_bit_identical("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors", PI0_BACKEND_REF, 0);
    test_bit_identical("tests/data/pi05_tiny", "tests/data/pi05_tiny/case_00.safetensors", PI0_BACKEND_FAST, 1);
    test_fd_product("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors", PI0_BACKEND_REF, 0);
    test_fd_product("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors", PI0_BACKEND_FAST + 8, 0); /* f32 weights */
    test_fd_product("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors", PI0_BACKEND_FAST, 0);
    test_fd_product("tests/data/pi05_tiny", "tests/data/pi05_tiny/case_00.safetensors", PI0_BACKEND_REF, 1);
    return harness_summary();
}
