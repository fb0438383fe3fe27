/* robot.c - robot presets (raw, libero, droid, aloha, aloha_sim): camera slots, state assembly,
 * ALOHA joint conventions, delta-action masks and output dims. Contract in robot.h; mirrors openpi's
 * policies/{libero,droid,aloha}_policy.py and transforms.AbsoluteActions.
 *
 * Not here: resizing (image.c), normalization (norm.c), tokenization and the model (policy). */
#include "io/robot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io/lerobot.h"

// ---- presets -----------------------------------------------------------------------------------

pi0_status pi0_robot_init(const char *name, int variant, pi0_robot *out) {
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_robot_init: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name || !strcmp(name, "raw")) {
        out->name = "raw";
        out->kind = PI0_ROBOT_RAW;
        return PI0_OK;
    }
    if (!strcmp(name, "libero")) {
        out->name = "libero";
        out->kind = PI0_ROBOT_LIBERO;
        out->n_out = 7;
        out->state_required = 1;
        if (variant == PI0_VARIANT_PI0) {   /* pi0_libero: make_bool_mask(6, -1); pi05_libero: none */
            out->n_delta = 7;
            for (int i = 0; i < 6; i++) out->delta[i] = 1;
        }
        return PI0_OK;
    }
    if (!strcmp(name, "droid")) {
        out->name = "droid";
        out->kind = PI0_ROBOT_DROID;
        out->n_out = 8;
        out->state_required = 1;
        return PI0_OK;
    }
    if (!strcmp(name, "aloha") || !strcmp(name, "aloha_sim")) {
        int sim = !strcmp(name, "aloha_sim");
        out->name = sim ? "aloha_sim" : "aloha";
        out->kind = PI0_ROBOT_ALOHA;
        out->n_out = 14;
        out->aloha_adapt = 1;
        out->state_required = 1;
        if (!sim) {   /* make_bool_mask(6, -1, 6, -1) */
            out->n_delta = 14;
            for (int i = 0; i < 14; i++) out->delta[i] = i != 6 && i != 13;
        }
        return PI0_OK;
    }
    return pi0_err(PI0_ERR_ARG, "unknown robot preset '%s' (expected raw, libero, droid, aloha or aloha_sim)", name);
}

pi0_status pi0_robot_init_lerobot(const pi0_lerobot *lr, pi0_robot *out) {
    if (!lr || !out) return pi0_err(PI0_ERR_ARG, "pi0_robot_init_lerobot: NULL argument");
    memset(out, 0, sizeof *out);
    if (lr->n_cams > PI0_ROBOT_SLOTS)
        return pi0_err(PI0_ERR_UNSUPPORTED, "LeRobot checkpoint: %d cameras, at most %d supported", lr->n_cams, PI0_ROBOT_SLOTS);
    out->name = "lerobot";
    out->kind = PI0_ROBOT_LEROBOT;
    out->lr = lr;
    return PI0_OK;
}

// ---- arrays ------------------------------------------------------------------------------------

static double half_to_double(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m | 0x400, e - 25);
    return (h & 0x8000) ? -v : v;
}

pi0_status pi0_array_to_f64(const pi0_array *a, double *x, int cap, int *n) {
    const char *key = a->key ? a->key : "?";
    if (a->ndim > 1) return pi0_err(PI0_ERR_ARG, "'%s': ndim %d, expected a vector", key, a->ndim);
    int64_t len = a->ndim == 0 ? 1 : a->shape[0];
    if (len < 0 || len > cap)
        return pi0_err(PI0_ERR_ARG, "'%s': %lld values, expected at most %d", key, (long long)len, cap);
    if (len > 0 && !a->data) return pi0_err(PI0_ERR_ARG, "'%s': data is NULL", key);
    for (int64_t i = 0; i < len; i++) {
        const void *d = a->data;
        double v;
        switch (a->dtype) {
        case PI0_ARR_U8: v = ((const uint8_t *)d)[i]; break;
        case PI0_ARR_BOOL: v = ((const uint8_t *)d)[i] != 0; break;
        case PI0_ARR_I8: v = ((const int8_t *)d)[i]; break;
        case PI0_ARR_I16: v = ((const int16_t *)d)[i]; break;
        case PI0_ARR_U16: v = ((const uint16_t *)d)[i]; break;
        case PI0_ARR_I32: v = ((const int32_t *)d)[i]; break;
        case PI0_ARR_U32: v = ((const uint32_t *)d)[i]; break;
        case PI0_ARR_I64: v = (double)((const int64_t *)d)[i]; break;
        case PI0_ARR_U64: v = (double)((const uint64_t *)d)[i]; break;
        case PI0_ARR_F16: v = half_to_double(((const uint16_t *)d)[i]); break;
        case PI0_ARR_F32: v = ((const float *)d)[i]; break;
        case PI0_ARR_F64: v = ((const double *)d)[i]; break;
        default: return pi0_err(PI0_ERR_ARG, "'%s': unknown dtype %d", key, a->dtype);
        }
        x[i] = v;
    }
    *n = (int)len;
    return PI0_OK;
}

/* The array named `key`, or NULL. Duplicates are an error (*st set). */
static const pi0_array *find(const pi0_array *arrays, int n, const char *key, pi0_status *st) {
    const pi0_array *hit = NULL;
    for (int i = 0; i < n; i++) {
        if (!arrays[i].key || strcmp(arrays[i].key, key)) continue;
        if (hit) {
            *st = pi0_err(PI0_ERR_ARG, "observation key '%s' appears twice", key);
            return NULL;
        }
        hit = &arrays[i];
    }
    return hit;
}

static pi0_status need(const pi0_array *arrays, int n, const char *key, const char *robot, const pi0_array **out) {
    pi0_status st = PI0_OK;
    *out = find(arrays, n, key, &st);
    if (st) return st;
    if (!*out) return pi0_err(PI0_ERR_ARG, "robot '%s': observation key '%s' is missing", robot, key);
    return PI0_OK;
}

static pi0_status put_image(pi0_robot_input *in, int slot, const pi0_array *a) {
    pi0_status st = pi0_image_from_array_budget(a, in->budget, &in->img[slot]);
    if (st) return st;
    in->mask[slot] = 1;
    return PI0_OK;
}

static pi0_status put_state(pi0_robot_input *in, const pi0_array *a, int expect) {
    int n = 0;
    pi0_status st = pi0_array_to_f64(a, in->state + in->state_dim, PI0_ROBOT_MAX_DIMS - in->state_dim, &n);
    if (st) return st;
    if (expect > 0 && n != expect)
        return pi0_err(PI0_ERR_ARG, "'%s': %d values, expected %d", a->key, n, expect);
    if (n == 0) return pi0_err(PI0_ERR_ARG, "'%s': empty state", a->key);
    in->state_dim += n;
    return PI0_OK;
}

// ---- ALOHA joint conventions (aloha_policy.py, adapt_to_pi = True) ------------------------------

static const double aloha_sign[14] = {1, -1, -1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 1, 1};

double pi0_aloha_gripper_to_angular(double v) {
    v = v * (0.05800 - 0.01844) + 0.01844;                 /* _unnormalize to linear position */
    const double arm = 0.036, horn = 0.022;
    double c = (horn * horn + v * v - arm * arm) / (2 * horn * v);
    if (c < -1.0) c = -1.0;                                /* np.clip keeps NaN as NaN */
    else if (c > 1.0) c = 1.0;
    v = asin(c);
    return (v - 0.5476) / (1.6296 - 0.5476);                /* _normalize */
}

double pi0_aloha_gripper_from_angular(double v) {
    v = v + 0.5476;
    return (v - -0.6213) / (1.4910 - -0.6213);
}

static pi0_status aloha_inputs(const pi0_robot *r, const pi0_array *arrays, int n, pi0_robot_input *in) {
    static const char *cams[4] = {"cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"};
    static const int slot_of[4] = {0, -1, 1, 2};
    pi0_status st = PI0_OK;
    for (int i = 0; i < n; i++) {
        const char *k = arrays[i].key;
        if (!k || strncmp(k, "images/", 7)) continue;
        int c = 0;
        while (c < 4 && strcmp(k + 7, cams[c])) c++;
        if (c == 4)
            return pi0_err(PI0_ERR_ARG,
                           "robot '%s': unknown camera '%s' (expected images/cam_high, images/cam_low, "
                           "images/cam_left_wrist, images/cam_right_wrist)", r->name, k);
        if (find(arrays, n, k, &st), st) return st;
        if (slot_of[c] >= 0 && (st = put_image(in, slot_of[c], &arrays[i]))) return st;
    }
    if (!in->mask[0])
        return pi0_err(PI0_ERR_ARG, "robot '%s': observation key 'images/cam_high' is missing", r->name);
    const pi0_array *s;
    if ((st = need(arrays, n, "state", r->name, &s)) || (st = put_state(in, s, 14))) return st;
    if (r->aloha_adapt) {
        for (int i = 0; i < 14; i++) in->state[i] *= aloha_sign[i];
        in->state[6] = pi0_aloha_gripper_to_angular(in->state[6]);
        in->state[13] = pi0_aloha_gripper_to_angular(in->state[13]);
    }
    return PI0_OK;
}

// ---- LeRobot checkpoints -----------------------------------------------------------------------

#define LR_IMG_PREFIX "observation.images."

/* Does observation key k name feature `full` ("observation.images.top" / "observation.state")?
 * Accepted: the full name, the name without its "observation.images." / "observation." prefix, and
 * any rename_map source renamed to it (RenameObservationsProcessorStep runs first). */
static int lr_key_is(const pi0_lerobot *lr, const char *k, const char *full) {
    if (!strcmp(k, full)) return 1;
    const char *short_name = !strncmp(full, LR_IMG_PREFIX, strlen(LR_IMG_PREFIX)) ? full + strlen(LR_IMG_PREFIX)
                             : !strncmp(full, "observation.", 12) ? full + 12 : NULL;
    if (short_name && !strcmp(k, short_name)) return 1;
    for (int i = 0; i < lr->n_renames; i++) {
        if (strcmp(lr->rename_to[i], full)) continue;
        const char *from = lr->rename_from[i];
        if (!strcmp(from, k)) return 1;
        if (!strncmp(from, LR_IMG_PREFIX, strlen(LR_IMG_PREFIX)) && !strcmp(from + strlen(LR_IMG_PREFIX), k)) return 1;
    }
    return 0;
}

/* Float images stay float (LeRobot feeds [0, 1] floats to the model); uint8 and encoded bytes go
 * through pi0_image_from_array. Layout rules are the same ([3,H,W] CHW, else [H,W,3]). */
static pi0_status lr_put_image(pi0_robot_input *in, int slot, const pi0_array *a) {
    if (a->dtype != PI0_ARR_F32 && a->dtype != PI0_ARR_F64) return put_image(in, slot, a);
    int64_t s[4];
    int nd = a->ndim;
    memcpy(s, a->shape, sizeof s);
    if (nd == 4 && s[0] == 1) { memmove(s, s + 1, 3 * sizeof s[0]); nd = 3; }
    int chw = nd == 3 && s[0] == 3;
    if (nd != 3 || (!chw && s[2] != 3) || !a->data)
        return pi0_err(PI0_ERR_ARG, "'%s': float image must be [3, H, W] or [H, W, 3]", a->key);
    int64_t h = chw ? s[1] : s[0], w = chw ? s[2] : s[1];
    if (h <= 0 || w <= 0 || h > PI0_IMAGE_MAX_DIM || w > PI0_IMAGE_MAX_DIM || h * w > PI0_IMAGE_MAX_PIXELS)
        return pi0_err(PI0_ERR_ARG, "'%s': image size %lldx%lld not supported", a->key, (long long)w, (long long)h);
    float *f = malloc(sizeof(float) * (size_t)(h * w * 3));
    if (!f) return pi0_err(PI0_ERR_NOMEM, "'%s'", a->key);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int64_t i = chw ? ((int64_t)c * h + y) * w + x : (y * w + x) * 3 + c;
                f[(y * w + x) * 3 + c] = a->dtype == PI0_ARR_F32 ? ((const float *)a->data)[i]
                                                                 : (float)((const double *)a->data)[i];
            }
    in->fimg[slot] = f;
    in->img[slot].h = (int)h;
    in->img[slot].w = (int)w;
    in->mask[slot] = 1;
    return PI0_OK;
}

/* Cameras compacted as LeRobot's _preprocess_images does: present ones in config order, then the
 * missing ones as masked slots. */
static pi0_status lerobot_inputs(const pi0_robot *r, const pi0_array *arrays, int n, pi0_robot_input *in) {
    const pi0_lerobot *lr = r->lr;
    pi0_status st = PI0_OK;
    int slot = 0;
    for (int c = 0; c < lr->n_cams; c++) {
        const pi0_array *hit = NULL;
        for (int i = 0; i < n; i++) {
            if (!arrays[i].key || !lr_key_is(lr, arrays[i].key, lr->cams[c])) continue;
            if (hit) return pi0_err(PI0_ERR_ARG, "camera '%s' given twice ('%s' and '%s')", lr->cams[c], hit->key, arrays[i].key);
            hit = &arrays[i];
        }
        if (hit) {
            in->cam[slot] = c;
            if ((st = lr_put_image(in, slot++, hit))) return st;
        }
    }
    if (slot == 0) {
        char names[512] = "";
        for (int c = 0; c < lr->n_cams; c++) {
            size_t u = strlen(names);
            snprintf(names + u, sizeof names - u, "%s%s", c ? ", " : "", lr->cams[c]);
        }
        return pi0_err(PI0_ERR_ARG, "LeRobot checkpoint: no camera image in the observation (expected one of %s, with "
                                    "or without the 'observation.images.' prefix)", names);
    }
    const pi0_array *s = NULL;
    for (int i = 0; i < n; i++) {
        const char *k = arrays[i].key;
        if (!k) continue;
        if (lr_key_is(lr, k, "observation.state")) {
            if (s) return pi0_err(PI0_ERR_ARG, "the state is given twice ('%s' and '%s')", s->key, k);
            s = &arrays[i];
            continue;
        }
        int known = 0;
        for (int c = 0; c < lr->n_cams && !known; c++) known = lr_key_is(lr, k, lr->cams[c]);
        if (!known && (!strncmp(k, LR_IMG_PREFIX, strlen(LR_IMG_PREFIX)) || arrays[i].ndim >= 2))
            pi0_log(PI0_LOG_WARN, "observation key '%s' is not a camera of this LeRobot checkpoint; ignored", k);
    }
    if (s && (st = put_state(in, s, 0))) return st;
    return PI0_OK;
}

// ---- inputs ------------------------------------------------------------------------------------

void pi0_robot_input_free(pi0_robot_input *in) {
    if (!in) return;
    for (int i = 0; i < PI0_ROBOT_SLOTS; i++) {
        pi0_image_free(&in->img[i]);
        free(in->fimg[i]);
        in->fimg[i] = NULL;
    }
}

pi0_status pi0_robot_inputs(const pi0_robot *r, const pi0_array *arrays, int n, pi0_robot_input *in) {
    return pi0_robot_inputs_budget(r, arrays, n, NULL, in);
}

pi0_status pi0_robot_inputs_budget(const pi0_robot *r, const pi0_array *arrays, int n, const pi0_image_budget *budget,
                                   pi0_robot_input *in) {
    if (!r || !in || (n > 0 && !arrays)) return pi0_err(PI0_ERR_ARG, "pi0_robot_inputs: NULL argument");
    memset(in, 0, sizeof *in);
    in->budget = budget;
    pi0_status st = PI0_OK;
    const pi0_array *a;
    switch (r->kind) {
    case PI0_ROBOT_RAW: {
        static const char *slots[3] = {"base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"};
        for (int i = 0; i < 3 && !st; i++) {
            a = find(arrays, n, slots[i], &st);
            if (!st && a) st = put_image(in, i, a);
        }
        if (!st && !in->mask[0] && !in->mask[1] && !in->mask[2])
            st = pi0_err(PI0_ERR_ARG, "robot 'raw': no camera image (expected base_0_rgb, left_wrist_0_rgb or "
                                      "right_wrist_0_rgb)");
        if (!st && (a = find(arrays, n, "state", &st)) != NULL) st = put_state(in, a, 0);
        break;
    }
    case PI0_ROBOT_LIBERO:
        if (!(st = need(arrays, n, "observation/image", r->name, &a)) && !(st = put_image(in, 0, a)) &&
            !(st = need(arrays, n, "observation/wrist_image", r->name, &a)) && !(st = put_image(in, 1, a)) &&
            !(st = need(arrays, n, "observation/state", r->name, &a)))
            st = put_state(in, a, 0);
        break;
    case PI0_ROBOT_DROID:
        if (!(st = need(arrays, n, "observation/exterior_image_1_left", r->name, &a)) && !(st = put_image(in, 0, a)) &&
            !(st = need(arrays, n, "observation/wrist_image_left", r->name, &a)) && !(st = put_image(in, 1, a)) &&
            !(st = need(arrays, n, "observation/joint_position", r->name, &a)) && !(st = put_state(in, a, 7)) &&
            !(st = need(arrays, n, "observation/gripper_position", r->name, &a)))
            st = put_state(in, a, 1);
        break;
    case PI0_ROBOT_ALOHA:
        st = aloha_inputs(r, arrays, n, in);
        break;
    case PI0_ROBOT_LEROBOT:
        st = lerobot_inputs(r, arrays, n, in);
        break;
    default:
        st = pi0_err(PI0_ERR_INTERNAL, "robot kind %d", r->kind);
    }
    if (st) pi0_robot_input_free(in);
    return st;
}

// ---- outputs -----------------------------------------------------------------------------------

void pi0_robot_absolute(const pi0_robot *r, double *actions, int h, int a, const double *state, int state_dim) {
    int dims = r->n_delta < a ? r->n_delta : a;
    if (dims > state_dim) dims = state_dim;
    for (int t = 0; t < h; t++)
        for (int i = 0; i < dims; i++)
            if (r->delta[i]) actions[(size_t)t * a + i] += state[i];
}

pi0_status pi0_robot_outputs(const pi0_robot *r, const double *actions, int h, int a, float *out, int *cols) {
    int c = r->n_out ? r->n_out : a;
    if (c > a)
        return pi0_err(PI0_ERR_ARG, "robot '%s' returns %d action dims but the model has %d", r->name, c, a);
    for (int t = 0; t < h; t++)
        for (int i = 0; i < c; i++) {
            double v = actions[(size_t)t * a + i];
            if (r->aloha_adapt) {
                v *= aloha_sign[i];
                if (i == 6 || i == 13) v = pi0_aloha_gripper_from_angular(v);
            }
            out[(size_t)t * c + i] = (float)v;
        }
    *cols = c;
    return PI0_OK;
}

/* Inverse of pi0_robot_outputs (used for real-time chunking's previous chunk): robot columns back
 * to model dims in double; ALOHA: openpi's _encode_actions_inv (joint flips, gripper from-angular
 * inverse). Dims from cols on are 0. */
void pi0_robot_outputs_inv(const pi0_robot *r, const float *in, int h, int cols, int a, double *out) {
    for (int t = 0; t < h; t++)
        for (int i = 0; i < a; i++) {
            double v = i < cols ? in[(size_t)t * cols + i] : 0.0;
            if (r->aloha_adapt && i < cols && i < 14) {
                if (i == 6 || i == 13) v = v * (1.4910 - -0.6213) + -0.6213 - 0.5476; /* _gripper_from_angular_inv */
                v *= aloha_sign[i];
            }
            out[(size_t)t * a + i] = v;
        }
}
