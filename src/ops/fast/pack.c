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

static void init_header(pi0_fast_packed *p, void *data, int64_t n, int64_t k, int kind) {
    p->kind = kind;
    p->n = n;
    p->k = k;
    p->kp = kind == PI0_WEIGHTS_F32 ? k : kind == PI0_WEIGHTS_INT8 ? ((k + 3) & ~(int64_t)3) : ((k + 1) & ~(int64_t)1);
    p->n_panels = (n + PI0_FAST_NR - 1) / PI0_FAST_NR;
    p->data = data;
    p->scale = NULL;
    p->wsum = NULL;
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

pi0_status pi0_fast_pack_weight(pi0_fast_packed **out, const void *data, pi0_dtype dt, int64_t n,
                                int64_t k, int kind, const char *name) {
    *out = NULL;
    if (dt != PI0_DT_F32 && dt != PI0_DT_BF16 && dt != PI0_DT_F16)
        return pi0_err(PI0_ERR_UNSUPPORTED, "fast pack: weight '%s': dtype %d, expected F32, BF16 or F16",
                       name ? name : "?", (int)dt);
    if (kind != PI0_WEIGHTS_BF16 && kind != PI0_WEIGHTS_F32 && kind != PI0_WEIGHTS_INT8)
        return pi0_err(PI0_ERR_ARG, "fast pack: weight '%s': unknown weight kind %d", name ? name : "?", kind);
    if (n <= 0 || k <= 0)
        return pi0_err(PI0_ERR_ARG, "fast pack: weight '%s': shape [%lld, %lld]", name ? name : "?",
                       (long long)n, (long long)k);
    size_t nbytes = pi0_fast_packed_bytes(n, k, kind);
    pi0_fast_packed *p = malloc(sizeof *p);
    size_t mapped = 0;
    void *buf = p ? alloc_packed(nbytes, &mapped) : NULL;
    if (!p || !buf) {
        free(p);
        return pi0_err(PI0_ERR_NOMEM, "fast pack: weight '%s': cannot allocate %zu bytes", name ? name : "?", nbytes);
    }
    init_header(p, buf, n, k, kind);
    p->mapped = mapped;
    const pi0_fast_isa *isa = pi0_fast_isa_get();
    if (!isa->pack_fill || !isa->pack_fill(p, data, dt)) pi0_fast_pack_fill_generic(p, data, dt);
    *out = p;
    return PI0_OK;
}

void pi0_fast_packed_free(pi0_fast_packed *p) {
    if (!p) return;
    if (p->mapped) munmap(p->data, p->mapped);
    else free(p->data);
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
