/* lerobot.c - LeRobot checkpoint description: config.json features, processor JSON steps, the
 * normalization state files and LeRobot's (un)normalization maths. Contract in lerobot.h.
 * Not here: images (lerobot_image.c), prompts (prompt.c), the inference order (policy). */
#include "io/lerobot.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io/safetensors.h"

#define LR_MAX_JSON (16 << 20)
#define LR_DEFAULT_EPS 1e-8   /* _NormalizationMixin.eps */

// ---- small helpers -----------------------------------------------------------------------------

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Parse a JSON file. *root NULL with PI0_OK when the file does not exist and `optional`. */
static pi0_status read_json(const char *path, int optional, cJSON **root) {
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional) return PI0_OK;
        return pi0_err(PI0_ERR_IO, "%s: cannot open", path);
    }
    char *buf = NULL;
    pi0_status st = PI0_OK;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) { st = pi0_err(PI0_ERR_IO, "%s: cannot seek", path); goto done; }
    if (size > LR_MAX_JSON) { st = pi0_err(PI0_ERR_FORMAT, "%s: %ld bytes is too large for a JSON file", path, size); goto done; }
    if (!(buf = malloc((size_t)size + 1))) { st = pi0_err(PI0_ERR_NOMEM, "%s", path); goto done; }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) { st = pi0_err(PI0_ERR_IO, "%s: short read", path); goto done; }
    buf[size] = '\0';
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(buf, (size_t)size, &end, 0);
    if (!*root) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        st = pi0_err(PI0_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    } else if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        st = pi0_err(PI0_ERR_FORMAT, "%s: expected a JSON object at the top level", path);
    }
done:
    free(buf);
    fclose(f);
    return st;
}

static const cJSON *item(const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return j && !cJSON_IsNull(j) ? j : NULL;
}

static pi0_status get_int(const char *file, const cJSON *o, const char *key, int lo, int hi, int *out) {
    const cJSON *j = item(o, key);
    if (!j) return PI0_OK;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo || j->valuedouble > hi)
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': expected an integer in [%d, %d]", file, key, lo, hi);
    *out = (int)j->valuedouble;
    return PI0_OK;
}

static int mode_of(const char *s) {
    if (!strcmp(s, "IDENTITY")) return PI0_LR_IDENTITY;
    if (!strcmp(s, "MEAN_STD")) return PI0_LR_MEAN_STD;
    if (!strcmp(s, "MIN_MAX")) return PI0_LR_MIN_MAX;
    if (!strcmp(s, "QUANTILES")) return PI0_LR_QUANTILES;
    if (!strcmp(s, "QUANTILE10")) return PI0_LR_QUANTILE10;
    return -1;
}

static const char *mode_name(int m) {
    static const char *n[] = {"IDENTITY", "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10", "MIN_MAX"};
    return m >= 0 && m <= PI0_LR_MIN_MAX_OLD ? n[m] : "?";
}

/* Mode for FeatureType `type` in a norm_map object (absent -> IDENTITY, as norm_map.get does). */
static pi0_status map_mode(const char *file, const char *field, const cJSON *map, const char *type, int *mode) {
    *mode = PI0_LR_IDENTITY;
    if (!map) return PI0_OK;
    if (!cJSON_IsObject(map)) return pi0_err(PI0_ERR_FORMAT, "%s: '%s' is not an object", file, field);
    const cJSON *j = item(map, type);
    if (!j) return PI0_OK;
    if (!cJSON_IsString(j) || (*mode = mode_of(j->valuestring)) < 0)
        return pi0_err(PI0_ERR_FORMAT, "%s: '%s.%s': unknown normalization mode (expected IDENTITY, MEAN_STD, MIN_MAX, "
                                       "QUANTILES or QUANTILE10)", file, field, type);
    return PI0_OK;
}

/* A feature entry {"type": T, "shape": [..]}: its type string and shape[0] (0 if shape is empty). */
static pi0_status feature(const char *file, const char *field, const cJSON *f, const char **type, int *dim0, int *ndim) {
    const cJSON *t = item(f, "type"), *s = item(f, "shape");
    if (!cJSON_IsObject(f) || !cJSON_IsString(t) || !cJSON_IsArray(s))
        return pi0_err(PI0_ERR_FORMAT, "%s: '%s.%s': expected {\"type\": string, \"shape\": [ints]}", file, field, f->string);
    *type = t->valuestring;
    *ndim = cJSON_GetArraySize(s);
    *dim0 = 0;
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, s) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 24) || e->valuedouble != floor(e->valuedouble))
            return pi0_err(PI0_ERR_FORMAT, "%s: '%s.%s.shape[%d]' is not a size", file, field, f->string, i);
        if (i++ == 0) *dim0 = (int)e->valuedouble;
    }
    return PI0_OK;
}

// ---- config.json -------------------------------------------------------------------------------

int pi0_lerobot_is_checkpoint(const char *dir) {
    if (!dir) return 0;
    char *p = join(dir, "config.json");
    if (!p) return 0;
    cJSON *root = NULL;
    pi0_err_clear();
    pi0_status st = read_json(p, 1, &root);
    free(p);
    pi0_err_clear();
    if (st || !root) return 0;
    int yes = cJSON_IsObject(item(root, "input_features")) || cJSON_IsObject(item(root, "output_features"));
    cJSON_Delete(root);
    return yes;
}

static pi0_status add_cam(pi0_lerobot *lr, const char *file, const char *key) {
    for (int i = 0; i < lr->n_cams; i++)
        if (!strcmp(lr->cams[i], key)) return PI0_OK;
    if (lr->n_cams == PI0_LR_MAX_CAMS)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: more than %d cameras ('%s')", file, PI0_LR_MAX_CAMS, key);
    if (!(lr->cams[lr->n_cams] = strdup(key))) return pi0_err(PI0_ERR_NOMEM, "%s", file);
    lr->n_cams++;
    return PI0_OK;
}

static pi0_status read_config(pi0_lerobot *lr, const char *file, const cJSON *root) {
    pi0_status st;
    const cJSON *in = item(root, "input_features"), *out = item(root, "output_features"), *f;
    if (in && !cJSON_IsObject(in)) return pi0_err(PI0_ERR_FORMAT, "%s: 'input_features' is not an object", file);
    if (out && !cJSON_IsObject(out)) return pi0_err(PI0_ERR_FORMAT, "%s: 'output_features' is not an object", file);
    cJSON_ArrayForEach(f, in) {
        const char *type;
        int d0, nd;
        if ((st = feature(file, "input_features", f, &type, &d0, &nd))) return st;
        if (!strcmp(type, "VISUAL")) {
            if (nd != 3 || d0 != 3)
                return pi0_err(PI0_ERR_UNSUPPORTED, "%s: 'input_features.%s': VISUAL shape must be [3, H, W]", file, f->string);
            if ((st = add_cam(lr, file, f->string))) return st;
        } else if (!strcmp(f->string, "observation.state")) {
            if (strcmp(type, "STATE") || nd != 1)
                return pi0_err(PI0_ERR_FORMAT, "%s: 'input_features.observation.state': expected type STATE and shape [D]", file);
            lr->state_dim = d0;
        }
    }
    cJSON_ArrayForEach(f, out) {
        const char *type;
        int d0, nd;
        if ((st = feature(file, "output_features", f, &type, &d0, &nd))) return st;
        if (!strcmp(f->string, "action")) {
            if (strcmp(type, "ACTION") || nd != 1 || d0 < 1)
                return pi0_err(PI0_ERR_FORMAT, "%s: 'output_features.action': expected type ACTION and shape [A]", file);
            lr->action_dim = d0;
        }
    }
    int n_empty = 0;
    lr->chunk_size = lr->n_action_steps = 50;
    lr->max_state_dim = lr->max_action_dim = 32;
    if ((st = get_int(file, root, "empty_cameras", 0, PI0_LR_MAX_CAMS, &n_empty)) ||
        (st = get_int(file, root, "chunk_size", 1, 1 << 16, &lr->chunk_size)) ||
        (st = get_int(file, root, "n_action_steps", 1, 1 << 16, &lr->n_action_steps)) ||
        (st = get_int(file, root, "max_state_dim", 1, 1 << 16, &lr->max_state_dim)) ||
        (st = get_int(file, root, "max_action_dim", 1, 1 << 16, &lr->max_action_dim)))
        return st;
    /* PI0Config.validate_features adds these (already listed in configs saved after training) */
    for (int i = 0; i < n_empty; i++) {
        char key[64];
        snprintf(key, sizeof key, "observation.images.empty_camera_%d", i);
        if ((st = add_cam(lr, file, key))) return st;
    }
    /* lerobot <= 0.3 PI0Config: normalization_mapping used with stats stored in the weights */
    const cJSON *nm = item(root, "normalization_mapping");
    static const char *types[3] = {"VISUAL", "STATE", "ACTION"};
    for (int i = 0; i < 3; i++)
        if ((st = map_mode(file, "normalization_mapping", nm, types[i], &lr->old_modes[i]))) return st;
    lr->old_layout = item(root, "resize_imgs_with_padding") != NULL;   /* cleared when processor files exist */
    const cJSON *rel = item(root, "use_relative_actions");
    if (rel && !cJSON_IsBool(rel)) return pi0_err(PI0_ERR_FORMAT, "%s: 'use_relative_actions': expected true or false", file);
    return PI0_OK;
}

// ---- normalization state files -----------------------------------------------------------------

void pi0_lr_norm_free(pi0_lr_norm *n) {
    if (!n) return;
    free(n->a);
    free(n->b);
    memset(n, 0, sizeof *n);
}

/* 1 if the safetensors file has any tensor "<feature>.<stat>" (LeRobot's `key in _tensor_stats`). */
static int has_feature(const pi0_st_file *f, const char *feature) {
    size_t n = strlen(feature);
    for (int i = 0; i < f->n_tensors; i++) {
        const char *t = f->tensors[i].name;
        const char *dot = strrchr(t, '.');   /* rsplit(".", 1) */
        if (dot && (size_t)(dot - t) == n && !strncmp(t, feature, n)) return 1;
    }
    return 0;
}

static pi0_status read_stat(const pi0_st_file *f, const char *feature, const char *stat, int mode, float **out,
                            int *n) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", feature, stat);
    const pi0_st_tensor *t = pi0_st_find(f, name);
    if (!t)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s' is missing; %s normalization of '%s' needs it", f->path, name,
                       mode_name(mode), feature);
    int flat = t->ndim == 1 || (t->ndim == 3 && t->shape[1] == 1 && t->shape[2] == 1);   /* images: [C, 1, 1] */
    if (!flat || t->numel < 1 || t->numel > PI0_LR_MAX_DIMS)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': shape of %d dims with %lld values, expected [D] with D <= %d",
                       f->path, name, t->ndim, (long long)t->numel, PI0_LR_MAX_DIMS);
    if (*n >= 0 && t->numel != *n)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s' has %lld values, expected %d", f->path, name, (long long)t->numel, *n);
    int64_t k;
    pi0_status st = pi0_st_read_f32(f, name, out, &k);
    if (st) return st;
    for (int64_t i = 0; i < k; i++)
        if (!isfinite((*out)[i]))
            return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s'[%lld] is %s", f->path, name, (long long)i,
                           isnan((*out)[i]) ? "NaN" : "infinite");
    *n = (int)k;
    return PI0_OK;
}

/* Load the stats of `feature` for `mode` from dir/state_file into *nm, and check them. `dim` is
 * the declared feature length (0 = unknown). */
static pi0_status load_stats(const char *dir, const char *state_file, const char *feature, int mode, float eps,
                             int dim, pi0_lr_norm *nm) {
    memset(nm, 0, sizeof *nm);
    if (mode == PI0_LR_IDENTITY || !state_file) return PI0_OK;
    if (strstr(state_file, "..") || state_file[0] == '/')
        return pi0_err(PI0_ERR_FORMAT, "%s: state_file '%s' must be a file name inside the checkpoint", dir, state_file);
    char *path = join(dir, state_file);
    if (!path) return pi0_err(PI0_ERR_NOMEM, "%s", dir);
    pi0_st_file *f = NULL;
    pi0_status st = pi0_st_open(path, &f);
    free(path);
    if (st) return st;
    if (!has_feature(f, feature)) {   /* LeRobot: key not in _tensor_stats -> returned unchanged */
        pi0_st_close(f);
        pi0_log(PI0_LOG_WARN, "%s/%s: no statistics for '%s': it is not normalized (as LeRobot does)", dir, state_file,
                feature);
        return PI0_OK;
    }
    static const char *stats[5][2] = {{0, 0}, {"mean", "std"}, {"min", "max"}, {"q01", "q99"}, {"q10", "q90"}};
    int n = dim > 0 ? dim : -1;
    if ((st = read_stat(f, feature, stats[mode][0], mode, &nm->a, &n)) ||
        (st = read_stat(f, feature, stats[mode][1], mode, &nm->b, &n)))
        goto fail;
    for (int i = 0; i < n; i++) {
        if (mode == PI0_LR_MEAN_STD && nm->b[i] < 0) {
            st = pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s.std'[%d] is negative (%g)", f->path, feature, i, (double)nm->b[i]);
            goto fail;
        }
    }
    int first_const = -1, n_const = 0;
    for (int i = 0; i < n; i++) {
        float d = mode == PI0_LR_MEAN_STD ? nm->b[i] : nm->b[i] - nm->a[i];
        if (d == 0.0f) {
            if (first_const < 0) first_const = i;
            n_const++;
        }
    }
    if (n_const)
        pi0_log(PI0_LOG_WARN, "%s: '%s' has %d constant dim(s) (first: %d, %s %s == %s); as in LeRobot the divisor there "
                              "is eps = %g", f->path, feature, n_const, first_const, mode_name(mode),
                mode == PI0_LR_MEAN_STD ? "std" : stats[mode][1], mode == PI0_LR_MEAN_STD ? "0" : stats[mode][0],
                (double)eps);
    nm->mode = mode;
    nm->n = n;
    nm->eps = eps;
    pi0_st_close(f);
    return PI0_OK;
fail:
    pi0_st_close(f);
    pi0_lr_norm_free(nm);
    return st;
}

/* The (un)normalizer step: mode and stats of `feature` (of FeatureType `type`). Observations are
 * normalized only when listed in "features" (and in normalize_observation_keys when given);
 * "action" uses norm_map[ACTION] directly (NormalizerProcessorStep._normalize_action). */
static pi0_status read_norm_step(const char *dir, const char *file, const cJSON *step, const char *feature,
                                 const char *type, int is_action, int dim, pi0_lr_norm *nm) {
    const cJSON *cfg = item(step, "config");
    if (!cJSON_IsObject(cfg)) return pi0_err(PI0_ERR_FORMAT, "%s: step '%s' has no 'config' object", file, step->string ? step->string : "normalizer");
    double eps = LR_DEFAULT_EPS;
    const cJSON *e = item(cfg, "eps");
    if (e) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0) || !isfinite(e->valuedouble))
            return pi0_err(PI0_ERR_FORMAT, "%s: normalizer 'config.eps' is not a non-negative number", file);
        eps = e->valuedouble;
    }
    const cJSON *feats = item(cfg, "features"), *keys = item(cfg, "normalize_observation_keys");
    if (feats && !cJSON_IsObject(feats)) return pi0_err(PI0_ERR_FORMAT, "%s: normalizer 'config.features' is not an object", file);
    if (keys && !cJSON_IsArray(keys)) return pi0_err(PI0_ERR_FORMAT, "%s: 'config.normalize_observation_keys' is not a list", file);
    int mode;
    pi0_status st;
    if (is_action) {
        if ((st = map_mode(file, "config.norm_map", item(cfg, "norm_map"), type, &mode))) return st;
    } else {
        const cJSON *f = item(feats, feature);
        mode = PI0_LR_IDENTITY;
        int listed = f != NULL;
        if (listed && keys) {
            listed = 0;
            const cJSON *k;
            cJSON_ArrayForEach(k, keys) if (cJSON_IsString(k) && !strcmp(k->valuestring, feature)) listed = 1;
        }
        if (listed) {
            const cJSON *t = item(f, "type");
            if (!cJSON_IsString(t)) return pi0_err(PI0_ERR_FORMAT, "%s: 'config.features.%s.type' is not a string", file, feature);
            if (strcmp(t->valuestring, "ACTION") &&
                (st = map_mode(file, "config.norm_map", item(cfg, "norm_map"), t->valuestring, &mode)))
                return st;
        }
    }
    const cJSON *sf = item(step, "state_file");
    if (sf && !cJSON_IsString(sf)) return pi0_err(PI0_ERR_FORMAT, "%s: 'state_file' is not a string", file);
    return load_stats(dir, sf ? sf->valuestring : NULL, feature, mode, (float)eps, dim, nm);
}

// ---- relative actions (processor/relative_action_processor.py _build_mask) ---------------------

static void lower(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static pi0_status read_relative(pi0_lerobot *lr, const char *file, const cJSON *step) {
    const cJSON *cfg = item(step, "config");
    if (!cJSON_IsObject(cfg)) return pi0_err(PI0_ERR_FORMAT, "%s: relative_actions_processor has no 'config'", file);
    const cJSON *en = item(cfg, "enabled"), *ex = item(cfg, "exclude_joints"), *names = item(cfg, "action_names");
    if (en && !cJSON_IsBool(en)) return pi0_err(PI0_ERR_FORMAT, "%s: relative_actions_processor 'enabled' is not a bool", file);
    lr->relative = en && cJSON_IsTrue(en);
    if (!lr->relative) return PI0_OK;
    if ((ex && !cJSON_IsArray(ex)) || (names && !cJSON_IsArray(names)))
        return pi0_err(PI0_ERR_FORMAT, "%s: relative_actions_processor 'exclude_joints'/'action_names' are not lists", file);
    int a = lr->action_dim;
    lr->n_rel = a;
    for (int i = 0; i < a; i++) lr->rel_mask[i] = 1;
    int n_tokens = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, ex) if (cJSON_IsString(t) && t->valuestring[0]) n_tokens++;
    if (!n_tokens || !names) return PI0_OK;
    int i = 0;
    const cJSON *nm;
    cJSON_ArrayForEach(nm, names) {
        if (i >= a) break;
        char name[256];
        snprintf(name, sizeof name, "%s", cJSON_IsString(nm) ? nm->valuestring : "");
        lower(name);
        cJSON_ArrayForEach(t, ex) {
            if (!cJSON_IsString(t) || !t->valuestring[0]) continue;
            char tok[256];
            snprintf(tok, sizeof tok, "%s", t->valuestring);
            lower(tok);
            if (strstr(name, tok)) lr->rel_mask[i] = 0;   /* token == name or token in name */
        }
        i++;
    }
    return PI0_OK;
}

static pi0_status read_renames(pi0_lerobot *lr, const char *file, const cJSON *step) {
    const cJSON *map = item(item(step, "config"), "rename_map"), *e;
    if (!map) return PI0_OK;
    if (!cJSON_IsObject(map)) return pi0_err(PI0_ERR_FORMAT, "%s: 'rename_map' is not an object", file);
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e)) return pi0_err(PI0_ERR_FORMAT, "%s: rename_map['%s'] is not a string", file, e->string);
        if (lr->n_renames == PI0_LR_MAX_RENAMES) return pi0_err(PI0_ERR_UNSUPPORTED, "%s: more than %d renames", file, PI0_LR_MAX_RENAMES);
        int k = lr->n_renames;
        lr->rename_from[k] = strdup(e->string);
        lr->rename_to[k] = strdup(e->valuestring);
        lr->n_renames++;
        if (!lr->rename_from[k] || !lr->rename_to[k]) return pi0_err(PI0_ERR_NOMEM, "%s", file);
    }
    return PI0_OK;
}

/* Walk one pipeline file's steps. `pre` selects the preprocessor's steps of interest. */
static pi0_status read_pipeline(pi0_lerobot *lr, const char *name, int pre, int *have_file, int *have_norm) {
    char *path = join(lr->dir, name);
    if (!path) return pi0_err(PI0_ERR_NOMEM, "%s", lr->dir);
    cJSON *root = NULL;
    pi0_status st = read_json(path, 1, &root);
    *have_file = root != NULL;
    *have_norm = 0;
    if (st || !root) goto done;
    const cJSON *steps = item(root, "steps"), *s;
    if (!cJSON_IsArray(steps)) { st = pi0_err(PI0_ERR_FORMAT, "%s: 'steps' is missing or not a list", path); goto done; }
    int k = 0;
    cJSON_ArrayForEach(s, steps) {
        const cJSON *rn = item(s, "registry_name");
        if (!cJSON_IsObject(s)) { st = pi0_err(PI0_ERR_FORMAT, "%s: steps[%d] is not an object", path, k); goto done; }
        const char *r = cJSON_IsString(rn) ? rn->valuestring : "";
        if (pre && !strcmp(r, "normalizer_processor")) {
            *have_norm = 1;
            st = read_norm_step(lr->dir, path, s, "observation.state", "STATE", 0, lr->state_dim, &lr->state_norm);
            for (int c = 0; c < lr->n_cams && !st; c++)
                st = read_norm_step(lr->dir, path, s, lr->cams[c], "VISUAL", 0, 3, &lr->cam_norm[c]);
        } else if (!pre && !strcmp(r, "unnormalizer_processor")) {
            *have_norm = 1;
            st = read_norm_step(lr->dir, path, s, "action", "ACTION", 1, lr->action_dim, &lr->action_unnorm);
        } else if (pre && !strcmp(r, "rename_observations_processor")) {
            st = read_renames(lr, path, s);
        } else if (pre && !strcmp(r, "relative_actions_processor")) {
            st = read_relative(lr, path, s);
        }
        if (st) goto done;
        k++;
    }
done:
    cJSON_Delete(root);
    free(path);
    return st;
}

pi0_status pi0_lerobot_load(const char *dir, int model_action_dim, pi0_lerobot **out) {
    if (!dir || !out) return pi0_err(PI0_ERR_ARG, "pi0_lerobot_load: NULL argument");
    *out = NULL;
    pi0_lerobot *lr = calloc(1, sizeof *lr);
    if (!lr || !(lr->dir = strdup(dir))) { free(lr); return pi0_err(PI0_ERR_NOMEM, "%s", dir); }
    char *cfg_path = join(dir, "config.json");
    cJSON *root = NULL;
    pi0_status st = cfg_path ? read_json(cfg_path, 0, &root) : pi0_err(PI0_ERR_NOMEM, "%s", dir);
    if (!st) st = read_config(lr, cfg_path, root);
    cJSON_Delete(root);
    if (st) goto fail;
    if (lr->action_dim == 0) lr->action_dim = model_action_dim;
    if (lr->action_dim > model_action_dim || lr->action_dim > PI0_LR_MAX_DIMS) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: output_features.action has %d dims, more than the model's %d", cfg_path,
                     lr->action_dim, model_action_dim);
        goto fail;
    }
    if (lr->n_cams == 0) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: input_features declares no VISUAL feature (camera)", cfg_path);
        goto fail;
    }
    int pre_file, pre_norm, post_file, post_norm;
    if ((st = read_pipeline(lr, "policy_preprocessor.json", 1, &pre_file, &pre_norm)) ||
        (st = read_pipeline(lr, "policy_postprocessor.json", 0, &post_file, &post_norm)))
        goto fail;
    if (lr->relative && lr->state_dim > 0 && lr->state_dim < lr->n_rel) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s/policy_preprocessor.json: relative actions over %d action dims need a state "
                                          "of at least as many dims (observation.state has %d)", dir, lr->n_rel, lr->state_dim);
        goto fail;
    }
    if (pre_file || post_file) lr->old_layout = 0;
    lr->has_stats = lr->state_norm.mode != PI0_LR_IDENTITY || lr->action_unnorm.mode != PI0_LR_IDENTITY;
    for (int c = 0; c < lr->n_cams; c++) lr->has_stats |= lr->cam_norm[c].mode != PI0_LR_IDENTITY;
    if (!pre_file && !post_file) {
        /* processor files appeared with lerobot 0.4; before, the statistics lived in the weights */
        if ((st = pi0_lerobot_load_old_stats(lr))) goto fail;
    } else if (!lr->has_stats)
        pi0_log(PI0_LOG_INFO, "%s: the LeRobot processor files hold no statistics (a base checkpoint): states and actions "
                              "are not normalized", dir);
    free(cfg_path);
    *out = lr;
    return PI0_OK;
fail:
    free(cfg_path);
    pi0_lerobot_free(lr);
    return st;
}

// ---- lerobot <= 0.3: statistics as buffers in the weights (policies/normalize.py) -------------------

/* The safetensors file holding tensor `name`: model.safetensors, or the shard the index names.
 * *f NULL with PI0_OK when there is no such tensor. */
static pi0_status open_for(const char *dir, const char *name, pi0_st_file **f) {
    *f = NULL;
    char *p = join(dir, "model.safetensors");
    if (!p) return pi0_err(PI0_ERR_NOMEM, "%s", dir);
    FILE *probe = fopen(p, "rb");
    pi0_status st = PI0_OK;
    if (probe) {
        fclose(probe);
        st = pi0_st_open(p, f);
    } else {
        char *ip = join(dir, "model.safetensors.index.json");
        cJSON *idx = NULL;
        st = ip ? read_json(ip, 1, &idx) : pi0_err(PI0_ERR_NOMEM, "%s", dir);
        const cJSON *shard = item(item(idx, "weight_map"), name);
        if (!st && cJSON_IsString(shard) && !strchr(shard->valuestring, '/')) {
            char *sp = join(dir, shard->valuestring);
            st = sp ? pi0_st_open(sp, f) : pi0_err(PI0_ERR_NOMEM, "%s", dir);
            free(sp);
        }
        cJSON_Delete(idx);
        free(ip);
    }
    free(p);
    if (!st && *f && !pi0_st_find(*f, name)) {
        pi0_st_close(*f);
        *f = NULL;
    }
    return st;
}

/* One feature's buffers "<module>.buffer_<key with . -> _>.<stat>" (with or without "model."). */
static pi0_status old_stats(pi0_lerobot *lr, const char *module, const char *feature, int mode, int dim, pi0_lr_norm *nm) {
    memset(nm, 0, sizeof *nm);
    if (mode == PI0_LR_IDENTITY) return PI0_OK;
    if (mode != PI0_LR_MEAN_STD && mode != PI0_LR_MIN_MAX)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: normalization_mapping mode %s did not exist before lerobot 0.4", lr->dir,
                       mode_name(mode));
    static const char *pre[2] = {"", "model."};
    char base[256], first[300];
    pi0_st_file *f = NULL;
    pi0_status st = PI0_OK;
    for (int k = 0; k < 2 && !f && !st; k++) {
        int n = snprintf(base, sizeof base, "%s%s.buffer_%s", pre[k], module, feature);
        for (int i = n - (int)strlen(feature); i < n; i++)
            if (base[i] == '.') base[i] = '_';
        snprintf(first, sizeof first, "%s.%s", base, mode == PI0_LR_MEAN_STD ? "mean" : "min");
        st = open_for(lr->dir, first, &f);
    }
    if (st) return st;
    if (!f) {
        pi0_log(PI0_LOG_WARN, "%s: no normalization buffers for '%s' in the weights: it is not normalized", lr->dir, feature);
        return PI0_OK;
    }
    float *probe = NULL;
    if ((st = pi0_st_read_f32(f, first, &probe, NULL))) goto done;
    if (isinf(probe[0])) {   /* LeRobot initializes the buffers to inf and refuses to run on them */
        pi0_log(PI0_LOG_WARN, "%s: the normalization buffers of '%s' are unset (inf), as in a base checkpoint: it is not "
                              "normalized (lerobot would refuse to run)", f->path, feature);
        goto done;
    }
    int n = dim > 0 ? dim : -1;
    const char *a = mode == PI0_LR_MEAN_STD ? "mean" : "min", *b = mode == PI0_LR_MEAN_STD ? "std" : "max";
    if ((st = read_stat(f, base, a, mode, &nm->a, &n)) || (st = read_stat(f, base, b, mode, &nm->b, &n))) {
        pi0_lr_norm_free(nm);
        goto done;
    }
    nm->mode = mode == PI0_LR_MIN_MAX ? PI0_LR_MIN_MAX_OLD : mode;
    nm->n = n;
    nm->eps = (float)LR_DEFAULT_EPS;
done:
    free(probe);
    pi0_st_close(f);
    return st;
}

pi0_status pi0_lerobot_load_old_stats(pi0_lerobot *lr) {
    pi0_status st = PI0_OK;
    if (lr->state_dim > 0)
        st = old_stats(lr, "normalize_inputs", "observation.state", lr->old_modes[1], lr->state_dim, &lr->state_norm);
    if (!st) st = old_stats(lr, "unnormalize_outputs", "action", lr->old_modes[2], lr->action_dim, &lr->action_unnorm);
    for (int c = 0; c < lr->n_cams && !st; c++)
        st = old_stats(lr, "normalize_inputs", lr->cams[c], lr->old_modes[0], 3, &lr->cam_norm[c]);
    if (!st && lr->state_norm.mode == PI0_LR_IDENTITY && lr->action_unnorm.mode == PI0_LR_IDENTITY)
        pi0_log(PI0_LOG_WARN, "%s: no policy_preprocessor.json / policy_postprocessor.json and no statistics in the "
                              "weights: states and actions are not normalized", lr->dir);
    return st;
}

void pi0_lerobot_free(pi0_lerobot *lr) {
    if (!lr) return;
    for (int i = 0; i < lr->n_cams; i++) free(lr->cams[i]);
    for (int i = 0; i < lr->n_renames; i++) {
        free(lr->rename_from[i]);
        free(lr->rename_to[i]);
    }
    pi0_lr_norm_free(&lr->state_norm);
    for (int c = 0; c < PI0_LR_MAX_CAMS; c++) pi0_lr_norm_free(&lr->cam_norm[c]);
    pi0_lr_norm_free(&lr->action_unnorm);
    free(lr->dir);
    free(lr);
}

// ---- maths (normalize_processor.py _apply_transform, float32) ----------------------------------

/* One value of dim i: normalize_processor.py _apply_transform in float32. */
static float lr_one(const pi0_lr_norm *nm, int i, int inverse, float v) {
    const float a = nm->a[i], b = nm->b[i], eps = nm->eps;
    if (nm->mode == PI0_LR_MEAN_STD) return inverse ? v * b + a : (v - a) / (b + eps);
    if (nm->mode == PI0_LR_MIN_MAX_OLD) return inverse ? (v + 1.0f) / 2.0f * (b - a) + a : (v - a) / (b - a + eps) * 2.0f - 1.0f;
    float den = b - a;
    if (den == 0.0f) den = eps;
    if (nm->mode == PI0_LR_MIN_MAX) return inverse ? (v + 1.0f) / 2.0f * den + a : 2.0f * (v - a) / den - 1.0f;
    return inverse ? (v + 1.0f) * den / 2.0f + a : 2.0f * (v - a) / den - 1.0f;   /* QUANTILES, QUANTILE10 */
}

pi0_status pi0_lr_apply(const pi0_lr_norm *nm, int inverse, const char *what, float *x, int d) {
    if (nm->mode == PI0_LR_IDENTITY) return PI0_OK;
    if (d != nm->n)
        return pi0_err(PI0_ERR_ARG, "'%s' has %d values but its LeRobot statistics have %d", what, d, nm->n);
    for (int i = 0; i < d; i++) x[i] = lr_one(nm, i, inverse, x[i]);
    return PI0_OK;
}

void pi0_lr_apply_dim(const pi0_lr_norm *nm, int c, float *x, size_t count) {
    if (nm->mode == PI0_LR_IDENTITY || c >= nm->n) return;
    for (size_t i = 0; i < count; i++) x[i] = lr_one(nm, c, 0, x[i]);
}
