/* cmd_audit.c - `pi0 audit`: run one inference and show, per component, where each op site ran
 * (fast or ref), how often, how long and its share; every fallback with its reason; and the heap
 * allocations and bytes copied inside the denoising loop (counted by tools/alloc_count.c between
 * the first and the last denoising step, after a warm-up inference). ggml's GGML_SCHED_DEBUG as a
 * product. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "cli.h"
#include "tools_api.h"
#include "tools_common.h"

typedef struct {
    int started;
    int64_t allocs0, bytes0, allocs, bytes;
    int last_step;
} loop_probe;

/* Tap callback: the loop starts at the first tap of step 0 (its time embedding) and ends at the last
 * tap of the last step (its x): the counts are taken again at every tap of that step. */
static void probe(const pi0_tensor_view *t, void *user) {
    loop_probe *p = user;
    if (t->stage != PI0_STAGE_DENOISE) return;
    if (t->step == 0 && !p->started) {
        p->allocs0 = pi0_count_allocs();
        p->bytes0 = pi0_count_copied_bytes();
        p->started = 1;
    }
    if (t->step == p->last_step) {
        p->allocs = pi0_count_allocs() - p->allocs0;
        p->bytes = pi0_count_copied_bytes() - p->bytes0;
    }
}

int cmd_audit(int argc, char **argv) {
    const char *model = NULL, *inputs = NULL;
    int json = 0, steps = 0;
    tool_load_opts lo = tool_load_defaults();
    opt_load_block lb;
    const opt_spec opts[] = {
        {.name = "--model", .type = OPT_STR, .dest = &model, .meta = "DIR", .help = "checkpoint directory", .required = 1},
        {.name = "--inputs", .type = OPT_STR, .dest = &inputs, .meta = "CASE", .required = 1,
         .help = "model-level inputs (.safetensors, e.g. DIR/sample_inputs.safetensors from `pi0 gen-random`)"},
        OPT_STEPS(&steps),
        {.name = "--json", .type = OPT_FLAG, .dest = &json, .help = "one JSON object instead of the tables"},
        {0},
    };
    const opt_group groups[] = {{NULL, opts}, {"Loading", opt_load_options(&lb, &lo, 0)}};
    const opt_cmd cmd = {
        .name = "audit",
        .usage = "pi0 audit --model DIR --inputs CASE [--json] [--strict] [--steps N] [--backend fast|ref]\n"
                 "          [--weights bf16|f32|int8 [--int8-vision]] [--threads N]",
        .about = "Run one inference (after a warm-up) and print, per component (vision, prefix, denoise), each op site's\n"
                 "path (fast/ref), calls, time and share of the total, every fallback with its reason, and the allocations\n"
                 "and bytes copied inside the denoising loop. --strict makes any fallback an error. --json prints the same\n"
                 "as one JSON object (keys fast_fraction, fallbacks, denoise_allocs, denoise_bytes_copied, total_ms, sites)."};
    int r = opt_parse(&cmd, groups, 2, argc, argv, NULL);
    if (!r) r = opt_load_check(&cmd, &lo);
    if (r) return r == OPT_HELP ? 0 : 2;
    pi0_ctx *ctx;
    if (tool_load(model, &lo, &ctx) != PI0_OK) return cli_error("%s", pi0_last_error());
    const pi0_config *c = pi0_config_of(ctx);
    case_file cf;
    pi0_state *st = NULL;
    int rc = 0;
    if (tool_case_read(inputs, c, &cf) != PI0_OK) { pi0_free(ctx); return cli_error("%s", pi0_last_error()); }
    size_t n = (size_t)c->action_horizon * c->action_dim;
    float *act = malloc(n * sizeof *act);
    loop_probe lp = {0};
    pi0_run_params rp = pi0_run_params_default();
    rp.n_steps = steps ? steps : cf.n_steps;
    lp.last_step = (rp.n_steps ? rp.n_steps : c->n_steps) - 1;
    double t0 = 0, t1 = 0;
    pi0_status s = pi0_state_new(ctx, &st);
    if (s == PI0_OK) s = pi0_infer(st, &cf.obs, &rp, cf.noise, act, n); /* warm-up: scratch buffers grow here */
    if (s == PI0_OK) {
        pi0_exec_reset_stats(pi0_state_exec(st));
        rp.tap = probe;
        rp.tap_user = &lp;
        t0 = tool_now();
        s = pi0_infer(st, &cf.obs, &rp, cf.noise, act, n);
        t1 = tool_now();
    }
    if (s != PI0_OK) {
        rc = cli_error("%s", pi0_last_error());
        goto done;
    }
    const pi0_exec *ex = pi0_state_exec(st);
    double total_ns = 0, fast_ns = 0;
    int fallbacks = 0;
    for (int i = 0; i < ex->n_sites; i++) {
        total_ns += (double)ex->sites[i].ns;
        if (!strcmp(ex->sites[i].backend, "fast")) fast_ns += (double)ex->sites[i].ns; else fallbacks++;
    }
    double fast_fraction = total_ns > 0 ? fast_ns / total_ns : 0;
    if (json) {
        printf("{\"weights\": \"%s\", \"fast_fraction\": %.6f, \"fallbacks\": %d, \"denoise_allocs\": %lld, \"denoise_bytes_copied\": %lld, "
               "\"total_ms\": %.3f, \"op_ms\": %.3f, \"sites\": [",
               lo.params.backend == PI0_BACKEND_REF ? "stored" : opt_weights_name(lo.params.weights), fast_fraction,
               fallbacks, (long long)lp.allocs, (long long)lp.bytes, 1e3 * (t1 - t0), total_ns / 1e6);
        for (int i = 0; i < ex->n_sites; i++) {
            const pi0_site_stats *x = &ex->sites[i];
            printf("%s{\"component\": \"%s\", \"site\": \"%s\", \"op\": \"%s\", \"backend\": \"%s\", \"calls\": %lld, "
                   "\"ms\": %.3f, \"gflops\": %.3f, \"reason\": \"%s\"}",
                   i ? ", " : "", pi0_stage_name(x->stage), x->site, pi0_op_name(x->op), x->backend, (long long)x->calls,
                   (double)x->ns / 1e6, x->flops / 1e9, x->reason);
        }
        printf("]}\n");
        goto done;
    }
    int64_t by_kind[3];
    pi0_weight_kind_counts(ctx, lo.params.weights, lo.params.int8_vision, by_kind);
    printf("audit of one inference: %s, backend %s%s, %d threads, weights %s", model,
           lo.params.backend == PI0_BACKEND_REF ? "ref" : "fast", lo.params.strict ? " (strict)" : "",
           lo.params.n_threads ? lo.params.n_threads : pi0_cpu_count(),
           lo.params.backend == PI0_BACKEND_REF ? "as stored (float32 reference)" : opt_weights_name(lo.params.weights));
    if (lo.params.backend == PI0_BACKEND_FAST && lo.params.weights == PI0_WEIGHTS_INT8)
        printf(" (%.3g M parameters int8, %.3g M kept bf16; vision tower %s)", (double)by_kind[PI0_WEIGHTS_INT8] / 1e6,
               (double)by_kind[PI0_WEIGHTS_BF16] / 1e6, lo.params.int8_vision ? "int8 (--int8-vision)" : "bf16");
    printf("\n");
    for (int k = 0; k < PI0_STAGE_COUNT; k++) {
        double cns = 0;
        for (int i = 0; i < ex->n_sites; i++)
            if (ex->sites[i].stage == (pi0_stage)k) cns += (double)ex->sites[i].ns;
        printf("\n== %s: %.1f ms (%.1f%%)\n", pi0_stage_name((pi0_stage)k), cns / 1e6, total_ns > 0 ? 100 * cns / total_ns : 0);
        printf("  %-24s %-11s %-5s %7s %10s %6s %9s  %s\n", "site", "op", "path", "calls", "ms", "%", "GFLOP/s", "fallback reason");
        for (int i = 0; i < ex->n_sites; i++) {
            const pi0_site_stats *x = &ex->sites[i];
            if (x->stage != (pi0_stage)k) continue;
            double gf = x->ns > 0 && x->flops > 0 ? x->flops / (double)x->ns : 0;
            printf("  %-24s %-11s %-5s %7lld %10.3f %6.2f %9.1f  %s\n", x->site, pi0_op_name(x->op), x->backend,
                   (long long)x->calls, (double)x->ns / 1e6, total_ns > 0 ? 100.0 * (double)x->ns / total_ns : 0, gf,
                   x->reason);
        }
    }
    printf("\nsummary: %.1f ms wall, %.1f ms in ops; fast fraction %.4f; %d fallback site(s); "
           "inside the denoising loop: %lld allocations, %lld bytes copied\n",
           1e3 * (t1 - t0), total_ns / 1e6, fast_fraction, fallbacks, (long long)lp.allocs, (long long)lp.bytes);
done:
    free(act);
    tool_case_free(&cf);
    pi0_state_free(st);
    pi0_free(ctx);
    return rc;
}
