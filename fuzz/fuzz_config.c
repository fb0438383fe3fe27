/* fuzz_config.c - libFuzzer harness for config.json validation (pi0_config_parse) and the shard
 * index (pi0_index_parse) on the same bytes. A config that parses must satisfy every invariant the
 * model code relies on; a shard list that parses must hold only plain file names. Any violation
 * aborts, which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/shard_index.h"
#include "model/model.h"

static void require(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pi0_config c;
    int variant;
    if (pi0_config_parse((const char *)data, size, "fuzz-config.json", &c, &variant) == PI0_OK) {
        require(c.image_size >= 1 && c.patch_size >= 1 && c.image_size % c.patch_size == 0);
        require(c.n_channels == 3);
        require(c.action_dim >= 1 && c.action_horizon >= 1 && c.max_token_len >= 1 && c.n_steps >= 1);
        require(c.vision_width >= 1 && c.vision_heads >= 1 && c.vision_width % c.vision_heads == 0);
        require(c.n_heads >= 1 && c.n_kv_heads >= 1 && c.n_heads % c.n_kv_heads == 0 && c.head_dim % 2 == 0);
        require(c.vlm_depth == c.expert_depth && c.expert_width % 2 == 0);
        require(c.rms_eps > 0 && c.ln_eps > 0 && c.rope_base > 0);
        require(c.time_min_period > 0 && c.time_min_period <= c.time_max_period);
    }
    pi0_shard_list l;
    if (pi0_index_parse((const char *)data, size, "fuzz-index.json", &l) == PI0_OK) {
        require(l.n >= 1 && l.n <= PI0_MAX_SHARDS);
        for (int i = 0; i < l.n; i++) require(l.names[i][0] && !strchr(l.names[i], '/'));
        pi0_shard_list_free(&l);
    }
    return 0;
}
