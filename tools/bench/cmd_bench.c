/* cmd_bench.c - `pi0 bench`: per-stage timings (load, vision, prefix, each denoising step, total),
 * min and median over runs, achieved GFLOP/s per stage against this machine's peak (measured here
 * by a microkernel, tools/bench/peak.c), and peak resident memory. Speed is measured here, never in
 * a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "peak.h"
#include "../cli.h"
#include "tools_api.h"
#include "../tools_common.h"

typedef struct {
    double t0, vision_end, prefix_end, *step_end; /* step_end[n_steps] */
    int n_steps;
} stage_clock;

/* Stage boundaries from the taps' stage and step: vision ends at the first prefix tap (the prefix
 * embeddings), the prefix at its last tap (the last layer's K/V), each step at its last tap (its x). */
static void clock_tap(const pi0_tensor_view *t, void *user) {
    stage_clock *c = user;
    double now = tool_now();
    if (t->stage == PI0_STAGE_PREFIX) {
        if (c->vision_end == 0) c->vision_end = now;
        c->prefix_end = now;
    } else if (t->stage == PI0_STAGE_DENOISE && t->step >= 0 && t->step < c->n_steps) {
        c->step_end[t->step] = now;
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void min_med(double *v, int n, double *mn, double *md) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    *mn = v[0];
    *md = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *random = NULL;
    int images = 0, valid = 1, tokens = 0, steps = 0, runs = 3, json = 0;
    tool_load_opts lo = tool_load_defaults();
    opt_load_block lb;
    const opt_spec opts[] = {
        {.name = "--model", .type = OPT_STR, .dest = &model, .meta = "DIR", .help = "checkpoint directory"},
        {.name = "--random", .type = OPT_STR, .dest = &random, .meta = "P",
         .help = "tiny | full | tiny-pi05 | full-pi05: generate (once, cached in /tmp/pi0-random-P) a random\n"
                 "checkpoint of preset P and time it"},
        {.name = "--images", .type = OPT_INT, .dest = &images, .meta = "N", .lo = 1, .hi = 8, .def = "the config's, 3",
         .help = "camera slots given"},
        {.name = "--valid-images", .type = OPT_INT, .dest = &valid, .meta = "K", .lo = 0, .hi = 8,
         .help = "slots with a camera present (the others are empty and skipped)"},
        {.name = "--tokens", .type = OPT_INT, .dest = &tokens, .meta = "L", .lo = 1, .hi = 65536,
         .def = "max_token_len, 48 for π0", .help = "valid prompt tokens"},
        {.name = "--steps", .type = OPT_INT, .dest = &steps, .meta = "N", .help = "denoising steps", .lo = 1,
         .hi = OPT_STEPS_MAX, .def = "the config's (10)"},
        {.name = "--runs", .type = OPT_INT, .dest = &runs, .meta = "R", .lo = 1, .hi = 1000, .help = "timed runs"},
        {.name = "--json", .type = OPT_FLAG, .dest = &json, .help = "one JSON object; each timing is {\"min\": s, \"median\": s}"},
        {0},
    };
    const opt_group groups[] = {{NULL, opts}, {"Loading", opt_load_options(&lb, &lo, 0)}};
    const opt_cmd cmd = {
        .name = "bench",
        .usage = "pi0 bench (--model DIR | --random tiny|full|tiny-pi05|full-pi05) [--images N] [--valid-images K]\n"
                 "          [--tokens L] [--steps N] [--runs R] [--threads N] [--backend fast|ref]\n"
                 "          [--weights bf16|f32|int8 [--int8-vision]] [--json]",
        .about = "Time load, vision, prefix, each denoising step and the total (min and median over R runs after a warm-up),\n"
                 "with achieved GFLOP/s per stage as a fraction of this machine's peak (measured first: fp32 FMA, bf16 dot and\n"
                 "int8 dot (vpdpbusd: AVX-512 VNNI, else AVX-VNNI, else none)), and peak RSS. The fraction is of the peak of\n"
                 "what ran: bf16 for --weights bf16, int8 for --weights int8 (its vision tower stays bf16: the bf16 peak)."};
    int r = opt_parse(&cmd, groups, 2, argc, argv, NULL);
    if (!r) r = opt_load_check(&cmd, &lo);
    if (r) return r == OPT_HELP ? 0 : 2;
    if (!!model == !!random) return opt_usage_error(&cmd, "give exactly one of --model or --random");
    char dir[512];
    if (random) {
        snprintf(dir, sizeof dir, "/tmp/pi0-random-%s", random);
        char cfgp[600];
        struct stat sb;
        snprintf(cfgp, sizeof cfgp, "%s/sample_inputs.safetensors", dir);
        if (stat(cfgp, &sb) != 0) {
            char *gen[] = {"gen-random", "--preset", (char *)random, "--out", dir, NULL};
            fprintf(stderr, "generating %s (once)...\n", dir);
            if (cmd_gen_random(5, gen) != 0) return 1;
        }
        model = dir;
    }
    double t0 = tool_now();
    pi0_ctx *ctx;
    if (tool_load(model, &lo, &ctx) != PI0_OK) return cli_error("%s", pi0_last_error());
    double load_s = tool_now() - t0;
    int n_threads = lo.params.n_threads > 0 ? lo.params.n_threads : pi0_cpu_count();
    pi0_peak peak = pi0_measure_peak(n_threads, 0.3); /* after the load: a bad checkpoint fails at once */
    const pi0_config *c = pi0_config_of(ctx);
    if (!images) images = c->n_image_slots;
    if (images > c->n_image_slots) {
        int slots = c->n_image_slots; /* c points into ctx: read it before pi0_free */
        pi0_free(ctx);
        return cli_error("--images %d > %d slots", images, slots);
    }
    if (valid > images) valid = images;
    int L = c->max_token_len;
    if (!tokens) tokens = L;
    if (tokens > L) { pi0_free(ctx); return cli_error("--tokens %d > max_token_len %d", tokens, L); }
    int n_steps = steps ? steps : c->n_steps, S = c->image_size, H = c->action_horizon, A = c->action_dim;
    size_t npix = (size_t)images * 3 * S * S;
    float *img = malloc(npix * sizeof *img), *state = calloc((size_t)A, sizeof *state), *act = malloc((size_t)H * A * sizeof *act);
    int32_t *imask = malloc((size_t)images * sizeof *imask), *tok = malloc((size_t)L * sizeof *tok), *tmask = malloc((size_t)L * sizeof *tmask);
    pi0_noise_fill(img, npix, 1); /* any pixel values do; clamp to [-1, 1] */
    for (size_t i = 0; i < npix; i++) img[i] = img[i] > 1 ? 1 : img[i] < -1 ? -1 : img[i];
    for (int i = 0; i < images; i++) imask[i] = i < valid;
    for (int i = 0; i < L; i++) { tok[i] = i < tokens ? 2 + (i * 7919) % (c->vocab_size - 2) : 0; tmask[i] = i < tokens; }
    pi0_obs obs = {.n_images = images, .images = img, .image_masks = imask, .n_tokens = L, .tokens = tok, .token_masks = tmask,
                   .state_dim = pi0_config_state_input(c) == PI0_STATE_TOKEN ? A : 0, .state = state};
    pi0_state *st;
    if (pi0_state_new(ctx, &st) != PI0_OK) { pi0_free(ctx); return cli_error("%s", pi0_last_error()); }
    stage_clock clk;
    pi0_run_params rp = pi0_run_params_default();
    rp.n_steps = n_steps;
    rp.tap = clock_tap;
    rp.tap_user = &clk;
    /* per run: vision, prefix, denoise, total; per step and run: ts[k * runs + r] */
    double *tv = malloc((size_t)runs * 4 * sizeof *tv), *tp = tv + runs, *td = tp + runs, *tt = td + runs;
    double *ts = malloc((size_t)n_steps * runs * sizeof *ts), *step_end = malloc((size_t)n_steps * sizeof *step_end);
    double *smin = malloc((size_t)n_steps * 2 * sizeof *smin), *smed = smin + n_steps;
    double fl_vision = 0, fl_prefix = 0, fl_denoise = 0;
    int rc = (!tv || !ts || !step_end || !smin) ? cli_error("out of memory") : 0;
    for (int r = -1; r < runs && rc == 0; r++) { /* r = -1: warm-up */
        memset(&clk, 0, sizeof clk);
        memset(step_end, 0, (size_t)n_steps * sizeof *step_end);
        clk.step_end = step_end;
        clk.n_steps = n_steps;
        pi0_exec_reset_stats(pi0_state_exec(st));
        clk.t0 = tool_now();
        if (pi0_infer(st, &obs, &rp, NULL, act, (size_t)H * A) != PI0_OK) { rc = cli_error("%s", pi0_last_error()); break; }
        double end = tool_now();
        if (r < 0) continue;
        tv[r] = clk.vision_end - clk.t0;
        tp[r] = clk.prefix_end - clk.vision_end;
        td[r] = clk.step_end[n_steps - 1] - clk.prefix_end;
        tt[r] = end - clk.t0;
        for (int k = 0; k < n_steps; k++) ts[(size_t)k * runs + r] = clk.step_end[k] - (k ? clk.step_end[k - 1] : clk.prefix_end);
        const pi0_exec *ex = pi0_state_exec(st);
        double fl[PI0_STAGE_COUNT] = {0};
        for (int i = 0; i < ex->n_sites; i++) fl[ex->sites[i].stage] += ex->sites[i].flops;
        fl_vision = fl[PI0_STAGE_VISION];
        fl_prefix = fl[PI0_STAGE_PREFIX];
        fl_denoise = fl[PI0_STAGE_DENOISE];
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_gib = (double)ru.ru_maxrss / (1024.0 * 1024.0);
    if (rc == 0) {
        double vmin, vmed, pmin, pmed, dmin, dmed, tmin, tmed;
        min_med(tv, runs, &vmin, &vmed);
        min_med(tp, runs, &pmin, &pmed);
        min_med(td, runs, &dmin, &dmed);
        min_med(tt, runs, &tmin, &tmed);
        for (int k = 0; k < n_steps; k++) min_med(ts + (size_t)k * runs, runs, &smin[k], &smed[k]);
        /* the peak of the arithmetic that ran: int8 weights run the Gemma layers on vpdpbusd, but the vision
         * tower stays bf16 (unless --int8-vision), so vision is measured against the bf16 peak */
        int fast = lo.params.backend == PI0_BACKEND_FAST, w = lo.params.weights;
        int i8 = fast && w == PI0_WEIGHTS_INT8 && peak.int8_gops > 0, v8 = i8 && lo.params.int8_vision;
        int bf16 = fast && (w == PI0_WEIGHTS_BF16 || w == PI0_WEIGHTS_INT8) && peak.bf16_gflops > 0;
        double pk = i8 ? peak.int8_gops : bf16 ? peak.bf16_gflops : peak.fp32_gflops;
        const char *pkname = i8 ? "int8" : bf16 ? "bf16" : "fp32";
        const char *wname = opt_weights_name(w);
        if (json) {
            /* every statistic is named: {"min": s, "median": s}; peaks as measured in this run */
            printf("{\"model\": \"%s\", \"backend\": \"%s\", \"weights\": \"%s\", \"threads\": %d, \"images\": %d, "
                   "\"valid_images\": %d, \"tokens\": %d, \"steps\": %d, \"runs\": %d, \"peak_fp32_gflops\": %.1f, "
                   "\"peak_bf16_gflops\": %.1f, \"peak_int8_gops\": %.1f, \"peak_int8_isa\": \"%s\", \"int8_vision\": %s, "
                   "\"load_s\": %.3f, ",
                   model, lo.params.backend == PI0_BACKEND_REF ? "ref" : "fast", wname, n_threads, images, valid, tokens,
                   n_steps, runs, peak.fp32_gflops, peak.bf16_gflops, peak.int8_gops, peak.int8_isa,
                   lo.params.int8_vision ? "true" : "false", load_s);
            printf("\"vision_s\": {\"min\": %.6f, \"median\": %.6f}, \"prefix_s\": {\"min\": %.6f, \"median\": %.6f}, "
                   "\"denoise_s\": {\"min\": %.6f, \"median\": %.6f}, \"total_s\": {\"min\": %.6f, \"median\": %.6f}, "
                   "\"vision_gflops\": %.1f, \"prefix_gflops\": %.1f, \"denoise_gflops\": %.1f, \"step_s\": [",
                   vmin, vmed, pmin, pmed, dmin, dmed, tmin, tmed, fl_vision / vmin / 1e9, fl_prefix / pmin / 1e9,
                   fl_denoise / dmin / 1e9);
            for (int k = 0; k < n_steps; k++) printf("%s{\"min\": %.6f, \"median\": %.6f}", k ? ", " : "", smin[k], smed[k]);
            /* the whole inference as a fraction of the peak of what ran (int8 weights: the int8 peak) */
            printf("], \"total_peak\": \"%s\", \"total_pct_of_peak\": %.1f, \"peak_rss_gib\": %.3f}\n", pkname,
                   pk > 0 ? 100 * (fl_vision + fl_prefix + fl_denoise) / tmin / 1e9 / pk : 0, rss_gib);
        } else {
            printf("bench: %s, backend %s, weights %s%s, %d images (%d valid), %d tokens, %d steps, %d runs\n", model,
                   lo.params.backend == PI0_BACKEND_REF ? "ref" : "fast", wname, lo.params.int8_vision ? " (vision int8)" : "",
                   images, valid, tokens, n_steps, runs);
            printf("machine peak (measured now, %d threads): fp32 FMA %.0f GFLOP/s, bf16 dot %.0f GFLOP/s, "
                   "int8 dot (vpdpbusd, %s) %.0f GOP/s\n\n",
                   n_threads, peak.fp32_gflops, peak.bf16_gflops, peak.int8_isa, peak.int8_gops);
            printf("%-14s %10s %10s %10s %8s\n", "stage", "min s", "median s", "GFLOP/s", "% peak");
            printf("%-14s %10.3f %10s\n", "load", load_s, "-");
            double st_fl[3] = {fl_vision, fl_prefix, fl_denoise}, st_min[3] = {vmin, pmin, dmin}, st_med[3] = {vmed, pmed, dmed};
            const char *names[3] = {"vision", "prefix", "denoise"};
            for (int k = 0; k < 3; k++) {
                int vb = i8 && !v8 && k == 0 && bf16; /* vision of plain int8 runs on bf16 weights */
                double g = st_min[k] > 0 ? st_fl[k] / st_min[k] / 1e9 : 0, p = vb ? peak.bf16_gflops : pk;
                printf("%-14s %10.3f %10.3f %10.1f %7.1f%%%s\n", names[k], st_min[k], st_med[k], g, p > 0 ? 100 * g / p : 0,
                       vb ? "   (bf16 peak: the vision tower stays bf16)" : "");
            }
            for (int k = 0; k < n_steps; k++) {
                char nm[32];
                snprintf(nm, sizeof nm, "  step %d", k);
                printf("%-14s %10.4f %10.4f\n", nm, smin[k], smed[k]);
            }
            double g = (fl_vision + fl_prefix + fl_denoise) / tmin / 1e9;
            printf("%-14s %10.3f %10.3f %10.1f %7.1f%%   (%% of the %s peak)\n", "total", tmin, tmed, g, pk > 0 ? 100 * g / pk : 0, pkname);
            printf("peak RSS %.2f GiB\n", rss_gib);
        }
    }
    free(img); free(state); free(act); free(imask); free(tok); free(tmask);
    free(tv); free(ts); free(step_end); free(smin);
    pi0_state_free(st);
    pi0_free(ctx);
    return rc;
}
