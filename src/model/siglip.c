/* siglip.c - the SigLIP vision tower and the projector (PI0_MODEL.md §2.1), openpi `siglip.py`.
 * All images of one call are processed as one batch of rows (n_img·T): every dense layer runs once
 * over all rows; attention runs per image (tokens never see another image). */
#include <math.h>

#include "model/model.h"

void pi0_vision_forward(pi0_state *st, const float *const *images, const int *slot_ids, int n_img, float *out,
                        const pi0_run_params *rp) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    pi0_exec *ex = &st->ex;
    int64_t g = c->image_size / c->patch_size, T = g * g, Dv = c->vision_width, Iv = c->vision_mlp_dim;
    int64_t Cp = (int64_t)c->n_channels * c->patch_size * c->patch_size, R = n_img * T;
    int nh = c->vision_heads, hd = (int)(Dv / nh);

    /* 1-2. patch embedding as a matmul over im2col rows, then + position embedding (per image) */
    for (int i = 0; i < n_img; i++) {
        pi0_patches_args pa = {st->v_patches + i * T * Cp, images[i], c->n_channels, c->image_size, c->patch_size};
        pi0_op_patches(ex, "vision.patches", &pa);
    }
    pi0_matmul_args pe = {st->v_h, st->v_patches, &w->patch, w->patch_b, R, Cp, Dv, 0};
    pi0_op_matmul(ex, "vision.patch_embed", &pe);
    for (int i = 0; i < n_img; i++) {
        float *h = st->v_h + i * T * Dv;
        pi0_ew_args add = {h, h, w->pos_emb, T * Dv, 0, PI0_EW_ADD};
        pi0_op_ew(ex, "vision.pos_embed", &add);
    }
    /* 3. pre-LN encoder blocks */
    for (int l = 0; l < c->vision_depth; l++) {
        const pi0_vision_layer *L = &w->vision[l];
        pi0_norm_args n1 = {st->v_a, st->v_h, L->ln1_w, L->ln1_b, R, Dv, c->ln_eps};
        pi0_op_layernorm(ex, "vision.ln1", &n1);
        pi0_matmul_args q = {st->v_q, st->v_a, &L->q, L->q_b, R, Dv, Dv, 0};
        pi0_matmul_args k = {st->v_k, st->v_a, &L->k, L->k_b, R, Dv, Dv, 0};
        pi0_matmul_args v = {st->v_v, st->v_a, &L->v, L->v_b, R, Dv, Dv, 0};
        pi0_op_matmul(ex, "vision.attn.q", &q);
        pi0_op_matmul(ex, "vision.attn.k", &k);
        pi0_op_matmul(ex, "vision.attn.v", &v);
        for (int i = 0; i < n_img; i++) {
            int64_t o = i * T * Dv;
            pi0_attention_args at = {st->v_o + o, st->v_q + o, st->v_k + o, st->v_v + o, T, T, Dv, Dv, Dv,
                                     nh, nh, hd, 1.0f / sqrtf((float)hd), NULL, NULL, NULL, NULL};
            pi0_op_attention(ex, "vision.attn", &at);
        }
        pi0_matmul_args o = {st->v_h, st->v_o, &L->o, L->o_b, R, Dv, Dv, 1};
        pi0_op_matmul(ex, "vision.attn.out", &o);
        pi0_norm_args n2 = {st->v_a, st->v_h, L->ln2_w, L->ln2_b, R, Dv, c->ln_eps};
        pi0_op_layernorm(ex, "vision.ln2", &n2);
        pi0_matmul_args f1 = {st->v_mlp, st->v_a, &L->fc1, L->fc1_b, R, Dv, Iv, 0};
        pi0_op_matmul(ex, "vision.mlp.fc1", &f1);
        pi0_ew_args ge = {st->v_mlp, st->v_mlp, NULL, R * Iv, 0, PI0_EW_GELU_TANH};
        pi0_op_ew(ex, "vision.mlp.gelu", &ge);
        pi0_matmul_args f2 = {st->v_h, st->v_mlp, &L->fc2, L->fc2_b, R, Iv, Dv, 1};
        pi0_op_matmul(ex, "vision.mlp.fc2", &f2);
    }
    /* 4. post LayerNorm, 5. projector (image tokens are not rescaled) */
    pi0_norm_args pn = {st->v_a, st->v_h, w->post_ln_w, w->post_ln_b, R, Dv, c->ln_eps};
    pi0_op_layernorm(ex, "vision.post_ln", &pn);
    pi0_matmul_args pr = {out, st->v_a, &w->proj, w->proj_b, R, Dv, c->vlm_width, 0};
    pi0_op_matmul(ex, "vision.projector", &pr);
    if (rp->tap && ex->status == PI0_OK)
        for (int i = 0; i < n_img; i++) {
            int64_t sv[2] = {T, Dv}, sp[2] = {T, c->vlm_width};
            pi0_tap(rp, st->v_a + i * T * Dv, 2, sv, NULL, 0, "vision.img%d.out", slot_ids[i]);
            pi0_tap(rp, out + i * T * c->vlm_width, 2, sp, NULL, 0, "vision.img%d.proj", slot_ids[i]);
        }
}
