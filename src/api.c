/* api.c - public entry points of pi0.h: parameter defaults, load/free, argument checks, infer.
 * Every entry point clears the thread-local error first and checks every argument before use. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/model.h"
#include "model/rtc.h"
#include "model/variant.h"
#include "rt/threadpool.h"

pi0_params pi0_params_default(void) {
    pi0_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.backend = PI0_BACKEND_FAST;
    p.strict = 0;
    p.weights = PI0_WEIGHTS_BF16;
    return p;
}

pi0_run_params pi0_run_params_default(void) {
    pi0_run_params r;
    memset(&r, 0, sizeof r);
    return r;
}

typedef struct {
    const pi0_ctx *ctx;
    double total; /* stored bytes of the weights being prepared (the backend reports by bytes) */
    char what[96];
} prepare_report;

/* "packing weights 4.1 / 10.9 GB": a full-size F32 checkpoint takes tens of seconds to convert;
 * with --weights int8 the line says "quantizing" (the Gemma layers are quantized, the rest packed). */
static void prepare_progress(float done, void *user) {
    prepare_report *r = user;
    double unit = r->total >= 1e9 ? 1e9 : 1e6;
    const char *u = unit == 1e9 ? "GB" : "MB";
    int q = r->ctx->params.weights == PI0_WEIGHTS_INT8;
    if (done < 1.0f)
        snprintf(r->what, sizeof r->what, "%s weights %.1f / %.1f %s", q ? "quantizing (int8)" : "packing",
                 done * r->total / unit, r->total / unit, u);
    else snprintf(r->what, sizeof r->what, "%s %.1f %s of weights", q ? "quantized (int8)" : "packed", r->total / unit, u);
    r->ctx->params.progress(0.1f + 0.9f * done, r->what, r->ctx->params.progress_user);
}

/* The backend's load-time step (the fast backend packs every matmul weight), each matrix in the
 * kind its role gets (model.h: pi0_role_weight_kind). */
static pi0_status prepare_weights(pi0_ctx *ctx) {
    const pi0_backend *be = pi0_backend_get(ctx->params.backend);
    if (!be->prepare) return PI0_OK;
    prepare_report r = {.ctx = ctx};
    for (int i = 0; i < ctx->n_matrices; i++)
        if (ctx->matrices[i] != &ctx->w.embed)
            r.total += (double)ctx->matrices[i]->rows * (double)ctx->matrices[i]->cols * (double)pi0_dtype_size(ctx->matrices[i]->dtype);
    int *kinds = malloc((size_t)(ctx->n_matrices ? ctx->n_matrices : 1) * sizeof *kinds);
    if (!kinds) return pi0_err(PI0_ERR_NOMEM, "pi0_load: out of memory");
    for (int i = 0; i < ctx->n_matrices; i++) kinds[i] = pi0_role_weight_kind(ctx->roles[i], ctx->params.weights, ctx->params.int8_vision);
    pi0_prepare_args a = {.w = ctx->matrices, .n = ctx->n_matrices, .skip = &ctx->w.embed,
                          .weight_kind = ctx->params.weights, .kinds = kinds, .drop_source = 1,
                          .n_threads = ctx->params.n_threads > 0 ? ctx->params.n_threads : pi0_cpu_count(),
                          .progress = ctx->params.progress ? prepare_progress : NULL, .progress_user = &r};
    pi0_status s = be->prepare(&a);
    free(kinds);
    return s;
}

pi0_status pi0_load(const char *dir, const pi0_params *p, pi0_ctx **out) {
    pi0_err_clear();
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_load: out is NULL");
    *out = NULL;
    if (!dir) return pi0_err(PI0_ERR_ARG, "pi0_load: checkpoint directory is NULL");
    pi0_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return pi0_err(PI0_ERR_NOMEM, "pi0_load: out of memory");
    ctx->params = p ? *p : pi0_params_default();
    pi0_status s;
    if (!pi0_backend_get(ctx->params.backend)) {
        s = pi0_err(PI0_ERR_ARG, "pi0_load: backend %d unknown (0 fast, 1 ref)", ctx->params.backend);
        goto fail;
    }
    if (ctx->params.weights != PI0_WEIGHTS_BF16 && ctx->params.weights != PI0_WEIGHTS_F32 &&
        ctx->params.weights != PI0_WEIGHTS_INT8) {
        s = pi0_err(PI0_ERR_ARG, "pi0_load: params.weights = %d unknown (0 bf16, 1 f32, 2 int8)", ctx->params.weights);
        goto fail;
    }
    if (ctx->params.int8_vision != 0 && ctx->params.int8_vision != 1) {
        s = pi0_err(PI0_ERR_ARG, "pi0_load: params.int8_vision = %d, expected 0 or 1", ctx->params.int8_vision);
        goto fail;
    }
    if (ctx->params.int8_vision && ctx->params.weights != PI0_WEIGHTS_INT8) {
        s = pi0_err(PI0_ERR_ARG, "pi0_load: params.int8_vision needs params.weights = PI0_WEIGHTS_INT8 (2), got %d: it "
                    "adds the vision tower to the int8 Gemma layers", ctx->params.weights);
        goto fail;
    }
    if (ctx->params.n_threads < 0 || ctx->params.n_threads > PI0_MAX_THREADS) {
        s = pi0_err(PI0_ERR_ARG, "pi0_load: n_threads %d out of range 0..%d", ctx->params.n_threads, PI0_MAX_THREADS);
        goto fail;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int variant_given;
    if ((s = pi0_config_load(path, &ctx->cfg, &variant_given)) != PI0_OK) goto fail;
    if ((s = pi0_weights_bind(ctx, dir, variant_given)) != PI0_OK) goto fail;
    /* discrete_state_input: config.json's value when it has one, else the family's (openpi: = pi05). */
    ctx->discrete_state_given = ctx->cfg.discrete_state_input >= 0;
    if (!ctx->discrete_state_given) ctx->cfg.discrete_state_input = pi0_variant_get(ctx->cfg.variant)->discrete_state_input;
    if ((s = prepare_weights(ctx)) != PI0_OK) goto fail;
    *out = ctx;
    return PI0_OK;
fail:
    pi0_free(ctx);
    return s;
}

void pi0_free(pi0_ctx *ctx) {
    if (!ctx) return;
    const pi0_backend *be = pi0_backend_get(ctx->params.backend);
    if (be && be->release && ctx->matrices) be->release(ctx->matrices, ctx->n_matrices);
    pi0_st_file **files = ctx->files;
    for (int i = 0; i < ctx->n_files; i++) pi0_st_close(files[i]);
    free(files);
    for (int i = 0; i < ctx->n_owned; i++) free(ctx->owned[i]);
    free(ctx->owned);
    free(ctx->matrices);
    free(ctx->roles);
    free(ctx);
}

const pi0_config *pi0_config_of(const pi0_ctx *ctx) { return ctx ? &ctx->cfg : NULL; }

void pi0_param_count(const pi0_ctx *ctx, int64_t *n_params, int64_t *n_bytes) {
    if (n_params) *n_params = ctx ? ctx->n_params : 0;
    if (n_bytes) *n_bytes = ctx ? ctx->n_bytes : 0;
}

/* SplitMix64 (seeding) + xoshiro256** (stream) + Box-Muller in double: portable and documented. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t xoshiro(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

void pi0_noise_fill(float *x, size_t n, uint64_t seed) {
    uint64_t s[4], sm = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&sm);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(xoshiro(s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1]: log is finite */
        double u2 = (double)(xoshiro(s) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(2.0 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2.0 * M_PI * u2));
    }
}

static pi0_status check_obs(const pi0_config *c, const pi0_obs *o) {
    if (o->n_images < 1 || o->n_images > c->n_image_slots)
        return pi0_err(PI0_ERR_ARG, "obs.n_images = %d, expected 1..%d", o->n_images, c->n_image_slots);
    if (!o->images || !o->image_masks) return pi0_err(PI0_ERR_ARG, "obs.images or obs.image_masks is NULL");
    if (o->n_tokens < 1 || o->n_tokens > c->max_token_len)
        return pi0_err(PI0_ERR_ARG, "obs.n_tokens = %d, expected 1..%d (max_token_len)", o->n_tokens, c->max_token_len);
    if (!o->tokens || !o->token_masks) return pi0_err(PI0_ERR_ARG, "obs.tokens or obs.token_masks is NULL");
    for (int i = 0; i < o->n_tokens; i++)
        if (o->tokens[i] < 0 || o->tokens[i] >= c->vocab_size)
            return pi0_err(PI0_ERR_ARG, "obs.tokens[%d] = %d outside the vocabulary [0, %d)", i, o->tokens[i], c->vocab_size);
    if (o->state_dim < 0 || o->state_dim > c->action_dim)
        return pi0_err(PI0_ERR_ARG, "obs.state_dim = %d, expected 0..%d (action_dim)", o->state_dim, c->action_dim);
    if (o->state_dim > 0 && !o->state) return pi0_err(PI0_ERR_ARG, "obs.state is NULL with state_dim %d", o->state_dim);
    return PI0_OK;
}

/* Index of the first NaN/Inf in x[n], or n. Runs once per inference over the inputs (~0.5 M floats
 * at full size) and the 50 x 32 actions: well under a millisecond, outside the denoising loop. */
static size_t first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* Inputs that would turn into NaN actions are refused up front, naming the value. Every given image
 * slot is checked, masked or not: the reference path still multiplies masked rows by 0. */
static pi0_status check_finite_inputs(const pi0_config *c, const pi0_obs *o, const float *noise, const pi0_run_params *rp) {
    size_t S = (size_t)c->image_size, plane = S * S, n = (size_t)o->n_images * 3 * plane, i;
    if ((i = first_nonfinite(o->images, n)) < n)
        return pi0_err(PI0_ERR_ARG, "obs.images[%zu, %zu, %zu, %zu] = %g is not finite (image, channel, row, column)",
                       i / (3 * plane), i / plane % 3, i % plane / S, i % S, (double)o->images[i]);
    n = (size_t)o->state_dim;
    if (n && (i = first_nonfinite(o->state, n)) < n)
        return pi0_err(PI0_ERR_ARG, "obs.state[%zu] = %g is not finite", i, (double)o->state[i]);
    n = (size_t)c->action_horizon * c->action_dim;
    if (noise && (i = first_nonfinite(noise, n)) < n)
        return pi0_err(PI0_ERR_ARG, "noise[%zu, %zu] = %g is not finite (horizon step, action dim)", i / c->action_dim,
                       i % c->action_dim, (double)noise[i]);
    n = (size_t)(rp->n_steps ? rp->n_steps : c->n_steps);
    if (rp->timesteps && (i = first_nonfinite(rp->timesteps, n)) < n)
        return pi0_err(PI0_ERR_ARG, "run_params.timesteps[%zu] = %g is not finite", i, (double)rp->timesteps[i]);
    return PI0_OK;
}

pi0_status pi0_infer(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp, const float *noise, float *actions,
                     size_t n_actions) {
    pi0_err_clear();
    if (!st || !obs || !actions) return pi0_err(PI0_ERR_ARG, "pi0_infer: state, obs and actions must not be NULL");
    const pi0_config *c = &st->ctx->cfg;
    size_t want = (size_t)c->action_horizon * (size_t)c->action_dim;
    if (n_actions != want)
        return pi0_err(PI0_ERR_ARG, "pi0_infer: n_actions = %zu, expected H x A = %d x %d = %zu", n_actions,
                       c->action_horizon, c->action_dim, want);
    pi0_run_params defaults = pi0_run_params_default();
    if (!rp) rp = &defaults;
    if (rp->n_steps < 0 || rp->n_steps > PI0_MAX_STEPS)
        return pi0_err(PI0_ERR_ARG, "n_steps = %d, expected 0..%d", rp->n_steps, PI0_MAX_STEPS);
    pi0_status s = check_obs(c, obs);
    if (s == PI0_OK) s = check_finite_inputs(c, obs, noise, rp);
    if (s == PI0_OK) s = pi0_rtc_check(c, rp->rtc);
    if (s != PI0_OK) return s;
    if (!noise) {
        pi0_noise_fill(st->x_t, want, rp->seed);
        noise = st->x_t;
    }
    st->ex.status = PI0_OK;
    st->ex.abort_cb = rp->abort_cb;
    st->ex.abort_user = rp->abort_user;
    s = pi0_prefix_forward(st, obs, rp);
    if (s == PI0_OK) s = pi0_denoise(st, obs, rp, noise, actions);
    size_t bad;
    if (s == PI0_OK && (bad = first_nonfinite(actions, want)) < want)
        s = pi0_err(PI0_ERR_NONFINITE,
                    "actions[%zu, %zu] = %g: the model produced a non-finite value (NaN or Inf in the weights, or "
                    "inputs too large)", bad / c->action_dim, bad % c->action_dim, (double)actions[bad]);
    return s;
}
