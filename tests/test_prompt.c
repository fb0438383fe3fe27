/* test_prompt.c - π0 / π0.5 prompt builder and state discretization.
 *
 * π0.5: against tests/data/pi05_tiny/case_00 and case_01 (copies of ../shared/testdata/pi05_tiny,
 * made by a PyTorch/NumPy reference with the toy tokenizer "ids = [2] + ASCII codes").
 * π0: against tests/data/tokenizer/gemma_like.pi0.ids, openpi's recipe run with the sentencepiece
 * Python binding on a trained model (tests/gen_tokenizer_data.sh). Cleaning expectations were
 * printed by Python's str.strip(). Run from the repository root.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "harness.h"
#include "io/prompt.h"
#include "io/safetensors.h"

/* toy tokenizer of pi05_tiny: one id per byte, the byte's value */
static pi0_status toy_encode(void *user, const char *text, size_t len, int32_t *ids, int cap, int *n) {
    (void)user;
    for (size_t i = 0; i < len && (int)i < cap; i++) ids[i] = (uint8_t)text[i];
    *n = (int)len;
    return PI0_OK;
}

/* printable copy for labels: control characters as \xHH (a few rotating buffers) */
static const char *esc(const char *s) {
    static char bufs[4][160];
    static int k;
    char *b = bufs[k++ & 3];
    size_t n = 0;
    for (; s && *s && n + 5 < sizeof bufs[0]; s++)
        n += (unsigned char)*s < 0x20 ? (size_t)snprintf(b + n, 5, "\\x%02X", (unsigned char)*s) : (b[n] = *s, 1);
    b[n] = '\0';
    return b;
}

static int n_warnings;
static void count_log(pi0_log_level level, const char *msg, void *user) {
    (void)user;
    (void)msg;
    if (level == PI0_LOG_WARN) n_warnings++;
}

static int64_t read_i32(const pi0_st_file *f, const char *name, int32_t **out) {
    int64_t n = 0;
    *out = NULL;
    if (pi0_st_read_i32(f, name, out, &n)) {
        CHECK(0, "read %s: %s", name, pi0_last_error());
        return -1;
    }
    return n;
}

static int64_t read_f32(const pi0_st_file *f, const char *name, float **out) {
    int64_t n = 0;
    *out = NULL;
    if (pi0_st_read_f32(f, name, out, &n)) {
        CHECK(0, "read %s: %s", name, pi0_last_error());
        return -1;
    }
    return n;
}

static void check_case(int case_id) {
    char path[128];
    snprintf(path, sizeof path, "tests/data/pi05_tiny/case_%02d.safetensors", case_id);
    pi0_st_file *f = NULL;
    if (pi0_st_open(path, &f)) {
        CHECK(0, "open %s: %s", path, pi0_last_error());
        return;
    }
    cJSON *meta = f->metadata_json ? cJSON_Parse(f->metadata_json) : NULL;
    cJSON *cs = meta ? cJSON_GetObjectItem(meta, "case") : NULL;
    cJSON *c = cJSON_IsString(cs) ? cJSON_Parse(cs->valuestring) : NULL;
    const char *task = c ? cJSON_GetStringValue(cJSON_GetObjectItem(c, "task")) : NULL;
    const char *cleaned = c ? cJSON_GetStringValue(cJSON_GetObjectItem(c, "task_cleaned")) : NULL;
    const char *prompt = c ? cJSON_GetStringValue(cJSON_GetObjectItem(c, "prompt")) : NULL;
    int valid = c ? (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "valid_tokens")) : -1;
    CHECK(task && cleaned && prompt && valid > 0, "case %d: metadata has task, task_cleaned, prompt, valid_tokens",
          case_id);
    if (!task || !cleaned || !prompt) goto done;

    int32_t *tokens = NULL, *masks = NULL, *bins = NULL;
    float *state = NULL, *raw = NULL, *q01 = NULL, *q99 = NULL;
    int64_t L = read_i32(f, "tokens", &tokens), Lm = read_i32(f, "token_masks", &masks);
    int64_t D = read_f32(f, "state", &state), Db = read_i32(f, "state_bins", &bins);
    if (L <= 0 || Lm != L || D <= 0 || Db != D) goto free_arrays;

    char cl[256];
    pi0_prompt_clean(task, strlen(task), cl);
    CHECK(strcmp(cl, cleaned) == 0, "case %d: clean('%s') = '%s' (want '%s')", case_id, esc(task), esc(cl), esc(cleaned));

    double st[64];
    int bad = 0;
    for (int64_t i = 0; i < D && i < 64; i++) {
        st[i] = state[i];
        int b = pi0_state_bin(st[i]);
        if (b != bins[i]) printf("     state[%lld] = %.9g: bin %d, want %d\n", (long long)i, st[i], b, bins[i]), bad++;
    }
    CHECK(bad == 0, "case %d: %lld state bins from `state` match state_bins", case_id, (long long)D);

    if (case_id == 1) {
        int64_t nr = read_f32(f, "state_raw", &raw), n1 = read_f32(f, "norm_q01", &q01), n9 = read_f32(f, "norm_q99", &q99);
        if (nr == D && n1 == D && n9 == D) {
            /* openpi quantile normalization in float64 (PI0_MODEL.md §7.5), then bins */
            int badn = 0, badf = 0;
            for (int64_t i = 0; i < D; i++) {
                double n = ((double)raw[i] - q01[i]) / ((double)q99[i] - q01[i] + 1e-6) * 2.0 - 1.0;
                if (pi0_state_bin(n) != bins[i]) badn++;
                if (fabs((float)n - state[i]) > 1e-6 * fmax(1.0, fabs(n))) badf++;
            }
            CHECK(badn == 0 && badf == 0, "case 1: quantile-normalized state_raw gives state (%d off) and state_bins "
                  "(%d off)", badf, badn);
        } else {
            CHECK(0, "case 1: state_raw/norm_q01/norm_q99 sizes %lld/%lld/%lld, want %lld", (long long)nr,
                  (long long)n1, (long long)n9, (long long)D);
        }
    }

    char *text = NULL;
    pi0_status s = pi0_prompt_pi05_text(task, st, (int)D, &text);
    CHECK(s == PI0_OK && strcmp(text, prompt) == 0, "case %d: prompt text '%s' matches the case's", case_id,
          esc(text ? text : pi0_last_error()));
    free(text);

    pi0_text_encoder toy = {toy_encode, NULL, 2};
    int32_t got[512], gotm[512];
    int nv = -1;
    s = pi0_prompt_pi05(&toy, task, st, (int)D, (int)L, got, gotm, &nv);
    int tok_bad = 0, mask_bad = 0;
    for (int64_t i = 0; i < L; i++) {
        if (got[i] != tokens[i] && tok_bad++ < 5) printf("     tokens[%lld] %d want %d\n", (long long)i, got[i], tokens[i]);
        mask_bad += gotm[i] != masks[i];
    }
    CHECK(s == PI0_OK && tok_bad == 0 && mask_bad == 0 && nv == valid,
          "case %d: π0.5 tokens (%lld) and masks identical, %d valid (want %d)", case_id, (long long)L, nv, valid);

free_arrays:
    free(tokens), free(masks), free(bins), free(state), free(raw), free(q01), free(q99);
done:
    cJSON_Delete(c);
    cJSON_Delete(meta);
    pi0_st_close(f);
}

static void check_bins(void) {
    /* README case 0 edge values (from numpy digitize) */
    const double x[] = {-1.0, -1.5, 0.0, 0.9921875, 1.7, (double)0.49999997f, 0.5, -INFINITY, INFINITY};
    const int want[] = {0, -1, 128, 255, 255, 191, 192, -1, 255};
    int bad = 0;
    for (int i = 0; i < 9; i++) bad += pi0_state_bin(x[i]) != want[i];
    CHECK(bad == 0, "bins of the README edge values");
    /* every edge and its neighbours, against the definition (count of edges <= x) - 1 */
    bad = 0;
    for (int k = 0; k < 256; k++) {
        double e = -1.0 + k / 128.0, xs[3] = {nextafter(e, -2.0), e, nextafter(e, 2.0)};
        for (int j = 0; j < 3; j++) {
            int cnt = 0;
            for (int m = 0; m < 256; m++) cnt += -1.0 + m / 128.0 <= xs[j];
            bad += pi0_state_bin(xs[j]) != cnt - 1;
        }
    }
    CHECK(bad == 0, "bins at all 256 edges +- 1 ulp match the definition (%d off)", bad);
    double nan_state[2] = {0.0, NAN};
    char *text = NULL;
    pi0_status s = pi0_prompt_pi05_text("x", nan_state, 2, &text);
    CHECK(s == PI0_ERR_ARG && text == NULL && strstr(pi0_last_error(), "state[1]"), "NaN state rejected: %s",
          pi0_last_error());
}

static void check_clean(void) {
    const struct { const char *in, *want; } t[] = {
        {"  open_the drawer\n", "open the drawer"},
        {"\x1c\xc2\x85" "a b\xe3\x80\x80", "a b"},                                  /* U+001C, U+0085, U+3000 */
        {"\xe2\x80\x8bx\xe2\x80\x8b", "\xe2\x80\x8bx\xe2\x80\x8b"},                /* U+200B is not space */
        {"a_b\nc\td", "a b c\td"},
        {"\xc2\xa0\xe2\x80\xa8 x \xe2\x81\x9f\t\r\v\f", "x"},                      /* U+00A0, U+2028, U+205F */
        {"", ""},
        {" \t\n ", ""},
        {"\xff x \xff", "\xff x \xff"},                                             /* invalid bytes kept */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[64];
        size_t n = pi0_prompt_clean(t[i].in, strlen(t[i].in), out);
        if (n != strlen(t[i].want) || strcmp(out, t[i].want)) bad++, printf("     case %zu: got '%s'\n", i, out);
    }
    CHECK(bad == 0, "cleaning matches Python str.strip() + replacements on %zu strings", sizeof t / sizeof t[0]);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) b[0] = '\0', n = 0;
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}

static void check_pi0_layout(void) {
    pi0_tokenizer *t = NULL;
    if (pi0_tok_load("tests/data/tokenizer/gemma_like.model", &t)) {
        CHECK(0, "load gemma_like.model: %s", pi0_last_error());
        return;
    }
    pi0_text_encoder enc = {0};
    pi0_status es = pi0_text_encoder_spm(t, &enc);
    CHECK(es == PI0_OK && enc.bos_id == 2, "spm encoder: bos id %d", enc.bos_id);
    char *cases = slurp("tests/data/tokenizer/pi0_prompts.txt"), *want = slurp("tests/data/tokenizer/gemma_like.pi0.ids");
    if (!cases || !want) {
        CHECK(0, "read pi0_prompts.txt / gemma_like.pi0.ids");
        goto done;
    }
    char *cs = NULL, *ws = NULL;
    int k = 0;
    for (char *cl = strtok_r(cases, "\n", &cs), *wl = strtok_r(want, "\n", &ws); cl && wl;
         cl = strtok_r(NULL, "\n", &cs), wl = strtok_r(NULL, "\n", &ws), k++) {
        int L = atoi(cl);
        const char *h = strchr(cl, ' ');
        char task[256];
        size_t tn = 0;
        for (h = h ? h + 1 : ""; h[0] && h[1] && tn < sizeof task - 1; h += 2) {
            unsigned v;
            char hx[3] = {h[0], h[1], 0};
            sscanf(hx, "%x", &v);
            task[tn++] = (char)v;
        }
        task[tn] = '\0';
        int32_t wt[256], wm[256], gt[256], gm[256];
        char *p = wl, *end;
        int nw = 0, nm = 0;
        while (nw < 256 && (wt[nw] = (int32_t)strtol(p, &end, 10), end != p)) nw++, p = end;
        p = strchr(wl, '|');
        for (p = p ? p + 1 : wl + strlen(wl); nm < 256 && (wm[nm] = (int32_t)strtol(p, &end, 10), end != p);) nm++, p = end;
        int expect_trunc = 0, valid = 0;
        for (int i = 0; i < nm; i++) valid += wm[i];
        expect_trunc = valid == L && wt[L - 1] != 21; /* 21 = this model's "\n" id: cut off when truncated */
        int before = n_warnings, nv = -1;
        pi0_status s = pi0_prompt_pi0(&enc, task, L, gt, gm, &nv);
        int same = s == PI0_OK && nw == L && nm == L && !memcmp(gt, wt, sizeof(int32_t) * (size_t)L) &&
                   !memcmp(gm, wm, sizeof(int32_t) * (size_t)L) && nv == valid;
        CHECK(same, "π0 prompt %d (L=%d, '%.30s'): tokens/masks identical to openpi's recipe, %d valid", k, L, esc(task), nv);
        CHECK((n_warnings > before) == expect_trunc, "π0 prompt %d: truncation warning %s", k,
              expect_trunc ? "logged" : "not logged");
    }
done:
    free(cases);
    free(want);
    pi0_tok_free(t);
}

int main(void) {
    pi0_log_set(count_log, NULL);
    check_clean();
    check_bins();
    check_case(0);
    check_case(1);
    check_pi0_layout();
    return harness_summary();
}
