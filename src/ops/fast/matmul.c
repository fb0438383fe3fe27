/* matmul.c - fast matmul op: y[m, n] (=|+=) x[m, k] · Wᵀ + bias on the weight packed at load.
 *
 * Work split (deterministic, each output element written by exactly one thread): the 64-column
 * panels are divided among the nth threads; when there are fewer panels than threads (n < 64*nth,
 * e.g. the 32-wide action projection) the rows are divided instead. Either way every element is
 * computed by the same kernel in the same k order, so the result does not depend on nth.
 * The ISA driver is chosen from the cached CPUID flags (rt/cpu.h).
 */
#include "ops/fast/fast.h"
#include "rt/cpu.h"

void pi0_fast_gemm(const pi0_fast_gemm_job *j) {
    const pi0_cpu_caps *cc = pi0_cpu_caps_get();
    if (cc->avx512) pi0_fast_gemm_avx512(j, cc->avx512bf16);
    else pi0_fast_gemm_generic(j);
}

void pi0_fast_matmul(const pi0_matmul_args *a, int ith, int nth) {
    const pi0_fast_packed *b = a->w->packed;
    pi0_fast_gemm_job j = {.c = a->y, .ldc = a->ldy, .a = a->x, .lda = a->ldx, .b = b, .bias = a->bias,
                           .m = a->m, .accumulate = a->accumulate, .p0 = 0, .p1 = b->n_panels};
    if (b->n_panels >= nth) {
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
