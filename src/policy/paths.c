/* paths.c - locating the tokenizer and norm_stats.json for a checkpoint (contract and order in paths.h). */
#include "policy/paths.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

#define PALIGEMMA_REPO "models--google--paligemma-3b-pt-224"
#define ASSET_DEPTH 6 /* openpi asset ids are one or two levels; deeper trees are not assets */

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* malloc'd printf; NULL when out of memory. */
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, f);
    vsnprintf(p, (size_t)n + 1, f, ap);
    va_end(ap);
    return p;
}

/* A growing ", "-separated list of paths for error messages. */
typedef struct {
    char *s;
    size_t len, cap;
    int n, oom;
} path_list;

static void list_add(path_list *l, const char *p) {
    size_t add = strlen(p) + 2;
    if (l->len + add + 1 > l->cap) {
        size_t cap = (l->cap ? l->cap * 2 : 256) + add;
        char *s = realloc(l->s, cap);
        if (!s) { l->oom = 1; return; }
        l->s = s;
        l->cap = cap;
    }
    l->len += (size_t)sprintf(l->s + l->len, "%s%s", l->n ? ", " : "", p);
    l->n++;
}

static const char *list_str(const path_list *l) { return l->s ? l->s : ""; }

/* Try one candidate: on success *out takes it, otherwise it is added to `tried`. */
static int try_path(char *p, path_list *tried, char **out) {
    if (!p) { tried->oom = 1; return 0; }
    if (is_file(p)) { *out = p; return 1; }
    list_add(tried, p);
    free(p);
    return 0;
}

/* $VAR with a leading "~/" expanded from $HOME (as Python's expanduser does); NULL if unset/empty. */
static char *env_path(const char *var) {
    const char *v = getenv(var);
    if (!v || !*v) return NULL;
    const char *home = getenv("HOME");
    if (v[0] == '~' && (v[1] == '/' || v[1] == '\0') && home) return fmt("%s%s", home, v + 1);
    return fmt("%s", v);
}

/* huggingface_hub's hub directory (constants.py): HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
 * XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. NULL when no HOME either. */
static char *hf_hub_dir(void) {
    char *p, *home;
    if ((p = env_path("HF_HUB_CACHE")) || (p = env_path("HUGGINGFACE_HUB_CACHE"))) return p;
    if ((home = env_path("HF_HOME"))) { p = fmt("%s/hub", home); free(home); return p; }
    if ((home = env_path("XDG_CACHE_HOME"))) { p = fmt("%s/huggingface/hub", home); free(home); return p; }
    if ((home = env_path("HOME"))) { p = fmt("%s/.cache/huggingface/hub", home); free(home); return p; }
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The revision refs/main names (one line, a commit hash), or NULL. */
static char *read_ref(const char *repo) {
    char *p = fmt("%s/refs/main", repo);
    FILE *f = p ? fopen(p, "rb") : NULL;
    free(p);
    if (!f) return NULL;
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0] || strchr(buf, '/') || !strcmp(buf, "..") || !strcmp(buf, ".")) return NULL;
    return fmt("%s", buf);
}

/* The Hugging Face cache: refs/main's snapshot first, then every snapshot in name order. */
static int find_in_hf_cache(path_list *tried, char **out) {
    char *hub = hf_hub_dir();
    if (!hub) { list_add(tried, "(Hugging Face cache: HF_HUB_CACHE, HF_HOME and HOME are unset)"); return 0; }
    char *repo = fmt("%s/" PALIGEMMA_REPO, hub);
    free(hub);
    if (!repo) { tried->oom = 1; return 0; }
    int found = 0;
    char *rev = read_ref(repo);
    if (rev) found = try_path(fmt("%s/snapshots/%s/tokenizer.model", repo, rev), tried, out);
    free(rev);
    char *snaps = found ? NULL : fmt("%s/snapshots", repo);
    DIR *d = snaps ? opendir(snaps) : NULL;
    if (d) {
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            if (n == cap) {
                char **g = realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *g);
                if (!g) { tried->oom = 1; break; }
                names = g;
            }
            if (!(names[n] = fmt("%s", e->d_name))) { tried->oom = 1; break; }
            n++;
        }
        closedir(d);
        if (n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            char *p = fmt("%s/%s/tokenizer.model", snaps, names[i]);
            if (!found && p && is_file(p)) { *out = p; found = 1; }
            else free(p);
            free(names[i]);
        }
        free(names);
        if (!found) {
            char *p = fmt("%s/*/tokenizer.model", snaps);
            if (p) list_add(tried, p);
            free(p);
        }
    } else if (!found) {
        /* No cache for the repo: show where the file would be. */
        char *p = fmt("%s/snapshots/<refs/main>/tokenizer.model", repo);
        if (p) list_add(tried, p);
        free(p);
    }
    free(snaps);
    free(repo);
    return found;
}

/* openpi's download cache (shared/download.py): gs://big_vision/paligemma_tokenizer.model lands at
 * <cache>/big_vision/paligemma_tokenizer.model. */
static int find_in_openpi_cache(path_list *tried, char **out) {
    char *cache = env_path("OPENPI_DATA_HOME"), *home;
    if (!cache && (home = env_path("HOME"))) { cache = fmt("%s/.cache/openpi", home); free(home); }
    if (!cache) { list_add(tried, "(openpi cache: OPENPI_DATA_HOME and HOME are unset)"); return 0; }
    int found = try_path(fmt("%s/big_vision/paligemma_tokenizer.model", cache), tried, out);
    free(cache);
    return found;
}

pi0_status pi0_find_tokenizer(const char *dir, char **out) {
    static const char *names[] = {"tokenizer.model", "tokenizer/tokenizer.model", "paligemma_tokenizer.model",
                                  "assets/paligemma_tokenizer.model"};
    *out = NULL;
    path_list tried = {0};
    int found = 0;
    for (size_t i = 0; dir && !found && i < sizeof names / sizeof *names; i++) {
        char *p = fmt("%s/%s", dir, names[i]);
        if (!p) tried.oom = 1;
        else if (is_file(p)) { *out = p; found = 1; }
        else free(p);
    }
    if (dir && !found) { /* one compact entry: the error message has a bounded length */
        char *p = fmt("%s/{%s, %s, %s, %s}", dir, names[0], names[1], names[2], names[3]);
        if (p) list_add(&tried, p);
        free(p);
    }
    if (!found) found = find_in_hf_cache(&tried, out);
    if (!found) found = find_in_openpi_cache(&tried, out);
    pi0_status st = PI0_OK;
    if (tried.oom) {
        free(*out);
        *out = NULL;
        st = pi0_err(PI0_ERR_NOMEM, "tokenizer search: out of memory");
    } else if (!found) {
        st = pi0_err(PI0_ERR_IO,
                     "tokenizer not found; tried %s. Get PaliGemma's tokenizer.model from the gated Hugging Face "
                     "repo google/paligemma-3b-pt-224 (accept its license, then `huggingface-cli download "
                     "google/paligemma-3b-pt-224 tokenizer.model`), or let openpi fetch it (it downloads "
                     "big_vision/paligemma_tokenizer.model from its public bucket into its cache), or pass --tokenizer FILE",
                     list_str(&tried));
    }
    free(tried.s);
    return st;
}

/* Every <assets>/<rel>/norm_stats.json below `abs` (= assets/<rel>), depth-limited, into `found`
 * as paths relative to the assets directory (the asset ids). */
static void walk_assets(const char *abs, const char *rel, int depth, char ***found, size_t *n, size_t *cap, int *oom) {
    if (depth > ASSET_DEPTH) return;
    DIR *d = opendir(abs);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && !*oom) {
        if (e->d_name[0] == '.') continue;
        char *sub = fmt("%s/%s", abs, e->d_name);
        char *srel = rel[0] ? fmt("%s/%s", rel, e->d_name) : fmt("%s", e->d_name);
        if (!sub || !srel) { *oom = 1; free(sub); free(srel); break; }
        if (is_dir(sub)) {
            char *ns = fmt("%s/norm_stats.json", sub);
            if (!ns) *oom = 1;
            else if (is_file(ns)) {
                if (*n == *cap) {
                    char **g = realloc(*found, (*cap = *cap ? 2 * *cap : 8) * sizeof *g);
                    if (!g) *oom = 1;
                    else *found = g;
                }
                if (!*oom) { (*found)[(*n)++] = srel; srel = NULL; }
            }
            free(ns);
            if (!*oom) walk_assets(sub, srel ? srel : (*found)[*n - 1], depth + 1, found, n, cap, oom);
        }
        free(sub);
        free(srel);
    }
    closedir(d);
}

pi0_status pi0_find_norm_stats(const char *dir, const char *asset_id, int required, char **out) {
    *out = NULL;
    if (!dir) {
        if (!required && !asset_id) return PI0_OK;
        return pi0_err(PI0_ERR_ARG, "norm stats: no norm_stats_path and no checkpoint directory to search");
    }
    if (asset_id && (!asset_id[0] || asset_id[0] == '/' || strstr(asset_id, "..")))
        return pi0_err(PI0_ERR_ARG, "asset id '%s': expected a relative path below %s/assets (e.g. "
                                    "physical-intelligence/libero)", asset_id, dir);
    if (!asset_id) {
        char *p = fmt("%s/norm_stats.json", dir);
        if (!p) return pi0_err(PI0_ERR_NOMEM, "norm stats path");
        if (is_file(p)) { *out = p; return PI0_OK; }
        free(p);
    }
    char *assets = fmt("%s/assets", dir);
    if (!assets) return pi0_err(PI0_ERR_NOMEM, "norm stats path");
    char **ids = NULL;
    size_t n = 0, cap = 0;
    int oom = 0;
    walk_assets(assets, "", 1, &ids, &n, &cap, &oom);
    if (n) qsort(ids, n, sizeof *ids, cmp_str);
    path_list names = {0};
    for (size_t i = 0; i < n; i++) list_add(&names, ids[i]);
    pi0_status st = PI0_OK;
    if (oom || names.oom) {
        st = pi0_err(PI0_ERR_NOMEM, "norm stats search: out of memory");
    } else if (asset_id) {
        char *p = fmt("%s/%s/norm_stats.json", assets, asset_id);
        if (!p) st = pi0_err(PI0_ERR_NOMEM, "norm stats path");
        else if (is_file(p)) *out = p;
        else {
            st = pi0_err(PI0_ERR_IO, "asset id '%s': %s not found; asset ids with a norm_stats.json under %s: %s", asset_id,
                         p, assets, n ? list_str(&names) : "none");
            free(p);
        }
    } else if (n > 1) {
        st = pi0_err(PI0_ERR_ARG, "norm stats: %zu candidates under %s (%s); choose one with --asset-id ID (asset_id) "
                                  "or give the file with --norm-stats (norm_stats_path)", n, assets, list_str(&names));
    } else if (n == 1) {
        if (!(*out = fmt("%s/%s/norm_stats.json", assets, ids[0]))) st = pi0_err(PI0_ERR_NOMEM, "norm stats path");
    } else if (required) {
        st = pi0_err(PI0_ERR_IO, "norm stats not found; tried %s/norm_stats.json and %s/**/norm_stats.json "
                                 "(set norm_stats_path, or require_norm_stats = 0 for identity)", dir, assets);
    }
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(names.s);
    free(assets);
    return st;
}
