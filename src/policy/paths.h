/* paths.h - where the policy finds its tokenizer and norm stats when the caller gives no path.
 *
 * Search order (first existing regular file wins):
 *   tokenizer:  <ckpt>/tokenizer.model, <ckpt>/paligemma_tokenizer.model,
 *               <ckpt>/assets/paligemma_tokenizer.model
 *   norm stats: <ckpt>/norm_stats.json, then <ckpt>/assets/<asset_id>/norm_stats.json; when more
 *               than one asset directory has one, the choice is ambiguous and that is an error
 *               listing them (set pi0_policy_params.norm_stats_path).
 * When nothing is found, PI0_ERR_IO names every path tried.
 */
#ifndef PI0_POLICY_PATHS_H
#define PI0_POLICY_PATHS_H

#include "pi0.h"

/* *out: malloc'd path (caller frees). */
pi0_status pi0_find_tokenizer(const char *ckpt_dir, char **out);
/* *out is NULL with PI0_OK when nothing is found and `required` is 0. */
pi0_status pi0_find_norm_stats(const char *ckpt_dir, int required, char **out);

#endif
