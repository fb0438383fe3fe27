/* cmd_check.c - `pi0 check`: the fast path against the reference path on one observation,
 * component by component (vision output, prefix embeddings, every layer's K/V, suffix embeddings,
 * each step's velocity with identical inputs, actions): PCC and max relative error per component.
 *
 * Both paths load the same checkpoint, so they use the same weights (for a bf16 checkpoint the
 * fast path's bf16 packing is exact). Each step's velocity is compared with identical inputs: the
 * fast path runs one step from the reference trajectory's x_k at t_k. Exit code 1 if any component
 * is below --min-pcc. This is the full-size counterpart of tests/test_model_fast.c (make check-full). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tools_api.h"
#include "tools_common.h"

/* Print one component's line; 1 when its PCC reaches min_pcc. */
static int report(const char *label, const pi0_compare *m, double min_pcc, double *worst) {
    int ok = m->n > 0 && m->pcc >= min_pcc;
    printf("  %-28s n=%-9lld pcc %.6f  max rel err %.3g  %s\n", label, (long long)m->n, m->pcc, m->rel, ok ? "ok" : "BELOW");
    if (m->pcc < *worst) *worst = m->pcc;
    return ok;
}

/* a (fast) against b (ref) on the rows both hold (valid[] filters prefix rows when given). */
static int compare(const char *label, const pi0_tap_copy *a, const pi0_tap_copy *b, const uint8_t *valid, int64_t n_valid,
                   double min_pcc, double *worst) {
    if (!a || !b) { printf("  %-28s missing\n", label); return 0; }
    pi0_compare m;
    if (pi0_compare_taps(a, b, valid, n_valid, &m) != 0) { printf("  %-28s out of memory\n", label); return 0; }
    return report(label, &m, min_pcc, worst);
}

/* PCC minimum per component. bf16 and f32 weights: --min-pcc everywhere (0.999: bf16 keeps 8
 * significant bits, tests/test_model_fast.c). int8 weights (unless --min-pcc is given): the vision
 * tower, projector, embeddings and action/time projections stay bf16, so vision, prefix and suffix
 * embeddings keep 0.999; each Gemma layer adds the int8 rounding of its weights (per channel, 127
 * levels) and of its activations (per token), which compounds over the 18 layers of the K/V cache:
 * K/V 0.99, each step's velocity 0.99 and the actions 0.995 (the accuracy contract; measured values
 * in BENCHMARKS.md "int8 weights: accuracy"). --int8-vision keeps the same floors: its vision output
 * (27 int8 SigLIP layers at full size) must still reach 0.999, and its actions the contract against
 * the bf16 path, which has no int8 vision (the comparison tells what the whole int8 choice costs). */
typedef struct { double embed, kv, velocity, actions; } pcc_floor;

/* Actions a against b: the compare line's PCC, plus MSE and NMSE (MSE / mean square of b), in
 * normalized model units (for unit-variance normalized actions, as a real checkpoint's, NMSE = MSE). */
static void action_errors(const float *a, const float *b, int64_t n, double *mse, double *nmse) {
    double e = 0, ms = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        ms += (double)b[i] * b[i];
    }
    *mse = n ? e / (double)n : 0;
    *nmse = ms > 0 ? e / ms : *mse;
}

static pi0_status run(pi0_ctx *ctx, const case_file *cf, pi0_tap_store *s, const float *x0, const float *t, int n_steps, float *out) {
    const pi0_config *c = pi0_config_of(ctx);
    pi0_state *st;
    pi0_status r = pi0_state_new(ctx, &st);
    if (r) return r;
    pi0_run_params rp = pi0_run_params_default();
    rp.tap = pi0_tap_store_cb;
    rp.tap_user = s;
    rp.n_steps = t ? 1 : n_steps;
    rp.timesteps = t;
    r = pi0_infer(st, &cf->obs, &rp, x0, out, (size_t)c->action_horizon * c->action_dim);
    pi0_state_free(st);
    return r;
}

/* int8 weights: the accuracy contract compares the int8 actions with the bf16 fast path's on the same
 * noise: PCC >= 0.995 and MSE <= 1e-3 in normalized units, taken relative to the actions' mean square
 * (NMSE; the same for unit-variance actions; a random checkpoint's are not). Loaded after the other
 * two contexts are freed (a full-size bf16 context is 6.5 GB). */
static int int8_vs_bf16(const char *model, const tool_load_opts *lo, const case_file *cf, const float *noise, int n_steps,
                        const float *a8, size_t na) {
    tool_load_opts lb = *lo;
    lb.params.weights = PI0_WEIGHTS_BF16;
    lb.params.int8_vision = 0;
    pi0_ctx *ctx;
    if (tool_load(model, &lb, &ctx) != PI0_OK) { cli_error("%s", pi0_last_error()); return 0; }
    float *ab = malloc(na * sizeof *ab);
    pi0_tap_store s = {0};
    pi0_status r = ab ? run(ctx, cf, &s, noise, NULL, n_steps, ab) : pi0_err(PI0_ERR_NOMEM, "out of memory");
    int ok = r == PI0_OK;
    if (!ok) cli_error("%s", pi0_last_error());
    else {
        pi0_compare m = pi0_compare_arrays(a8, ab, (int64_t)na);
        double mse, nmse;
        action_errors(a8, ab, (int64_t)na, &mse, &nmse);
        ok = m.pcc >= 0.995 && nmse <= 1e-3;
        printf("actions int8 vs bf16 fast path (same noise): PCC %.6f (min 0.995), MSE %.3g, NMSE %.3g (max 1e-3): %s\n",
               m.pcc, mse, nmse, ok ? "ok" : "BELOW");
    }
    pi0_tap_store_free(&s);
    free(ab);
    pi0_free(ctx);
    return ok;
}

int cmd_check(int argc, char **argv) {
    const char *model = NULL, *inputs = NULL;
    int steps = 0, min_pcc_given = 0;
    double min_pcc = 0.999;
    tool_load_opts lo = tool_load_defaults();
    opt_load_block lb;
    const opt_spec opts[] = {
        {.name = "--model", .type = OPT_STR, .dest = &model, .meta = "DIR", .help = "checkpoint directory", .required = 1},
        {.name = "--inputs", .type = OPT_STR, .dest = &inputs, .meta = "CASE", .required = 1,
         .help = "model-level inputs (.safetensors, e.g. DIR/sample_inputs.safetensors)"},
        OPT_STEPS(&steps),
        {.name = "--min-pcc", .type = OPT_DOUBLE, .dest = &min_pcc, .meta = "P", .lo = -1, .hi = 1, .seen = &min_pcc_given,
         .help = "exit 1 if any component's PCC is below P (default with --weights int8: 0.999 for vision and\n"
                 "the embeddings, which stay bf16, 0.99 for K/V and velocities, 0.995 for the actions)"},
        {0},
    };
    const opt_group groups[] = {{NULL, opts}, {"Loading (the reference path is always ref, the fast path fast and strict)",
                                               opt_load_options(&lb, &lo, 1)}};
    const opt_cmd cmd = {
        .name = "check",
        .usage = "pi0 check --model DIR --inputs CASE [--steps N] [--min-pcc P] [--weights bf16|f32|int8 [--int8-vision]]\n"
                 "          [--threads N]",
        .about = "Run the reference path and the fast path (strict) on the same inputs and print, per component, the\n"
                 "PCC and max relative error of fast vs ref: vision output, prefix embeddings, every layer's K/V, suffix\n"
                 "embeddings, each step's velocity (fast run from the reference's x_k, t_k), actions. Exit 1 if any\n"
                 "PCC < --min-pcc. The reference path is slow at full size (minutes). With --weights int8 the actions are\n"
                 "also compared with the bf16 fast path on the same noise (PCC and MSE)."};
    int r = opt_parse(&cmd, groups, 2, argc, argv, NULL);
    if (!r) r = opt_load_check(&cmd, &lo);
    if (r) return r == OPT_HELP ? 0 : 2;
    tool_load_opts lr = lo;
    lr.params.backend = PI0_BACKEND_REF;
    lo.params.backend = PI0_BACKEND_FAST;
    lo.params.strict = 1;
    pi0_ctx *cr = NULL, *cf_ctx = NULL;
    case_file cf;
    if (tool_load(model, &lr, &cr) || tool_load(model, &lo, &cf_ctx)) {
        int rc = cli_error("%s", pi0_last_error());
        pi0_free(cr);
        return rc;
    }
    const pi0_config *c = pi0_config_of(cr);
    if (tool_case_read(inputs, c, &cf) != PI0_OK) {
        int rc = cli_error("%s", pi0_last_error());
        pi0_free(cr);
        pi0_free(cf_ctx);
        return rc;
    }
    int int8 = lo.params.weights == PI0_WEIGHTS_INT8;
    pcc_floor fl = {min_pcc, min_pcc, min_pcc, min_pcc};
    if (int8 && !min_pcc_given) fl = (pcc_floor){0.999, 0.99, 0.99, 0.995};
    int n_steps = steps ? steps : cf.n_steps ? cf.n_steps : c->n_steps;
    size_t na = (size_t)c->action_horizon * c->action_dim;
    float *ar = malloc(na * sizeof *ar), *af = malloc(na * sizeof *af), *noise = malloc(na * sizeof *noise);
    float *a1 = malloc(na * sizeof *a1); /* output of the one-step runs (af keeps the free-running actions) */
    if (cf.noise) memcpy(noise, cf.noise, na * sizeof *noise); else pi0_noise_fill(noise, na, 0);
    pi0_tap_store sr = {0}, sf = {0};
    double t0 = tool_now();
    pi0_status s = run(cr, &cf, &sr, noise, NULL, n_steps, ar);
    double t1 = tool_now();
    if (s == PI0_OK) s = run(cf_ctx, &cf, &sf, noise, NULL, n_steps, af);
    int ok = s == PI0_OK, rc = 0;
    double worst = 1.0;
    if (!ok) rc = cli_error("%s", pi0_last_error());
    else {
        printf("fast (strict, weights %s%s) vs ref on %s, %d steps (ref took %.1f s):\n", opt_weights_name(lo.params.weights),
               lo.params.int8_vision ? ", vision int8" : "", inputs, n_steps, t1 - t0);
        int64_t T = (int64_t)(c->image_size / c->patch_size) * (c->image_size / c->patch_size);
        int64_t P = cf.obs.n_images * T + cf.obs.n_tokens;
        uint8_t *valid = malloc((size_t)P);
        for (int64_t j = 0; j < P; j++)
            valid[j] = j < cf.obs.n_images * T ? (uint8_t)(cf.obs.image_masks[j / T] != 0)
                                               : (uint8_t)(cf.obs.token_masks[j - cf.obs.n_images * T] != 0);
        char name[64];
        for (int i = 0; i < cf.obs.n_images; i++) {
            snprintf(name, sizeof name, "vision.img%d.out", i);
            if (pi0_tap_find(&sf, name)) ok &= compare(name, pi0_tap_find(&sf, name), pi0_tap_find(&sr, name), NULL, 0, fl.embed, &worst);
        }
        ok &= compare("prefix.embs", pi0_tap_find(&sf, "prefix.embs"), pi0_tap_find(&sr, "prefix.embs"), valid, P, fl.embed, &worst);
        for (int l = 0; l < c->vlm_depth; l++) {
            snprintf(name, sizeof name, "prefix.k.L%02d", l);
            ok &= compare(name, pi0_tap_find(&sf, name), pi0_tap_find(&sr, name), valid, P, fl.kv, &worst);
            snprintf(name, sizeof name, "prefix.v.L%02d", l);
            ok &= compare(name, pi0_tap_find(&sf, name), pi0_tap_find(&sr, name), valid, P, fl.kv, &worst);
        }
        ok &= compare("denoise.s00.suffix_embs", pi0_tap_find(&sf, "denoise.s00.suffix_embs"), pi0_tap_find(&sr, "denoise.s00.suffix_embs"),
                      NULL, 0, fl.embed, &worst);
        float dt = -1.0f / (float)n_steps, t = 1.0f;
        for (int k = 0; k < n_steps; k++, t += dt) {
            char xname[64], label[96];
            snprintf(xname, sizeof xname, "denoise.s%02d.x", k - 1);
            const pi0_tap_copy *xk = k ? pi0_tap_find(&sr, xname) : NULL;
            pi0_tap_store one = {0};
            if (run(cf_ctx, &cf, &one, xk ? xk->data : noise, &t, 1, a1) != PI0_OK) { ok = 0; rc = cli_error("%s", pi0_last_error()); break; }
            snprintf(name, sizeof name, "denoise.s%02d.v", k);
            snprintf(label, sizeof label, "%s (same x_k)", name);
            ok &= compare(label, pi0_tap_find(&one, "denoise.s00.v"), pi0_tap_find(&sr, name), NULL, 0, fl.velocity, &worst);
            pi0_tap_store_free(&one);
        }
        if (rc == 0) {
            pi0_compare m = pi0_compare_arrays(af, ar, (int64_t)na);
            ok &= report("actions (free-running)", &m, fl.actions, &worst);
            double mse, nmse;
            action_errors(af, ar, (int64_t)na, &mse, &nmse);
            printf("actions vs ref: PCC %.6f, MSE %.3g, NMSE %.3g (normalized units; NMSE = MSE / mean square of ref)\n", m.pcc,
                   mse, nmse);
            if (int8) {
                pi0_free(cr);
                pi0_free(cf_ctx);
                cr = cf_ctx = NULL;
                ok &= int8_vs_bf16(model, &lo, &cf, noise, n_steps, af, na);
            }
            if (fl.embed == fl.actions) printf("worst PCC %.6f (minimum %.4f): %s\n", worst, fl.actions, ok ? "PASS" : "FAIL");
            else printf("worst PCC %.6f (minimum %.4g vision/embeddings, %.4g K/V, %.4g velocity, %.4g actions): %s\n", worst,
                        fl.embed, fl.kv, fl.velocity, fl.actions, ok ? "PASS" : "FAIL");
            if (!ok) rc = 1;
        }
        free(valid);
    }
    pi0_tap_store_free(&sr);
    pi0_tap_store_free(&sf);
    free(ar); free(af); free(a1); free(noise);
    tool_case_free(&cf);
    pi0_free(cr);
    pi0_free(cf_ctx);
    return rc;
}
