/* pi0.h - pi0c: C11 inference for the π0 / π0.5 vision-language-action policies.
 *
 * Usage (model-level inputs; see pi0_policy_* further down for camera images, text and raw state):
 *
 *     pi0_params p = pi0_params_default();           // fast backend, all cores
 *     pi0_ctx *ctx;  pi0_state *st;
 *     if (pi0_load("ckpt_dir", &p, &ctx) != PI0_OK) { fprintf(stderr, "%s\n", pi0_last_error()); ... }
 *     if (pi0_state_new(ctx, &st) != PI0_OK) { ... }
 *     const pi0_config *cfg = pi0_config_of(ctx);
 *     pi0_obs obs = {.n_images = 3, .images = img, .image_masks = img_mask,
 *                    .n_tokens = 48, .tokens = ids, .token_masks = id_mask,
 *                    .state_dim = 32, .state = state};
 *     pi0_run_params rp = pi0_run_params_default();   // config's step count, seed 0
 *     float *act = malloc(sizeof(float) * cfg->action_horizon * cfg->action_dim);
 *     pi0_status s = pi0_infer(st, &obs, &rp, NULL, act, cfg->action_horizon * cfg->action_dim);
 *     pi0_state_free(st);  pi0_free(ctx);
 *
 * Thread safety: a pi0_ctx is read-only after pi0_load and may be shared by any number of threads;
 * a pi0_state is used by one thread at a time (each state owns its thread pool and buffers).
 * pi0_last_error() is thread-local. pi0_log_set() is global: call it before other threads start.
 *
 * Errors: every call that can fail returns a pi0_status; the detailed message (naming the file,
 * tensor, field or byte offset at fault) is returned by pi0_last_error(). The library never exits,
 * aborts or writes to stdout because of its input.
 */
#ifndef PI0_H
#define PI0_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PI0_BUILD) && defined(__GNUC__)
#define PI0_API __attribute__((visibility("default")))
#else
#define PI0_API
#endif

/* ---- status and errors ------------------------------------------------------------------- */

typedef enum {
    PI0_OK = 0,
    PI0_ERR_ARG = 1,         /* a bad argument or input array (shape, value, NULL) */
    PI0_ERR_IO = 2,          /* a file could not be opened, read or mapped */
    PI0_ERR_FORMAT = 3,      /* a file's contents are malformed (safetensors, JSON, tokenizer) */
    PI0_ERR_NOMEM = 4,       /* an allocation failed */
    PI0_ERR_UNSUPPORTED = 5, /* valid but not supported (dtype, variant, strict-mode fallback) */
    PI0_ERR_ABORTED = 6,     /* the abort callback asked to stop */
    PI0_ERR_INTERNAL = 7,    /* a bug: please report it with pi0_last_error() */
    PI0_ERR_NONFINITE = 8    /* the model produced NaN or Inf (bad weights or extreme inputs); the
                              * output must not be used; the message names the first bad value */
} pi0_status;                /* values are append-only */

/* Detailed message of the last failed call on this thread. Library-owned; valid until the next
 * pi0_ call on this thread. Never NULL ("" when there was no error). */
PI0_API const char *pi0_last_error(void);
/* Static string naming a status code. */
PI0_API const char *pi0_status_str(pi0_status s);

typedef enum { PI0_LOG_DEBUG = 0, PI0_LOG_INFO = 1, PI0_LOG_WARN = 2, PI0_LOG_ERROR = 3 } pi0_log_level;
typedef void (*pi0_log_fn)(pi0_log_level level, const char *msg, void *user);
/* Route library log lines (warnings such as unknown tensors) to fn; NULL restores the default,
 * which writes info and above to stderr. */
PI0_API void pi0_log_set(pi0_log_fn fn, void *user);

/* ---- load-time parameters ------------------------------------------------------------------ */

typedef enum { PI0_BACKEND_FAST = 0, PI0_BACKEND_REF = 1 } pi0_backend_kind;
/* What the fast path packs the matmul weights into at load (from the checkpoint's F32/BF16/F16):
 *   BF16  every matrix in bf16 (exact for a bf16 checkpoint);
 *   F32   every matrix in float32 (the kernels alone, no rounding of the weights);
 *   INT8  the VLM's and the action expert's linear layers (q/k/v/o, gate/up, down) quantized to int8,
 *         symmetric per output channel, activations quantized per token at run time; everything else
 *         (vision tower, projector, action/state projections, time MLPs, π0.5 adaptive-norm layers)
 *         packed bf16 (the SigLIP encoder's linear layers int8 too with pi0_params.int8_vision); the
 *         token embedding is always read as stored. Accuracy: pi0 check --weights int8.
 * The reference backend ignores the kind: it always reads the stored weights in float32. */
typedef enum { PI0_WEIGHTS_BF16 = 0, PI0_WEIGHTS_F32 = 1, PI0_WEIGHTS_INT8 = 2 } pi0_weight_kind;

/* Limits checked by pi0_load (n_threads) and pi0_infer / config.json (n_steps); the pi0 command's
 * options use the same ones. */
#define PI0_MAX_THREADS 1024
#define PI0_MAX_STEPS 10000

typedef struct {
    int n_threads;    /* worker threads per state; 0 = the CPUs this process may use (affinity);
                         at most PI0_MAX_THREADS */
    int backend;      /* pi0_backend_kind: FAST (optimized kernels) or REF (float32 oracle) */
    int strict;       /* 1: any op that would fall back from fast to ref fails with UNSUPPORTED */
    int weights;      /* pi0_weight_kind: what the fast path packs weights into at load (BF16, F32, INT8;
                         ignored by the reference backend) */
    int int8_vision;  /* 1, with weights = INT8 only (else pi0_load fails with PI0_ERR_ARG): the SigLIP
                         encoder's linear layers (q/k/v/o, fc1, fc2) are int8 too (patch embedding and
                         projector stay bf16). Less safe: the vision tower is the part published int8
                         work found sensitive; check your checkpoint with pi0 check --weights int8
                         --int8-vision. 0 (default): the vision tower stays bf16 */
    /* Called during pi0_load with the fraction done (0..1) and what is happening; may be NULL. */
    void (*progress)(float fraction, const char *what, void *user);
    void *progress_user;
} pi0_params;

/* Defaults: n_threads 0 (the CPUs in the affinity mask), backend FAST, strict 0, weights BF16, int8_vision 0,
 * no progress. */
PI0_API pi0_params pi0_params_default(void);

/* ---- model ------------------------------------------------------------------------------- */

typedef enum { PI0_VARIANT_PI0 = 0, PI0_VARIANT_PI05 = 1 } pi0_variant;

/* Model dimensions, read from config.json (π0 defaults for absent fields) and checked against the
 * tensors. Read-only; owned by the context. */
typedef struct {
    int variant;               /* pi0_variant */
    int action_dim;            /* model action/state width (32) */
    int action_horizon;        /* H (50) */
    int max_token_len;         /* L (48 for π0, 200 for π0.5) */
    int n_steps;               /* default denoising steps (10) */
    int discrete_state_input;  /* π0.5: state is written into the prompt (config.json's field, else 1
                                  for π0.5; pi0_policy_params can override it per robot) */
    int n_image_slots;         /* camera slots in the prefix (3) */
    int image_size, patch_size, n_channels;        /* 224, 14, 3 */
    int vision_width, vision_depth, vision_mlp_dim, vision_heads;  /* 1152, 27, 4304, 16 */
    int vocab_size;            /* 257152 */
    int vlm_width, vlm_depth, vlm_mlp_dim;         /* 2048, 18, 16384 */
    int expert_width, expert_depth, expert_mlp_dim;/* 1024, 18, 4096 */
    int n_heads, n_kv_heads, head_dim;             /* 8, 1, 256 (shared by both experts) */
    float rms_eps, ln_eps, rope_base;              /* 1e-6, 1e-6, 10000 */
    double time_min_period, time_max_period;       /* 0.004, 4.0 (double: they scale phases of ~1e3 rad) */
    int rtc_training_max_delay; /* trained with clean action prefixes of up to this many rows (LeRobot
                                   PI05Config field of the same name; 0 = not trained for it): the
                                   largest delay of PI0_RTC_TRAINED */
} pi0_config;

typedef struct pi0_ctx pi0_ctx;     /* weights + config; read-only after load, shareable */
typedef struct pi0_state pi0_state; /* per-inference buffers, KV cache, thread pool */

/* Load a checkpoint directory (config.json + model.safetensors, or shards listed in
 * model.safetensors.index.json). p may be NULL for defaults. On error *out is NULL. */
PI0_API pi0_status pi0_load(const char *dir, const pi0_params *p, pi0_ctx **out);
/* Free a context (NULL is a no-op). All its states must be freed first. */
PI0_API void pi0_free(pi0_ctx *ctx);
/* The loaded configuration; valid as long as ctx. */
PI0_API const pi0_config *pi0_config_of(const pi0_ctx *ctx);
/* Number of parameters (elements) bound from the checkpoint, and their bytes on disk. */
PI0_API void pi0_param_count(const pi0_ctx *ctx, int64_t *n_params, int64_t *n_bytes);
/* Where a model of this config takes the robot state:
 *   PI0_STATE_TOKEN      as a suffix token, from pi0_obs.state (π0);
 *   PI0_STATE_IN_PROMPT  discretized into the prompt text before tokenizing (π0.5 with
 *                        discrete_state_input; pi0_policy does it), pi0_obs.state unused;
 *   PI0_STATE_UNUSED     not at all (π0.5 without discrete_state_input). */
typedef enum { PI0_STATE_UNUSED = 0, PI0_STATE_TOKEN = 1, PI0_STATE_IN_PROMPT = 2 } pi0_state_input;
PI0_API pi0_state_input pi0_config_state_input(const pi0_config *c);

/* Allocate all per-inference buffers (sized for the configured maxima) and the thread pool. */
PI0_API pi0_status pi0_state_new(pi0_ctx *ctx, pi0_state **out);
PI0_API void pi0_state_free(pi0_state *st);

/* ---- model-level inference ------------------------------------------------------------------ */

/* Model-level observation, batch size 1. Arrays are caller-owned and only read during the call. */
typedef struct {
    int n_images;               /* image slots given, 1..n_image_slots, in prefix order */
    const float *images;        /* [n_images, 3, S, S], CHW, RGB, values in [-1, 1] */
    const int32_t *image_masks; /* [n_images]: 1 = camera present, 0 = empty slot */
    int n_tokens;               /* prompt length L, 1..max_token_len */
    const int32_t *tokens;      /* [L] token ids (0 in padding) */
    const int32_t *token_masks; /* [L] 1 = real token */
    int state_dim;              /* <= action_dim; zero-padded to action_dim. 0 unless PI0_STATE_TOKEN */
    const float *state;         /* [state_dim] normalized robot state (used only with PI0_STATE_TOKEN:
                                 * pi0_config_state_input; may be NULL otherwise) */
} pi0_obs;

/* The model's stages, in the order one inference runs them: the vision tower (SigLIP and the
 * projector), the prefix (token embedding and the VLM pass that fills the KV cache) and the
 * denoising loop (suffix embedding, action expert, Euler steps; π0's cached state token and RTC's
 * set-up run in it before step 0). Each tapped intermediate carries its stage and step, so a caller
 * finds stage boundaries without reading names. */
typedef enum { PI0_STAGE_VISION = 0, PI0_STAGE_PREFIX = 1, PI0_STAGE_DENOISE = 2 } pi0_stage;
#define PI0_STAGE_COUNT 3

/* A named intermediate handed to the tap callback. Names (sNN = step, LNN = layer):
 *   vision.imgK.out [T, Dv] (after post-LN), vision.imgK.proj [T, W], prefix.embs [P, W],
 *   prefix.k.LNN / prefix.v.LNN [P, hd] (K after RoPE), prefix.hidden_final [P, W] (ref only),
 *   denoise.sNN.time_emb [We], denoise.sNN.cond [We] (π0.5), denoise.sNN.suffix_embs [Ns, We],
 *   denoise.sNN.expert.LNN [Ns, We], denoise.sNN.expert_out [Ns, We], denoise.sNN.v [H, A],
 *   denoise.sNN.x [H, A] (x after the step).
 * Prefix tensors may hold only the valid tokens (the fast path drops masked ones): `rows` then gives
 * each row's index in the full prefix [images..., tokens...]; NULL means rows are that index.
 * Suffix tensors: rows are suffix token indices starting at `row0` (π0 fast path caches the state
 * token, so its per-step tensors start at suffix row 1). Data is valid only during the callback. */
typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[4];
    const int32_t *rows;
    int row0;
    pi0_stage stage;            /* the stage that produced it */
    int step;                   /* denoising step (the sNN of the name); -1 outside a step */
} pi0_tensor_view;
typedef void (*pi0_tap_fn)(const pi0_tensor_view *t, void *user);

typedef struct pi0_rtc_params pi0_rtc_params; /* real-time chunking, defined below */

typedef struct {
    int n_steps;              /* denoising steps; 0 = the config's default */
    uint64_t seed;            /* noise seed, used when noise == NULL (see pi0_noise_fill) */
    int (*abort_cb)(void *user); /* checked between ops; non-zero -> PI0_ERR_ABORTED */
    void *abort_user;
    pi0_tap_fn tap;           /* named intermediates; NULL = none (no cost) */
    void *tap_user;
    /* Optional time grid: the t of each of the n_steps steps (descending, t[0] = 1); step k moves
     * x by (t[k+1] - t[k])·v with t[n_steps] = 0. NULL (default) = openpi's grid: dt = -1/n_steps
     * in float32, t = 1, then t += dt while t >= -dt/2. Other implementations use other grids
     * (tt-metal: float32 linspace(1, 0, n+1); LeRobot: 1 + k·dt); this reproduces them exactly. */
    const float *timesteps;
    /* Real-time chunking (see pi0_rtc_params below): NULL (default) = off, bit-identical to a run
     * without it. Read only during the call. */
    const pi0_rtc_params *rtc;
} pi0_run_params;

PI0_API pi0_run_params pi0_run_params_default(void);

/* ---- real-time chunking (RTC) ---------------------------------------------------------------- */

/* A robot executes one chunk while the next is computed. RTC (Black et al. 2025, "Real-Time
 * Execution of Action Chunking Flow Policies") makes the new chunk continue the actions the robot
 * is committed to: the previous chunk's not-yet-executed tail Y guides the denoising. Indices: the
 * new chunk's row 0 is the action due when the observation was taken; the robot will still execute
 * the old rows 0..d-1 (d = inference delay, in control steps) while this call runs, and it had
 * executed s rows of the previous chunk (s = execution horizon) when the observation was taken, so
 * Y = previous_chunk[s:H] (H - s rows). Prefix weights W[h] over rows: 1 for h < d, decaying by
 * `schedule` for d <= h < H - s, 0 from H - s on (LeRobot / Physical-Intelligence kinetix
 * get_prefix_weights with start = d, end = H - s).
 *
 * At each Euler step (openpi time t from 1 to 0, x <- x + dt·v with dt < 0), with tau = 1 - t:
 *   Â = x - t·v            (the denoised chunk the step predicts)
 *   e = W ⊙ (Y - Â)
 *   g = min(beta, ((1-tau)² + tau²) / (tau·(1-tau)))   (beta at t = 1, 0 at t = 0, as LeRobot)
 *   v <- v - g·c            with c = e (GUIDED: identity Jacobian, what LeRobot computes, no extra
 *                           cost) or c = J·e ≈ (Â(x + εe) - Â(x)) / ε (GUIDED_FD: one more expert
 *                           pass per step; J = dÂ/dx, the paper uses Jᵀe; c is scaled to |c| <= |e|)
 * Since dt < 0, subtracting g·c moves x towards Y.
 *
 * TRAINED (training-time RTC, arXiv 2512.05964; LeRobot PI05Config.rtc_training_max_delay): for π0.5
 * checkpoints trained with clean action prefixes (pi0_config.rtc_training_max_delay > 0, else
 * PI0_ERR_UNSUPPORTED, as for π0). No guidance: the first d rows of x are set to Y before and after
 * every Euler step and their time is 0 (per-row time embedding, time MLP and adaptive-norm
 * modulations), the other rows get the step's time; so actions[0..d-1] = Y exactly.
 * d <= rtc_training_max_delay; schedule, max_guidance and fd_step are not used; d = 0 is no RTC. */
typedef enum { PI0_RTC_GUIDED = 0, PI0_RTC_GUIDED_FD = 1, PI0_RTC_TRAINED = 2 } pi0_rtc_mode;
typedef enum { PI0_RTC_LINEAR = 0, PI0_RTC_EXP = 1, PI0_RTC_ONES = 2, PI0_RTC_ZEROS = 3 } pi0_rtc_schedule;

struct pi0_rtc_params {
    int mode;                  /* pi0_rtc_mode */
    int schedule;              /* pi0_rtc_schedule of the prefix weights */
    float max_guidance;        /* beta > 0 */
    int delay;                 /* d: 0 <= d <= s (TRAINED: also d <= rtc_training_max_delay) */
    int horizon;               /* s: d <= s <= H - d */
    /* Y: [n_prev, prev_dim], H - s <= n_prev <= H (rows from H - s on have weight 0). pi0_infer:
     * normalized model units, columns beyond prev_dim (<= action_dim) taken as 0 like padded actions.
     * pi0_policy_infer: robot units, prev_dim = the robot's action columns (as it returned them);
     * the policy converts them to model units (and re-anchors delta actions to the new state). */
    const float *prev_actions;
    int n_prev;
    int prev_dim;
    float fd_step;             /* GUIDED_FD: largest |x| change of the probe, ε·max|e|; 0 = default */
};

/* Defaults: GUIDED, LINEAR (LeRobot's RTCConfig defaults), max_guidance 10, delay 0, horizon 0,
 * no prev_actions (must be set), fd_step 0 (= 0.01). */
PI0_API pi0_rtc_params pi0_rtc_params_default(void);

/* Fill x[n] with standard normal samples from `seed`: SplitMix64 seeds a xoshiro256** stream,
 * two 53-bit uniforms give two values by Box-Muller (double), rounded to float. Deterministic on
 * every platform. */
PI0_API void pi0_noise_fill(float *x, size_t n, uint64_t seed);

/* Sample one action chunk. noise: [H, action_dim] starting point at t = 1, or NULL to draw it from
 * rp->seed. actions: [H, action_dim] output (normalized model units), n_actions must equal
 * H * action_dim. rp may be NULL for defaults.
 * Finite guarantee: images, state, noise and timesteps holding NaN or Inf fail with PI0_ERR_ARG,
 * and an output holding NaN or Inf fails with PI0_ERR_NONFINITE; both messages name the first bad
 * value (tensor and index). PI0_OK always means every action is finite. */
PI0_API pi0_status pi0_infer(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp,
                             const float *noise, float *actions, size_t n_actions);

#ifdef __cplusplus
}
#endif
#endif
