/* ref.h - the reference backend's op functions (float32 oracle; see ops.h for the contracts). */
#ifndef PI0_OPS_REF_H
#define PI0_OPS_REF_H

#include "ops/ops.h"

extern const pi0_backend pi0_backend_ref;

void pi0_matmul_ref(const pi0_matmul_args *a, int ith, int nth);
void pi0_geglu_ref(const pi0_geglu_args *a, int ith, int nth);
void pi0_attention_ref(const pi0_attention_args *a, int ith, int nth);
void pi0_layernorm_ref(const pi0_norm_args *a, int ith, int nth);
void pi0_rmsnorm_ref(const pi0_norm_args *a, int ith, int nth);
void pi0_ew_ref(const pi0_ew_args *a, int ith, int nth);
void pi0_mod_ref(const pi0_mod_args *a, int ith, int nth);
void pi0_rope_ref(const pi0_rope_args *a, int ith, int nth);
void pi0_embed_ref(const pi0_embed_args *a, int ith, int nth);
void pi0_patches_ref(const pi0_patches_args *a, int ith, int nth);

/* GELU, tanh form (PI0_MODEL.md §2.0), in double, rounded to float: the ew op's and geglu's. */
float pi0_gelu_tanh_ref(float x);

/* openpi's mask fill value (Gemma code): masked logits are replaced by it before the softmax. */
#define PI0_MASK_FILL (-2.3819763e38f)

#endif
