/* int8_vision_acc.c - what --int8-vision costs in accuracy at full size, without the reference path
 * (which needs ~40 CPU-minutes at full size): the fast path with bf16 weights is the comparison.
 *
 * Loads the checkpoint three times, one after another (a full-size bf16 context is 6.5 GB): bf16,
 * --weights int8 (vision bf16), --weights int8 --int8-vision; runs the case on each with the same
 * noise (the case's, else pi0_noise_fill seed 0) and compares with the bf16 run: the vision output
 * of each encoded image (vision.imgN.out, SigLIP after its final LayerNorm) and its projection, the
 * prefix embeddings, every VLM layer's K/V (worst and last layer), the actions (PCC, MSE, NMSE =
 * MSE / mean square of the bf16 actions, the int8 contract's measure).
 *
 * During the bf16 run a dispatcher hook (pi0_exec.observe) reads every matmul's input rows, i.e.
 * what the int8 kernels quantize per token: per site (all layers together) the largest and the
 * median of max|x| / rms(x) per row, and the channels per row above 6 x rms (the int8 kind's outlier
 * threshold, src/ops/fast/quant_int8.c: those are added exactly in float).
 *
 * Run: bench/build.sh, then build/int8_vision_acc DIR CASE [THREADS]
 *      (DIR/sample_inputs.safetensors for the random checkpoints of pi0 gen-random). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case_io.h" /* case_inputs, case_obs, free_case */
#include "debug.h"
#include "ops/dispatch.h"
#include "pi0.h"

#define MAX_SITES 64
#define RATIO_BINS 400 /* max/rms histogram, 0.1 wide bins: the median without keeping every row */

typedef struct {
    char site[64];
    int64_t rows, out_rows, out_channels, max_out, k;
    double max_ratio;
    int64_t hist[RATIO_BINS];
} site_acc;

typedef struct {
    site_acc s[MAX_SITES];
    int n;
} act_stats;

static void observe(const char *site, pi0_op op, const void *args, void *user) {
    if (op != PI0_OP_MATMUL) return;
    const pi0_matmul_args *a = args;
    act_stats *S = user;
    site_acc *acc = NULL;
    for (int i = 0; i < S->n && !acc; i++)
        if (!strcmp(S->s[i].site, site)) acc = &S->s[i];
    if (!acc) {
        if (S->n == MAX_SITES) return;
        acc = &S->s[S->n++];
        memset(acc, 0, sizeof *acc);
        snprintf(acc->site, sizeof acc->site, "%s", site);
    }
    int64_t k = a->w->cols;
    acc->k = k;
    for (int64_t r = 0; r < a->m; r++) {
        const float *x = a->x + r * a->ldx;
        double ss = 0, mx = 0;
        for (int64_t i = 0; i < k; i++) {
            double v = fabs((double)x[i]);
            ss += v * v;
            if (v > mx) mx = v;
        }
        double rms = sqrt(ss / (double)k);
        if (rms == 0) continue;
        int64_t n_out = 0;
        for (int64_t i = 0; i < k; i++) n_out += fabs((double)x[i]) > 6.0 * rms;
        double ratio = mx / rms;
        int bin = (int)(ratio * 10);
        acc->hist[bin < RATIO_BINS ? bin : RATIO_BINS - 1]++;
        if (ratio > acc->max_ratio) acc->max_ratio = ratio;
        acc->rows++;
        acc->out_rows += n_out > 0;
        acc->out_channels += n_out;
        if (n_out > acc->max_out) acc->max_out = n_out;
    }
}

static double median_ratio(const site_acc *a) {
    int64_t seen = 0;
    for (int b = 0; b < RATIO_BINS; b++)
        if ((seen += a->hist[b]) * 2 >= a->rows) return (b + 0.5) / 10.0;
    return NAN;
}

/* The model inputs of a case file (tests/case_io.h's fields; noise is optional here: the sample
 * inputs of pi0 gen-random have none). Returns 1 on success. */
static int read_inputs(const char *path, case_inputs *c, int pi05) {
    memset(c, 0, sizeof *c);
    pi0_st_file *f;
    if (pi0_st_open(path, &f) != PI0_OK) return 0;
    pi0_st_read_f32(f, "images", &c->images, NULL);
    pi0_st_read_i32(f, "image_masks", &c->imask, &c->n_img);
    pi0_st_read_i32(f, "tokens", &c->tokens, &c->n_tok);
    pi0_st_read_i32(f, "token_masks", &c->tmask, NULL);
    if (pi0_st_find(f, "noise")) pi0_st_read_f32(f, "noise", &c->noise, &c->n_act);
    if (!pi05) pi0_st_read_f32(f, "state", &c->state, &c->n_state);
    if (pi0_st_find(f, "num_steps")) pi0_st_read_i32(f, "num_steps", &c->nsteps, NULL);
    pi0_st_close(f);
    return c->images && c->imask && c->tokens && c->tmask;
}

/* One load and one inference; taps into *taps, actions into act. */
static int run(const char *dir, int kind, int int8_vision, int n_threads, const case_inputs *c, const float *noise,
               pi0_tap_store *taps, float *act, size_t n_act, act_stats *stats) {
    pi0_params p = pi0_params_default();
    p.strict = 1;
    p.weights = kind;
    p.int8_vision = int8_vision;
    p.n_threads = n_threads;
    pi0_ctx *ctx;
    pi0_state *st;
    if (pi0_load(dir, &p, &ctx) != PI0_OK) { fprintf(stderr, "load: %s\n", pi0_last_error()); return 0; }
    if (pi0_state_new(ctx, &st) != PI0_OK) { fprintf(stderr, "state: %s\n", pi0_last_error()); pi0_free(ctx); return 0; }
    if (stats) {
        pi0_exec *ex = pi0_state_exec(st);
        ex->observe = observe;
        ex->observe_user = stats;
    }
    pi0_obs obs = case_obs(c);
    pi0_run_params rp = pi0_run_params_default();
    rp.n_steps = c->nsteps ? c->nsteps[0] : 0;
    rp.tap = pi0_tap_store_cb;
    rp.tap_user = taps;
    pi0_status s = pi0_infer(st, &obs, &rp, noise, act, n_act);
    if (s != PI0_OK) fprintf(stderr, "infer: %s\n", pi0_last_error());
    pi0_state_free(st);
    pi0_free(ctx);
    return s == PI0_OK;
}

static void line(const char *label, const pi0_tap_copy *a, const pi0_tap_copy *b) {
    pi0_compare m;
    if (!a || !b || pi0_compare_taps(a, b, NULL, 0, &m) != 0) { printf("  %-24s missing\n", label); return; }
    printf("  %-24s n=%-9lld PCC %.6f  max rel err %.3g\n", label, (long long)m.n, m.pcc, m.rel);
}

static void compare_runs(const char *what, const pi0_tap_store *t, const pi0_tap_store *tb, const float *a, const float *ab,
                         int64_t n_act, const case_inputs *c, int vlm_depth) {
    printf("%s vs bf16 (same noise):\n", what);
    char name[64];
    for (int i = 0; i < c->n_img; i++) {
        if (!c->imask[i]) continue;
        snprintf(name, sizeof name, "vision.img%d.out", i);
        line(name, pi0_tap_find(t, name), pi0_tap_find(tb, name));
        snprintf(name, sizeof name, "vision.img%d.proj", i);
        line(name, pi0_tap_find(t, name), pi0_tap_find(tb, name));
    }
    line("prefix.embs", pi0_tap_find(t, "prefix.embs"), pi0_tap_find(tb, "prefix.embs"));
    double worst = 1;
    const char *wname = "";
    static char wbuf[64];
    for (int l = 0; l < vlm_depth; l++)
        for (int kv = 0; kv < 2; kv++) {
            snprintf(name, sizeof name, "prefix.%s.L%02d", kv ? "v" : "k", l);
            pi0_compare m;
            const pi0_tap_copy *x = pi0_tap_find(t, name), *y = pi0_tap_find(tb, name);
            if (x && y && pi0_compare_taps(x, y, NULL, 0, &m) == 0 && m.pcc < worst) {
                worst = m.pcc;
                snprintf(wbuf, sizeof wbuf, "%s", name);
                wname = wbuf;
            }
        }
    printf("  %-24s PCC %.6f (%s)\n", "K/V worst layer", worst, wname);
    snprintf(name, sizeof name, "prefix.k.L%02d", vlm_depth - 1);
    line(name, pi0_tap_find(t, name), pi0_tap_find(tb, name));
    pi0_compare m = pi0_compare_arrays(a, ab, n_act);
    double e = 0, ms = 0;
    for (int64_t i = 0; i < n_act; i++) {
        e += ((double)a[i] - ab[i]) * ((double)a[i] - ab[i]);
        ms += (double)ab[i] * ab[i];
    }
    printf("  actions                  PCC %.6f  MSE %.3g  NMSE %.3g  (mean square of bf16 %.3g; contract PCC >= 0.995, "
           "NMSE <= 1e-3)\n", m.pcc, e / (double)n_act, ms > 0 ? e / ms : 0, ms / (double)n_act);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR CASE [THREADS]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *path = argv[2];
    int n_threads = argc > 3 ? atoi(argv[3]) : 0;
    int pi05 = 0;
    pi0_params pp = pi0_params_default();
    pp.backend = PI0_BACKEND_REF; /* config and binding only */
    pi0_ctx *cc;
    if (pi0_load(dir, &pp, &cc) != PI0_OK) { fprintf(stderr, "%s\n", pi0_last_error()); return 1; }
    pi0_config cfg = *pi0_config_of(cc);
    pi0_free(cc);
    pi05 = cfg.variant == PI0_VARIANT_PI05;
    case_inputs c;
    if (!read_inputs(path, &c, pi05)) { fprintf(stderr, "%s: cannot read the case\n", path); return 1; }
    size_t n_act = (size_t)cfg.action_horizon * cfg.action_dim;
    float *noise = malloc(n_act * sizeof *noise), *ab = malloc(n_act * sizeof *ab), *a8 = malloc(n_act * sizeof *a8),
          *av = malloc(n_act * sizeof *av);
    if (c.noise && (size_t)c.n_act == n_act) memcpy(noise, c.noise, n_act * sizeof *noise);
    else pi0_noise_fill(noise, n_act, 0);
    pi0_tap_store tb = {0}, t8 = {0}, tv = {0};
    act_stats *S = calloc(1, sizeof *S);
    int ok = run(dir, PI0_WEIGHTS_BF16, 0, n_threads, &c, noise, &tb, ab, n_act, S) &&
             run(dir, PI0_WEIGHTS_INT8, 0, n_threads, &c, noise, &t8, a8, n_act, NULL) &&
             run(dir, PI0_WEIGHTS_INT8, 1, n_threads, &c, noise, &tv, av, n_act, NULL);
    if (ok) {
        printf("%s, %s: %lld images (%d valid), %lld tokens\n", dir, path, (long long)c.n_img,
               (int)(c.imask[0] != 0) + (c.n_img > 1 && c.imask[1]) + (c.n_img > 2 && c.imask[2]), (long long)c.n_tok);
        compare_runs("--weights int8 (vision bf16)", &t8, &tb, a8, ab, (int64_t)n_act, &c, cfg.vlm_depth);
        compare_runs("--weights int8 --int8-vision", &tv, &tb, av, ab, (int64_t)n_act, &c, cfg.vlm_depth);
        printf("\nmatmul inputs of the bf16 run, per site (all layers and calls): max|x| / rms(x) of each row\n");
        printf("  %-28s %6s %9s %10s %10s %14s %12s\n", "site", "k", "rows", "max ratio", "median", "rows w/ >6x", "ch/row max");
        for (int i = 0; i < S->n; i++) {
            const site_acc *a = &S->s[i];
            printf("  %-28s %6lld %9lld %10.1f %10.2f %7lld (%4.1f%%) %12lld\n", a->site, (long long)a->k, (long long)a->rows,
                   a->max_ratio, median_ratio(a), (long long)a->out_rows, a->rows ? 100.0 * (double)a->out_rows / (double)a->rows : 0,
                   (long long)a->max_out);
        }
    }
    pi0_tap_store_free(&tb);
    pi0_tap_store_free(&t8);
    pi0_tap_store_free(&tv);
    free(S);
    free(noise); free(ab); free(a8); free(av);
    free_case(&c);
    return ok ? 0 : 1;
}
