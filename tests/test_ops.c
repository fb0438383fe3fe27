/* test_ops.c - every op of every backend (pi0_backend_at) against the reference backend (src/ops/ref/), on
 * random inputs whose sizes include 1, primes and values that are not multiples of 16/32/64.
 *
 * Each backend member is called directly, looping ith = 0..nth-1 sequentially for nth in {1,2,3}
 * (every output element must be written exactly once by the union of the calls). Outputs carry
 * guard floats after the last element (sentinels) that must come back untouched, and rows of
 * padded strides must keep their padding. Each check prints max |d|, NMSE, PCC, the tolerance and
 * up to 5 mismatches. Tolerances (why):
 *   matmul, bf16 kind: activations and weights are rounded to bf16 (8 significant bits: rel. error
 *     up to 2^-8 each, reached for values just above a power of two), the products of the rounded
 *     values are exact in fp32, so |d| <= ((1+2^-8)^2 - 1) * S + fp32 accumulation (7.8e-3 * S),
 *     with S = sum_k |x w| + |bias| + |y_in|: tol = 8e-3 * S (k = 2 cases reach 6.9e-3 * S). Also
 *     PCC >= 0.9999.
 *   matmul, f32 kind: fp32 accumulation of k terms vs the double oracle: tol = 1e-5 * S.
 *   attention: fp32 throughout (logits, softmax, weighted sum, fp32 accumulation) vs the oracle's
 *     double sums. The output is a convex combination of V rows; its error is dominated by the
 *     logit error (an hd-term fp32 dot: random-walk rounding ~sqrt(hd)·2^-24·|logit terms|, ~1e-6
 *     here) times max|v|, plus the nk-term fp32 sums of the weights and of p·v (~sqrt(nk)·2^-24
 *     relative). Observed max|d| <= ~1e-6·max|v|; tolerance with 10x margin:
 *     |d| <= 1e-5·(1 + max|v|), and PCC >= 0.99999. The fast kernel must also give bit-identical
 *     results for any nth (every output is computed by the same per-lane sequence), and the
 *     portable kernel is checked too (same tolerance).
 *   norms: fp32 sums vs double: 2e-5 * (1 + |ref|).  GELU/swish: vector exp (~1 ulp) through
 *     x / (1 + e^(-2z)); the argument 2z carries |2z| ulp: 1e-5 * |ref| + 1e-7 (max rel ~1e-6).
 *   softmax inside attention, rope (same double sin/cos), mod, add/axpy, embed, patches: the same
 *     float formulas as ref, so 1e-6 relative (rope, mod: FMA contraction may differ) or exact.
 *   NaN/Inf parity: an input NaN must give NaN at the same outputs in both backends.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/fast/fast.h"
#include "ops/fast/isa.h"
#include "ops/ops.h"
#include "ops/ref/ref.h"
#include "rt/cpu.h"

/* The backend under test (every backend of pi0_backend_at other than the reference, in turn) and
 * the reference it is compared to. Cases that reach into the fast backend's internals (GEMM drivers,
 * packed bytes, row kernels of each ISA) run when the backend under test is the fast one. */
static const pi0_backend *BE, *REF;

#define GUARD 16
#define SENT 12345.678f

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static float *fbuf(int64_t n, float scale) {
    float *p = malloc(sizeof(float) * (size_t)(n + GUARD));
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    for (int i = 0; i < GUARD; i++) p[n + i] = SENT;
    return p;
}
static float *fcopy(const float *src, int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n + GUARD));
    memcpy(p, src, sizeof(float) * (size_t)(n + GUARD));
    return p;
}

/* Compare got/want over n values with per-element tolerance tol[i] (or tol0 when tol is NULL);
 * also requires PCC >= min_pcc (0 = not checked) and intact guards after n. */
static void compare(const char *label, const float *got, const float *want, int64_t n, const float *tol,
                    double tol0, double min_pcc) {
    double maxd = 0, se = 0, sr = 0, worst_ratio = 0;
    int64_t bad = 0, shown = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = tol ? tol[i] : tol0, d = fabs((double)got[i] - want[i]);
        int nan_bad = isnan(got[i]) != isnan(want[i]) || (isinf(want[i]) && got[i] != want[i]);
        if (isnan(want[i]) && isnan(got[i])) d = 0;
        if (isinf(want[i]) && got[i] == want[i]) d = 0;
        if (!nan_bad && isfinite(d)) { se += d * d; sr += (double)want[i] * want[i]; }
        if (d > maxd && isfinite(d)) maxd = d;
        if (t > 0 && isfinite(d) && d / t > worst_ratio) worst_ratio = d / t;
        if (nan_bad || d > t || isnan(d)) {
            if (shown++ < 5) printf("     mismatch [%lld] got %.9g want %.9g tol %.3g\n", (long long)i, got[i], want[i], t);
            bad++;
        }
    }
    int guard_ok = 1;
    for (int i = 0; i < GUARD; i++) guard_ok &= got[n + i] == SENT;
    /* PCC over finite pairs only */
    double pcc = 1.0;
    if (min_pcc > 0) {
        float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (isfinite(got[i]) && isfinite(want[i])) { a[m] = got[i]; b[m] = want[i]; m++; }
        pcc = m ? harness_pcc(a, b, m) : 1.0;
        free(a); free(b);
    }
    double nmse = sr > 0 ? se / sr : se;
    harness_result(bad == 0 && guard_ok && (min_pcc <= 0 || pcc >= min_pcc),
                   "%s: n=%lld max|d|=%.3g nmse=%.3g pcc=%.8f worst d/tol=%.3f%s%s", label, (long long)n, maxd,
                   nmse, pcc, worst_ratio, guard_ok ? "" : " GUARD OVERWRITTEN",
                   (min_pcc > 0 && pcc < min_pcc) ? " PCC LOW" : "");
}

#define RUN(member, args, nth) do { for (int ith_ = 0; ith_ < (nth); ith_++) member(args, ith_, nth); } while (0)

/* ---- matmul -------------------------------------------------------------------------------- */

static void *make_weight_data(pi0_dtype dt, const float *v, int64_t n) {
    if (dt == PI0_DT_F32) { float *p = malloc(4 * (size_t)n); memcpy(p, v, 4 * (size_t)n); return p; }
    uint16_t *p = malloc(2 * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        if (dt == PI0_DT_BF16) p[i] = pi0_f32_to_bf16(v[i]);
        else { /* f16 via F16C-free route: values in [-1,1] -> round to 10-bit mantissa by hand */
            float f = v[i];
            uint16_t s = f < 0 ? 0x8000 : 0;
            float a = fabsf(f);
            if (a < 6.103515625e-05f) p[i] = s | (uint16_t)lrintf(a / 5.9604644775390625e-08f);
            else {
                int e; float m = frexpf(a, &e); /* a = m 2^e, m in [0.5,1) */
                long mm = lrintf((m * 2 - 1) * 1024);
                if (mm == 1024) { mm = 0; e++; }
                p[i] = s | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)mm;
            }
        }
    }
    return p;
}

static void test_matmul_one(int64_t m, int64_t k, int64_t n, pi0_dtype dt, int kind, int acc, int bias, int nth,
                            int pad, int inject_nan) {
    int64_t ldx = k + pad, ldy = n + 2 * pad;
    float *wv = fbuf(n * k, 1.0f), *x = fbuf(m * ldx, 1.0f), *b = bias ? fbuf(n, 1.0f) : NULL;
    if (inject_nan && m > 1) x[1 * ldx + k / 2] = NAN;
    float *y0 = fbuf(m * ldy, 1.0f);
    float *yr = fcopy(y0, m * ldy), *yf = fcopy(y0, m * ldy);
    pi0_weight w = {.name = "test.w", .dtype = dt, .data = make_weight_data(dt, wv, n * k), .rows = n, .cols = k};
    pi0_status s = pi0_backend_prepare_weight(BE, &w, kind);
    CHECK(s == PI0_OK, "pack %lldx%lld dtype %d kind %d", (long long)n, (long long)k, dt, kind);
    if (s != PI0_OK) return;
    char why[128];
    pi0_matmul_args ar = {.y = yr, .x = x, .w = &w, .bias = b, .m = m, .ldx = ldx, .ldy = ldy, .accumulate = acc};
    pi0_matmul_args af = ar;
    af.y = yf;
    CHECK(BE->supports(PI0_OP_MATMUL, &af, why, sizeof why), "supports matmul");
    RUN(REF->matmul, &ar, 1);
    RUN(BE->matmul, &af, nth);
    if (nth > 1) { /* any nth (panel or row split) gives the nth = 1 result bit for bit */
        float *y1 = fcopy(y0, m * ldy);
        pi0_matmul_args a1 = ar;
        a1.y = y1;
        RUN(BE->matmul, &a1, 1);
        CHECK(!memcmp(y1, yf, sizeof(float) * (size_t)(m * ldy + GUARD)),
              "matmul m=%lld k=%lld n=%lld kind=%d: nth=1 and nth=%d bit-identical", (long long)m, (long long)k,
              (long long)n, kind, nth);
        free(y1);
    }
    float *tol = malloc(sizeof(float) * (size_t)(m * ldy));
    double rt = kind == PI0_WEIGHTS_F32 ? 1e-5 : 8e-3;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldy; j++) {
            double S = 0;
            if (j < n) {
                for (int64_t p = 0; p < k; p++) S += fabs((double)x[i * ldx + p] * pi0_weight_at(&w, j * k + p));
                if (b) S += fabs(b[j]);
                if (acc) S += fabs(y0[i * ldy + j]);
            }
            tol[i * ldy + j] = (float)(rt * S + 1e-7); /* padding columns: must stay bit-identical */
        }
    char label[160];
    snprintf(label, sizeof label, "matmul m=%lld k=%lld n=%lld dt=%d kind=%s acc=%d bias=%d nth=%d pad=%d%s",
             (long long)m, (long long)k, (long long)n, dt, kind ? "f32" : "bf16", acc, bias, nth, pad,
             inject_nan ? " nan" : "");
    compare(label, yf, yr, m * ldy, tol, 0, kind == PI0_WEIGHTS_BF16 && m * n >= 64 && !inject_nan ? 0.9999 : 0);
    pi0_backend_release_weight(BE, &w);
    CHECK(w.packed == NULL, "unpack clears packed");
    free((void *)w.data); free(wv); free(x); free(b); free(y0); free(yr); free(yf); free(tol);
}

/* Every ISA row this CPU can run gives the current row's GEMM result within the bf16 (or f32)
 * tolerance, and the portable driver too. */
static void test_gemm_variants(void) {
    const int64_t m = 23, k = 75, n = 130;
    float *wv = fbuf(n * k, 1.0f), *x = fbuf(m * k, 1.0f);
    pi0_weight w = {.name = "v", .dtype = PI0_DT_F32, .data = wv, .rows = n, .cols = k};
    for (int kind = 0; kind < 2; kind++) {
        if (pi0_backend_prepare_weight(BE, &w, kind) != PI0_OK) { CHECK(0, "pack"); return; }
        float *y1 = fbuf(m * n, 0), *y2 = fbuf(m * n, 0);
        pi0_fast_gemm_job j = {.c = y1, .ldc = n, .a = x, .lda = k, .b = w.packed, .m = m, .p0 = 0,
                               .p1 = ((pi0_fast_packed *)w.packed)->n_panels};
        pi0_fast_gemm(&j);
        j.c = y2;
        pi0_fast_gemm_generic(&j);
        compare(kind ? "gemm generic vs dispatch (f32 kind)" : "gemm generic vs dispatch (bf16 kind)", y2, y1, m * n,
                NULL, kind ? 1e-5 * k : 1e-5 * k, 0);
        for (int r = 0; r < pi0_fast_isa_count(); r++) {
            const pi0_fast_isa *isa = pi0_fast_isa_at(r);
            if (!pi0_fast_isa_available(isa)) continue;
            char label[96];
            snprintf(label, sizeof label, "gemm %s vs dispatch (%s kind)", isa->name, kind ? "f32" : "bf16");
            j.c = y2;
            pi0_fast_gemm_isa(isa, &j);
            compare(label, y2, y1, m * n, NULL, 1e-5 * k, 0);
        }
        free(y1); free(y2);
        pi0_backend_release_weight(BE, &w);
    }
    free(wv); free(x);
}

/* The dispatched packer (AVX-512 on this machine) writes the same bytes as the portable filler, for
 * every source dtype and kind, odd k, partial panels and a NaN. */
static void test_pack_bytes(void) {
    static const int64_t shapes[][2] = {{1, 1}, {37, 71}, {64, 32}, {130, 33}, {200, 256}, {5, 1000}};
    static const pi0_dtype dts[] = {PI0_DT_F32, PI0_DT_BF16, PI0_DT_F16};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int di = 0; di < 3; di++)
            for (int kind = 0; kind < 2; kind++) {
                int64_t n = shapes[s][0], k = shapes[s][1];
                float *v = fbuf(n * k, 1.0f);
                if (n * k > 5) v[5] = NAN;
                void *data = make_weight_data(dts[di], v, n * k);
                pi0_fast_packed *p = NULL;
                pi0_status st = pi0_fast_pack_weight(&p, data, dts[di], n, k, kind, "test");
                size_t nb = pi0_fast_packed_bytes(n, k, kind);
                void *b2 = aligned_alloc(64, (nb + 63) & ~(size_t)63);
                memset(b2, 0x55, nb);
                int same = 0;
                if (st == PI0_OK) {
                    pi0_fast_packed q = *p;
                    q.data = b2;
                    pi0_fast_pack_fill_generic(&q, data, dts[di]);
                    same = memcmp(p->data, b2, nb) == 0;
                }
                CHECK(st == PI0_OK && same, "pack [%lld, %lld] dtype %d kind %d: dispatched == portable bytes (%zu)",
                      (long long)n, (long long)k, (int)dts[di], kind, nb);
                pi0_fast_packed_free(p);
                free(b2); free(data); free(v);
            }
}


static void test_matmul(void) {
    static const int64_t shapes[][3] = {{1, 1, 1},   {1, 7, 3},     {5, 17, 13},  {13, 64, 65}, {7, 33, 100},
                                        {51, 256, 130}, {31, 97, 64}, {6, 2, 128}, {300, 200, 70},
                                        {50, 1024, 32}, {2, 513, 257}, {37, 300, 3}};
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < ns; s++)
        for (int nth = 1; nth <= 3; nth++) {
            int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
            pi0_dtype dt = (pi0_dtype)((s + nth) % 3); /* F32, BF16, F16 in turn */
            test_matmul_one(m, k, n, dt, PI0_WEIGHTS_BF16, s % 2, (s + nth) % 2, nth, s % 3 == 0 ? 0 : 3, 0);
            if (nth == 2) test_matmul_one(m, k, n, dt, PI0_WEIGHTS_F32, (s + 1) % 2, 1, nth, 2, 0);
        }
    test_matmul_one(9, 40, 70, PI0_DT_BF16, PI0_WEIGHTS_BF16, 0, 1, 2, 0, 1);
    test_matmul_one(9, 40, 70, PI0_DT_F32, PI0_WEIGHTS_F32, 1, 1, 3, 1, 1);
    /* more than one m block (MC = 1024 rows) and more than one k block (bf16: <= 2048 inputs in
     * near-equal even blocks, 2051 -> 2 x 1026, 4501 -> 3 x 1502; f32: 1024); the bias is added in
     * the last k block, after an accumulated y */
    test_matmul_one(1030, 70, 90, PI0_DT_BF16, PI0_WEIGHTS_BF16, 0, 1, 2, 0, 0);
    test_matmul_one(5, 2051, 100, PI0_DT_F32, PI0_WEIGHTS_BF16, 1, 1, 3, 2, 0);
    test_matmul_one(5, 2051, 100, PI0_DT_F32, PI0_WEIGHTS_F32, 1, 1, 2, 2, 0);
    test_matmul_one(7, 4501, 70, PI0_DT_BF16, PI0_WEIGHTS_BF16, 1, 1, 2, 1, 0);
    test_matmul_one(7, 4501, 70, PI0_DT_F32, PI0_WEIGHTS_BF16, 0, 1, 3, 0, 0);
    /* both work splits: rows for few panels (n = 200: 4 panels) and for many rows with n <= 2048
     * (m = 250, n = 600 at nth = 2), panels otherwise; each also against nth = 1 bit for bit */
    test_matmul_one(50, 300, 200, PI0_DT_F32, PI0_WEIGHTS_BF16, 0, 1, 2, 1, 0);
    test_matmul_one(250, 130, 600, PI0_DT_BF16, PI0_WEIGHTS_BF16, 1, 1, 2, 3, 0);
    test_matmul_one(250, 130, 600, PI0_DT_F32, PI0_WEIGHTS_BF16, 0, 0, 3, 0, 0);
    test_matmul_one(3, 64, 200, PI0_DT_F32, PI0_WEIGHTS_BF16, 0, 1, 2, 0, 0);
    pi0_weight w = {.name = "unpacked", .dtype = PI0_DT_F32, .data = NULL, .rows = 4, .cols = 4};
    pi0_matmul_args a = {.w = &w, .m = 1, .ldx = 4, .ldy = 4};
    char why[128] = "";
    int ok = BE->supports(PI0_OP_MATMUL, &a, why, sizeof why);
    CHECK(!ok && strstr(why, "not packed"), "supports rejects an unpacked weight: '%s'", why);
}

/* ---- geglu (gate and up packed as one pair, gelu_tanh(g) * u written by the GEMM driver) ------- */

/* y = gelu_tanh(x·Gᵀ) ⊙ (x·Uᵀ) of the fast backend (gate|up packed as one pair by its prepare step)
 * against (1) the reference op, with the tolerance derived from the matmul ones: g and u each within
 * tg = rt·Sg, tu = rt·Su (rt as in test_matmul_one: bf16 8e-3, f32 1e-5; Sg, Su the sums of |x w|),
 * |gelu'| <= 1.13, so |dy| <= 1.13·|u|·tg + (|gelu(g)| + 1.13·tg)·tu + 1e-5·|y| (the vector GELU) +
 * 1e-7; the int8 kind has its own bound (test_int8_one) and here a PCC >= 0.999; and (2) the fast
 * backend's two separate matmuls (gate, up packed alone) and its elementwise gelu_tanh_mul: the
 * same kernels on the same slices, so the same bits (the pair only changes where the C tiles live).
 * Sentinels after y and the padding of ldy must stay untouched; nth = 1 and nth give the same bits. */
static void test_geglu_one(int64_t m, int64_t k, int64_t n, pi0_dtype dt, int kind, int nth, int pad) {
    int64_t ldx = k + pad, ldy = n + pad;
    float *gv = fbuf(n * k, 1.0f), *uv = fbuf(n * k, 1.0f), *x = fbuf(m * ldx, 1.0f);
    float *y0 = fbuf(m * ldy, 1.0f), *yr = fcopy(y0, m * ldy), *yf = fcopy(y0, m * ldy), *y1 = fcopy(y0, m * ldy);
    pi0_weight g = {.name = "test.gate", .dtype = dt, .data = make_weight_data(dt, gv, n * k), .rows = n, .cols = k};
    pi0_weight u = {.name = "test.up", .dtype = dt, .data = make_weight_data(dt, uv, n * k), .rows = n, .cols = k};
    pi0_weight g1 = g, u1 = u; /* the same matrices packed alone */
    g.geglu_up = &u;
    u.geglu_gate = &g;
    pi0_weight *list[2] = {&g, &u};
    pi0_prepare_args pa = {.w = list, .n = 2, .weight_kind = kind, .n_threads = 1};
    pi0_status s = BE->prepare(&pa);
    s = s ? s : pi0_backend_prepare_weight(BE, &g1, kind);
    s = s ? s : pi0_backend_prepare_weight(BE, &u1, kind);
    CHECK(s == PI0_OK && g.packed && !u.packed && ((const pi0_fast_packed *)g.packed)->pair,
          "geglu %lldx%lld kind %d: packed as one pair, up keeps no copy", (long long)n, (long long)k, kind);
    if (s != PI0_OK) return;
    pi0_geglu_args ar = {.y = yr, .x = x, .gate = &g, .up = &u, .m = m, .ldx = ldx, .ldy = ldy}, af = ar, a1 = ar;
    char why[128] = "";
    CHECK(BE->supports(PI0_OP_GEGLU, &af, why, sizeof why), "supports geglu on the pair: '%s'", why);
    RUN(REF->geglu, &ar, 1);
    af.y = yf;
    RUN(BE->geglu, &af, nth);
    a1.y = y1;
    RUN(BE->geglu, &a1, 1);
    CHECK(!memcmp(y1, yf, sizeof(float) * (size_t)(m * ldy + GUARD)), "geglu m=%lld k=%lld n=%lld: nth=1 and nth=%d bit-identical",
          (long long)m, (long long)k, (long long)n, nth);
    /* (2) the unfused fast path, row by row into [m, n] buffers */
    float *gs = malloc(sizeof(float) * (size_t)(m * n)), *us = malloc(sizeof(float) * (size_t)(m * n));
    pi0_matmul_args mg = {.y = gs, .x = x, .w = &g1, .m = m, .ldx = ldx, .ldy = n}, mu = mg;
    mu.y = us;
    mu.w = &u1;
    RUN(BE->matmul, &mg, nth);
    RUN(BE->matmul, &mu, nth);
    pi0_ew_args e = {.y = gs, .a = gs, .b = us, .n = m * n, .kind = PI0_EW_GELU_TANH_MUL};
    RUN(BE->ew, &e, nth);
    int64_t same = 0;
    for (int64_t i = 0; i < m; i++) same += !memcmp(gs + i * n, yf + i * ldy, sizeof(float) * (size_t)n);
    CHECK(same == m, "geglu m=%lld k=%lld n=%lld kind=%d: fused = fast gate, up matmuls + gelu_tanh_mul bit for bit (%lld of %lld rows)",
          (long long)m, (long long)k, (long long)n, kind, (long long)same, (long long)m);
    /* (1) against the reference */
    float *tol = malloc(sizeof(float) * (size_t)(m * ldy));
    double rt = kind == PI0_WEIGHTS_F32 ? 1e-5 : 8e-3;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldy; j++) {
            double t = 0;
            if (j < n) {
                double Sg = 0, Su = 0, gd = 0, ud = 0;
                for (int64_t p = 0; p < k; p++) {
                    double xv = x[i * ldx + p], wg = pi0_weight_at(&g, j * k + p), wu = pi0_weight_at(&u, j * k + p);
                    Sg += fabs(xv * wg); Su += fabs(xv * wu); gd += xv * wg; ud += xv * wu;
                }
                double tg = rt * Sg, tu = rt * Su, gel = fabs(gd) + tg; /* |gelu(g)| <= |g| */
                t = 1.13 * (fabs(ud) + tu) * tg + (gel + 1.13 * tg) * tu + 1e-5 * fabs(yr[i * ldy + j]);
            }
            tol[i * ldy + j] = (float)(t + 1e-7);
        }
    char label[160];
    snprintf(label, sizeof label, "geglu m=%lld k=%lld n=%lld dt=%d kind=%s nth=%d pad=%d", (long long)m, (long long)k,
             (long long)n, dt, kind == PI0_WEIGHTS_F32 ? "f32" : kind == PI0_WEIGHTS_INT8 ? "int8" : "bf16", nth, pad);
    if (kind == PI0_WEIGHTS_INT8) compare(label, yf, yr, m * ldy, NULL, 1e30, m * n >= 64 ? 0.999 : 0);
    else compare(label, yf, yr, m * ldy, tol, 0, m * n >= 64 ? 0.9999 : 0);
    /* the pair is for geglu only; the separate weights are not a pair */
    pi0_matmul_args mm = {.y = gs, .x = x, .w = &g, .m = m, .ldx = ldx, .ldy = n};
    CHECK(!BE->supports(PI0_OP_MATMUL, &mm, why, sizeof why) && strstr(why, "pair"), "matmul on a pair's gate rejected: '%s'", why);
    pi0_geglu_args au = {.y = yf, .x = x, .gate = &g1, .up = &u1, .m = m, .ldx = ldx, .ldy = ldy};
    CHECK(!BE->supports(PI0_OP_GEGLU, &au, why, sizeof why) && strstr(why, "pair"), "geglu on two separate packs rejected: '%s'", why);
    pi0_weight *rel[4] = {&g, &u, &g1, &u1};
    BE->release(rel, 4);
    free((void *)g.data); free((void *)u.data); /* g1, u1 share them */
    free(gv); free(uv); free(x); free(y0); free(yr); free(yf); free(y1); free(gs); free(us); free(tol);
}

/* Tails everywhere: m not a multiple of the row tiles (6 on x86, 4 on NEON), n not a multiple of 64
 * (the last pair's panels part empty), odd k; both work splits (pairs to threads, rows to threads),
 * several k blocks (bf16 2051: 2 blocks, so the pair keeps both A blocks and m blocks shrink: 600
 * rows -> 2-3 m blocks; f32: 1024-input blocks; int8 4101: 2 blocks), each weight kind. */
static void test_geglu(void) {
    uint64_t rng_saved = rng; /* its own random numbers: the other cases see the sequence they always saw */
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 17, 65}, {13, 64, 100}, {50, 300, 130}, {5, 33, 200}, {2, 2, 64}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int nth = 1; nth <= 3; nth += 2) {
            int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
            test_geglu_one(m, k, n, (pi0_dtype)((s + nth) % 3), PI0_WEIGHTS_BF16, nth, s % 2 ? 3 : 0);
            test_geglu_one(m, k, n, (pi0_dtype)((s + nth + 1) % 3), PI0_WEIGHTS_F32, nth, s % 2 ? 0 : 2);
            test_geglu_one(m, k, n, (pi0_dtype)((s + nth + 2) % 3), PI0_WEIGHTS_INT8, nth, s % 2 ? 1 : 0);
        }
    test_geglu_one(250, 130, 600, PI0_DT_BF16, PI0_WEIGHTS_BF16, 2, 0); /* row split */
    test_geglu_one(250, 130, 600, PI0_DT_F32, PI0_WEIGHTS_INT8, 2, 1);
    test_geglu_one(50, 256, 600, PI0_DT_BF16, PI0_WEIGHTS_INT8, 2, 0);  /* pair split */
    test_geglu_one(3, 64, 30, PI0_DT_F32, PI0_WEIGHTS_BF16, 3, 0);      /* 1 pair, 3 threads: rows */
    test_geglu_one(600, 2051, 70, PI0_DT_BF16, PI0_WEIGHTS_BF16, 2, 1); /* several k and m blocks */
    test_geglu_one(9, 2051, 70, PI0_DT_F32, PI0_WEIGHTS_F32, 2, 0);
    test_geglu_one(9, 4101, 70, PI0_DT_BF16, PI0_WEIGHTS_INT8, 3, 0);
    rng = rng_saved;
}

/* ---- int8 matmul (weights int8 per output channel, activations int8 per row) -------------- */

/* Accuracy contract of the int8 kind against the float reference, per output (row r, column j):
 * the weight of column j is rounded with step sw_j = max_i |w_ji| / 127 and the activations of row
 * r with step sx_r = max |x_ri| / 127 over its non-outlier channels (outlier channels are exact);
 * each rounding error is at most half a step, and on random data the errors of the k terms are
 * independent and uniform (variance step^2 / 12), so the output error has
 *   sigma_rj^2 = sw_j^2 / 12 * sum_i x_ri^2 + sx_r^2 / 12 * sum_(i not outlier) w_ji^2
 * (the product of the two errors is second order). Bound: |d| <= 6 sigma_rj + 1e-5 S (S = sum_i
 * |x w| + |bias| + |y_in|: fp32 accumulation). For k <= 12 the sum of k uniform errors cannot pass
 * sqrt(3k) sigma <= 6 sigma at all; for large k it is near Gaussian and 6 sigma is passed with
 * probability ~2e-9 per output. The step sx_r is computed here from the planted outlier channels the
 * test knows (not from what the implementation detected), so a missed outlier, a wrong scale or a
 * wrong compensation shows up as errors far past the bound. Also PCC >= 0.999 per matrix.
 * planted: 0 none; n > 0: channels 3, 3 + 37, ... (n of them) of every row set to +-(50..100) x the
 * row's rms (the first one 1000x when planted is 5: massive beside moderate). outliers_on: the
 * switch; with it off and planted channels the bound must clearly break (>= 20 % of outputs past it). */
static int64_t int8_planted(int planted, int64_t k, int c) { return c < planted ? (3 + 37 * (int64_t)c) % k : -1; }

static void test_int8_one(int64_t m, int64_t k, int64_t n, pi0_dtype dt, int acc, int bias, int nth, int pad,
                          int planted, int outliers_on, int inject_nan) {
    int64_t ldx = k + pad, ldy = n + 2 * pad;
    float *wv = fbuf(n * k, 1.0f), *x = fbuf(m * ldx, 1.0f), *b = bias ? fbuf(n, 1.0f) : NULL;
    uint8_t *is_out = calloc((size_t)k, 1);
    for (int c = 0; c < planted; c++) is_out[int8_planted(planted, k, c)] = 1;
    for (int64_t i = 0; i < m; i++)
        for (int c = 0; c < planted; c++) {
            float mag = (planted == 5 && c == 0) ? 1000.0f : 50.0f + 50.0f * (float)c / (float)planted;
            x[i * ldx + int8_planted(planted, k, c)] = (frand() < 0 ? -mag : mag) * 0.57735f; /* rms of U(-1,1) */
        }
    if (inject_nan && m > 1) x[1 * ldx + k / 2] = NAN;
    float *y0 = fbuf(m * ldy, 1.0f);
    float *yr = fcopy(y0, m * ldy), *yf = fcopy(y0, m * ldy);
    pi0_weight w = {.name = "test.w8", .dtype = dt, .data = make_weight_data(dt, wv, n * k), .rows = n, .cols = k};
    pi0_status s = pi0_backend_prepare_weight(BE, &w, PI0_WEIGHTS_INT8);
    CHECK(s == PI0_OK, "pack int8 %lldx%lld dtype %d", (long long)n, (long long)k, dt);
    if (s != PI0_OK) return;
    pi0_fast_int8_outliers(outliers_on);
    pi0_matmul_args ar = {.y = yr, .x = x, .w = &w, .bias = b, .m = m, .ldx = ldx, .ldy = ldy, .accumulate = acc};
    pi0_matmul_args af = ar;
    af.y = yf;
    RUN(REF->matmul, &ar, 1);
    RUN(BE->matmul, &af, nth);
    if (nth > 1) {
        float *y1 = fcopy(y0, m * ldy);
        pi0_matmul_args a1 = ar;
        a1.y = y1;
        RUN(BE->matmul, &a1, 1);
        CHECK(!memcmp(y1, yf, sizeof(float) * (size_t)(m * ldy + GUARD)),
              "int8 matmul m=%lld k=%lld n=%lld: nth=1 and nth=%d bit-identical", (long long)m, (long long)k,
              (long long)n, nth);
        free(y1);
    }
    pi0_fast_int8_outliers(1);
    double *sw = malloc(sizeof(double) * (size_t)n);
    for (int64_t j = 0; j < n; j++) {
        double mx = 0;
        for (int64_t i = 0; i < k; i++) mx = fmax(mx, fabs(pi0_weight_at(&w, j * k + i)));
        sw[j] = mx / 127.0;
    }
    float *tol = malloc(sizeof(float) * (size_t)(m * ldy));
    int64_t past = 0, counted = 0;
    for (int64_t i = 0; i < m; i++) {
        double sx = 0, x2 = 0;
        for (int64_t p = 0; p < k; p++) {
            double v = x[i * ldx + p];
            if (!isfinite(v)) continue;
            x2 += v * v;
            if (!is_out[p]) sx = fmax(sx, fabs(v));
        }
        sx /= 127.0;
        for (int64_t j = 0; j < ldy; j++) {
            double S = 0, w2 = 0, t = 1e-7;
            if (j < n) {
                for (int64_t p = 0; p < k; p++) {
                    double wv_ = pi0_weight_at(&w, j * k + p), xv = x[i * ldx + p];
                    if (isfinite(xv)) S += fabs(xv * wv_);
                    if (!is_out[p]) w2 += wv_ * wv_;
                }
                if (b) S += fabs(b[j]);
                if (acc) S += fabs(y0[i * ldy + j]);
                t = 6.0 * sqrt(sw[j] * sw[j] / 12.0 * x2 + sx * sx / 12.0 * w2) + 1e-5 * S + 1e-7;
                if (isfinite(yr[i * ldy + j])) {
                    counted++;
                    past += fabs((double)yf[i * ldy + j] - yr[i * ldy + j]) > t;
                }
            }
            tol[i * ldy + j] = (float)t;
        }
    }
    char label[200];
    snprintf(label, sizeof label, "int8 matmul m=%lld k=%lld n=%lld dt=%d acc=%d bias=%d nth=%d pad=%d planted=%d%s%s",
             (long long)m, (long long)k, (long long)n, dt, acc, bias, nth, pad, planted,
             planted && !outliers_on ? " outliers OFF" : "", inject_nan ? " nan" : "");
    if (planted && !outliers_on)
        CHECK(past * 5 >= counted, "%s: bound clearly broken without outlier handling: %lld of %lld outputs past it",
              label, (long long)past, (long long)counted);
    else
        compare(label, yf, yr, m * ldy, tol, 0, m * n >= 64 && !inject_nan ? 0.999 : 0);
    pi0_backend_release_weight(BE, &w);
    free((void *)w.data); free(wv); free(x); free(b); free(y0); free(yr); free(yf); free(tol); free(sw); free(is_out);
}

/* The packed int8 weight against an independent quantization written here: per column scale =
 * max |w| / 127, q = nearest-even(w / scale) (w / scale and w * (127 / max) agree to within one
 * ulp; a value at a .5 tie in one and not the other would show up as a mismatch of 1, which the
 * check allows and counts), the layout of fast.h, zero padding, wsum = 128 * sum q. */
static void test_int8_pack(void) {
    static const int64_t shapes[][2] = {{1, 1}, {37, 71}, {130, 33}, {65, 4}, {3, 1030}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int di = 0; di < 3; di++) {
            int64_t n = shapes[s][0], k = shapes[s][1];
            float *v = fbuf(n * k, 1.0f);
            if (n > 2) for (int64_t i = 0; i < k; i++) v[2 * k + i] = 0.0f; /* a zero row */
            void *data = make_weight_data((pi0_dtype)di, v, n * k);
            pi0_weight w = {.name = "p8", .dtype = (pi0_dtype)di, .data = data, .rows = n, .cols = k};
            pi0_fast_packed *p = NULL;
            pi0_status st = pi0_fast_pack_weight(&p, data, (pi0_dtype)di, n, k, PI0_WEIGHTS_INT8, "p8");
            int64_t bad = 0, off1 = 0, kp = (k + 3) & ~(int64_t)3;
            if (st == PI0_OK) {
                bad += p->kp != kp || p->n_panels != (n + 63) / 64 ||
                       pi0_fast_packed_bytes(n, k, PI0_WEIGHTS_INT8) != (size_t)(p->n_panels * 64 * (kp + 8));
                for (int64_t j = 0; j < p->n_panels * 64; j++) {
                    double mx = 0;
                    for (int64_t i = 0; j < n && i < k; i++) mx = fmax(mx, fabs(pi0_weight_at(&w, j * k + i)));
                    double scale = mx / 127.0;
                    int64_t sum = 0;
                    for (int64_t i = 0; i < kp; i++) {
                        int want = 0;
                        if (j < n && i < k && scale > 0) want = (int)nearbyint(pi0_weight_at(&w, j * k + i) / scale);
                        int got = ((const int8_t *)p->data)[(j / 64) * kp * 64 + (i / 4) * 256 + (j % 64) * 4 + i % 4];
                        if (abs(got - want) == 1) off1++;
                        else bad += got != want;
                        sum += got;
                    }
                    bad += fabs(p->scale[j] - scale) > 1e-7 * scale || p->wsum[j] != 128 * sum;
                }
            }
            if (st == PI0_OK) { /* the dispatched filler (AVX-512) writes the portable filler's bytes, NaN row too */
                size_t nb = pi0_fast_packed_bytes(n, k, PI0_WEIGHTS_INT8);
                pi0_fast_packed q = *p;
                q.data = aligned_alloc(64, (nb + 63) & ~(size_t)63);
                memset(q.data, 0x55, nb);
                q.scale = (float *)((char *)q.data + ((char *)p->scale - (char *)p->data));
                q.wsum = (int32_t *)((char *)q.data + ((char *)p->wsum - (char *)p->data));
                pi0_fast_pack_fill_generic(&q, data, (pi0_dtype)di);
                bad += memcmp(q.data, p->data, nb) != 0;
                if (n * k > 5 && di != PI0_DT_F16) { /* a NaN: scale NaN, q 0, both fillers */
                    if (di == PI0_DT_F32) ((float *)data)[5] = NAN; else ((uint16_t *)data)[5] = 0x7fc0;
                    pi0_fast_packed_free(p);
                    st = pi0_fast_pack_weight(&p, data, (pi0_dtype)di, n, k, PI0_WEIGHTS_INT8, "p8");
                    memset(q.data, 0x55, nb);
                    pi0_fast_pack_fill_generic(&q, data, (pi0_dtype)di);
                    bad += st != PI0_OK || memcmp(q.data, p->data, nb) != 0 || !isnan(p->scale[5 / k]);
                }
                free(q.data);
            }
            CHECK(st == PI0_OK && bad == 0 && off1 <= 2, "int8 pack [%lld, %lld] dtype %d: q, scale, wsum, padding (%lld off by one at a tie), dispatched == portable bytes",
                  (long long)n, (long long)k, di, (long long)off1);
            pi0_fast_packed_free(p);
            free(data); free(v);
        }
}

/* Row quantization: the planted channels and only them are found (massive beside moderate ones
 * too), at most CAP (the largest), none in a row with more than 4 CAP large values or in an
 * ordinary row; the step is max |x| of the rest / 127; a NaN gives step NaN. */
static void test_int8_rows(void) {
    const int64_t k = 2048;
    float *x = fbuf(k, 1.0f);
    static const int counts[] = {0, 1, 4, 16, 17, 40, 65};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        for (int64_t i = 0; i < k; i++) x[i] = frand();
        int np = counts[c];
        for (int o = 0; o < np; o++) x[(5 + 31 * o) % k] = (o % 2 ? -1.0f : 1.0f) * (o == 0 ? 600.0f : 30.0f + (float)o);
        pi0_fast_i8_row r;
        pi0_fast_i8_row_prepare(&r, x, k, NULL);
        int want_n = np <= PI0_I8_OUTLIER_CAP ? np : np <= 4 * PI0_I8_OUTLIER_CAP ? PI0_I8_OUTLIER_CAP : 0;
        int ok = r.n_out == want_n;
        float rest = 0;
        for (int64_t i = 0; i < k; i++) {
            int found = 0;
            for (int o = 0; o < r.n_out; o++) found |= r.out[o] == i;
            if (!found) rest = fmaxf(rest, fabsf(x[i]));
        }
        for (int o = 0; o < r.n_out && ok; o++) { /* ascending, planted, and the largest ones */
            ok &= (o == 0 || r.out[o] > r.out[o - 1]) && fabsf(x[r.out[o]]) >= 29.0f;
            ok &= fabsf(x[r.out[o]]) >= rest;
        }
        ok &= r.step == rest / 127.0f;
        CHECK(ok, "int8 row, %d planted channels: %d outliers (want %d), step %.4g (rest max / 127 = %.4g)", np,
              r.n_out, want_n, r.step, rest / 127.0f);
        pi0_fast_int8_outliers(0);
        pi0_fast_i8_row_prepare(&r, x, k, NULL);
        pi0_fast_int8_outliers(1);
        float mx = 0;
        for (int64_t i = 0; i < k; i++) mx = fmaxf(mx, fabsf(x[i]));
        CHECK(r.n_out == 0 && r.step == mx / 127.0f, "int8 row, %d planted, outliers off: none, step max/127", np);
    }
    x[7] = NAN;
    pi0_fast_i8_row r;
    pi0_fast_i8_row_prepare(&r, x, k, NULL);
    CHECK(isnan(r.step), "int8 row with a NaN: step NaN");
    free(x);
    /* more channels between 3/4 of the threshold and the threshold than the pool of one scan holds
     * (1100 at 3.2 beside one at 60, the rest |x| <= 1/3, k = 32768: threshold 6 rms = 4.2): the row is
     * scanned again at the threshold itself; then the 60 is the one outlier (the next threshold, 3.7,
     * is above 3.2) and the step is 3.2 / 127 */
    const int64_t kb = 32768;
    x = fbuf(kb, 1.0f / 3.0f);
    for (int c = 0; c < 1100; c++) x[13 + 29 * c] = c % 2 ? 3.2f : -3.2f;
    x[kb - 3] = 60.0f;
    pi0_fast_i8_row_prepare(&r, x, kb, NULL);
    CHECK(r.n_out == 1 && r.out[0] == kb - 3 && r.step == 3.2f / 127.0f && r.scans == 3,
          "int8 row, 1100 channels above 3/4 of the threshold (pool overflow): %d outlier(s) at %d, step %.5g (want "
          "1 at %lld, 3.2/127 = %.5g), %d scans (want 3)", r.n_out, r.n_out ? r.out[0] : -1, r.step, (long long)(kb - 3),
          3.2f / 127.0f, r.scans);
    free(x);
}

/* Every ISA row against the portable int8 GEMM on the same packed weight: the quantized
 * activations, the int32 sums and the compensation are integers, identical in every path, so the
 * results differ only by the fp32 rounding of the k-block partial sums (the SIMD driver converts
 * and adds one partial per k block of <= 4096 inputs; the portable one the whole sum once):
 * identical bits with one k block, and |d| <= 4e-6 S with several (3 roundings of terms <= S per
 * block, 2^-24 each), far below the ~1e-3 S a single wrong product would cause at k = 16384. */
static void test_int8_variants(void) {
    /* the rows' scan primitives give the portable scan's bits (lane sums, max, candidates) */
    for (int r = 0; r < pi0_fast_isa_count(); r++) {
        const pi0_fast_isa *isa = pi0_fast_isa_at(r);
        const pi0_fast_gemm_kernels *g = isa->gemm[PI0_WEIGHTS_INT8];
        if (!pi0_fast_isa_available(isa) || !g || !g->scan ||
            (pi0_cpu_caps_get()->flags & g->needs) != g->needs) continue;
        int same = 1;
        for (int64_t k = 1; k <= 300 && same; k += 13) {
            float *x = fbuf(k, 3.0f);
            if (k > 20) { x[k / 3] = NAN; x[k / 2] = 50.0f; x[k - 1] = -INFINITY; }
            static const float thrs[] = {INFINITY, 2.5f, 0.5f};
            for (int t = 0; t < 3; t++) {
                float l1[16], l2[16];
                uint32_t m1, m2;
                int64_t c1, c2;
                int32_t i1[8], i2[8];
                pi0_fast_i8_scan_generic(x, k, thrs[t], l1, &m1, &c1, i1, 8);
                g->scan(x, k, thrs[t], l2, &m2, &c2, i2, 8);
                same &= !memcmp(l1, l2, sizeof l1) && m1 == m2 && c1 == c2 && !memcmp(i1, i2, sizeof(int32_t) * (size_t)(c1 < 8 ? c1 : 8));
            }
            free(x);
        }
        CHECK(same, "int8 row scan of %s: the portable scan's bits (k = 1..300, NaN, inf, thresholds)", isa->name);
    }
    static const int64_t shapes[][4] = {{23, 75, 130, 0}, {50, 1024, 300, 4}, {7, 9001, 70, 5}, {9, 16387, 65, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        int planted = (int)shapes[s][3];
        float *wv = fbuf(n * k, 1.0f), *x = fbuf(m * k, 1.0f), *bias = fbuf(n, 1.0f), *y0 = fbuf(m * n, 1.0f);
        for (int64_t i = 0; i < m; i++)
            for (int c = 0; c < planted; c++) x[i * k + int8_planted(planted, k, c)] = c == 0 ? 400.0f : -40.0f;
        pi0_weight w = {.name = "v8", .dtype = PI0_DT_F32, .data = wv, .rows = n, .cols = k};
        if (pi0_backend_prepare_weight(BE, &w, PI0_WEIGHTS_INT8) != PI0_OK) { CHECK(0, "pack"); return; }
        const pi0_fast_packed *pk = w.packed;
        float *tol = malloc(sizeof(float) * (size_t)(m * n));
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double S = fabs(bias[j]) + fabs(y0[i * n + j]);
                for (int64_t p = 0; p < k; p++) S += fabs((double)x[i * k + p] * wv[j * k + p]);
                tol[i * n + j] = (float)(4e-6 * S);
            }
        float *yg = fcopy(y0, m * n);
        pi0_fast_gemm_job j = {.c = yg, .ldc = n, .a = x, .lda = k, .b = pk, .bias = bias, .m = m,
                               .accumulate = 1, .p0 = 0, .p1 = pk->n_panels};
        pi0_fast_gemm_generic(&j);
        for (int r = 0; r < pi0_fast_isa_count(); r++) {
            const pi0_fast_isa *isa = pi0_fast_isa_at(r);
            if (!pi0_fast_isa_available(isa)) continue;
            float *yi = fcopy(y0, m * n);
            j.c = yi;
            pi0_fast_gemm_isa(isa, &j);
            char label[160];
            snprintf(label, sizeof label, "int8 gemm %s vs portable m=%lld k=%lld n=%lld planted=%d", isa->name,
                     (long long)m, (long long)k, (long long)n, planted);
            if (k <= 4096)
                CHECK(!memcmp(yi, yg, sizeof(float) * (size_t)(m * n + GUARD)), "%s: bit-identical (one k block)", label);
            else
                compare(label, yi, yg, m * n, tol, 0, 0);
            free(yi);
        }
        pi0_backend_release_weight(BE, &w);
        free(wv); free(x); free(bias); free(y0); free(yg); free(tol);
    }
}

/* The int8 kernels of every ISA row, directly and without the driver's cover:
 *  - the row's scan and block quantizer give the portable ones' bits (NaN, inf, -0, ties at .5,
 *    outlier channels, tails of every length, k blocks past k);
 *  - each microkernel kern_i8[R], R = 1..mr, on a hand-made A block and weight slice, against the
 *    integer sum sum_i (u8_i - 128) w_i computed here (step and scale 1, wsum = 128 sum w): exact
 *    bits, for worst-case values (all q and w at +127, all at -127, random signs of 127: every
 *    vpmaddubsw pair at its bound 2 * 127 * 127) and random ones, ncols < cols (guards intact),
 *    loadc, bias and prefetch. |sum| <= 1024 * 127 * 127 < 2^24, so (float)sum is exact; a kernel
 *    that saturates int16 (u8 x s8 pairs reach 64770) or wraps is off by thousands;
 *  - through the driver with every activation and weight at +-1 (q = +-127 everywhere), m = 1..mr+1
 *    (every tile height), n = 77 (partial column groups): bit-identical to the portable GEMM with
 *    one k block (k = 4093, odd) and within 4e-6 k of the exact sum_i x_i w_i (a small integer)
 *    with one and with four k blocks (k = 12289). */
static void test_int8_exact(void) {
#if defined(__x86_64__)
    /* the AVX2 levels pick the AVX2 rows: with AVX-VNNI its kernels, without it the vpmaddubsw ones */
    if (pi0_cpu_caps_force(PI0_CPU_AVX2))
        CHECK(pi0_fast_isa_get() == &pi0_fast_isa_avx2 && !(pi0_cpu_caps_get()->flags & PI0_CAP_AVXVNNI),
              "caps lowered to avx2: ISA row %s, no AVX-VNNI", pi0_fast_isa_get()->name);
    if (pi0_cpu_caps_force(PI0_CPU_AVX2_VNNI))
        CHECK(pi0_fast_isa_get() == &pi0_fast_isa_avx2vnni, "caps lowered to avx2-vnni: ISA row %s",
              pi0_fast_isa_get()->name);
    pi0_cpu_caps_force(PI0_CPU_NATIVE);
#endif
    const unsigned have = pi0_cpu_caps_get()->flags;
    for (int ri = 0; ri < pi0_fast_isa_count(); ri++) {
        const pi0_fast_isa *isa = pi0_fast_isa_at(ri);
        const pi0_fast_gemm_kernels *g = isa->gemm[PI0_WEIGHTS_INT8];
        if (!g || !pi0_fast_isa_available(isa) || (have & g->needs) != g->needs) continue;
        /* scan and quantize vs portable */
        static const int64_t lens[] = {1, 5, 15, 16, 17, 31, 33, 100, 2048, 2051};
        int64_t scan_bad = 0, quant_bad = 0;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t k = lens[li];
            float *x = fbuf(3 * k, 1.0f);
            for (int64_t i = 0; i < k; i++) {
                if (i % 7 == 3) x[i] = -0.0f;
                if (i % 11 == 5) x[i] = (float)(i % 23) - 11.5f; /* ties at .5 (inv = 1 below) */
                if (i % 97 == 50) x[i] = (i & 1 ? -1 : 1) * (20.0f + (float)(i % 5));
            }
            x[k + k / 2] = NAN; /* row 1: a NaN; row 2: an infinity */
            x[2 * k + k / 3] = -INFINITY;
            for (int r = 0; r < 3; r++) {
                static const float thrs[] = {INFINITY, 4.0f, 0.5f};
                for (int t = 0; t < 3 && g->scan; t++) {
                    float l1[16], l2[16];
                    uint32_t m1 = 1, m2 = 2;
                    int64_t c1 = -1, c2 = -2;
                    int32_t i1[64], i2[64];
                    pi0_fast_i8_scan_generic(x + r * k, k, thrs[t], l1, &m1, &c1, i1, 64);
                    g->scan(x + r * k, k, thrs[t], l2, &m2, &c2, i2, 64);
                    scan_bad += memcmp(l1, l2, sizeof l1) || m1 != m2 || c1 != c2 ||
                                memcmp(i1, i2, sizeof(int32_t) * (size_t)(c1 < 64 ? c1 : 64));
                }
            }
            pi0_fast_i8_row rq[3];
            for (int r = 0; r < 3; r++) pi0_fast_i8_row_prepare(&rq[r], x + r * k, k, NULL);
            rq[0].inv = 1.0f; /* exact ties */
            for (int64_t k0 = 0; k0 < k + 8; k0 += 4 * (k / 12 + 1)) {
                int64_t kc = ((k - k0) / 2 + 9) & ~(int64_t)3, lds = kc + 5;
                uint8_t *q1 = malloc((size_t)(3 * lds)), *q2 = malloc((size_t)(3 * lds));
                memset(q1, 7, (size_t)(3 * lds));
                memset(q2, 7, (size_t)(3 * lds));
                pi0_fast_i8_quantize_generic(q1, lds, x, k, 3, k0, kc, k, rq, NULL, 0);
                g->quantize(q2, lds, x, k, 3, k0, kc, k, rq, (const char *)x, 4);
                quant_bad += memcmp(q1, q2, (size_t)(3 * lds)) != 0;
                free(q1); free(q2);
            }
            free(x);
        }
        CHECK(scan_bad == 0 && quant_bad == 0, "int8 %s: row scan and block quantizer give the portable bits "
              "(%lld scans, %lld blocks differ)", isa->name, (long long)scan_bad, (long long)quant_bad);
        /* microkernels vs integer sums */
        const int64_t kk = 256, lda = 4 * kk + 64, ldc = 80;
        uint8_t *a = malloc((size_t)(PI0_FAST_MR_MAX * lda));
        int8_t *w = aligned_alloc(64, (size_t)(kk * 256));
        float step[PI0_FAST_MR_MAX], scale[64], bias[64], *c = malloc(sizeof(float) * PI0_FAST_MR_MAX * ldc);
        int32_t wsum[64];
        int64_t kern_bad = 0, kern_runs = 0;
        for (int pat = 0; pat < 4; pat++) {
            for (int64_t i = 0; i < PI0_FAST_MR_MAX * lda; i++) {
                int q = pat == 0 ? 127 : pat == 1 ? -127 : pat == 2 ? (frand() < 0 ? -127 : 127) : (int)(frand() * 127.5f);
                a[i] = (uint8_t)(q + 128);
            }
            for (int64_t i = 0; i < kk * 256; i++) {
                int q = pat == 0 ? 127 : pat == 1 ? -127 : pat == 2 ? (frand() < 0 ? -127 : 127) : (int)(frand() * 127.5f);
                w[i] = (int8_t)q;
            }
            for (int j = 0; j < 64; j++) {
                int32_t s = 0;
                for (int64_t t = 0; t < kk; t++)
                    for (int u = 0; u < 4; u++) s += w[t * 256 + j * 4 + u];
                wsum[j] = 128 * s;
                scale[j] = 1.0f;
                bias[j] = frand() * 1000.0f;
            }
            for (int r = 0; r < PI0_FAST_MR_MAX; r++) step[r] = 1.0f;
            for (int R = 1; R <= g->mr; R++)
                for (int v = 0; v < 6; v++) {
                    int64_t ncols = v < 2 ? g->cols : v < 4 ? g->cols - 3 : 1;
                    int loadc = v & 1, use_bias = v >= 2;
                    for (int64_t i = 0; i < PI0_FAST_MR_MAX * ldc; i++) c[i] = i % ldc < ncols ? frand() : SENT;
                    float *c0 = malloc(sizeof(float) * PI0_FAST_MR_MAX * ldc);
                    memcpy(c0, c, sizeof(float) * PI0_FAST_MR_MAX * ldc);
                    pi0_fast_i8_epilogue e = {step, scale, wsum, use_bias ? bias : NULL, loadc};
                    g->kern_i8[R](a, lda, w, kk, c, ldc, &e, ncols, v == 5 ? (const char *)w : NULL, v == 5 ? 8 : 0);
                    for (int r = 0; r < PI0_FAST_MR_MAX; r++)
                        for (int64_t j = 0; j < ldc; j++) {
                            float want = c0[r * ldc + j];
                            if (r < R && j < ncols) {
                                int32_t s = 0;
                                for (int64_t i = 0; i < 4 * kk; i++)
                                    s += (a[r * lda + i] - 128) * w[(i / 4) * 256 + j * 4 + i % 4];
                                float y = (float)s;
                                if (loadc) y = c0[r * ldc + j] + y;
                                if (use_bias) y = y + bias[j];
                                want = y;
                            }
                            kern_bad += memcmp(&want, &c[r * ldc + j], sizeof want) != 0;
                        }
                    kern_runs++;
                    free(c0);
                }
        }
        CHECK(kern_bad == 0, "int8 %s: microkernels R = 1..%d x {full, partial, 1 column} x loadc x bias, worst-case "
              "+-127 and random values: exact integer sums (%lld of %lld runs, %lld outputs wrong)", isa->name, g->mr,
              (long long)kern_runs, (long long)kern_runs, (long long)kern_bad);
        free(a); free(w); free(c);
        /* through the driver, all q and w at +-127 */
        static const int64_t ks[] = {4093, 12289};
        for (size_t ki = 0; ki < 2; ki++) {
            const int64_t k = ks[ki], n = 77, mmax = g->mr + 1;
            float *wv = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(mmax * k));
            for (int64_t i = 0; i < n * k; i++) wv[i] = (i / k) % 3 == 0 ? 1.0f : frand() < 0 ? -1.0f : 1.0f;
            pi0_weight wt = {.name = "x8", .dtype = PI0_DT_F32, .data = wv, .rows = n, .cols = k};
            if (pi0_backend_prepare_weight(BE, &wt, PI0_WEIGHTS_INT8) != PI0_OK) { CHECK(0, "pack"); return; }
            for (int64_t m = 1; m <= mmax; m++) {
                for (int64_t r = 0; r < m; r++)
                    for (int64_t i = 0; i < k; i++) /* row 0 all +1; odd rows match column 0's signs */
                        x[r * k + i] = r == 0 ? 1.0f : r % 2 ? wv[i] * (i % 2 ? 1.0f : -1.0f) : frand() < 0 ? -1.0f : 1.0f;
                float *yg = fbuf(m * n, 0), *yi = fbuf(m * n, 0);
                pi0_fast_gemm_job j = {.c = yg, .ldc = n, .a = x, .lda = k, .b = wt.packed, .m = m,
                                       .p0 = 0, .p1 = ((pi0_fast_packed *)wt.packed)->n_panels};
                pi0_fast_gemm_generic(&j);
                j.c = yi;
                pi0_fast_gemm_isa(isa, &j);
                float *want = fbuf(m * n, 0);
                for (int64_t r = 0; r < m; r++)
                    for (int64_t jj = 0; jj < n; jj++) {
                        double s = 0;
                        for (int64_t i = 0; i < k; i++) s += (double)x[r * k + i] * wv[jj * k + i];
                        want[r * n + jj] = (float)s;
                    }
                char label[160];
                snprintf(label, sizeof label, "int8 %s all +-127: m=%lld k=%lld n=%lld vs exact sum", isa->name,
                         (long long)m, (long long)k, (long long)n);
                compare(label, yi, want, m * n, NULL, 4e-6 * (double)k, 0);
                if (k <= 4096)
                    CHECK(!memcmp(yi, yg, sizeof(float) * (size_t)(m * n + GUARD)), "%s: bit-identical to portable", label);
                free(yg); free(yi); free(want);
            }
            pi0_backend_release_weight(BE, &wt);
            free(wv); free(x);
        }
    }
}

/* The outlier side-product kernel of every ISA row against the portable one (pi0_fast_i8_side_generic):
 * bit-identical accumulators (each kernel multiplies, then adds, per column in the order of the
 * channels), for n = 0..CAP channels at every position mod 4 of their 4-input group, weights over
 * the whole int8 range (-128 included: the sign extension of each byte), activations of both signs
 * and very different magnitudes (a rounding difference would show), in groups across the panel. */
static void test_int8_side(void) {
    const int64_t kp = 1024;
    int8_t *panel = aligned_alloc(64, (size_t)(kp * 64));
    for (int64_t i = 0; i < kp * 64; i++) panel[i] = (int8_t)((int)(frand() * 128.0f + 128.0f) - 128);
    for (int j = 0; j < 64; j++) panel[4 * j + 1] = j % 2 ? -128 : 127; /* input 1: the extremes */
    for (int r = 0; r < pi0_fast_isa_count(); r++) {
        const pi0_fast_isa *isa = pi0_fast_isa_at(r);
        const pi0_fast_gemm_kernels *g = isa->gemm[PI0_WEIGHTS_INT8];
        if (!pi0_fast_isa_available(isa) || !g || !g->side) continue;
        int64_t bad = 0, runs = 0, nonzero = 0;
        for (int n = 0; n <= PI0_I8_OUTLIER_CAP; n++)
            for (int t = 0; t < 8; t++) {
                int32_t idx[PI0_I8_OUTLIER_CAP];
                float xv[PI0_I8_OUTLIER_CAP], a1[64], a2[64];
                for (int o = 0; o < n; o++) {
                    idx[o] = (int32_t)((t * 97 + o * 61 + (o * t) % 4) % kp);
                    if (t == 0) idx[o] = o; /* inputs 0..n-1: every byte of the first groups */
                    xv[o] = frand() * (o % 3 == 0 ? 300.0f : o % 3 == 1 ? 1.0f : 1e-3f);
                }
                memset(a2, 0xff, sizeof a2); /* NaN: the kernel must write every column */
                pi0_fast_i8_side_generic(a1, panel, idx, xv, n);
                g->side(a2, panel, idx, xv, n);
                bad += memcmp(a1, a2, sizeof a1) != 0;
                for (int j = 0; j < 64; j++) nonzero += a1[j] != 0.0f;
                runs++;
            }
        CHECK(bad == 0 && nonzero > 0, "int8 side-product kernel of %s: the portable bits (%lld of %lld runs differ; "
              "n = 0..%d channels, weights -128..127)", isa->name, (long long)bad, (long long)runs, PI0_I8_OUTLIER_CAP);
    }
    /* and the portable kernel against a plain reading of the layout (element (j, i) at (i/4)*256 + 4j + i%4) */
    int32_t idx[3] = {1, 6, 1023};
    float xv[3] = {2.0f, -0.5f, 3.0f}, a[64];
    pi0_fast_i8_side_generic(a, panel, idx, xv, 3);
    int ok = 1;
    for (int j = 0; j < 64; j++) {
        float want = 0.0f;
        for (int o = 0; o < 3; o++) want = want + xv[o] * (float)panel[(idx[o] / 4) * 256 + 4 * j + idx[o] % 4];
        ok &= a[j] == want;
    }
    CHECK(ok, "int8 portable side-product kernel: sum_o x_o q_j,o from the packed layout");
    free(panel);
}

/* Exact columns of an int8 weight (pi0_fast_i8_pick_exact, at pack): columns 80x smaller than the rest
 * of their rows (1-2 int8 levels, relative error ~30 %) are kept in fp32, with their source values,
 * and only those: not a column as small but on its rows' int8 grid (no error), none in a random
 * weight, at most PI0_I8_EXACT_CAP (ascending) when more are small. */
static void test_int8_exact_columns(void) {
    const int64_t n = 300, k = 200;
    for (int v = 0; v < 4; v++) {
        float *w = fbuf(n * k, 1.0f);
        int want[64], nw = 0;
        for (int64_t i = 0; i < k; i++) {
            int small = v == 3 ? i % 5 == 0 : (i == 7 || i == 50 || i == 199) && v > 0;
            if (!small) continue;
            float mx[300];
            for (int64_t j = 0; j < n; j++) {
                mx[j] = 0;
                for (int64_t c = 0; c < k; c++) if (c != i) mx[j] = fmaxf(mx[j], fabsf(w[j * k + c]));
                w[j * k + i] /= 80.0f;
                if (v == 2 && i == 50) w[j * k + i] = nearbyintf(w[j * k + i] * 127.0f / mx[j]) * (mx[j] / 127.0f);
            }
            if (!(v == 2 && i == 50)) want[nw++] = (int)i;
        }
        pi0_weight wt = {.name = "ex", .dtype = PI0_DT_F32, .data = w, .rows = n, .cols = k};
        if (pi0_backend_prepare_weight(BE, &wt, PI0_WEIGHTS_INT8) != PI0_OK) { CHECK(0, "pack"); free(w); return; }
        const pi0_fast_packed *b = wt.packed;
        int ok = b->n_exact == (nw < PI0_I8_EXACT_CAP ? nw : PI0_I8_EXACT_CAP);
        for (int e = 0; e < b->n_exact && ok; e++) {
            ok &= e == 0 || b->exact_idx[e] > b->exact_idx[e - 1];
            int in = 0;
            for (int q = 0; q < nw; q++) in |= want[q] == b->exact_idx[e];
            ok &= in;
            for (int64_t j = 0; j < b->n_panels * 64; j++)
                ok &= b->exact[e * b->n_panels * 64 + j] == (j < n ? w[j * k + b->exact_idx[e]] : 0.0f);
        }
        static const char *what[] = {"random weight: none", "3 columns /80: those 3", "one of them on the int8 grid: the other 2",
                                     "40 columns /80: the cap"};
        CHECK(ok, "int8 exact columns, %s (%d kept, %d planted)", what[v], b->n_exact, nw);
        if (v == 1) { /* through the GEMM: rows with those channels 300x as outliers */
            const int64_t m = 5;
            float *x = fbuf(m * k, 1.0f), *y0 = fbuf(m * n, 0), *y1 = fbuf(m * n, 0);
            for (int64_t r = 0; r < m; r++)
                for (int q = 0; q < nw; q++) x[r * k + want[q]] = (q + r) % 2 ? 300.0f : -250.0f;
            double e[2] = {0, 0}, ss = 0;
            pi0_fast_gemm_job j = {.c = y0, .ldc = n, .a = x, .lda = k, .b = b, .m = m, .p0 = 0, .p1 = b->n_panels};
            for (int on = 0; on < 2; on++) {
                pi0_fast_int8_exact(on);
                j.c = on ? y1 : y0;
                pi0_fast_gemm_generic(&j);
                for (int64_t r = 0; r < m; r++)
                    for (int64_t c = 0; c < n; c++) {
                        double want_y = 0;
                        for (int64_t i = 0; i < k; i++) want_y += (double)x[r * k + i] * w[c * k + i];
                        e[on] += (j.c[r * n + c] - want_y) * (j.c[r * n + c] - want_y);
                        if (on) ss += want_y * want_y;
                    }
            }
            CHECK(e[1] * 20 < e[0], "int8 GEMM with 3 outlier channels on the exact columns: NMSE %.3g with them, %.3g "
                  "with their int8 weights (min 20x less)", e[1] / ss, e[0] / ss);
            int same = 1;
            for (int r = 0; r < pi0_fast_isa_count(); r++) {
                const pi0_fast_isa *isa = pi0_fast_isa_at(r);
                if (!pi0_fast_isa_available(isa)) continue;
                j.c = y0;
                pi0_fast_gemm_isa(isa, &j);
                same &= !memcmp(y0, y1, sizeof(float) * (size_t)(m * n));
            }
            CHECK(same, "int8 GEMM with exact columns: every ISA row gives the portable bits (one k block)");
            free(x); free(y0); free(y1);
        }
        pi0_backend_release_weight(BE, &wt);
        free(w);
    }
}

/* A GeGLU pair's exact columns (pack.c, pair_pick_exact): gate with columns 7 and 50 made 80x smaller
 * than the rest of their rows, up with 50 and 120: the pair keeps the union {7, 50, 120}, ascending,
 * with the source weights of both halves in its layout (even panels gate, odd up); the fused GEMM
 * with those channels as 300x outliers is >= 20x closer to gelu(g)·u in double with them than with
 * PI0_INT8_EXACT off. */
static void test_geglu_exact_columns(void) {
    const int64_t n = 300, k = 200, m = 5;
    uint64_t rng_saved = rng;
    float *w[2] = {fbuf(n * k, 1.0f), fbuf(n * k, 1.0f)};
    static const int small[2][2] = {{7, 50}, {50, 120}};
    for (int h = 0; h < 2; h++)
        for (int q = 0; q < 2; q++)
            for (int64_t j = 0; j < n; j++) w[h][j * k + small[h][q]] /= 80.0f;
    pi0_weight g = {.name = "ex.gate", .dtype = PI0_DT_F32, .data = w[0], .rows = n, .cols = k};
    pi0_weight u = {.name = "ex.up", .dtype = PI0_DT_F32, .data = w[1], .rows = n, .cols = k};
    g.geglu_up = &u;
    u.geglu_gate = &g;
    pi0_weight *list[2] = {&g, &u};
    pi0_prepare_args pa = {.w = list, .n = 2, .weight_kind = PI0_WEIGHTS_INT8, .n_threads = 1};
    if (BE->prepare(&pa) != PI0_OK) { CHECK(0, "pack pair"); free(w[0]); free(w[1]); return; }
    const pi0_fast_packed *b = g.packed;
    int ok = b->pair && b->n_exact == 3 && b->exact_idx[0] == 7 && b->exact_idx[1] == 50 && b->exact_idx[2] == 120;
    for (int e = 0; ok && e < 3; e++)
        for (int64_t c = 0; c < b->n_panels * 64; c++) {
            int64_t pn = c / 64, j = (pn / 2) * 64 + c % 64;
            ok &= b->exact[e * b->n_panels * 64 + c] == (j < n ? w[pn % 2][j * k + b->exact_idx[e]] : 0.0f);
        }
    CHECK(ok, "int8 GeGLU pair: exact columns = union of gate's and up's (%d kept), both halves' source weights", b->n_exact);
    float *x = fbuf(m * k, 1.0f), *y = fbuf(m * n, 0);
    for (int64_t r = 0; r < m; r++) {
        x[r * k + 7] = r % 2 ? 300.0f : -250.0f;
        x[r * k + 50] = 280.0f;
        x[r * k + 120] = r % 2 ? -260.0f : 310.0f;
    }
    double e[2] = {0, 0}, ss = 0;
    pi0_geglu_args a = {.y = y, .x = x, .gate = &g, .up = &u, .m = m, .ldx = k, .ldy = n};
    for (int on = 0; on < 2; on++) {
        pi0_fast_int8_exact(on);
        RUN(BE->geglu, &a, 2);
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = 0; c < n; c++) {
                double gd = 0, ud = 0;
                for (int64_t i = 0; i < k; i++) { gd += (double)x[r * k + i] * w[0][c * k + i]; ud += (double)x[r * k + i] * w[1][c * k + i]; }
                double want = 0.5 * gd * (1.0 + tanh(0.7978845608028654 * (gd + 0.044715 * gd * gd * gd))) * ud;
                e[on] += (y[r * n + c] - want) * (y[r * n + c] - want);
                if (on) ss += want * want;
            }
    }
    pi0_fast_int8_exact(1);
    CHECK(e[1] * 20 < e[0], "int8 GeGLU with 3 outlier channels on the pair's exact columns: NMSE %.3g with them, %.3g "
          "without (min 20x less)", e[1] / ss, e[0] / ss);
    BE->release(list, 2);
    free(x); free(y); free(w[0]); free(w[1]);
    rng = rng_saved;
}

static void test_matmul_int8(void) {
    static const int64_t shapes[][3] = {{1, 1, 1},   {1, 7, 3},      {5, 17, 13},   {13, 64, 65},  {7, 33, 100},
                                        {51, 256, 130}, {2, 513, 257}, {6, 2, 128},  {37, 300, 3}, {40, 2048, 300}};
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < ns; s++)
        for (int nth = 1; nth <= 3; nth += 2) {
            int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
            test_int8_one(m, k, n, (pi0_dtype)((s + nth) % 3), s % 2, (s + nth) % 2, nth, s % 3 == 0 ? 0 : 3, 0, 1, 0);
        }
    test_int8_one(9, 40, 70, PI0_DT_F32, 0, 1, 2, 0, 0, 1, 1);                /* a NaN row stays NaN */
    test_int8_one(6, 16387, 70, PI0_DT_BF16, 1, 1, 2, 1, 0, 1, 0);            /* 5 k blocks, odd k */
    test_int8_one(250, 130, 600, PI0_DT_F32, 1, 1, 2, 3, 0, 1, 0);            /* row split */
    test_int8_one(50, 1024, 600, PI0_DT_BF16, 0, 1, 2, 0, 0, 1, 0);           /* panel split */
    test_int8_one(24, 2048, 130, PI0_DT_BF16, 0, 1, 2, 0, 4, 1, 0);           /* planted outliers: handled */
    test_int8_one(24, 2048, 130, PI0_DT_BF16, 0, 1, 2, 0, 4, 0, 0);           /* ... and the switch off */
    test_int8_one(12, 1031, 200, PI0_DT_F32, 1, 1, 3, 2, 5, 1, 0);            /* massive + moderate */
    test_int8_one(12, 1031, 200, PI0_DT_F32, 1, 1, 3, 2, 5, 0, 0);
}

/* The int8 kind of the fast backend: packing, row quantization, then the matmul cases once per ISA
 * row this CPU can run (each against the reference), and every row against the portable GEMM. */
static void test_int8(void) {
    test_int8_pack();
    test_int8_rows();
    for (int r = 0; r < pi0_fast_isa_count(); r++) {
        const pi0_fast_isa *isa = pi0_fast_isa_at(r);
        if (!pi0_fast_isa_force(isa)) continue;
        printf("---- int8 matmul with ISA row %s\n", isa->name);
        test_matmul_int8();
    }
    pi0_fast_isa_force(NULL);
    test_int8_variants();
    test_int8_exact();
    test_int8_side();
    test_int8_exact_columns();
    test_geglu_exact_columns();
}

/* ---- attention ------------------------------------------------------------------------------ */

/* masks: 0 = no mask arrays; 1 = qc/kc prefix-LM-like groups with some padded rows/keys (rows with
 * qpad = 0 are fully masked); 2 = every key padded (all rows fully masked: uniform weights). */
static void test_attention_one(int64_t nq, int64_t nk, int nh, int nkv, int hd, int masks, int nth) {
    /* row strides always larger than the data width */
    int64_t ldq = (int64_t)nh * hd + 5, ldk = (int64_t)nkv * hd + 3, ldo = ldq + 2;
    float *q = fbuf(nq * ldq, 3.0f), *k = fbuf(nk * ldk, 1.0f), *v = fbuf(nk * ldk, 1.0f);
    int32_t *qc = NULL, *kc = NULL;
    uint8_t *qp = NULL, *kp = NULL;
    if (masks) {
        qc = malloc(sizeof(int32_t) * (size_t)nq); kc = malloc(sizeof(int32_t) * (size_t)nk);
        qp = malloc((size_t)nq); kp = malloc((size_t)nk);
        for (int64_t i = 0; i < nq; i++) { qc[i] = (int32_t)(i % 3); qp[i] = (i % 7) != 3; }
        for (int64_t j = 0; j < nk; j++) { kc[j] = (int32_t)(j % 4); kp[j] = masks == 2 ? 0 : (j % 5) != 1; }
    }
    float vmax = 0;
    for (int64_t j = 0; j < nk; j++)
        for (int64_t c = 0; c < (int64_t)nkv * hd; c++) vmax = fmaxf(vmax, fabsf(v[j * ldk + c]));
    float *o0 = fbuf(nq * ldo, 0.0f), *or_ = fcopy(o0, nq * ldo), *of = fcopy(o0, nq * ldo);
    float *o1 = fcopy(o0, nq * ldo), *og = fcopy(o0, nq * ldo);
    pi0_attention_args a = {.out = or_, .q = q, .k = k, .v = v, .nq = nq, .nk = nk, .ldq = ldq, .ldk = ldk, .ldo = ldo,
                            .n_heads = nh, .n_kv = nkv, .hd = hd, .scale = 1.0f / sqrtf((float)hd),
                            .qc = qc, .kc = kc, .qpad = qp, .kpad = kp};
    RUN(REF->attention, &a, 1);
    a.out = of;
    char why[128];
    CHECK(BE->supports(PI0_OP_ATTENTION, &a, why, sizeof why), "supports attention");
    RUN(BE->attention, &a, nth);
    /* tolerance only on output columns; padding columns must be untouched (tol 0) */
    float *tol = malloc(sizeof(float) * (size_t)(nq * ldo));
    for (int64_t i = 0; i < nq * ldo; i++) tol[i] = (i % ldo) < (int64_t)nh * hd ? 1e-5f * (1 + vmax) : 0.0f;
    char label[160];
    snprintf(label, sizeof label, "attention nq=%lld nk=%lld heads=%d kv=%d hd=%d masks=%d nth=%d", (long long)nq,
             (long long)nk, nh, nkv, hd, masks, nth);
    double min_pcc = nq * nh * hd >= 64 ? 0.99999 : 0;
    compare(label, of, or_, nq * ldo, tol, 0, min_pcc);
    /* same kernel, one thread: bit-identical */
    a.out = o1;
    RUN(BE->attention, &a, 1);
    CHECK(!memcmp(o1, of, sizeof(float) * (size_t)(nq * ldo + GUARD)), "%s: nth=1 and nth=%d bit-identical", label, nth);
    /* portable kernel (what a CPU without AVX2 runs), split in two row ranges */
    a.out = og;
    float *s = malloc(sizeof(float) * (size_t)nk);
    pi0_fast_attention_generic(&a, 0, nq / 2, s);
    pi0_fast_attention_generic(&a, nq / 2, nq, s);
    free(s);
    snprintf(label, sizeof label, "attention generic nq=%lld nk=%lld heads=%d kv=%d hd=%d masks=%d", (long long)nq,
             (long long)nk, nh, nkv, hd, masks);
    compare(label, og, or_, nq * ldo, tol, 0, min_pcc);
    free(q); free(k); free(v); free(qc); free(kc); free(qp); free(kp); free(o0); free(or_); free(of); free(o1);
    free(og); free(tol);
}

static void test_attention(void) {
    test_attention_one(1, 1, 1, 1, 1, 0, 1);
    test_attention_one(5, 7, 8, 1, 16, 1, 2);
    test_attention_one(13, 29, 4, 2, 33, 1, 3);     /* primes, 2 KV groups */
    test_attention_one(17, 17, 16, 16, 72, 0, 2);   /* SigLIP-like: n_kv = n_heads, hd 72 */
    test_attention_one(67, 67, 16, 16, 72, 1, 3);
    test_attention_one(1, 867, 8, 1, 256, 1, 2);    /* nq = 1 (MQA 8:1, hd 256) */
    test_attention_one(51, 131, 8, 1, 256, 1, 2);   /* denoise-like */
    test_attention_one(50, 355, 8, 1, 256, 1, 2);
    test_attention_one(150, 150, 8, 1, 256, 1, 3);  /* prefix-like, several blocks per thread */
    test_attention_one(7, 211, 8, 1, 256, 2, 2);    /* every row fully masked: uniform weights */
    test_attention_one(37, 300, 2, 1, 64, 0, 1);
    test_attention_one(23, 17, 3, 1, 5, 1, 2);      /* key tails 12+4+1, hd not a multiple of 16 */
    test_attention_one(11, 23, 24, 8, 40, 1, 3);    /* 3:1 groups */
}

/* ---- attention over a bf16 copy of the KV cache (pi0_kv_bf16_fill, kb/vb/nkb) ---------------- */

/* Keys [0, nkb) are given as a bf16 copy; keys [nkb, nk) only in fp32. The expected values are the
 * reference backend on the fp32 K/V (it ignores the copy). Tolerance, per output (a convex
 * combination of V rows): rounding V to bf16 moves it by <= 2^-9·max|v|, rounding the weights by
 * <= 2^-9·max|v|; rounding q·scale and K (2^-9 each) moves a logit by <= δ = 2^-8·1.01·scale·
 * max Σ_d|q_d k_d|, which moves the output by <= 2δ·max|v|; plus the fp32 tolerance of the fp32
 * kernels, 1e-5·(1 + max|v|). Also PCC >= 0.9999 (the bound is a worst case; typical errors are
 * far smaller). The ISA row's bf16 kernel must be taken when it has one and the shape fits (the
 * result then differs from its fp32 kernel's), otherwise the fp32 kernel's result comes back
 * bit for bit; and the result must not depend on nth. The portable bf16 kernel is checked too.
 * round = 1 sets round_bf16: the SIMD bf16 kernel then rounds keys [nkb, nk) too (nkb 0: no copy
 * given, as SigLIP calls it); the bound above covers rounding every key. */
static void test_attention_bf16_one(int64_t nq, int64_t nk, int64_t nkb, int nh, int nkv, int hd, int masks, int nth,
                                    int odd_ldk, int round) {
    int64_t ldq = (int64_t)nh * hd + 5, ldk = (int64_t)nkv * hd + (odd_ldk ? 3 : 2), ldo = ldq + 2;
    float *q = fbuf(nq * ldq, 3.0f), *k = fbuf(nk * ldk, 1.0f), *v = fbuf(nk * ldk, 1.0f);
    uint16_t *kb = malloc(sizeof(uint16_t) * (size_t)(nk * ldk)), *vb = malloc(sizeof(uint16_t) * (size_t)((nk + 1) * ldk));
    pi0_kv_bf16_fill(kb, vb, k, v, ldk, 0, nkb / 2);
    pi0_kv_bf16_fill(kb, vb, k, v, ldk, nkb / 2, nkb); /* in two row ranges, as a layer at a time would */
    int32_t *qc = NULL, *kc = NULL;
    uint8_t *qp = NULL, *kp = NULL;
    if (masks) {
        qc = malloc(sizeof(int32_t) * (size_t)nq); kc = malloc(sizeof(int32_t) * (size_t)nk);
        qp = malloc((size_t)nq); kp = malloc((size_t)nk);
        for (int64_t i = 0; i < nq; i++) { qc[i] = (int32_t)(i % 3); qp[i] = (i % 7) != 3; }
        for (int64_t j = 0; j < nk; j++) { kc[j] = (int32_t)(j % 4); kp[j] = masks == 2 ? 0 : (j % 5) != 1; }
    }
    float scale = 1.0f / sqrtf((float)hd), vmax = 0;
    double lmax = 0;
    for (int64_t j = 0; j < nk; j++)
        for (int64_t c = 0; c < (int64_t)nkv * hd; c++) vmax = fmaxf(vmax, fabsf(v[j * ldk + c]));
    for (int64_t i = 0; i < nq; i++)
        for (int h = 0; h < nh; h++)
            for (int64_t j = 0; j < nk; j++) {
                double t = 0;
                for (int d = 0; d < hd; d++)
                    t += fabs((double)q[i * ldq + h * hd + d] * k[j * ldk + (h / (nh / nkv)) * hd + d]);
                lmax = fmax(lmax, t);
            }
    double delta = 1.01 * ldexp(1.0, -8) * scale * lmax;
    float t0 = (float)(vmax * (2 * ldexp(1.0, -9) + 2 * delta) + 1e-5 * (1 + vmax));
    float *o0 = fbuf(nq * ldo, 0.0f), *or_ = fcopy(o0, nq * ldo), *of = fcopy(o0, nq * ldo), *o1 = fcopy(o0, nq * ldo);
    float *o32 = fcopy(o0, nq * ldo), *og = fcopy(o0, nq * ldo);
    pi0_attention_args a = {.out = or_, .q = q, .k = k, .v = v, .nq = nq, .nk = nk, .ldq = ldq, .ldk = ldk, .ldo = ldo,
                            .n_heads = nh, .n_kv = nkv, .hd = hd, .scale = scale,
                            .qc = qc, .kc = kc, .qpad = qp, .kpad = kp, .kb = nkb ? kb : NULL, .vb = nkb ? vb : NULL,
                            .nkb = nkb, .round_bf16 = round};
    RUN(REF->attention, &a, 1);
    a.out = of;
    RUN(BE->attention, &a, nth);
    float *tol = malloc(sizeof(float) * (size_t)(nq * ldo));
    for (int64_t i = 0; i < nq * ldo; i++) tol[i] = (i % ldo) < (int64_t)nh * hd ? t0 : 0.0f;
    char label[200];
    snprintf(label, sizeof label, "attention bf16 KV nq=%lld nk=%lld nkb=%lld heads=%d kv=%d hd=%d ldk=%lld masks=%d nth=%d round=%d",
             (long long)nq, (long long)nk, (long long)nkb, nh, nkv, hd, (long long)ldk, masks, nth, round);
    double min_pcc = nq * nh * hd >= 64 && masks != 2 ? 0.9999 : 0;
    compare(label, of, or_, nq * ldo, tol, 0, min_pcc);
    a.out = o1;
    RUN(BE->attention, &a, 1);
    CHECK(!memcmp(o1, of, sizeof(float) * (size_t)(nq * ldo + GUARD)), "%s: nth=1 and nth=%d bit-identical", label, nth);
    if (BE == &pi0_backend_fast) {
        /* which kernel ran: the bf16 one (result differs from the fp32 kernel's) or the fp32 one. The
         * portable bf16 kernel only widens the copy: without one (nkb 0) it computes fp32 exactly */
        const pi0_fast_isa *isa = pi0_fast_isa_get();
        int rounds = round && isa->attention_bf16 != pi0_fast_attention_bf16_generic;
        int want_bf16 = isa->attention_bf16 && isa->attention_bf16_ok(&a) && (nkb > 0 || rounds);
        pi0_attention_args f = a;
        f.out = o32, f.kb = NULL, f.vb = NULL, f.nkb = 0, f.round_bf16 = 0;
        RUN(BE->attention, &f, nth);
        int same = !memcmp(o32, of, sizeof(float) * (size_t)(nq * ldo));
        CHECK(want_bf16 ? !same : same, "%s: ISA row %s ran its %s kernel", label, isa->name, want_bf16 ? "bf16" : "fp32");
        a.out = og;
        float *s = malloc(sizeof(float) * (size_t)nk);
        pi0_fast_attention_bf16_generic(&a, 0, nq / 2, s);
        pi0_fast_attention_bf16_generic(&a, nq / 2, nq, s);
        free(s);
        snprintf(label, sizeof label, "attention bf16 KV generic nq=%lld nk=%lld nkb=%lld heads=%d kv=%d hd=%d masks=%d round=%d",
                 (long long)nq, (long long)nk, (long long)nkb, nh, nkv, hd, masks, round);
        compare(label, og, or_, nq * ldo, tol, 0, min_pcc);
    }
    free(q); free(k); free(v); free(kb); free(vb); free(qc); free(kc); free(qp); free(kp);
    free(o0); free(or_); free(of); free(o1); free(o32); free(og); free(tol);
}

static void test_attention_bf16(void) {
    test_attention_bf16_one(1, 1, 1, 1, 1, 2, 0, 1, 0, 0);
    test_attention_bf16_one(50, 355, 304, 8, 1, 256, 1, 2, 0, 0);  /* denoise: prefix copy + 51 fp32 rows */
    test_attention_bf16_one(51, 355, 355, 8, 1, 256, 1, 2, 0, 0);  /* all keys in the copy */
    test_attention_bf16_one(150, 150, 150, 8, 1, 256, 1, 3, 0, 0); /* prefill, several blocks per thread */
    test_attention_bf16_one(1, 867, 816, 8, 1, 256, 1, 2, 0, 0);   /* nq = 1 */
    test_attention_bf16_one(13, 29, 11, 4, 2, 34, 1, 3, 0, 0);     /* 2 KV groups, odd copy and tail */
    test_attention_bf16_one(23, 17, 5, 3, 1, 6, 1, 2, 0, 0);       /* hd 6, key tails 12+4+1 */
    test_attention_bf16_one(11, 23, 23, 24, 8, 40, 1, 3, 0, 0);    /* 3:1 groups */
    test_attention_bf16_one(37, 300, 299, 2, 1, 64, 0, 1, 0, 0);   /* no masks, one fp32 key */
    test_attention_bf16_one(7, 211, 100, 8, 1, 256, 2, 2, 0, 0);   /* every row fully masked: uniform */
    test_attention_bf16_one(9, 40, 33, 2, 1, 16, 1, 2, 1, 0);      /* odd ldk: the SIMD kernel declines */
    test_attention_bf16_one(6, 20, 10, 2, 1, 7, 1, 2, 0, 0);       /* odd hd: likewise */
    /* round_bf16 (SigLIP): no copy, every key rounded per call (n_kv = n_heads, hd 72, odd nk) */
    test_attention_bf16_one(67, 67, 0, 16, 16, 72, 0, 3, 0, 1);
    test_attention_bf16_one(17, 17, 0, 16, 16, 72, 1, 2, 0, 1);
    test_attention_bf16_one(13, 29, 0, 4, 2, 34, 1, 3, 0, 1);   /* 2 KV groups */
    test_attention_bf16_one(50, 355, 304, 8, 1, 256, 1, 2, 0, 1); /* with a copy: as without round */
    test_attention_bf16_one(7, 31, 0, 8, 1, 256, 2, 2, 0, 1);   /* every row fully masked */
    test_attention_bf16_one(6, 20, 0, 2, 1, 7, 1, 2, 0, 1);     /* odd hd: the SIMD kernel declines */
}

/* ---- norms, elementwise, mod, rope, embed, patches ----------------------------------------- */

static void test_norms(void) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 1152}, {4, 2048}, {7, 1023}, {2, 33}};
    for (int s = 0; s < 6; s++)
        for (int nth = 1; nth <= 3; nth++) {
            int64_t m = shapes[s][0], d = shapes[s][1];
            float *x = fbuf(m * d, 4.0f), *w = fbuf(d, 1.0f), *b = fbuf(d, 1.0f);
            for (int64_t i = 0; i < m * d; i++) x[i] += 0.5f; /* non-zero mean */
            if (s == 2) x[d + 3] = NAN;
            float *yr = fbuf(m * d, 0), *yf = fcopy(yr, m * d);
            float *tol = malloc(sizeof(float) * (size_t)(m * d));
            char label[96];
            for (int kind = 0; kind < 3; kind++) { /* layernorm, rmsnorm, rmsnorm without w */
                pi0_norm_args a = {.y = yr, .x = x, .w = kind == 2 ? NULL : w, .b = b, .m = m, .d = d, .eps = 1e-6f};
                if (kind == 0) RUN(REF->layernorm, &a, 1); else RUN(REF->rmsnorm, &a, 1);
                a.y = yf;
                if (kind == 0) RUN(BE->layernorm, &a, nth); else RUN(BE->rmsnorm, &a, nth);
                for (int64_t i = 0; i < m * d; i++) tol[i] = 2e-5f * (1.0f + fabsf(yr[i]));
                snprintf(label, sizeof label, "%s m=%lld d=%lld nth=%d", kind == 0 ? "layernorm" : kind == 1 ? "rmsnorm" : "rmsnorm(no w)",
                         (long long)m, (long long)d, nth);
                compare(label, yf, yr, m * d, tol, 0, 0);
            }
            free(x); free(w); free(b); free(yr); free(yf); free(tol);
        }
}

static void test_ew(void) {
    static const int64_t sizes[] = {1, 15, 17, 101, 4096, 5003};
    static const char *names[] = {"gelu_tanh_mul", "gelu_tanh", "swish", "add", "axpy"};
    for (int s = 0; s < 6; s++)
        for (int kind = 0; kind <= PI0_EW_AXPY; kind++)
            for (int nth = 1; nth <= 3; nth++) {
                int64_t n = sizes[s];
                float *a = fbuf(n, 12.0f), *b = fbuf(n, 2.0f);
                if (n > 10) { a[3] = NAN; a[4] = INFINITY; a[5] = -INFINITY; a[6] = 1e-30f; a[7] = -95.0f; a[8] = 95.0f; }
                float *yr = fbuf(n, 0), *yf = fcopy(yr, n), *tol = malloc(sizeof(float) * (size_t)n);
                pi0_ew_args ar = {.y = yr, .a = a, .b = b, .n = n, .alpha = -0.1f, .kind = (pi0_ew_kind)kind};
                RUN(REF->ew, &ar, 1);
                ar.y = yf;
                RUN(BE->ew, &ar, nth);
                double rt = kind <= PI0_EW_SWISH ? 1e-5 : 1e-6;
                for (int64_t i = 0; i < n; i++) tol[i] = (float)(rt * fabs(yr[i]) + 1e-7);
                char label[96];
                snprintf(label, sizeof label, "ew %s n=%lld nth=%d", names[kind], (long long)n, nth);
                compare(label, yf, yr, n, tol, 0, 0);
                free(a); free(b); free(yr); free(yf); free(tol);
            }
}

static void test_mod_rope(void) {
    for (int nth = 1; nth <= 3; nth++) {
        int64_t m = 7, d = 67;
        float *y0 = fbuf(m * d, 2.0f), *f = fbuf(m * d, 1.0f), *sc = fbuf(d, 1.0f), *sh = fbuf(d, 1.0f), *g = fbuf(d, 1.0f);
        for (int kind = PI0_MOD_SCALE_SHIFT; kind <= PI0_MOD_GATED_RESIDUAL; kind++) {
            float *yr = fcopy(y0, m * d), *yf = fcopy(y0, m * d);
            pi0_mod_args a = {.y = yr, .f = f, .scale = sc, .shift = sh, .gate = g, .m = m, .d = d, .kind = (pi0_mod_kind)kind};
            RUN(REF->mod, &a, 1);
            a.y = yf;
            RUN(BE->mod, &a, nth);
            char label[64];
            snprintf(label, sizeof label, "mod kind=%d nth=%d", kind, nth);
            compare(label, yf, yr, m * d, NULL, 1e-6, 0);
            free(yr); free(yf);
        }
        free(y0); free(f); free(sc); free(sh); free(g);
    }
    static const int cfg[][3] = {{8, 256, 1}, {1, 256, 0}, {16, 72, 1}, {3, 2, 0}, {2, 34, 1}};
    for (int c = 0; c < 5; c++)
        for (int nth = 1; nth <= 3; nth++) {
            int nh = cfg[c][0], hd = cfg[c][1];
            int64_t m = 19, ld = (int64_t)nh * hd + (cfg[c][2] ? 4 : 0);
            float *x0 = fbuf(m * ld, 1.0f);
            int32_t pos[19];
            for (int i = 0; i < 19; i++) pos[i] = i == 0 ? -1 : i * 53 + (c == 1 ? 800 : 0);
            float *xr = fcopy(x0, m * ld), *xf = fcopy(x0, m * ld);
            pi0_rope_args a = {.x = xr, .pos = pos, .m = m, .ld = ld, .n_heads = nh, .hd = hd, .base = 10000.0f};
            RUN(REF->rope, &a, 1);
            a.x = xf;
            RUN(BE->rope, &a, nth);
            char label[64];
            snprintf(label, sizeof label, "rope heads=%d hd=%d nth=%d", nh, hd, nth);
            compare(label, xf, xr, m * ld, NULL, 1e-6, 0);
            free(x0); free(xr); free(xf);
        }
}

static void test_embed_patches(void) {
    const int64_t vocab = 37, d = 70, m = 11;
    float *tab = fbuf(vocab * d, 1.0f);
    int32_t ids[11] = {0, 36, 5, 5, 17, 1, 2, 3, 30, 0, 9};
    for (int dt = 0; dt < 3; dt++)
        for (int nth = 1; nth <= 3; nth++) {
            void *data = make_weight_data((pi0_dtype)dt, tab, vocab * d);
            pi0_weight w = {.name = "emb", .dtype = (pi0_dtype)dt, .data = data, .rows = vocab, .cols = d};
            float *yr = fbuf(m * d, 0), *yf = fcopy(yr, m * d);
            pi0_embed_args a = {.y = yr, .w = &w, .ids = ids, .m = m, .scale = 45.254833995939045f};
            RUN(REF->embed, &a, 1);
            a.y = yf;
            RUN(BE->embed, &a, nth);
            char label[64];
            snprintf(label, sizeof label, "embed dtype=%d nth=%d", dt, nth);
            compare(label, yf, yr, m * d, NULL, 0.0, 0);
            free(data); free(yr); free(yf);
        }
    {
        pi0_weight w = {.name = "emb", .dtype = PI0_DT_F32, .data = tab, .rows = vocab, .cols = d};
        int32_t bad[2] = {3, 37};
        pi0_embed_args a = {.y = NULL, .w = &w, .ids = bad, .m = 2, .scale = 1};
        char why[128] = "";
        int ok = BE->supports(PI0_OP_EMBED, &a, why, sizeof why);
        CHECK(!ok && strstr(why, "row 1"), "embed supports rejects id 37 of vocab 37: '%s'", why);
    }
    free(tab);
    static const int pc[][3] = {{3, 28, 14}, {1, 5, 5}, {2, 15, 3}};
    for (int c = 0; c < 3; c++)
        for (int nth = 1; nth <= 3; nth++) {
            int ch = pc[c][0], s = pc[c][1], p = pc[c][2];
            int64_t n = (int64_t)(s / p) * (s / p) * ch * p * p;
            float *img = fbuf((int64_t)ch * s * s, 1.0f), *yr = fbuf(n, 0), *yf = fcopy(yr, n);
            pi0_patches_args a = {.y = yr, .img = img, .c = ch, .s = s, .p = p};
            RUN(REF->patches, &a, 1);
            a.y = yf;
            RUN(BE->patches, &a, nth);
            char label[64];
            snprintf(label, sizeof label, "patches c=%d s=%d p=%d nth=%d", ch, s, p, nth);
            compare(label, yf, yr, n, NULL, 0.0, 0);
            free(img); free(yr); free(yf);
        }
}

/* ---- row kernels per ISA (vecmath_*.c) ----------------------------------------------------- */

typedef struct {
    const char *name;
    void (*gelu)(float *, const float *, const float *, int64_t);
    void (*swish)(float *, const float *, int64_t);
} vec_kernels;

/* 0.5·x·(1 + tanh(z)) written as x / (1 + e^(-2z)) (the same function): in double the tanh form
 * cancels for x < ~-6, where 1 + tanh(z) drops below double's epsilon. */
static double gelu_d(double x) { return x / (1.0 + exp(-2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double swish_d(double x) { return x / (1.0 + exp(-x)); }
static double act_tol(int gelu, double x) {
    double arg = gelu ? fabs(2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x)) : fabs(x);
    return 1.5e-6 + 3e-7 * arg;
}

/* Each kernel set this CPU has, called directly, against double-precision formulas (independent of
 * both backends): GELU (tanh form) and swish on a dense sweep of [-12, 12] plus the spans of random
 * lengths used for the tails. Tolerance (why): the exp is ~1 ulp, the divide and the multiplier one
 * rounding each, and the exp argument (2z = 2·0.79788·(x + 0.044715x³), or x) is computed in float
 * with ~3 roundings, i.e. an absolute error up to ~3·2^-24·|arg|, which exp turns into that relative
 * error: rel <= 1.5e-6 + 3e-7·|arg|. That is the ~1e-6 target for |x| <= 3 (also checked alone,
 * max rel <= 2e-6 there); at the far negative end (x ~ -9, |2z| ~ 64, gelu ~ 1e-27) it reaches
 * ~1e-5 in every implementation, libm expf included. Plus 4e-38 absolute: once -2z > 88.72 the
 * float e^(-2z) overflows to inf and gelu = x / inf = -0, where the true |gelu| < |x|·2^-128 (and
 * subnormal results round in absolute steps); the relative figures printed cover normal results.
 * Spans start at an odd offset inside a guarded buffer, so a
 * tail read or write outside [0, n) shows up as a changed sentinel. */
static void test_vec_kernels(const vec_kernels *vk) {
    const int64_t n = 24001;
    float *x = fbuf(n, 0), *y = fbuf(n, 0);
    for (int64_t i = 0; i < n; i++) x[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
    for (int f = 0; f < 2; f++) {
        if (f == 0) vk->gelu(y, x, NULL, n); else vk->swish(y, x, n);
        double worst = 0, worst_x = 0;
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            double xd = x[i], want = f == 0 ? gelu_d(xd) : swish_d(xd);
            double d = fabs(y[i] - want), rel = want != 0 ? d / fabs(want) : d;
            int ok = d <= act_tol(f == 0, xd) * fabs(want) + 4e-38;
            if (fabs(want) >= 1e-36 && rel > worst) { worst = rel; worst_x = xd; }
            if (!ok && bad++ < 5) printf("     mismatch x=%.9g got %.9g want %.9g rel %.3g\n", xd, y[i], want, rel);
        }
        double worst3 = 0; /* |x| <= 3: where the model's activations live */
        for (int64_t i = 0; i < n; i++)
            if (fabsf(x[i]) <= 3.0f) {
                double want = f == 0 ? gelu_d(x[i]) : swish_d(x[i]);
                if (want != 0 && fabs(y[i] - want) / fabs(want) > worst3) worst3 = fabs(y[i] - want) / fabs(want);
            }
        int guard_ok = 1;
        for (int i = 0; i < GUARD; i++) guard_ok &= y[n + i] == SENT;
        harness_result(bad == 0 && guard_ok && worst3 <= 2e-6,
                       "%s %s vs double on [-12, 12]: max rel %.3g where |ref| >= 1e-36 (at x=%.4g), max rel for |x|<=3: %.3g (tol 2e-6)%s",
                       vk->name, f == 0 ? "gelu_tanh" : "swish", worst, worst_x, worst3, guard_ok ? "" : " GUARD OVERWRITTEN");
    }
    /* tails: every length 1..40 at an odd offset, gelu with the multiplier, swish; guards both sides */
    int tails_ok = 1;
    for (int64_t len = 1; len <= 40 && tails_ok; len++) {
        float buf[64 + 2 * GUARD], in[64], mul[64];
        for (int64_t i = 0; i < len; i++) { in[i] = frand() * 6.0f; mul[i] = frand(); }
        for (int f = 0; f < 2; f++) {
            for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) buf[i] = SENT;
            float *o = buf + GUARD + 1;
            if (f == 0) vk->gelu(o, in, mul, len); else vk->swish(o, in, len);
            for (int64_t i = -1 - GUARD + 1; i < 0; i++) tails_ok &= o[i] == SENT;
            for (int64_t i = len; i < len + GUARD; i++) tails_ok &= o[i] == SENT;
            for (int64_t i = 0; i < len; i++) {
                double want = f == 0 ? gelu_d(in[i]) * mul[i] : swish_d(in[i]);
                tails_ok &= fabs(o[i] - want) <= act_tol(f == 0, in[i]) * fabs(want) + 4e-38;
            }
        }
    }
    CHECK(tails_ok, "%s gelu*b / swish: lengths 1..40 at an odd offset, values ok, guards on both sides intact", vk->name);
    free(x); free(y);
}

static void test_vec_kernel_sets(void) {
    for (int r = 0; r < pi0_fast_isa_count(); r++) {
        const pi0_fast_isa *isa = pi0_fast_isa_at(r);
        vec_kernels vk = {isa->name, isa->gelu_tanh, isa->swish};
        if (pi0_fast_isa_available(isa)) test_vec_kernels(&vk);
        else printf("row kernels %s: not available on this CPU, skipped\n", isa->name);
    }
}

/* Norm and elementwise ops give the same bytes for nth = 1 and nth = 3 (each element one writer,
 * arithmetic independent of the split) at the current caps level. */
static void test_rows_nth_identical(void) {
    const int64_t m = 7, d = 1023, n = 5003;
    float *x = fbuf(m * d, 3.0f), *w = fbuf(d, 1.0f), *b = fbuf(d, 1.0f);
    for (int kind = 0; kind < 2; kind++) {
        float *y1 = fbuf(m * d, 0), *y3 = fcopy(y1, m * d);
        pi0_norm_args a = {.y = y1, .x = x, .w = w, .b = b, .m = m, .d = d, .eps = 1e-6f};
        if (kind == 0) RUN(BE->layernorm, &a, 1); else RUN(BE->rmsnorm, &a, 1);
        a.y = y3;
        if (kind == 0) RUN(BE->layernorm, &a, 3); else RUN(BE->rmsnorm, &a, 3);
        CHECK(!memcmp(y1, y3, sizeof(float) * (size_t)(m * d + GUARD)), "%s m=%lld d=%lld: nth=1 and nth=3 bit-identical",
              kind ? "rmsnorm" : "layernorm", (long long)m, (long long)d);
        free(y1); free(y3);
    }
    float *ea = fbuf(n, 8.0f), *eb = fbuf(n, 1.0f);
    for (int kind = PI0_EW_GELU_TANH_MUL; kind <= PI0_EW_SWISH; kind++) {
        float *y1 = fbuf(n, 0), *y3 = fcopy(y1, n);
        pi0_ew_args a = {.y = y1, .a = ea, .b = eb, .n = n, .kind = (pi0_ew_kind)kind};
        RUN(BE->ew, &a, 1);
        a.y = y3;
        RUN(BE->ew, &a, 3);
        CHECK(!memcmp(y1, y3, sizeof(float) * (size_t)(n + GUARD)), "ew kind %d n=%lld: nth=1 and nth=3 bit-identical",
              kind, (long long)n);
        free(y1); free(y3);
    }
    free(x); free(w); free(b); free(ea); free(eb);
}

static void test_backend(void) {
    int fast = BE == &pi0_backend_fast;
    /* the GEMM, row-kernel and attention cases once per ISA row this CPU can run (isa.c's list: on
     * x86 avx512-bf16, avx512, avx2, generic; on AArch64 neon-bf16, neon, generic), each against the
     * reference backend: every ISA's kernels are checked here */
    for (int r = 0; r < pi0_fast_isa_count(); r++) {
        const pi0_fast_isa *isa = pi0_fast_isa_at(r);
        if (!pi0_fast_isa_force(isa)) { printf("ISA row %s: not available on this CPU, skipped\n", isa->name); continue; }
        printf("---- matmul, norms, elementwise, attention with ISA row %s (cpu: %s)\n", isa->name, pi0_cpu_caps_str());
        test_matmul();
        if (fast) test_geglu();
        if (fast) test_gemm_variants();
        test_norms();
        test_ew();
        test_rows_nth_identical();
        test_attention();
        test_attention_bf16();
    }
    pi0_fast_isa_force(NULL);
    if (fast) {
        test_vec_kernel_sets();
        test_pack_bytes();
        test_int8();
    }
    test_mod_rope();
    test_embed_patches();
}

int main(void) {
    printf("cpu: %s\n", pi0_cpu_caps_str());
    REF = pi0_backend_reference();
    /* the ISA row follows the CPU flags: lowering them (PI0_CPU_CAPS, or the test-only force) picks
     * the portable row; back at the native level the row is the best one the CPU can run */
    CHECK(pi0_cpu_caps_force(PI0_CPU_GENERIC) && pi0_fast_isa_get() == &pi0_fast_isa_generic,
          "caps lowered to generic: ISA row generic");
    pi0_cpu_caps_force(PI0_CPU_NATIVE);
    int best = 0;
    while (!pi0_fast_isa_available(pi0_fast_isa_at(best))) best++;
    CHECK(pi0_fast_isa_get() == pi0_fast_isa_at(best), "native caps: ISA row %s", pi0_fast_isa_get()->name);
    for (int i = 0; i < pi0_backend_count(); i++) {
        BE = pi0_backend_at(i);
        if (!BE || BE == REF) continue;
        printf("==== backend %s against %s\n", BE->name, REF->name);
        test_backend();
    }
    return harness_summary();
}
