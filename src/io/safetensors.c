/* safetensors.c - open, validate and memory-map a .safetensors file; write one (see safetensors.h).
 *
 * Layout: u64 little-endian header length N, N bytes of JSON, then the data region. Offsets in the
 * header are relative to the data region (byte 8 + N). Nothing in the header is trusted: every
 * number is range-checked before it is used, and each error says which file, tensor or byte.
 */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "io/file.h"

/* Limits checked before the header is parsed (real π0: ~200 KB, ~800 tensors, ~10 000 JSON values).
 * cJSON spends ~100 bytes per value: without a cap, a 60 MB header of 1e6 empty tensors took 918 MB
 * of RSS to reject. 2^18 values is ~20 000 tensors. */
#define MAX_HEADER_BYTES ((uint64_t)16 << 20)
#define MAX_HEADER_VALUES ((uint64_t)1 << 18)

static const struct { const char *name; pi0_dtype t; size_t size; } dtypes[] = {
    {"F32", PI0_DT_F32, 4}, {"BF16", PI0_DT_BF16, 2}, {"F16", PI0_DT_F16, 2},
    {"I32", PI0_DT_I32, 4}, {"I64", PI0_DT_I64, 8},
};

const char *pi0_dtype_name(pi0_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].t == t) return dtypes[i].name;
    return "?";
}

size_t pi0_dtype_size(pi0_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].t == t) return dtypes[i].size;
    return 0;
}

static int dtype_from_name(const char *s, pi0_dtype *t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, s) == 0) { *t = dtypes[i].t; return 1; }
    return 0;
}

/* An upper bound of the number of JSON values in n bytes, counted without parsing: one more value
 * per ',', ':', '[' or '{' outside strings. */
static uint64_t count_json_values(const char *p, uint64_t n) {
    uint64_t k = 1;
    int in_str = 0;
    for (uint64_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ',' || c == ':' || c == '[' || c == '{') {
            k++;
        }
    }
    return k;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const pi0_st_tensor *)a)->name, ((const pi0_st_tensor *)b)->name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const pi0_st_tensor *x = *(pi0_st_tensor *const *)a, *y = *(pi0_st_tensor *const *)b;
    if (x->data != y->data) return (const char *)x->data < (const char *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Parse one header entry into t. data_base/data_size describe the data region. */
static pi0_status parse_entry(const char *path, const cJSON *e, const char *data_base, uint64_t data_size,
                              pi0_st_tensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': missing or non-string 'dtype'", path, name);
    if (!dtype_from_name(jd->valuestring, &t->dtype))
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s not supported (F32, BF16, F16, I32, I64)", path,
                       name, jd->valuestring);
    if (!cJSON_IsArray(js)) return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': missing or non-array 'shape'", path, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > PI0_ST_MAX_DIMS)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", path, name, nd, PI0_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        const cJSON *d = cJSON_GetArrayItem(js, i);
        /* range first: converting an out-of-range double to an integer is undefined behaviour */
        if (!cJSON_IsNumber(d) || !(d->valuedouble >= 0 && d->valuedouble <= 9.0e15) ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d->valuedouble;
        if (t->shape[i] != 0 && numel > UINT64_MAX / 16 / (uint64_t)t->shape[i])
            return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= (uint64_t)t->shape[i];
    }
    t->numel = (int64_t)numel;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end]", path, name);
    double b = cJSON_GetArrayItem(jo, 0)->valuedouble, en = cJSON_GetArrayItem(jo, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(jo, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(jo, 1)) || !(b >= 0) ||
        !(en >= b) || en > 1.8e19 || b != (double)(uint64_t)b || en != (double)(uint64_t)en)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': data_offsets [%.0f, %.0f] invalid", path, name, b, en);
    uint64_t begin = (uint64_t)b, end = (uint64_t)en;
    if (end > data_size)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu > data region size %llu", path, name,
                       (unsigned long long)end, (unsigned long long)data_size);
    uint64_t want = numel * pi0_dtype_size(t->dtype);
    if (end - begin != want)
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes, shape and dtype need %llu", path,
                       name, (unsigned long long)(end - begin), (unsigned long long)want);
    t->data = data_base + begin;
    t->nbytes = (size_t)want;
    t->name = strdup(name);
    return t->name ? PI0_OK : pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path);
}

pi0_status pi0_st_open(const char *path, pi0_st_file **out) {
    *out = NULL;
    pi0_status s = PI0_OK;
    cJSON *root = NULL;
    pi0_st_file *f = calloc(1, sizeof *f);
    if (!f) return pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path);
    f->path = strdup(path);
    int fd;
    uint64_t size;
    if ((s = pi0_file_open(path, "safetensors file", &fd, &size)) != PI0_OK) goto fail;
    if (size < 8) {
        close(fd);
        s = pi0_err(PI0_ERR_FORMAT, "%s: file is %llu bytes, too short for the 8-byte header length", path,
                    (unsigned long long)size);
        goto fail;
    }
    f->map_size = (size_t)size;
    f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) { f->map = NULL; s = pi0_err(PI0_ERR_IO, "%s: mmap failed: %s", path, strerror(errno)); goto fail; }

    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > f->map_size - 8) {
        s = pi0_err(PI0_ERR_FORMAT, "%s: header length %llu at byte 0 runs past the end of the file (%zu bytes)", path,
                    (unsigned long long)hlen, f->map_size);
        goto fail;
    }
    if (hlen > MAX_HEADER_BYTES) {
        s = pi0_err(PI0_ERR_UNSUPPORTED, "%s: header length %llu at byte 0 is over the %llu-byte limit", path,
                    (unsigned long long)hlen, (unsigned long long)MAX_HEADER_BYTES);
        goto fail;
    }
    const char *hdr = (const char *)p + 8, *end_parsed = NULL;
    uint64_t n_values = count_json_values(hdr, hlen);
    if (n_values > MAX_HEADER_VALUES) {
        s = pi0_err(PI0_ERR_UNSUPPORTED, "%s: header holds about %llu JSON values, over the limit of %llu (~20 000 tensors)",
                    path, (unsigned long long)n_values, (unsigned long long)MAX_HEADER_VALUES);
        goto fail;
    }
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end_parsed, 0);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        long off = (ep && ep >= hdr && ep <= hdr + hlen) ? (long)(ep - hdr) + 8 : 8;
        s = pi0_err(PI0_ERR_FORMAT, "%s: header is not valid JSON (error near byte %ld)", path, off);
        goto fail;
    }
    if (!cJSON_IsObject(root)) { s = pi0_err(PI0_ERR_FORMAT, "%s: header at byte 8 is not a JSON object", path); goto fail; }
    const char *data_base = hdr + hlen;
    uint64_t data_size = f->map_size - 8 - hlen;
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)(n > 0 ? n : 1), sizeof *f->tensors);
    if (!f->tensors) { s = pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path); goto fail; }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            f->metadata_json = cJSON_PrintUnformatted(e);
            continue;
        }
        s = parse_entry(path, e, data_base, data_size, &f->tensors[f->n_tensors]);
        if (s != PI0_OK) goto fail;
        f->n_tensors++;
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, f->tensors[i - 1].name) == 0) {
            s = pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, f->tensors[i].name);
            goto fail;
        }
    /* Overlap check: sort pointers by start offset; each tensor must end before the next starts. */
    if (f->n_tensors > 1) {
        pi0_st_tensor **by = malloc((size_t)f->n_tensors * sizeof *by);
        if (!by) { s = pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path); goto fail; }
        for (int i = 0; i < f->n_tensors; i++) by[i] = &f->tensors[i];
        qsort(by, (size_t)f->n_tensors, sizeof *by, cmp_by_offset);
        for (int i = 1; i < f->n_tensors; i++) {
            const char *prev_end = (const char *)by[i - 1]->data + by[i - 1]->nbytes;
            if (by[i]->nbytes > 0 && by[i - 1]->nbytes > 0 && (const char *)by[i]->data < prev_end) {
                s = pi0_err(PI0_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap at data offset %lld", path, by[i - 1]->name,
                            by[i]->name, (long long)((const char *)by[i]->data - data_base));
                free(by);
                goto fail;
            }
        }
        free(by);
    }
    cJSON_Delete(root);
    *out = f;
    return PI0_OK;
fail:
    cJSON_Delete(root);
    pi0_st_close(f);
    return s;
}

void pi0_st_close(pi0_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->map_size);
    free(f->metadata_json);
    free(f->path);
    free(f);
}

const pi0_st_tensor *pi0_st_find(const pi0_st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

static double element_as_double(const pi0_st_tensor *t, int64_t i) {
    const char *d = t->data;
    switch (t->dtype) {
    case PI0_DT_F32: { float v; memcpy(&v, d + 4 * i, 4); return v; }
    case PI0_DT_BF16: { uint16_t h; memcpy(&h, d + 2 * i, 2); return pi0_bf16_to_f32(h); }
    case PI0_DT_F16: { uint16_t h; memcpy(&h, d + 2 * i, 2); return pi0_f16_to_f32(h); }
    case PI0_DT_I32: { int32_t v; memcpy(&v, d + 4 * i, 4); return v; }
    case PI0_DT_I64: { int64_t v; memcpy(&v, d + 8 * i, 8); return (double)v; }
    }
    return 0;
}

static pi0_status read_common(const pi0_st_file *f, const char *name, const pi0_st_tensor **t) {
    *t = pi0_st_find(f, name);
    if (!*t) return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s' not found", f->path, name);
    return PI0_OK;
}

pi0_status pi0_st_read_f32(const pi0_st_file *f, const char *name, float **out, int64_t *numel) {
    const pi0_st_tensor *t;
    *out = NULL;
    if (read_common(f, name, &t)) return PI0_ERR_FORMAT;
    float *v = malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof *v);
    if (!v) return pi0_err(PI0_ERR_NOMEM, "%s: tensor '%s': out of memory", f->path, name);
    for (int64_t i = 0; i < t->numel; i++) v[i] = (float)element_as_double(t, i);
    *out = v;
    if (numel) *numel = t->numel;
    return PI0_OK;
}

pi0_status pi0_st_read_i32(const pi0_st_file *f, const char *name, int32_t **out, int64_t *numel) {
    const pi0_st_tensor *t;
    *out = NULL;
    if (read_common(f, name, &t)) return PI0_ERR_FORMAT;
    int32_t *v = malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof *v);
    if (!v) return pi0_err(PI0_ERR_NOMEM, "%s: tensor '%s': out of memory", f->path, name);
    for (int64_t i = 0; i < t->numel; i++) v[i] = (int32_t)element_as_double(t, i);
    *out = v;
    if (numel) *numel = t->numel;
    return PI0_OK;
}

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    pi0_dtype dtype;
    int ndim;
    int64_t shape[PI0_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} writer_entry;

struct pi0_st_writer {
    writer_entry *e;
    int n, cap;
};

pi0_st_writer *pi0_st_writer_new(void) { return calloc(1, sizeof(pi0_st_writer)); }

pi0_status pi0_st_writer_add(pi0_st_writer *w, const char *name, pi0_dtype dtype, int ndim, const int64_t *shape,
                             const void *data) {
    if (ndim < 0 || ndim > PI0_ST_MAX_DIMS) return pi0_err(PI0_ERR_ARG, "tensor '%s': %d dims", name, ndim);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        writer_entry *e = realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) return pi0_err(PI0_ERR_NOMEM, "out of memory");
        w->e = e;
        w->cap = cap;
    }
    writer_entry *x = &w->e[w->n];
    memset(x, 0, sizeof *x);
    x->name = strdup(name);
    if (!x->name) return pi0_err(PI0_ERR_NOMEM, "out of memory");
    x->dtype = dtype;
    x->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) { x->shape[i] = shape[i]; numel *= (size_t)shape[i]; }
    x->data = data;
    x->nbytes = numel * pi0_dtype_size(dtype);
    w->n++;
    return PI0_OK;
}

pi0_status pi0_st_writer_save(pi0_st_writer *w, const char *path) {
    return pi0_st_writer_save_stream(w, path, NULL, NULL);
}

pi0_status pi0_st_writer_save_stream(pi0_st_writer *w, const char *path, pi0_st_fill_fn fill, void *user) {
    pi0_status s = PI0_OK;
    void *buf = NULL;
    size_t buf_size = 0;
    cJSON *root = cJSON_CreateObject();
    char *hdr = NULL;
    FILE *fp = NULL;
    uint64_t off = 0;
    for (int i = 0; i < w->n && root; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, w->e[i].name);
        cJSON_AddStringToObject(t, "dtype", pi0_dtype_name(w->e[i].dtype));
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < w->e[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)w->e[i].shape[d]));
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        off += w->e[i].nbytes;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    }
    hdr = root ? cJSON_PrintUnformatted(root) : NULL;
    if (!hdr) { s = pi0_err(PI0_ERR_NOMEM, "%s: out of memory building the header", path); goto done; }
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7; /* 8-byte aligned data region */
    fp = fopen(path, "wb");
    if (!fp) { s = pi0_err(PI0_ERR_IO, "%s: cannot create: %s", path, strerror(errno)); goto done; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < w->n; i++) {
        const void *data = w->e[i].data;
        if (!data) {
            if (!fill) { s = pi0_err(PI0_ERR_ARG, "%s: tensor '%s' has no data", path, w->e[i].name); ok = 0; break; }
            if (w->e[i].nbytes > buf_size) {
                free(buf);
                buf_size = w->e[i].nbytes;
                buf = malloc(buf_size ? buf_size : 1);
                if (!buf) { s = pi0_err(PI0_ERR_NOMEM, "%s: out of memory", path); ok = 0; break; }
            }
            if ((s = fill(i, buf, w->e[i].nbytes, user)) != PI0_OK) { ok = 0; break; }
            data = buf;
        }
        ok = fwrite(data, 1, w->e[i].nbytes, fp) == w->e[i].nbytes;
        if (!ok) s = pi0_err(PI0_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    if (fclose(fp) != 0 && s == PI0_OK) s = pi0_err(PI0_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    fp = NULL;
done:
    free(buf);
    free(hdr);
    cJSON_Delete(root);
    return s;
}

void pi0_st_writer_free(pi0_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    free(w);
}
