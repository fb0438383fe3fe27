/* weight.c - exact scalar dtype conversions and element access for stored weights. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

float pi0_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pi0_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                           /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float pi0_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f;
    if (exp == 0) {
        f = ldexpf((float)man, -24); /* zero or subnormal: exact */
        return sign ? -f : f;
    }
    uint32_t u = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
    memcpy(&f, &u, 4);
    return f;
}

float pi0_weight_at(const pi0_weight *w, int64_t i) {
    switch (w->dtype) {
    case PI0_DT_F32: { float v; memcpy(&v, (const char *)w->data + 4 * i, 4); return v; }
    case PI0_DT_BF16: { uint16_t h; memcpy(&h, (const char *)w->data + 2 * i, 2); return pi0_bf16_to_f32(h); }
    case PI0_DT_F16: { uint16_t h; memcpy(&h, (const char *)w->data + 2 * i, 2); return pi0_f16_to_f32(h); }
    default: return NAN;
    }
}
