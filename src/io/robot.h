/* robot.h - robot presets: openpi's per-robot input and output transforms (PI0_IO.md §4.4,
 * PI0_MODEL.md §7.2, §7.6) on flattened observation arrays.
 *
 * Presets (the name given in pi0_policy_params.robot):
 *   raw        "base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb" (uint8/float, HWC or CHW; an absent
 *              camera is an empty slot, at least one is required) and "state" (optional); outputs all
 *              model action dims; no delta actions.
 *   libero     "observation/image" -> base, "observation/wrist_image" -> left wrist, right empty;
 *              "observation/state" [8]; outputs 7 dims; delta dims 0-5 for π0 (pi0_libero), none for π0.5.
 *   droid      "observation/exterior_image_1_left" -> base, "observation/wrist_image_left" -> left, right
 *              empty; state = "observation/joint_position" [7] ++ "observation/gripper_position" [1]
 *              (0-d promoted); outputs 8 dims; no delta actions.
 *   aloha      "images/cam_high" (required) -> base, "images/cam_left_wrist" -> left,
 *              "images/cam_right_wrist" -> right, "images/cam_low" accepted and ignored, any other
 *              "images/..." key is an error; "state" [14] converted by adapt_to_pi; outputs 14 dims
 *              converted back; delta dims 0-5 and 7-12.
 *   aloha_sim  aloha without delta actions (pi0_aloha_sim).
 *   lerobot    built from a LeRobot checkpoint (pi0_robot_init_lerobot): its cameras in config.json order,
 *              each accepted as "observation.images.<cam>", "<cam>" or a preprocessor rename_map source
 *              (an absent camera is masked; at least one is required); "observation.state" or "state";
 *              float images are kept as floats ([0, 1], LeRobot's convention); outputs all model dims
 *              (the policy slices them to the checkpoint's action dim).
 * Keys other than those a preset reads are ignored (openpi ignores extra keys). Missing required
 * keys, wrong shapes and duplicate keys are errors naming the key.
 */
#ifndef PI0_ROBOT_H
#define PI0_ROBOT_H

#include "io/image.h"
#include "pi0_policy.h"

#define PI0_ROBOT_SLOTS 8          /* camera slots: openpi presets use 3 (base, left wrist, right wrist) */
#define PI0_ROBOT_MAX_DIMS 64      /* state / action dims handled by the transforms */

typedef enum { PI0_ROBOT_RAW = 0, PI0_ROBOT_LIBERO, PI0_ROBOT_DROID, PI0_ROBOT_ALOHA, PI0_ROBOT_LEROBOT } pi0_robot_kind;

struct pi0_lerobot;

typedef struct {
    const char *name;               /* static string */
    int kind;                       /* pi0_robot_kind */
    int n_out;                      /* action dims returned; 0 = all model dims */
    int n_delta;                    /* length of the delta mask (0 = no delta actions) */
    uint8_t delta[PI0_ROBOT_MAX_DIMS]; /* 1: action dim i is relative to state dim i */
    int aloha_adapt;                /* ALOHA adapt_to_pi state / action conversion */
    int state_required;
    const struct pi0_lerobot *lr;   /* lerobot preset: the checkpoint description (not owned) */
} pi0_robot;

/* Robot inputs after the preset transform: RGB uint8 images (data NULL = empty slot, mask 0) and
 * the robot state (unpadded, not normalized), in double. The lerobot preset keeps float images as
 * fimg [h, w, 3] (img.h / img.w set, img.data NULL). */
typedef struct {
    pi0_image img[PI0_ROBOT_SLOTS];
    float *fimg[PI0_ROBOT_SLOTS];
    int cam[PI0_ROBOT_SLOTS];       /* lerobot preset: index of the declared camera in each slot */
    int mask[PI0_ROBOT_SLOTS];
    int state_dim;                  /* 0 = no state given (raw preset only) */
    double state[PI0_ROBOT_MAX_DIMS];
    const pi0_image_budget *budget; /* decoding budget of encoded images (NULL: defaults); set by
                                     * pi0_robot_inputs_budget, used only during that call */
} pi0_robot_input;

/* Fill *out for preset `name` (NULL = "raw"); `variant` is pi0_variant (libero's delta mask depends
 * on it). Unknown names fail with the list of presets. */
pi0_status pi0_robot_init(const char *name, int variant, pi0_robot *out);

/* The lerobot preset for a loaded checkpoint description (lr must outlive *out). */
pi0_status pi0_robot_init_lerobot(const struct pi0_lerobot *lr, pi0_robot *out);

/* Apply the preset's input transform. On error `in` holds no allocations. */
pi0_status pi0_robot_inputs(const pi0_robot *r, const pi0_array *arrays, int n_arrays, pi0_robot_input *in);
/* The same, decoding encoded (PNG/JPEG bytes) images under `budget` (NULL: defaults). */
pi0_status pi0_robot_inputs_budget(const pi0_robot *r, const pi0_array *arrays, int n_arrays,
                                   const pi0_image_budget *budget, pi0_robot_input *in);
void pi0_robot_input_free(pi0_robot_input *in);   /* NULL-safe */

/* AbsoluteActions: actions[h, i] += state[i] for the delta dims (i < n_delta, i < a, i < state_dim).
 * actions: [h, a]; state: the un-normalized echoed state. */
void pi0_robot_absolute(const pi0_robot *r, double *actions, int h, int a, const double *state, int state_dim);

/* Output transform: keep the preset's dims (ALOHA: converted back to its joint conventions) and
 * write [h, *cols] floats into out (capacity h * a). Fails if the model has fewer dims than the
 * preset returns. */
pi0_status pi0_robot_outputs(const pi0_robot *r, const double *actions, int h, int a, float *out, int *cols);

/* Inverse of pi0_robot_outputs: in [h, cols] robot actions -> out [h, a] model dims (double, not
 * normalized, still absolute); dims from cols on are 0. */
void pi0_robot_outputs_inv(const pi0_robot *r, const float *in, int h, int cols, int a, double *out);

/* Read a numeric array (any dtype of pi0_array_dtype) as doubles: x[n] with n = number of elements
 * (ndim 0 or 1 only). Errors name the key. */
pi0_status pi0_array_to_f64(const pi0_array *a, double *x, int cap, int *n);

/* ALOHA adapt_to_pi helpers (openpi aloha_policy.py), exposed for tests. */
double pi0_aloha_gripper_to_angular(double v);
double pi0_aloha_gripper_from_angular(double v);

#endif
