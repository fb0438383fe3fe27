/* pi0_policy.h - robot-level inference: camera images, a text prompt and the raw robot state in,
 * robot-unit actions out, with openpi's transforms (resize-with-pad, tokenizer, normalization,
 * robot presets) done in C. Built on pi0.h; same error and threading rules (a policy is used by one
 * thread at a time; it owns one pi0_state).
 *
 *     pi0_policy_params pp = pi0_policy_params_default();
 *     pp.robot = "libero";                      // raw | aloha | droid | libero
 *     pi0_policy *pol;
 *     if (pi0_policy_new(ctx, "ckpt_dir", &pp, &pol) != PI0_OK) { ... pi0_last_error() ... }
 *     pi0_array in[3] = {
 *         {"observation/image", PI0_ARR_U8, 3, {224, 224, 3}, img},
 *         {"observation/wrist_image", PI0_ARR_U8, 3, {224, 224, 3}, wrist},
 *         {"observation/state", PI0_ARR_F64, 1, {8}, state}};
 *     pi0_robot_obs obs = {.n_arrays = 3, .arrays = in, .prompt = "pick up the bowl"};
 *     pi0_actions act;                          // rows x cols, library-owned until the next call
 *     pi0_policy_infer(pol, &obs, NULL, &act);
 */
#ifndef PI0_POLICY_H
#define PI0_POLICY_H

#include "pi0.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PI0_ARR_U8 = 0, PI0_ARR_F32 = 1, PI0_ARR_F64 = 2, PI0_ARR_I32 = 3, PI0_ARR_I64 = 4,
    PI0_ARR_BOOL = 5, PI0_ARR_F16 = 6, PI0_ARR_I8 = 7, PI0_ARR_I16 = 8, PI0_ARR_U16 = 9,
    PI0_ARR_U32 = 10, PI0_ARR_U64 = 11
} pi0_array_dtype;

/* A named, caller-owned, C-order little-endian array (an observation entry). Nested maps such as
 * ALOHA's "images" are flattened with '/': "images/cam_high". */
typedef struct {
    const char *key;
    int dtype;          /* pi0_array_dtype */
    int ndim;           /* 0..4 */
    int64_t shape[4];
    const void *data;
} pi0_array;

typedef struct {
    int n_arrays;
    const pi0_array *arrays;
    const char *prompt; /* UTF-8; NULL = the policy's default prompt */
} pi0_robot_obs;

typedef struct {
    const char *robot;           /* "raw" (default), "aloha", "droid", "libero". With "raw" and a LeRobot
                                    checkpoint dir (config.json input_features), the checkpoint's own
                                    cameras, state and processor statistics are used (README "LeRobot
                                    checkpoints"); norm_stats_path must then be NULL */
    const char *tokenizer_path;  /* NULL: searched in the checkpoint, the Hugging Face cache, the openpi
                                    cache (README "Using a real checkpoint") */
    const char *norm_stats_path; /* NULL: <ckpt>/norm_stats.json or the one <ckpt>/assets/.../norm_stats.json */
    const char *asset_id;        /* NULL, or use <ckpt>/assets/<asset_id>/norm_stats.json (e.g.
                                    "physical-intelligence/libero") when there are several */
    const char *default_prompt;  /* used when obs->prompt is NULL; may be NULL */
    int require_norm_stats;      /* 1 (default): fail when no stats are found; 0: identity */
    int discrete_state_input;    /* π0.5 only. -1 (default): config.json's value when it has the field,
                                    else the robot preset's openpi training config (libero 0), else 1;
                                    0 or 1: forced */
} pi0_policy_params;

typedef struct {
    int rows, cols;     /* H x robot action dims */
    const float *data;  /* [rows, cols], library-owned, valid until the next call on this policy */
    double infer_ms;    /* time in pi0_infer (the model) */
    double total_ms;    /* whole call including transforms */
} pi0_actions;

typedef struct pi0_policy pi0_policy;

PI0_API pi0_policy_params pi0_policy_params_default(void);
/* ckpt_dir is where the tokenizer and norm stats are looked for when their paths are NULL. */
PI0_API pi0_status pi0_policy_new(pi0_ctx *ctx, const char *ckpt_dir, const pi0_policy_params *pp,
                                  pi0_policy **out);
PI0_API void pi0_policy_free(pi0_policy *pol);
/* Run the whole observation -> action path. rp may be NULL (defaults); noise comes from rp->seed. */
PI0_API pi0_status pi0_policy_infer(pi0_policy *pol, const pi0_robot_obs *obs,
                                    const pi0_run_params *rp, pi0_actions *out);
/* Metadata map the server sends on connect, as a JSON object string (policy-owned; "{}" default). */
PI0_API const char *pi0_policy_metadata_json(const pi0_policy *pol);

#ifdef __cplusplus
}
#endif
#endif
