/* quant_int8.c - the int8 kind's activation side (portable, shared by every ISA): per-row (per-token)
 * dynamic quantization with outlier channels, the portable block quantizer and the outlier side
 * product. The weight side (per-output-channel quantization, exact columns) is in pack.c, the layout
 * in fast.h.
 *
 * Side product (pi0_fast_i8_side, after a panel's last k block): per row with outlier channels, those
 * whose input column the weight keeps exactly (pack.c: columns whose int8 values keep too few levels)
 * are multiplied by that fp32 column, the others by their int8 weights through the ISA's kernel (isa.h
 * entry `side`: AVX-512, AVX2, NEON in quant_int8_<isa>.c, all with the portable kernel's bits: per
 * column a product rounded, then added, in channel order). PI0_INT8_STATS=1 prints per weight role how
 * its input rows were quantized (rows with outliers, channels per row, rows quantized whole, scans).
 *
 * Row quantization (pi0_fast_i8_row_prepare), computed over the whole row once per m block, so all
 * k blocks share it and it depends on the row alone (never on the thread split):
 *   1. one scan: rms and max |x| of the row. A NaN or infinity makes the row's step NaN (outputs NaN).
 *   2. outliers: channels with |x_i| > T * rms(rest), where `rest` is the row without those channels.
 *      Found by iteration: thr = T * rms(all) -> the channels above thr -> thr = T * rms(the others)
 *      -> ... until the set stops growing (a massive channel inflates rms(all), so the first
 *      threshold alone would miss moderate outliers beside it). At most CAP channels, the largest
 *      (ties: lower index); if more than 4 * CAP exceed the threshold, or the set still grows after
 *      8 steps, the row is not a few outlier channels but heavy-tailed, and is quantized whole.
 *      The steps do not rescan the row: one scan at L = 3/4 of the threshold keeps the channels above
 *      L (a pool) and the lane sums and max of the others, and each step takes its set and the rest's
 *      sums from the pool until the threshold falls below L (then a new pool). Measured on GeGLU
 *      rows (bench/quant_outliers.c --speed): 2.0 scans per row where rescanning took 4.4 (k = 4096)
 *      and 3.1 (k = 16384, rows quantized whole); the first scan, which reads the row from memory,
 *      is most of the cost (rescans hit L2).
 *   3. step = max |x_i| over the non-outlier channels / 127; q_i = nearest-even(x_i * 127 / max) in
 *      [-127, 127]; outlier channels are quantized as 0 and added exactly (fp32) by the side product
 *      c[r, j] += scale_j * sum_o x_o * q_jo (the weight itself is the int8 one: the side product
 *      removes only the activation's quantization error).
 * The rms sums are lane-wise (16 lanes, fixed order, no FMA) so every ISA's scan gives the same
 * bits, hence the same outliers, steps and q: the int8 products of all ISAs are identical integers.
 *
 * Why T = 6 and CAP = 16 (PI0_I8_OUTLIER_T/_CAP in fast.h): the activation error of a row is about
 * step/sqrt(12) per channel, i.e. (max/rms)/440 of the row's rms, so what matters is max/rms after
 * the outliers leave. bench/quant_outliers.c measures the output NMSE of int8 rows x int8 weights
 * (k = 2048, N(0,1) weights) against double for five kinds of rows and T = 4..24 (table in
 * BENCHMARKS.md, GEMM int8): Gaussian rows (max/rms 3.6) are never touched for T >= 5 (NMSE 1.40e-4,
 * the floor set by the weights and the rows' own step); with 4 fixed channels at 20-100x, or one
 * at 500x beside three at 20-40x, every T <= 12 removes exactly the planted channels (NMSE 7.8e-5 /
 * 6.5e-5, vs 5.9e-3 / 6.6e-3 with the handling off); T decides the borderline rows: two channels at
 * 8-12x give 1.29e-4 at T <= 6, 2.1e-4 at T = 8, 7.8e-4 at T >= 16, and heavy-tailed Student-t4 rows
 * (max/rms 8.5) 2.1e-4 at T = 6 for 2.4 side channels per row (T = 5: 1.7e-4 for 5.3; T = 8: 3.0e-4
 * for 0.6). T = 6 is the knee: every kind within 1.6x of the Gaussian floor at <= 2.4 channels per
 * row. CAP: Gemma-class models concentrate their outliers in a handful of channels (a few of the
 * 2048, the same in every token); 16 leaves room for several, and at one fp32 multiply-add per
 * output per channel the side product of 16 is < 1 % of a k = 2048 GEMM's work.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/fast/fast.h"

#define CAP PI0_I8_OUTLIER_CAP
#define CAND (4 * CAP) /* more channels above the threshold: the row is heavy-tailed, quantized whole */
#define POOL 1024      /* channels above half the threshold kept by one scan (4 KB of indices) */

static int g_outliers = -1; /* -1: not yet read from the environment */
static float T = PI0_I8_OUTLIER_T;

void pi0_fast_int8_outliers(int on) { g_outliers = on ? 1 : 0; }
void pi0_fast_int8_outlier_threshold(float t) { T = t > 0 ? t : PI0_I8_OUTLIER_T; }

int pi0_fast_int8_outliers_on(void) {
    if (g_outliers < 0) {
        const char *e = getenv("PI0_INT8_OUTLIERS");
        g_outliers = !(e && strcmp(e, "0") == 0);
    }
    return g_outliers;
}

static uint32_t abs_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}
static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void pi0_fast_i8_scan_generic(const float *x, int64_t k, float thr, float lanes[16], uint32_t *maxbits,
                              int64_t *count, int32_t *idx, int64_t cap) {
    uint32_t mb = 0;
    int64_t cnt = 0;
    for (int l = 0; l < 16; l++) lanes[l] = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        float a = fabsf(x[i]);
        if (a > thr) {
            if (cnt < cap) idx[cnt] = (int32_t)i;
            cnt++;
        } else {
            float sq = a * a;
            lanes[i & 15] = lanes[i & 15] + sq;
            uint32_t b = abs_bits(x[i]);
            mb = b > mb ? b : mb;
        }
    }
    *maxbits = mb;
    *count = cnt;
}

/* The 16 lane sums in a fixed tree (same for every ISA). */
static float lane_sum(const float l[16]) {
    float s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static void set_step(pi0_fast_i8_row *r, float amax) {
    r->step = amax / 127.0f;
    r->inv = amax > 0.0f ? 127.0f / amax : 0.0f;
}

void pi0_fast_i8_row_prepare(pi0_fast_i8_row *r, const float *x, int64_t k, pi0_fast_i8_scan_fn scan) {
    if (!scan) scan = pi0_fast_i8_scan_generic;
    float lanes[16];
    uint32_t mb;
    int64_t cnt;
    int32_t idx[CAND];
    r->n_out = 0;
    r->scans = 1;
    r->whole = 0;
    scan(x, k, INFINITY, lanes, &mb, &cnt, idx, 0);
    if (mb >= 0x7f800000u) { /* NaN or infinity */
        r->step = NAN;
        r->inv = 0.0f;
        return;
    }
    float amax = bits_float(mb), sumsq = lane_sum(lanes);
    set_step(r, amax);
    if (!pi0_fast_int8_outliers_on() || !(sumsq <= 3.0e38f)) return;
    float thr = T * sqrtf(sumsq / (float)k);
    if (!(amax > thr)) return; /* the common case: no channel stands out */
    /* The iteration reads a pool: one scan at L = thr / 2 keeps the channels above L (indices) and the
     * lane sums and max of the others; while thr >= L, the set above thr, the rest's sum of squares
     * (the lanes' tree, then the pool's channels <= thr in index order) and max come from the pool, no
     * rescan. Thresholds fall, so a rescan (new pool at the new thr / 2) is needed only when thr drops
     * below L (a massive channel inflated the first rms) or when the pool overflows. */
    int32_t pool[POOL];
    int64_t npool = 0, prev = 0;
    float L = INFINITY, sum_l = 0.0f, rest_sq = 0.0f;
    uint32_t max_l = 0;
    for (int it = 0;; it++) {
        if (thr < L) {
            L = thr * 0.75f;
            scan(x, k, L, lanes, &max_l, &npool, pool, POOL);
            r->scans++;
            if (npool > POOL) { /* too many between L and thr: the pool at thr itself */
                L = thr;
                scan(x, k, L, lanes, &max_l, &npool, pool, POOL);
                r->scans++;
                if (npool > POOL) { r->whole = 1; return; } /* > POOL >= CAND above thr */
            }
            sum_l = lane_sum(lanes);
        }
        cnt = 0;
        rest_sq = sum_l;
        mb = max_l;
        for (int64_t q = 0; q < npool; q++) {
            float a = fabsf(x[pool[q]]);
            if (a > thr) {
                if (cnt < CAND) idx[cnt] = pool[q];
                cnt++;
            } else {
                rest_sq = rest_sq + a * a;
                uint32_t b = abs_bits(a);
                mb = b > mb ? b : mb;
            }
        }
        if (cnt > CAND || cnt >= k || it == 8) { r->whole = 1; return; } /* heavy-tailed: whole row */
        if (cnt == prev) break;                                          /* thresholds only fall: same set */
        prev = cnt;
        thr = T * sqrtf(rest_sq / (float)(k - cnt));
        if (!(bits_float(mb) > thr)) break; /* nothing more above the new threshold */
    }
    if (cnt == 0) return;
    float rest_max = bits_float(mb);
    int64_t n = cnt;
    if (n > CAP) { /* keep the CAP largest; the next one bounds the rest */
        for (int64_t a = 0; a < n; a++) /* selection by |x| descending, ties by index (small n) */
            for (int64_t b = a + 1; b < n; b++) {
                float fa = fabsf(x[idx[a]]), fb = fabsf(x[idx[b]]);
                if (fb > fa || (fb == fa && idx[b] < idx[a])) { int32_t t = idx[a]; idx[a] = idx[b]; idx[b] = t; }
            }
        float next = fabsf(x[idx[CAP]]);
        rest_max = next > rest_max ? next : rest_max;
        n = CAP;
        for (int64_t a = 1; a < n; a++) /* back to ascending index order */
            for (int64_t b = a; b > 0 && idx[b] < idx[b - 1]; b--) { int32_t t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t; }
    }
    r->n_out = (int)n;
    /* at most CAP indices of bookkeeping, copied by a loop: a memcpy call here is what pi0 audit and
     * test_int8 count as bytes copied inside the denoising loop, which must stay 0 */
    for (int64_t i = 0; i < n; i++) r->out[i] = idx[i];
    set_step(r, rest_max);
}

/* x * inv to [-127, 127] the way the SIMD quantizers do it: max(v, -127) then min(v, 127), a NaN
 * giving -127 as vmaxps does with a NaN first operand; then nearest-even. */
static inline uint8_t quant_u8(float x, float inv) {
    float v = x * inv;
    v = v > -127.0f ? v : -127.0f;
    v = v < 127.0f ? v : 127.0f;
    return (uint8_t)((int)nearbyintf(v) + 128);
}

void pi0_fast_i8_quantize_generic(void *dst, int64_t lds, const float *a, int64_t lda, int64_t mb, int64_t k0,
                                  int64_t kc, int64_t k, const pi0_fast_i8_row *rq, const char *pf, int64_t pf_lines) {
    (void)pf; (void)pf_lines;
    for (int64_t r = 0; r < mb; r++) {
        uint8_t *d = (uint8_t *)dst + r * lds;
        const float *x = a + r * lda;
        int64_t valid = k - k0 < kc ? k - k0 : kc;
        for (int64_t c = 0; c < valid; c++) d[c] = quant_u8(x[k0 + c], rq[r].inv);
        for (int64_t c = valid < 0 ? 0 : valid; c < kc; c++) d[c] = 128;
        for (int o = 0; o < rq[r].n_out; o++)
            if (rq[r].out[o] >= k0 && rq[r].out[o] < k0 + kc) d[rq[r].out[o] - k0] = 128;
    }
}

/* The portable side-product kernel: per outlier its 64 weights sit at stride 4 in the panel's
 * 256-byte group (fast.h); the SIMD ones (quant_int8_<isa>.c) pick the same bytes out of whole
 * dwords and do the same multiply, then add, per column. */
void pi0_fast_i8_side_generic(float acc[64], const int8_t *panel, const int32_t *idx, const float *xv, int n) {
    for (int j = 0; j < PI0_FAST_NR; j++) acc[j] = 0.0f;
    for (int o = 0; o < n; o++) {
        const int8_t *w = panel + (idx[o] >> 2) * (4 * PI0_FAST_NR) + (idx[o] & 3);
        const float xo = xv[o];
        for (int j = 0; j < PI0_FAST_NR; j++) acc[j] = acc[j] + xo * (float)w[4 * j];
    }
}

static int g_exact = -1; /* -1: not yet read from the environment */
void pi0_fast_int8_exact(int on) { g_exact = on ? 1 : 0; }
static int exact_on(void) {
    if (g_exact < 0) {
        const char *e = getenv("PI0_INT8_EXACT");
        g_exact = !(e && strcmp(e, "0") == 0);
    }
    return g_exact;
}

static void stats_rows(const pi0_fast_packed *b, int64_t mb, const pi0_fast_i8_row *rq);

/* Per row: the outlier channels split into those with an exact column (merge of two ascending lists)
 * and the rest; the rest through the kernel, times the column scales; the exact ones in fp32. */
void pi0_fast_i8_side(float *c, int64_t ldc, const float *a, int64_t lda, int64_t mb, const pi0_fast_i8_row *rq,
                      const pi0_fast_packed *b, int64_t p, pi0_fast_i8_side_fn kern) {
    const int64_t NR = PI0_FAST_NR, ncols = pi0_fast_panel_cols(b, p);
    const int8_t *panel = (const int8_t *)b->data + p * b->kp * NR;
    const float *cs = b->scale + p * NR;
    const int ne = exact_on() ? b->n_exact : 0;
    if (!kern) kern = pi0_fast_i8_side_generic;
    if (p == 0) stats_rows(b, mb, rq);
    for (int64_t r = 0; r < mb; r++) {
        if (!rq[r].n_out) continue;
        const float *x = a + r * lda;
        int32_t qi[PI0_I8_OUTLIER_CAP], ei[PI0_I8_OUTLIER_CAP];
        float qx[PI0_I8_OUTLIER_CAP], ex[PI0_I8_OUTLIER_CAP];
        int nq = 0, nx = 0;
        for (int o = 0, e = 0; o < rq[r].n_out; o++) {
            int32_t i = rq[r].out[o];
            while (e < ne && b->exact_idx[e] < i) e++;
            if (e < ne && b->exact_idx[e] == i) { ei[nx] = e; ex[nx++] = x[i]; }
            else { qi[nq] = i; qx[nq++] = x[i]; }
        }
        float acc[PI0_FAST_NR] __attribute__((aligned(64)));
        float *y = c + r * ldc;
        if (nq) {
            kern(acc, panel, qi, qx, nq);
            for (int64_t j = 0; j < ncols; j++) y[j] = y[j] + acc[j] * cs[j];
        }
        if (nx) {
            const int64_t ld = b->n_panels * NR;
            for (int64_t j = 0; j < NR; j++) acc[j] = 0.0f;
            for (int o = 0; o < nx; o++) {
                const float *w = b->exact + ei[o] * ld + p * NR, xo = ex[o];
                for (int64_t j = 0; j < NR; j++) acc[j] = acc[j] + xo * w[j];
            }
            for (int64_t j = 0; j < ncols; j++) y[j] = y[j] + acc[j];
        }
    }
}

/* ---- PI0_INT8_STATS=1: how each weight's input rows were quantized (measurement only) ---------
 * Counted in the side-product call of panel 0, so each row of a GEMM once whatever the thread split
 * (a panel split gives panel 0 to one thread; a row split gives each thread its own rows); weights
 * of the same role in every layer are summed ("layers.N." -> "layers.*."). Printed to stderr at
 * exit. Off: one branch per call. */
#define STATS_MAX 64
typedef struct {
    char name[96];
    int64_t k, rows, with_out, outliers, whole, scans;
} stat_site;
static struct {
    int on; /* -1 unread, 0, 1 */
    pthread_mutex_t mu;
    int n;
    stat_site s[STATS_MAX];
} g_stats = {.on = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void stats_print(void) {
    fprintf(stderr, "PI0_INT8_STATS: per weight role (all layers), the rows of its GEMM inputs\n");
    fprintf(stderr, "%-56s %6s %9s %8s %9s %8s %7s %7s\n", "weight", "k", "rows", "%w/out", "out/row", "out/orow",
            "%whole", "scans");
    for (int i = 0; i < g_stats.n; i++) {
        const stat_site *t = &g_stats.s[i];
        double r = t->rows ? (double)t->rows : 1;
        fprintf(stderr, "%-56s %6lld %9lld %8.2f %9.3f %8.2f %7.2f %7.3f\n", t->name, (long long)t->k,
                (long long)t->rows, 100.0 * (double)t->with_out / r, (double)t->outliers / r,
                t->with_out ? (double)t->outliers / (double)t->with_out : 0.0, 100.0 * (double)t->whole / r,
                (double)t->scans / r);
    }
}

/* "...language_model.layers.12.mlp.down_proj.weight" -> "language_model.layers.*.mlp.down_proj" */
static void site_name(char *d, size_t n, const char *w) {
    const char *s = w ? w : "?";
    size_t len = strlen(s);
    if (len > 7 && !strcmp(s + len - 7, ".weight")) len -= 7;
    if (len > n - 8) { s += len - (n - 8); len = n - 8; }
    size_t o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        d[o++] = s[i];
        if (i >= 6 && !strncmp(s + i - 6, "layers.", 7) && s[i + 1] >= '0' && s[i + 1] <= '9') {
            d[o++] = '*';
            while (i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9') i++;
        }
    }
    d[o] = 0;
}

static void stats_rows(const pi0_fast_packed *b, int64_t mb, const pi0_fast_i8_row *rq) {
    if (g_stats.on < 0) {
        const char *e = getenv("PI0_INT8_STATS");
        g_stats.on = e && *e && strcmp(e, "0") != 0;
        if (g_stats.on) atexit(stats_print);
    }
    if (!g_stats.on) return;
    char name[96];
    site_name(name, sizeof name, b->name);
    pthread_mutex_lock(&g_stats.mu);
    int i = 0;
    while (i < g_stats.n && (strcmp(g_stats.s[i].name, name) || g_stats.s[i].k != b->k)) i++;
    if (i == g_stats.n && i < STATS_MAX) {
        memset(&g_stats.s[i], 0, sizeof g_stats.s[i]);
        memcpy(g_stats.s[i].name, name, sizeof name);
        g_stats.s[i].k = b->k;
        g_stats.n++;
    }
    if (i < STATS_MAX) {
        stat_site *t = &g_stats.s[i];
        for (int64_t r = 0; r < mb; r++) {
            t->rows++;
            t->with_out += rq[r].n_out > 0;
            t->outliers += rq[r].n_out;
            t->whole += rq[r].whole;
            t->scans += rq[r].scans;
        }
    }
    pthread_mutex_unlock(&g_stats.mu);
}
