/* quant_outliers.c - the measurement behind the int8 kind's outlier threshold T and cap
 * (PI0_I8_OUTLIER_T / _CAP, src/ops/fast/quant_int8.c): the output error of one int8 matmul row
 * (weights int8 per output channel, the row quantized by pi0_fast_i8_row_prepare, outlier channels
 * exact) against the double-precision product, for several kinds of rows and thresholds.
 *
 * Rows (k = 2048, 64 rows each, weights N(0, 1) [256, 2048]):
 *   gaussian      N(0, 1): what a well-behaved activation looks like (max/rms ~ 4);
 *   student-t4    heavy tails (t with 4 degrees of freedom; max/rms ~ 8-15);
 *   4ch 20-100x   gaussian + 4 fixed channels at +-20, 40, 70, 100 x rms (x U(0.8, 1.2)): the
 *                 Gemma pattern, the same channels in every token;
 *   1ch 500x+3    one massive channel (500 x) beside three at 20-40 x;
 *   2ch 8-12x     two moderate fixed channels (borderline for T near 10).
 * Prints the output NMSE (sum (y_q - y)^2 / sum y^2) per threshold and the outlier channels per row
 * (the side product's cost). Run: bench/build.sh, then build/quant_outliers.
 *
 * build/quant_outliers --speed [reps]: what the handling costs on the π0 down projections, whose
 * input rows are GeGLU products gelu(g) * u (g, u ~ N(0, 1): heavy-tailed, as in the random
 * checkpoints, where PI0_INT8_STATS counts 15.6 outliers per row at k = 4096 and 99 % of the rows
 * quantized whole after 3 scans at k = 16384): per shape, the thread CPU time (best of reps) of one
 * int8 GEMM call on this CPU's ISA row with its side-product kernel, with the portable kernel, with
 * the handling off; the row analysis alone and the side product alone (ISA and portable kernel).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/fast/fast.h"
#include "ops/fast/isa.h"
#include "ops/ops.h"

#define K 2048
#define N 256
#define M 64

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double urand(void) { /* (0, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

static void make_rows(int kind, float *x) {
    static const int ch[4] = {17, 300, 1001, 1900};
    for (int r = 0; r < M; r++) {
        float *row = x + r * K;
        for (int i = 0; i < K; i++) {
            double v = gauss();
            if (kind == 1) { /* t4 = z / sqrt(chi2_4 / 4), scaled to unit variance (var t4 = 2) */
                double c = 0;
                for (int d = 0; d < 4; d++) { double g = gauss(); c += g * g; }
                v = v / sqrt(c / 4.0) / sqrt(2.0);
            }
            row[i] = (float)v;
        }
        double jit = 0.8 + 0.4 * urand();
        if (kind == 2) {
            static const double mag[4] = {20, 40, 70, 100};
            for (int c = 0; c < 4; c++) row[ch[c]] = (float)((c % 2 ? -1 : 1) * mag[c] * jit);
        } else if (kind == 3) {
            static const double mag[4] = {500, 20, 30, 40};
            for (int c = 0; c < 4; c++) row[ch[c]] = (float)((c % 2 ? -1 : 1) * mag[c] * jit);
        } else if (kind == 4) {
            row[ch[0]] = (float)(8.0 * jit);
            row[ch[2]] = (float)(-12.0 * jit);
        }
    }
}

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int speed(int reps) {
    static const struct { const char *what; int64_t m, k, n; } shapes[] = {
        {"expert down (denoise)", 50, 4096, 1024}, {"prefix down", 520, 16384, 2048}};
    const pi0_fast_isa *isa = pi0_fast_isa_get();
    const pi0_fast_gemm_kernels *g = isa->gemm[PI0_WEIGHTS_INT8];
    if (!g) { printf("ISA row %s has no int8 kernels\n", isa->name); return 1; }
    pi0_fast_gemm_kernels gp = *g; /* the same row with the portable side-product kernel */
    gp.side = NULL;
    pi0_fast_isa ip = *isa;
    ip.gemm[PI0_WEIGHTS_INT8] = &gp;
    printf("ISA row %s, 1 thread, thread CPU ms per call, best of %d\n", isa->name, reps);
    printf("| shape | m | k | n | out/row | %%whole | scans/row | GEMM | GEMM portable side | GEMM handling off | "
           "row analysis | side | side portable |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t m = shapes[si].m, k = shapes[si].k, n = shapes[si].n;
        float *w = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(m * k));
        float *y = malloc(sizeof(float) * (size_t)(m * n));
        for (int64_t i = 0; i < n * k; i++) w[i] = (float)gauss();
        for (int64_t i = 0; i < m * k; i++) {
            double a = gauss(), u = gauss();
            x[i] = (float)(0.5 * a * (1.0 + tanh(0.7978845608 * (a + 0.044715 * a * a * a))) * u);
        }
        pi0_fast_packed *b;
        if (pi0_fast_pack_weight(&b, w, PI0_DT_F32, n, k, PI0_WEIGHTS_INT8, "bench") != PI0_OK) return 1;
        pi0_fast_gemm_job j = {.c = y, .ldc = n, .a = x, .lda = k, .b = b, .m = m, .p0 = 0, .p1 = b->n_panels};
        pi0_fast_i8_row *rq = malloc(sizeof *rq * (size_t)m);
        double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30}, outs = 0, whole = 0, scans = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = cpu_ms();
            pi0_fast_gemm_isa(isa, &j);
            double t1 = cpu_ms();
            pi0_fast_gemm_isa(&ip, &j);
            double t2 = cpu_ms();
            pi0_fast_int8_outliers(0);
            pi0_fast_gemm_isa(isa, &j);
            pi0_fast_int8_outliers(1);
            double t3 = cpu_ms();
            for (int64_t i = 0; i < m; i++) pi0_fast_i8_row_prepare(&rq[i], x + i * k, k, g->scan);
            double t4 = cpu_ms();
            for (int64_t p = 0; p < b->n_panels; p++) pi0_fast_i8_side(y + p * 64, n, x, k, m, rq, b, p, g->side);
            double t5 = cpu_ms();
            for (int64_t p = 0; p < b->n_panels; p++) pi0_fast_i8_side(y + p * 64, n, x, k, m, rq, b, p, NULL);
            double t6 = cpu_ms(), t[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5};
            for (int q = 0; q < 6; q++) best[q] = t[q] < best[q] ? t[q] : best[q];
        }
        for (int64_t i = 0; i < m; i++) { outs += rq[i].n_out; whole += rq[i].whole; scans += rq[i].scans; }
        printf("| %s | %lld | %lld | %lld | %.2f | %.1f | %.2f |", shapes[si].what, (long long)m, (long long)k,
               (long long)n, outs / (double)m, 100 * whole / (double)m, scans / (double)m);
        for (int q = 0; q < 6; q++) printf(" %.3f |", best[q]);
        printf("\n");
        pi0_fast_packed_free(b);
        free(w); free(x); free(y); free(rq);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--speed")) return speed(argc > 2 ? atoi(argv[2]) : 5);
    static const char *names[] = {"gaussian", "student-t4", "4ch 20-100x", "1ch 500x+3", "2ch 8-12x"};
    static const float ts[] = {4, 5, 6, 8, 10, 12, 16, 24, 0};
    const int nt = (int)(sizeof ts / sizeof ts[0]);
    float *w = malloc(sizeof(float) * N * K), *wq = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * M * K);
    for (int j = 0; j < N; j++) { /* per-output-channel int8, as pack.c */
        float mx = 0;
        for (int i = 0; i < K; i++) { w[j * K + i] = (float)gauss(); mx = fmaxf(mx, fabsf(w[j * K + i])); }
        for (int i = 0; i < K; i++) wq[j * K + i] = nearbyintf(w[j * K + i] * (127.0f / mx)) * (mx / 127.0f);
    }
    printf("output NMSE of an int8 row x int8 weights vs double, k=%d, %d rows x %d columns; in brackets: outlier "
           "channels per row\n| rows | max/rms |", K, M, N);
    for (int t = 0; t < nt; t++) printf(ts[t] > 0 ? " T=%g |" : " off |", ts[t]);
    printf("\n|---|---|");
    for (int t = 0; t < nt; t++) printf("---|");
    printf("\n");
    for (int kind = 0; kind < 5; kind++) {
        make_rows(kind, x);
        double ratio = 0;
        for (int r = 0; r < M; r++) {
            double s = 0, mx = 0;
            for (int i = 0; i < K; i++) { s += (double)x[r * K + i] * x[r * K + i]; mx = fmax(mx, fabs(x[r * K + i])); }
            ratio += mx / sqrt(s / K) / M;
        }
        printf("| %s | %.1f |", names[kind], ratio);
        for (int t = 0; t < nt; t++) {
            pi0_fast_int8_outliers(ts[t] > 0);
            pi0_fast_int8_outlier_threshold(ts[t]);
            double se = 0, sr = 0, chans = 0;
            float xq[K];
            for (int r = 0; r < M; r++) {
                const float *row = x + r * K;
                pi0_fast_i8_row q;
                pi0_fast_i8_row_prepare(&q, row, K, NULL);
                uint8_t u[K];
                pi0_fast_i8_quantize_generic(u, K, row, K, 1, 0, K, K, &q, NULL, 0);
                for (int i = 0; i < K; i++) xq[i] = (float)((int)u[i] - 128) * q.step;
                for (int o = 0; o < q.n_out; o++) xq[q.out[o]] = row[q.out[o]];
                chans += q.n_out;
                for (int j = 0; j < N; j++) {
                    double y = 0, yq = 0;
                    for (int i = 0; i < K; i++) { y += (double)row[i] * w[j * K + i]; yq += (double)xq[i] * wq[j * K + i]; }
                    se += (yq - y) * (yq - y);
                    sr += y * y;
                }
            }
            printf(" %.2e (%.1f) |", se / sr, chans / M);
        }
        printf("\n");
    }
    pi0_fast_int8_outliers(1);
    pi0_fast_int8_outlier_threshold(0);
    free(w); free(wq); free(x);
    return 0;
}
