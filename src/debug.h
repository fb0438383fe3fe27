/* debug.h - the small internal hook surface that tools (through src/tools_api.h), tests and bench/
 * may use beyond pi0.h: the expected-tensor table (gen-random), per-op statistics of a state's last
 * run with each site's stage (audit, bench), and tap copies compared by PCC (debug_compare.h: check,
 * the model tests). Not part of the public API; may change without notice. */
#ifndef PI0_DEBUG_H
#define PI0_DEBUG_H

#include "debug_compare.h"
#include "ops/dispatch.h"
#include "pi0.h"

/* Every tensor a checkpoint with this config must hold, in load order. */
pi0_status pi0_weights_expected(const pi0_config *cfg, void (*fn)(const char *name, int nd, const int64_t *shape, void *user),
                                void *user);
/* Parameters of the bound matrices by the kind a load asking for `kind` (pi0_weight_kind, and
 * pi0_params.int8_vision) packs them into: out[PI0_WEIGHTS_BF16], out[PI0_WEIGHTS_F32],
 * out[PI0_WEIGHTS_INT8]; the token embedding (read as stored) is not counted. What --weights int8
 * quantizes and keeps (info, audit, bench). */
void pi0_weight_kind_counts(const pi0_ctx *ctx, int kind, int int8_vision, int64_t out[3]);
/* π0 defaults of pi0_config (full size); the tiny test configuration. */
void pi0_config_full(pi0_config *c, int variant);
void pi0_config_tiny(pi0_config *c, int variant);
/* Write cfg as config.json (the field names of the test data's config). */
pi0_status pi0_config_save(const pi0_config *c, const char *path);

/* Per-op statistics recorded by the state's dispatcher since the last reset. */
pi0_exec *pi0_state_exec(pi0_state *st);

/* "vision", "prefix", "denoise" (the component names of audit and bench); "?" if out of range. */
const char *pi0_stage_name(pi0_stage s);

#endif
