/* siglip.c - the SigLIP vision tower and the projector (PI0_MODEL.md §2.1), openpi `siglip.py`.
 * All images of one call are processed as one batch of rows (n_img·T): every dense layer runs once
 * over all rows; attention runs per image (tokens never see another image). */
#include <math.h>

#include "model/linear.h"
#include "model/model.h"

void pi0_vision_forward(pi0_state *st, const float *const *images, const int *slot_ids, int n_img, float *out,
                        const pi0_run_params *rp) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    pi0_exec *ex = &st->ex;
    int64_t g = c->image_size / c->patch_size, T = g * g, Dv = c->vision_width, Iv = c->vision_mlp_dim;
    int64_t Cp = (int64_t)c->n_channels * c->patch_size * c->patch_size, R = n_img * T;
    int nh = c->vision_heads, hd = (int)(Dv / nh);
    pi0_exec_stage(ex, PI0_STAGE_VISION, -1);

    /* 1-2. patch embedding as a matmul over im2col rows, then + position embedding (per image) */
    for (int i = 0; i < n_img; i++) {
        pi0_patches_args pa = {.y = st->v_patches + i * T * Cp, .img = images[i], .c = c->n_channels,
                               .s = c->image_size, .p = c->patch_size};
        pi0_op_patches(ex, "vision.patches", &pa);
    }
    pi0_linear(ex, "vision.patch_embed", st->v_h, st->v_patches, &w->patch, w->patch_b, R);
    for (int i = 0; i < n_img; i++) {
        float *h = st->v_h + i * T * Dv;
        pi0_ew_args add = {.y = h, .a = h, .b = w->pos_emb, .n = T * Dv, .kind = PI0_EW_ADD};
        pi0_op_ew(ex, "vision.pos_embed", &add);
    }
    /* 3. pre-LN encoder blocks */
    for (int l = 0; l < c->vision_depth; l++) {
        const pi0_vision_layer *L = &w->vision[l];
        pi0_norm_args n1 = {.y = st->v_a, .x = st->v_h, .w = L->ln1_w, .b = L->ln1_b, .m = R, .d = Dv, .eps = c->ln_eps};
        pi0_op_layernorm(ex, "vision.ln1", &n1);
        pi0_linear(ex, "vision.attn.q", st->v_q, st->v_a, &L->q, L->q_b, R);
        pi0_linear(ex, "vision.attn.k", st->v_k, st->v_a, &L->k, L->k_b, R);
        pi0_linear(ex, "vision.attn.v", st->v_v, st->v_a, &L->v, L->v_b, R);
        for (int i = 0; i < n_img; i++) {
            int64_t o = i * T * Dv;
            /* every token sees every token of its own image: no mask arrays. Where the prefix KV
             * cache gets a bf16 copy (st->kv_bf16), the kernel may round these K/V per call too */
            pi0_attention_args at = {.out = st->v_o + o, .q = st->v_q + o, .k = st->v_k + o, .v = st->v_v + o,
                                     .nq = T, .nk = T, .ldq = Dv, .ldk = Dv, .ldo = Dv, .n_heads = nh, .n_kv = nh,
                                     .hd = hd, .scale = 1.0f / sqrtf((float)hd), .round_bf16 = st->kv_bf16};
            pi0_op_attention(ex, "vision.attn", &at);
        }
        pi0_linear_add(ex, "vision.attn.out", st->v_h, st->v_o, &L->o, L->o_b, R);
        pi0_norm_args n2 = {.y = st->v_a, .x = st->v_h, .w = L->ln2_w, .b = L->ln2_b, .m = R, .d = Dv, .eps = c->ln_eps};
        pi0_op_layernorm(ex, "vision.ln2", &n2);
        pi0_linear(ex, "vision.mlp.fc1", st->v_mlp, st->v_a, &L->fc1, L->fc1_b, R);
        pi0_ew_args ge = {.y = st->v_mlp, .a = st->v_mlp, .n = R * Iv, .kind = PI0_EW_GELU_TANH};
        pi0_op_ew(ex, "vision.mlp.gelu", &ge);
        pi0_linear_add(ex, "vision.mlp.fc2", st->v_h, st->v_mlp, &L->fc2, L->fc2_b, R);
    }
    /* 4. post LayerNorm, 5. projector (image tokens are not rescaled) */
    pi0_norm_args pn = {.y = st->v_a, .x = st->v_h, .w = w->post_ln_w, .b = w->post_ln_b, .m = R, .d = Dv, .eps = c->ln_eps};
    pi0_op_layernorm(ex, "vision.post_ln", &pn);
    pi0_linear(ex, "vision.projector", out, st->v_a, &w->proj, w->proj_b, R);
    if (rp->tap && ex->status == PI0_OK)
        for (int i = 0; i < n_img; i++) {
            int64_t sv[2] = {T, Dv}, sp[2] = {T, c->vlm_width};
            pi0_tap(ex, rp, st->v_a + i * T * Dv, 2, sv, NULL, 0, "vision.img%d.out", slot_ids[i]);
            pi0_tap(ex, rp, out + i * T * c->vlm_width, 2, sp, NULL, 0, "vision.img%d.proj", slot_ids[i]);
        }
}
