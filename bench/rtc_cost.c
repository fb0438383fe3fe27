/* rtc_cost.c - what each real-time chunking mode costs (BENCHMARKS.md "Real-time chunking (RTC)").
 *
 * One process loads the checkpoint once, then runs rounds of inferences: in each round every mode
 * once (no RTC, identity, fd, and training when the checkpoint is a π0.5 one whose config.json has
 * rtc_training_max_delay >= D), the order rotated by one each round, so slow minutes of a shared
 * machine hit every mode alike. Inputs as `pi0 bench`'s defaults: every camera slot given, the first
 * one valid, max_token_len prompt tokens, fixed noise; Y = rows S.. of a no-RTC chunk (model units).
 * Per mode: inference wall time and process CPU time (all threads), the same two for the denoising
 * loop alone (from step 0's first tap to the end), each as min and median over the rounds, the median
 * over rounds of the ratio to the no-RTC run of the same round, and the loop's work (GFLOP of its
 * matmul and attention ops: deterministic). With 1 thread the CPU times are what a busy machine
 * distorts least. The in-run peak (bf16 dot, pi0 bench's microkernel) is measured before and after.
 *
 *   build/rtc_cost MODEL_DIR [ROUNDS [THREADS [WEIGHTS [D S]]]]     (defaults 5, 2, bf16, 5 25)
 *
 * RTC_COST_LOCK=FILE: after the load, take an exclusive flock on FILE for the timed part only. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "debug.h"
#include "model/model.h"
#include "pi0.h"
#include "../tools/bench/peak.h"

enum { M_NONE, M_IDENTITY, M_FD, M_TRAINING, N_MODES };
static const char *const mode_names[N_MODES] = {"none", "identity", "fd", "training"};

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Tap callback: clocks at step 0's first tap (after the set-up every mode shares: suffix masks,
 * state token, RTC buffers), so the denoising loop is timed alone. */
typedef struct { double wall, cpu; int seen; } loop_clock;
static void loop_tap(const pi0_tensor_view *t, void *user) {
    loop_clock *lc = user;
    if (lc->seen || t->stage != PI0_STAGE_DENOISE || t->step != 0) return;
    lc->seen = 1;
    lc->wall = clock_s(CLOCK_MONOTONIC);
    lc->cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void min_med(const double *v, int n, double *mn, double *md) {
    double s[256];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    *mn = s[0];
    *md = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [ROUNDS [THREADS [bf16|int8|f32 [D S]]]]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 5, threads = argc > 3 ? atoi(argv[3]) : 2;
    const char *wname = argc > 4 ? argv[4] : "bf16";
    int d = argc > 6 ? atoi(argv[5]) : 5, s = argc > 6 ? atoi(argv[6]) : 25;
    if (rounds < 1 || rounds > 256) { fprintf(stderr, "ROUNDS 1..256\n"); return 2; }
    pi0_params p = pi0_params_default();
    p.n_threads = threads;
    p.weights = !strcmp(wname, "int8") ? PI0_WEIGHTS_INT8 : !strcmp(wname, "f32") ? PI0_WEIGHTS_F32 : PI0_WEIGHTS_BF16;
    pi0_ctx *ctx;
    pi0_state *st;
    if (pi0_load(argv[1], &p, &ctx) || pi0_state_new(ctx, &st)) { fprintf(stderr, "%s\n", pi0_last_error()); return 1; }
    const pi0_config *c = pi0_config_of(ctx);
    int H = c->action_horizon, A = c->action_dim, S = c->image_size, n_img = c->n_image_slots, L = c->max_token_len;
    size_t npix = (size_t)n_img * 3 * S * S, n = (size_t)H * A;
    float *img = malloc(npix * sizeof *img), *noise = malloc(n * sizeof *noise), *state = calloc((size_t)A, sizeof *state);
    float *y = malloc(n * sizeof *y), *act = malloc(n * sizeof *act);
    int32_t *imask = malloc((size_t)n_img * sizeof *imask), *tok = malloc((size_t)L * sizeof *tok);
    int32_t *tmask = malloc((size_t)L * sizeof *tmask);
    pi0_noise_fill(img, npix, 1); /* pi0 bench's inputs */
    for (size_t i = 0; i < npix; i++) img[i] = img[i] > 1 ? 1 : img[i] < -1 ? -1 : img[i];
    for (int i = 0; i < n_img; i++) imask[i] = i == 0;
    for (int i = 0; i < L; i++) { tok[i] = 2 + (i * 7919) % (c->vocab_size - 2); tmask[i] = 1; }
    pi0_noise_fill(noise, n, 7);
    pi0_obs obs = {.n_images = n_img, .images = img, .image_masks = imask, .n_tokens = L, .tokens = tok,
                   .token_masks = tmask, .state_dim = pi0_config_state_input(c) == PI0_STATE_TOKEN ? A : 0,
                   .state = state};
    pi0_run_params rp = pi0_run_params_default();
    if (pi0_infer(st, &obs, &rp, noise, y, n)) { fprintf(stderr, "%s\n", pi0_last_error()); return 1; } /* warm-up, Y */

    pi0_rtc_params r[N_MODES];
    int on[N_MODES] = {1, 1, 1, c->variant == PI0_VARIANT_PI05 && c->rtc_training_max_delay >= d};
    for (int m = 1; m < N_MODES; m++) {
        r[m] = pi0_rtc_params_default();
        r[m].mode = m == M_FD ? PI0_RTC_GUIDED_FD : m == M_TRAINING ? PI0_RTC_TRAINED : PI0_RTC_GUIDED;
        r[m].delay = d;
        r[m].horizon = s;
        r[m].prev_actions = y + (size_t)s * A;
        r[m].n_prev = H - s;
    }
    const char *lock = getenv("RTC_COST_LOCK");
    int lfd = -1;
    if (lock) {
        lfd = open(lock, O_RDWR | O_CREAT, 0666);
        if (lfd < 0 || flock(lfd, LOCK_EX)) { perror(lock); return 1; }
    }
    time_t t_start = time(NULL);
    pi0_peak pk0 = pi0_measure_peak(threads, 0.3);
    double wall[N_MODES][256], cpu[N_MODES][256], lwall[N_MODES][256], lcpu[N_MODES][256], gflop[N_MODES] = {0};
    loop_clock lc;
    rp.tap = loop_tap;
    rp.tap_user = &lc;
    pi0_exec *ex = pi0_state_exec(st);
    for (int k = 0; k < rounds; k++)
        for (int j = 0; j < N_MODES; j++) {
            int m = (j + k) % N_MODES;
            if (!on[m]) continue;
            rp.rtc = m == M_NONE ? NULL : &r[m];
            pi0_exec_reset_stats(ex);
            lc.seen = 0;
            double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            if (pi0_infer(st, &obs, &rp, noise, act, n)) { fprintf(stderr, "%s: %s\n", mode_names[m], pi0_last_error()); return 1; }
            double w1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            wall[m][k] = w1 - w0;
            cpu[m][k] = c1 - c0;
            lwall[m][k] = w1 - lc.wall;
            lcpu[m][k] = c1 - lc.cpu;
            gflop[m] = 0;
            for (int i = 0; i < ex->n_sites; i++)
                if (ex->sites[i].stage == PI0_STAGE_DENOISE) gflop[m] += ex->sites[i].flops * 1e-9;
        }
    pi0_peak pk1 = pi0_measure_peak(threads, 0.3);
    time_t t_end = time(NULL);
    if (lfd >= 0) close(lfd);
    char t0s[32], t1s[32];
    strftime(t0s, sizeof t0s, "%H:%M:%S", gmtime(&t_start));
    strftime(t1s, sizeof t1s, "%H:%M:%S", gmtime(&t_end));
    double la[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) { if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1; fclose(f); }
    printf("rtc_cost: %s, weights %s, %d threads, %d rounds, H %d, d %d, s %d, %s-%s UTC%s, bf16 peak %.0f / %.0f "
           "GFLOP/s (before / after), load avg at end %.2f\n",
           argv[1], wname, threads, rounds, H, d, s, t0s, t1s, lock ? " (exclusive lock)" : "", pk0.bf16_gflops,
           pk1.bf16_gflops, la[0]);
    printf("%-9s %17s %17s %17s %17s %7s %7s %7s %7s %7s\n", "mode", "wall min/med s", "cpu min/med s",
           "loop wall min/med", "loop cpu min/med", "x wall", "x cpu", "x lwall", "x lcpu", "GFLOP");
    for (int m = 0; m < N_MODES; m++) {
        if (!on[m]) { printf("%-9s (not run: needs a π0.5 checkpoint with rtc_training_max_delay >= %d)\n", mode_names[m], d); continue; }
        const double *series[4] = {wall[m], cpu[m], lwall[m], lcpu[m]};
        const double *base[4] = {wall[M_NONE], cpu[M_NONE], lwall[M_NONE], lcpu[M_NONE]};
        double v[4][2], q[4], ratio[256], unused;
        for (int j = 0; j < 4; j++) {
            min_med(series[j], rounds, &v[j][0], &v[j][1]);
            for (int k = 0; k < rounds; k++) ratio[k] = series[j][k] / base[j][k];
            min_med(ratio, rounds, &unused, &q[j]);
        }
        printf("%-9s %8.3f/%8.3f %8.3f/%8.3f %8.3f/%8.3f %8.3f/%8.3f %7.3f %7.3f %7.3f %7.3f %7.1f\n", mode_names[m], v[0][0],
               v[0][1], v[1][0], v[1][1], v[2][0], v[2][1], v[3][0], v[3][1], q[0], q[1], q[2], q[3], gflop[m]);
    }
    pi0_state_free(st);
    pi0_free(ctx);
    free(img); free(noise); free(state); free(y); free(act); free(imask); free(tok); free(tmask);
    return 0;
}
