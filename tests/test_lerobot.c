/* test_lerobot.c - LeRobot checkpoints through the public policy API (pi0_policy.h).
 *
 * Without arguments: the API-level checks that need no generated checkpoint (a directory that is not
 * a LeRobot checkpoint, pi0_lr_apply's length check and exact formulas on hand-computed values).
 * With arguments it is the helper tests/test_lerobot.py drives (the comparison with an independent
 * numpy/Pillow/sentencepiece re-implementation of LeRobot's processors lives there):
 *   test_lerobot policy CKPT_DIR SEED PROMPT_HEX OUT.raw  KEY:DTYPE:D0xD1x..:FILE ...
 * loads CKPT_DIR, builds a policy with default parameters (no robot, tokenizer or stats given: the
 * checkpoint must describe itself), runs one observation (DTYPE u8 | f32 | f64; FILE = raw bytes)
 * and writes OUT.raw (int32 rows, cols, float32 data). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/lerobot.h"
#include "pi0_policy.h"

#define MAX_ARR 12

static void *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static int helper(int argc, char **argv) {
    const char *dir = argv[2], *out = argv[5];
    unsigned long long seed = strtoull(argv[3], NULL, 10);
    size_t hl = strlen(argv[4]) / 2;
    char *prompt = malloc(hl + 1);
    for (size_t i = 0; i < hl; i++) sscanf(argv[4] + 2 * i, "%2hhx", (unsigned char *)&prompt[i]);
    prompt[hl] = '\0';
    pi0_array arr[MAX_ARR];
    void *bufs[MAX_ARR] = {0};
    char keys[MAX_ARR][128];
    int n = 0, rc = 1;
    for (int i = 6; i < argc && n < MAX_ARR; i++, n++) {
        char dt[8], shape[64], file[1024];
        if (sscanf(argv[i], "%127[^:]:%7[^:]:%63[^:]:%1023s", keys[n], dt, shape, file) != 4) {
            fprintf(stderr, "helper: bad array spec '%s'\n", argv[i]);
            goto done;
        }
        pi0_array *a = &arr[n];
        memset(a, 0, sizeof *a);
        a->key = keys[n];
        a->dtype = !strcmp(dt, "u8") ? PI0_ARR_U8 : !strcmp(dt, "f32") ? PI0_ARR_F32 : PI0_ARR_F64;
        for (char *p = shape; *p && a->ndim < 4; a->ndim++) {
            a->shape[a->ndim] = strtoll(p, &p, 10);
            if (*p == 'x') p++;
        }
        if (!(a->data = bufs[n] = read_all(file))) { fprintf(stderr, "helper: cannot read %s\n", file); goto done; }
    }
    pi0_ctx *ctx = NULL;
    pi0_policy *pol = NULL;
    pi0_params p = pi0_params_default();
    p.n_threads = 1;
    pi0_actions act;
    pi0_run_params rp = pi0_run_params_default();
    rp.seed = seed;
    pi0_robot_obs obs = {.n_arrays = n, .arrays = arr, .prompt = prompt};
    if (pi0_load(dir, &p, &ctx) || pi0_policy_new(ctx, dir, NULL, &pol) || pi0_policy_infer(pol, &obs, &rp, &act)) {
        fprintf(stderr, "error: %s\n", pi0_last_error());
    } else {
        FILE *f = fopen(out, "wb");
        int32_t hdr[2] = {act.rows, act.cols};
        rc = !f || fwrite(hdr, sizeof hdr, 1, f) != 1 ||
             fwrite(act.data, sizeof(float), (size_t)act.rows * act.cols, f) != (size_t)act.rows * act.cols;
        if (f && fclose(f)) rc = 1;
    }
    pi0_policy_free(pol);
    pi0_free(ctx);
done:
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(prompt);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "policy")) return helper(argc, argv);
    CHECK(!pi0_lerobot_is_checkpoint("tests/data/pi0_tiny"), "an openpi-style config.json is not a LeRobot checkpoint");
    CHECK(!pi0_lerobot_is_checkpoint("/nonexistent"), "a missing directory is not a LeRobot checkpoint");

    /* Hand-computed values of LeRobot's expressions (normalize_processor.py), float32. */
    float a[2] = {1.0f, -2.0f}, b[2] = {3.0f, -2.0f};
    pi0_lr_norm q = {.mode = PI0_LR_QUANTILES, .n = 2, .a = a, .b = b, .eps = 1e-8f};
    float x[2] = {2.5f, -2.0f};
    pi0_status st = pi0_lr_apply(&q, 0, "action", x, 2);
    /* dim 0: 2 (2.5 - 1) / (3 - 1) - 1 = 0.5; dim 1: q99 == q01, divisor eps: 2 * 0 / eps - 1 = -1 */
    CHECK(st == PI0_OK && x[0] == 0.5f && x[1] == -1.0f, "QUANTILES normalize: %g %g (expected 0.5 -1)", x[0], x[1]);
    st = pi0_lr_apply(&q, 1, "action", x, 2);
    /* inverse: (0.5 + 1) * 2 / 2 + 1 = 2.5; (-1 + 1) * eps / 2 - 2 = -2 */
    CHECK(st == PI0_OK && x[0] == 2.5f && x[1] == -2.0f, "QUANTILES un-normalize: %g %g (expected 2.5 -2)", x[0], x[1]);
    pi0_lr_norm z = {.mode = PI0_LR_MEAN_STD, .n = 2, .a = a, .b = b, .eps = 1e-8f};
    float y[2] = {4.0f, 0.0f};
    st = pi0_lr_apply(&z, 1, "action", y, 2);   /* x * std + mean: no eps on the way back */
    CHECK(st == PI0_OK && y[0] == 13.0f && y[1] == -2.0f, "MEAN_STD un-normalize: %g %g (expected 13 -2)", y[0], y[1]);
    st = pi0_lr_apply(&z, 0, "observation.state", y, 1);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "'observation.state' has 1 values") &&
              strstr(pi0_last_error(), "have 2"), "length mismatch is an error: %s", pi0_last_error());
    return harness_summary();
}
