/* test_alloc.c - after a warm-up inference, pi0_infer allocates nothing, and inside the denoising
 * loop nothing is copied either (counted by the linker-wrapped malloc/memcpy family of
 * tools/alloc_count.c, which sees every call made by the library). Fast and ref paths, π0 and π0.5,
 * with and without real-time chunking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "loop_probe.h"
#include "pi0.h"

/* rtc_mode < 0: no real-time chunking; else a pi0_rtc_mode with a previous chunk guiding every row. */
static void check_dir(const char *dir, int backend, int pi05, int rtc_mode) {
    pi0_params p = pi0_params_default();
    p.backend = backend;
    p.n_threads = 2;
    pi0_ctx *ctx;
    pi0_state *st;
    if (pi0_load(dir, &p, &ctx) || pi0_state_new(ctx, &st)) { CHECK(0, "load %s: %s", dir, pi0_last_error()); return; }
    const pi0_config *c = pi0_config_of(ctx);
    int S = c->image_size, L = c->max_token_len, A = c->action_dim, H = c->action_horizon;
    float *img = calloc((size_t)3 * 3 * S * S, sizeof(float)), *act = malloc((size_t)H * A * sizeof(float));
    float state[64] = {0.1f, -0.2f};
    int32_t im[3] = {1, 0, 1}, *tok = calloc((size_t)L, sizeof(int32_t)), *tm = calloc((size_t)L, sizeof(int32_t));
    for (int i = 0; i < L - 2; i++) { tok[i] = 2 + i; tm[i] = 1; }
    pi0_obs obs = {3, img, im, L, tok, tm, pi05 ? 0 : A, state};
    loop_probe lp = {.allocs = -1, .bytes = -1, .last = c->n_steps - 1}; /* -1: the loop was never seen */
    pi0_run_params rp = pi0_run_params_default();
    float *prev = calloc((size_t)H * A, sizeof(float));
    pi0_rtc_params rtc = pi0_rtc_params_default();
    rtc.mode = rtc_mode;
    rtc.delay = 1;
    rtc.horizon = 1;
    rtc.prev_actions = prev;
    rtc.n_prev = H - 1;
    if (rtc_mode >= 0) rp.rtc = &rtc;
    pi0_status s = pi0_infer(st, &obs, &rp, NULL, act, (size_t)H * A); /* warm-up */
    rp.tap = loop_probe_tap;
    rp.tap_user = &lp;
    int64_t a0 = pi0_count_allocs();
    if (s == PI0_OK) s = pi0_infer(st, &obs, &rp, NULL, act, (size_t)H * A);
    int64_t a1 = pi0_count_allocs();
    const char *name = rtc_mode == PI0_RTC_GUIDED      ? (backend == PI0_BACKEND_REF ? "ref rtc" : "fast rtc")
                       : rtc_mode == PI0_RTC_GUIDED_FD ? (backend == PI0_BACKEND_REF ? "ref rtc-fd" : "fast rtc-fd")
                                                       : (backend == PI0_BACKEND_REF ? "ref" : "fast");
    CHECK(s == PI0_OK, "%s %s: runs (%s)", dir, name, s ? pi0_last_error() : "ok");
    CHECK(a1 - a0 == 0, "%s %s: allocations in a whole inference after warm-up: %lld", dir, name, (long long)(a1 - a0));
    CHECK(lp.allocs == 0, "%s %s: allocations inside the denoising loop: %lld", dir, name, (long long)lp.allocs);
    CHECK(lp.bytes == 0, "%s %s: bytes copied inside the denoising loop: %lld", dir, name, (long long)lp.bytes);
    free(img); free(act); free(tok); free(tm); free(prev);
    pi0_state_free(st);
    pi0_free(ctx);
}

static char *volatile sink;

int main(void) {
    /* the counter itself works: one malloc and a 100-byte memcpy are seen */
    /* (sizes through a volatile so the compiler cannot inline or elide the calls) */
    volatile size_t n = 100;
    int64_t a = pi0_count_allocs(), b = pi0_count_copied_bytes();
    sink = malloc(n);
    char src[100] = {1};
    memcpy(sink, src, n);
    CHECK(pi0_count_allocs() - a == 1 && pi0_count_copied_bytes() - b == 100, "counters see malloc (%lld) and memcpy (%lld bytes)",
          (long long)(pi0_count_allocs() - a), (long long)(pi0_count_copied_bytes() - b));
    free(sink);
    check_dir("tests/data/pi0_tiny", PI0_BACKEND_FAST, 0, -1);
    check_dir("tests/data/pi0_tiny", PI0_BACKEND_REF, 0, -1);
    check_dir("tests/data/pi05_tiny", PI0_BACKEND_FAST, 1, -1);
    /* real-time chunking: guidance and the finite-difference probe pass use state buffers only */
    check_dir("tests/data/pi0_tiny", PI0_BACKEND_FAST, 0, PI0_RTC_GUIDED);
    check_dir("tests/data/pi0_tiny", PI0_BACKEND_FAST, 0, PI0_RTC_GUIDED_FD);
    check_dir("tests/data/pi05_tiny", PI0_BACKEND_FAST, 1, PI0_RTC_GUIDED_FD);
    return harness_summary();
}
