/* test_rtc_loop.c - closed-loop simulation of real-time chunking (kinetix eval_flow.py's scheme).
 *
 * A scripted robot executes action chunks with an inference delay of d control steps: when it has
 * executed s rows of the current chunk it takes an observation (its state = the last executed
 * action) and starts the next inference; during the d steps that inference takes it keeps executing
 * the old chunk (rows s..s+d-1), then switches to the new chunk's rows d..s-1 (aligned so that new
 * row 0 is the action due when the observation was taken). Each chunk starts from fresh noise.
 * Measured at every switch, in model units, L2 over the action dims:
 *   jump  |new[d] - old[s+d-1]|  (the first new action vs the last old one executed)
 *   gap   |new[d] - old[s+d]|    (the first new action vs the one the old plan had for that instant:
 *         the switch's own discontinuity; jump <= gap + plan step)
 *   plan step |old[s+d] - old[s+d-1]|  (the old plan's own step at the switch, what a perfect
 *         continuation would still jump)
 *   accel |x[t+1] - 2x[t] + x[t-1]| averaged over the two triples spanning the switch
 *   plan deviation: mean |new[i] - old[s+i]| over the rows the old chunk still covers
 * with no RTC, RTC identity (default) and RTC finite difference. The test (tiny π0 and π0.5) checks
 * that the gap and the plan deviation fall with RTC; with arguments it is the benchmark of
 * BENCHMARKS.md (times each mode's inference; CORR > 0: noise correlated along the rows):
 *   test_rtc_loop MODEL_DIR INPUTS.safetensors D S CYCLES [schedule [CORR]] */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "case_io.h"
#include "harness.h"
#include "pi0.h"

typedef struct {
    double jump, accel, ms, step; /* mean jump, mean boundary accel, mean inference ms, mean in-chunk step */
    double gap;                   /* mean |new[d] - old[s+d]|: the switch's discontinuity vs the old plan */
    double pstep;                 /* mean |old[s+d] - old[s+d-1]|: the old plan's own step there */
    double dev;                   /* mean |new[i] - old[s+i]| over the rows the old chunk still plans (i < H - s) */
    double ms_min;                /* fastest inference */
    int n;
} loop_stats;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double dist(const float *a, const float *b, int A) {
    double s = 0;
    for (int j = 0; j < A; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return sqrt(s);
}

static double accel(const float *a, const float *b, const float *c, int A) {
    double s = 0;
    for (int j = 0; j < A; j++) {
        double v = (double)c[j] - 2.0 * b[j] + a[j];
        s += v * v;
    }
    return sqrt(s);
}

/* The chunk's starting noise from `seed`: white (corr = 0: the engine's own draw, pi0_noise_fill), or
 * correlated along the horizon (corr = ℓ rows): per action dim an AR(1) sequence over the rows,
 * x[h] = ρ·x[h-1] + sqrt(1 - ρ²)·ε[h] with ρ = exp(-1/ℓ), so every entry is still N(0, 1) but
 * neighbouring rows are close. With white noise a random-weight chunk is as rough as its noise. */
static void chunk_noise(float *x, int H, int A, uint64_t seed, double corr) {
    pi0_noise_fill(x, (size_t)H * A, seed);
    if (corr <= 0) return;
    double rho = exp(-1.0 / corr), q = sqrt(1.0 - rho * rho);
    for (int h = 1; h < H; h++)
        for (int j = 0; j < A; j++) x[(size_t)h * A + j] = (float)(rho * x[(size_t)(h - 1) * A + j] + q * x[(size_t)h * A + j]);
}

/* mode < 0: no RTC. Returns 0 on success. */
static int simulate(pi0_state *st, const pi0_config *c, pi0_obs obs, int mode, int schedule, int d, int s, int cycles,
                    double corr, loop_stats *out) {
    int H = c->action_horizon, A = c->action_dim;
    size_t n = (size_t)H * A;
    float *cur = malloc(n * 4), *next = malloc(n * 4), *state = calloc((size_t)A, 4), *noise = malloc(n * 4);
    memset(out, 0, sizeof *out);
    pi0_run_params rp = pi0_run_params_default();
    obs.state = obs.state_dim ? state : NULL;
    chunk_noise(noise, H, A, 1000, corr);
    pi0_status stt = pi0_infer(st, &obs, &rp, noise, cur, n);
    double steps = 0;
    int n_steps = 0;
    for (int k = 0; k < cycles && stt == PI0_OK; k++) {
        /* the robot has executed rows 0..s-1 of cur; its state is the last one */
        if (obs.state_dim)
            for (int j = 0; j < A && j < obs.state_dim; j++) state[j] = cur[(size_t)(s - 1) * A + j];
        pi0_rtc_params r = pi0_rtc_params_default();
        r.mode = mode;
        r.schedule = schedule;
        r.delay = d;
        r.horizon = s;
        r.prev_actions = cur + (size_t)s * A;
        r.n_prev = H - s;
        rp.rtc = mode >= 0 ? &r : NULL;
        chunk_noise(noise, H, A, 1001 + (uint64_t)k, corr);
        double t0 = now_ms();
        stt = pi0_infer(st, &obs, &rp, noise, next, n);
        double dt_ms = now_ms() - t0;
        out->ms += dt_ms;
        if (out->ms_min == 0 || dt_ms < out->ms_min) out->ms_min = dt_ms;
        if (stt != PI0_OK) break;
        /* executed around the switch: old rows s+d-2, s+d-1, then new rows d, d+1 (in the new
         * chunk's frame, new row i is due at old row s+i) */
        const float *o1 = cur + (size_t)(s + d - 1) * A, *o0 = s + d - 2 >= 0 ? cur + (size_t)(s + d - 2) * A : o1;
        const float *n0 = next + (size_t)d * A, *n1 = next + (size_t)(d + 1 < H ? d + 1 : d) * A;
        out->jump += dist(n0, o1, A);
        if (s + d < H) {
            out->gap += dist(n0, cur + (size_t)(s + d) * A, A);
            out->pstep += dist(cur + (size_t)(s + d) * A, o1, A);
        }
        out->accel += 0.5 * (accel(o0, o1, n0, A) + accel(o1, n0, n1, A));
        for (int i = d; i + 1 < s + d && i + 1 < H; i++, n_steps++) steps += dist(next + (size_t)(i + 1) * A, next + (size_t)i * A, A);
        for (int i = 0; i < H - s; i++) out->dev += dist(next + (size_t)i * A, cur + (size_t)(s + i) * A, A) / (H - s);
        out->n++;
        /* shift: the new chunk becomes current; its rows 0..s-1 are "executed" in this frame */
        float *t = cur;
        cur = next;
        next = t;
    }
    if (out->n) {
        out->jump /= out->n;
        out->gap /= out->n;
        out->pstep /= out->n;
        out->accel /= out->n;
        out->ms /= out->n;
        out->dev /= out->n;
    }
    out->step = n_steps ? steps / n_steps : 0;
    free(cur); free(next); free(state); free(noise);
    if (stt != PI0_OK) printf("     error: %s\n", pi0_last_error());
    return stt == PI0_OK ? 0 : -1;
}

static const char *mode_name(int m) { return m < 0 ? "no RTC" : m == PI0_RTC_GUIDED ? "RTC identity" : "RTC fd"; }

static void run_model(const char *dir, const char *case_path, int pi05, int d, int s, int cycles, int schedule,
                      double corr, int bench) {
    pi0_params p = pi0_params_default();
    if (!bench) p.n_threads = 2;
    pi0_ctx *ctx;
    pi0_state *st;
    if (pi0_load(dir, &p, &ctx) || pi0_state_new(ctx, &st)) { CHECK(0, "load %s: %s", dir, pi0_last_error()); return; }
    const pi0_config *c = pi0_config_of(ctx);
    case_inputs ci;
    read_case(case_path, &ci, pi05 || c->variant == PI0_VARIANT_PI05); /* noise is not needed: each chunk draws its own */
    if (!ci.images || !ci.imask || !ci.tokens || !ci.tmask) {
        CHECK(0, "read %s", case_path);
        free_case(&ci);
        pi0_state_free(st);
        pi0_free(ctx);
        return;
    }
    pi0_obs obs = case_obs(&ci);
    loop_stats res[3];
    int modes[3] = {-1, PI0_RTC_GUIDED, PI0_RTC_GUIDED_FD};
    printf("%s: H %d, d %d, s %d, %d chunk switches, schedule %d, fresh noise per chunk (%s)\n", dir, c->action_horizon,
           d, s, cycles, schedule, corr > 0 ? "AR(1) along the rows" : "white");
    if (corr > 0) printf("     noise correlation length %.2f rows\n", corr);
    printf("     %-13s %10s %10s %10s %10s %14s %10s %10s %10s\n", "mode", "jump", "gap", "plan step", "accel",
           "in-chunk step", "plan dev", "infer ms", "min ms");
    for (int m = 0; m < 3; m++) {
        if (simulate(st, c, obs, modes[m], schedule, d, s, cycles, corr, &res[m])) { CHECK(0, "%s: %s runs", dir, mode_name(modes[m])); continue; }
        printf("     %-13s %10.4f %10.4f %10.4f %10.4f %14.4f %10.4f %10.1f %10.1f\n", mode_name(modes[m]), res[m].jump,
               res[m].gap, res[m].pstep, res[m].accel, res[m].step, res[m].dev, res[m].ms, res[m].ms_min);
    }
    /* Asserted: the first new action and the new chunk keep to the plan the robot is committed to
     * (what RTC guarantees for any weights). Jump and acceleration are printed only: jump <= gap + the
     * old plan's own step there, and on random weights that step is as large as the no-RTC gap (a
     * chunk's rows past the guided prefix, W = 0, get no correction and nothing in untrained weights
     * makes them continue the prefix); BENCHMARKS.md. */
    if (!bench) {
        CHECK(res[1].gap < 0.25 * res[0].gap, "%s RTC identity: discontinuity at the switch vs the old plan %.4f < 1/4 of "
              "no RTC's %.4f", dir, res[1].gap, res[0].gap);
        CHECK(res[2].gap < 0.5 * res[0].gap, "%s RTC fd: discontinuity at the switch vs the old plan %.4f < 1/2 of no RTC's "
              "%.4f", dir, res[2].gap, res[0].gap);
        CHECK(res[1].dev < 0.25 * res[0].dev, "%s RTC identity: deviation from the previous plan %.4f < 1/4 of no RTC's %.4f",
              dir, res[1].dev, res[0].dev);
        CHECK(res[2].dev < 0.5 * res[0].dev, "%s RTC fd: deviation from the previous plan %.4f < 1/2 of no RTC's %.4f", dir,
              res[2].dev, res[0].dev);
        CHECK(isfinite(res[2].jump) && res[2].jump < 2 * res[0].jump, "%s RTC fd: stays bounded (jump %.4f < 2x no RTC's)",
              dir, res[2].jump);
    }
    free_case(&ci);
    pi0_state_free(st);
    pi0_free(ctx);
}

int main(int argc, char **argv) {
    if (argc >= 6) {
        int sched = argc > 6 ? atoi(argv[6]) : PI0_RTC_LINEAR;
        double corr = argc > 7 ? atof(argv[7]) : 0.0;
        run_model(argv[1], argv[2], 0, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), sched, corr, 1);
        return 0;
    }
    run_model("tests/data/pi0_tiny", "tests/data/pi0_tiny/case_01.safetensors", 0, 1, 2, 40, PI0_RTC_LINEAR, 0, 0);
    run_model("tests/data/pi05_tiny", "tests/data/pi05_tiny/case_00.safetensors", 1, 1, 2, 40, PI0_RTC_LINEAR, 0, 0);
    return harness_summary();
}
