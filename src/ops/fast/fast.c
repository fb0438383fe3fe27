/* fast.c - the fast backend: pi0_backend_fast (members in the other files of this directory),
 * its supports() predicate and load-time weight packing.
 *
 * Every member handles any shape it is given except what supports() rejects, always with a reason:
 * a matmul whose weight was not packed (pack() not called or failed), attention with n_heads not
 * a multiple of n_kv, RoPE with odd hd or hd > 1024, embedding ids out of range, patches with S not
 * a multiple of p, unknown ew/mod kinds or missing operands.
 * Kernels choose AVX-512 (+BF16) or portable C at run time (rt/cpu.h); no -march=native needed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "ops/fast/fast.h"

static int no(char *why, size_t n, const char *fmt, long long a, long long b) {
    if (why && n) snprintf(why, n, fmt, a, b);
    return 0;
}

static int fast_supports(pi0_op op, const void *args, char *why, size_t n) {
    switch (op) {
    case PI0_OP_MATMUL: {
        const pi0_matmul_args *a = args;
        const pi0_fast_packed *p = a->w->packed;
        if (!p) return no(why, n, "weight not packed (dtype %lld, %lld cols)", (long long)a->w->dtype, a->w->cols);
        if (p->n != a->w->rows || p->k != a->w->cols)
            return no(why, n, "packed weight shape differs from [%lld, %lld]", a->w->rows, a->w->cols);
        if (a->ldx < a->w->cols || a->ldy < a->w->rows)
            return no(why, n, "row strides ldx=%lld ldy=%lld too small", a->ldx, a->ldy);
        return 1;
    }
    case PI0_OP_ATTENTION: {
        const pi0_attention_args *a = args;
        if (a->n_kv < 1 || a->n_heads < a->n_kv || a->n_heads % a->n_kv)
            return no(why, n, "n_heads=%lld not a multiple of n_kv=%lld", a->n_heads, a->n_kv);
        if (a->hd < 1 || a->nk < 1) return no(why, n, "hd=%lld nk=%lld", a->hd, a->nk);
        return 1;
    }
    case PI0_OP_ROPE: {
        const pi0_rope_args *a = args;
        if (a->hd < 2 || a->hd % 2 || a->hd > 1024) return no(why, n, "hd=%lld (need even, <= %lld)", a->hd, 1024);
        return 1;
    }
    case PI0_OP_EMBED: {
        const pi0_embed_args *a = args;
        pi0_dtype dt = a->w->dtype;
        if (dt != PI0_DT_F32 && dt != PI0_DT_BF16 && dt != PI0_DT_F16)
            return no(why, n, "embedding dtype %lld unsupported%.0lld", (long long)dt, 0);
        for (int64_t i = 0; i < a->m; i++)
            if (a->ids[i] < 0 || a->ids[i] >= a->w->rows)
                return no(why, n, "id out of range at row %lld (vocab %lld)", i, a->w->rows);
        return 1;
    }
    case PI0_OP_PATCHES: {
        const pi0_patches_args *a = args;
        if (a->p < 1 || a->s % a->p) return no(why, n, "image size %lld not a multiple of patch %lld", a->s, a->p);
        return 1;
    }
    case PI0_OP_EW: {
        const pi0_ew_args *a = args;
        if ((unsigned)a->kind > PI0_EW_AXPY) return no(why, n, "ew kind %lld unknown%.0lld", (long long)a->kind, 0);
        if (a->kind != PI0_EW_GELU_TANH && a->kind != PI0_EW_SWISH && !a->b)
            return no(why, n, "ew kind %lld needs b%.0lld", (long long)a->kind, 0);
        return 1;
    }
    case PI0_OP_MOD: {
        const pi0_mod_args *a = args;
        if ((unsigned)a->kind > PI0_MOD_GATED_RESIDUAL) return no(why, n, "mod kind %lld unknown%.0lld", (long long)a->kind, 0);
        return 1;
    }
    case PI0_OP_LAYERNORM:
    case PI0_OP_RMSNORM:
        return 1;
    default:
        return no(why, n, "op %lld not implemented%.0lld", (long long)op, 0);
    }
}

static pi0_status fast_pack(pi0_weight *w, int weight_kind) {
    pi0_fast_packed *p;
    pi0_status s = pi0_fast_pack_weight(&p, w->data, w->dtype, w->rows, w->cols, weight_kind, w->name);
    if (s != PI0_OK) return s;
    pi0_fast_packed_free(w->packed);
    w->packed = p;
    return PI0_OK;
}

static void fast_unpack(pi0_weight *w) {
    pi0_fast_packed_free(w->packed);
    w->packed = NULL;
}

const pi0_backend pi0_backend_fast = {
    .name = "fast",
    .matmul = pi0_fast_matmul,
    .attention = pi0_fast_attention,
    .layernorm = pi0_fast_layernorm,
    .rmsnorm = pi0_fast_rmsnorm,
    .ew = pi0_fast_ew,
    .mod = pi0_fast_mod,
    .rope = pi0_fast_rope,
    .embed = pi0_fast_embed,
    .patches = pi0_fast_patches,
    .supports = fast_supports,
    .pack = fast_pack,
    .unpack = fast_unpack,
};
