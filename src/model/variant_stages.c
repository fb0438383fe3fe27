/* variant_stages.c - each model family's code (variant_<name>.c), by pi0_variant id. */
#include "model/variant.h"

static const pi0_variant_stages *const stages[] = {
    [PI0_VARIANT_PI0] = &pi0_stages_pi0,
    [PI0_VARIANT_PI05] = &pi0_stages_pi05,
};

const pi0_variant_stages *pi0_variant_stages_of(int id) { return stages[id]; }
