/* dispatch.c - choose fast or ref for each op call, run it on the pool, count and time it. */
#include "ops/dispatch.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "ops/ref/ref.h"

const char *pi0_op_name(pi0_op op) {
#define NAME_(E, m, s, T) s,
    static const char *names[PI0_OP_COUNT] = {PI0_OP_LIST(NAME_)};
#undef NAME_
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
#define RUN_(E, m, s, T) case PI0_OP_##E: j->be->m(j->args, ith, nth); break;
    PI0_OP_LIST(RUN_)
#undef RUN_
    case PI0_OP_COUNT: break;
    }
}

static int has_member(const pi0_backend *be, pi0_op op) {
    switch (op) {
#define HAS_(E, m, s, T) case PI0_OP_##E: return be->m != NULL;
    PI0_OP_LIST(HAS_)
#undef HAS_
    case PI0_OP_COUNT: break;
    }
    return 0;
}

static pi0_site_stats *site_stats(pi0_exec *ex, const char *site, pi0_op op) {
    for (int i = 0; i < ex->n_sites; i++)
        if (ex->sites[i].site == site && ex->sites[i].op == op && ex->sites[i].stage == ex->stage) return &ex->sites[i];
    if (ex->n_sites == PI0_MAX_SITES) return NULL;
    pi0_site_stats *s = &ex->sites[ex->n_sites++];
    memset(s, 0, sizeof *s);
    s->site = site;
    s->op = op;
    s->stage = ex->stage;
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
    const pi0_backend *want = ex->be && ex->be != &pi0_backend_ref ? ex->be : NULL;
    if (want) {
        if (!has_member(want, op)) snprintf(why, sizeof why, "not implemented");
        else if (!want->supports || want->supports(op, args, why, sizeof why)) be = want;
    }
    if (be != want && want && ex->strict) {
        ex->status = pi0_err(PI0_ERR_UNSUPPORTED, "strict mode: op %s at site %s would fall back to ref: %s",
                             pi0_op_name(op), site, why);
        return;
    }
    if (ex->observe) ex->observe(site, op, args, ex->observe_user);
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
        if (op == PI0_OP_MATMUL || op == PI0_OP_GEGLU || op == PI0_OP_ATTENTION) st->flops += work;
    }
}

/* Work of each op (the serial_work threshold, and flops for matmul/geglu/attention): multiply-adds
 * x2 for those three (geglu: two matmuls), roughly 8 operations per element touched for the others. */
static double work_matmul(const pi0_matmul_args *a) { return 2.0 * (double)a->m * (double)a->w->rows * (double)a->w->cols; }
static double work_geglu(const pi0_geglu_args *a) { return 4.0 * (double)a->m * (double)a->gate->rows * (double)a->gate->cols; }
static double work_attention(const pi0_attention_args *a) {
    return 4.0 * (double)a->nq * (double)a->nk * a->n_heads * a->hd;
}
static double work_layernorm(const pi0_norm_args *a) { return 8.0 * (double)(a->m * a->d); }
static double work_rmsnorm(const pi0_norm_args *a) { return 8.0 * (double)(a->m * a->d); }
static double work_ew(const pi0_ew_args *a) { return 8.0 * (double)a->n; }
static double work_mod(const pi0_mod_args *a) { return 8.0 * (double)(a->m * a->d); }
static double work_rope(const pi0_rope_args *a) { return 8.0 * (double)a->m * a->n_heads * a->hd; }
static double work_embed(const pi0_embed_args *a) { return 8.0 * (double)(a->m * a->w->cols); }
static double work_patches(const pi0_patches_args *a) { return 8.0 * (double)a->c * a->s * a->s; }

#define WRAP_(E, m, s, T) \
    void pi0_op_##m(pi0_exec *ex, const char *site, const T *a) { run_op(ex, site, PI0_OP_##E, a, work_##m(a)); }
PI0_OP_LIST(WRAP_)
#undef WRAP_
