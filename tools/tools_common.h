/* tools_common.h - helpers shared by the pi0 subcommands: loading with progress, number lists, case files
 * (model-level inputs in the test data's tensor names), writing actions, timing. */
#ifndef PI0_TOOLS_COMMON_H
#define PI0_TOOLS_COMMON_H

#include <stdint.h>

#include "opts.h"
#include "pi0.h"

/* pi0_params_default() and progress on when stderr is a terminal; the options of opt_load_options. */
tool_load_opts tool_load_defaults(void);
pi0_status tool_load(const char *dir, const tool_load_opts *o, pi0_ctx **ctx);

double tool_now(void);
/* Comma-separated numbers (each as opt_parse_double); 0 ok, -1 bad syntax or more than cap. */
int tool_parse_floats(const char *s, double *out, int cap, int *n);

/* Model-level inputs from a safetensors file: images [1, N, C, S, S], image_masks [1, N],
 * tokens / token_masks [1, L], state [1, D] (optional), noise [1, H, A] (optional), num_steps [1]
 * (optional). Shapes are checked against the config; errors name the file and tensor. */
typedef struct {
    pi0_obs obs;
    float *images, *state, *noise;
    int32_t *image_masks, *tokens, *token_masks;
    int n_steps; /* 0 = not given */
} case_file;
pi0_status tool_case_read(const char *path, const pi0_config *c, case_file *cf);
void tool_case_free(case_file *cf);

/* Write actions [rows, cols] to .safetensors ("actions", [1, rows, cols] if batch_dim else
 * [rows, cols]), .json ({"actions": [[...], ...]}) or .npy (float32). Prints errors; 0 ok. */
int tool_write_actions(const char *path, const float *a, int rows, int cols, int batch_dim);

#endif
