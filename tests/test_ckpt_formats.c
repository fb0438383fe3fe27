/* test_ckpt_formats.c - the checkpoint spellings a robot team may hand us all load to the same model:
 * LeRobot-saved names with a leading "model.", the embedding stored only as the tied
 * "paligemma.lm_head.weight", pre-2025 LeRobot module paths, shards with model.safetensors.index.json,
 * and BF16 / F16 tensors. Each variant is written from tests/data/pi0_tiny and must give actions
 * bit-identical to the original on the reference path (same float values), or for BF16/F16 data the
 * same actions as the original with its weights rounded the same way (here: PCC >= 0.999 against the
 * float32 model, since rounding every weight to 8 significant bits moves actions by ~1 %). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "case_io.h"
#include "harness.h"
#include "io/safetensors.h"
#include "pi0.h"

#define SRC "tests/data/pi0_tiny"
static char tmp[256];

typedef enum { PLAIN, PREFIX_MODEL, LM_HEAD_ONLY, OLD_LEROBOT, SHARDED, AS_BF16, AS_F16 } variant;

static const char *old_path(const char *n, char *buf, size_t cap) {
    const char *lm = "paligemma_with_expert.paligemma.model.language_model.";
    const char *vt = "paligemma_with_expert.paligemma.model.vision_tower.";
    const char *mp = "paligemma_with_expert.paligemma.model.multi_modal_projector.";
    if (!strncmp(n, lm, strlen(lm))) snprintf(buf, cap, "model.paligemma_with_expert.paligemma.language_model.model.%s", n + strlen(lm));
    else if (!strncmp(n, vt, strlen(vt))) snprintf(buf, cap, "model.paligemma_with_expert.paligemma.vision_tower.%s", n + strlen(vt));
    else if (!strncmp(n, mp, strlen(mp))) snprintf(buf, cap, "model.paligemma_with_expert.paligemma.multi_modal_projector.%s", n + strlen(mp));
    else snprintf(buf, cap, "model.%s", n);
    return buf;
}

static uint16_t to_f16(float f) { /* round to nearest even, normal range only (weights are small) */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, e = (u >> 23) & 0xff, m = u & 0x7fffff;
    if (e < 103) return (uint16_t)sign; /* underflow to zero */
    if (e < 113) { /* subnormal */
        m |= 0x800000;
        int sh = 126 - (int)e;
        uint32_t r = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((e - 112) << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static int write_variant(variant v, const char *dir) {
    mkdir(dir, 0755);
    char p[512], name[512];
    snprintf(p, sizeof p, "cp " SRC "/config.json %s/", dir);
    if (system(p) != 0) return -1;
    pi0_st_file *f;
    if (pi0_st_open(SRC "/model.safetensors", &f) != PI0_OK) return -1;
    pi0_st_writer *w[2] = {pi0_st_writer_new(), pi0_st_writer_new()};
    void **conv = calloc((size_t)f->n_tensors, sizeof *conv);
    FILE *idx = NULL;
    if (v == SHARDED) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        idx = fopen(p, "w");
        fprintf(idx, "{\"metadata\": {}, \"weight_map\": {");
    }
    for (int i = 0; i < f->n_tensors; i++) {
        const pi0_st_tensor *t = &f->tensors[i];
        const char *n = t->name;
        if (v == PREFIX_MODEL) { snprintf(name, sizeof name, "model.%s", n); n = name; }
        if (v == LM_HEAD_ONLY && strstr(n, "embed_tokens")) n = "paligemma_with_expert.paligemma.lm_head.weight";
        if (v == OLD_LEROBOT) n = old_path(n, name, sizeof name);
        const void *data = t->data;
        pi0_dtype dt = t->dtype;
        if (v == AS_BF16 || v == AS_F16) {
            uint16_t *h = malloc((size_t)t->numel * 2);
            for (int64_t k = 0; k < t->numel; k++) {
                float x;
                memcpy(&x, (const char *)t->data + 4 * k, 4);
                h[k] = v == AS_BF16 ? pi0_f32_to_bf16(x) : to_f16(x);
            }
            conv[i] = h;
            data = h;
            dt = v == AS_BF16 ? PI0_DT_BF16 : PI0_DT_F16;
        }
        int shard = v == SHARDED ? i % 2 : 0;
        pi0_st_writer_add(w[shard], n, dt, t->ndim, t->shape, data);
        if (idx) fprintf(idx, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", n, shard + 1);
    }
    int rc = 0;
    if (idx) {
        fprintf(idx, "}}\n");
        fclose(idx);
        for (int s = 0; s < 2; s++) {
            snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
            rc |= pi0_st_writer_save(w[s], p) != PI0_OK;
        }
    } else {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        rc |= pi0_st_writer_save(w[0], p) != PI0_OK;
    }
    for (int i = 0; i < f->n_tensors; i++) free(conv[i]);
    free(conv);
    pi0_st_writer_free(w[0]);
    pi0_st_writer_free(w[1]);
    pi0_st_close(f);
    return rc ? -1 : 0;
}

static pi0_status actions_of(const char *dir, float *out) {
    pi0_params p = pi0_params_default();
    p.backend = PI0_BACKEND_REF;
    p.n_threads = 2;
    pi0_ctx *ctx;
    pi0_state *st;
    pi0_status s = pi0_load(dir, &p, &ctx);
    if (s) return s;
    if ((s = pi0_state_new(ctx, &st))) { pi0_free(ctx); return s; }
    case_inputs c;
    if (!read_case(SRC "/case_02.safetensors", &c, 0)) { pi0_state_free(st); pi0_free(ctx); return PI0_ERR_IO; }
    pi0_obs obs = case_obs(&c);
    s = pi0_infer(st, &obs, NULL, c.noise, out, (size_t)c.n_act);
    free_case(&c);
    pi0_state_free(st);
    pi0_free(ctx);
    return s;
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/pi0-fmt-XXXXXX");
    if (!mkdtemp(tmp)) { printf("0 passed, 1 failed\n"); return 1; }
    float base[40], got[40];
    pi0_status s = actions_of(SRC, base);
    CHECK(s == PI0_OK, "original loads and runs: %s", s ? pi0_last_error() : "ok");
    const struct { variant v; const char *name; int exact; } cases[] = {
        {PREFIX_MODEL, "leading 'model.' on every name", 1},
        {LM_HEAD_ONLY, "embedding only as tied lm_head", 1},
        {OLD_LEROBOT, "pre-2025 LeRobot module paths", 1},
        {SHARDED, "two shards + model.safetensors.index.json", 1},
        {AS_BF16, "BF16 tensors", 0},
        {AS_F16, "F16 tensors", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/v%zu", tmp, i);
        if (write_variant(cases[i].v, dir)) { CHECK(0, "%s: could not write the variant", cases[i].name); continue; }
        s = actions_of(dir, got);
        if (s != PI0_OK) { CHECK(0, "%s: %s", cases[i].name, pi0_last_error()); continue; }
        if (cases[i].exact)
            CHECK(memcmp(got, base, sizeof got) == 0, "%s: actions bit-identical to the original", cases[i].name);
        else {
            double pcc = harness_pcc(got, base, 40);
            CHECK(pcc >= 0.999, "%s: loads; actions PCC vs float32 weights %.6f (>= 0.999)", cases[i].name, pcc);
        }
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    return harness_summary();
}
