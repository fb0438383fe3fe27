/* paths.c - locating the tokenizer and norm_stats.json next to a checkpoint (contract in paths.h). */
#include "policy/paths.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

pi0_status pi0_find_tokenizer(const char *dir, char **out) {
    static const char *names[] = {"tokenizer.model", "paligemma_tokenizer.model", "assets/paligemma_tokenizer.model"};
    *out = NULL;
    if (!dir) return pi0_err(PI0_ERR_ARG, "tokenizer: no tokenizer_path and no checkpoint directory to search");
    char tried[1024] = "";
    for (int i = 0; i < 3; i++) {
        char *p = join(dir, names[i]);
        if (!p) return pi0_err(PI0_ERR_NOMEM, "tokenizer path");
        if (is_file(p)) { *out = p; return PI0_OK; }
        size_t u = strlen(tried);
        snprintf(tried + u, sizeof tried - u, "%s%s", u ? ", " : "", p);
        free(p);
    }
    return pi0_err(PI0_ERR_IO, "tokenizer not found; tried %s (set tokenizer_path)", tried);
}

pi0_status pi0_find_norm_stats(const char *dir, int required, char **out) {
    *out = NULL;
    if (!dir) {
        if (!required) return PI0_OK;
        return pi0_err(PI0_ERR_ARG, "norm stats: no norm_stats_path and no checkpoint directory to search");
    }
    char *p = join(dir, "norm_stats.json");
    if (!p) return pi0_err(PI0_ERR_NOMEM, "norm stats path");
    if (is_file(p)) { *out = p; return PI0_OK; }
    free(p);
    char *assets = join(dir, "assets");
    if (!assets) return pi0_err(PI0_ERR_NOMEM, "norm stats path");
    char found[1024] = "";
    int n_found = 0;
    DIR *d = opendir(assets);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/norm_stats.json", e->d_name);
            char *q = join(assets, sub);
            if (!q) continue;
            if (is_file(q)) {
                size_t u = strlen(found);
                snprintf(found + u, sizeof found - u, "%s%s", u ? ", " : "", q);
                if (n_found++ == 0) *out = q;
                else free(q);
            } else {
                free(q);
            }
        }
        closedir(d);
    }
    pi0_status st = PI0_OK;
    if (n_found > 1) {
        free(*out);
        *out = NULL;
        st = pi0_err(PI0_ERR_ARG, "norm stats: several candidates (%s); set norm_stats_path", found);
    } else if (n_found == 0 && required) {
        st = pi0_err(PI0_ERR_IO, "norm stats not found; tried %s/norm_stats.json and %s/*/norm_stats.json "
                                 "(set norm_stats_path, or require_norm_stats = 0 for identity)", dir, assets);
    }
    free(assets);
    return st;
}
