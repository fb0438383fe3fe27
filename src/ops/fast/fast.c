/* fast.c - the fast backend: pi0_backend_fast (members in the other files of this directory),
 * its supports() predicate and its prepare step (load-time weight packing on a thread pool).
 *
 * Every member handles any shape it is given except what supports() rejects, always with a reason:
 * a matmul whose weight was not packed (pack() not called or failed) or was packed as a GeGLU pair,
 * a geglu whose gate and up were not packed as one pair (prepare pairs them when the loader linked
 * them, pi0_weight.geglu_up, and they are adjacent in its list), attention with n_heads not
 * a multiple of n_kv, RoPE with odd hd or hd > 1024, embedding ids out of range, patches with S not
 * a multiple of p, unknown ew/mod kinds or missing operands.
 * Kernels come from the ISA table chosen at run time (isa.c: AVX-512 (+BF16), AVX2 + FMA, NEON
 * (+BF16) or portable C); no -march=native needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "err.h"
#include "ops/fast/fast.h"
#include "rt/threadpool.h"

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
        if (p->pair) return no(why, n, "weight packed as a GeGLU gate|up pair (geglu op only)%.0lld%.0lld", 0, 0);
        if (p->n != a->w->rows || p->k != a->w->cols)
            return no(why, n, "packed weight shape differs from [%lld, %lld]", a->w->rows, a->w->cols);
        if (a->ldx < a->w->cols || a->ldy < a->w->rows)
            return no(why, n, "row strides ldx=%lld ldy=%lld too small", a->ldx, a->ldy);
        return 1;
    }
    case PI0_OP_GEGLU: {
        const pi0_geglu_args *a = args;
        const pi0_fast_packed *p = a->gate->packed;
        if (!p || !p->pair || a->gate->geglu_up != a->up)
            return no(why, n, "gate and up not packed as one GeGLU pair (gate %lld x %lld)", a->gate->rows, a->gate->cols);
        if (p->n != a->gate->rows || p->k != a->gate->cols || a->up->rows != a->gate->rows || a->up->cols != a->gate->cols)
            return no(why, n, "packed pair shape differs from [%lld, %lld]", a->gate->rows, a->gate->cols);
        if (a->ldx < a->gate->cols || a->ldy < a->gate->rows)
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

/* Drop the mapped pages of a weight that has been packed: resident memory stays near one copy of
 * the weights. The mapping stays valid (pages fault back in if a fallback reads them). */
static void release_pages(const pi0_weight *w) {
    size_t es = w->dtype == PI0_DT_F32 ? 4 : 2, page = 4096;
    uintptr_t b = (uintptr_t)w->data, e = b + (size_t)(w->rows * w->cols) * es;
    uintptr_t lo = (b + page - 1) & ~(uintptr_t)(page - 1), hi = e & ~(uintptr_t)(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

#define MAX_PACK_THREADS 64

typedef struct {
    const pi0_prepare_args *a;
    pi0_status status[MAX_PACK_THREADS];
    char msg[MAX_PACK_THREADS][512];
    int64_t total, done, reported; /* progress in stored bytes: all, packed (atomic), at the last report */
} pack_job;

static int64_t stored_bytes(const pi0_weight *w) { return w->rows * w->cols * (w->dtype == PI0_DT_F32 ? 4 : 2); }

static int kind_at(const pi0_prepare_args *a, int i) { return a->kinds ? a->kinds[i] : a->weight_kind; }

/* A GeGLU gate at i whose up projection follows it in the list, same shape, dtype and kind: the two
 * are packed as one pair (pi0_fast_pack_pair) into the gate, and the up weight keeps no copy. */
static int pair_at(const pi0_prepare_args *a, int i) {
    const pi0_weight *g = a->w[i], *u = i + 1 < a->n ? a->w[i + 1] : NULL;
    return u && g->geglu_up == u && u->geglu_gate == g && u->rows == g->rows && u->cols == g->cols &&
           u->dtype == g->dtype && kind_at(a, i) == kind_at(a, i + 1) && g != a->skip && u != a->skip;
}

/* Thread ith packs weights ith, ith + nth, ...; weights are independent, so any split is exact. */
static void pack_some(void *arg, int ith, int nth) {
    pack_job *j = arg;
    const pi0_prepare_args *a = j->a;
    for (int i = ith; i < a->n; i += nth) {
        pi0_weight *w = a->w[i], *up = pair_at(a, i) ? a->w[i + 1] : NULL;
        if (w == a->skip || (i > 0 && pair_at(a, i - 1))) continue; /* skipped, or packed with its gate */
        pi0_fast_packed *p;
        int kind = kind_at(a, i);
        pi0_status s = up ? pi0_fast_pack_pair(&p, w->data, up->data, w->dtype, w->rows, w->cols, kind, w->name)
                          : pi0_fast_pack_weight(&p, w->data, w->dtype, w->rows, w->cols, kind, w->name);
        if (s != PI0_OK) {
            j->status[ith] = s;
            snprintf(j->msg[ith], sizeof j->msg[ith], "%s", pi0_last_error()); /* worker's thread-local error */
            return;
        }
        pi0_fast_packed_free(w->packed);
        w->packed = p;
        if (up) {
            pi0_fast_packed_free(up->packed);
            up->packed = NULL;
        }
        if (a->drop_source) {
            release_pages(w);
            if (up) release_pages(up);
        }
        /* Progress by bytes, every ~0.5 %, from thread 0 only (the callback is never entered twice). */
        int64_t done = __atomic_add_fetch(&j->done, stored_bytes(w) + (up ? stored_bytes(up) : 0), __ATOMIC_RELAXED);
        if (ith == 0 && a->progress && done < j->total && done - j->reported >= j->total / 200) {
            j->reported = done;
            a->progress((float)((double)done / (double)j->total), a->progress_user);
        }
    }
}

/* Load time: pack every matmul weight (layout in fast.h) on n_threads threads. */
static pi0_status fast_prepare(const pi0_prepare_args *a) {
    pack_job *j = calloc(1, sizeof *j);
    if (!j) return pi0_err(PI0_ERR_NOMEM, "out of memory packing weights");
    j->a = a;
    for (int i = 0; i < a->n; i++)
        if (a->w[i] != a->skip) j->total += stored_bytes(a->w[i]);
    int n = a->n_threads < 1 ? 1 : a->n_threads > MAX_PACK_THREADS ? MAX_PACK_THREADS : a->n_threads;
    pi0_status s = PI0_OK;
    if (n == 1) pack_some(j, 0, 1);
    else {
        pi0_pool *pool;
        if ((s = pi0_pool_new(n, &pool)) != PI0_OK) { free(j); return s; }
        pi0_pool_run(pool, pack_some, j);
        pi0_pool_free(pool);
    }
    for (int i = 0; i < n && s == PI0_OK; i++)
        if (j->status[i] != PI0_OK) s = pi0_err(j->status[i], "%s", j->msg[i]);
    free(j);
    if (s == PI0_OK && a->progress) a->progress(1.0f, a->progress_user);
    return s;
}

static void fast_release(pi0_weight *const *w, int n) {
    for (int i = 0; i < n; i++) {
        pi0_fast_packed_free(w[i]->packed);
        w[i]->packed = NULL;
    }
}

const pi0_backend pi0_backend_fast = {
    .name = "fast",
    .matmul = pi0_fast_matmul,
    .geglu = pi0_fast_geglu,
    .attention = pi0_fast_attention,
    .layernorm = pi0_fast_layernorm,
    .rmsnorm = pi0_fast_rmsnorm,
    .ew = pi0_fast_ew,
    .mod = pi0_fast_mod,
    .rope = pi0_fast_rope,
    .embed = pi0_fast_embed,
    .patches = pi0_fast_patches,
    .supports = fast_supports,
    .prepare = fast_prepare,
    .release = fast_release,
};
