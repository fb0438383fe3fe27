/* cmd_gen_random.c - `pi0 gen-random`: write a random checkpoint (config.json + model.safetensors,
 * LeRobot naming) plus a sample observation (sample_inputs.safetensors, the case-file tensor names).
 *
 * No real π0 weights can be downloaded here, so this is the embedded default for the demo and for
 * full-size benchmarks: the same loader and model code run on it as on a real checkpoint. Values
 * follow the test data's init (PI0_MODEL.md §9): linear weights uniform with variance 1/fan_in
 * (q/k 2.25/fan_in), biases small, Gemma norm offsets ~N(0, 0.1²), LayerNorm scales ~1. Tensors are
 * generated and written one at a time, so a 6.5 GB bf16 file needs one tensor of memory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "tools_api.h"
#include "opts.h"
#include "pi0.h"

typedef struct {
    pi0_st_writer *w;
    pi0_dtype dtype;
    uint64_t seed;
    char **names;
    int64_t *fan_in;
    int n, cap;
    int64_t total_bytes, done_bytes;
    double t0;
} gen_state;

static void on_tensor(const char *name, int nd, const int64_t *shape, void *user) {
    gen_state *g = user;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 512;
        g->names = realloc(g->names, (size_t)g->cap * sizeof *g->names);
        g->fan_in = realloc(g->fan_in, (size_t)g->cap * sizeof *g->fan_in);
    }
    int64_t fan = 1, numel = 1;
    for (int i = 0; i < nd; i++) numel *= shape[i];
    for (int i = 1; i < nd; i++) fan *= shape[i];
    g->names[g->n] = strdup(name);
    g->fan_in[g->n] = nd >= 2 ? fan : 0;
    g->n++;
    g->total_bytes += numel * (int64_t)pi0_dtype_size(g->dtype);
    pi0_st_writer_add(g->w, name, g->dtype, nd, shape, NULL);
}

static uint64_t next_u64(uint64_t *s) { /* xorshift64*: fast, plenty for random weights */
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Uniform in [-1, 1) scaled: variance a²/3. */
static float uni(uint64_t *s) { return (float)((double)(next_u64(s) >> 11) * 0x1.0p-52 - 1.0); }

static int ends_with(const char *s, const char *t) {
    size_t n = strlen(s), m = strlen(t);
    return n >= m && strcmp(s + n - m, t) == 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static pi0_status fill(int i, void *buf, size_t nbytes, void *user) {
    gen_state *g = user;
    const char *name = g->names[i];
    size_t es = pi0_dtype_size(g->dtype), n = nbytes / es;
    uint64_t s = g->seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 0xbf58476d1ce4e5b9ull + 1;
    float base = 0, amp;
    int64_t fan = g->fan_in[i];
    if (strstr(name, "layer_norm") || strstr(name, "post_layernorm.weight")) {
        base = ends_with(name, ".weight") ? 1.0f : 0.0f; /* LayerNorm scale ~1, bias ~0 */
        amp = 0.17f;
    } else if (strstr(name, "position_embedding")) {
        amp = 0.87f; /* std 0.5 */
    } else if (strstr(name, "embed_tokens") || strstr(name, "lm_head")) {
        amp = (float)sqrt(3.0 / 2048.0);
    } else if (fan > 0) {
        double var = (strstr(name, "q_proj") || strstr(name, "k_proj")) ? 2.25 / (double)fan : 1.0 / (double)fan;
        amp = (float)sqrt(3.0 * var);
    } else {
        amp = 0.17f; /* RMSNorm offsets (std 0.1) and biases */
    }
    for (size_t k = 0; k < n; k++) {
        float v = base + amp * uni(&s);
        if (g->dtype == PI0_DT_BF16) {
            uint16_t h = 0;
            uint32_t u;
            memcpy(&u, &v, 4);
            u += 0x7fffu + ((u >> 16) & 1u);
            h = (uint16_t)(u >> 16);
            memcpy((char *)buf + 2 * k, &h, 2);
        } else {
            memcpy((char *)buf + 4 * k, &v, 4);
        }
    }
    int64_t before = g->done_bytes * 100 / (g->total_bytes ? g->total_bytes : 1);
    g->done_bytes += (int64_t)nbytes;
    int64_t after = g->done_bytes * 100 / (g->total_bytes ? g->total_bytes : 1);
    if (g->total_bytes > (1ll << 28) && after != before) { /* at most once per percent */
        fprintf(stderr, "\r  writing weights: %5.1f%% (%.1f / %.1f GB, %.0f s)", 100.0 * (double)g->done_bytes / (double)g->total_bytes,
                (double)g->done_bytes / 1e9, (double)g->total_bytes / 1e9, now_s() - g->t0);
        if (g->done_bytes == g->total_bytes) fputc('\n', stderr);
    }
    return PI0_OK;
}

/* A sample observation: all slots but the last valid, random pixels, a prompt of random ids with
 * some padding, a random state. */
static pi0_status write_sample(const pi0_config *c, const char *path, uint64_t seed) {
    int S = c->image_size, N = c->n_image_slots, L = c->max_token_len, A = c->action_dim;
    size_t npix = (size_t)N * 3 * S * S;
    float *img = malloc(npix * sizeof *img), *state = malloc((size_t)A * sizeof *state);
    int32_t *imask = malloc((size_t)N * sizeof *imask), *tok = malloc((size_t)L * sizeof *tok), *tmask = malloc((size_t)L * sizeof *tmask);
    if (!img || !state || !imask || !tok || !tmask) {
        free(img); free(state); free(imask); free(tok); free(tmask);
        return PI0_ERR_NOMEM;
    }
    uint64_t s = seed * 31 + 7;
    for (size_t i = 0; i < npix; i++) img[i] = uni(&s);
    for (int i = 0; i < N; i++) imask[i] = N == 1 || i < N - 1;
    int valid = L > 4 ? L - L / 4 : L;
    for (int i = 0; i < L; i++) {
        tok[i] = i == 0 ? 2 : (i < valid ? 3 + (int32_t)(next_u64(&s) % (uint64_t)(c->vocab_size - 3)) : 0);
        tmask[i] = i < valid;
    }
    for (int i = 0; i < A; i++) state[i] = 0.5f * uni(&s);
    pi0_st_writer *w = pi0_st_writer_new();
    int64_t si[5] = {1, N, 3, S, S}, sm[2] = {1, N}, st[2] = {1, L}, ss[2] = {1, A};
    pi0_st_writer_add(w, "images", PI0_DT_F32, 5, si, img);
    pi0_st_writer_add(w, "image_masks", PI0_DT_I32, 2, sm, imask);
    pi0_st_writer_add(w, "tokens", PI0_DT_I32, 2, st, tok);
    pi0_st_writer_add(w, "token_masks", PI0_DT_I32, 2, st, tmask);
    pi0_st_writer_add(w, "state", PI0_DT_F32, 2, ss, state);
    pi0_status r = pi0_st_writer_save(w, path);
    pi0_st_writer_free(w);
    free(img); free(state); free(imask); free(tok); free(tmask);
    return r;
}

int cmd_gen_random(int argc, char **argv) {
    const char *out = NULL;
    unsigned long long seed = 0;
    int action_dim = 0, preset = 0, dtype = -1; /* dtype: -1 = the preset's */
    const opt_spec opts[] = {
        {.name = "--preset", .type = OPT_CHOICE, .dest = &preset, .choices = "tiny|full|tiny-pi05|full-pi05", .required = 1,
         .help = "tiny: the test data's sizes (~0.2 M parameters); full: π0 (3.24 G parameters,\n"
                 "6.5 GB in bf16); tiny-pi05, full-pi05: the π0.5 variant"},
        {.name = "--out", .type = OPT_STR, .dest = &out, .meta = "DIR", .required = 1,
         .help = "output directory (created if missing)"},
        {.name = "--dtype", .type = OPT_CHOICE, .dest = &dtype, .choices = "f32|bf16", .def = "f32 for tiny, bf16 for full",
         .help = "weight dtype"},
        OPT_SEED(&seed, "random seed"),
        {.name = "--action-dim", .type = OPT_INT, .dest = &action_dim, .meta = "N", .lo = 1, .hi = 4096,
         .def = "the preset's", .help = "model action/state width (e.g. 32 to serve 14-dim ALOHA from a tiny model)"},
        {0},
    };
    const opt_group groups[] = {{NULL, opts}};
    const opt_cmd cmd = {
        .name = "gen-random",
        .usage = "pi0 gen-random --preset tiny|full|tiny-pi05|full-pi05 --out DIR [--dtype f32|bf16] [--seed N]\n"
                 "               [--action-dim N]",
        .about = "Write a random checkpoint (DIR/config.json, DIR/model.safetensors, LeRobot tensor names) and a sample\n"
                 "observation DIR/sample_inputs.safetensors for `pi0 run --inputs`."};
    int r = opt_parse(&cmd, groups, 1, argc, argv, NULL);
    if (r) return r == OPT_HELP ? 0 : 2;
    pi0_config c;
    int full = preset == 1 || preset == 3;
    if (full) pi0_config_full(&c, preset == 3 ? PI0_VARIANT_PI05 : PI0_VARIANT_PI0);
    else pi0_config_tiny(&c, preset == 2 ? PI0_VARIANT_PI05 : PI0_VARIANT_PI0);
    if (action_dim) c.action_dim = action_dim;
    pi0_dtype dt = dtype == 0 ? PI0_DT_F32 : dtype == 1 ? PI0_DT_BF16 : full ? PI0_DT_BF16 : PI0_DT_F32;

    if (mkdir(out, 0755) != 0 && errno != EEXIST) return cli_error("%s: cannot create directory: %s", out, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", out);
    if (pi0_config_save(&c, path) != PI0_OK) return cli_error("%s", pi0_last_error());
    gen_state g = {pi0_st_writer_new(), dt, seed, NULL, NULL, 0, 0, 0, 0, now_s()};
    pi0_status s = pi0_weights_expected(&c, on_tensor, &g);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (s == PI0_OK) s = pi0_st_writer_save_stream(g.w, path, fill, &g);
    for (int i = 0; i < g.n; i++) free(g.names[i]);
    free(g.names);
    free(g.fan_in);
    pi0_st_writer_free(g.w);
    if (s != PI0_OK) return cli_error("%s", pi0_last_error());
    snprintf(path, sizeof path, "%s/sample_inputs.safetensors", out);
    if (write_sample(&c, path, seed) != PI0_OK) return cli_error("%s: cannot write the sample observation", path);
    printf("wrote %s: %s %s, %d tensors, %.1f MB (%.1f s); sample observation %s\n", out,
           c.variant == PI0_VARIANT_PI05 ? "pi05" : "pi0", dt == PI0_DT_BF16 ? "bf16" : "f32", g.n,
           (double)g.total_bytes / 1e6, now_s() - g.t0, path);
    return 0;
}
