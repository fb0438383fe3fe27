/* shard_index.h - model.safetensors.index.json: which safetensors files hold a sharded checkpoint. */
#ifndef PI0_IO_SHARD_INDEX_H
#define PI0_IO_SHARD_INDEX_H

#include <stddef.h>

#include "err.h"

/* The distinct shard file names of model.safetensors.index.json, first-seen order. */
#define PI0_MAX_SHARDS 512
typedef struct {
    char **names;  /* [n], malloc'd */
    int n;
} pi0_shard_list;
pi0_status pi0_index_parse(const char *json, size_t len, const char *path, pi0_shard_list *out);
void pi0_shard_list_free(pi0_shard_list *l);  /* NULL-safe */

#endif
