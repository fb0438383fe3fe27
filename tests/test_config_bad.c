/* test_config_bad.c - config.json validation: every numeric field is checked for type and range,
 * and the error names the field (issue 10, finding 3).
 *
 * Starts from tests/data/pi0_tiny/config.json (which must parse), sets one field to one bad value
 * and asserts PI0_ERR_FORMAT/UNSUPPORTED with the field's name in pi0_last_error(). Before this
 * test, `"image_resolution": [-56, -56]` passed and inference read outside the image buffer;
 * [56.7, 56.2] became 56 and [0, "x"] passed. Good values of every field are also checked to be
 * read exactly, so the test cannot pass by rejecting everything. Ends with pi0_load on a checkpoint
 * whose config has image_resolution [-56, -56]. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "model/model.h"

#define SRC "tests/data/pi0_tiny"

static cJSON *base;

static char *read_text(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    if (b && fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
    if (b) b[*n] = '\0';
    fclose(f);
    return b;
}

/* Parse the base config with `field` set to the JSON text `value` (NULL: removed). */
static pi0_status parse_with(const char *field, const char *value, pi0_config *c) {
    cJSON *j = cJSON_Duplicate(base, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(j, field);
    if (value) cJSON_AddItemToObject(j, field, cJSON_Parse(value));
    char *txt = cJSON_PrintUnformatted(j);
    int v;
    pi0_status s = pi0_config_parse(txt, strlen(txt), "cfg.json", c, &v);
    free(txt);
    cJSON_Delete(j);
    return s;
}

static void bad(const char *field, const char *value) {
    pi0_config c;
    pi0_status s = parse_with(field, value, &c);
    const char *m = pi0_last_error();
    CHECK(s != PI0_OK && strstr(m, field) && strstr(m, "cfg.json"), "%s = %s refused: %s", field, value, m);
}

enum { T_INT, T_FLOAT, T_DOUBLE };

/* `field` = `value` parses and the config member at byte `off` (of type `type`) equals want. */
static void good(const char *field, const char *value, size_t off, int type, double want) {
    pi0_config c;
    pi0_status s = parse_with(field, value, &c);
    double got = 0;
    if (s == PI0_OK) {
        const char *p = (const char *)&c + off;
        if (type == T_INT) { int x; memcpy(&x, p, sizeof x); got = x; }
        else if (type == T_FLOAT) { float x; memcpy(&x, p, sizeof x); got = x; }
        else memcpy(&got, p, sizeof got);
    }
    CHECK(s == PI0_OK && got == want, "%s = %s accepted as %.9g (want %.9g): %s", field, value, got, want,
          s ? pi0_last_error() : "ok");
}

#define OFF(f) offsetof(pi0_config, f)

typedef struct {
    const char *name;
    int lo, hi;
} int_field;

int main(void) {
    size_t n;
    char *txt = read_text(SRC "/config.json", &n);
    base = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!base) { printf("cannot read " SRC "/config.json\n0 passed, 1 failed\n"); return 1; }
    /* image_resolution is read before siglip_image_size, which would override it */
    cJSON_DeleteItemFromObjectCaseSensitive(base, "siglip_image_size");
    pi0_config c;
    int v;
    char *bt = cJSON_PrintUnformatted(base);
    CHECK(pi0_config_parse(bt, strlen(bt), "cfg.json", &c, &v) == PI0_OK && c.image_size == 224 && c.vlm_width == 48,
          "base config parses (image 224 by default, vlm_width 48): %s", pi0_last_error());
    free(bt);

    /* image_resolution: the three findings of the issue, then the other shapes */
    bad("image_resolution", "[-56, -56]");
    bad("image_resolution", "[56.7, 56.2]");
    bad("image_resolution", "[0, \"x\"]");
    bad("image_resolution", "[56, \"56\"]");
    bad("image_resolution", "[56]");
    bad("image_resolution", "[56, 56, 56]");
    bad("image_resolution", "\"56\"");
    bad("image_resolution", "[1e300, 1e300]");
    bad("image_resolution", "[56, 28]");
    bad("image_resolution", "[0, 0]");
    good("image_resolution", "[56, 56]", OFF(image_size), T_INT, 56);

    /* every integer field: non-integer, string, boolean, list, below and above its range */
    const int_field ints[] = {
        {"max_action_dim", 1, 4096},
        {"chunk_size", 1, 4096},
        {"num_inference_steps", 1, 10000},
        {"tokenizer_max_length", 1, 65536},
        {"action_dim", 1, 4096},
        {"action_horizon", 1, 4096},
        {"num_denoising_steps", 1, 10000},
        {"max_token_len", 1, 65536},
        {"vocab_size", 1, 1 << 24},
        {"vlm_width", 1, 1 << 24},
        {"vlm_depth", 1, 1024},
        {"vlm_mlp_dim", 1, 1 << 24},
        {"expert_width", 1, 1 << 24},
        {"expert_depth", 1, 1024},
        {"expert_mlp_dim", 1, 1 << 24},
        {"vlm_num_heads", 1, 1024},
        {"vlm_num_kv_heads", 1, 1024},
        {"vlm_head_dim", 2, 512},
        {"expert_num_heads", 1, 1024},
        {"expert_num_kv_heads", 1, 1024},
        {"expert_head_dim", 2, 512},
        {"siglip_hidden_size", 1, 1 << 24},
        {"siglip_num_hidden_layers", 1, 1024},
        {"siglip_num_attention_heads", 1, 1024},
        {"siglip_intermediate_size", 1, 1 << 24},
        {"siglip_image_size", 1, 8192},
        {"siglip_patch_size", 1, 8192},
        {"siglip_num_channels", 3, 3},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const int_field *f = &ints[i];
        char lo[32], hi[32];
        snprintf(lo, sizeof lo, "%d", f->lo - 1);
        snprintf(hi, sizeof hi, "%lld", (long long)f->hi + 1);
        bad(f->name, lo);
        bad(f->name, hi);
        bad(f->name, "2.5");
        bad(f->name, "\"8\"");
        bad(f->name, "true");
        bad(f->name, "[8]");
        bad(f->name, "1e300");
        bad(f->name, "-1e300");
    }
    /* and a good value of each field that has its own slot is read exactly */
    good("action_dim", "6", OFF(action_dim), T_INT, 6);
    good("chunk_size", "7", OFF(action_horizon), T_INT, 5); /* the explicit action_horizon wins */
    good("vocab_size", "1000", OFF(vocab_size), T_INT, 1000);
    good("num_denoising_steps", "3", OFF(n_steps), T_INT, 3);
    good("siglip_patch_size", "7", OFF(patch_size), T_INT, 7);

    /* real fields: > 0 and finite */
    const char *reals[] = {"rms_norm_eps", "siglip_layer_norm_eps", "rope_base", "time_min_period", "time_max_period",
                           "min_period", "max_period"};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        bad(reals[i], "0");
        bad(reals[i], "-1");
        bad(reals[i], "-1e-6");
        bad(reals[i], "\"1e-6\"");
        bad(reals[i], "1e300");
        bad(reals[i], "true");
    }
    bad("rms_norm_eps", "2");
    bad("rms_norm_eps", "1e-50");        /* 0 in float32 */
    bad("siglip_layer_norm_eps", "1e-50");
    good("rms_norm_eps", "1e-5", OFF(rms_eps), T_FLOAT, (double)1e-5f);
    good("rope_base", "500000", OFF(rope_base), T_FLOAT, 500000);
    good("time_min_period", "0.01", OFF(time_min_period), T_DOUBLE, 0.01);
    {
        pi0_config cc;
        pi0_status s = parse_with("time_min_period", "5", &cc); /* > time_max_period 4 */
        CHECK(s != PI0_OK && strstr(pi0_last_error(), "time_min_period"), "time_min_period > time_max_period: %s",
              pi0_last_error());
    }

    /* end to end: a checkpoint whose config says image_resolution [-56, -56] does not load */
    char dir[] = "/tmp/pi0-cfg-XXXXXX";
    if (mkdtemp(dir)) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "cp " SRC "/model.safetensors %s/", dir);
        int ok = system(cmd) == 0;
        cJSON *j = cJSON_Duplicate(base, 1);
        cJSON_AddItemToObject(j, "image_resolution", cJSON_Parse("[-56, -56]"));
        char *t = cJSON_PrintUnformatted(j);
        snprintf(cmd, sizeof cmd, "%s/config.json", dir);
        FILE *f = fopen(cmd, "w");
        if (f) { fputs(t, f); fclose(f); }
        free(t);
        cJSON_Delete(j);
        pi0_ctx *ctx = NULL;
        pi0_status s = ok ? pi0_load(dir, NULL, &ctx) : PI0_ERR_IO;
        CHECK(s == PI0_ERR_FORMAT && !ctx && strstr(pi0_last_error(), "image_resolution"),
              "pi0_load with image_resolution [-56, -56]: %s", pi0_last_error());
        pi0_free(ctx);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    }
    cJSON_Delete(base);
    return harness_summary();
}
