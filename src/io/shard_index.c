/* shard_index.c - model.safetensors.index.json: the shard files named by its "weight_map".
 *
 * The JSON is untrusted: invalid JSON is reported with the byte where parsing stopped, every
 * weight_map value must be a plain file name in the checkpoint directory (no '/', not "." or "..",
 * at most 255 bytes) and there are at most PI0_MAX_SHARDS distinct shards. Names are copied out,
 * so nothing points into the parsed tree once it is freed (messages are formatted before that).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "io/shard_index.h"

void pi0_shard_list_free(pi0_shard_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

static int bad_name(const char *s) {
    size_t n = strlen(s);
    return n == 0 || n > 255 || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..");
}

pi0_status pi0_index_parse(const char *json, size_t len, const char *path, pi0_shard_list *out) {
    out->names = NULL;
    out->n = 0;
    pi0_status s = PI0_OK;
    const char *endp = NULL;
    cJSON *idx = cJSON_ParseWithLengthOpts(json, len, &endp, 0);
    if (!idx) {
        const char *ep = cJSON_GetErrorPtr();
        long off = (ep && ep >= json && ep <= json + len) ? (long)(ep - json) : 0;
        return pi0_err(PI0_ERR_FORMAT, "%s: not valid JSON (error near byte %ld)", path, off);
    }
    const cJSON *map = cJSON_IsObject(idx) ? cJSON_GetObjectItemCaseSensitive(idx, "weight_map") : NULL;
    if (!cJSON_IsObject(idx)) { s = pi0_err(PI0_ERR_FORMAT, "%s: not a JSON object", path); goto done; }
    if (!cJSON_IsObject(map)) { s = pi0_err(PI0_ERR_FORMAT, "%s: no 'weight_map' object", path); goto done; }
    out->names = calloc(PI0_MAX_SHARDS, sizeof *out->names);
    if (!out->names) { s = pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path); goto done; }
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring) {
            s = pi0_err(PI0_ERR_FORMAT, "%s: weight_map['%s'] is not a string", path, e->string ? e->string : "");
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < out->n && !seen; i++) seen = strcmp(out->names[i], e->valuestring) == 0;
        if (seen) continue;
        if (bad_name(e->valuestring)) {
            s = pi0_err(PI0_ERR_FORMAT, "%s: weight_map['%s']: shard '%.255s' is not a file name in the checkpoint directory",
                        path, e->string ? e->string : "", e->valuestring);
            goto done;
        }
        if (out->n == PI0_MAX_SHARDS) {
            s = pi0_err(PI0_ERR_UNSUPPORTED, "%s: more than %d shard files (at weight_map['%s'])", path, PI0_MAX_SHARDS,
                        e->string ? e->string : "");
            goto done;
        }
        if (!(out->names[out->n] = strdup(e->valuestring))) { s = pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path); goto done; }
        out->n++;
    }
    if (out->n == 0) s = pi0_err(PI0_ERR_FORMAT, "%s: 'weight_map' is empty", path);
done:
    cJSON_Delete(idx); /* after every message above was formatted: they quote strings of the tree */
    if (s) pi0_shard_list_free(out);
    return s;
}
