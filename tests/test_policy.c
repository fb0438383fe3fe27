/* test_policy.c - the robot-level policy (src/policy/) on the tiny checkpoints.
 *
 * Without arguments: setup and error paths (missing tokenizer / norm stats name the paths tried, an
 * unknown preset, a preset wider than the model, no prompt, a missing key) plus a smoke run.
 * Checkpoints: $PI0_TESTDATA (default tests/data)/pi0_tiny; tokenizer:
 * tests/data/policy/tiny.model (300 pieces, see gen.sh).
 *
 * With arguments it is the helper tests/test_policy.py drives to compare the whole transform chain
 * against openpi's logic re-typed in numpy/Pillow/sentencepiece:
 *   test_policy run MANIFEST OUTDIR
 * MANIFEST lines (paths absolute or relative to the cwd):
 *   ckpt P | tokenizer P | norm P | robot NAME | prompt HEX | seed N
 *   array KEY DTYPE NDIM D0 D1 D2 D3 FILE          (a pi0_array; FILE holds the raw bytes)
 *   model NIMG M0 M1 M2 IMAGES_F32 L TOKENS_I32 TMASK_I32 STATE_DIM STATE_F32
 * It writes OUTDIR/policy.raw (int32 rows, cols, float32 data) from pi0_policy_infer and
 * OUTDIR/model.raw (int32 H, A, float32 data) from pi0_infer on the manifest's model inputs with
 * the same seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pi0_policy.h"

#define TOK "tests/data/policy/tiny.model"

static char ckpt[512], ckpt05[512];

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    if (n) *n = (size_t)sz;
    return b;
}

static int write_out(const char *path, int rows, int cols, const float *d) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    int32_t hdr[2] = {rows, cols};
    fwrite(hdr, sizeof hdr, 1, f);
    fwrite(d, sizeof(float), (size_t)rows * cols, f);
    return fclose(f) != 0;
}

static char *unhex(const char *h) {
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) sscanf(h + 2 * i, "%2hhx", (unsigned char *)&s[i]);
    s[n] = '\0';
    return s;
}

static int helper(const char *manifest, const char *outdir) {
    FILE *f = fopen(manifest, "r");
    if (!f) return 2;
    char line[4096], a[1024], b[1024];
    static char keys[16][256], files[16][1024];
    pi0_array arr[16];
    void *bufs[16] = {0};
    int n_arr = 0, rc = 2;
    char c_ckpt[1024] = "", tok[1024] = "", norm[1024] = "", robot[64] = "raw";
    char *prompt = NULL;
    unsigned long long seed = 0;
    int nimg = 0, m[3] = {0}, L = 0, sdim = 0;
    char fimg[1024] = "", ftok[1024] = "", fmask[1024] = "", fstate[1024] = "";
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "ckpt %1023s", a) == 1) strcpy(c_ckpt, a);
        else if (sscanf(line, "tokenizer %1023s", a) == 1) strcpy(tok, a);
        else if (sscanf(line, "norm %1023s", a) == 1) strcpy(norm, a);
        else if (sscanf(line, "robot %63s", a) == 1) strcpy(robot, a);
        else if (sscanf(line, "prompt %1023s", a) == 1) prompt = unhex(a);
        else if (sscanf(line, "seed %llu", &seed) == 1) continue;
        else if (!strncmp(line, "array ", 6) && n_arr < 16) {
            pi0_array *x = &arr[n_arr];
            long long d[4];
            if (sscanf(line, "array %255s %d %d %lld %lld %lld %lld %1023s", keys[n_arr], &x->dtype, &x->ndim, &d[0], &d[1],
                       &d[2], &d[3], files[n_arr]) != 8)
                goto done;
            for (int i = 0; i < 4; i++) x->shape[i] = d[i];
            x->key = keys[n_arr];
            x->data = bufs[n_arr] = read_all(files[n_arr], NULL);
            n_arr++;
        } else if (sscanf(line, "model %d %d %d %d %1023s %d %1023s %1023s %d %1023s", &nimg, &m[0], &m[1], &m[2], fimg, &L,
                          ftok, fmask, &sdim, fstate) == 10) {
            continue;
        }
    }
    (void)b;
    pi0_ctx *ctx = NULL;
    pi0_policy *pol = NULL;
    pi0_state *st = NULL;
    pi0_params p = pi0_params_default();
    p.backend = PI0_BACKEND_REF;
    p.n_threads = 1;
    if (pi0_load(c_ckpt, &p, &ctx)) goto err;
    pi0_policy_params pp = pi0_policy_params_default();
    pp.robot = robot;
    pp.tokenizer_path = tok;
    pp.norm_stats_path = strcmp(norm, "-") ? norm : NULL;
    pp.require_norm_stats = 0;
    if (pi0_policy_new(ctx, NULL, &pp, &pol)) goto err;
    pi0_run_params rp = pi0_run_params_default();
    rp.seed = seed;
    pi0_robot_obs obs = {.n_arrays = n_arr, .arrays = arr, .prompt = prompt};
    pi0_actions act;
    if (pi0_policy_infer(pol, &obs, &rp, &act)) goto err;
    char path[2048];
    snprintf(path, sizeof path, "%s/policy.raw", outdir);
    if (write_out(path, act.rows, act.cols, act.data)) goto err;
    /* The same model on the reference pipeline's inputs. */
    const pi0_config *cfg = pi0_config_of(ctx);
    float *images = read_all(fimg, NULL), *state = sdim ? read_all(fstate, NULL) : NULL;
    int32_t *tokens = read_all(ftok, NULL), *tmask = read_all(fmask, NULL);
    int32_t masks[3] = {m[0], m[1], m[2]};
    size_t na = (size_t)cfg->action_horizon * cfg->action_dim;
    float *out = malloc(sizeof(float) * na);
    pi0_obs mo = {.n_images = nimg, .images = images, .image_masks = masks, .n_tokens = L, .tokens = tokens,
                  .token_masks = tmask, .state_dim = sdim, .state = state};
    int ok = images && tokens && tmask && out && pi0_state_new(ctx, &st) == PI0_OK &&
             pi0_infer(st, &mo, &rp, NULL, out, na) == PI0_OK;
    snprintf(path, sizeof path, "%s/model.raw", outdir);
    if (ok && !write_out(path, cfg->action_horizon, cfg->action_dim, out)) rc = 0;
    free(images); free(state); free(tokens); free(tmask); free(out);
err:
    if (rc) fprintf(stderr, "helper: %s\n", pi0_last_error());
    pi0_state_free(st);
    pi0_policy_free(pol);
    pi0_free(ctx);
done:
    fclose(f);
    for (int i = 0; i < n_arr; i++) free(bufs[i]);
    free(prompt);
    return rc;
}

// ---- unit tests --------------------------------------------------------------------------------

static pi0_status new_policy(pi0_ctx *ctx, const char *dir, const char *robot, const char *tok, const char *norm,
                             int require, pi0_policy **pol) {
    pi0_policy_params pp = pi0_policy_params_default();
    pp.robot = robot;
    pp.tokenizer_path = tok;
    pp.norm_stats_path = norm;
    pp.require_norm_stats = require;
    return pi0_policy_new(ctx, dir, &pp, pol);
}

static void test_setup_errors(pi0_ctx *ctx) {
    pi0_policy *pol = NULL;
    pi0_status st = new_policy(ctx, ckpt, "libero", NULL, NULL, 0, &pol);
    CHECK(st == PI0_ERR_IO && strstr(pi0_last_error(), "tokenizer.model") &&
              strstr(pi0_last_error(), "paligemma_tokenizer.model") &&
              strstr(pi0_last_error(), "/nonexistent/pi0_test_hf_hub/models--google--paligemma-3b-pt-224/snapshots/") &&
              strstr(pi0_last_error(), "/nonexistent/pi0_test_openpi/big_vision/paligemma_tokenizer.model") &&
              strstr(pi0_last_error(), "google/paligemma-3b-pt-224") && pol == NULL,
          "no tokenizer next to the checkpoint: %s", pi0_last_error());
    st = new_policy(ctx, ckpt, "libero", TOK, NULL, 1, &pol);
    CHECK(st == PI0_ERR_IO && strstr(pi0_last_error(), "norm_stats.json") && strstr(pi0_last_error(), ckpt),
          "no norm stats, required: %s", pi0_last_error());
    st = new_policy(ctx, ckpt, "libero", TOK, "/nonexistent/ns.json", 1, &pol);
    CHECK(st == PI0_ERR_IO && strstr(pi0_last_error(), "/nonexistent/ns.json"), "bad norm path: %s", pi0_last_error());
    st = new_policy(ctx, ckpt, "franka", TOK, NULL, 0, &pol);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "'franka'"), "unknown robot: %s", pi0_last_error());
    st = new_policy(ctx, ckpt, "aloha", TOK, NULL, 0, &pol);
    CHECK(st == PI0_ERR_UNSUPPORTED && strstr(pi0_last_error(), "14"), "aloha on an 8-dim model: %s", pi0_last_error());
    /* Norm stats wider than the model's action_dim. */
    char path[] = "/tmp/pi0_test_policy_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("{\"norm_stats\": {\"state\": {\"mean\": [0,0,0,0,0,0,0,0,0], \"std\": [1,1,1,1,1,1,1,1,1]},"
          " \"actions\": {\"mean\": [0,0,0,0,0,0,0,0,0], \"std\": [1,1,1,1,1,1,1,1,1]}}}", f);
    fclose(f);
    st = new_policy(ctx, ckpt, "raw", TOK, path, 1, &pol);
    CHECK(st == PI0_ERR_FORMAT && strstr(pi0_last_error(), path) && strstr(pi0_last_error(), "9 dims"),
          "9-dim stats on an 8-dim model: %s", pi0_last_error());
    remove(path);
}

static void test_infer(pi0_ctx *ctx) {
    pi0_policy *pol = NULL;
    pi0_status st = new_policy(ctx, ckpt, "libero", TOK, NULL, 0, &pol);
    CHECK(st == PI0_OK && !strcmp(pi0_policy_metadata_json(pol), "{}"), "libero policy without norm stats (%s)",
          st ? pi0_last_error() : "");
    if (st) return;
    static uint8_t img[48 * 64 * 3];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 13);
    double state[8] = {0.1, -0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8};
    pi0_array in[3] = {{"observation/image", PI0_ARR_U8, 3, {48, 64, 3}, img},
                       {"observation/wrist_image", PI0_ARR_U8, 3, {3, 48, 64}, img},
                       {"observation/state", PI0_ARR_F64, 1, {8}, state}};
    pi0_robot_obs obs = {.n_arrays = 3, .arrays = in, .prompt = NULL};
    pi0_actions act;
    st = pi0_policy_infer(pol, &obs, NULL, &act);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "Prompt is required"), "no prompt: %s", pi0_last_error());
    obs.prompt = "fold the towel";
    st = pi0_policy_infer(pol, &obs, NULL, &act);
    int finite = st == PI0_OK;
    for (int i = 0; finite && i < act.rows * act.cols; i++) finite = isfinite(act.data[i]);
    CHECK(st == PI0_OK && act.rows == 5 && act.cols == 7 && finite && act.total_ms >= act.infer_ms,
          "libero infer: %dx%d finite actions, model %.2f ms of %.2f ms (%s)", act.rows, act.cols, act.infer_ms,
          act.total_ms, st ? pi0_last_error() : "");
    obs.n_arrays = 2;
    st = pi0_policy_infer(pol, &obs, NULL, &act);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "observation/state"), "missing state: %s", pi0_last_error());
    pi0_policy_free(pol);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "run")) return helper(argv[2], argv[3]);
    /* The tokenizer search also looks in the user's Hugging Face and openpi caches: point them at
     * nothing so "no tokenizer" stays an error on a machine that has PaliGemma's tokenizer cached. */
    setenv("HF_HUB_CACHE", "/nonexistent/pi0_test_hf_hub", 1);
    setenv("OPENPI_DATA_HOME", "/nonexistent/pi0_test_openpi", 1);
    const char *td = getenv("PI0_TESTDATA");
    snprintf(ckpt, sizeof ckpt, "%s/pi0_tiny", td ? td : "tests/data");
    snprintf(ckpt05, sizeof ckpt05, "%s/pi05_tiny", td ? td : "tests/data");
    pi0_params p = pi0_params_default();
    p.n_threads = 1;
    pi0_ctx *ctx = NULL;
    pi0_status st = pi0_load(ckpt, &p, &ctx);
    CHECK(st == PI0_OK, "load %s (%s)", ckpt, st ? pi0_last_error() : "");
    if (st == PI0_OK) {
        test_setup_errors(ctx);
        test_infer(ctx);
    }
    pi0_free(ctx);
    return harness_summary();
}
