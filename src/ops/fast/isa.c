/* isa.c - the one place the fast backend picks its ISA row (isa.h): the rows of this architecture,
 * best first, and the first one the CPU flags (rt/cpu.h, lowered by PI0_CPU_CAPS) cover. */
#include "ops/fast/isa.h"

#include "rt/cpu.h"

static const pi0_fast_isa *const g_rows[] = {
#if defined(__x86_64__)
    &pi0_fast_isa_avx512bf16,
    &pi0_fast_isa_avx512,
    &pi0_fast_isa_avx2vnni,
    &pi0_fast_isa_avx2,
#endif
#if defined(__aarch64__)
    &pi0_fast_isa_neonbf16,
    &pi0_fast_isa_neon,
#endif
    &pi0_fast_isa_generic,
};
#define N_ROWS ((int)(sizeof g_rows / sizeof g_rows[0]))

static const pi0_fast_isa *g_forced; /* test-only override */

int pi0_fast_isa_available(const pi0_fast_isa *isa) {
    return isa && (pi0_cpu_caps_get()->flags & isa->needs) == isa->needs;
}

const pi0_fast_isa *pi0_fast_isa_get(void) {
    if (g_forced) return g_forced;
    unsigned have = pi0_cpu_caps_get()->flags;
    for (int i = 0; i < N_ROWS; i++)
        if ((have & g_rows[i]->needs) == g_rows[i]->needs) return g_rows[i];
    return &pi0_fast_isa_generic;
}

int pi0_fast_isa_count(void) { return N_ROWS; }
const pi0_fast_isa *pi0_fast_isa_at(int i) { return i >= 0 && i < N_ROWS ? g_rows[i] : NULL; }

int pi0_fast_isa_force(const pi0_fast_isa *isa) {
    if (isa && !pi0_fast_isa_available(isa)) return 0;
    g_forced = isa;
    return 1;
}
