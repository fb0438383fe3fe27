/* image_decode.c - PNG/JPEG decoding (libpng, libjpeg-turbo) under a budget, with Pillow's
 * conversions to 8-bit RGB. Contract in image.h.
 *
 * Budget (issue 10, finding 1): a few hundred bytes can declare a 16384 x 4096 image, and a
 * progressive JPEG can repeat a scan thousands of times (each scan is a pass over the whole image).
 * So, before any pixel is allocated, the declared size is checked against max_pixels and against
 * what the file can possibly hold (a Huffman-coded JPEG spends at least 1 bit per 8x8 block; deflate
 * compresses at most 1032:1); during decoding, a libjpeg progress monitor counts scans and
 * pixels x scans, and every few rows the wall time and the cancel callback are checked. */
#include "io/image.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <time.h>
/* after stdio.h: jpeglib.h uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io/file.h"

pi0_image_budget pi0_image_budget_default(void) {
    pi0_image_budget b;
    memset(&b, 0, sizeof b);
    b.max_pixels = PI0_IMAGE_MAX_PIXELS;
    b.max_scans = 100;
    b.max_scan_pixels = (int64_t)1 << 30;
    b.max_seconds = 5.0;
    return b;
}

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

static int is_png(const uint8_t *p, size_t n) { return n >= 8 && memcmp(p, png_magic, 8) == 0; }
static int is_jpeg(const uint8_t *p, size_t n) { return n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff; }

int pi0_image_is_encoded(const void *buf, size_t n) {
    return buf && (is_png(buf, n) || is_jpeg(buf, n));
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Size check done before any pixel allocation. */
static pi0_status check_size(const char *name, const char *fmt, long long w, long long h, const pi0_image_budget *b) {
    long long max_px = b->max_pixels > 0 && b->max_pixels < PI0_IMAGE_MAX_PIXELS ? b->max_pixels : PI0_IMAGE_MAX_PIXELS;
    if (w <= 0 || h <= 0)
        return pi0_err(PI0_ERR_FORMAT, "%s: %s image has size %lldx%lld (zero)", name, fmt, w, h);
    if (w > PI0_IMAGE_MAX_DIM || h > PI0_IMAGE_MAX_DIM || w * h > max_px)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: %s image %lldx%lld exceeds the limit (%d per side, %lld pixels)",
                       name, fmt, w, h, PI0_IMAGE_MAX_DIM, max_px);
    return PI0_OK;
}

/* Time and cancellation, polled during decoding. Returns 0 to go on; else formats msg. */
typedef struct {
    const pi0_image_budget *b;
    double t0;
    int aborted;
    char msg[160];
} budget_clock;

static int budget_poll(budget_clock *bc) {
    const pi0_image_budget *b = bc->b;
    if (b->cancel && b->cancel(b->cancel_user)) {
        bc->aborted = 1;
        snprintf(bc->msg, sizeof bc->msg, "decoding cancelled");
        return 1;
    }
    double dt = now_s() - bc->t0;
    if (b->max_seconds > 0 && dt > b->max_seconds) {
        snprintf(bc->msg, sizeof bc->msg, "decoding took more than the %.3g s budget", b->max_seconds);
        return 1;
    }
    return 0;
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

/* Conversions to 8-bit RGB follow Pillow (PngImagePlugin's modes, then convert("RGB")): 16-bit
 * colour, grey+alpha and RGBA samples keep their high byte (Pillow's "RGB;16B" unpackers truncate;
 * libpng's png_set_scale_16 would round), 16-bit grey is Pillow mode "I" whose conversion to RGB
 * clips the 0..65535 value to 0..255, alpha is dropped, palettes and low-bit grey expand as Pillow's. */
static pi0_status decode_png(const uint8_t *buf, size_t n, const char *name, const pi0_image_budget *b, pi0_image *out) {
    /* The reader state lives on the heap: it changes between setjmp and longjmp. */
    png_src *src = calloc(1, sizeof *src);
    if (!src) return pi0_err(PI0_ERR_NOMEM, "%s: png reader", name);
    *src = (png_src){.p = buf, .n = n, .name = name};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, png_on_error, png_on_warning);
    if (!png) { free(src); return pi0_err(PI0_ERR_NOMEM, "%s: png_create_read_struct failed", name); }
    png_infop info = png_create_info_struct(png);
    /* Modified between setjmp and longjmp, hence volatile. */
    uint8_t *volatile pixels = NULL, *volatile gray16 = NULL;
    png_bytep *volatile rows = NULL;
    volatile pi0_status st = PI0_OK;
    budget_clock bc = {.b = b, .t0 = now_s()};
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
    if ((st = check_size(name, "PNG", w, h, b)) != PI0_OK) goto done;
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    int channels = png_get_channels(png, info);
    /* Filtered rows are h * (1 + row bytes); deflate cannot compress them more than 1032:1. */
    uint64_t raw = (uint64_t)h * (1 + ((uint64_t)w * (uint64_t)channels * (uint64_t)depth + 7) / 8);
    if ((uint64_t)n < raw / 1032) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: PNG declares %ux%u (%llu bytes of pixel data) but holds only %zu bytes: "
                                     "deflate cannot compress more than 1032:1", name, (unsigned)w, (unsigned)h,
                     (unsigned long long)raw, n);
        goto done;
    }
    int is_gray16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
    if (!is_gray16) {
        png_set_expand(png);
        png_set_strip_16(png);
        if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
        png_set_strip_alpha(png);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rb = png_get_rowbytes(png, info), want = (size_t)w * (is_gray16 ? 2 : 3);
    if (rb != want || png_get_bit_depth(png, info) != (is_gray16 ? 16 : 8)) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: PNG color type %d, depth %d did not convert to RGB", name, color, depth);
        goto done;
    }
    pixels = malloc((size_t)w * h * 3);
    if (is_gray16) gray16 = malloc((size_t)w * h * 2);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows || (is_gray16 && !gray16)) {
        st = pi0_err(PI0_ERR_NOMEM, "%s: %ux%u image", name, (unsigned)w, (unsigned)h);
        goto done;
    }
    uint8_t *base = is_gray16 ? gray16 : pixels;
    for (png_uint_32 y = 0; y < h; y++) rows[y] = base + (size_t)y * rb;
    /* Row by row (each pass of an interlaced file) so the budget is polled during decoding. */
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < h; y++) {
            if ((y & 15) == 0 && budget_poll(&bc)) {
                st = pi0_err(bc.aborted ? PI0_ERR_ABORTED : PI0_ERR_UNSUPPORTED, "%s: PNG %ux%u: %s (pass %d, row %u)",
                             name, (unsigned)w, (unsigned)h, bc.msg, pass + 1, (unsigned)y);
                goto done;
            }
            png_read_row(png, rows[y], NULL);
        }
    png_read_end(png, NULL);   /* checks the trailing chunks' CRCs and IEND: refuses truncated files */
    if (is_gray16) {
        for (size_t i = 0; i < (size_t)w * h; i++) {
            unsigned v = (unsigned)gray16[2 * i] << 8 | gray16[2 * i + 1];
            pixels[3 * i] = pixels[3 * i + 1] = pixels[3 * i + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    out->h = (int)h;
    out->w = (int)w;
    out->data = pixels;
    pixels = NULL;
done:
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    free(rows);
    free(pixels);
    free(gray16);
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

typedef struct {
    struct jpeg_progress_mgr mgr; /* first: cinfo->progress points at it */
    budget_clock bc;
    jpeg_err *err;
    int over;                     /* 1 budget exceeded (message in bc.msg) */
} jpeg_budget;

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

/* Called by libjpeg for every iMCU row of every scan while it absorbs a multi-scan file, and for
 * every jpeg_read_scanlines call: counts scans and pixels x scans, checks time and cancellation. */
static void jpeg_progress(j_common_ptr cinfo) {
    jpeg_budget *jb = (jpeg_budget *)cinfo->progress;
    const pi0_image_budget *b = jb->bc.b;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    int64_t scans = d->input_scan_number, px = (int64_t)d->image_width * d->image_height;
    if (b->max_scans > 0 && scans > b->max_scans)
        snprintf(jb->bc.msg, sizeof jb->bc.msg, "more than %d scans", b->max_scans), jb->over = 1;
    else if (b->max_scan_pixels > 0 && scans * px > b->max_scan_pixels)
        snprintf(jb->bc.msg, sizeof jb->bc.msg, "%lld scans x %lld pixels exceed the budget of %lld pixel-scans",
                 (long long)scans, (long long)px, (long long)b->max_scan_pixels), jb->over = 1;
    else if (budget_poll(&jb->bc))
        jb->over = 1;
    if (jb->over) {
        snprintf(jb->err->msg, sizeof jb->err->msg, "%s", jb->bc.msg);
        longjmp(jb->err->jmp, 2);
    }
}

/* Pillow reads every 4-component JPEG as Adobe (inverted) CMYK ("CMYK;I") and converts it to RGB
 * with nk = 255 - k, out = nk - nk * c / 255 (rounded as its MULDIV255), here on the raw samples. */
static uint8_t cmyk_channel(uint8_t raw_c, uint8_t raw_k) {
    int c = 255 - raw_c, nk = raw_k; /* nk = 255 - (255 - raw_k) */
    int t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static pi0_status decode_jpeg(const uint8_t *buf, size_t n, const char *name, const pi0_image_budget *b, pi0_image *out) {
    /* Decoder and error state live on the heap: they change between setjmp and longjmp. */
    struct jdec { struct jpeg_decompress_struct cinfo; jpeg_err err; jpeg_budget jb; } *d = calloc(1, sizeof *d);
    if (!d) return pi0_err(PI0_ERR_NOMEM, "%s: jpeg decoder", name);
    struct jpeg_decompress_struct *ci = &d->cinfo;
    jpeg_err *e = &d->err;
    e->name = name;
    uint8_t *volatile pixels = NULL, *volatile row4 = NULL;
    volatile pi0_status st = PI0_OK;
    ci->err = jpeg_std_error(&e->mgr);
    e->mgr.error_exit = jpeg_on_error;
    e->mgr.emit_message = jpeg_on_message;
    d->jb.mgr.progress_monitor = jpeg_progress;
    d->jb.bc = (budget_clock){.b = b, .t0 = now_s()};
    d->jb.err = e;
    int jr = setjmp(e->jmp);
    if (jr) {
        if (d->jb.over)
            st = pi0_err(d->jb.bc.aborted ? PI0_ERR_ABORTED : PI0_ERR_UNSUPPORTED, "%s: JPEG %ux%u: %s (at scan %d)", name,
                         ci->image_width, ci->image_height, e->msg, ci->input_scan_number);
        else
            st = pi0_err(PI0_ERR_FORMAT, "%s: corrupt JPEG: %s", name, e->msg);
        goto done;
    }
    jpeg_create_decompress(ci);
    ci->progress = &d->jb.mgr;
    if (n > (unsigned long)-1) { st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: JPEG too large", name); goto done; }
    jpeg_mem_src(ci, buf, (unsigned long)n);
    jpeg_read_header(ci, TRUE);
    if ((st = check_size(name, "JPEG", ci->image_width, ci->image_height, b)) != PI0_OK) goto done;
    /* Every 8x8 block of every component costs at least one bit of entropy-coded data. */
    uint64_t blocks = 0;
    for (int c = 0; c < ci->num_components; c++)
        blocks += (uint64_t)ci->comp_info[c].width_in_blocks * ci->comp_info[c].height_in_blocks;
    if ((uint64_t)n * 8 < blocks) {
        st = pi0_err(PI0_ERR_FORMAT, "%s: JPEG declares %ux%u (%llu blocks of 8x8) but holds only %zu bytes, less than "
                                     "1 bit per block", name, ci->image_width, ci->image_height,
                     (unsigned long long)blocks, n);
        goto done;
    }
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(ci);
    if (ci->output_components != (cmyk ? 4 : 3)) {
        st = pi0_err(PI0_ERR_UNSUPPORTED, "%s: JPEG decodes to %d components, expected %d", name, ci->output_components,
                     cmyk ? 4 : 3);
        goto done;
    }
    size_t w = ci->output_width, h = ci->output_height;
    pixels = malloc(w * h * 3);
    if (cmyk) row4 = malloc(w * 4);
    if (!pixels || (cmyk && !row4)) { st = pi0_err(PI0_ERR_NOMEM, "%s: %zux%zu image", name, w, h); goto done; }
    while (ci->output_scanline < ci->output_height && !e->premature_eof) {
        uint8_t *dst = pixels + (size_t)ci->output_scanline * w * 3;
        JSAMPROW row = cmyk ? row4 : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) break;
        if (cmyk)
            for (size_t x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) dst[3 * x + c] = cmyk_channel(row4[4 * x + c], row4[4 * x + 3]);
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
    free(row4);
    free(d);
    return st;
}

// ---- entry points ------------------------------------------------------------------------------

pi0_status pi0_image_decode_budget(const void *buf, size_t n, const char *name, const pi0_image_budget *b,
                                   pi0_image *out) {
    if (!name) name = "image";
    if (!out) return pi0_err(PI0_ERR_ARG, "%s: out is NULL", name);
    out->h = out->w = 0;
    out->data = NULL;
    pi0_image_budget def = pi0_image_budget_default();
    if (!b) b = &def;
    if (!buf || n == 0) return pi0_err(PI0_ERR_FORMAT, "%s: empty image data (0 bytes)", name);
    const uint8_t *p = buf;
    if (is_png(p, n)) return decode_png(p, n, name, b, out);
    if (is_jpeg(p, n)) return decode_jpeg(p, n, name, b, out);
    char hex[3 * 8 + 1] = "";
    for (size_t i = 0; i < n && i < 8; i++) snprintf(hex + 3 * i, 4, " %02x", p[i]);
    return pi0_err(PI0_ERR_FORMAT, "%s: not a PNG or JPEG image (%zu bytes, starts with%s)", name, n, hex);
}

pi0_status pi0_image_decode(const void *buf, size_t n, const char *name, pi0_image *out) {
    return pi0_image_decode_budget(buf, n, name, NULL, out);
}

pi0_status pi0_image_load(const char *path, pi0_image *out) {
    if (!path || !out) return pi0_err(PI0_ERR_ARG, "pi0_image_load: NULL argument");
    out->data = NULL;
    char *buf;
    size_t size;
    pi0_status st = pi0_file_read(path, "image", (size_t)PI0_IMAGE_MAX_FILE, &buf, &size);
    if (st) return st;
    st = pi0_image_decode(buf, size, path, out);
    free(buf);
    return st;
}
