/* dispatch.h - the only way model code runs an op.
 *
 * pi0_op_<op>(ex, site, args) (one per row of ops.h's PI0_OP_LIST: pi0_op_matmul, pi0_op_attention,
 * pi0_op_layernorm, pi0_op_rmsnorm, pi0_op_ew, pi0_op_mod, pi0_op_rope, pi0_op_embed, pi0_op_patches)
 * runs the op on the state's backend (ex->be) when it implements the op and supports the shape,
 * otherwise on the reference backend, and records per (site, op): which backend ran it,
 * the fallback reason, calls and nanoseconds. In strict mode a fallback sets ex->status to
 * PI0_ERR_UNSUPPORTED (naming site, op and reason) and the op is not run. Once ex->status is not OK
 * (strict fallback, or the abort callback said stop), every later op is skipped; model code checks
 * ex->status at stage boundaries. A site is a static string such as "vision.mlp.fc1"; the stage it
 * belongs to is not read from the name but from ex->stage, set by the model where it enters a stage
 * (pi0_exec_stage), and recorded with the site's statistics. */
#ifndef PI0_DISPATCH_H
#define PI0_DISPATCH_H

#include "ops/ops.h"
#include "rt/threadpool.h"

#define PI0_MAX_SITES 128

typedef struct {
    const char *site;
    pi0_op op;
    pi0_stage stage;     /* the stage the site ran in (pi0.h) */
    const char *backend; /* the backend's name: "fast" or "ref" */
    char reason[96];     /* why it ran on ref ("" when fast; "forced ref" in ref mode) */
    int64_t calls;
    int64_t ns;
    double flops;        /* matmul/geglu/attention multiply-adds x2 */
} pi0_site_stats;

typedef struct pi0_exec {
    const pi0_backend *be;   /* the backend ops run on (pi0_backend_get); NULL or ref: everything on
                              * ref ("forced ref") */
    pi0_pool *pool;
    int strict;
    pi0_status status;
    int (*abort_cb)(void *);
    void *abort_user;
    double serial_work;  /* ops with less work (~flops) than this run on the calling thread alone */
    pi0_stage stage;     /* the stage now running, and its denoising step (-1 outside a step): */
    int step;            /* set by pi0_exec_stage, read by the statistics and the taps */
    int n_sites;
    pi0_site_stats sites[PI0_MAX_SITES];
    /* Debug hook (bench/int8_vision_acc.c: activation statistics per matmul site): when set, called
     * on the calling thread before each op runs, with its site and arguments; NULL otherwise. */
    void (*observe)(const char *site, pi0_op op, const void *args, void *user);
    void *observe_user;
} pi0_exec;

void pi0_exec_reset_stats(pi0_exec *ex);

/* The model enters a stage (and, in the denoising loop, a step): ops and taps from here on belong
 * to it. */
static inline void pi0_exec_stage(pi0_exec *ex, pi0_stage stage, int step) {
    ex->stage = stage;
    ex->step = step;
}

#define PI0_OP_DECL_(E, m, s, T) void pi0_op_##m(pi0_exec *ex, const char *site, const T *a);
PI0_OP_LIST(PI0_OP_DECL_)
#undef PI0_OP_DECL_

#endif
