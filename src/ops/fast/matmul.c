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
 * Driver, A in place (f32 kind): fp32 rows read directly, k blocks of exactly kc, no prefetch.
 * Driver, int8 kind: the converted driver with a quantizing conversion and the dequantization in
 * the kernels' output stage (see gemm_blocked); k blocks of <= kc = 4096 inputs (same 256 KB
 * weight slice).
 * All three are one loop (gemm_blocked); the bias is added in the last k block.
 * GeGLU pair (a gate|up packed as one matrix, fast.h): the same loop visits each panel's k blocks
 * in turn (panel-major), so after the up panel's last k block both C tiles of the pair are final;
 * they live in a per-thread [rows][128] scratch, and gelu_tanh(gate) * up is written to the output
 * right then, while they are in cache. The [m, 2n] gate and up results never reach memory, and the
 * MLP's gate, up and elementwise ops are one pool wake-up instead of three.
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

/* Where step s of a job (one k block of one panel) is: panels p0.. of the job, nkb k blocks. k-major
 * (the usual order: every panel of a k block, then the next k block, so one A block serves them all)
 * or panel-major (GeGLU pairs: every k block of a panel, so the pair's C tiles are final as soon as
 * its up panel is done). */
static void step_at(int panel_major, int64_t np, int64_t nkb, int64_t s, int64_t *p, int64_t *kb) {
    if (panel_major) { *p = s / nkb; *kb = s % nkb; }
    else { *kb = s / np; *p = s % np; }
}

/* The driver of every ISA's kernels (see the top of this file): m blocks > steps (k block x panel,
 * step_at) > panel_block. The varying parts: the A block is converted (bf16 kind), quantized (int8:
 * rows analysed first, dequantizing kernels, outlier side product after a panel's last k block) or
 * read in place (f32 kind: k blocks of exactly kc, no prefetch); a GeGLU pair's two C tiles go to a
 * per-thread scratch [mb][128] and, after the up panel's last k block, gelu_tanh(gate) * up is
 * written to C while they are in cache. With several k blocks a pair keeps every k block of the A
 * block (panel-major order), in fewer rows per m block so the A scratch stays at its usual size. */
static void gemm_blocked(const pi0_fast_isa *isa, const pi0_fast_gemm_kernels *g, const format_info *f,
                         const pi0_fast_gemm_job *j) {
    const pi0_fast_packed *b = j->b;
    const int i8 = b->kind == PI0_WEIGHTS_INT8, conv = g->a_elem != 0, pair = b->pair;
    const int64_t k = b->k, kp = b->kp, np = j->p1 - j->p0;
    const int64_t kcb = !conv ? g->kc : i8 ? pi0_fast_kblock4(kp, g->kc) : pi0_fast_kblock(kp, g->kc);
    const int64_t nkb = (kp + kcb - 1) / kcb, nslot = pair && conv ? nkb : 1;
    const size_t ae = conv ? g->a_elem : sizeof(float), unit = NR * f->w_elem, pstride = (size_t)kp * unit;
    /* A block row stride: kc + 64 bytes, so the rows of a tile do not all sit 4 KB apart (same L1 set) */
    const int64_t lds = kcb + (int64_t)(64 / ae);
    int64_t mc = conv ? g->mc / nslot : j->m;
    mc = mc < g->mr ? g->mr : mc;
    mc = mc > j->m ? j->m : mc;
    const size_t slot = (size_t)mc * (size_t)lds * ae; /* bytes of one k block of the A block */
    char *abuf = conv ? pi0_fast_scratch(0, slot * (size_t)nslot) : NULL;
    pi0_fast_i8_row *rq = i8 ? pi0_fast_scratch(1, (size_t)mc * sizeof *rq) : NULL;
    float *step = i8 ? pi0_fast_scratch(2, (size_t)mc * sizeof *step) : NULL;
    float *cbuf = pair ? pi0_fast_scratch(3, (size_t)mc * 2 * NR * sizeof *cbuf) : NULL;
    if ((conv && !abuf) || (i8 && (!rq || !step)) || (pair && !cbuf)) { /* out of memory: slow but correct */
        pi0_fast_gemm_generic(j);
        return;
    }
    const char *B = b->data;
    const int64_t n_mblk = (j->m + mc - 1) / mc, nsteps = np * nkb;
    for (int64_t ib = 0; ib < n_mblk; ib++) {
        int64_t i0, i1, n_out = 0;
        pi0_split(j->m, (int)ib, (int)n_mblk, &i0, &i1); /* near-equal m blocks */
        const int64_t mb = i1 - i0;
        const float *a = j->a + i0 * j->lda;
        for (int64_t r = 0; i8 && r < mb; r++) { /* int8: one quantization per row for every k block */
            pi0_fast_i8_row_prepare(&rq[r], a + r * j->lda, k, g->scan);
            step[r] = rq[r].step;
            n_out += rq[r].n_out;
        }
        for (int64_t s = 0; s < nsteps; s++) {
            int64_t p, kb;
            step_at(pair, np, nkb, s, &p, &kb);
            p += j->p0;
            const int64_t k0 = kb * kcb, kc = kp - k0 < kcb ? kp - k0 : kcb;
            const int last = k0 + kc >= kp;
            /* the slice read after this one (prefetched while this one is computed), and its lines */
            const char *nx = NULL;
            int64_t nx_lines = 0;
            if (conv && s + 1 < nsteps) {
                int64_t p2, kb2;
                step_at(pair, np, nkb, s + 1, &p2, &kb2);
                int64_t k2 = kb2 * kcb, kc2 = kp - k2 < kcb ? kp - k2 : kcb;
                nx = B + (size_t)(j->p0 + p2) * pstride + (size_t)k2 * unit;
                nx_lines = kc2 * (int64_t)unit / 64;
            }
            char *ab = conv ? abuf + (size_t)(pair ? kb : 0) * slot : NULL;
            if (conv && p == j->p0) {
                /* this k block's A block, first needed now; meanwhile ask for this slice at the first
                 * step (nobody has yet), later for the next one (the previous step asked for this) */
                const char *pf = s == 0 ? B + (size_t)p * pstride + (size_t)k0 * unit : nx;
                int64_t pf_lines = s == 0 ? kc * (int64_t)unit / 64 : nx_lines;
                if (i8) g->quantize(ab, lds, a, j->lda, mb, k0, kc, k, rq, pf, pf ? pf_lines : 0);
                else g->convert(ab, lds, a, j->lda, mb, k0, kc, k, pf, pf ? pf_lines : 0);
            }
            const char *ap = conv ? ab : (const char *)(a + k0);
            const int64_t lda = conv ? lds : j->lda, ncols = pi0_fast_panel_cols(b, p);
            float *c = pair ? cbuf + (p & 1) * NR : j->c + i0 * j->ldc + p * NR;
            const int64_t ldc = pair ? 2 * NR : j->ldc;
            const int loadc = kb > 0 || (!pair && j->accumulate);
            const float *bias = last && j->bias && !pair ? j->bias + p * NR : NULL;
            pi0_fast_i8_epilogue e = {step, i8 ? b->scale + p * NR : NULL, last && i8 ? b->wsum + p * NR : NULL, NULL, 0};
            panel_block(g, f, ap, lda, ae, mb, B + (size_t)p * pstride + (size_t)k0 * unit, kc / f->kgroup, c, ldc,
                        loadc, bias, ncols, nx, nx_lines, i8 ? &e : NULL);
            if (last && i8 && (n_out || p == 0)) pi0_fast_i8_side(c, ldc, a, j->lda, mb, rq, b, p, g->side);
            if (last && pair && (p & 1)) { /* the pair is complete: C = gelu_tanh(gate) * up */
                float *y = j->c + i0 * j->ldc + (p / 2) * NR;
                for (int64_t r = 0; r < mb; r++)
                    isa->gelu_tanh(y + r * j->ldc, cbuf + r * 2 * NR, cbuf + r * 2 * NR + NR, ncols);
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
    else gemm_blocked(isa, g, &g_formats[kind], j);
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

/* Thread ith's share of job j (all rows, all panels): a row range, or a panel range (GeGLU pairs: a
 * range of pairs, so both panels of a pair go to one thread). */
static void run_share(pi0_fast_gemm_job j, int64_t ldx, int64_t ldy, int ith, int nth) {
    const pi0_fast_packed *b = j.b;
    if (!split_rows(j.m, b->n_panels, nth)) {
        int64_t g = b->pair ? 2 : 1;
        pi0_split(b->n_panels / g, ith, nth, &j.p0, &j.p1);
        j.p0 *= g;
        j.p1 *= g;
    } else {
        int64_t lo, hi;
        pi0_split(j.m, ith, nth, &lo, &hi);
        j.a += lo * ldx;
        j.c += lo * ldy;
        j.m = hi - lo;
    }
    if (j.m > 0 && j.p0 < j.p1) pi0_fast_gemm(&j);
}

void pi0_fast_matmul(const pi0_matmul_args *a, int ith, int nth) {
    const pi0_fast_packed *b = a->w->packed;
    pi0_fast_gemm_job j = {.c = a->y, .ldc = a->ldy, .a = a->x, .lda = a->ldx, .b = b, .bias = a->bias,
                           .m = a->m, .accumulate = a->accumulate, .p0 = 0, .p1 = b->n_panels};
    run_share(j, a->ldx, a->ldy, ith, nth);
}

/* GeGLU on the gate's packed pair: one GEMM whose driver writes gelu_tanh(gate) * up. */
void pi0_fast_geglu(const pi0_geglu_args *a, int ith, int nth) {
    const pi0_fast_packed *b = a->gate->packed;
    pi0_fast_gemm_job j = {.c = a->y, .ldc = a->ldy, .a = a->x, .lda = a->ldx, .b = b, .m = a->m, .p0 = 0,
                           .p1 = b->n_panels};
    run_share(j, a->ldx, a->ldy, ith, nth);
}
