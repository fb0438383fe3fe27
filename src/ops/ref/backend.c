/* ref/backend.c - the reference backend table: every op, float32, plain loops (the oracle). */
#include "ops/ref/ref.h"

const pi0_backend pi0_backend_ref = {
    .name = "ref",
    .matmul = pi0_matmul_ref,
    .geglu = pi0_geglu_ref,
    .attention = pi0_attention_ref,
    .layernorm = pi0_layernorm_ref,
    .rmsnorm = pi0_rmsnorm_ref,
    .ew = pi0_ew_ref,
    .mod = pi0_mod_ref,
    .rope = pi0_rope_ref,
    .embed = pi0_embed_ref,
    .patches = pi0_patches_ref,
};
