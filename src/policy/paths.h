/* paths.h - where the policy finds its tokenizer and norm stats when the caller gives no path.
 *
 * Tokenizer (first existing regular file wins; symlinks are followed):
 *   1. the checkpoint directory: tokenizer.model, tokenizer/tokenizer.model (newer LeRobot saves),
 *      paligemma_tokenizer.model, assets/paligemma_tokenizer.model;
 *   2. the Hugging Face cache, where LeRobot's google/paligemma-3b-pt-224 lands: the hub directory is
 *      $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
 *      $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface_hub's order); in it
 *      models--google--paligemma-3b-pt-224/snapshots/<rev>/tokenizer.model with <rev> read from
 *      refs/main, else any snapshot holding the file (names in sorted order);
 *   3. the openpi cache: $OPENPI_DATA_HOME, else ~/.cache/openpi, then big_vision/paligemma_tokenizer.model.
 *   When nothing is found, PI0_ERR_IO lists every path tried and how to obtain the file.
 *
 * Norm stats: <ckpt>/norm_stats.json, else every assets/.../norm_stats.json at any depth (openpi's
 * asset_id is often two levels, assets/physical-intelligence/libero/). One candidate is used; several
 * is an error naming them (choose with asset_id). With asset_id, exactly <ckpt>/assets/<asset_id>/
 * norm_stats.json is used and its absence is an error listing the candidates that exist.
 */
#ifndef PI0_POLICY_PATHS_H
#define PI0_POLICY_PATHS_H

#include "pi0.h"

/* *out: malloc'd path (caller frees). ckpt_dir may be NULL (only the caches are searched). */
pi0_status pi0_find_tokenizer(const char *ckpt_dir, char **out);
/* *out is NULL with PI0_OK when nothing is found and `required` is 0. asset_id may be NULL. */
pi0_status pi0_find_norm_stats(const char *ckpt_dir, const char *asset_id, int required, char **out);

#endif
