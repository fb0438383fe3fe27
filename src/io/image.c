/* image.c - PNG/JPEG decoding (libpng, libjpeg-turbo), observation arrays to RGB uint8, Pillow's
 * bilinear resize, openpi's resize_with_pad, and uint8 -> model floats. Contract in image.h.
 *
 * Not here: choosing which camera goes to which slot (robot.c) or when to resize (policy). */
#include "io/image.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
/* after stdio.h: jpeglib.h uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void pi0_image_free(pi0_image *img) {
    if (!img) return;
    free(img->data);
    img->data = NULL;
}

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

static int is_png(const uint8_t *p, size_t n) { return n >= 8 && memcmp(p, png_magic, 8) == 0; }
static int is_jpeg(const uint8_t *p, size_t n) { return n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff; }

int pi0_image_is_encoded(const void *buf, size_t n) {
    return buf && (is_png(buf, n) || is_jpeg(buf, n));
}

/* Size check done before any pixel allocation. */
static pi0_status check_size(const char *name, const char *fmt, long long w, long long h) {
    if (w <= 0 || h <= 0)
        return pi0_err(PI0_ERR_FORMAT, "%s: %s image has size %lldx%lld (zero)", name, fmt, w, h);
    if (w > PI0_IMAGE_MAX_DIM || h > PI0_IMAGE_MAX_DIM || w * h > PI0_IMAGE_MAX_PIXELS)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: %s image %lldx%lld exceeds the limit (%d per side, %lld pixels)",
                       name, fmt, w, h, PI0_IMAGE_MAX_DIM, (long long)PI0_IMAGE_MAX_PIXELS);
    return PI0_OK;
}

// ---- PNG ---------------------------------------------------------------------------------------

typedef struct {
    const uint8_t *p;
    size_t n, off;
    const char *name;
    char msg[256];   /* libpng's error text, copied out before the longjmp */
    char warn[128];  /* the last warning, which often says why (e.g. "exceeds user limit") */
} png_src;

static void png_read_mem(png_structp png, png_bytep dst, size_t len) {
    png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->off) {
        snprintf(s->msg, sizeof s->msg, "truncated: needs %zu bytes at offset %zu, file has %zu", len, s->off, s->n);
        png_longjmp(png, 1);
    }
    memcpy(dst, s->p + s->off, len);
    s->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    if (s->msg[0] == '\0') snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->warn, sizeof s->warn, "%s", msg);
    pi0_log(PI0_LOG_DEBUG, "%s: png warning: %s", s->name, msg);
}

static pi0_status decode_png(const uint8_t *buf, size_t n, const char *name, pi0_image *out) {
    /* The reader state lives on the heap: it changes between setjmp and longjmp. */
    png_src *src = calloc(1, sizeof *src);
    if (!src) return pi0_err(PI0_ERR_NOMEM, "%s: png reader", name);
    *src = (png_src){.p = buf, .n = n, .name = name};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, png_on_error, png_on_warning);
    if (!png) { free(src); return pi0_err(PI0_ERR_NOMEM, "%s: png_create_read_struct failed", name); }
    png_infop info = png_create_info_struct(png);
    /* Modified between setjmp and longjmp, hence volatile. */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile pi0_status st = PI0_OK;
    if (!info) { st = pi0_err(PI0_ERR_NOMEM, "%s: png_create_info_struct failed", name); goto done; }
    if (setjmp(png_jmpbuf(png))) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: corrupt PNG: %s (near byte %zu)%s%s", name,
                     src->msg[0] ? src->msg : "unknown error", src->off, src->warn[0] ? "; " : "", src->warn);
        goto done;
    }
    png_set_read_fn(png, src, png_read_mem);
    png_set_user_limits(png, PI0_IMAGE_MAX_DIM, PI0_IMAGE_MAX_DIM);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((st = check_size(name, "PNG", w, h)) != PI0_OK) goto done;
    int color = png_get_color_type(png, info);
    /* To 8-bit RGB: expand palettes / low-bit gray / tRNS, scale 16-bit, replicate gray, drop alpha. */
    png_set_expand(png);
    png_set_scale_16(png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3 || png_get_bit_depth(png, info) != 8) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: PNG color type %d did not convert to 8-bit RGB", name, color);
        goto done;
    }
    pixels = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) { st = pi0_err(PI0_ERR_NOMEM, "%s: %ux%u image", name, (unsigned)w, (unsigned)h); goto done; }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);   /* checks the trailing chunks' CRCs and IEND: refuses truncated files */
    out->h = (int)h;
    out->w = (int)w;
    out->data = pixels;
    pixels = NULL;
done:
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    free(rows);
    free(pixels);
    free(src);
    return st;
}

// ---- JPEG --------------------------------------------------------------------------------------

typedef struct {
    struct jpeg_error_mgr mgr;   /* first: libjpeg hands us a pointer to it */
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    int premature_eof;
    const char *name;
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* libjpeg reports a truncated stream as a warning and pads with gray; we refuse it (Pillow does
 * too: "image file is truncated"). Other warnings are logged. Never printed to stderr directly. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level >= 0) return;   /* trace messages */
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) e->premature_eof = 1;
    char m[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, m);
    cinfo->err->num_warnings++;
    pi0_log(PI0_LOG_DEBUG, "%s: jpeg warning: %s", e->name, m);
}

static pi0_status decode_jpeg(const uint8_t *buf, size_t n, const char *name, pi0_image *out) {
    /* Decoder and error state live on the heap: they change between setjmp and longjmp. */
    struct jdec { struct jpeg_decompress_struct cinfo; jpeg_err err; } *d = calloc(1, sizeof *d);
    if (!d) return pi0_err(PI0_ERR_NOMEM, "%s: jpeg decoder", name);
    struct jpeg_decompress_struct *ci = &d->cinfo;
    jpeg_err *e = &d->err;
    e->name = name;
    uint8_t *volatile pixels = NULL;
    volatile pi0_status st = PI0_OK;
    ci->err = jpeg_std_error(&e->mgr);
    e->mgr.error_exit = jpeg_on_error;
    e->mgr.emit_message = jpeg_on_message;
    if (setjmp(e->jmp)) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: corrupt JPEG: %s", name, e->msg);
        goto done;
    }
    jpeg_create_decompress(ci);
    if (n > (unsigned long)-1) { st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: JPEG too large", name); goto done; }
    jpeg_mem_src(ci, buf, (unsigned long)n);
    jpeg_read_header(ci, TRUE);
    if ((st = check_size(name, "JPEG", ci->image_width, ci->image_height)) != PI0_OK) goto done;
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: CMYK JPEG is not supported", name);
        goto done;
    }
    ci->out_color_space = JCS_RGB;
    jpeg_start_decompress(ci);
    if (ci->output_components != 3) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: JPEG decodes to %d components, expected 3", name, ci->output_components);
        goto done;
    }
    size_t w = ci->output_width, h = ci->output_height;
    pixels = malloc(w * h * 3);
    if (!pixels) { st = pi0_err(PI0_ERR_NOMEM, "%s: %zux%zu image", name, w, h); goto done; }
    while (ci->output_scanline < ci->output_height && !e->premature_eof) {
        JSAMPROW row = pixels + (size_t)ci->output_scanline * w * 3;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) break;
    }
    if (e->premature_eof || ci->output_scanline < ci->output_height) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: truncated JPEG (%zu bytes; data ended at row %u of %zu)", name, n,
                     ci->output_scanline, h);
        goto done;
    }
    jpeg_finish_decompress(ci);
    if (e->premature_eof) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: truncated JPEG (%zu bytes; no end-of-image marker)", name, n);
        goto done;
    }
    out->h = (int)h;
    out->w = (int)w;
    out->data = pixels;
    pixels = NULL;
done:
    jpeg_destroy_decompress(ci);
    free(pixels);
    free(d);
    return st;
}

// ---- entry points ------------------------------------------------------------------------------

pi0_status pi0_image_decode(const void *buf, size_t n, const char *name, pi0_image *out) {
    if (!name) name = "image";
    if (!out) return pi0_err(PI0_ERR_ARG, "%s: out is NULL", name);
    out->h = out->w = 0;
    out->data = NULL;
    if (!buf || n == 0) return pi0_err(PI0_ERR_FORMAT, "%s: empty image data (0 bytes)", name);
    const uint8_t *p = buf;
    if (is_png(p, n)) return decode_png(p, n, name, out);
    if (is_jpeg(p, n)) return decode_jpeg(p, n, name, out);
    char hex[3 * 8 + 1] = "";
    for (size_t i = 0; i < n && i < 8; i++) snprintf(hex + 3 * i, 4, " %02x", p[i]);
    return pi0_err(PI0_ERR_FORMAT, "%s: not a PNG or JPEG image (%zu bytes, starts with%s)", name, n, hex);
}

pi0_status pi0_image_load(const char *path, pi0_image *out) {
    if (!path || !out) return pi0_err(PI0_ERR_ARG, "pi0_image_load: NULL argument");
    out->data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return pi0_err(PI0_ERR_IO, "%s: cannot open", path);
    uint8_t *buf = NULL;
    pi0_status st = PI0_OK;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) { st = pi0_err(PI0_ERR_IO, "%s: cannot seek", path); goto done; }
    if (size > PI0_IMAGE_MAX_FILE) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: file is %ld bytes, limit %lld", path, size, (long long)PI0_IMAGE_MAX_FILE);
        goto done;
    }
    buf = malloc(size ? (size_t)size : 1);
    if (!buf) { st = pi0_err(PI0_ERR_NOMEM, "%s: %ld bytes", path, size); goto done; }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) { st = pi0_err(PI0_ERR_IO, "%s: short read", path); goto done; }
    st = pi0_image_decode(buf, (size_t)size, path, out);
done:
    free(buf);
    fclose(f);
    return st;
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

pi0_status pi0_image_from_array(const pi0_array *a, pi0_image *out) {
    if (!a || !out) return pi0_err(PI0_ERR_ARG, "pi0_image_from_array: NULL argument");
    const char *key = a->key ? a->key : "image";
    out->data = NULL;
    if (!a->data) return pi0_err(PI0_ERR_ARG, "'%s': data is NULL", key);
    if (a->ndim < 0 || a->ndim > 4) return pi0_err(PI0_ERR_ARG, "'%s': ndim %d", key, a->ndim);
    if (a->ndim == 1 && a->dtype == PI0_ARR_U8) {
        if (a->shape[0] < 0) return pi0_err(PI0_ERR_ARG, "'%s': negative shape", key);
        return pi0_image_decode(a->data, (size_t)a->shape[0], key, out);
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
