/* tools_common.h - helpers shared by the pi0 subcommands: load options, number parsing, case files
 * (model-level inputs in the test data's tensor names), writing actions, timing. */
#ifndef PI0_TOOLS_COMMON_H
#define PI0_TOOLS_COMMON_H

#include <stdint.h>

#include "pi0.h"

typedef struct {
    pi0_params params;
    int progress; /* print load progress on stderr (on by default when stderr is a terminal) */
} tool_load_opts;

tool_load_opts tool_load_defaults(void);
/* If argv[*i] is --backend, --threads, --strict, --weights or --no-progress, consume it (and its
 * value) and return 1; return 0 if it is not one of them, -1 after printing a usage error. */
int tool_parse_load_opt(int argc, char **argv, int *i, tool_load_opts *o);
pi0_status tool_load(const char *dir, const tool_load_opts *o, pi0_ctx **ctx);
/* Set p->progress to the stderr progress line when stderr is a terminal (for callers of pi0_load). */
void tool_progress_attach(pi0_params *p);

double tool_now(void);
int tool_parse_u64(const char *s, unsigned long long *out);
int tool_parse_int(const char *s, int lo, int hi, int *out);
/* "true"/"1" -> 1, "false"/"0" -> 0, anything else -> -1. */
int tool_parse_bool(const char *s);
/* Comma-separated numbers; 0 ok, -1 bad syntax or more than cap. */
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
