/* gemma.c - one Gemma block for either expert (PI0_MODEL.md §2.4): pre-norm (plain or adaptive),
 * q/k/v projections, RoPE, multi-query attention against the KV buffer, output projection and
 * residual (gated for adaptive norms), pre-MLP norm, GeGLU MLP (one geglu op, then down), residual. K/V of the processed rows
 * are written straight into the layer's KV buffer at row koff, so the prefix cache is filled in
 * place and a denoising step reads it in place. With a bf16 copy of the cache (c->kb, fast path),
 * the prefill also rounds its K/V rows into it, and attention reads keys [0, nkb) from the copy. */
#include <math.h>

#include "model/linear.h"
#include "model/model.h"

enum { S_NORM1, S_Q, S_K, S_V, S_ROPE, S_ATTN, S_O, S_NORM2, S_MLP, S_DOWN };

/* Adaptive norms: apply the (scale, shift, gate) triple at offset `at` of the layer's modulations:
 * a = a·(1 + scale) + shift, or (gated) x += t ⊙ gate. Rows [0, n0) take mod0's triple (their own
 * time, training-time RTC), the others mod's; n0 = 0 is one call over all rows. */
static void modulate(pi0_state *st, const pi0_gemma_call *c, int64_t at, int gated, const char *site) {
    int n0 = c->mod0 ? c->n0 : 0;
    for (int part = 0; part < 2; part++) {
        int r0 = part ? n0 : 0, m = part ? c->n - n0 : n0;
        if (m <= 0) continue;
        const float *mod = (part ? c->mod : c->mod0) + at;
        int64_t o = (int64_t)r0 * c->D;
        pi0_mod_args a = {.m = m, .d = c->D};
        if (gated) {
            a.y = c->x + o; a.f = c->t + o; a.gate = mod + 2 * c->D; a.kind = PI0_MOD_GATED_RESIDUAL;
        } else {
            a.y = c->a + o; a.scale = mod; a.shift = mod + c->D; a.kind = PI0_MOD_SCALE_SHIFT;
        }
        pi0_op_mod(&st->ex, site, &a);
    }
}

/* a = norm(x); for an adaptive norm (c->mod) then the modulation triple at `at`. */
static void pre_norm(pi0_state *st, const pi0_gemma_call *c, const float *w, int64_t at, const char *site) {
    const pi0_config *cfg = &st->ctx->cfg;
    pi0_norm_args n = {.y = c->a, .x = c->x, .w = c->mod ? NULL : w, .m = c->n, .d = c->D, .eps = cfg->rms_eps};
    pi0_op_rmsnorm(&st->ex, site, &n);
    if (c->mod) modulate(st, c, at, 0, site);
}

/* x += f (already accumulated by the matmul) or, for adaptive norms, x += f ⊙ gate of the triple at `at`. */
static void project_residual(pi0_state *st, const pi0_gemma_call *c, const pi0_weight *w, const float *in, int64_t at,
                             const char *site) {
    if (!c->mod) {
        pi0_linear_add(&st->ex, site, c->x, in, w, NULL, c->n);
        return;
    }
    pi0_linear(&st->ex, site, c->t, in, w, NULL, c->n);
    modulate(st, c, at, 1, site);
}

void pi0_gemma_block(pi0_state *st, const pi0_gemma_call *c) {
    const pi0_config *cfg = &st->ctx->cfg;
    const pi0_gemma_layer *L = c->L;
    pi0_exec *ex = &st->ex;
    int64_t HD = (int64_t)cfg->n_heads * cfg->head_dim, KV = (int64_t)cfg->n_kv_heads * cfg->head_dim;
    int64_t mlp_at = 3 * (int64_t)c->D; /* the MLP norm's triple follows the attention norm's */

    pre_norm(st, c, L->attn_norm, 0, c->sites[S_NORM1]);
    float *krows = c->kc + (int64_t)c->koff * KV, *vrows = c->vc + (int64_t)c->koff * KV;
    pi0_linear(ex, c->sites[S_K], krows, c->a, &L->k, NULL, c->n);
    pi0_linear(ex, c->sites[S_V], vrows, c->a, &L->v, NULL, c->n);
    const float *cs = st->rope_cs + (c->pos - st->pos) * cfg->head_dim; /* rows of this call's positions */
    pi0_rope_args rk = {.x = krows, .pos = c->pos, .m = c->n, .ld = KV, .n_heads = cfg->n_kv_heads, .hd = cfg->head_dim,
                        .base = cfg->rope_base, .cs = cs};
    pi0_op_rope(ex, c->sites[S_ROPE], &rk);
    if (c->kb && c->kb_fill && ex->status == PI0_OK) /* the prefill: the bf16 copy of these rows */
        pi0_kv_bf16_fill(c->kb, c->vb, c->kc, c->vc, KV, c->koff, c->koff + c->n);
    if (c->kv_only) return; /* last VLM layer: only its K/V feed the cache (§3.5) */

    pi0_linear(ex, c->sites[S_Q], c->q, c->a, &L->q, NULL, c->n);
    pi0_rope_args rq = {.x = c->q, .pos = c->pos, .m = c->n, .ld = HD, .n_heads = cfg->n_heads, .hd = cfg->head_dim,
                        .base = cfg->rope_base, .cs = cs};
    pi0_op_rope(ex, c->sites[S_ROPE], &rq);
    pi0_attention_args at = {.out = c->o, .q = c->q, .k = c->kc, .v = c->vc, .nq = c->n, .nk = c->koff + c->n,
                             .ldq = HD, .ldk = KV, .ldo = HD, .n_heads = cfg->n_heads, .n_kv = cfg->n_kv_heads,
                             .hd = cfg->head_dim, .scale = 1.0f / sqrtf((float)cfg->head_dim),
                             .qc = c->qcum, .kc = st->kcum, .qpad = c->qpad, .kpad = st->kpad,
                             .kb = c->kb, .vb = c->vb, .nkb = c->kb ? c->nkb : 0};
    pi0_op_attention(ex, c->sites[S_ATTN], &at);
    project_residual(st, c, &L->o, c->o, 0, c->sites[S_O]);

    pre_norm(st, c, L->mlp_norm, mlp_at, c->sites[S_NORM2]);
    /* g = gelu_tanh(a·gateᵀ) ⊙ (a·upᵀ): one op (the fast backend: one GEMM over the gate|up pair) */
    pi0_geglu_args ge = {.y = c->g, .x = c->a, .gate = &L->gate, .up = &L->up, .m = c->n, .ldx = c->D, .ldy = c->Mx};
    pi0_op_geglu(ex, c->sites[S_MLP], &ge);
    project_residual(st, c, &L->down, c->g, mlp_at, c->sites[S_DOWN]);
}
