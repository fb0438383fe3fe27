/* config.c - read config.json into pi0_config.
 *
 * Accepts three spellings of the same facts (PI0_MODEL.md §6.2, §6.3, §9): the test-data fields
 * (vlm_width, siglip_hidden_size, ...), openpi's converter fields (paligemma_variant, action_dim,
 * action_horizon, precision) and LeRobot's PI0Config/PI05Config (type, chunk_size, max_action_dim,
 * num_inference_steps, tokenizer_max_length, ...). Start from the π0 defaults, apply the named
 * variant presets, then every explicit field. A field of the wrong type is an error naming it.
 * Whether the model is π0.5 is decided later from the tensors when the config does not say.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "debug.h"
#include "io/file.h"
#include "model/model.h"
#include "model/variant.h"

/* Full-size defaults; the family-dependent ones (variant.h) are π0's, the fallback family. */
static void defaults_pi0(pi0_config *c) {
    const pi0_variant_desc *v = pi0_variant_get(PI0_VARIANT_PI0);
    memset(c, 0, sizeof *c);
    c->variant = v->id; c->max_token_len = v->max_token_len; c->discrete_state_input = v->discrete_state_input;
    c->action_dim = 32; c->action_horizon = 50; c->n_steps = 10;
    c->n_image_slots = 3; c->image_size = 224; c->patch_size = 14; c->n_channels = 3;
    c->vision_width = 1152; c->vision_depth = 27; c->vision_mlp_dim = 4304; c->vision_heads = 16;
    c->vocab_size = 257152;
    c->vlm_width = 2048; c->vlm_depth = 18; c->vlm_mlp_dim = 16384;
    c->expert_width = 1024; c->expert_depth = 18; c->expert_mlp_dim = 4096;
    c->n_heads = 8; c->n_kv_heads = 1; c->head_dim = 256;
    c->rms_eps = 1e-6f; c->ln_eps = 1e-6f; c->rope_base = 10000.0f;
    c->time_min_period = 0.004; c->time_max_period = 4.0;
}

/* Field readers: absent or null -> unchanged; wrong type, non-integer or out of range -> an error
 * naming the field, the value and the accepted range. Ranges are checked on the double before any
 * conversion (a cast of 1e300 to int is undefined behaviour). */
static const char *type_name(const cJSON *j) {
    return cJSON_IsString(j) ? "a string" : cJSON_IsBool(j) ? "a boolean" : cJSON_IsArray(j) ? "a list"
           : cJSON_IsObject(j) ? "an object" : "not a number";
}

static pi0_status int_value(const char *path, const char *key, const cJSON *j, int *out, int lo, int hi) {
    if (!cJSON_IsNumber(j))
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': expected an integer, got %s", path, key, type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || v != floor(v))
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': %.15g is not an integer", path, key, v);
    if (v < lo || v > hi)
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': %.15g out of range [%d, %d]", path, key, v, lo, hi);
    *out = (int)v;
    return PI0_OK;
}

static pi0_status get_int(const char *path, const cJSON *root, const char *key, int *out, int lo, int hi) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return PI0_OK;
    return int_value(path, key, j, out, lo, hi);
}

/* A real number in (lo, hi] (lo exclusive: eps, bases and periods must be > 0). */
static pi0_status get_real(const char *path, const cJSON *root, const char *key, double *out, double lo, double hi) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return PI0_OK;
    if (!cJSON_IsNumber(j))
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': expected a number, got %s", path, key, type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || !(v > lo) || v > hi)
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': %.15g out of range (%g, %g]", path, key, v, lo, hi);
    *out = v;
    return PI0_OK;
}

static pi0_status get_float(const char *path, const cJSON *root, const char *key, float *out, double lo, double hi) {
    double v = *out;
    pi0_status s = get_real(path, root, key, &v, lo, hi);
    if (s) return s;
    if (!((float)v > (float)lo)) /* 1e-50 passes as a double but is 0 as the float the model uses */
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': %.15g is 0 in float32", path, key, v);
    *out = (float)v;
    return PI0_OK;
}

static pi0_status get_bool(const char *path, const cJSON *root, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return PI0_OK;
    if (!cJSON_IsBool(j)) return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': expected true or false", path, key);
    *out = cJSON_IsTrue(j);
    return PI0_OK;
}

static pi0_status get_str(const char *path, const cJSON *root, const char *key, const char **out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return PI0_OK;
    if (!cJSON_IsString(j)) return pi0_err(PI0_ERR_FORMAT, "%s: field '%s': expected a string", path, key);
    *out = j->valuestring;
    return PI0_OK;
}

static pi0_status apply_gemma_variant(const char *path, const char *key, const char *name, int *width, int *depth,
                                      int *mlp, pi0_config *c) {
    if (!name) return PI0_OK;
    if (strcmp(name, "gemma_2b") == 0) { *width = 2048; *depth = 18; *mlp = 16384; }
    else if (strcmp(name, "gemma_300m") == 0) { *width = 1024; *depth = 18; *mlp = 4096; }
    else if (strcmp(name, "dummy") == 0) { *width = 64; *depth = 4; *mlp = 128; c->n_heads = 8; c->head_dim = 16; }
    else if (strcmp(name, "tiny") == 0) { /* explicit fields follow */ }
    else return pi0_err(PI0_ERR_UNSUPPORTED, "%s: field '%s': variant '%s' unknown (gemma_2b, gemma_300m, dummy)", path, key, name);
    return PI0_OK;
}

#define TRY(x) do { if ((s = (x)) != PI0_OK) goto done; } while (0)

pi0_status pi0_config_load(const char *path, pi0_config *c, int *variant_given) {
    defaults_pi0(c);
    *variant_given = -1;
    char *buf;
    size_t len;
    pi0_status s = pi0_file_read(path, "config", 16u << 20, &buf, &len);
    if (s) return s;
    s = pi0_config_parse(buf, len, path, c, variant_given);
    free(buf);
    return s;
}

pi0_status pi0_config_parse(const char *buf, size_t len, const char *path, pi0_config *c, int *variant_given) {
    defaults_pi0(c);
    *variant_given = -1;
    pi0_status s;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &endp, 0);
    if (!root || !cJSON_IsObject(root)) {
        const char *ep = cJSON_GetErrorPtr();
        long off = (ep && ep >= buf && ep <= buf + len) ? (long)(ep - buf) : 0;
        s = pi0_err(PI0_ERR_FORMAT, "%s: not a JSON object (error near byte %ld)", path, root ? 0L : off);
        goto done;
    }
    /* variant */
    const char *v = NULL;
    int flag = -1;
    TRY(get_bool(path, root, "pi05", &flag));
    if (flag >= 0) *variant_given = flag ? PI0_VARIANT_PI05 : PI0_VARIANT_PI0;
    const char *keys[] = {"variant", "model_type", "type"};
    for (int i = 0; i < 3; i++) {
        v = NULL;
        TRY(get_str(path, root, keys[i], &v));
        const pi0_variant_desc *named = pi0_variant_named(v); /* unknown names (other policies' types) are ignored */
        if (named && (named->id != PI0_VARIANT_PI0 || *variant_given < 0)) *variant_given = named->id;
    }
    if (*variant_given >= 0) pi0_variant_set(c, *variant_given);
    /* -1 = config.json does not say: pi0_load resolves it once the variant is known (possibly from the
     * tensors), so an explicit false is never overridden. */
    c->discrete_state_input = -1;

    const char *pv = NULL, *ev = NULL;
    TRY(get_str(path, root, "paligemma_variant", &pv));
    TRY(get_str(path, root, "action_expert_variant", &ev));
    TRY(apply_gemma_variant(path, "paligemma_variant", pv, &c->vlm_width, &c->vlm_depth, &c->vlm_mlp_dim, c));
    TRY(apply_gemma_variant(path, "action_expert_variant", ev, &c->expert_width, &c->expert_depth, &c->expert_mlp_dim, c));

    const int BIG = 1 << 24;
    /* LeRobot spellings first, so the explicit test-data / openpi fields win when both exist. */
    TRY(get_int(path, root, "max_action_dim", &c->action_dim, 1, 4096));
    TRY(get_int(path, root, "chunk_size", &c->action_horizon, 1, 4096));
    TRY(get_int(path, root, "num_inference_steps", &c->n_steps, 1, PI0_MAX_STEPS));
    TRY(get_int(path, root, "tokenizer_max_length", &c->max_token_len, 1, 65536));
    TRY(get_real(path, root, "min_period", &c->time_min_period, 0, 1e12));
    TRY(get_real(path, root, "max_period", &c->time_max_period, 0, 1e12));
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "image_resolution");
    if (res && !cJSON_IsNull(res)) {
        if (!cJSON_IsArray(res) || cJSON_GetArraySize(res) != 2) {
            s = pi0_err(PI0_ERR_FORMAT, "%s: field 'image_resolution': expected [S, S], got %s", path,
                        cJSON_IsArray(res) ? "a list of another length" : type_name(res));
            goto done;
        }
        int hw[2];
        TRY(int_value(path, "image_resolution[0]", cJSON_GetArrayItem(res, 0), &hw[0], 1, 8192));
        TRY(int_value(path, "image_resolution[1]", cJSON_GetArrayItem(res, 1), &hw[1], 1, 8192));
        if (hw[0] != hw[1]) {
            s = pi0_err(PI0_ERR_UNSUPPORTED, "%s: field 'image_resolution': [%d, %d] is not square", path, hw[0], hw[1]);
            goto done;
        }
        c->image_size = hw[0];
    }
    /* LeRobot: one image slot per VISUAL input feature plus empty_cameras (at least the usual 3) */
    const cJSON *inf = cJSON_GetObjectItemCaseSensitive(root, "input_features"), *feat;
    int n_cams = 0;
    TRY(get_int(path, root, "empty_cameras", &n_cams, 0, 64));
    if (!cJSON_IsObject(inf)) inf = NULL;
    cJSON_ArrayForEach(feat, inf) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(feat, "type");
        n_cams += cJSON_IsString(t) && strcmp(t->valuestring, "VISUAL") == 0 && strncmp(feat->string, "observation.images.empty_camera_", 32) != 0;
    }
    if (n_cams > c->n_image_slots) c->n_image_slots = n_cams;
    TRY(get_int(path, root, "action_dim", &c->action_dim, 1, 4096));
    TRY(get_int(path, root, "action_horizon", &c->action_horizon, 1, 4096));
    TRY(get_int(path, root, "num_denoising_steps", &c->n_steps, 1, PI0_MAX_STEPS));
    TRY(get_int(path, root, "max_token_len", &c->max_token_len, 1, 65536));
    TRY(get_bool(path, root, "discrete_state_input", &c->discrete_state_input));
    TRY(get_int(path, root, "vocab_size", &c->vocab_size, 1, BIG));
    TRY(get_int(path, root, "vlm_width", &c->vlm_width, 1, BIG));
    TRY(get_int(path, root, "vlm_depth", &c->vlm_depth, 1, 1024));
    TRY(get_int(path, root, "vlm_mlp_dim", &c->vlm_mlp_dim, 1, BIG));
    TRY(get_int(path, root, "expert_width", &c->expert_width, 1, BIG));
    TRY(get_int(path, root, "expert_depth", &c->expert_depth, 1, 1024));
    TRY(get_int(path, root, "expert_mlp_dim", &c->expert_mlp_dim, 1, BIG));
    TRY(get_int(path, root, "vlm_num_heads", &c->n_heads, 1, 1024));
    TRY(get_int(path, root, "vlm_num_kv_heads", &c->n_kv_heads, 1, 1024));
    TRY(get_int(path, root, "vlm_head_dim", &c->head_dim, 2, 512));
    int eh = c->n_heads, ekv = c->n_kv_heads, ehd = c->head_dim;
    TRY(get_int(path, root, "expert_num_heads", &eh, 1, 1024));
    TRY(get_int(path, root, "expert_num_kv_heads", &ekv, 1, 1024));
    TRY(get_int(path, root, "expert_head_dim", &ehd, 2, 512));
    if (eh != c->n_heads || ekv != c->n_kv_heads || ehd != c->head_dim) {
        s = pi0_err(PI0_ERR_FORMAT, "%s: expert heads %d/%d/%d differ from the VLM's %d/%d/%d (they share attention)",
                    path, eh, ekv, ehd, c->n_heads, c->n_kv_heads, c->head_dim);
        goto done;
    }
    TRY(get_float(path, root, "rms_norm_eps", &c->rms_eps, 0, 1));
    TRY(get_float(path, root, "rope_base", &c->rope_base, 0, 1e12));
    TRY(get_int(path, root, "siglip_hidden_size", &c->vision_width, 1, BIG));
    TRY(get_int(path, root, "siglip_num_hidden_layers", &c->vision_depth, 1, 1024));
    TRY(get_int(path, root, "siglip_num_attention_heads", &c->vision_heads, 1, 1024));
    TRY(get_int(path, root, "siglip_intermediate_size", &c->vision_mlp_dim, 1, BIG));
    TRY(get_int(path, root, "siglip_image_size", &c->image_size, 1, 8192));
    TRY(get_int(path, root, "siglip_patch_size", &c->patch_size, 1, 8192));
    TRY(get_int(path, root, "siglip_num_channels", &c->n_channels, 3, 3)); /* images are RGB: [N, 3, S, S] */
    TRY(get_float(path, root, "siglip_layer_norm_eps", &c->ln_eps, 0, 1));
    TRY(get_real(path, root, "time_min_period", &c->time_min_period, 0, 1e12));
    TRY(get_real(path, root, "time_max_period", &c->time_max_period, 0, 1e12));
    /* training-time RTC (LeRobot PI05Config): longest clean action prefix seen in training */
    TRY(get_int(path, root, "rtc_training_max_delay", &c->rtc_training_max_delay, 0, 4095));

    /* Consistency the model code relies on. */
    if (c->image_size % c->patch_size)
        s = pi0_err(PI0_ERR_FORMAT, "%s: image size %d is not a multiple of patch size %d", path, c->image_size, c->patch_size);
    else if (c->vision_width % c->vision_heads)
        s = pi0_err(PI0_ERR_FORMAT, "%s: siglip width %d not divisible by %d heads", path, c->vision_width, c->vision_heads);
    else if (c->vision_width / c->vision_heads > 512)
        s = pi0_err(PI0_ERR_UNSUPPORTED, "%s: siglip head dim %d > 512", path, c->vision_width / c->vision_heads);
    else if (c->n_heads % c->n_kv_heads)
        s = pi0_err(PI0_ERR_FORMAT, "%s: %d heads not divisible by %d KV heads", path, c->n_heads, c->n_kv_heads);
    else if (c->head_dim % 2)
        s = pi0_err(PI0_ERR_FORMAT, "%s: head dim %d is odd (RoPE needs pairs)", path, c->head_dim);
    else if (c->expert_width % 2)
        s = pi0_err(PI0_ERR_FORMAT, "%s: expert width %d is odd (time embedding needs sin/cos halves)", path, c->expert_width);
    else if (c->vlm_depth != c->expert_depth)
        s = pi0_err(PI0_ERR_FORMAT, "%s: VLM depth %d != expert depth %d", path, c->vlm_depth, c->expert_depth);
    else if (c->rtc_training_max_delay >= c->action_horizon) /* LeRobot: 0 <= delay < chunk_size */
        s = pi0_err(PI0_ERR_FORMAT, "%s: field 'rtc_training_max_delay': %d must be < the action horizon (chunk_size) %d",
                    path, c->rtc_training_max_delay, c->action_horizon);
    else if (c->time_min_period > c->time_max_period)
        s = pi0_err(PI0_ERR_FORMAT, "%s: time_min_period %g > time_max_period %g", path, c->time_min_period,
                    c->time_max_period);
done:
    cJSON_Delete(root);
    return s;
}

void pi0_config_full(pi0_config *c, int variant) {
    defaults_pi0(c);
    pi0_variant_set(c, variant);
    c->discrete_state_input = pi0_variant_get(c->variant)->discrete_state_input;
}

/* The test data's tiny configuration (PI0_MODEL.md §9). */
void pi0_config_tiny(pi0_config *c, int variant) {
    pi0_config_full(c, variant);
    c->action_dim = 8; c->action_horizon = 5; c->max_token_len = variant == PI0_VARIANT_PI05 ? 96 : 12;
    c->image_size = 56; c->vision_width = 32; c->vision_depth = 2; c->vision_mlp_dim = 80; c->vision_heads = 4;
    c->vocab_size = 300; c->vlm_width = 48; c->vlm_depth = 3; c->vlm_mlp_dim = 96;
    c->expert_width = 32; c->expert_depth = 3; c->expert_mlp_dim = 64;
    c->n_heads = 4; c->n_kv_heads = 1; c->head_dim = 16;
}

pi0_status pi0_config_save(const pi0_config *c, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return pi0_err(PI0_ERR_IO, "%s: cannot create", path);
    const char *v = pi0_variant_get(c->variant) ? pi0_variant_get(c->variant)->name : "pi0";
    fprintf(f, "{\n  \"model_type\": \"%s\",\n  \"variant\": \"%s\",\n  \"pi05\": %s,\n", v, v,
            c->variant == PI0_VARIANT_PI05 ? "true" : "false");
    fprintf(f, "  \"discrete_state_input\": %s,\n", c->discrete_state_input ? "true" : "false");
    fprintf(f, "  \"action_dim\": %d,\n  \"action_horizon\": %d,\n  \"max_token_len\": %d,\n  \"num_denoising_steps\": %d,\n",
            c->action_dim, c->action_horizon, c->max_token_len, c->n_steps);
    fprintf(f, "  \"vocab_size\": %d,\n  \"vlm_width\": %d,\n  \"vlm_depth\": %d,\n  \"vlm_mlp_dim\": %d,\n", c->vocab_size,
            c->vlm_width, c->vlm_depth, c->vlm_mlp_dim);
    fprintf(f, "  \"vlm_num_heads\": %d,\n  \"vlm_num_kv_heads\": %d,\n  \"vlm_head_dim\": %d,\n", c->n_heads, c->n_kv_heads,
            c->head_dim);
    fprintf(f, "  \"expert_width\": %d,\n  \"expert_depth\": %d,\n  \"expert_mlp_dim\": %d,\n", c->expert_width,
            c->expert_depth, c->expert_mlp_dim);
    fprintf(f, "  \"expert_num_heads\": %d,\n  \"expert_num_kv_heads\": %d,\n  \"expert_head_dim\": %d,\n", c->n_heads,
            c->n_kv_heads, c->head_dim);
    fprintf(f, "  \"siglip_hidden_size\": %d,\n  \"siglip_num_hidden_layers\": %d,\n  \"siglip_num_attention_heads\": %d,\n",
            c->vision_width, c->vision_depth, c->vision_heads);
    fprintf(f, "  \"siglip_intermediate_size\": %d,\n  \"siglip_image_size\": %d,\n  \"siglip_patch_size\": %d,\n",
            c->vision_mlp_dim, c->image_size, c->patch_size);
    fprintf(f, "  \"siglip_num_channels\": %d,\n  \"siglip_layer_norm_eps\": %g,\n  \"rms_norm_eps\": %g,\n", c->n_channels,
            (double)c->ln_eps, (double)c->rms_eps);
    if (c->rtc_training_max_delay > 0) fprintf(f, "  \"rtc_training_max_delay\": %d,\n", c->rtc_training_max_delay);
    fprintf(f, "  \"rope_base\": %g,\n  \"time_min_period\": %.17g,\n  \"time_max_period\": %.17g\n}\n", (double)c->rope_base,
            c->time_min_period, c->time_max_period);
    if (fclose(f) != 0) return pi0_err(PI0_ERR_IO, "%s: write failed", path);
    return PI0_OK;
}
