/* policy.c - robot-level inference (include/pi0_policy.h): openpi's server-side transforms around
 * pi0_infer. Order (PI0_MODEL.md §7.6, openpi create_trained_policy):
 *   robot inputs -> normalize state (z-score π0, quantile π0.5; double) -> resize_with_pad to the
 *   model size -> uint8 -> [-1, 1] -> tokenize (π0.5 with discrete_state_input: discretized state in
 *   the prompt) -> pad state to action_dim (float32) -> pi0_infer -> unnormalize actions (float32
 *   input promoted as numpy does, see pi0_norm_unapply_f32) -> absolute actions for the delta dims (state = the un-normalized echo of the float32 padded
 *   state, as openpi's Unnormalize sees it) -> robot outputs.
 * All buffers are sized in pi0_policy_new; pi0_policy_infer allocates only the decoded/converted
 * camera images (their size depends on the request).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "io/image.h"
#include "io/lerobot.h"
#include "io/lerobot_image.h"
#include "io/norm.h"
#include "io/prompt.h"
#include "io/robot.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "model/variant.h"
#include "pi0_policy.h"
#include "policy/paths.h"
#include "policy/rtc_prev.h"

struct pi0_policy {
    pi0_ctx *ctx;
    pi0_state *st;
    const pi0_config *cfg;
    pi0_robot robot;
    pi0_tokenizer *tok;
    pi0_text_encoder enc;
    int have_norm;
    int discrete_state;          /* π0.5: state in the prompt (resolved in pi0_policy_new) */
    pi0_norm_mode mode;          /* z-score for π0, quantile for π0.5 */
    pi0_norm_stats ns;
    char *default_prompt;
    const char *metadata;        /* static JSON */
    int n_slots;                 /* camera slots fed to the model: min(3, cfg->n_image_slots) */
    int S, A, H, L;              /* image size, action dim, horizon, max tokens */
    float *images;               /* [n_slots, 3, S, S] */
    uint8_t *resized;            /* [S, S, 3] */
    int32_t img_mask[PI0_ROBOT_SLOTS];
    int32_t *tokens, *tok_mask;  /* [L] */
    float *state;                /* [A] normalized, zero-padded */
    double *nstate;              /* [A] normalized state in double (prompt bins, echo) */
    double *echo;                /* [A] un-normalized echoed state */
    float *act;                  /* [H, A] model output */
    double *actd;                /* [H, A] after unnormalize / absolute */
    float *out;                  /* [H, A] robot output (first H * cols used) */
    pi0_lerobot *lr;             /* LeRobot checkpoint: its features and processor statistics */
    float *fstate, *rawstate;    /* [A] LeRobot float32 state: normalized, and as given */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

pi0_policy_params pi0_policy_params_default(void) {
    pi0_policy_params p;
    memset(&p, 0, sizeof p);
    p.robot = "raw";
    p.require_norm_stats = 1;
    p.discrete_state_input = -1;
    return p;
}

void pi0_policy_free(pi0_policy *pol) {
    if (!pol) return;
    pi0_state_free(pol->st);
    pi0_tok_free(pol->tok);
    pi0_norm_free(&pol->ns);
    free(pol->default_prompt);
    free(pol->images);
    free(pol->resized);
    free(pol->tokens);
    free(pol->tok_mask);
    free(pol->state);
    free(pol->nstate);
    free(pol->echo);
    free(pol->act);
    free(pol->actd);
    free(pol->out);
    free(pol->fstate);
    free(pol->rawstate);
    pi0_lerobot_free(pol->lr);
    free(pol);
}

/* π0.5's discrete_state_input: the caller's value, else config.json's, else the value of openpi's
 * training config for the robot (training/config.py: pi05_libero sets discrete_state_input=False;
 * pi05_droid, pi05_aloha and the pi05 default are True), else 1. π0 never puts state in the prompt. */
static pi0_status resolve_discrete_state(pi0_policy *pol, const pi0_policy_params *pp) {
    const pi0_config *c = pol->cfg;
    if (pp->discrete_state_input < -1 || pp->discrete_state_input > 1)
        return pi0_err(PI0_ERR_ARG, "discrete_state_input = %d, expected -1 (auto), 0 or 1", pp->discrete_state_input);
    if (pi0_config_state_input(c) == PI0_STATE_TOKEN) {
        if (pp->discrete_state_input == 1)
            return pi0_err(PI0_ERR_ARG, "discrete_state_input: π0 feeds the state to the action expert; only π0.5 "
                                        "can put it in the prompt");
        pol->discrete_state = 0;
        return PI0_OK;
    }
    if (pp->discrete_state_input >= 0) pol->discrete_state = pp->discrete_state_input;
    else if (pol->ctx->discrete_state_given) pol->discrete_state = c->discrete_state_input;
    else pol->discrete_state = pol->robot.kind != PI0_ROBOT_LIBERO;
    return PI0_OK;
}

/* Norm stats must cover the robot's dims and fit the model (openpi cannot broadcast otherwise). */
static pi0_status check_norm(const pi0_policy *pol) {
    const pi0_norm_stats *ns = &pol->ns;
    if (ns->actions.n == 0)
        return pi0_err(PI0_ERR_FORMAT, "%s: no 'norm_stats.actions' entry (needed to un-normalize actions)", ns->path);
    if (ns->actions.n > pol->A)
        return pi0_err(PI0_ERR_FORMAT, "%s: 'norm_stats.actions' has %d dims, more than the model's action_dim %d",
                       ns->path, ns->actions.n, pol->A);
    if (pol->mode == PI0_NORM_QUANTILE && (!ns->actions.q01 || (ns->state.n && !ns->state.q01)))
        return pi0_err(PI0_ERR_FORMAT, "%s: q01/q99 are null, but π0.5 uses quantile normalization", ns->path);
    /* NaN / inf statistics fail only where they reach the robot: the action dims it returns (state
     * dims are checked per request, for the dims the robot sends) */
    int used = pol->robot.n_out ? pol->robot.n_out : pol->A;
    if (used > ns->actions.n) used = ns->actions.n;
    pi0_status st = pi0_norm_check(&ns->actions, pol->mode, "actions", used);
    if (st) return pi0_err_prefix(st, "%s", ns->path);
    pi0_norm_warn_constant(&ns->state, pol->mode, "state", ns->path);
    pi0_norm_warn_constant(&ns->actions, pol->mode, "actions", ns->path);
    return PI0_OK;
}

/* A LeRobot checkpoint acts as an automatically built robot preset (pi0_robot_init_lerobot). */
static pi0_status lerobot_setup(pi0_policy *pol, const char *dir, const pi0_policy_params *pp) {
    const pi0_config *c = pol->cfg;
    pi0_status st = pi0_lerobot_load(dir, pol->A, &pol->lr);
    if (st) return st;
    const pi0_lerobot *lr = pol->lr;
    if (pp->norm_stats_path)
        return pi0_err(PI0_ERR_ARG, "%s is a LeRobot checkpoint: its statistics come from policy_preprocessor.json / "
                                    "policy_postprocessor.json, not from norm_stats_path (%s)", dir, pp->norm_stats_path);
    if (lr->n_cams > c->n_image_slots)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: %d cameras declared but the model has %d image slots", dir, lr->n_cams,
                       c->n_image_slots);
    if (pi0_config_state_input(c) == PI0_STATE_TOKEN && lr->max_state_dim != pol->A)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s/config.json: max_state_dim %d differs from the model's state width %d", dir,
                       lr->max_state_dim, pol->A);
    if (lr->n_action_steps < pol->H)
        pi0_log(PI0_LOG_INFO, "%s: the whole chunk of %d actions is returned; LeRobot executes the first n_action_steps = %d",
                dir, pol->H, lr->n_action_steps);
    pol->n_slots = lr->n_cams;
    return pi0_robot_init_lerobot(lr, &pol->robot);
}

pi0_status pi0_policy_new(pi0_ctx *ctx, const char *ckpt_dir, const pi0_policy_params *pp, pi0_policy **out) {
    pi0_err_clear();
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_policy_new: out is NULL");
    *out = NULL;
    if (!ctx) return pi0_err(PI0_ERR_ARG, "pi0_policy_new: ctx is NULL");
    pi0_policy_params defaults = pi0_policy_params_default();
    if (!pp) pp = &defaults;
    pi0_policy *pol = calloc(1, sizeof *pol);
    if (!pol) return pi0_err(PI0_ERR_NOMEM, "pi0_policy_new");
    char *path = NULL;
    pi0_status st;
    pol->ctx = ctx;
    pol->cfg = pi0_config_of(ctx);
    const pi0_config *c = pol->cfg;
    pol->S = c->image_size;
    pol->A = c->action_dim;
    pol->H = c->action_horizon;
    pol->L = c->max_token_len;
    pol->n_slots = c->n_image_slots < PI0_ROBOT_SLOTS ? c->n_image_slots : PI0_ROBOT_SLOTS;
    pol->mode = pi0_variant_get(c->variant)->quantile_norm ? PI0_NORM_QUANTILE : PI0_NORM_ZSCORE;
    if (pol->A <= 0 || pol->A > PI0_ROBOT_MAX_DIMS || pol->S <= 0 || pol->H <= 0 || pol->L <= 0 || pol->n_slots <= 0) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "policy: model config action_dim %d, image_size %d, horizon %d, max_token_len %d,"
                                          " image slots %d not supported", pol->A, pol->S, pol->H, pol->L, pol->n_slots);
        goto fail;
    }
    const int auto_preset = !pp->robot || !strcmp(pp->robot, "raw");
    if (auto_preset && ckpt_dir && pi0_lerobot_is_checkpoint(ckpt_dir)) {
        if ((st = lerobot_setup(pol, ckpt_dir, pp))) goto fail;
    } else if ((st = pi0_robot_init(pp->robot, c->variant, &pol->robot))) {
        goto fail;
    }
    if (pol->robot.n_out > pol->A) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "robot '%s' returns %d action dims but the model's action_dim is %d",
                     pol->robot.name, pol->robot.n_out, pol->A);
        goto fail;
    }
    if ((st = resolve_discrete_state(pol, pp))) goto fail;
    pol->metadata = pol->robot.kind == PI0_ROBOT_ALOHA && pol->robot.n_delta ? "{\"reset_pose\": [0, -1.5, 1.5, 0, 0, 0]}"
                                                                             : "{}";

    /* tokenizer */
    if (pp->tokenizer_path) path = strdup(pp->tokenizer_path);
    else if ((st = pi0_find_tokenizer(ckpt_dir, &path))) goto fail;
    if (!path) { st = pi0_err(PI0_ERR_NOMEM, "policy"); goto fail; }
    if ((st = pi0_tok_load(path, &pol->tok)) || (st = pi0_text_encoder_spm(pol->tok, &pol->enc))) goto fail;
    if (pi0_tok_n_pieces(pol->tok) > c->vocab_size) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: tokenizer has %d pieces but the model's vocabulary has %d rows", path,
                     pi0_tok_n_pieces(pol->tok), c->vocab_size);
        goto fail;
    }
    free(path);
    path = NULL;

    /* norm stats (a LeRobot checkpoint's come from its processor files, read by lerobot_setup) */
    if (!pol->lr) {
        if (pp->norm_stats_path) path = strdup(pp->norm_stats_path);
        else if ((st = pi0_find_norm_stats(ckpt_dir, pp->asset_id, pp->require_norm_stats, &path))) goto fail;
        if (path) {
            if ((st = pi0_norm_load(path, &pol->ns))) goto fail;
            pol->have_norm = 1;
            if ((st = check_norm(pol))) goto fail;
        } else {
            pi0_log(PI0_LOG_WARN, "policy: no norm_stats.json found next to %s; states and actions are not normalized",
                    ckpt_dir ? ckpt_dir : "(no checkpoint dir)");
        }
        free(path);
        path = NULL;
    }

    if (pp->default_prompt && !(pol->default_prompt = strdup(pp->default_prompt))) goto nomem;
    size_t S = (size_t)pol->S, A = (size_t)pol->A, H = (size_t)pol->H, L = (size_t)pol->L;
    pol->images = malloc(sizeof(float) * pol->n_slots * 3 * S * S);
    pol->resized = malloc(S * S * 3);
    pol->tokens = malloc(sizeof(int32_t) * L);
    pol->tok_mask = malloc(sizeof(int32_t) * L);
    pol->state = malloc(sizeof(float) * A);
    pol->nstate = malloc(sizeof(double) * A);
    pol->echo = malloc(sizeof(double) * A);
    pol->act = malloc(sizeof(float) * H * A);
    pol->actd = malloc(sizeof(double) * H * A);
    pol->out = malloc(sizeof(float) * H * A);
    pol->fstate = malloc(sizeof(float) * A);
    pol->rawstate = malloc(sizeof(float) * A);
    if (!pol->fstate || !pol->rawstate || !pol->images || !pol->resized || !pol->tokens || !pol->tok_mask || !pol->state || !pol->nstate || !pol->echo ||
        !pol->act || !pol->actd || !pol->out)
        goto nomem;
    if ((st = pi0_state_new(ctx, &pol->st))) goto fail;
    *out = pol;
    return PI0_OK;
nomem:
    st = pi0_err(PI0_ERR_NOMEM, "pi0_policy_new: buffers");
fail:
    free(path);
    pi0_policy_free(pol);
    return st;
}

const char *pi0_policy_metadata_json(const pi0_policy *pol) { return pol ? pol->metadata : "{}"; }

/* Camera slots -> model images [n_slots, 3, S, S] and masks. Empty slots are all -1 (uint8 0). */
static pi0_status prepare_images(pi0_policy *pol, const pi0_robot_input *ri) {
    size_t plane = (size_t)pol->S * pol->S;
    for (int s = 0; s < pol->n_slots; s++) {
        float *dst = pol->images + s * 3 * plane;
        pol->img_mask[s] = ri->mask[s];
        if (!ri->mask[s]) {
            for (size_t i = 0; i < 3 * plane; i++) dst[i] = -1.0f;
            continue;
        }
        const pi0_image *im = &ri->img[s];
        pi0_status st = pi0_image_resize_with_pad(im->data, im->h, im->w, 3, pol->resized, pol->S, pol->S);
        if (st) return st;
        pi0_image_to_model(pol->resized, pol->S, pol->S, dst);
    }
    for (int s = pol->n_slots; s < PI0_ROBOT_SLOTS; s++)
        if (ri->mask[s]) pi0_log(PI0_LOG_WARN, "policy: the model has %d image slots; camera slot %d ignored", pol->n_slots, s);
    return PI0_OK;
}

/* LeRobot's π0 prompt (Pi0NewLineProcessor + TokenizerProcessorStep): the task as given plus "\n"
 * when it does not already end with one, tokenized in one call with BOS, right-padded with 0 to
 * tokenizer_max_length, truncated (keeping the first ids) when longer. No strip, no '_' -> ' '. */
static pi0_status lerobot_prompt_pi0(const pi0_text_encoder *enc, const char *task, int max_len, int32_t *tokens,
                                     int32_t *masks) {
    size_t tl = strlen(task);
    char *text = malloc(tl + 2);
    if (!text) return pi0_err(PI0_ERR_NOMEM, "prompt");
    memcpy(text, task, tl);
    if (tl == 0 || task[tl - 1] != '\n') text[tl++] = '\n';
    text[tl] = '\0';
    tokens[0] = enc->bos_id;
    int n = 0;
    pi0_status st = max_len > 1 ? enc->encode(enc->user, text, tl, tokens + 1, max_len - 1, &n) : PI0_OK;
    free(text);
    if (st) return st;
    if (n < 0) return pi0_err(PI0_ERR_INTERNAL, "prompt: encoder returned %d ids", n);
    int total = 1 + n, pos = total < max_len ? total : max_len;
    if (total > max_len)
        pi0_log(PI0_LOG_WARN, "prompt: %d tokens, truncated to tokenizer_max_length %d (the end of the prompt is lost)",
                total, max_len);
    for (int i = 0; i < max_len; i++) {
        if (i >= pos) tokens[i] = 0;
        masks[i] = i < pos;
    }
    return PI0_OK;
}

/* The prompt: the observation's (else the default), with the discretized state for π0.5 with
 * discrete_state_input; lerobot_pi0: LeRobot's π0 format (the state goes in its own token). */
static pi0_status encode_prompt(pi0_policy *pol, const pi0_robot_obs *obs, int d, int lerobot_pi0) {
    const char *task = obs->prompt ? obs->prompt : pol->default_prompt;
    if (!task)
        return pi0_err(PI0_ERR_ARG, "Prompt is required: the observation has no prompt and the policy no default_prompt");
    int n_valid = 0;
    if (lerobot_pi0) return lerobot_prompt_pi0(&pol->enc, task, pol->L, pol->tokens, pol->tok_mask);
    if (pol->discrete_state)
        return pi0_prompt_pi05(&pol->enc, task, pol->nstate, d, pol->L, pol->tokens, pol->tok_mask, &n_valid);
    return pi0_prompt_pi0(&pol->enc, task, pol->L, pol->tokens, pol->tok_mask, &n_valid);
}

/* pi0_infer on the prepared images, prompt and padded state into pol->act; rtc (NULL = off) replaces
 * rp's real-time chunking parameters with their model-unit version. */
static pi0_status run_model(pi0_policy *pol, const pi0_run_params *rp, const pi0_rtc_params *rtc, pi0_actions *out) {
    const int state_token = pi0_config_state_input(pol->cfg) == PI0_STATE_TOKEN;
    pi0_obs mo = {.n_images = pol->n_slots, .images = pol->images, .image_masks = pol->img_mask,
                  .n_tokens = pol->L, .tokens = pol->tokens, .token_masks = pol->tok_mask,
                  .state_dim = state_token ? pol->A : 0,
                  .state = state_token ? pol->state : NULL};
    pi0_run_params rtc_rp;
    if (rtc) {
        rtc_rp = *rp;
        rtc_rp.rtc = rtc;
        rp = &rtc_rp;
    }
    double t1 = now_ms();
    pi0_status st = pi0_infer(pol->st, &mo, rp, NULL, pol->act, (size_t)pol->H * pol->A);
    out->infer_ms = now_ms() - t1;
    return st;
}

/* A robot never receives NaN or Inf: the index of the first one in x[n], or -1. */
static int first_nonfinite(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* LeRobot's order (processor_pi0.py / processor_pi05.py, modeling_pi0.py): float32 state ->
 * normalize -> (π0.5: discretize into the prompt) -> images (lerobot_image.c) -> pad state to
 * max_state_dim -> model -> keep the action feature's dims -> un-normalize -> absolute actions. */
static pi0_status lerobot_infer(pi0_policy *pol, const pi0_robot_obs *obs, const pi0_run_params *rp, pi0_actions *out) {
    double t0 = now_ms();
    const pi0_config *c = pol->cfg;
    const pi0_lerobot *lr = pol->lr;
    const int A = pol->A, H = pol->H, S = pol->S;
    pi0_robot_input ri;
    float *rtc_y = NULL;
    pi0_status st = pi0_robot_inputs(&pol->robot, obs->arrays, obs->n_arrays, &ri);
    if (st) return st;
    const int d = ri.state_dim;
    if (d == 0) {
        st = pi0_err(PI0_ERR_ARG, "LeRobot checkpoint: no 'observation.state' (or 'state') in the observation; the model "
                                  "needs the robot state");
        goto done;
    }
    if (d > A) {
        st = pi0_err(PI0_ERR_ARG, "robot state has %d dims, more than max_state_dim %d", d, A);
        goto done;
    }
    for (int i = 0; i < d; i++) pol->rawstate[i] = pol->fstate[i] = (float)ri.state[i];
    if ((st = pi0_lr_apply(&lr->state_norm, 0, "observation.state", pol->fstate, d))) {
        st = pi0_err_prefix(st, "%s/policy_preprocessor.json", lr->dir);
        goto done;
    }
    for (int i = 0; i < A; i++) pol->state[i] = i < d ? pol->fstate[i] : 0.0f;   /* pad_vector */
    for (int i = 0; i < d; i++) pol->nstate[i] = pol->fstate[i];

    /* images: present cameras first (robot.c compacts them), then masked slots */
    const size_t img = (size_t)3 * S * S;
    for (int s = 0; s < pol->n_slots; s++) {
        float *dst = pol->images + s * img;
        pol->img_mask[s] = ri.mask[s];
        if (!ri.mask[s]) {
            for (size_t i = 0; i < img; i++) dst[i] = -1.0f;
            continue;
        }
        if ((st = pi0_lr_image_to_model(ri.img[s].data, ri.fimg[s], ri.img[s].h, ri.img[s].w, S, &lr->cam_norm[ri.cam[s]], lr->old_layout, dst))) goto done;
    }

    /* LeRobot's π0 processor formats the prompt its own way */
    if ((st = encode_prompt(pol, obs, d, pi0_config_state_input(c) == PI0_STATE_TOKEN))) goto done;
    /* real-time chunking: the previous chunk's tail arrives in robot units (policy/rtc_prev.c) */
    pi0_rtc_params rtc_model;
    if (rp && rp->rtc && (st = pi0_policy_rtc_to_model_lerobot(lr, pol->rawstate, d, A, rp->rtc, &rtc_model, &rtc_y)))
        goto done;
    if ((st = run_model(pol, rp, rp && rp->rtc ? &rtc_model : NULL, out))) goto done;

    const int ad = lr->action_dim;
    for (int h = 0; h < H; h++) {
        float *row = pol->out + (size_t)h * ad;
        memcpy(row, pol->act + (size_t)h * A, sizeof(float) * ad);
        if ((st = pi0_lr_apply(&lr->action_unnorm, 1, "action", row, ad))) {
            st = pi0_err_prefix(st, "%s/policy_postprocessor.json", lr->dir);
            goto done;
        }
        if (lr->relative)   /* AbsoluteActionsProcessorStep: + raw state on the masked dims */
            for (int i = 0; i < lr->n_rel && i < d; i++)
                if (lr->rel_mask[i]) row[i] = row[i] + pol->rawstate[i];
    }
    int bad = first_nonfinite(pol->out, H * ad);
    if (bad >= 0) {
        st = pi0_err(PI0_ERR_NONFINITE, "policy: actions[%d, %d] = %g after LeRobot un-normalization (%s) is not finite",
                     bad / ad, bad % ad, (double)pol->out[bad], lr->dir);
        goto done;
    }
    out->rows = H;
    out->cols = ad;
    out->data = pol->out;
    out->total_ms = now_ms() - t0;
done:
    free(rtc_y);
    pi0_robot_input_free(&ri);
    return st;
}

pi0_status pi0_policy_infer(pi0_policy *pol, const pi0_robot_obs *obs, const pi0_run_params *rp, pi0_actions *out) {
    pi0_err_clear();
    if (!pol || !obs || !out) return pi0_err(PI0_ERR_ARG, "pi0_policy_infer: NULL argument");
    memset(out, 0, sizeof *out);
    if (pol->lr) return lerobot_infer(pol, obs, rp, out);
    double t0 = now_ms();
    const pi0_config *c = pol->cfg;
    const int A = pol->A, H = pol->H;
    pi0_robot_input ri;
    float *rtc_y = NULL;
    /* Encoded camera images are decoded under the default budget, cancelled by the run's abort
     * callback (a server request whose client has gone stops inside a long decode too). */
    pi0_image_budget budget = pi0_image_budget_default();
    if (rp) { budget.cancel = rp->abort_cb; budget.cancel_user = rp->abort_user; }
    pi0_status st = pi0_robot_inputs_budget(&pol->robot, obs->arrays, obs->n_arrays, &budget, &ri);
    if (st) return st;

    /* state: normalize the unpadded robot state in double */
    const int d = ri.state_dim;
    const int state_token = pi0_config_state_input(c) == PI0_STATE_TOKEN;
    const int needs_state = state_token || pol->discrete_state;
    if (d == 0 && needs_state) {
        st = pi0_err(PI0_ERR_ARG, "robot '%s': no 'state' in the observation; this model needs the robot state",
                     pol->robot.name);
        goto done;
    }
    if (d > A) {
        st = pi0_err(PI0_ERR_ARG, "robot state has %d dims, more than the model's action_dim %d", d, A);
        goto done;
    }
    /* openpi's Normalize is not strict: with no 'state' entry in the stats the state passes as is. */
    const int norm_state = pol->have_norm && pol->ns.state.n > 0;
    if (d > 0 && norm_state) {
        if ((st = pi0_norm_apply(&pol->ns.state, pol->mode, "state", ri.state, pol->nstate, d))) {
            st = pi0_err_prefix(st, "%s", pol->ns.path);
            goto done;
        }
    } else {
        memcpy(pol->nstate, ri.state, sizeof(double) * (size_t)d);
    }
    for (int i = 0; i < A; i++) pol->state[i] = i < d ? (float)pol->nstate[i] : 0.0f;

    if ((st = prepare_images(pol, &ri))) goto done;

    if ((st = encode_prompt(pol, obs, d, 0))) goto done;
    /* real-time chunking: the previous chunk's tail arrives in robot units (policy/rtc_prev.c) */
    pi0_rtc_params rtc_model;
    if (rp && rp->rtc &&
        (st = pi0_policy_rtc_to_model(&pol->robot, pol->have_norm ? &pol->ns : NULL, pol->mode, ri.state, d, A, rp->rtc,
                                      &rtc_model, &rtc_y)))
        goto done;
    if ((st = run_model(pol, rp, rp && rp->rtc ? &rtc_model : NULL, out))) goto done;

    /* unnormalize actions (and the echoed state for delta actions) */
    if (pol->have_norm) {
        for (int h = 0; h < H && !st; h++)
            st = pi0_norm_unapply_f32(&pol->ns.actions, pol->mode, "actions", pol->act + (size_t)h * A,
                                      pol->actd + (size_t)h * A, A);
        if (st) { st = pi0_err_prefix(st, "%s", pol->ns.path); goto done; }
    } else {
        for (size_t i = 0; i < (size_t)H * A; i++) pol->actd[i] = pol->act[i];
    }
    if (pol->robot.n_delta > 0 && d > 0) {
        if (norm_state) {
            if ((st = pi0_norm_unapply_f32(&pol->ns.state, pol->mode, "state", pol->state, pol->echo, A))) {
                st = pi0_err_prefix(st, "%s", pol->ns.path);
                goto done;
            }
        } else {
            for (int i = 0; i < A; i++) pol->echo[i] = pol->state[i];
        }
        pi0_robot_absolute(&pol->robot, pol->actd, H, A, pol->echo, d);
    }
    int cols = 0;
    if ((st = pi0_robot_outputs(&pol->robot, pol->actd, H, A, pol->out, &cols))) goto done;
    /* pi0_infer's actions are finite; un-normalization (huge std, delta actions) can still overflow
     * float32. A robot never receives NaN or Inf: fail naming the first one. */
    int bad = first_nonfinite(pol->out, H * cols);
    if (bad >= 0) {
        st = pi0_err(PI0_ERR_NONFINITE, "policy: actions[%d, %d] = %g after un-normalization%s%s is not finite", bad / cols,
                     bad % cols, (double)pol->out[bad], pol->have_norm ? " with " : "", pol->have_norm ? pol->ns.path : "");
        goto done;
    }
    out->rows = H;
    out->cols = cols;
    out->data = pol->out;
    out->total_ms = now_ms() - t0;
done:
    free(rtc_y);
    pi0_robot_input_free(&ri);
    return st;
}
