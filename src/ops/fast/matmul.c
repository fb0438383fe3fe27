/* matmul.c - fast matmul op: y[m, n] (=|+=) x[m, k] · Wᵀ + bias on the weight packed at load, and
 * the GEMM driver every ISA shares: its microkernels come from the ISA table (isa.h).
 *
 * Work split (deterministic, each output element written by exactly one thread): either the
 * 64-column panels or the rows are divided among the nth threads (split_rows says which). Either
 * way every element is computed by the same kernel in the same k order (the k blocking depends on
 * k only), so the result does not depend on nth or on the split.
 *
 * Driver, converted A (bf16 kind): activation rows are converted block by block (bf16 rounding,
 * nearest even, NaN stays NaN; the ISA's convert) into a per-thread scratch A block [mb rows, kc
 * inputs]. Loop order: m block (<= mc rows) > k block > panels of the job > column groups > row
 * tiles; the 64-column weight slice of a k block (kc*128 bytes <= 256 KB) stays in L2 across all
 * row tiles, so weights stream from DRAM once per call. k is cut into near-equal blocks of <= kc
 * = 2048 (pi0_fast_kblock: k = 1152 one block, 4304 3 x 1436, 16384 8 x 2048); measured on Zen 5
 * against kc = 1024 (tail blocks, 2x the C reloads and A passes): SigLIP fc1 +10 %, prefix
 * gate/up +10 %, 3072/4096 no better. The bias is added in the last k block.
 * DRAM latency is hidden by software prefetch: while a kernel works on one weight slice it asks for
 * the next one (next panel, or the job's first panel of the next k block), one line per k group
 * over the first row tiles; the conversion of the A block asks for the first slice of its k block.
 * That lifts the m=50 action-expert GEMMs, which stream 600 MB of weights per step, by 10-15 %.
 * Driver, A in place (f32 kind): fp32 rows read directly, k blocks of exactly kc, the bias added in
 * the first block, no prefetch.
 * Driver, int8 kind (gemm_int8): the converted driver with a quantizing conversion and the
 * dequantization in the kernels' output stage (see there); k blocks of <= kc = 4096 inputs (same
 * 256 KB weight slice).
 * Without kernels for the weight format, or the CPU bits they need (g->needs), or without memory
 * for the A block, the portable driver (matmul_generic.c) runs.
 */
#include "ops/fast/fast.h"
#include "ops/fast/isa.h"
#include "rt/cpu.h"

#define NR PI0_FAST_NR

/* The packed layouts (fast.h): bytes per weight element, inputs interleaved per column. */
typedef struct { size_t w_elem; int kgroup; } format_info;
static const format_info g_formats[PI0_FAST_FORMATS] = {
    [PI0_WEIGHTS_BF16] = {2, 2},
    [PI0_WEIGHTS_F32] = {4, 1},
    [PI0_WEIGHTS_INT8] = {1, 4},
};

/* One k block of one panel: its column groups x near-equal row tiles (50 rows in 9 tiles ->
 * 6,6,6,6,6,5,5,5,5). nx/nx_lines: the slice to prefetch, spread over the first kernel calls.
 * e (int8 kind, else NULL): the panel's dequantization (step of row 0, scale and wsum of column 0). */
static void panel_block(const pi0_fast_gemm_kernels *g, const format_info *f, const char *a, int64_t lda,
                        size_t a_elem, int64_t m, const char *bp, int64_t kk, float *c, int64_t ldc, int loadc,
                        const float *bias, int64_t ncols, const char *nx, int64_t nx_lines,
                        const pi0_fast_i8_epilogue *e) {
    const int64_t nb = (m + g->mr - 1) / g->mr;
    const size_t gstride = (size_t)g->cols * (size_t)f->kgroup * f->w_elem;
    for (int64_t gi = 0; gi * g->cols < ncols; gi++) {
        const float *bs = bias ? bias + gi * g->cols : NULL;
        for (int64_t t = 0; t < nb; t++) {
            int64_t r0, r1;
            pi0_split(m, (int)t, (int)nb, &r0, &r1);
            int64_t pf_n = nx_lines < kk ? nx_lines : kk;
            if (e) {
                pi0_fast_i8_epilogue et = {e->step + r0, e->scale + gi * g->cols, e->wsum ? e->wsum + gi * g->cols : NULL,
                                           bs, loadc};
                g->kern_i8[r1 - r0](a + (size_t)(r0 * lda) * a_elem, lda, bp + (size_t)gi * gstride, kk,
                                    c + r0 * ldc + gi * g->cols, ldc, &et, ncols - gi * g->cols, nx, pf_n);
            } else
                g->kern[r1 - r0](a + (size_t)(r0 * lda) * a_elem, lda, bp + (size_t)gi * gstride, kk,
                                 c + r0 * ldc + gi * g->cols, ldc, loadc, bs, ncols - gi * g->cols, nx, pf_n);
            if (nx) { nx += 64 * pf_n; nx_lines -= pf_n; }
        }
    }
}

static void gemm_converted(const pi0_fast_gemm_kernels *g, const format_info *f, const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, kp = b->kp, n = b->n, kcb = pi0_fast_kblock(kp, g->kc);
    const size_t ae = g->a_elem, unit = NR * f->w_elem, pstride = (size_t)kp * unit; /* bytes per input, panel */
    /* A block row stride: kc + 64 bytes, so the rows of a tile do not all sit 4 KB apart (same L1 set) */
    const int64_t lds = kcb + (int64_t)(64 / ae), mc = j->m < g->mc ? j->m : g->mc;
    char *abuf = pi0_fast_scratch(0, (size_t)mc * (size_t)lds * ae);
    if (!abuf) { pi0_fast_gemm_generic(j); return; } /* out of memory: slow but correct */
    const char *B = b->data;
    int64_t n_mblk = (j->m + g->mc - 1) / g->mc;
    for (int64_t ib = 0; ib < n_mblk; ib++) {
        int64_t i0, i1;
        pi0_split(j->m, (int)ib, (int)n_mblk, &i0, &i1); /* near-equal m blocks */
        int64_t mb = i1 - i0;
        for (int64_t k0 = 0; k0 < kp; k0 += kcb) {
            int64_t kc = kp - k0 < kcb ? kp - k0 : kcb, kk = kc / f->kgroup, lines = kc * (int64_t)unit / 64;
            int last = k0 + kc >= kp;
            /* the first slice of this k block: at k0 = 0 nobody has asked for it yet; later blocks had it
             * prefetched by the previous block's last panel, so ask for the second one */
            int64_t pf_p = k0 == 0 ? j->p0 : j->p0 + 1;
            const char *pf = pf_p < j->p1 ? B + (size_t)pf_p * pstride + (size_t)k0 * unit : NULL;
            g->convert(abuf, lds, j->a + i0 * j->lda, j->lda, mb, k0, kc, k, pf, pf ? lines : 0);
            int loadc = k0 > 0 || j->accumulate;
            for (int64_t p = j->p0; p < j->p1; p++) {
                const char *bp = B + (size_t)p * pstride + (size_t)k0 * unit;
                int64_t ncols = n - p * NR < NR ? n - p * NR : NR;
                const float *bias = (last && j->bias) ? j->bias + p * NR : NULL;
                /* the slice read after this one: next panel, or the first panel of the next k block */
                const char *nx = NULL;
                int64_t nx_lines = 0;
                if (p + 1 < j->p1) { nx = bp + pstride; nx_lines = lines; }
                else if (!last) {
                    int64_t kc2 = kp - (k0 + kc) < kcb ? kp - (k0 + kc) : kcb;
                    nx = B + (size_t)j->p0 * pstride + (size_t)(k0 + kc) * unit;
                    nx_lines = kc2 * (int64_t)unit / 64;
                }
                panel_block(g, f, abuf, lds, ae, mb, bp, kk, j->c + i0 * j->ldc + p * NR, j->ldc, loadc, bias, ncols,
                            nx, nx_lines, NULL);
            }
        }
    }
}

static void gemm_in_place(const pi0_fast_gemm_kernels *g, const format_info *f, const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, n = b->n;
    const size_t unit = NR * f->w_elem, pstride = (size_t)k * unit;
    const char *B = b->data;
    for (int64_t k0 = 0; k0 < k; k0 += g->kc) {
        int64_t kc = k - k0 < g->kc ? k - k0 : g->kc;
        int loadc = k0 > 0 || j->accumulate;
        for (int64_t p = j->p0; p < j->p1; p++) {
            const char *bp = B + (size_t)p * pstride + (size_t)k0 * unit;
            int64_t ncols = n - p * NR < NR ? n - p * NR : NR;
            const float *bias = (k0 == 0 && j->bias) ? j->bias + p * NR : NULL;
            panel_block(g, f, (const char *)(j->a + k0), j->lda, sizeof(float), j->m, bp, kc / f->kgroup,
                        j->c + p * NR, j->ldc, loadc, bias, ncols, NULL, 0, NULL);
        }
    }
}

/* int8 kind: the converted-A driver with a quantizing conversion. Per m block the rows are first
 * analysed over their whole k (pi0_fast_i8_row: step, outlier channels), so every k block uses the
 * same quantization; then per k block the rows are quantized to u8 and the kernels sum u8 x s8 in
 * int32 and dequantize in their output stage (wsum and bias in the last k block). After a panel's
 * last k block its outlier side product is added while its C tile is still in cache. */
static void gemm_int8(const pi0_fast_gemm_kernels *g, const format_info *f, const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int64_t k = b->k, kp = b->kp, n = b->n, kcb = pi0_fast_kblock4(kp, g->kc);
    const size_t unit = NR * f->w_elem, pstride = (size_t)kp * unit;
    const int64_t lds = kcb + 64, mc = j->m < g->mc ? j->m : g->mc;
    char *abuf = pi0_fast_scratch(0, (size_t)mc * (size_t)lds);
    pi0_fast_i8_row *rq = pi0_fast_scratch(1, (size_t)mc * sizeof *rq);
    float *step = pi0_fast_scratch(2, (size_t)mc * sizeof *step);
    if (!abuf || !rq || !step) { pi0_fast_gemm_generic(j); return; }
    const char *B = b->data;
    int64_t n_mblk = (j->m + g->mc - 1) / g->mc;
    for (int64_t ib = 0; ib < n_mblk; ib++) {
        int64_t i0, i1;
        pi0_split(j->m, (int)ib, (int)n_mblk, &i0, &i1);
        int64_t mb = i1 - i0, n_out = 0;
        const float *a = j->a + i0 * j->lda;
        for (int64_t r = 0; r < mb; r++) {
            pi0_fast_i8_row_prepare(&rq[r], a + r * j->lda, k, g->scan);
            step[r] = rq[r].step;
            n_out += rq[r].n_out;
        }
        for (int64_t k0 = 0; k0 < kp; k0 += kcb) {
            int64_t kc = kp - k0 < kcb ? kp - k0 : kcb, kk = kc / f->kgroup, lines = kc * (int64_t)unit / 64;
            int last = k0 + kc >= kp;
            int64_t pf_p = k0 == 0 ? j->p0 : j->p0 + 1;
            const char *pf = pf_p < j->p1 ? B + (size_t)pf_p * pstride + (size_t)k0 * unit : NULL;
            g->quantize(abuf, lds, a, j->lda, mb, k0, kc, k, rq, pf, pf ? lines : 0);
            int loadc = k0 > 0 || j->accumulate;
            for (int64_t p = j->p0; p < j->p1; p++) {
                const char *bp = B + (size_t)p * pstride + (size_t)k0 * unit;
                int64_t ncols = n - p * NR < NR ? n - p * NR : NR;
                const float *bias = (last && j->bias) ? j->bias + p * NR : NULL;
                const char *nx = NULL;
                int64_t nx_lines = 0;
                if (p + 1 < j->p1) { nx = bp + pstride; nx_lines = lines; }
                else if (!last) {
                    int64_t kc2 = kp - (k0 + kc) < kcb ? kp - (k0 + kc) : kcb;
                    nx = B + (size_t)j->p0 * pstride + (size_t)(k0 + kc) * unit;
                    nx_lines = kc2 * (int64_t)unit / 64;
                }
                pi0_fast_i8_epilogue e = {step, b->scale + p * NR, last ? b->wsum + p * NR : NULL, NULL, 0};
                float *c = j->c + i0 * j->ldc + p * NR;
                panel_block(g, f, abuf, lds, 1, mb, bp, kk, c, j->ldc, loadc, bias, ncols, nx, nx_lines, &e);
                if (last && (n_out || p == 0)) pi0_fast_i8_side(c, j->ldc, a, j->lda, mb, rq, b, p, g->side);
            }
        }
    }
}

void pi0_fast_gemm_isa(const pi0_fast_isa *isa, const pi0_fast_gemm_job *j) {
    if (j->m <= 0 || j->p0 >= j->p1) return;
    int kind = j->b->kind;
    const pi0_fast_gemm_kernels *g = kind >= 0 && kind < PI0_FAST_FORMATS ? isa->gemm[kind] : NULL;
    if (g && (pi0_cpu_caps_get()->flags & g->needs) != g->needs) g = NULL;
    if (!g) pi0_fast_gemm_generic(j);
    else if (kind == PI0_WEIGHTS_INT8) gemm_int8(g, &g_formats[kind], j);
    else if (g->a_elem) gemm_converted(g, &g_formats[kind], j);
    else gemm_in_place(g, &g_formats[kind], j);
}

void pi0_fast_gemm(const pi0_fast_gemm_job *j) { pi0_fast_gemm_isa(pi0_fast_isa_get(), j); }

/* Rows or panels? With a panel split every thread converts the whole activation block to bf16;
 * with a row split each converts only its rows, but every thread streams all the weights. Measured
 * on the π0 shapes (bench/gemm_bench.c, 2 threads): rows win for few panels (k/v projections,
 * n = 256: 4 panels, 3-10 %) and for many rows with n <= 2048 (SigLIP qkvo m=256, prefix q/o and
 * down m=304: 3-5 %); panels win when the weights come from DRAM and rows are few (expert m=50,
 * where halving the rows per weight slice costs more than the conversion) or n is large (SigLIP
 * fc1 n=4304). Fewer panels than threads always split rows (e.g. the 32-wide action projection). */
static int split_rows(int64_t m, int64_t n_panels, int nth) {
    if (n_panels < nth) return 1;
    if (n_panels < 4 * nth) return m >= 8 * nth;
    return m / nth >= 96 && n_panels <= 32;
}

void pi0_fast_matmul(const pi0_matmul_args *a, int ith, int nth) {
    const pi0_fast_packed *b = a->w->packed;
    pi0_fast_gemm_job j = {.c = a->y, .ldc = a->ldy, .a = a->x, .lda = a->ldx, .b = b, .bias = a->bias,
                           .m = a->m, .accumulate = a->accumulate, .p0 = 0, .p1 = b->n_panels};
    if (!split_rows(a->m, b->n_panels, nth)) {
        pi0_split(b->n_panels, ith, nth, &j.p0, &j.p1);
    } else {
        int64_t lo, hi;
        pi0_split(a->m, ith, nth, &lo, &hi);
        j.a += lo * a->ldx;
        j.c += lo * a->ldy;
        j.m = hi - lo;
    }
    if (j.m > 0 && j.p0 < j.p1) pi0_fast_gemm(&j);
}
