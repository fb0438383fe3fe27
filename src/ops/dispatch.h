/* dispatch.h - the only way model code runs an op.
 *
 * pi0_op_<op>(ex, site, args) (one per row of ops.h's PI0_OP_LIST: pi0_op_matmul, pi0_op_attention,
 * pi0_op_layernorm, pi0_op_rmsnorm, pi0_op_ew, pi0_op_mod, pi0_op_rope, pi0_op_embed, pi0_op_patches)
 * runs the op on the state's backend (ex->be) when it implements the op and supports the shape,
 * otherwise on the reference backend, and records per (site, op): which backend ran it,
 * the fallback reason, calls and nanoseconds. In strict mode a fallback sets ex->status to
 * PI0_ERR_UNSUPPORTED (naming site, op and reason) and the op is not run. Once ex->status is not OK
 * (strict fallback, or the abort callback said stop), every later op is skipped; model code checks
 * ex->status at stage boundaries. A site is a static string such as "vision.mlp.fc1". */
#ifndef PI0_DISPATCH_H
#define PI0_DISPATCH_H

#include "ops/ops.h"
#include "rt/threadpool.h"

#define PI0_MAX_SITES 128

typedef struct {
    const char *site;
    pi0_op op;
    const char *backend; /* the backend's name: "fast" or "ref" */
    char reason[96];     /* why it ran on ref ("" when fast; "forced ref" in ref mode) */
    int64_t calls;
    int64_t ns;
    double flops;        /* matmul/attention multiply-adds x2 */
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
    int n_sites;
    pi0_site_stats sites[PI0_MAX_SITES];
} pi0_exec;

void pi0_exec_reset_stats(pi0_exec *ex);

#define PI0_OP_DECL_(E, m, s, T) void pi0_op_##m(pi0_exec *ex, const char *site, const T *a);
PI0_OP_LIST(PI0_OP_DECL_)
#undef PI0_OP_DECL_

#endif
