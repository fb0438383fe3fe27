/* dispatch.c - choose fast or ref for each op call, run it on the pool, count and time it. */
#include "ops/dispatch.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"

const char *pi0_op_name(pi0_op op) {
    static const char *names[PI0_OP_COUNT] = {"matmul", "attention", "layernorm", "rmsnorm", "elementwise",
                                              "modulate", "rope", "embed", "patches"};
    return (unsigned)op < PI0_OP_COUNT ? names[op] : "?";
}

typedef struct {
    const pi0_backend *be;
    pi0_op op;
    const void *args;
} job;

/* One trampoline for every op keeps the pool's function type exact (no casts of function pointers). */
static void job_run(void *p, int ith, int nth) {
    const job *j = p;
    switch (j->op) {
    case PI0_OP_MATMUL: j->be->matmul(j->args, ith, nth); break;
    case PI0_OP_ATTENTION: j->be->attention(j->args, ith, nth); break;
    case PI0_OP_LAYERNORM: j->be->layernorm(j->args, ith, nth); break;
    case PI0_OP_RMSNORM: j->be->rmsnorm(j->args, ith, nth); break;
    case PI0_OP_EW: j->be->ew(j->args, ith, nth); break;
    case PI0_OP_MOD: j->be->mod(j->args, ith, nth); break;
    case PI0_OP_ROPE: j->be->rope(j->args, ith, nth); break;
    case PI0_OP_EMBED: j->be->embed(j->args, ith, nth); break;
    case PI0_OP_PATCHES: j->be->patches(j->args, ith, nth); break;
    case PI0_OP_COUNT: break;
    }
}

static int has_member(const pi0_backend *be, pi0_op op) {
    switch (op) {
    case PI0_OP_MATMUL: return be->matmul != NULL;
    case PI0_OP_ATTENTION: return be->attention != NULL;
    case PI0_OP_LAYERNORM: return be->layernorm != NULL;
    case PI0_OP_RMSNORM: return be->rmsnorm != NULL;
    case PI0_OP_EW: return be->ew != NULL;
    case PI0_OP_MOD: return be->mod != NULL;
    case PI0_OP_ROPE: return be->rope != NULL;
    case PI0_OP_EMBED: return be->embed != NULL;
    case PI0_OP_PATCHES: return be->patches != NULL;
    case PI0_OP_COUNT: break;
    }
    return 0;
}

static pi0_site_stats *site_stats(pi0_exec *ex, const char *site, pi0_op op) {
    for (int i = 0; i < ex->n_sites; i++)
        if (ex->sites[i].site == site && ex->sites[i].op == op) return &ex->sites[i];
    if (ex->n_sites == PI0_MAX_SITES) return NULL;
    pi0_site_stats *s = &ex->sites[ex->n_sites++];
    memset(s, 0, sizeof *s);
    s->site = site;
    s->op = op;
    return s;
}

void pi0_exec_reset_stats(pi0_exec *ex) { ex->n_sites = 0; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void run_op(pi0_exec *ex, const char *site, pi0_op op, const void *args, double work) {
    if (ex->status != PI0_OK) return;
    if (ex->abort_cb && ex->abort_cb(ex->abort_user)) {
        ex->status = pi0_err(PI0_ERR_ABORTED, "aborted by the caller before op %s at site %s", pi0_op_name(op), site);
        return;
    }
    pi0_site_stats *st = site_stats(ex, site, op);
    const pi0_backend *be = &pi0_backend_ref;
    char why[96] = "forced ref";
    if (ex->fast) {
        if (!has_member(ex->fast, op)) snprintf(why, sizeof why, "not implemented");
        else if (!ex->fast->supports || ex->fast->supports(op, args, why, sizeof why)) be = ex->fast;
    }
    if (be != ex->fast && ex->fast && ex->strict) {
        ex->status = pi0_err(PI0_ERR_UNSUPPORTED, "strict mode: op %s at site %s would fall back to ref: %s",
                             pi0_op_name(op), site, why);
        return;
    }
    job j = {be, op, args};
    int64_t t0 = now_ns();
    if (work < ex->serial_work) job_run(&j, 0, 1);
    else pi0_pool_run(ex->pool, job_run, &j);
    int64_t t1 = now_ns();
    if (st) {
        st->backend = be->name;
        if (be == &pi0_backend_ref) snprintf(st->reason, sizeof st->reason, "%s", why); else st->reason[0] = '\0';
        st->calls++;
        st->ns += t1 - t0;
        if (op == PI0_OP_MATMUL || op == PI0_OP_ATTENTION) st->flops += work;
    }
}

void pi0_op_matmul(pi0_exec *ex, const char *site, const pi0_matmul_args *a) {
    run_op(ex, site, PI0_OP_MATMUL, a, 2.0 * (double)a->m * (double)a->w->rows * (double)a->w->cols);
}
void pi0_op_attention(pi0_exec *ex, const char *site, const pi0_attention_args *a) {
    run_op(ex, site, PI0_OP_ATTENTION, a, 4.0 * (double)a->nq * (double)a->nk * a->n_heads * a->hd);
}
/* Work of the other ops: roughly 8 operations per element touched. */
void pi0_op_layernorm(pi0_exec *ex, const char *site, const pi0_norm_args *a) {
    run_op(ex, site, PI0_OP_LAYERNORM, a, 8.0 * (double)(a->m * a->d));
}
void pi0_op_rmsnorm(pi0_exec *ex, const char *site, const pi0_norm_args *a) {
    run_op(ex, site, PI0_OP_RMSNORM, a, 8.0 * (double)(a->m * a->d));
}
void pi0_op_ew(pi0_exec *ex, const char *site, const pi0_ew_args *a) { run_op(ex, site, PI0_OP_EW, a, 8.0 * (double)a->n); }
void pi0_op_mod(pi0_exec *ex, const char *site, const pi0_mod_args *a) { run_op(ex, site, PI0_OP_MOD, a, 8.0 * (double)(a->m * a->d)); }
void pi0_op_rope(pi0_exec *ex, const char *site, const pi0_rope_args *a) {
    run_op(ex, site, PI0_OP_ROPE, a, 8.0 * (double)a->m * a->n_heads * a->hd);
}
void pi0_op_embed(pi0_exec *ex, const char *site, const pi0_embed_args *a) {
    run_op(ex, site, PI0_OP_EMBED, a, 8.0 * (double)(a->m * a->w->cols));
}
void pi0_op_patches(pi0_exec *ex, const char *site, const pi0_patches_args *a) {
    run_op(ex, site, PI0_OP_PATCHES, a, 8.0 * (double)a->c * a->s * a->s);
}
