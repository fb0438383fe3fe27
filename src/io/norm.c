/* norm.c - norm_stats.json parsing (cJSON) and openpi's Normalize / Unnormalize maths in double.
 * Contract in norm.h. Not here: deciding which mode a model uses (policy) or padding to 32 dims. */
#include "io/norm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define NORM_MAX_FILE (64 << 20)   /* a real file is a few KB */
#define NORM_MAX_DIMS 4096
/* same length as the tokens they replace once quoted and padded: NaN, Infinity, -Infinity */
#define NAN_MARK "N"
#define PINF_MARK "+Inf"
#define NINF_MARK "-Inf"

static void stat_free(pi0_norm_stat *s) {
    free(s->mean);
    free(s->std);
    free(s->q01);
    free(s->q99);
    memset(s, 0, sizeof *s);
}

void pi0_norm_free(pi0_norm_stats *ns) {
    if (!ns) return;
    stat_free(&ns->state);
    stat_free(&ns->actions);
    free(ns->path);
    memset(ns, 0, sizeof *ns);
}

/* Read field `key` of object `o` (named `where` in messages) as a number array into *out.
 * *out stays NULL when the field is absent or null and `optional`. *n is the expected length
 * (-1: set it). */
static pi0_status read_array(const cJSON *o, const char *key, const char *file, const char *where, int optional,
                             double **out, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!a || cJSON_IsNull(a)) {
        if (optional) return PI0_OK;
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s.%s' is %s, expected a list of numbers", file, where, key,
                       a ? "null" : "missing");
    }
    if (!cJSON_IsArray(a))
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s.%s' is not a list", file, where, key);
    int len = cJSON_GetArraySize(a);
    if (len <= 0 || len > NORM_MAX_DIMS)
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s.%s' has %d entries, expected 1..%d", file, where, key, len,
                       NORM_MAX_DIMS);
    if (*n >= 0 && len != *n)
        return pi0_err(PI0_ERR_FORMAT, "%s: field '%s.%s' has %d entries, but '%s.mean' has %d", file, where, key, len,
                       where, *n);
    double *v = malloc(sizeof(double) * (size_t)len);
    if (!v) return pi0_err(PI0_ERR_NOMEM, "%s: '%s.%s'", file, where, key);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (cJSON_IsNumber(e)) {
            v[i++] = e->valuedouble;
        } else if (cJSON_IsString(e) && !strcmp(e->valuestring, NAN_MARK)) {   /* NaN in the file */
            v[i++] = NAN;
        } else if (cJSON_IsString(e) && (!strcmp(e->valuestring, PINF_MARK) || !strcmp(e->valuestring, NINF_MARK))) {
            v[i++] = e->valuestring[0] == '+' ? INFINITY : -INFINITY;
        } else {
            free(v);
            return pi0_err(PI0_ERR_FORMAT, "%s: field '%s.%s[%d]' is not a number", file, where, key, i);
        }
        if (!strcmp(key, "std") && v[i - 1] < 0) {
            double bad = v[i - 1];
            free(v);
            return pi0_err(PI0_ERR_FORMAT, "%s: field '%s.std[%d]' is negative (%g); a standard deviation cannot be",
                           file, where, i - 1, bad);
        }
    }
    *n = len;
    *out = v;
    return PI0_OK;
}

static pi0_status read_stat(const cJSON *root, const char *name, const char *file, pi0_norm_stat *s) {
    char where[64];
    snprintf(where, sizeof where, "norm_stats.%s", name);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, name);
    memset(s, 0, sizeof *s);
    if (!o || cJSON_IsNull(o)) return PI0_OK;   /* absent entry: n = 0, checked at use */
    if (!cJSON_IsObject(o)) return pi0_err(PI0_ERR_FORMAT, "%s: field '%s' is not an object", file, where);
    int n = -1;
    pi0_status st;
    if ((st = read_array(o, "mean", file, where, 0, &s->mean, &n)) ||
        (st = read_array(o, "std", file, where, 0, &s->std, &n)) ||
        (st = read_array(o, "q01", file, where, 1, &s->q01, &n)) ||
        (st = read_array(o, "q99", file, where, 1, &s->q99, &n))) {
        stat_free(s);
        return st;
    }
    if (!s->q01 != !s->q99) {
        stat_free(s);
        return pi0_err(PI0_ERR_FORMAT, "%s: '%s' has only one of q01/q99", file, where);
    }
    s->n = n;
    return PI0_OK;
}

/* Python's json.dump writes the non-standard tokens NaN, Infinity and -Infinity. Replace each one
 * found outside a string by a same-length JSON string marker, so cJSON parses the file and byte
 * offsets in messages stay those of the original. Returns a malloc'd copy (NULL on NOMEM). */
static char *mark_nonfinite(const char *json, size_t len) {
    char *c = malloc(len + 1);
    if (!c) return NULL;
    memcpy(c, json, len);
    c[len] = '\0';
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (in_str) {
            if (c[i] == '\\') i++;
            else if (c[i] == '"') in_str = 0;
            continue;
        }
        if (c[i] == '"') { in_str = 1; continue; }
        static const struct { const char *tok, *mark; } r[3] = {
            {"NaN", "\"" NAN_MARK "\""}, {"Infinity", "\"" PINF_MARK "\"   "}, {"-Infinity", "\"" NINF_MARK "\"    "}};
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(r[k].tok);
            if (len - i >= n && !memcmp(c + i, r[k].tok, n)) {
                memcpy(c + i, r[k].mark, n);
                i += n - 1;
                break;
            }
        }
    }
    return c;
}

pi0_status pi0_norm_parse(const char *json, size_t len, const char *name, pi0_norm_stats *out) {
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_norm_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "norm_stats.json";
    if (!json) return pi0_err(PI0_ERR_ARG, "%s: no data", name);
    const char *end = NULL;
    char *marked = mark_nonfinite(json, len);
    if (!marked) return pi0_err(PI0_ERR_NOMEM, "%s", name);
    cJSON *root = cJSON_ParseWithLengthOpts(marked, len, &end, 0);
    if (!root) {
        size_t off = end && end >= marked ? (size_t)(end - marked) : 0;
        free(marked);
        return pi0_err(PI0_ERR_FORMAT, "%s: invalid JSON near byte %zu", name, off);
    }
    free(marked);
    pi0_status st = PI0_OK;
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(root, "norm_stats");
    if (!cJSON_IsObject(ns)) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: no 'norm_stats' object at the top level", name);
        goto done;
    }
    if ((st = read_stat(ns, "state", name, &out->state)) || (st = read_stat(ns, "actions", name, &out->actions)))
        goto done;
    if (out->state.n == 0 && out->actions.n == 0) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: 'norm_stats' has neither 'state' nor 'actions'", name);
        goto done;
    }
    out->path = strdup(name);
    if (!out->path) st = pi0_err(PI0_ERR_NOMEM, "%s", name);
done:
    cJSON_Delete(root);
    if (st) pi0_norm_free(out);
    return st;
}

pi0_status pi0_norm_load(const char *path, pi0_norm_stats *out) {
    if (!path || !out) return pi0_err(PI0_ERR_ARG, "pi0_norm_load: NULL argument");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return pi0_err(PI0_ERR_IO, "%s: cannot open", path);
    char *buf = NULL;
    pi0_status st;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) { st = pi0_err(PI0_ERR_IO, "%s: cannot seek", path); goto done; }
    if (size > NORM_MAX_FILE) { st = pi0_err(PI0_ERR_FORMAT, "%s: %ld bytes is too large", path, size); goto done; }
    buf = malloc((size_t)size + 1);
    if (!buf) { st = pi0_err(PI0_ERR_NOMEM, "%s", path); goto done; }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) { st = pi0_err(PI0_ERR_IO, "%s: short read", path); goto done; }
    buf[size] = '\0';
    st = pi0_norm_parse(buf, (size_t)size, path, out);
done:
    free(buf);
    fclose(f);
    return st;
}

static pi0_status check_stat(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what) {
    if (!s || s->n == 0) return pi0_err(PI0_ERR_ARG, "norm stats: no '%s' entry", what);
    if (mode == PI0_NORM_QUANTILE && (!s->q01 || !s->q99))
        return pi0_err(PI0_ERR_UNSUPPORTED, "norm stats '%s': q01/q99 are null; quantile normalization (π0.5) needs them",
                       what);
    return PI0_OK;
}

pi0_status pi0_norm_apply(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const double *x, double *y,
                          int d) {
    pi0_status st = check_stat(s, mode, what);
    if (st) return st;
    if (d > s->n) return pi0_err(PI0_ERR_ARG, "'%s' has %d dims but its norm stats have %d", what, d, s->n);
    if ((st = pi0_norm_check(s, mode, what, d))) return st;
    for (int i = 0; i < d; i++) {
        if (mode == PI0_NORM_ZSCORE) y[i] = (x[i] - s->mean[i]) / (s->std[i] + PI0_NORM_EPS);
        else y[i] = (x[i] - s->q01[i]) / (s->q99[i] - s->q01[i] + PI0_NORM_EPS) * 2.0 - 1.0;
    }
    return PI0_OK;
}

pi0_status pi0_norm_unapply(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const double *x,
                            double *y, int d) {
    pi0_status st = check_stat(s, mode, what);
    if (st) return st;
    if (mode == PI0_NORM_ZSCORE) {
        if (s->n > d) return pi0_err(PI0_ERR_ARG, "'%s' has %d dims but its norm stats have %d", what, d, s->n);
        for (int i = 0; i < d; i++) {
            double mean = i < s->n ? s->mean[i] : 0.0, std = i < s->n ? s->std[i] : 1.0;
            y[i] = x[i] * (std + PI0_NORM_EPS) + mean;
        }
    } else {
        int m = s->n < d ? s->n : d;
        if (s->n > d) return pi0_err(PI0_ERR_ARG, "'%s' has %d dims but its norm stats have %d", what, d, s->n);
        for (int i = 0; i < d; i++)
            y[i] = i < m ? (x[i] + 1.0) / 2.0 * (s->q99[i] - s->q01[i] + PI0_NORM_EPS) + s->q01[i] : x[i];
    }
    return PI0_OK;
}

pi0_status pi0_norm_unapply_f32(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const float *x,
                                double *y, int d) {
    pi0_status st = check_stat(s, mode, what);
    if (st) return st;
    if (s->n > d) return pi0_err(PI0_ERR_ARG, "'%s' has %d dims but its norm stats have %d", what, d, s->n);
    for (int i = 0; i < d; i++) {
        if (mode == PI0_NORM_ZSCORE) {
            double mean = i < s->n ? s->mean[i] : 0.0, std = i < s->n ? s->std[i] : 1.0;
            y[i] = (double)x[i] * (std + PI0_NORM_EPS) + mean;
        } else if (i < s->n) {
            float t = (x[i] + 1.0f) / 2.0f;   /* float32, as numpy computes it */
            y[i] = (double)t * (s->q99[i] - s->q01[i] + PI0_NORM_EPS) + s->q01[i];
        } else {
            y[i] = x[i];
        }
    }
    return PI0_OK;
}

pi0_status pi0_norm_check(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, int d) {
    pi0_status st = check_stat(s, mode, what);
    if (st) return st;
    const double *a = mode == PI0_NORM_ZSCORE ? s->mean : s->q01, *b = mode == PI0_NORM_ZSCORE ? s->std : s->q99;
    const char *an = mode == PI0_NORM_ZSCORE ? "mean" : "q01", *bn = mode == PI0_NORM_ZSCORE ? "std" : "q99";
    for (int i = 0; i < d && i < s->n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return pi0_err(PI0_ERR_FORMAT, "field 'norm_stats.%s.%s[%d]' is %s; it would turn that dim into NaN", what,
                           isfinite(a[i]) ? bn : an, i, isnan(isfinite(a[i]) ? b[i] : a[i]) ? "NaN" : "infinite");
    }
    return PI0_OK;
}

void pi0_norm_warn_constant(const pi0_norm_stat *s, pi0_norm_mode mode, const char *what, const char *path) {
    if (!s || s->n == 0 || (mode == PI0_NORM_QUANTILE && (!s->q01 || !s->q99))) return;
    int first = -1, n = 0;
    for (int i = 0; i < s->n; i++)
        if (mode == PI0_NORM_ZSCORE ? s->std[i] == 0.0 : s->q99[i] == s->q01[i]) {
            if (first < 0) first = i;
            n++;
        }
    if (n)
        pi0_log(PI0_LOG_WARN, "%s: 'norm_stats.%s' has %d constant dim(s) (first: %d, %s); as openpi does, it is divided by "
                              "%g there", path ? path : "norm stats", what, n, first,
                mode == PI0_NORM_ZSCORE ? "std 0" : "q99 == q01", PI0_NORM_EPS);
}
