/* pack.c - the fast backend's weight packing (layout in fast.h) and its per-thread scratch.
 *
 * Packing runs at load: every matmul weight is converted from its stored dtype (F32, BF16, F16) to
 * the packed kind (bf16 rounded to nearest even, f32, or int8 quantized per output channel) once. bf16 -> bf16 and anything -> f32
 * are exact. An ISA row's filler (isa.h; AVX-512: pack_avx512.c, F32 and BF16 sources) writes the
 * same bytes as the portable filler here. Packing keeps no shared state, so the
 * loader may pack different weights on several threads at once. Nothing here runs per call except
 * pi0_fast_scratch.
 */
#include "ops/fast/fast.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "err.h"
#include "ops/fast/isa.h"

static float f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) u = s;
        else { /* subnormal: normalize */
            int sh = 0;
            while (!(m & 0x400)) { m <<= 1; sh++; }
            m &= 0x3ff;
            u = s | ((uint32_t)(113 - sh) << 23) | (m << 13);
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 112) << 23) | (m << 13);
    }
    union { uint32_t u; float f; } v = {u};
    return v.f;
}

static float load_elem(const void *data, pi0_dtype dt, int64_t i) {
    switch (dt) {
    case PI0_DT_BF16: return pi0_fast_bf16_to_f32(((const uint16_t *)data)[i]);
    case PI0_DT_F16: return f16_to_f32(((const uint16_t *)data)[i]);
    default: return ((const float *)data)[i];
    }
}

/* Packed weights are large (up to 64 MB) and written once. Touching fresh 4 KB pages one fault at a
 * time costs more than the packing itself (measured in this VM: ~200 ms of faults for a [16384,
 * 2048] weight vs ~25 ms to fill it; transparent huge pages were as slow after the first few). So
 * big buffers are mapped with MAP_POPULATE, which makes the kernel fault them in as one batch
 * (~10-20 ms per 64 MB); *mapped records the mapping length for pi0_fast_packed_free (0 = heap). */
static void *alloc_packed(size_t nbytes, size_t *mapped) {
    *mapped = 0;
    if (nbytes >= ((size_t)4 << 20)) {
        size_t sz = (nbytes + 4095) & ~(size_t)4095;
        void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p != MAP_FAILED) {
            *mapped = sz;
            return p;
        }
    }
    return aligned_alloc(64, (nbytes + 63) & ~(size_t)63);
}

size_t pi0_fast_packed_bytes(int64_t n, int64_t k, int kind) {
    int64_t np = (n + PI0_FAST_NR - 1) / PI0_FAST_NR;
    if (kind == PI0_WEIGHTS_F32) return (size_t)np * (size_t)k * PI0_FAST_NR * sizeof(float);
    if (kind == PI0_WEIGHTS_INT8) /* panels, then scale[] and wsum[] */
        return (size_t)np * PI0_FAST_NR * ((size_t)((k + 3) & ~(int64_t)3) + sizeof(float) + sizeof(int32_t));
    int64_t kp = (k + 1) & ~(int64_t)1;
    return (size_t)np * (size_t)kp * PI0_FAST_NR * sizeof(uint16_t);
}

static void init_header(pi0_fast_packed *p, void *data, int64_t n_panels, int64_t n, int64_t k, int kind) {
    p->kind = kind;
    p->n = n;
    p->k = k;
    p->kp = kind == PI0_WEIGHTS_F32 ? k : kind == PI0_WEIGHTS_INT8 ? ((k + 3) & ~(int64_t)3) : ((k + 1) & ~(int64_t)1);
    p->n_panels = n_panels;
    p->data = data;
    p->scale = NULL;
    p->wsum = NULL;
    p->n_exact = 0;
    p->exact_idx = NULL;
    p->exact = NULL;
    p->name = NULL;
    p->pair = 0;
    if (kind == PI0_WEIGHTS_INT8) {
        p->scale = (float *)((char *)data + (size_t)(p->n_panels * p->kp * PI0_FAST_NR));
        p->wsum = (int32_t *)(p->scale + p->n_panels * PI0_FAST_NR);
    }
}

/* int8 kind (layout in fast.h): each weight row j is read twice from its dtype (max |w|, then
 * quantize), so no row buffer is needed. q = nearest-even(w * (127 / max)), the reciprocal taken
 * once per row like the activations' (quant_int8.c); a NaN/inf in a row gives that column scale
 * NaN (its outputs NaN, as in float) and q = 0. */
static void fill_int8(const pi0_fast_packed *p, const void *data, pi0_dtype dt) {
    const int64_t n = p->n, k = p->k, kp = p->kp, NR = PI0_FAST_NR;
    int8_t *d = p->data;
    for (int64_t pn = 0; pn < p->n_panels; pn++)
        for (int64_t jj = 0; jj < NR; jj++) {
            int64_t j = pn * NR + jj;
            int8_t *dst = d + pn * kp * NR + jj * 4;
            float amax = 0.0f;
            int finite = 1;
            for (int64_t i = 0; j < n && i < k; i++) {
                float a = fabsf(load_elem(data, dt, j * k + i));
                if (!(a <= FLT_MAX)) finite = 0;
                else if (a > amax) amax = a;
            }
            float inv = finite && amax > 0.0f ? 127.0f / amax : 0.0f;
            int32_t sum = 0;
            for (int64_t i = 0; i < kp; i++) {
                int q = 0;
                if (j < n && i < k) {
                    float v = load_elem(data, dt, j * k + i) * inv;
                    v = v > -127.0f ? v : -127.0f; /* NaN (inv 0 times inf) -> -127, then 0 below */
                    v = v < 127.0f ? v : 127.0f;
                    q = finite ? (int)nearbyintf(v) : 0;
                }
                dst[(i >> 2) * (4 * NR) + (i & 3)] = (int8_t)q;
                sum += q;
            }
            p->scale[j] = j >= n ? 0.0f : finite ? amax / 127.0f : NAN;
            p->wsum[j] = 128 * sum;
        }
}

/* ---- int8 kind: exact columns ------------------------------------------------------------------
 * An outlier channel o of the activations is multiplied exactly by the side product (quant_int8.c),
 * but by the int8 weights q_jo of its column. Models that carry massive activations in a few
 * channels often have small weights reading them (the product stays moderate): such a column holds
 * one or two int8 levels of its rows' steps, and its relative error |w - scale q| / |w| reaches tens
 * of percent where an ordinary column's is ~0.3-1 %, an error the outlier multiplies. So per int8
 * weight the columns with a relative quantization error above EXACT_REL and above EXACT_FACTOR x the
 * typical column's, at most PI0_I8_EXACT_CAP (the worst first), are kept in fp32 and the side product
 * uses them for those channels. The int8 product never sees an outlier channel (its activation is
 * quantized as 0), so nothing is counted twice.
 * Cost: one pass over the source computing each column's mean square in units of its rows' steps,
 * E_i = mean_j (w_ji / scale_j)^2 (a column's error is at most 0.5 step per row, so its relative
 * error is <= 0.5 / sqrt(E_i): only columns with sqrt(E_i) < 0.5 / EXACT_REL can pass, and with
 * rounding error ~ uniform its error is ~0.29 / sqrt(E_i), so EXACT_FACTOR x the typical column's
 * means sqrt(E_i) < sqrt(E_median) / EXACT_FACTOR); for those candidates only, the exact error from
 * the packed bytes. A model without such columns (random weights) keeps none and no memory. */
#define EXACT_REL 0.02f   /* 2 %: an ordinary column of uniform / Gaussian rows is at 0.4-0.8 % */
#define EXACT_FACTOR 4.0f /* and 4x the median column's (heavy-tailed rows: every column coarser) */
#define EXACT_CAND (8 * PI0_I8_EXACT_CAP)

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

pi0_status pi0_fast_i8_pick_exact(pi0_fast_packed *b, const void *data, pi0_dtype dt) {
    const int64_t n = b->n, k = b->k, NR = PI0_FAST_NR;
    float *E = calloc((size_t)k, 2 * sizeof *E), *row = malloc((size_t)k * sizeof *row);
    if (!E || !row) { free(E); free(row); return pi0_err(PI0_ERR_NOMEM, "int8 exact columns of '%s': out of memory", b->name ? b->name : "?"); }
    /* E over every st-th row (<= ~1024 rows: a small column is small in every row; the candidates'
     * error below uses all rows, so sampling only loosens the filter, by 2x in rms) */
    const int64_t st = n / 1024 > 1 ? n / 1024 : 1;
    int64_t rows = 0;
    for (int64_t j = 0; j < n; j += st) {
        float s = b->scale[j];
        if (!(s > 0.0f) || !(s < INFINITY)) continue; /* zero or non-finite row: nothing to measure */
        const float inv = 1.0f / s;
        if (dt == PI0_DT_F32) memcpy(row, (const float *)data + j * k, (size_t)k * sizeof *row);
        else for (int64_t i = 0; i < k; i++) row[i] = load_elem(data, dt, j * k + i);
        for (int64_t i = 0; i < k; i++) E[i] += (row[i] * inv) * (row[i] * inv);
        rows++;
    }
    free(row);
    int64_t nc = 0;
    int32_t cand[EXACT_CAND];
    float rel[EXACT_CAND], rel_typ = 0.0f; /* EXACT_FACTOR x the median column's expected error */
    if (rows > 0) {
        float *sorted = E + k;
        memcpy(sorted, E, (size_t)k * sizeof *E);
        qsort(sorted, (size_t)k, sizeof *sorted, cmp_float);
        /* rms in steps: the median column's, and the bound a column must be under (2x slack) */
        float med = sqrtf(sorted[k / 2] / (float)rows), lim = med / EXACT_FACTOR;
        rel_typ = med > 0.0f ? EXACT_FACTOR * 0.2887f / med : INFINITY; /* uniform rounding: 1/sqrt(12) step */
        if (lim > 0.5f / EXACT_REL) lim = 0.5f / EXACT_REL;
        lim = 2.0f * lim;
        const float elim = lim * lim * (float)rows, cut = k > EXACT_CAND ? sorted[EXACT_CAND - 1] : INFINITY;
        for (int64_t i = 0; i < k && nc < EXACT_CAND; i++) /* at most the EXACT_CAND smallest */
            if (E[i] < elim && E[i] <= cut) cand[nc++] = (int32_t)i;
    }
    int64_t ne = 0;
    for (int64_t c = 0; c < nc; c++) { /* the exact relative error of each candidate column */
        const int64_t i = cand[c];
        double err = 0, nrm = 0;
        for (int64_t j = 0; j < n; j++) {
            float s = b->scale[j];
            if (!(s > 0.0f) || !(s < INFINITY)) continue;
            int8_t q = ((const int8_t *)b->data)[(j / NR) * b->kp * NR + (i >> 2) * (4 * NR) + (j % NR) * 4 + (i & 3)];
            double w = load_elem(data, dt, j * k + i), e = w - (double)s * q;
            err += e * e;
            nrm += w * w;
        }
        float r = nrm > 0 ? (float)sqrt(err / nrm) : 0.0f;
        if (r > EXACT_REL && r > rel_typ) { cand[ne] = (int32_t)i; rel[ne++] = r; }
    }
    free(E);
    if (ne == 0) return PI0_OK;
    /* the worst PI0_I8_EXACT_CAP (ties: lower index), then ascending index */
    for (int64_t a = 0; a < ne; a++)
        for (int64_t c = a + 1; c < ne; c++)
            if (rel[c] > rel[a] || (rel[c] == rel[a] && cand[c] < cand[a])) {
                float t = rel[a]; rel[a] = rel[c]; rel[c] = t;
                int32_t u = cand[a]; cand[a] = cand[c]; cand[c] = u;
            }
    if (ne > PI0_I8_EXACT_CAP) ne = PI0_I8_EXACT_CAP;
    for (int64_t a = 1; a < ne; a++)
        for (int64_t c = a; c > 0 && cand[c] < cand[c - 1]; c--) { int32_t u = cand[c]; cand[c] = cand[c - 1]; cand[c - 1] = u; }
    const int64_t ld = b->n_panels * NR;
    size_t head = ((size_t)ne * sizeof(int32_t) + 63) & ~(size_t)63;
    char *buf = aligned_alloc(64, head + (size_t)(ne * ld) * sizeof(float));
    if (!buf) return pi0_err(PI0_ERR_NOMEM, "int8 exact columns of '%s': out of memory", b->name ? b->name : "?");
    b->exact_idx = (int32_t *)buf;
    b->exact = (float *)(buf + head);
    for (int64_t e = 0; e < ne; e++) {
        b->exact_idx[e] = cand[e];
        for (int64_t j = 0; j < ld; j++) b->exact[e * ld + j] = j < n ? load_elem(data, dt, j * k + cand[e]) : 0.0f;
    }
    b->n_exact = (int)ne;
    return PI0_OK;
}

void pi0_fast_pack_fill_generic(const pi0_fast_packed *p, const void *data, pi0_dtype dt) {
    const int64_t n = p->n, k = p->k;
    const int64_t NR = PI0_FAST_NR;
    if (p->kind == PI0_WEIGHTS_INT8) {
        fill_int8(p, data, dt);
    } else if (p->kind == PI0_WEIGHTS_F32) {
        float *d = p->data;
        for (int64_t pn = 0; pn < p->n_panels; pn++)
            for (int64_t jj = 0; jj < NR; jj++) {
                int64_t j = pn * NR + jj;
                float *dst = d + pn * k * NR + jj;
                if (j >= n) { for (int64_t i = 0; i < k; i++) dst[i * NR] = 0.0f; continue; }
                for (int64_t i = 0; i < k; i++) dst[i * NR] = load_elem(data, dt, j * k + i);
            }
    } else {
        uint16_t *d = p->data;
        int64_t kp = p->kp;
        for (int64_t pn = 0; pn < p->n_panels; pn++)
            for (int64_t jj = 0; jj < NR; jj++) {
                int64_t j = pn * NR + jj;
                uint16_t *dst = d + pn * kp * NR + jj * 2;
                for (int64_t i = 0; i < kp; i++) {
                    uint16_t v = 0;
                    if (j < n && i < k)
                        v = dt == PI0_DT_BF16 ? ((const uint16_t *)data)[j * k + i]
                                              : pi0_fast_f32_to_bf16(load_elem(data, dt, j * k + i));
                    dst[(i >> 1) * (2 * NR) + (i & 1)] = v;
                }
            }
    }
}

/* Fill p (header set) from [n, k] rows, with the ISA's filler where it has one. */
static void fill_packed(const pi0_fast_packed *p, const void *data, pi0_dtype dt) {
    const pi0_fast_isa *isa = pi0_fast_isa_get();
    if (!isa->pack_fill || !isa->pack_fill(p, data, dt)) pi0_fast_pack_fill_generic(p, data, dt);
}

static pi0_status check_args(pi0_dtype dt, int64_t n, int64_t k, int kind, const char *name) {
    if (dt != PI0_DT_F32 && dt != PI0_DT_BF16 && dt != PI0_DT_F16)
        return pi0_err(PI0_ERR_UNSUPPORTED, "fast pack: weight '%s': dtype %d, expected F32, BF16 or F16",
                       name ? name : "?", (int)dt);
    if (kind != PI0_WEIGHTS_BF16 && kind != PI0_WEIGHTS_F32 && kind != PI0_WEIGHTS_INT8)
        return pi0_err(PI0_ERR_ARG, "fast pack: weight '%s': unknown weight kind %d", name ? name : "?", kind);
    if (n <= 0 || k <= 0)
        return pi0_err(PI0_ERR_ARG, "fast pack: weight '%s': shape [%lld, %lld]", name ? name : "?",
                       (long long)n, (long long)k);
    return PI0_OK;
}

/* A header and buffer for n_panels panels of [?, k] (n columns as given). */
static pi0_status alloc_header(pi0_fast_packed **out, int64_t n_panels, int64_t n, int64_t k, int kind,
                               const char *name) {
    size_t nbytes = (size_t)n_panels * pi0_fast_packed_bytes(64, k, kind);
    pi0_fast_packed *p = malloc(sizeof *p);
    size_t mapped = 0;
    void *buf = p ? alloc_packed(nbytes, &mapped) : NULL;
    if (!p || !buf) {
        free(p);
        return pi0_err(PI0_ERR_NOMEM, "fast pack: weight '%s': cannot allocate %zu bytes", name ? name : "?", nbytes);
    }
    init_header(p, buf, n_panels, n, k, kind);
    p->mapped = mapped;
    p->name = name;
    *out = p;
    return PI0_OK;
}

pi0_status pi0_fast_pack_weight(pi0_fast_packed **out, const void *data, pi0_dtype dt, int64_t n,
                                int64_t k, int kind, const char *name) {
    *out = NULL;
    pi0_status s = check_args(dt, n, k, kind, name);
    if (s == PI0_OK) s = alloc_header(out, (n + PI0_FAST_NR - 1) / PI0_FAST_NR, n, k, kind, name);
    if (s) return s;
    fill_packed(*out, data, dt);
    if (kind == PI0_WEIGHTS_INT8 && (s = pi0_fast_i8_pick_exact(*out, data, dt)) != PI0_OK) {
        pi0_fast_packed_free(*out);
        *out = NULL;
    }
    return s;
}

/* int8 pair: the exact columns of gate and of up, each picked as for the matrix alone (a view of the
 * pair: every other panel, kp doubled, its scales gathered), kept as one set, their union, in fp32
 * for both halves: a channel exact in one is exact in the other too (never less accurate than the
 * separate matrices, and one lookup per outlier channel as there). <= 2 PI0_I8_EXACT_CAP columns. */
static pi0_status pair_pick_exact(pi0_fast_packed *p, const void *gate, const void *up, pi0_dtype dt) {
    const int64_t NR = PI0_FAST_NR, np = p->n_panels / 2, n = p->n, k = p->k;
    float *sc = malloc((size_t)(np * NR) * sizeof *sc);
    if (!sc) return pi0_err(PI0_ERR_NOMEM, "int8 exact columns of '%s': out of memory", p->name ? p->name : "?");
    pi0_fast_packed half[2];
    pi0_status s = PI0_OK;
    for (int h = 0; h < 2; h++) {
        half[h] = *p;
        half[h].pair = 0;
        half[h].n_panels = np;
        half[h].kp = 2 * p->kp; /* panel q of this half: pair panel 2q + h */
        half[h].data = (char *)p->data + (size_t)(h * p->kp * NR);
        half[h].scale = sc;
        half[h].wsum = NULL;
        half[h].n_exact = 0;
        half[h].exact_idx = NULL;
        half[h].exact = NULL;
        for (int64_t j = 0; j < np * NR; j++) sc[j] = p->scale[(2 * (j / NR) + h) * NR + j % NR];
        if (s == PI0_OK) s = pi0_fast_i8_pick_exact(&half[h], h ? up : gate, dt);
    }
    free(sc);
    int32_t idx[2 * PI0_I8_EXACT_CAP];
    int ne = 0;
    for (int a = 0, b = 0; s == PI0_OK && (a < half[0].n_exact || b < half[1].n_exact);) { /* merge, ascending */
        int32_t x = a < half[0].n_exact ? half[0].exact_idx[a] : INT32_MAX;
        int32_t y = b < half[1].n_exact ? half[1].exact_idx[b] : INT32_MAX;
        idx[ne++] = x < y ? x : y;
        a += x <= y;
        b += y <= x;
    }
    free(half[0].exact_idx);
    free(half[1].exact_idx);
    if (s != PI0_OK || ne == 0) return s;
    const int64_t ld = p->n_panels * NR;
    size_t head = ((size_t)ne * sizeof(int32_t) + 63) & ~(size_t)63;
    char *buf = aligned_alloc(64, head + (size_t)(ne * ld) * sizeof(float));
    if (!buf) return pi0_err(PI0_ERR_NOMEM, "int8 exact columns of '%s': out of memory", p->name ? p->name : "?");
    p->exact_idx = (int32_t *)buf;
    p->exact = (float *)(buf + head);
    for (int e = 0; e < ne; e++) {
        p->exact_idx[e] = idx[e];
        for (int64_t c = 0; c < ld; c++) { /* pair column c: panel c / 64, row (panel / 2)·64 + c % 64 */
            int64_t pn = c / NR, j = (pn / 2) * NR + c % NR;
            p->exact[e * ld + c] = j < n ? load_elem(pn % 2 ? up : gate, dt, j * k + idx[e]) : 0.0f;
        }
    }
    p->n_exact = ne;
    return PI0_OK;
}

/* The pair is filled one panel at a time: a one-panel header over panel 2q (gate rows [64q, 64q +
 * 64)) or 2q + 1 (the same up rows), so every filler writes its usual bytes into the pair's slots. */
pi0_status pi0_fast_pack_pair(pi0_fast_packed **out, const void *gate, const void *up, pi0_dtype dt, int64_t n,
                              int64_t k, int kind, const char *name) {
    *out = NULL;
    pi0_status s = check_args(dt, n, k, kind, name);
    int64_t np = (n + PI0_FAST_NR - 1) / PI0_FAST_NR;
    if (s == PI0_OK) s = alloc_header(out, 2 * np, n, k, kind, name);
    if (s) return s;
    pi0_fast_packed *p = *out;
    p->pair = 1;
    const size_t es = dt == PI0_DT_F32 ? 4 : 2,
                 panel = (size_t)p->kp * PI0_FAST_NR * (kind == PI0_WEIGHTS_F32 ? 4 : kind == PI0_WEIGHTS_INT8 ? 1 : 2);
    for (int64_t pn = 0; pn < 2 * np; pn++) {
        int64_t q = pn / 2, rows = n - q * PI0_FAST_NR < PI0_FAST_NR ? n - q * PI0_FAST_NR : PI0_FAST_NR;
        pi0_fast_packed one = *p;
        one.pair = 0;
        one.n = rows;
        one.n_panels = 1;
        one.data = (char *)p->data + (size_t)pn * panel;
        if (p->scale) {
            one.scale = p->scale + pn * PI0_FAST_NR;
            one.wsum = p->wsum + pn * PI0_FAST_NR;
        }
        fill_packed(&one, (const char *)(pn % 2 ? up : gate) + (size_t)(q * PI0_FAST_NR * k) * es, dt);
    }
    if (kind == PI0_WEIGHTS_INT8 && (s = pair_pick_exact(p, gate, up, dt)) != PI0_OK) {
        pi0_fast_packed_free(p);
        *out = NULL;
    }
    return s;
}

void pi0_fast_packed_free(pi0_fast_packed *p) {
    if (!p) return;
    if (p->mapped) munmap(p->data, p->mapped);
    else free(p->data);
    free(p->exact_idx);
    free(p);
}

/* ---- per-thread scratch ---------------------------------------------------------------------- */

typedef struct { void *p[PI0_FAST_SCRATCH_SLOTS]; size_t n[PI0_FAST_SCRATCH_SLOTS]; } scratch_set;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static int g_key_ok;

static void scratch_destroy(void *v) {
    scratch_set *s = v;
    for (int i = 0; i < PI0_FAST_SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}

static void key_init(void) { g_key_ok = pthread_key_create(&g_key, scratch_destroy) == 0; }

void *pi0_fast_scratch(int slot, size_t nbytes) {
    pthread_once(&g_key_once, key_init);
    if (!g_key_ok || slot < 0 || slot >= PI0_FAST_SCRATCH_SLOTS) return NULL;
    scratch_set *s = pthread_getspecific(g_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(g_key, s) != 0) { free(s); return NULL; }
    }
    if (s->n[slot] < nbytes) {
        size_t cap = (nbytes + nbytes / 4 + 4095) & ~(size_t)4095; /* headroom: fewer regrows */
        void *p = aligned_alloc(64, cap);
        if (!p) return NULL;
        free(s->p[slot]);
        s->p[slot] = p;
        s->n[slot] = cap;
    }
    return s->p[slot];
}
