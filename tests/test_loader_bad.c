/* test_loader_bad.c - bad files and bad inputs never crash and are named in the error.
 *
 * Each case copies tests/data/pi0_tiny into a temporary directory, breaks one thing (the
 * safetensors header, the data, config.json, or the inputs), and asserts the status code and that
 * pi0_last_error() names the tensor, field or byte at fault. Also: an unknown extra tensor loads
 * with one warning, and API misuse (NULL arguments) returns PI0_ERR_ARG. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "io/image.h"
#include "io/tokenizer.h"
#include "pi0.h"

#define SRC "tests/data/pi0_tiny"
#define QK "paligemma_with_expert.paligemma.model.language_model.layers.1.self_attn.q_proj.weight"

static char tmpdir[256];
static unsigned char *model_bytes;
static size_t model_size, header_len;

static int read_all(const char *path, unsigned char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*n + 1);
    size_t got = fread(*buf, 1, *n, f);
    fclose(f);
    return got == *n ? 0 : -1;
}

static void write_file(const char *name, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void reset_dir(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", tmpdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", tmpdir);
    unlink(p); /* may be a FIFO left by a case */
    snprintf(p, sizeof p, "%s/model.safetensors", tmpdir);
    unlink(p);
    rmdir(p);
    unsigned char *cfg;
    size_t n;
    read_all(SRC "/config.json", &cfg, &n);
    write_file("config.json", cfg, n);
    free(cfg);
    write_file("model.safetensors", model_bytes, model_size);
}

/* Write model.safetensors with the header replaced by `json` (data region unchanged). */
static void write_with_header(const char *json) {
    size_t hl = strlen(json), n = 8 + hl + (model_size - 8 - header_len);
    unsigned char *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    memcpy(b + 8 + hl, model_bytes + 8 + header_len, model_size - 8 - header_len);
    write_file("model.safetensors", b, n);
    free(b);
}

static cJSON *header(void) { return cJSON_ParseWithLength((const char *)model_bytes + 8, header_len); }

static void expect_load_error(const char *label, pi0_status want, const char *must_contain) {
    pi0_params p = pi0_params_default();
    p.backend = PI0_BACKEND_REF;
    pi0_ctx *ctx = (pi0_ctx *)1;
    pi0_status s = pi0_load(tmpdir, &p, &ctx);
    const char *msg = pi0_last_error();
    CHECK(s == want && ctx == NULL && strstr(msg, must_contain) != NULL, "%s: status %s (want %s), message: %s", label,
          pi0_status_str(s), pi0_status_str(want), msg);
    if (s == PI0_OK) pi0_free(ctx);
    reset_dir();
}

static void edit_tensor(const char *name, const char *field, cJSON *value, const char *label, pi0_status want,
                        const char *needle) {
    cJSON *h = header();
    cJSON *t = cJSON_GetObjectItemCaseSensitive(h, name);
    cJSON_ReplaceItemInObjectCaseSensitive(t, field, value);
    char *js = cJSON_PrintUnformatted(h);
    write_with_header(js);
    free(js);
    cJSON_Delete(h);
    expect_load_error(label, want, needle);
}

static int warnings;
static void count_warn(pi0_log_level l, const char *msg, void *u) {
    (void)u;
    if (l == PI0_LOG_WARN && strstr(msg, "unknown tensor")) warnings++;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pi0-bad-XXXXXX");
    if (!mkdtemp(tmpdir) || read_all(SRC "/model.safetensors", &model_bytes, &model_size)) {
        printf("setup failed\n0 passed, 1 failed\n");
        return 1;
    }
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | model_bytes[i];
    reset_dir();

    /* container */
    write_file("model.safetensors", model_bytes, model_size - 1000);
    expect_load_error("truncated file", PI0_ERR_FORMAT, "data_offsets end");
    write_file("model.safetensors", model_bytes, 5);
    expect_load_error("file shorter than the length field", PI0_ERR_FORMAT, "too short");
    {
        unsigned char b[64];
        memcpy(b, model_bytes, 64);
        b[4] = 0x7f; /* header length ~ 5e11 */
        write_file("model.safetensors", b, 64);
        expect_load_error("header length past EOF", PI0_ERR_FORMAT, "header length");
    }
    {
        unsigned char *b = malloc(model_size);
        memcpy(b, model_bytes, model_size);
        b[8] = '#'; /* the opening brace */
        write_file("model.safetensors", b, model_size);
        free(b);
        expect_load_error("invalid JSON header", PI0_ERR_FORMAT, "byte");
    }
    {
        cJSON *o = cJSON_CreateIntArray((const int[]){0, 999999999}, 2);
        edit_tensor(QK, "data_offsets", o, "data offsets out of range", PI0_ERR_FORMAT, "data_offsets end");
    }
    {
        /* give the q_proj the offsets of another tensor of the same size: they overlap */
        cJSON *h = header();
        const char *other = "paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight";
        cJSON *src = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, other), "data_offsets");
        edit_tensor(QK, "data_offsets", cJSON_Duplicate(src, 1), "overlapping data offsets", PI0_ERR_FORMAT, "overlap");
        cJSON_Delete(h);
    }
    {
        cJSON *h = header();
        cJSON_DeleteItemFromObjectCaseSensitive(h, QK);
        char *js = cJSON_PrintUnformatted(h);
        write_with_header(js);
        free(js);
        cJSON_Delete(h);
        expect_load_error("missing tensor", PI0_ERR_FORMAT, QK);
    }
    {
        /* [64, 48] -> [48, 64]: same bytes, wrong shape */
        edit_tensor(QK, "shape", cJSON_CreateIntArray((const int[]){48, 64}, 2), "wrong shape", PI0_ERR_FORMAT, QK);
    }
    edit_tensor(QK, "dtype", cJSON_CreateString("F64"), "unsupported dtype", PI0_ERR_UNSUPPORTED, "F64");
    edit_tensor(QK, "dtype", cJSON_CreateString("I32"), "integer dtype for a weight", PI0_ERR_UNSUPPORTED, QK);

    /* config.json */
    write_file("config.json", "{\"action_dim\": \"eight\"}", 23);
    expect_load_error("config field of the wrong type", PI0_ERR_FORMAT, "action_dim");
    write_file("config.json", "{\"vlm_width\": 48,", 17);
    expect_load_error("config not JSON", PI0_ERR_FORMAT, "config.json");
    write_file("config.json", "{\"vlm_width\": 64}", 17);
    expect_load_error("config disagrees with tensors", PI0_ERR_FORMAT, "expected");
    {
        char p[512];
        snprintf(p, sizeof p, "%s/config.json", tmpdir);
        unlink(p);
        expect_load_error("config missing", PI0_ERR_IO, "config.json");
    }

    /* 30 000 empty tensors: refused by counting the header's JSON values before cJSON builds a tree
     * (1e6 of them used to take 918 MB of RSS to reject) */
    {
        size_t cap = 30000 * 64 + 64, k = 0;
        char *h = malloc(cap);
        h[k++] = '{';
        for (int i = 0; i < 30000; i++)
            k += (size_t)snprintf(h + k, cap - k, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                                  i ? "," : "", i);
        h[k++] = '}';
        unsigned char *b = malloc(8 + k);
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)k >> (8 * i));
        memcpy(b + 8, h, k);
        write_file("model.safetensors", b, 8 + k);
        free(b);
        free(h);
        expect_load_error("30 000 empty tensors", PI0_ERR_UNSUPPORTED, "JSON values, over the limit");
    }

    /* model.safetensors.index.json: each message quotes the index's strings, so it is formatted
     * before the parsed index is freed (the release build used to print freed heap bytes here;
     * under make san any read of freed memory aborts) */
    {
        const char *idx = "{\"weight_map\": {\"a.weight\": \"model.safetensors\", \"b.weight\": \"../elsewhere/x.safetensors\"}}";
        write_file("model.safetensors.index.json", idx, strlen(idx));
        expect_load_error("index: shard outside the directory", PI0_ERR_FORMAT, "shard '../elsewhere/x.safetensors'");
        idx = "{\"weight_map\": {\"some.tensor.weight\": 5}}";
        write_file("model.safetensors.index.json", idx, strlen(idx));
        expect_load_error("index: value not a string", PI0_ERR_FORMAT, "weight_map['some.tensor.weight'] is not a string");
        size_t cap = 600 * 64, k = 0;
        char *big = malloc(cap);
        k += (size_t)snprintf(big + k, cap - k, "{\"weight_map\": {");
        for (int i = 0; i < 513; i++)
            k += (size_t)snprintf(big + k, cap - k, "%s\"t%d.weight\": \"shard-%05d.safetensors\"", i ? ", " : "", i, i);
        k += (size_t)snprintf(big + k, cap - k, "}}");
        write_file("model.safetensors.index.json", big, k);
        free(big);
        expect_load_error("index: 513 shards", PI0_ERR_UNSUPPORTED, "more than 512 shard files (at weight_map['t512.weight'])");
        idx = "{\"weight_map\": {\"a\": \"model.safetensors\",";
        write_file("model.safetensors.index.json", idx, strlen(idx));
        expect_load_error("index: invalid JSON", PI0_ERR_FORMAT, "not valid JSON (error near byte");
        idx = "{\"metadata\": {}}";
        write_file("model.safetensors.index.json", idx, strlen(idx));
        expect_load_error("index: no weight_map", PI0_ERR_FORMAT, "no 'weight_map' object");
    }

    /* a FIFO (or any non-regular file) is refused at once instead of blocking open() forever; the
     * alarm turns a hang into a failed run */
    alarm(60);
    {
        char p[512];
        snprintf(p, sizeof p, "%s/model.safetensors", tmpdir);
        unlink(p);
        CHECK(mkfifo(p, 0600) == 0, "mkfifo model.safetensors");
        expect_load_error("model.safetensors is a FIFO", PI0_ERR_FORMAT, "model.safetensors: safetensors file is a FIFO");
        snprintf(p, sizeof p, "%s/config.json", tmpdir);
        unlink(p);
        CHECK(mkfifo(p, 0600) == 0, "mkfifo config.json");
        expect_load_error("config.json is a FIFO", PI0_ERR_FORMAT, "config.json: config is a FIFO");
        snprintf(p, sizeof p, "%s/model.safetensors", tmpdir);
        unlink(p);
        CHECK(mkdir(p, 0700) == 0, "mkdir model.safetensors");
        expect_load_error("model.safetensors is a directory", PI0_ERR_FORMAT, "is a directory");
        /* the other files the library opens by name: images (CLI) and the tokenizer */
        snprintf(p, sizeof p, "%s/cam.png", tmpdir);
        CHECK(mkfifo(p, 0600) == 0, "mkfifo cam.png");
        pi0_image im;
        pi0_status s = pi0_image_load(p, &im);
        CHECK(s == PI0_ERR_FORMAT && strstr(pi0_last_error(), "cam.png: image is a FIFO"), "image file is a FIFO: %s",
              pi0_last_error());
        unlink(p);
        snprintf(p, sizeof p, "%s/tokenizer.model", tmpdir);
        CHECK(mkfifo(p, 0600) == 0, "mkfifo tokenizer.model");
        pi0_tokenizer *tok = NULL;
        s = pi0_tok_load(p, &tok);
        CHECK(s == PI0_ERR_FORMAT && !tok && strstr(pi0_last_error(), "tokenizer.model: tokenizer model is a FIFO"),
              "tokenizer file is a FIFO: %s", pi0_last_error());
        unlink(p);
    }
    alarm(0);

    /* an unknown extra tensor loads, with one warning */
    {
        cJSON *h = header();
        cJSON *t = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(h, QK), 1);
        cJSON_AddItemToObject(h, "some.extra.tensor", t);
        cJSON_ReplaceItemInObjectCaseSensitive(t, "data_offsets", cJSON_CreateIntArray((const int[]){0, 0}, 2));
        cJSON_ReplaceItemInObjectCaseSensitive(t, "shape", cJSON_CreateIntArray((const int[]){0}, 1));
        char *js = cJSON_PrintUnformatted(h);
        write_with_header(js);
        free(js);
        cJSON_Delete(h);
        pi0_log_set(count_warn, NULL);
        pi0_params p = pi0_params_default();
        pi0_ctx *ctx;
        pi0_status s = pi0_load(tmpdir, &p, &ctx);
        pi0_log_set(NULL, NULL);
        CHECK(s == PI0_OK && warnings == 1, "unknown extra tensor: loads (%s) with %d warning(s)", pi0_status_str(s), warnings);
        if (s == PI0_OK) pi0_free(ctx);
        reset_dir();
    }

    /* a NaN weight loads (weights are not scanned) but inference fails with PI0_ERR_NONFINITE naming
     * the first bad action, on both paths; it never returns PI0_OK with NaN actions */
    {
        cJSON *h = header();
        cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, "action_out_proj.bias"), "data_offsets");
        size_t at = 8 + header_len + (size_t)cJSON_GetArrayItem(o, 0)->valuedouble + 3 * sizeof(float);
        cJSON_Delete(h);
        unsigned char *m = malloc(model_size);
        memcpy(m, model_bytes, model_size);
        float nan = NAN;
        memcpy(m + at, &nan, sizeof nan);
        write_file("model.safetensors", m, model_size);
        free(m);
        for (int backend = 0; backend < 2; backend++) {
            pi0_params pp = pi0_params_default();
            pp.backend = backend ? PI0_BACKEND_REF : PI0_BACKEND_FAST;
            pi0_ctx *nc = NULL;
            pi0_state *ns = NULL;
            pi0_status s = pi0_load(tmpdir, &pp, &nc);
            if (s == PI0_OK) s = pi0_state_new(nc, &ns);
            if (s == PI0_OK) {
                const pi0_config *cc = pi0_config_of(nc);
                int Sn = cc->image_size;
                float *im3 = calloc((size_t)3 * 3 * Sn * Sn, sizeof(float)), st8[8] = {0}, a40[40], n40[40] = {0};
                int32_t msk[3] = {1, 0, 0}, tk[12] = {2, 5, 6}, tkm[12] = {1, 1, 1};
                pi0_obs o3 = {3, im3, msk, 12, tk, tkm, 8, st8};
                s = pi0_infer(ns, &o3, NULL, n40, a40, 40);
                free(im3);
            }
            /* the NaN reaches every action through the next steps' x_t: the first bad one is [0, 0] */
            CHECK(s == PI0_ERR_NONFINITE && strstr(pi0_last_error(), "actions[0, 0] = ") && strstr(pi0_last_error(), "nan"),
                  "NaN weight (action_out_proj.bias[3]), %s path: %s: %s", backend ? "ref" : "fast", pi0_status_str(s),
                  pi0_last_error());
            pi0_state_free(ns);
            pi0_free(nc);
        }
        reset_dir();
    }

    /* inputs of the wrong shape and API misuse */
    pi0_ctx *ctx;
    pi0_state *st;
    pi0_params p = pi0_params_default();
    if (pi0_load(SRC, &p, &ctx) || pi0_state_new(ctx, &st)) {
        CHECK(0, "load: %s", pi0_last_error());
        return harness_summary();
    }
    const pi0_config *c = pi0_config_of(ctx);
    int S = c->image_size;
    float *img = calloc((size_t)3 * 3 * S * S, sizeof(float)), state[8] = {0}, act[40], noise[40] = {0};
    int32_t im[3] = {1, 1, 0}, tok[16] = {2, 5, 6}, tm[16] = {1, 1, 1};
    pi0_obs ok = {3, img, im, 12, tok, tm, 8, state};
    CHECK(pi0_infer(st, &ok, NULL, noise, act, 40) == PI0_OK, "valid inputs run: %s", pi0_last_error());
    pi0_obs b = ok;
    b.n_tokens = 13;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "n_tokens"),
          "too many tokens: %s", pi0_last_error());
    b = ok;
    b.n_images = 4;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "n_images"),
          "too many images: %s", pi0_last_error());
    b = ok;
    tok[1] = 300;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "tokens[1]"),
          "token id outside the vocabulary: %s", pi0_last_error());
    tok[1] = 5;
    b.state_dim = 9;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "state_dim"),
          "state too long: %s", pi0_last_error());
    CHECK(pi0_infer(st, &ok, NULL, noise, act, 39) == PI0_ERR_ARG && strstr(pi0_last_error(), "n_actions"),
          "wrong output size: %s", pi0_last_error());

    /* finite guarantee: NaN/Inf inputs are refused naming the value; huge finite inputs give finite
     * actions or PI0_ERR_NONFINITE, never PI0_OK with NaN */
    b = ok;
    state[2] = NAN;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "obs.state[2] = nan"),
          "NaN in the state: %s", pi0_last_error());
    state[2] = -INFINITY;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "obs.state[2] = -inf"),
          "-Inf in the state: %s", pi0_last_error());
    state[2] = 0;
    img[(size_t)1 * 3 * S * S + (size_t)2 * S * S + 3 * S + 4] = INFINITY;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "obs.images[1, 2, 3, 4] = inf"),
          "Inf in an image: %s", pi0_last_error());
    img[(size_t)1 * 3 * S * S + (size_t)2 * S * S + 3 * S + 4] = 0;
    noise[17] = NAN;
    CHECK(pi0_infer(st, &b, NULL, noise, act, 40) == PI0_ERR_ARG && strstr(pi0_last_error(), "noise[2, 1] = nan"),
          "NaN in the noise: %s", pi0_last_error());
    noise[17] = 0;
    for (int big = 0; big < 2; big++) {
        for (int i = 0; i < 8; i++) state[i] = big ? 3e38f : 1e30f;
        pi0_status s = pi0_infer(st, &b, NULL, noise, act, 40);
        int finite = 1;
        for (int i = 0; i < 40; i++) finite &= isfinite(act[i]) != 0;
        CHECK((s == PI0_OK && finite) || (s == PI0_ERR_NONFINITE && strstr(pi0_last_error(), "actions[")),
              "state of %g: %s (%s)", (double)state[0], pi0_status_str(s), s ? pi0_last_error() : "all actions finite");
    }
    memset(state, 0, sizeof state);
    CHECK(pi0_infer(st, &ok, NULL, noise, act, 40) == PI0_OK, "valid inputs run again: %s", pi0_last_error());
    CHECK(pi0_infer(NULL, &ok, NULL, noise, act, 40) == PI0_ERR_ARG, "NULL state: %s", pi0_last_error());
    pi0_ctx *none;
    CHECK(pi0_load(NULL, NULL, &none) == PI0_ERR_ARG && none == NULL, "NULL directory: %s", pi0_last_error());
    CHECK(pi0_load("/nonexistent/dir", NULL, &none) == PI0_ERR_IO && none == NULL && strstr(pi0_last_error(), "/nonexistent/dir"),
          "missing directory: %s", pi0_last_error());
    pi0_free(NULL);
    pi0_state_free(NULL);
    free(img);
    pi0_state_free(st);
    pi0_free(ctx);
    free(model_bytes);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    return harness_summary();
}
