/* state.c - plan and allocate a pi0_state: every buffer size is computed from the config up front,
 * then one aligned allocation holds them all (llm.c style). Nothing is allocated per inference. */
#include <stdlib.h>
#include <string.h>

#include "debug.h"
#include "model/model.h"
#include "model/variant.h"

typedef struct {
    char *base;   /* NULL while measuring */
    size_t off;
} planner;

/* Reserve n elements of size es, 64-byte aligned; returns NULL while measuring. */
static void *take(planner *p, size_t n, size_t es) {
    size_t off = (p->off + 63) & ~(size_t)63;
    p->off = off + n * es;
    return p->base ? p->base + off : NULL;
}

static void layout(pi0_state *st, planner *p) {
    const pi0_config *c = &st->ctx->cfg;
    size_t g = (size_t)(c->image_size / c->patch_size), T = g * g, R = (size_t)c->n_image_slots * T;
    size_t Cp = (size_t)c->n_channels * c->patch_size * c->patch_size, Dv = (size_t)c->vision_width;
    size_t Pmax = R + (size_t)c->max_token_len, W = (size_t)c->vlm_width, We = (size_t)c->expert_width;
    size_t HD = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    const pi0_variant_desc *vd = pi0_variant_get(c->variant);
    size_t H = (size_t)c->action_horizon, A = (size_t)c->action_dim, Ns = (size_t)vd->n_state_tokens + H, F = sizeof(float);
    int via_norms = vd->time_cond == PI0_TIME_VIA_NORMS, ada = vd->expert_norm == PI0_EXPERT_NORM_ADAPTIVE;
    st->v_patches = take(p, R * Cp, F);
    st->v_h = take(p, R * Dv, F);
    st->v_a = take(p, R * Dv, F);
    st->v_q = take(p, R * Dv, F);
    st->v_k = take(p, R * Dv, F);
    st->v_v = take(p, R * Dv, F);
    st->v_o = take(p, R * Dv, F);
    st->v_mlp = take(p, R * (size_t)c->vision_mlp_dim, F);
    st->p_x = take(p, Pmax * W, F);
    st->p_a = take(p, Pmax * W, F);
    st->p_q = take(p, Pmax * HD, F);
    st->p_o = take(p, Pmax * HD, F);
    st->p_g = take(p, Pmax * (size_t)c->vlm_mlp_dim, F);
    st->kc = take(p, (size_t)c->vlm_depth, sizeof(float *));
    st->vc = take(p, (size_t)c->vlm_depth, sizeof(float *));
    for (int l = 0; l < c->vlm_depth; l++) {
        float *k = take(p, (Pmax + Ns) * KV, F), *v = take(p, (Pmax + Ns) * KV, F);
        if (p->base) { st->kc[l] = k; st->vc[l] = v; }
    }
    if (st->kv_bf16) {
        st->kb = take(p, (size_t)c->vlm_depth, sizeof(uint16_t *));
        st->vb = take(p, (size_t)c->vlm_depth, sizeof(uint16_t *));
        for (int l = 0; l < c->vlm_depth; l++) {
            uint16_t *k = take(p, (Pmax + 1) * KV, 2), *v = take(p, (Pmax + 1) * KV, 2);
            if (p->base) { st->kb[l] = k; st->vb[l] = v; }
        }
    }
    st->pos = take(p, Pmax + Ns, sizeof(int32_t));
    st->rope_cs = take(p, (Pmax + Ns) * (size_t)c->head_dim, F);
    st->rows = take(p, Pmax, sizeof(int32_t));
    st->kcum = take(p, Pmax + Ns, sizeof(int32_t));
    st->kpad = take(p, Pmax + Ns, 1);
    st->tok_ids = take(p, (size_t)c->max_token_len, sizeof(int32_t));
    st->s_x = take(p, Ns * We, F);
    st->s_a = take(p, Ns * We, F);
    st->s_q = take(p, Ns * HD, F);
    st->s_o = take(p, Ns * HD, F);
    st->s_g = take(p, Ns * (size_t)c->expert_mlp_dim, F);
    st->s_t = take(p, Ns * We, F);
    st->tau = take(p, We, F);
    st->tau_b = take(p, via_norms ? 0 : We, F);
    st->cond = take(p, via_norms ? We : 0, F);
    st->cond_t = take(p, via_norms ? We : 0, F);
    st->mods = take(p, ada ? (2 * (size_t)c->expert_depth + 1) * 3 * We : 0, F);
    st->x_t = take(p, H * A, F);
    st->v_t = take(p, H * A, F);
    st->state_pad = take(p, A, F);
    st->rtc_y = take(p, H * A, F);
    st->rtc_w = take(p, H, F);
    st->rtc_e = take(p, H * A, F);
    st->rtc_x = take(p, H * A, F);
    st->rtc_v = take(p, H * A, F);
    st->rtc_mods0 = take(p, ada ? (2 * (size_t)c->expert_depth + 1) * 3 * We : 0, F);
}

pi0_status pi0_state_new(pi0_ctx *ctx, pi0_state **out) {
    pi0_err_clear();
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_state_new: out is NULL");
    *out = NULL;
    if (!ctx) return pi0_err(PI0_ERR_ARG, "pi0_state_new: ctx is NULL");
    pi0_state *st = calloc(1, sizeof *st);
    if (!st) return pi0_err(PI0_ERR_NOMEM, "pi0_state_new: out of memory");
    st->ctx = ctx;
    st->compact = ctx->params.backend == PI0_BACKEND_FAST;
    /* The attention of the fast path reads a bf16 copy of the prefix KV cache (made once per
     * observation by the prefill) when the weights are not kept in f32 (--weights f32 compares the
     * kernels alone). PI0_ATTN_KV=f32 keeps fp32 K/V (measurements, tests). */
    const char *akv = getenv("PI0_ATTN_KV");
    st->kv_bf16 = st->compact && ctx->params.weights != PI0_WEIGHTS_F32 && !(akv && !strcmp(akv, "f32"));
    planner p = {NULL, 0};
    layout(st, &p);
    size_t bytes = p.off + 64;
    const pi0_backend *be = pi0_backend_get(ctx->params.backend);
    void *mem = pi0_backend_arena_alloc(be, bytes);
    if (!mem) {
        free(st);
        return pi0_err(PI0_ERR_NOMEM, "pi0_state_new: cannot allocate %zu bytes of buffers", bytes);
    }
    st->arena = mem;
    p.base = mem;
    p.off = 0;
    layout(st, &p);
    int n = ctx->params.n_threads > 0 ? ctx->params.n_threads : pi0_cpu_count();
    pi0_status s = pi0_pool_new(n, &st->ex.pool);
    if (s != PI0_OK) { pi0_backend_arena_free(be, st->arena); free(st); return s; }
    st->ex.be = be;
    st->ex.strict = ctx->params.strict;
    /* Below ~1 MFLOP an op runs on the calling thread alone: waking the pool costs more than it
     * saves, and on an oversubscribed machine a descheduled worker would stall every small op.
     * Results do not change: every op computes each element identically for any (ith, nth). */
    st->ex.serial_work = 1.0e6;
    *out = st;
    return PI0_OK;
}

void pi0_state_free(pi0_state *st) {
    if (!st) return;
    pi0_pool_free(st->ex.pool);
    pi0_backend_arena_free(st->ex.be, st->arena);
    free(st);
}

pi0_exec *pi0_state_exec(pi0_state *st) { return st ? &st->ex : NULL; }
