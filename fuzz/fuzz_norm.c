/* fuzz_norm.c - libFuzzer harness for the norm_stats.json parser (pi0_norm_parse) and, when it
 * succeeds, both normalization modes on a fixed vector. */
#include <stdint.h>
#include <string.h>

#include "io/norm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pi0_norm_stats ns;
    if (pi0_norm_parse((const char *)data, size, "fuzz.json", &ns) != PI0_OK) return 0;
    double x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = i * 0.25 - 4.0;
    for (int mode = 0; mode < 2; mode++) {
        int n = ns.state.n < 64 ? ns.state.n : 64;
        pi0_norm_apply(&ns.state, mode, "state", x, y, n);
        pi0_norm_unapply(&ns.actions, mode, "actions", x, y, 64);
    }
    pi0_norm_free(&ns);
    return 0;
}
