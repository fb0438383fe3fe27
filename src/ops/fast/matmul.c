/* matmul.c - fast matmul op: y[m, n] (=|+=) x[m, k] · Wᵀ + bias on the weight packed at load.
 *
 * Work split (deterministic, each output element written by exactly one thread): either the
 * 64-column panels or the rows are divided among the nth threads (split_rows says which). Either
 * way every element is computed by the same kernel in the same k order (the k blocking depends on
 * k only), so the result does not depend on nth or on the split.
 * The ISA driver is chosen from the cached CPUID flags (rt/cpu.h): avx512, else avx2, else generic.
 */
#include "ops/fast/fast.h"
#include "rt/cpu.h"

void pi0_fast_gemm(const pi0_fast_gemm_job *j) {
    const pi0_cpu_caps *cc = pi0_cpu_caps_get();
    if (cc->avx512) pi0_fast_gemm_avx512(j, cc->avx512bf16);
    else if (cc->avx2) pi0_fast_gemm_avx2(j);
    else pi0_fast_gemm_generic(j);
}

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
