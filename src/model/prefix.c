/* prefix.c - prefix assembly and the VLM prefill (PI0_MODEL.md §2.2-§2.3, §3.1, §3.3, §3.4.1);
 * openpi `embed_prefix` plus the first forward pass that fills the KV cache.
 *
 * Positions and masks are computed over the full prefix [image slots..., tokens...]. In compact
 * mode (fast path) the rows whose pad mask is 0 (empty camera slots, padded tokens) are dropped
 * before any work - exact, since masked keys get exactly zero attention weight (§3.5) - and VLM
 * layer 17 stops after its K/V. The reference path keeps every row, as openpi does.
 * With st->kb (fast path, weights not f32) each layer also writes its K/V rows into a bf16 copy as
 * soon as they are final; its own attention and every denoising step's read that copy (ops.h). */
#include <math.h>

#include "model/model.h"

static const char *const vlm_sites[10] = {"prefix.norm1", "prefix.attn.q", "prefix.attn.k", "prefix.attn.v",
                                          "prefix.rope", "prefix.attn", "prefix.attn.out", "prefix.norm2",
                                          "prefix.mlp.gate_up", "prefix.mlp.down"};

pi0_status pi0_prefix_forward(pi0_state *st, const pi0_obs *obs, const pi0_run_params *rp) {
    const pi0_config *c = &st->ctx->cfg;
    const pi0_weights *w = &st->ctx->w;
    int64_t T = (int64_t)(c->image_size / c->patch_size) * (c->image_size / c->patch_size), W = c->vlm_width;
    int64_t KV = (int64_t)c->n_kv_heads * c->head_dim, S = c->image_size, C = c->n_channels;

    /* Full-prefix validity and positions pos = cumsum(pad) - 1 (§3.3); keep rows. */
    int P = 0, n_valid = 0, n_img = 0;
    const float *imgs[8];
    int slots[8];
    for (int i = 0; i < obs->n_images; i++) {
        int valid = obs->image_masks[i] != 0;
        if (st->compact && !valid) continue;
        imgs[n_img] = obs->images + (int64_t)i * C * S * S;
        slots[n_img++] = i;
        for (int64_t t = 0; t < T; t++) {
            st->rows[P] = (int32_t)(i * T + t);
            st->kpad[P] = (uint8_t)valid;
            n_valid += valid;
            st->pos[P++] = n_valid - 1;
        }
    }
    /* Masked slots skipped above still count for nothing in positions: pad 0 adds 0. */
    int n_tok = 0;
    for (int i = 0; i < obs->n_tokens; i++) {
        int valid = obs->token_masks[i] != 0;
        n_valid += valid;
        if (st->compact && !valid) continue;
        st->rows[P] = (int32_t)(obs->n_images * T + i);
        st->kpad[P] = (uint8_t)valid;
        st->pos[P++] = n_valid - 1;
        st->tok_ids[n_tok++] = obs->tokens[i];
    }
    for (int j = 0; j < P; j++) st->kcum[j] = 0; /* every prefix token: ar = 0 */
    pi0_rope_table(st->rope_cs, st->pos, P, c->head_dim, c->rope_base); /* once per observation */
    st->n_prefix = P;
    st->n_valid = n_valid;

    /* Image tokens: the encoded slots are the first n_img·T rows. Language: E[id]·√W (§2.2). */
    if (n_img) pi0_vision_forward(st, imgs, slots, n_img, st->p_x, rp);
    pi0_exec_stage(&st->ex, PI0_STAGE_PREFIX, -1); /* the prefix proper: everything after the vision tower */
    if (n_tok) {
        pi0_embed_args e = {.y = st->p_x + (int64_t)n_img * T * W, .w = &w->embed, .ids = st->tok_ids, .m = n_tok,
                            .scale = (float)sqrt((double)W)};
        pi0_op_embed(&st->ex, "prefix.embed", &e);
    }
    const int32_t *rows = st->compact ? st->rows : NULL;
    int64_t sh[2] = {P, W};
    if (st->ex.status == PI0_OK) pi0_tap(&st->ex, rp, st->p_x, 2, sh, rows, 0, "prefix.embs");

    for (int l = 0; l < c->vlm_depth && st->ex.status == PI0_OK; l++) {
        pi0_gemma_call g = {.L = &w->vlm[l], .D = (int)W, .Mx = c->vlm_mlp_dim, .x = st->p_x, .a = st->p_a, .q = st->p_q,
                            .o = st->p_o, .g = st->p_g, .n = P, .pos = st->pos, .qcum = st->kcum,
                            .qpad = st->kpad, .kc = st->kc[l], .vc = st->vc[l], .koff = 0,
                            .kb = st->kb ? st->kb[l] : NULL, .vb = st->vb ? st->vb[l] : NULL, .nkb = P, .kb_fill = 1,
                            .kv_only = st->compact && l == c->vlm_depth - 1, .sites = vlm_sites};
        pi0_gemma_block(st, &g);
        if (rp->tap && st->ex.status == PI0_OK) {
            int64_t kv[2] = {P, KV};
            pi0_tap(&st->ex, rp, st->kc[l], 2, kv, rows, 0, "prefix.k.L%02d", l);
            pi0_tap(&st->ex, rp, st->vc[l], 2, kv, rows, 0, "prefix.v.L%02d", l);
        }
    }
    if (!st->compact && st->ex.status == PI0_OK) {
        /* The VLM's final norm is never used by the policy (§6.7); the reference computes it so the
         * test vectors' prefix_hidden_final can be checked. */
        pi0_norm_args n = {.y = st->p_a, .x = st->p_x, .w = w->vlm_norm, .m = P, .d = W, .eps = c->rms_eps};
        pi0_op_rmsnorm(&st->ex, "prefix.final_norm", &n);
        pi0_tap(&st->ex, rp, st->p_a, 2, sh, rows, 0, "prefix.hidden_final");
    }
    return st->ex.status;
}
