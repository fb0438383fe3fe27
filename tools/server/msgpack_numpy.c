/* msgpack_numpy.c - decode openpi observation requests (untrusted) and encode responses.
 * Contract in msgpack_numpy.h. The decoder is our own bounded cursor rather than msgpack-c's
 * unpacker: msgpack-c 4.0 allocates a container's declared size before it checks that the bytes
 * exist (5 bytes `dd 00 ff ff ff` make it mmap 512 MiB) and its C API has no limits. */
#include "msgpack_numpy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- cursor ------------------------------------------------------------------------------

enum { MK_NIL, MK_BOOL, MK_INT, MK_UINT, MK_FLOAT, MK_STR, MK_BIN, MK_ARRAY, MK_MAP, MK_EXT };

static const char *mk_name(int k) {
    static const char *names[] = {"nil", "bool", "int", "uint", "float", "str", "bin", "array", "map", "ext"};
    return names[k];
}

typedef struct {
    int kind;
    size_t at;          /* byte offset of the value's first byte */
    int b;              /* MK_BOOL */
    int64_t i;          /* MK_INT (negative) */
    uint64_t u;         /* MK_UINT */
    double f;           /* MK_FLOAT */
    const uint8_t *ptr; /* MK_STR / MK_BIN / MK_EXT payload */
    uint32_t len;       /* payload bytes, or entries of MK_ARRAY / MK_MAP */
} mval;

typedef struct {
    const uint8_t *p;
    size_t n, off;
    char *err;
    size_t err_cap;
} rd;

static int rd_fail(rd *r, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rd_fail(rd *r, size_t at, const char *fmt, ...) {
    if (r->err && r->err_cap) {
        int k = snprintf(r->err, r->err_cap, "request byte %zu: ", at);
        if (k < 0 || (size_t)k >= r->err_cap) k = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + k, r->err_cap - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static uint64_t be(const uint8_t *p, int nbytes) {
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++) v = (v << 8) | p[i];
    return v;
}

/* Take `k` bytes at the cursor; fails (naming what was being read) when fewer remain. */
static int rd_take(rd *r, size_t k, const uint8_t **out, size_t at, const char *what) {
    if (k > r->n - r->off)
        return rd_fail(r, at, "truncated: %s needs %zu bytes, %zu remain", what, k, r->n - r->off);
    *out = r->p + r->off;
    r->off += k;
    return 0;
}

/* Read one value header; str/bin/ext payloads are consumed, array/map entries are not. */
static int rd_next(rd *r, mval *v) {
    memset(v, 0, sizeof *v);
    v->at = r->off;
    const uint8_t *p = NULL;
    if (rd_take(r, 1, &p, v->at, "a value")) return -1;
    uint8_t t = p[0];
    int lenbytes = 0, extra = 0;
    if (t <= 0x7f) { v->kind = MK_UINT; v->u = t; return 0; }
    if (t >= 0xe0) { v->kind = MK_INT; v->i = (int8_t)t; return 0; }
    if (t >= 0x80 && t <= 0x8f) { v->kind = MK_MAP; v->len = t & 0x0f; goto container; }
    if (t >= 0x90 && t <= 0x9f) { v->kind = MK_ARRAY; v->len = t & 0x0f; goto container; }
    if (t >= 0xa0 && t <= 0xbf) { v->kind = MK_STR; v->len = t & 0x1f; goto payload; }
    switch (t) {
    case 0xc0: v->kind = MK_NIL; return 0;
    case 0xc2: case 0xc3: v->kind = MK_BOOL; v->b = t == 0xc3; return 0;
    case 0xc4: case 0xc5: case 0xc6: v->kind = MK_BIN; lenbytes = 1 << (t - 0xc4); break;
    case 0xd9: case 0xda: case 0xdb: v->kind = MK_STR; lenbytes = 1 << (t - 0xd9); break;
    case 0xc7: case 0xc8: case 0xc9: v->kind = MK_EXT; lenbytes = 1 << (t - 0xc7); extra = 1; break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        v->kind = MK_EXT; v->len = 1u << (t - 0xd4);
        if (rd_take(r, 1, &p, v->at, "ext type")) return -1;
        goto payload;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int k = 1 << (t - 0xcc);
        if (rd_take(r, (size_t)k, &p, v->at, "uint")) return -1;
        v->kind = MK_UINT; v->u = be(p, k);
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int k = 1 << (t - 0xd0);
        if (rd_take(r, (size_t)k, &p, v->at, "int")) return -1;
        uint64_t u = be(p, k);
        int64_t s = k == 1 ? (int8_t)u : k == 2 ? (int16_t)u : k == 4 ? (int32_t)u : (int64_t)u;
        if (s >= 0) { v->kind = MK_UINT; v->u = (uint64_t)s; } else { v->kind = MK_INT; v->i = s; }
        return 0;
    }
    case 0xca: {
        if (rd_take(r, 4, &p, v->at, "float32")) return -1;
        uint32_t u = (uint32_t)be(p, 4);
        float f;
        memcpy(&f, &u, 4);
        v->kind = MK_FLOAT; v->f = f;
        return 0;
    }
    case 0xcb: {
        if (rd_take(r, 8, &p, v->at, "float64")) return -1;
        uint64_t u = be(p, 8);
        memcpy(&v->f, &u, 8);
        v->kind = MK_FLOAT;
        return 0;
    }
    case 0xdc: case 0xdd: v->kind = MK_ARRAY; lenbytes = t == 0xdc ? 2 : 4; break;
    case 0xde: case 0xdf: v->kind = MK_MAP; lenbytes = t == 0xde ? 2 : 4; break;
    default: return rd_fail(r, v->at, "byte 0x%02x is not a msgpack type", t);
    }
    if (rd_take(r, (size_t)lenbytes, &p, v->at, "a length")) return -1;
    v->len = (uint32_t)be(p, lenbytes);
    if (v->kind == MK_ARRAY || v->kind == MK_MAP) goto container;
    if (extra && rd_take(r, 1, &p, v->at, "ext type")) return -1;
payload:
    if (v->len > r->n - r->off)
        return rd_fail(r, v->at, "truncated: %s declares %u bytes, %zu remain", mk_name(v->kind), v->len,
                       r->n - r->off);
    v->ptr = r->p + r->off;
    r->off += v->len;
    return 0;
container:
    /* Each entry takes at least one byte (two for a map entry): reject impossible counts now. */
    if ((uint64_t)v->len * (v->kind == MK_MAP ? 2 : 1) > r->n - r->off)
        return rd_fail(r, v->at, "truncated: %s declares %u entries, %zu bytes remain", mk_name(v->kind),
                       v->len, r->n - r->off);
    return 0;
}

/* Skip `count` values, iteratively (no recursion, so nesting depth costs nothing). */
static int rd_skip(rd *r, uint64_t count) {
    while (count > 0) {
        mval v;
        if (rd_next(r, &v)) return -1;
        count--;
        if (v.kind == MK_ARRAY) count += v.len;
        else if (v.kind == MK_MAP) count += 2 * (uint64_t)v.len;
    }
    return 0;
}

static int is_bin_key(const mval *k, const char *s) {
    size_t n = strlen(s);
    return k->kind == MK_BIN && k->len == n && memcmp(k->ptr, s, n) == 0;
}

/* Printable sample of untrusted bytes for error messages. */
static const char *sample(const uint8_t *p, size_t n, char *buf, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; i < n && j + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\') buf[j++] = (char)p[i];
        else j += (size_t)snprintf(buf + j, cap - j, "\\x%02x", p[i]);
    }
    if (cap) buf[j < cap ? j : cap - 1] = 0;
    return buf;
}

// ---- dtypes ------------------------------------------------------------------------------

size_t pi0_mpk_dtype_size(int dtype) {
    switch (dtype) {
    case PI0_ARR_U8: case PI0_ARR_BOOL: case PI0_ARR_I8: return 1;
    case PI0_ARR_F16: case PI0_ARR_I16: case PI0_ARR_U16: return 2;
    case PI0_ARR_F32: case PI0_ARR_I32: case PI0_ARR_U32: return 4;
    case PI0_ARR_F64: case PI0_ARR_I64: case PI0_ARR_U64: return 8;
    default: return 0;
    }
}

/* Parse a numpy dtype string such as "|u1", "<f4", ">i8", "f8". Returns 0 and sets dtype and
 * swap (1 = big-endian data on this little-endian host), or -1. */
static int parse_dtype(const uint8_t *s, uint32_t n, int *dtype, int *swap) {
    char b[8];
    if (n < 2 || n > 4) return -1;
    memcpy(b, s, n);
    b[n] = 0;
    char order = '=';
    const char *t = b;
    if (*t == '<' || *t == '>' || *t == '|' || *t == '=') order = *t++;
    char kind = *t++;
    int size = 0;
    for (; *t; t++) {
        if (*t < '0' || *t > '9') return -1;
        size = size * 10 + (*t - '0');
    }
    static const struct { char kind; int size; int dtype; } table[] = {
        {'b', 1, PI0_ARR_BOOL}, {'u', 1, PI0_ARR_U8}, {'i', 1, PI0_ARR_I8},
        {'u', 2, PI0_ARR_U16}, {'i', 2, PI0_ARR_I16}, {'f', 2, PI0_ARR_F16},
        {'u', 4, PI0_ARR_U32}, {'i', 4, PI0_ARR_I32}, {'f', 4, PI0_ARR_F32},
        {'u', 8, PI0_ARR_U64}, {'i', 8, PI0_ARR_I64}, {'f', 8, PI0_ARR_F64},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].kind == kind && table[i].size == size) {
            *dtype = table[i].dtype;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            *swap = order == '<' && size > 1;
#else
            *swap = order == '>' && size > 1;
#endif
            return 0;
        }
    }
    return -1;
}

/* Store one scalar (from a msgpack int/uint/float/bool) as `dtype` at dst. */
static void store_scalar(int dtype, const mval *v, void *dst) {
    double d = v->kind == MK_FLOAT ? v->f : v->kind == MK_INT ? (double)v->i
             : v->kind == MK_UINT ? (double)v->u : (double)v->b;
    int64_t s = v->kind == MK_INT ? v->i : v->kind == MK_UINT ? (int64_t)v->u
              : v->kind == MK_BOOL ? v->b : (isfinite(d) && fabs(d) < 9.2e18 ? (int64_t)d : 0);
    switch (dtype) {
    case PI0_ARR_BOOL: { uint8_t x = d != 0; memcpy(dst, &x, 1); break; }
    case PI0_ARR_U8: { uint8_t x = (uint8_t)s; memcpy(dst, &x, 1); break; }
    case PI0_ARR_I8: { int8_t x = (int8_t)s; memcpy(dst, &x, 1); break; }
    case PI0_ARR_U16: { uint16_t x = (uint16_t)s; memcpy(dst, &x, 2); break; }
    case PI0_ARR_I16: { int16_t x = (int16_t)s; memcpy(dst, &x, 2); break; }
    case PI0_ARR_U32: { uint32_t x = (uint32_t)s; memcpy(dst, &x, 4); break; }
    case PI0_ARR_I32: { int32_t x = (int32_t)s; memcpy(dst, &x, 4); break; }
    case PI0_ARR_U64: { uint64_t x = v->kind == MK_UINT ? v->u : (uint64_t)s; memcpy(dst, &x, 8); break; }
    case PI0_ARR_I64: memcpy(dst, &s, 8); break;
    case PI0_ARR_F32: { float x = (float)d; memcpy(dst, &x, 4); break; }
    case PI0_ARR_F64: memcpy(dst, &d, 8); break;
    case PI0_ARR_F16: { /* float -> IEEE half, round to nearest even (numpy's conversion) */
        float f = (float)d;
        uint32_t x;
        memcpy(&x, &f, 4);
        uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
        uint16_t h;
        if (e == 0xff) h = (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
        else {
            int ee = (int)e - 127 + 15;
            if (ee >= 31) h = (uint16_t)(sign | 0x7c00);
            else if (ee <= 0) {
                if (ee < -10) h = (uint16_t)sign;
                else {
                    uint32_t mm = m | 0x800000, shift = (uint32_t)(14 - ee);
                    uint32_t q = mm >> shift, rem = mm & ((1u << shift) - 1), half = 1u << (shift - 1);
                    if (rem > half || (rem == half && (q & 1))) q++;
                    h = (uint16_t)(sign | q);
                }
            } else {
                uint32_t q = ((uint32_t)ee << 10) | (m >> 13), rem = m & 0x1fff;
                if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
                h = (uint16_t)(sign | q);
            }
        }
        memcpy(dst, &h, 2);
        break;
    }
    }
}

// ---- request decoding ----------------------------------------------------------------------

typedef struct {
    rd r;
    pi0_mpk_obs *o;
} dec;

static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        int k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (c == 0 || k < 0 || (k == 1 && c < 0xc2) || (k == 3 && c > 0xf4) || (size_t)k > n - i - 1)
            return 0;
        uint32_t cp = k == 0 ? c : k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static int set_prompt(dec *d, const mval *v, const char *key) {
    if (v->len > PI0_MPK_MAX_PROMPT)
        return rd_fail(&d->r, v->at, "key '%s': prompt of %u bytes exceeds the limit of %d", key, v->len,
                       PI0_MPK_MAX_PROMPT);
    if (!utf8_ok(v->ptr, v->len))
        return rd_fail(&d->r, v->at, "key '%s': prompt is not valid UTF-8 (or contains a NUL byte)", key);
    char *s = malloc((size_t)v->len + 1);
    if (!s) return rd_fail(&d->r, v->at, "key '%s': out of memory", key);
    memcpy(s, v->ptr, v->len);
    s[v->len] = 0;
    free(d->o->prompt);
    d->o->prompt = s;
    return 0;
}

/* openpi's TokenizePrompt takes a str or anything whose .item() is a str, and raises otherwise
 * (None: "Prompt is required"; 5, a list, bytes: AttributeError or TypeError). */
static int prompt_type_error(dec *d, size_t at, const char *what) {
    return rd_fail(&d->r, at, "key 'prompt' is %s, expected a str (openpi raises on this too; leave the key out "
                   "to use the server's --default-prompt)", what);
}

/* A numpy unicode array ('<U<n>', one element: np.asarray("text")) as the prompt: UCS-4 code
 * units -> UTF-8 without the trailing NULs numpy pads with. */
static int prompt_from_ucs4(dec *d, const mval *data, int big_endian, size_t at) {
    if (data->len % 4 || data->len / 4 > PI0_MPK_MAX_PROMPT / 4)
        return rd_fail(&d->r, at, "key 'prompt': unicode data of %u bytes (a multiple of 4, at most %d)", data->len,
                       PI0_MPK_MAX_PROMPT);
    size_t n = data->len / 4, k = 0;
    while (n > 0) {   /* numpy pads with NUL code points */
        const uint8_t *q = data->ptr + 4 * (n - 1);
        if (q[0] | q[1] | q[2] | q[3]) break;
        n--;
    }
    uint8_t *u = malloc(4 * n + 1);
    if (!u) return rd_fail(&d->r, at, "key 'prompt': out of memory");
    for (size_t i = 0; i < n; i++) {
        const uint8_t *q = data->ptr + 4 * i;
        uint32_t cp = big_endian ? (uint32_t)be(q, 4) : (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                                                          (uint32_t)q[3] << 24;
        if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) {
            free(u);
            return rd_fail(&d->r, at, "key 'prompt': code point %u at character %zu is not valid text", cp, i);
        }
        if (cp < 0x80) u[k++] = (uint8_t)cp;
        else if (cp < 0x800) { u[k++] = (uint8_t)(0xc0 | cp >> 6); u[k++] = (uint8_t)(0x80 | (cp & 0x3f)); }
        else if (cp < 0x10000) {
            u[k++] = (uint8_t)(0xe0 | cp >> 12); u[k++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            u[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else {
            u[k++] = (uint8_t)(0xf0 | cp >> 18); u[k++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            u[k++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)); u[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        }
    }
    u[k] = 0;
    free(d->o->prompt);
    d->o->prompt = (char *)u;
    return 0;
}

/* The ndarray / numpy scalar map under the top-level key "prompt" (fields already read). */
static int decode_prompt_numpy(dec *d, const mval *m, const mval *data, const mval *dtype, int generic,
                               const mval *shape, size_t shape_off) {
    char sbuf[64], what[160];
    sample(dtype->ptr, dtype->len, sbuf, sizeof sbuf);
    if (generic) {   /* np.str_("text"): msgpack_numpy sends obj.item(), a str */
        if (data->kind == MK_STR) return set_prompt(d, data, "prompt");
        snprintf(what, sizeof what, "a numpy scalar of dtype '%s'", sbuf);
        return prompt_type_error(d, m->at, what);
    }
    /* np.asarray("text"): dtype '<U<n>', shape [] (or any shape holding one element) */
    const uint8_t *t = dtype->ptr;
    size_t tl = dtype->len;
    int big = 0;
    if (tl && (t[0] == '<' || t[0] == '>' || t[0] == '=' || t[0] == '|')) { big = t[0] == '>'; t++; tl--; }
    int one = 1;
    rd sr = d->r;
    sr.off = shape_off;
    mval sv;
    if (rd_next(&sr, &sv)) return -1;
    for (uint32_t i = 0; i < shape->len; i++) {
        if (rd_next(&sr, &sv)) return -1;
        if (sv.kind != MK_UINT || sv.u != 1) one = 0;
    }
    if (tl >= 2 && t[0] == 'U' && data->kind == MK_BIN && one) return prompt_from_ucs4(d, data, big, data->at);
    snprintf(what, sizeof what, "an ndarray of dtype '%s'%s", sbuf, one ? "" : " with more than one element");
    return prompt_type_error(d, m->at, what);
}

/* Reserve the next output slot for `key`. */
static pi0_array *add_array(dec *d, size_t at, const char *key) {
    pi0_mpk_obs *o = d->o;
    if (o->n_arrays >= PI0_MPK_MAX_ARRAYS) {
        rd_fail(&d->r, at, "key '%s': more than %d arrays in one request", key, PI0_MPK_MAX_ARRAYS);
        return NULL;
    }
    for (int i = 0; i < o->n_arrays; i++) {
        if (strcmp(o->keys[i], key) == 0) {
            rd_fail(&d->r, at, "key '%s' appears twice", key);
            return NULL;
        }
    }
    int i = o->n_arrays++;
    snprintf(o->keys[i], PI0_MPK_MAX_KEY, "%s", key);
    pi0_array *a = &o->arrays[i];
    memset(a, 0, sizeof *a);
    a->key = o->keys[i];
    return a;
}

static void *own(dec *d, size_t nbytes) {
    int i = d->o->n_arrays - 1;
    d->o->owned[i] = malloc(nbytes ? nbytes : 1);
    return d->o->owned[i];
}

/* The ndarray / npgeneric map at `m` (header already read). */
static int decode_numpy(dec *d, const mval *m, const char *key, int generic) {
    rd *r = &d->r;
    mval data = {0}, dtype = {0}, shape = {0};
    int have_data = 0, have_dtype = 0, have_shape = 0;
    size_t shape_off = 0;
    for (uint32_t e = 0; e < m->len; e++) {
        mval k;
        if (rd_next(r, &k)) return -1;
        if (is_bin_key(&k, "data")) {
            if (rd_next(r, &data)) return -1;
            if (data.kind == MK_ARRAY || data.kind == MK_MAP) {
                if (rd_skip(r, data.kind == MK_MAP ? 2 * (uint64_t)data.len : data.len)) return -1;
            }
            have_data = 1;
        } else if (is_bin_key(&k, "dtype")) {
            if (rd_next(r, &dtype)) return -1;
            if (dtype.kind != MK_STR && dtype.kind != MK_BIN)
                return rd_fail(r, dtype.at, "key '%s': dtype is a msgpack %s, expected str", key, mk_name(dtype.kind));
            have_dtype = 1;
        } else if (!generic && is_bin_key(&k, "shape")) {
            shape_off = r->off;
            if (rd_next(r, &shape)) return -1;
            if (shape.kind != MK_ARRAY)
                return rd_fail(r, shape.at, "key '%s': shape is a msgpack %s, expected an array", key,
                               mk_name(shape.kind));
            if (rd_skip(r, shape.len)) return -1;
            have_shape = 1;
        } else {
            if (k.kind == MK_ARRAY || k.kind == MK_MAP) {
                if (rd_skip(r, k.kind == MK_MAP ? 2 * (uint64_t)k.len : k.len)) return -1;
            }
            if (rd_skip(r, 1)) return -1;
        }
    }
    const char *what = generic ? "numpy scalar" : "ndarray";
    if (!have_data || !have_dtype || (!generic && !have_shape))
        return rd_fail(r, m->at, "key '%s': %s map lacks bin key '%s'", key, what,
                       !have_data ? "data" : !have_dtype ? "dtype" : "shape");
    if (strcmp(key, "prompt") == 0) return decode_prompt_numpy(d, m, &data, &dtype, generic, &shape, shape_off);
    char sbuf[64];
    int dt, swap;
    if (parse_dtype(dtype.ptr, dtype.len, &dt, &swap)) {
        if (generic && (data.kind == MK_STR || data.kind == MK_BIN)) {   /* np.str_ / np.bytes_ */
            d->o->n_skipped++;
            return 0;
        }
        return rd_fail(r, dtype.at, "key '%s': dtype '%s' not supported (expected |b1 |u1 |i1 <u2 <i2 <f2 "
                       "<u4 <i4 <f4 <u8 <i8 <f8, any byte order)", key, sample(dtype.ptr, dtype.len, sbuf, sizeof sbuf));
    }
    size_t isz = pi0_mpk_dtype_size(dt);
    if (generic) {
        if (data.kind != MK_INT && data.kind != MK_UINT && data.kind != MK_FLOAT && data.kind != MK_BOOL)
            return rd_fail(r, data.at, "key '%s': numpy scalar of dtype '%s' holds a msgpack %s, expected a number",
                           key, sample(dtype.ptr, dtype.len, sbuf, sizeof sbuf), mk_name(data.kind));
        pi0_array *a = add_array(d, m->at, key);
        if (!a) return -1;
        void *p = own(d, isz);
        if (!p) return rd_fail(r, m->at, "key '%s': out of memory", key);
        store_scalar(dt, &data, p);
        a->dtype = dt;
        a->ndim = 0;
        a->data = p;
        return 0;
    }
    if (data.kind != MK_BIN)
        return rd_fail(r, data.at, "key '%s': ndarray data is a msgpack %s, expected bin", key, mk_name(data.kind));
    if (shape.len > 4)
        return rd_fail(r, shape.at, "key '%s': ndarray has %u dimensions, at most 4 are supported", key, shape.len);
    /* Walk the shape again: each dim a non-negative int, the product checked against the data
     * length as it grows (so it can never overflow). */
    rd sr = *r;
    sr.off = shape_off;
    mval sv;
    if (rd_next(&sr, &sv)) return -1;
    int64_t dims[4] = {0};
    uint64_t max_elems = data.len / isz, prod = 1;
    for (uint32_t i = 0; i < shape.len; i++) {
        if (rd_next(&sr, &sv)) return -1;
        if (sv.kind != MK_UINT)
            return rd_fail(r, sv.at, "key '%s': shape[%u] is a msgpack %s%s, expected a non-negative int", key, i,
                           mk_name(sv.kind), sv.kind == MK_INT ? " (negative)" : "");
        if (sv.u != 0 && prod > max_elems / sv.u)
            return rd_fail(r, sv.at, "key '%s': shape[%u] = %llu makes the array larger than its %u data bytes",
                           key, i, (unsigned long long)sv.u, data.len);
        prod *= sv.u;
        dims[i] = (int64_t)sv.u;
    }
    if (prod * isz != data.len)
        return rd_fail(r, data.at, "key '%s': ndarray shape needs %llu bytes of dtype '%s', data has %u", key,
                       (unsigned long long)(prod * isz), sample(dtype.ptr, dtype.len, sbuf, sizeof sbuf), data.len);
    pi0_array *a = add_array(d, m->at, key);
    if (!a) return -1;
    a->dtype = dt;
    a->ndim = (int)shape.len;
    memcpy(a->shape, dims, sizeof dims);
    if (!swap && ((uintptr_t)data.ptr % isz) == 0) {
        a->data = data.ptr;    /* zero copy */
        return 0;
    }
    uint8_t *p = own(d, data.len);
    if (!p) return rd_fail(r, data.at, "key '%s': out of memory for %u bytes", key, data.len);
    if (!swap) memcpy(p, data.ptr, data.len);
    else
        for (size_t e = 0; e < prod; e++)
            for (size_t b = 0; b < isz; b++) p[e * isz + b] = data.ptr[e * isz + isz - 1 - b];
    a->data = p;
    return 0;
}

/* A msgpack list: a 1-d F64 array when every entry is a number, otherwise skipped. */
static int decode_list(dec *d, const mval *m, const char *key) {
    rd *r = &d->r;
    size_t start = r->off;
    int numeric = 1;
    for (uint32_t i = 0; i < m->len; i++) {
        mval v;
        if (rd_next(r, &v)) return -1;
        if (v.kind == MK_ARRAY || v.kind == MK_MAP) {
            numeric = 0;
            if (rd_skip(r, v.kind == MK_MAP ? 2 * (uint64_t)v.len : v.len)) return -1;
        } else if (v.kind != MK_INT && v.kind != MK_UINT && v.kind != MK_FLOAT && v.kind != MK_BOOL) {
            numeric = 0;
        }
    }
    if (!numeric || m->len > PI0_MPK_MAX_LIST) {
        /* Not decoded: no preset reads a vector this long (states have <= 64 values), and a
         * 60 MiB list of small ints under an ignored key would otherwise become 480 MB of doubles. */
        if (numeric && !d->o->skipped_key[0]) {
            snprintf(d->o->skipped_key, sizeof d->o->skipped_key, "%s", key);
            snprintf(d->o->skipped_why, sizeof d->o->skipped_why, "a list of %u numbers; lists longer than %d are "
                     "not decoded (send an ndarray)", m->len, PI0_MPK_MAX_LIST);
        }
        d->o->n_skipped++;
        return 0;
    }
    pi0_array *a = add_array(d, m->at, key);
    if (!a) return -1;
    double *p = own(d, sizeof(double) * m->len);   /* m->len <= bytes already read */
    if (!p) return rd_fail(r, m->at, "key '%s': out of memory", key);
    rd lr = *r;
    lr.off = start;
    for (uint32_t i = 0; i < m->len; i++) {
        mval v;
        if (rd_next(&lr, &v)) return -1;
        store_scalar(PI0_ARR_F64, &v, &p[i]);
    }
    a->dtype = PI0_ARR_F64;
    a->ndim = 1;
    a->shape[0] = m->len;
    a->data = p;
    return 0;
}

static int decode_value(dec *d, const char *key, int depth);

/* A map value: numpy array, numpy scalar, or a nested map flattened as "key/sub". */
static int decode_map(dec *d, const mval *m, const char *key, int depth) {
    rd *r = &d->r;
    size_t start = r->off;
    int nd = 0, ng = 0;
    for (uint32_t e = 0; e < m->len; e++) {   /* classify by the bin marker keys */
        mval k;
        if (rd_next(r, &k)) return -1;
        if (is_bin_key(&k, "__ndarray__")) nd = 1;
        if (is_bin_key(&k, "__npgeneric__")) ng = 1;
        if (k.kind == MK_ARRAY || k.kind == MK_MAP) {
            if (rd_skip(r, k.kind == MK_MAP ? 2 * (uint64_t)k.len : k.len)) return -1;
        }
        if (rd_skip(r, 1)) return -1;
    }
    r->off = start;
    if (nd || ng) return decode_numpy(d, m, key, !nd);
    if (depth == 1 && strcmp(key, "prompt") == 0) return prompt_type_error(d, m->at, "a map");
    if (depth >= PI0_MPK_MAX_DEPTH)
        return rd_fail(r, m->at, "key '%s': maps nested deeper than %d levels", key, PI0_MPK_MAX_DEPTH);
    for (uint32_t e = 0; e < m->len; e++) {
        mval k;
        char sbuf[64], sub[PI0_MPK_MAX_KEY];
        if (rd_next(r, &k)) return -1;
        if (k.kind != MK_STR && k.kind != MK_BIN)
            return rd_fail(r, k.at, "key '%s': map key is a msgpack %s, expected str", key, mk_name(k.kind));
        if (memchr(k.ptr, 0, k.len) || strlen(key) + 1 + k.len >= PI0_MPK_MAX_KEY)
            return rd_fail(r, k.at, "key '%s/%s': key too long or contains NUL (limit %d bytes)", key,
                           sample(k.ptr, k.len < 40 ? k.len : 40, sbuf, sizeof sbuf), PI0_MPK_MAX_KEY - 1);
        size_t kl = strlen(key);   /* kl + 1 + k.len < sizeof sub, checked above */
        memcpy(sub, key, kl);
        sub[kl] = '/';
        memcpy(sub + kl + 1, k.ptr, k.len);
        sub[kl + 1 + k.len] = 0;
        if (decode_value(d, sub, depth + 1)) return -1;
    }
    return 0;
}

static int decode_value(dec *d, const char *key, int depth) {
    rd *r = &d->r;
    mval v;
    if (rd_next(r, &v)) return -1;
    int is_prompt = depth == 1 && strcmp(key, "prompt") == 0;
    if (is_prompt && v.kind != MK_STR && v.kind != MK_MAP) {
        char what[48];
        snprintf(what, sizeof what, "a msgpack %s", v.kind == MK_NIL ? "nil (None)" : mk_name(v.kind));
        return prompt_type_error(d, v.at, what);
    }
    switch (v.kind) {
    case MK_MAP: return decode_map(d, &v, key, depth);
    case MK_ARRAY: return decode_list(d, &v, key);
    case MK_STR: case MK_BIN:
        if (is_prompt) return set_prompt(d, &v, key);
        d->o->n_skipped++;
        return 0;
    case MK_INT: case MK_UINT: case MK_FLOAT: case MK_BOOL: {
        int dt = v.kind == MK_FLOAT ? PI0_ARR_F64 : v.kind == MK_BOOL ? PI0_ARR_BOOL : PI0_ARR_I64;
        pi0_array *a = add_array(d, v.at, key);
        if (!a) return -1;
        void *p = own(d, 8);
        if (!p) return rd_fail(r, v.at, "key '%s': out of memory", key);
        store_scalar(dt, &v, p);
        a->dtype = dt;
        a->ndim = 0;
        a->data = p;
        return 0;
    }
    default:   /* nil, ext */
        d->o->n_skipped++;
        return 0;
    }
}

void pi0_mpk_obs_free(pi0_mpk_obs *o) {
    if (!o) return;
    for (int i = 0; i < PI0_MPK_MAX_ARRAYS; i++) free(o->owned[i]);
    free(o->prompt);
    memset(o, 0, sizeof *o);
}

int pi0_mpk_decode_obs(const uint8_t *buf, size_t n, pi0_mpk_obs *out, char *err, size_t err_cap) {
    memset(out, 0, sizeof *out);
    if (err && err_cap) err[0] = 0;
    dec d = {{buf, n, 0, err, err_cap}, out};
    rd *r = &d.r;
    mval top;
    if (!buf) { r->n = 0; r->p = (const uint8_t *)""; }
    if (rd_next(r, &top)) goto fail;
    if (top.kind != MK_MAP) {
        rd_fail(r, 0, "the request is a msgpack %s, expected a map (the observation dict)", mk_name(top.kind));
        goto fail;
    }
    for (uint32_t e = 0; e < top.len; e++) {
        mval k;
        char key[PI0_MPK_MAX_KEY], sbuf[64];
        if (rd_next(r, &k)) goto fail;
        if (k.kind != MK_STR && k.kind != MK_BIN) {
            rd_fail(r, k.at, "map key is a msgpack %s, expected str", mk_name(k.kind));
            goto fail;
        }
        if (k.len >= PI0_MPK_MAX_KEY || memchr(k.ptr, 0, k.len)) {
            rd_fail(r, k.at, "key '%s...' too long or contains NUL (limit %d bytes)",
                    sample(k.ptr, k.len < 40 ? k.len : 40, sbuf, sizeof sbuf), PI0_MPK_MAX_KEY - 1);
            goto fail;
        }
        memcpy(key, k.ptr, k.len);
        key[k.len] = 0;
        if (decode_value(&d, key, 1)) goto fail;
    }
    if (r->off != n) {
        rd_fail(r, r->off, "%zu extra bytes after the request map", n - r->off);
        goto fail;
    }
    return 0;
fail:
    pi0_mpk_obs_free(out);
    return -1;
}

// ---- encoding (msgpack-c packer) --------------------------------------------------------------

static void pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_bin_key(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, s, n);
}

int pi0_mpk_pack_response(const float *actions, int rows, int cols, double policy_infer_ms,
                          double server_infer_ms, double prev_total_ms, pi0_mpk_bytes *out) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t nbytes = sizeof(float) * (size_t)rows * (size_t)cols;
    msgpack_pack_map(&pk, 3);
    pack_cstr(&pk, "actions");
    msgpack_pack_map(&pk, 4);   /* openpi_client.msgpack_numpy.pack_array: bin keys, this order */
    pack_bin_key(&pk, "__ndarray__");
    msgpack_pack_true(&pk);
    pack_bin_key(&pk, "data");
    msgpack_pack_bin(&pk, nbytes);
    msgpack_pack_bin_body(&pk, actions, nbytes);   /* host order; the dtype string says which */
    pack_bin_key(&pk, "dtype");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    pack_cstr(&pk, ">f4");
#else
    pack_cstr(&pk, "<f4");
#endif
    pack_bin_key(&pk, "shape");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, rows);
    msgpack_pack_int(&pk, cols);
    pack_cstr(&pk, "policy_timing");
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, "infer_ms");
    msgpack_pack_double(&pk, policy_infer_ms);
    pack_cstr(&pk, "server_timing");
    msgpack_pack_map(&pk, prev_total_ms >= 0 ? 2 : 1);
    pack_cstr(&pk, "infer_ms");
    msgpack_pack_double(&pk, server_infer_ms);
    if (prev_total_ms >= 0) {
        pack_cstr(&pk, "prev_total_ms");
        msgpack_pack_double(&pk, prev_total_ms);
    }
    if (!sb.data) return -1;   /* sbuffer's realloc failed */
    out->len = sb.size;
    out->data = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

static int pack_json_value(msgpack_packer *pk, const cJSON *j, int depth) {
    if (depth > 64) return -1;
    if (cJSON_IsObject(j)) {
        msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next) {
            pack_cstr(pk, c->string ? c->string : "");
            if (pack_json_value(pk, c, depth + 1)) return -1;
        }
    } else if (cJSON_IsArray(j)) {
        msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next)
            if (pack_json_value(pk, c, depth + 1)) return -1;
    } else if (cJSON_IsString(j)) {
        pack_cstr(pk, j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 9.0e15) msgpack_pack_int64(pk, (int64_t)v);
        else msgpack_pack_double(pk, v);
    } else if (cJSON_IsTrue(j)) {
        msgpack_pack_true(pk);
    } else if (cJSON_IsFalse(j)) {
        msgpack_pack_false(pk);
    } else if (cJSON_IsNull(j)) {
        msgpack_pack_nil(pk);
    } else {
        return -1;
    }
    return 0;
}

int pi0_mpk_pack_json(const char *json, pi0_mpk_bytes *out, char *err, size_t err_cap) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(json ? json : "{}", &end, 1);
    if (!j) {
        snprintf(err, err_cap, "metadata JSON: parse error at byte %td", end ? end - json : (ptrdiff_t)0);
        return -1;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = pack_json_value(&pk, j, 0);
    cJSON_Delete(j);
    if (rc || !sb.data) {
        msgpack_sbuffer_destroy(&sb);
        snprintf(err, err_cap, "metadata JSON: nested deeper than 64 levels or out of memory");
        return -1;
    }
    out->len = sb.size;
    out->data = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}
