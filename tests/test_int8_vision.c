/* test_int8_vision.c - `--weights int8 --int8-vision` (pi0_params.int8_vision = 1) on both tiny
 * models, every test case with its own noise.
 *
 * int8_vision adds the SigLIP encoder's linear layers (q/k/v/o, fc1, fc2) to what --weights int8
 * quantizes (same scheme: int8 weights per output channel, int8 activations per token, outlier
 * channels exact). Checked here:
 *  - the vision output (SigLIP after its final LayerNorm, tap vision.imgN.out) against the PyTorch
 *    reference vectors of the test data (siglip_out_img0) and, for every image, against the float32
 *    reference backend: PCC >= 0.999, the floor `pi0 check` keeps for the vision output (bf16 weights
 *    reach 0.99998 here, test_model_fast.c). Each int8 layer rounds its weights (127 levels per
 *    output channel, ~0.8 % rms for Gaussian rows) and its inputs (per token, about as much): a 1-PCC
 *    of a few 1e-4 per pair of GEMMs, so 2 tiny layers stay near 3e-4 (measured 1.5e-4 .. 3.7e-4);
 *  - the actions against the bf16 fast path on the same noise: PCC >= 0.995 (issue 12's int8
 *    contract) and NMSE = MSE / mean square <= 2e-3. The vision tower is a second int8 network in
 *    front of the Gemma layers, with rounding errors independent of theirs: the NMSEs add, and each
 *    part gets the contract's 1e-3 budget. This is twice the plain int8 contract on purpose: int8
 *    vision takes the NMSE of π0 case 1 from 2.5e-4 (int8 alone) to 1.09e-3, past 1e-3, and of π0
 *    case 3 and π0.5 case 1 to 0.98e-3 and 0.87e-3; that is why the option is opt-in and documented
 *    as less safe (BENCHMARKS.md, int8 weights: accuracy);
 *  - what is quantized: the vision q/k/v/o, fc1, fc2 int8; patch embedding and projector bf16 (with
 *    the Gemma layers int8 as before), read from each packed weight's kind; pi0_weight_kind_counts
 *    moves exactly those parameters from bf16 to int8;
 *  - strict mode: every op site ran on the fast path;
 *  - pi0_load refuses int8_vision without weights = INT8, and values other than 0 and 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case_io.h"
#include "debug.h"
#include "harness.h"
#include "model/model.h"
#include "ops/fast/fast.h"
#include "pi0.h"

#define MIN_VISION_PCC 0.999
#define MIN_PCC 0.995
#define MAX_NMSE 2e-3

static pi0_status load(const char *dir, int backend, int kind, int int8_vision, pi0_ctx **ctx) {
    pi0_params p = pi0_params_default();
    p.backend = backend;
    p.strict = backend == PI0_BACKEND_FAST;
    p.weights = kind;
    p.int8_vision = int8_vision;
    p.n_threads = 2;
    return pi0_load(dir, &p, ctx);
}

/* Actions and taps of one case with its own noise; fallbacks = op sites not run on the fast path. */
static pi0_status run_case(pi0_ctx *ctx, const case_inputs *c, pi0_tap_store *taps, float *act, int *fallbacks) {
    pi0_state *st;
    pi0_status s = pi0_state_new(ctx, &st);
    if (s) return s;
    pi0_run_params rp = pi0_run_params_default();
    rp.tap = pi0_tap_store_cb;
    rp.tap_user = taps;
    s = case_infer(st, c, rp, act);
    const pi0_exec *ex = pi0_state_exec(st);
    *fallbacks = 0;
    for (int i = 0; i < ex->n_sites; i++) *fallbacks += strcmp(ex->sites[i].backend, "fast") != 0;
    pi0_state_free(st);
    return s;
}

static int kind_of(const pi0_weight *w) { return w->packed ? ((const pi0_fast_packed *)w->packed)->kind : -1; }

static void check_kinds(const char *dir, pi0_ctx *ctx) {
    const pi0_weights *w = &ctx->w;
    const pi0_config *c = &ctx->cfg;
    int bad = 0, n = 0;
    int64_t vis = 0;
#define WANT(wt, k) do { n++; if (kind_of(&(wt)) != (k)) { bad++; printf("  %s: kind %d, want %d\n", (wt).name, kind_of(&(wt)), (k)); } } while (0)
    for (int i = 0; i < c->vision_depth; i++) {
        const pi0_vision_layer *L = &w->vision[i];
        WANT(L->q, PI0_WEIGHTS_INT8); WANT(L->k, PI0_WEIGHTS_INT8); WANT(L->v, PI0_WEIGHTS_INT8); WANT(L->o, PI0_WEIGHTS_INT8);
        WANT(L->fc1, PI0_WEIGHTS_INT8); WANT(L->fc2, PI0_WEIGHTS_INT8);
        vis += L->q.rows * L->q.cols + L->k.rows * L->k.cols + L->v.rows * L->v.cols + L->o.rows * L->o.cols +
               L->fc1.rows * L->fc1.cols + L->fc2.rows * L->fc2.cols;
    }
    for (int i = 0; i < c->vlm_depth; i++) { WANT(w->vlm[i].q, PI0_WEIGHTS_INT8); WANT(w->vlm[i].down, PI0_WEIGHTS_INT8); }
    for (int i = 0; i < c->expert_depth; i++) { WANT(w->expert[i].o, PI0_WEIGHTS_INT8); WANT(w->expert[i].gate, PI0_WEIGHTS_INT8); }
    WANT(w->patch, PI0_WEIGHTS_BF16); WANT(w->proj, PI0_WEIGHTS_BF16);
    WANT(w->action_in, PI0_WEIGHTS_BF16); WANT(w->action_out, PI0_WEIGHTS_BF16);
#undef WANT
    CHECK(bad == 0, "%s int8 + int8_vision: %d matrices in the promised kind (SigLIP q/k/v/o, fc1, fc2 and Gemma layers "
          "int8; patch embedding, projector, action projections bf16), %d wrong", dir, n - bad, bad);
    int64_t k0[3], k1[3];
    pi0_weight_kind_counts(ctx, PI0_WEIGHTS_INT8, 0, k0);
    pi0_weight_kind_counts(ctx, PI0_WEIGHTS_INT8, 1, k1);
    CHECK(vis > 0 && k1[PI0_WEIGHTS_INT8] - k0[PI0_WEIGHTS_INT8] == vis && k0[PI0_WEIGHTS_BF16] - k1[PI0_WEIGHTS_BF16] == vis,
          "%s: pi0_weight_kind_counts moves the %lld SigLIP linear parameters to int8 (int8 %lld -> %lld, bf16 %lld -> %lld)",
          dir, (long long)vis, (long long)k0[PI0_WEIGHTS_INT8], (long long)k1[PI0_WEIGHTS_INT8],
          (long long)k0[PI0_WEIGHTS_BF16], (long long)k1[PI0_WEIGHTS_BF16]);
}

static void compare(const char *label, const float *a, const float *b, int64_t n, double min_pcc, double *worst) {
    double p = harness_pcc(a, b, n);
    if (p < *worst) *worst = p;
    CHECK(p >= min_pcc, "%s: PCC %.6f (min %.3f), n=%lld", label, p, min_pcc, (long long)n);
}

static void run_dir(const char *dir, int pi05, int n_cases) {
    pi0_ctx *cr = NULL, *cb = NULL, *cv = NULL;
    if (load(dir, PI0_BACKEND_REF, PI0_WEIGHTS_BF16, 0, &cr) || load(dir, PI0_BACKEND_FAST, PI0_WEIGHTS_BF16, 0, &cb) ||
        load(dir, PI0_BACKEND_FAST, PI0_WEIGHTS_INT8, 1, &cv)) {
        CHECK(0, "load %s: %s", dir, pi0_last_error());
        pi0_free(cr);
        pi0_free(cb);
        return;
    }
    double worst_vis = 1.0, worst_pcc = 1.0, worst_nmse = 0.0;
    for (int ci = 0; ci < n_cases; ci++) {
        char path[512], label[256];
        snprintf(path, sizeof path, "%s/case_%02d.safetensors", dir, ci);
        case_inputs c;
        if (!read_case(path, &c, pi05)) { CHECK(0, "read %s", path); continue; }
        float *ar = malloc((size_t)c.n_act * sizeof *ar), *ab = malloc((size_t)c.n_act * sizeof *ab),
              *av = malloc((size_t)c.n_act * sizeof *av);
        pi0_tap_store tr = {0}, tb = {0}, tv = {0};
        int fr, fb, fv;
        pi0_status sr = run_case(cr, &c, &tr, ar, &fr), sb = run_case(cb, &c, &tb, ab, &fb), sv = run_case(cv, &c, &tv, av, &fv);
        CHECK(sr == PI0_OK && sb == PI0_OK && sv == PI0_OK && fv == 0,
              "%s case %d: ref, bf16 and int8 + int8_vision (strict) run, fallbacks %d (%s)", dir, ci, fv,
              (sr || sb || sv) ? pi0_last_error() : "ok");
        if (sr == PI0_OK && sb == PI0_OK && sv == PI0_OK) {
            /* vision output vs PyTorch (img0) and vs the float32 reference backend (every image) */
            pi0_st_file *f;
            float *want = NULL;
            int64_t nw = 0;
            if (pi0_st_open(path, &f) == PI0_OK) {
                pi0_st_read_f32(f, "siglip_out_img0", &want, &nw);
                pi0_st_close(f);
            }
            const pi0_tap_copy *v0 = pi0_tap_find(&tv, "vision.img0.out");
            CHECK(want && v0 && v0->numel == nw, "%s case %d: vision.img0.out and siglip_out_img0 present (%lld values)", dir, ci,
                  (long long)nw);
            if (want && v0 && v0->numel == nw) {
                snprintf(label, sizeof label, "%s case %d: int8 vision img0 vs PyTorch siglip_out_img0", dir, ci);
                compare(label, v0->data, want, nw, MIN_VISION_PCC, &worst_vis);
            }
            free(want);
            for (int i = 0; i < c.n_img; i++) {
                char name[64];
                snprintf(name, sizeof name, "vision.img%d.out", i);
                const pi0_tap_copy *a = pi0_tap_find(&tv, name), *b = pi0_tap_find(&tr, name);
                if (!c.imask[i] || !b) continue; /* the fast path does not encode a masked slot */
                CHECK(a && a->numel == b->numel, "%s case %d: %s in the int8 run", dir, ci, name);
                if (!a || a->numel != b->numel) continue;
                snprintf(label, sizeof label, "%s case %d: int8 vision %s vs float32 reference", dir, ci, name);
                compare(label, a->data, b->data, a->numel, MIN_VISION_PCC, &worst_vis);
            }
            /* actions vs the bf16 fast path on the same noise */
            double p = harness_pcc(av, ab, c.n_act), e = 0, ms = 0;
            for (int64_t i = 0; i < c.n_act; i++) {
                e += ((double)av[i] - ab[i]) * ((double)av[i] - ab[i]);
                ms += (double)ab[i] * ab[i];
            }
            double nmse = ms > 0 ? e / ms : e / (double)c.n_act;
            if (p < worst_pcc) worst_pcc = p;
            if (nmse > worst_nmse) worst_nmse = nmse;
            CHECK(p >= MIN_PCC && nmse <= MAX_NMSE,
                  "%s case %d: int8 + int8_vision vs bf16 actions PCC %.6f (min %.3f), MSE %.3g, NMSE %.3g (max %.0e)", dir, ci, p,
                  MIN_PCC, e / (double)c.n_act, nmse, MAX_NMSE);
        }
        pi0_tap_store_free(&tr);
        pi0_tap_store_free(&tb);
        pi0_tap_store_free(&tv);
        free(ar);
        free(ab);
        free(av);
        free_case(&c);
    }
    printf("%s: int8 vision worst vision-output PCC %.6f; int8 + int8_vision vs bf16 actions worst PCC %.6f, NMSE %.3g\n", dir,
           worst_vis, worst_pcc, worst_nmse);
    check_kinds(dir, cv);
    pi0_free(cr);
    pi0_free(cb);
    pi0_free(cv);
}

/* The option's argument checks: a clear PI0_ERR_ARG, no context. */
static void check_load_errors(const char *dir) {
    static const struct { int kind, v; const char *want; } bad[] = {
        {PI0_WEIGHTS_BF16, 1, "int8_vision needs params.weights = PI0_WEIGHTS_INT8"},
        {PI0_WEIGHTS_F32, 1, "int8_vision needs params.weights = PI0_WEIGHTS_INT8"},
        {PI0_WEIGHTS_INT8, 2, "int8_vision = 2, expected 0 or 1"},
        {PI0_WEIGHTS_INT8, -1, "int8_vision = -1, expected 0 or 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pi0_ctx *ctx = (pi0_ctx *)1;
        pi0_status s = load(dir, PI0_BACKEND_FAST, bad[i].kind, bad[i].v, &ctx);
        const char *msg = pi0_last_error();
        CHECK(s == PI0_ERR_ARG && ctx == NULL && msg && strstr(msg, bad[i].want), "load weights %d, int8_vision %d: status %d, '%s'",
              bad[i].kind, bad[i].v, (int)s, msg ? msg : "");
        if (s == PI0_OK) pi0_free(ctx);
    }
}

int main(void) {
    run_dir("tests/data/pi0_tiny", 0, 4);
    run_dir("tests/data/pi05_tiny", 1, 2);
    check_load_errors("tests/data/pi0_tiny");
    return harness_summary();
}
