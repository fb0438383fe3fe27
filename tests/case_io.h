/* case_io.h - test helper: read a test-data case file's model inputs (images, masks, tokens, state,
 * noise, num_steps) and make the pi0_obs for them. */
#ifndef PI0_CASE_IO_H
#define PI0_CASE_IO_H

#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "pi0.h"

typedef struct {
    float *images, *noise, *state;
    int32_t *imask, *tokens, *tmask, *nsteps;
    int64_t n_img, n_tok, n_state, n_act;
} case_inputs;

/* Returns 1 on success. π0.5 cases carry a prompt-side `state` that is not a model input. */
static inline int read_case(const char *path, case_inputs *c, int pi05) {
    memset(c, 0, sizeof *c);
    pi0_st_file *f;
    if (pi0_st_open(path, &f) != PI0_OK) return 0;
    pi0_st_read_f32(f, "images", &c->images, NULL);
    pi0_st_read_i32(f, "image_masks", &c->imask, &c->n_img);
    pi0_st_read_i32(f, "tokens", &c->tokens, &c->n_tok);
    pi0_st_read_i32(f, "token_masks", &c->tmask, NULL);
    pi0_st_read_f32(f, "noise", &c->noise, &c->n_act);
    if (!pi05) pi0_st_read_f32(f, "state", &c->state, &c->n_state);
    if (pi0_st_find(f, "num_steps")) pi0_st_read_i32(f, "num_steps", &c->nsteps, NULL);
    pi0_st_close(f);
    return c->images && c->imask && c->tokens && c->tmask && c->noise;
}

static inline pi0_obs case_obs(const case_inputs *c) {
    pi0_obs o = {(int)c->n_img, c->images, c->imask, (int)c->n_tok, c->tokens, c->tmask, (int)c->n_state, c->state};
    return o;
}

/* pi0_infer on the case's observation with its own noise and step count (rp gives the rest: taps,
 * RTC...): the one way the model-level tests run a case. */
static inline pi0_status case_infer(pi0_state *st, const case_inputs *c, pi0_run_params rp, float *act) {
    pi0_obs obs = case_obs(c);
    rp.n_steps = c->nsteps ? c->nsteps[0] : 0;
    return pi0_infer(st, &obs, &rp, c->noise, act, (size_t)c->n_act);
}

static inline void free_case(case_inputs *c) {
    free(c->images); free(c->noise); free(c->state); free(c->imask); free(c->tokens); free(c->tmask); free(c->nsteps);
    memset(c, 0, sizeof *c);
}

#endif
