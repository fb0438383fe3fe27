/* image.c - observation arrays to RGB uint8, Pillow's bilinear resize, openpi's resize_with_pad,
 * and uint8 -> model floats. Contract in image.h. PNG/JPEG decoding is in image_decode.c.
 *
 * Not here: choosing which camera goes to which slot (robot.c) or when to resize (policy). */
#include "io/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void pi0_image_free(pi0_image *img) {
    if (!img) return;
    free(img->data);
    img->data = NULL;
}

// ---- observation arrays ------------------------------------------------------------------------

static float half_to_float(uint16_t h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* uint8(255 * x), truncating; numpy's cast is undefined out of range, we clamp (NaN -> 0). */
static uint8_t f32_to_u8(float x) {
    float v = 255.0f * x;
    if (!(v > 0.0f)) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}
static uint8_t f64_to_u8(double x) {
    double v = 255.0 * x;
    if (!(v > 0.0)) return 0;
    if (v >= 255.0) return 255;
    return (uint8_t)v;
}

pi0_status pi0_image_from_array(const pi0_array *a, pi0_image *out) { return pi0_image_from_array_budget(a, NULL, out); }

pi0_status pi0_image_from_array_budget(const pi0_array *a, const pi0_image_budget *b, pi0_image *out) {
    if (!a || !out) return pi0_err(PI0_ERR_ARG, "pi0_image_from_array: NULL argument");
    const char *key = a->key ? a->key : "image";
    out->data = NULL;
    if (!a->data) return pi0_err(PI0_ERR_ARG, "'%s': data is NULL", key);
    if (a->ndim < 0 || a->ndim > 4) return pi0_err(PI0_ERR_ARG, "'%s': ndim %d", key, a->ndim);
    if (a->ndim == 1 && a->dtype == PI0_ARR_U8) {
        if (a->shape[0] < 0) return pi0_err(PI0_ERR_ARG, "'%s': negative shape", key);
        return pi0_image_decode_budget(a->data, (size_t)a->shape[0], key, b, out);
    }
    int64_t s[4];
    int nd = a->ndim;
    memcpy(s, a->shape, sizeof s);
    if (nd == 4) {
        if (s[0] != 1) return pi0_err(PI0_ERR_ARG, "'%s': batch dimension %lld, expected 1", key, (long long)s[0]);
        memmove(s, s + 1, 3 * sizeof s[0]);
        nd = 3;
    }
    int64_t h, w, c;
    int chw;
    if (nd == 2) { h = s[0]; w = s[1]; c = 1; chw = 0; }
    else if (nd == 3 && s[0] == 3) { c = 3; h = s[1]; w = s[2]; chw = 1; }
    else if (nd == 3 && s[2] == 3) { h = s[0]; w = s[1]; c = 3; chw = 0; }
    else {
        return pi0_err(PI0_ERR_ARG, "'%s': image shape [%lld, %lld, %lld] (ndim %d), expected [H, W, 3] or [3, H, W]", key,
                       (long long)s[0], (long long)(nd > 1 ? s[1] : 0), (long long)(nd > 2 ? s[2] : 0), a->ndim);
    }
    if (h <= 0 || w <= 0)
        return pi0_err(PI0_ERR_ARG, "'%s': image size %lldx%lld is empty", key, (long long)w, (long long)h);
    if (h > PI0_IMAGE_MAX_DIM || w > PI0_IMAGE_MAX_DIM || h * w > PI0_IMAGE_MAX_PIXELS)
        return pi0_err(PI0_ERR_UNSUPPORTED, "'%s': image %lldx%lld exceeds the size limit", key, (long long)w, (long long)h);
    if (a->dtype != PI0_ARR_U8 && a->dtype != PI0_ARR_F32 && a->dtype != PI0_ARR_F64 && a->dtype != PI0_ARR_F16)
        return pi0_err(PI0_ERR_ARG, "'%s': image dtype %d, expected uint8 or float", key, a->dtype);
    uint8_t *px = malloc((size_t)(h * w * 3));
    if (!px) return pi0_err(PI0_ERR_NOMEM, "'%s': %lldx%lld image", key, (long long)w, (long long)h);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t ch = 0; ch < 3; ch++) {
                int64_t cc = c == 1 ? 0 : ch;
                int64_t i = chw ? (cc * h + y) * w + x : (y * w + x) * c + cc;
                uint8_t v;
                switch (a->dtype) {
                case PI0_ARR_U8: v = ((const uint8_t *)a->data)[i]; break;
                case PI0_ARR_F32: v = f32_to_u8(((const float *)a->data)[i]); break;
                case PI0_ARR_F16: v = f32_to_u8(half_to_float(((const uint16_t *)a->data)[i])); break;
                default: v = f64_to_u8(((const double *)a->data)[i]); break;
                }
                px[(y * w + x) * 3 + ch] = v;
            }
    out->h = (int)h;
    out->w = (int)w;
    out->data = px;
    return PI0_OK;
}

// ---- Pillow bilinear resize (libImaging/Resample.c, 8-bit path) ---------------------------------

#define PREC_BITS 22   /* Pillow's PRECISION_BITS = 32 - 8 - 2 */

typedef struct {
    int ksize;
    int *bounds;   /* [n_out, 2]: xmin, count */
    int *k;        /* [n_out, ksize] fixed-point weights */
} coeffs;

static double bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* precompute_coeffs + normalize_coeffs_8bpc for a box [0, n_in), filter support 1. Note Pillow
 * multiplies by ss = 1/filterscale rather than dividing by filterscale; we do the same so the
 * doubles match bit for bit. */
static int coeffs_make(coeffs *c, int n_in, int n_out) {
    double scale = (double)n_in / n_out;
    double fs = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fs;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)n_out);
    c->k = malloc(sizeof(int) * (size_t)c->ksize * (size_t)n_out);
    double *w = malloc(sizeof(double) * (size_t)c->ksize);
    if (!c->bounds || !c->k || !w) { free(w); return -1; }
    double ss = 1.0 / fs;
    for (int o = 0; o < n_out; o++) {
        double center = (o + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > n_in) xmax = n_in;
        int count = xmax - xmin;
        double sum = 0.0;
        for (int x = 0; x < count; x++) {
            w[x] = bilinear((x + xmin - center + 0.5) * ss);
            sum += w[x];
        }
        int *k = c->k + (size_t)o * c->ksize;
        for (int x = 0; x < c->ksize; x++) {
            double v = x < count ? (sum != 0.0 ? w[x] / sum : w[x]) : 0.0;
            k[x] = v < 0 ? (int)(-0.5 + v * (1 << PREC_BITS)) : (int)(0.5 + v * (1 << PREC_BITS));
        }
        c->bounds[2 * o] = xmin;
        c->bounds[2 * o + 1] = count;
    }
    free(w);
    return 0;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
}

static uint8_t clip8(int v) {
    if (v >= (1 << PREC_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PREC_BITS);
}

/* src [h, w_in, c] -> dst [h, w_out, c] */
static void pass_h(const uint8_t *src, int h, int w_in, int c, uint8_t *dst, int w_out, const coeffs *cf) {
    for (int y = 0; y < h; y++)
        for (int o = 0; o < w_out; o++) {
            int xmin = cf->bounds[2 * o], count = cf->bounds[2 * o + 1];
            const int *k = cf->k + (size_t)o * cf->ksize;
            for (int ch = 0; ch < c; ch++) {
                int acc = 1 << (PREC_BITS - 1);
                for (int x = 0; x < count; x++) acc += src[((size_t)y * w_in + xmin + x) * c + ch] * k[x];
                dst[((size_t)y * w_out + o) * c + ch] = clip8(acc);
            }
        }
}

/* src [h_in, w, c] -> dst [h_out, w, c] */
static void pass_v(const uint8_t *src, int w, int c, uint8_t *dst, int h_out, const coeffs *cf) {
    for (int o = 0; o < h_out; o++) {
        int ymin = cf->bounds[2 * o], count = cf->bounds[2 * o + 1];
        const int *k = cf->k + (size_t)o * cf->ksize;
        for (int i = 0; i < w * c; i++) {
            int acc = 1 << (PREC_BITS - 1);
            for (int y = 0; y < count; y++) acc += src[(size_t)(ymin + y) * w * c + i] * k[y];
            dst[(size_t)o * w * c + i] = clip8(acc);
        }
    }
}

pi0_status pi0_image_resize(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow) {
    if (!src || !dst || h <= 0 || w <= 0 || c <= 0 || oh <= 0 || ow <= 0)
        return pi0_err(PI0_ERR_ARG, "pi0_image_resize: bad arguments (%dx%dx%d -> %dx%d)", w, h, c, ow, oh);
    int need_h = ow != w, need_v = oh != h;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)h * w * c);
        return PI0_OK;
    }
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    pi0_status st = PI0_OK;
    if ((need_h && coeffs_make(&ch, w, ow)) || (need_v && coeffs_make(&cv, h, oh))) goto nomem;
    if (need_h && need_v) {
        tmp = malloc((size_t)h * ow * c);
        if (!tmp) goto nomem;
        pass_h(src, h, w, c, tmp, ow, &ch);
        pass_v(tmp, ow, c, dst, oh, &cv);
    } else if (need_h) {
        pass_h(src, h, w, c, dst, ow, &ch);
    } else {
        pass_v(src, w, c, dst, oh, &cv);
    }
    goto done;
nomem:
    st = pi0_err(PI0_ERR_NOMEM, "resize %dx%d -> %dx%d", w, h, ow, oh);
done:
    coeffs_free(&ch);
    coeffs_free(&cv);
    free(tmp);
    return st;
}

void pi0_image_pad_geometry(int h, int w, int oh, int ow, int *rh, int *rw, int *top, int *left) {
    /* Same double expressions, same order as openpi's _resize_with_pad_pil. */
    double ratio = fmax((double)w / ow, (double)h / oh);
    int rw_ = (int)((double)w / ratio), rh_ = (int)((double)h / ratio);
    if (rw_ < 1) rw_ = 1;
    if (rh_ < 1) rh_ = 1;
    int t = (int)((double)(oh - rh_) / 2), l = (int)((double)(ow - rw_) / 2);
    *rh = rh_;
    *rw = rw_;
    *top = t > 0 ? t : 0;
    *left = l > 0 ? l : 0;
}

pi0_status pi0_image_resize_with_pad(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow) {
    if (!src || !dst || h <= 0 || w <= 0 || c <= 0 || oh <= 0 || ow <= 0)
        return pi0_err(PI0_ERR_ARG, "resize_with_pad: bad arguments (%dx%dx%d -> %dx%d)", w, h, c, ow, oh);
    if (h == oh && w == ow) {
        memcpy(dst, src, (size_t)h * w * c);
        return PI0_OK;
    }
    int rh, rw, top, left;
    pi0_image_pad_geometry(h, w, oh, ow, &rh, &rw, &top, &left);
    uint8_t *tmp = malloc((size_t)rh * rw * c);
    if (!tmp) return pi0_err(PI0_ERR_NOMEM, "resize_with_pad %dx%d -> %dx%d", w, h, rw, rh);
    pi0_status st = pi0_image_resize(src, h, w, c, tmp, rh, rw);
    if (st == PI0_OK) {
        memset(dst, 0, (size_t)oh * ow * c);
        for (int y = 0; y < rh && top + y < oh; y++) {
            int n = rw < ow - left ? rw : ow - left;
            memcpy(dst + ((size_t)(top + y) * ow + left) * c, tmp + (size_t)y * rw * c, (size_t)n * c);
        }
    }
    free(tmp);
    return st;
}

void pi0_image_to_model(const uint8_t *hwc, int h, int w, float *chw) {
    size_t hw = (size_t)h * w;
    for (size_t i = 0; i < hw; i++)
        for (int ch = 0; ch < 3; ch++) chw[ch * hw + i] = ((float)hwc[i * 3 + ch] / 255.0f) * 2.0f - 1.0f;
}
