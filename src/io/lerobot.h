/* lerobot.h - LeRobot π0 / π0.5 checkpoints: the inputs and outputs config.json declares, and the
 * normalization the processor sidecar files hold (lerobot v0.6.1: configs/policies.py,
 * policies/pi0{,5}/configuration_*.py and processor_*.py, processor/normalize_processor.py,
 * processor/pipeline.py).
 *
 * A directory is a LeRobot checkpoint when config.json has an "input_features" or "output_features"
 * object. What is read:
 *   config.json    input_features  {"observation.images.<cam>": {"type": "VISUAL", "shape": [3,H,W]},
 *                                   "observation.state": {"type": "STATE", "shape": [D]}} (order = camera
 *                                   order), output_features {"action": {"type": "ACTION", "shape": [A]}},
 *                  empty_cameras (extra always-masked cameras), chunk_size, n_action_steps,
 *                  max_state_dim, max_action_dim, normalization_mapping, use_relative_actions.
 *   policy_preprocessor.json   steps[]: {"registry_name", "config", "state_file"}; the step
 *                  "normalizer_processor" (config: eps, features, norm_map, normalize_observation_keys)
 *                  normalizes observation.state; "rename_observations_processor" (rename_map) adds
 *                  accepted input names; "relative_actions_processor" (enabled, exclude_joints,
 *                  action_names) makes chosen action dims relative to the raw state.
 *   policy_postprocessor.json  the "unnormalizer_processor" step un-normalizes "action".
 *   <state_file>.safetensors   flat tensors "<feature>.<stat>" (mean, std, min, max, q01, q99, q10,
 *                  q90, ...; any numeric dtype, converted to float32 as LeRobot's load_state_dict does).
 * Modes, with LeRobot's exact float32 expressions (eps from the step config, 1e-8 by default):
 *   MEAN_STD    y = (x - mean) / (std + eps)              x = y * std + mean
 *   MIN_MAX     d = max - min, eps where d == 0           y = 2 (x - min) / d - 1     x = (y + 1) / 2 * d + min
 *   QUANTILES   d = q99 - q01, eps where d == 0           y = 2 (x - q01) / d - 1     x = (y + 1) d / 2 + q01
 *   QUANTILE10  as QUANTILES with q10 / q90
 *   IDENTITY    unchanged; also when the file has no stats for the feature (LeRobot returns the input)
 * A constant feature (std 0, max == min, q99 == q01) is handled exactly as above (LeRobot divides by
 * eps) and logged once, naming the feature and its first constant dim.
 * Errors (file and key named): missing or malformed JSON, a step without "config", a state_file
 * that is missing or not valid safetensors, a stat of the wrong length, a needed stat that is
 * absent, NaN or infinite, a negative std, an unknown mode.
 */
#ifndef PI0_LEROBOT_H
#define PI0_LEROBOT_H

#include "pi0.h"

#define PI0_LR_MAX_CAMS 8
#define PI0_LR_MAX_DIMS 64
#define PI0_LR_MAX_RENAMES 16

/* PI0_LR_MIN_MAX_OLD: lerobot <= 0.3 (policies/normalize.py): y = (x - min) / (max - min + eps) * 2 - 1,
 * x = (y + 1) / 2 * (max - min) + min. Values are append-only. */
typedef enum { PI0_LR_IDENTITY = 0, PI0_LR_MEAN_STD, PI0_LR_MIN_MAX, PI0_LR_QUANTILES, PI0_LR_QUANTILE10,
               PI0_LR_MIN_MAX_OLD } pi0_lr_mode;

/* How one feature is (un)normalized: mode and its two stats (mean/std, min/max, q01/q99, q10/q90). */
typedef struct pi0_lr_norm {
    int mode;          /* pi0_lr_mode; IDENTITY when no stats apply */
    int n;             /* stat length (0 for IDENTITY) */
    float *a, *b;      /* [n] */
    float eps;
} pi0_lr_norm;

typedef struct pi0_lerobot {
    char *dir;
    int n_cams;                          /* declared cameras + empty_cameras, in model order */
    char *cams[PI0_LR_MAX_CAMS];         /* full keys "observation.images.<cam>" */
    int state_dim;                       /* input_features observation.state shape[0]; 0 = absent */
    int action_dim;                      /* output_features action shape[0] (0 = absent: max_action_dim) */
    int chunk_size, n_action_steps, max_state_dim, max_action_dim;
    int n_renames;                       /* rename_map of the preprocessor: from -> to */
    char *rename_from[PI0_LR_MAX_RENAMES], *rename_to[PI0_LR_MAX_RENAMES];
    pi0_lr_norm state_norm, action_unnorm;
    pi0_lr_norm cam_norm[PI0_LR_MAX_CAMS];  /* VISUAL normalization per camera (usually IDENTITY); stats per channel */
    int relative;                        /* relative_actions_processor enabled */
    int n_rel;                           /* length of rel_mask (action dims) */
    unsigned char rel_mask[PI0_LR_MAX_DIMS];
    int has_stats;                       /* any non-identity normalization */
    int old_layout;                      /* lerobot <= 0.3 (no processor files, config has resize_imgs_with_padding):
                                            stats in model.safetensors buffers, images padded left/top, no clamp */
    int old_modes[3];                    /* its normalization_mapping: VISUAL, STATE, ACTION (pi0_lr_mode) */
} pi0_lerobot;

/* 1 if dir/config.json declares LeRobot input/output features (0 on any read problem). */
int pi0_lerobot_is_checkpoint(const char *dir);

/* Read config.json and the processor files of a LeRobot checkpoint. `model_action_dim` is the
 * model's padded width (max_action_dim) used when output_features has no action. On error nothing
 * is allocated. Logs once when no statistics exist (identity normalization). */
pi0_status pi0_lerobot_load(const char *dir, int model_action_dim, pi0_lerobot **out);
void pi0_lerobot_free(pi0_lerobot *lr);

/* Normalize (inverse = 0) or un-normalize (inverse = 1) x[d] in place with n's mode. d must equal
 * n->n unless the mode is IDENTITY (LeRobot broadcasting would fail otherwise); `what` names the
 * feature in the error. */
pi0_status pi0_lr_apply(const pi0_lr_norm *n, int inverse, const char *what, float *x, int d);

/* lerobot <= 0.3: read normalize_inputs.buffer_* / unnormalize_outputs.buffer_* from the weights
 * (lerobot_old.c). Called by pi0_lerobot_load when no processor file exists. */
pi0_status pi0_lerobot_load_old_stats(pi0_lerobot *lr);

/* Normalize count values x that all belong to channel/dim c (an image plane), same formulas. */
void pi0_lr_apply_dim(const pi0_lr_norm *n, int c, float *x, size_t count);
void pi0_lr_norm_free(pi0_lr_norm *n);

#endif
