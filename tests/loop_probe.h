/* loop_probe.h - a tap callback (pi0_run_params.tap) that counts the allocations and memcpy-family
 * bytes (tools/alloc_count.h) made inside the denoising loop: from the first tap of step 0 to the
 * last tap of step `last`. allocs/bytes stay at their initial values (use -1) if the loop was never
 * seen. Shared by test_alloc.c and test_int8.c. */
#ifndef PI0_TEST_LOOP_PROBE_H
#define PI0_TEST_LOOP_PROBE_H

#include "../tools/alloc_count.h"
#include "pi0.h"

typedef struct {
    int64_t allocs0, bytes0, allocs, bytes;
    int last, started;
} loop_probe;

static void loop_probe_tap(const pi0_tensor_view *t, void *user) {
    loop_probe *p = user;
    if (t->stage != PI0_STAGE_DENOISE) return;
    if (t->step == 0 && !p->started) {
        p->allocs0 = pi0_count_allocs();
        p->bytes0 = pi0_count_copied_bytes();
        p->started = 1;
    }
    if (t->step == p->last) {
        p->allocs = pi0_count_allocs() - p->allocs0;
        p->bytes = pi0_count_copied_bytes() - p->bytes0;
    }
}

#endif
