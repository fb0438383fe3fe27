/* image.h - camera images: PNG/JPEG decoding, openpi's Pillow-bilinear resize-with-pad, and the
 * conversion to model values (PI0_IO.md §2, PI0_MODEL.md §7.2).
 *
 * Contract:
 * - Decoders take untrusted bytes. They never crash on corrupt or truncated data (libpng's setjmp,
 *   a libjpeg error manager that longjmps), check the image size against PI0_IMAGE_MAX_DIM and
 *   the budget's max_pixels before allocating, refuse a file too small to hold the size it declares
 *   (a 633-byte JPEG declaring 16384x4096 is not decoded to grey), stay within a decoding budget
 *   (pi0_image_budget below) and name the file (or the caller's label) in errors.
 * - Decoded images are always 8-bit RGB, HWC, converted as Pillow's Image.open(...).convert("RGB")
 *   does: gray is replicated, alpha is dropped (not composited, like `img[..., :3]`), palettes are
 *   expanded, 16-bit RGB/RGBA/gray+alpha samples keep their high byte (Pillow truncates), 16-bit
 *   gray is clipped to 255 (Pillow's mode "I" -> RGB), CMYK/YCCK JPEGs are read as Adobe (inverted)
 *   CMYK and converted with Pillow's formula.
 * - pi0_image_resize is Pillow's Image.resize(BILINEAR) on 8-bit data, bit-exact: separable,
 *   fixed point with 22 fractional bits, horizontal pass first into uint8, then vertical.
 * - Nothing here keeps pointers into caller memory.
 */
#ifndef PI0_IMAGE_H
#define PI0_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "pi0_policy.h"

#define PI0_IMAGE_MAX_DIM 16384              /* per side */
#define PI0_IMAGE_MAX_PIXELS (64LL << 20)    /* 64 Mi pixels = 192 MiB of RGB */
#define PI0_IMAGE_MAX_FILE (256LL << 20)     /* encoded file size read by pi0_image_load */

typedef struct {
    int h, w;       /* rows, columns */
    uint8_t *data;  /* [h, w, 3] RGB, malloc'd; free with pi0_image_free */
} pi0_image;

/* Decoding budget: what decoding one untrusted PNG/JPEG may cost. Progressive JPEG scans are passes
 * over the whole image, so a small file repeating its last scan thousands of times costs minutes
 * (issue 10): scans and pixels x scans are counted by a libjpeg progress monitor (called for every
 * iMCU row of every scan), and wall time and `cancel` are polled every few rows (PNG: every 16
 * rows of every interlace pass; JPEG: every progress call). Exceeding a limit fails with
 * PI0_ERR_UNSUPPORTED naming the limit; `cancel` returning non-zero fails with PI0_ERR_ABORTED.
 *
 * For the server: pi0_policy_infer passes its pi0_run_params.abort_cb/abort_user as `cancel`, so a
 * request whose client has gone stops inside a long decode as it does between model ops. Callers
 * decoding directly take pi0_image_budget_default() and set their own fields. */
typedef struct {
    int64_t max_pixels;        /* declared width x height; <= PI0_IMAGE_MAX_PIXELS (default: that) */
    int max_scans;             /* JPEG scans (SOS markers); a progressive file has ~10 (default 100) */
    int64_t max_scan_pixels;   /* JPEG scans x pixels, the decoding work (default 2^30: 16 scans at
                                * 16384x4096, 500 at 1920x1080) */
    double max_seconds;        /* wall time of one decode, 0 = none (default 5 s; a legit 64 Mpx
                                * image takes ~1 s) */
    int (*cancel)(void *user); /* NULL = never; polled during decoding, non-zero -> PI0_ERR_ABORTED */
    void *cancel_user;
} pi0_image_budget;

/* The defaults above (used by pi0_image_decode/load/from_array, the CLI and the policy). */
pi0_image_budget pi0_image_budget_default(void);

/* Decode a PNG or JPEG held in memory (format found from the magic bytes). `name` labels error
 * messages (a file name or an observation key; may be NULL). On error out->data is NULL. The
 * budget may be NULL (defaults). */
pi0_status pi0_image_decode_budget(const void *buf, size_t n, const char *name, const pi0_image_budget *budget,
                                   pi0_image *out);
/* pi0_image_decode_budget with the default budget. */
pi0_status pi0_image_decode(const void *buf, size_t n, const char *name, pi0_image *out);
/* Read (a regular file only: never blocks on a FIFO) and decode a PNG or JPEG file, default budget. */
pi0_status pi0_image_load(const char *path, pi0_image *out);
/* Free the pixels (NULL-safe, idempotent: sets data to NULL). */
void pi0_image_free(pi0_image *img);

/* 1 if the bytes start with a PNG or JPEG signature. */
int pi0_image_is_encoded(const void *buf, size_t n);

/* Convert an observation array to RGB uint8 HWC, as openpi's `_parse_image` does:
 *   - float arrays (F32/F64/F16): uint8(255 * x) with truncation (computed in the array's own
 *     precision; out-of-range values and NaN are clamped to 0..255 / 0 instead of numpy's
 *     undefined cast);
 *   - shape [3, H, W] is CHW (openpi's test is `shape[0] == 3`), else [H, W, 3] is HWC;
 *     a leading batch dimension of 1 is accepted; [H, W] is gray;
 *   - a 1-D uint8 array holding PNG/JPEG bytes is decoded.
 * Errors name `a->key`. */
pi0_status pi0_image_from_array(const pi0_array *a, pi0_image *out);
/* The same; encoded bytes are decoded under `budget` (NULL: defaults). */
pi0_status pi0_image_from_array_budget(const pi0_array *a, const pi0_image_budget *budget, pi0_image *out);

/* Pillow Image.resize((ow, oh), BILINEAR) of an 8-bit image with c interleaved channels.
 * src [h, w, c] -> dst [oh, ow, c]. Allocates a temporary buffer (NOMEM on failure). */
pi0_status pi0_image_resize(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow);

/* openpi_client.image_tools.resize_with_pad: keep the aspect ratio, resize with Pillow bilinear
 * and paste centred on a black [oh, ow, c] canvas (odd padding to the right/bottom). An image
 * already oh x ow is copied. [DIFF] a side that openpi would make 0 pixels (Pillow then raises)
 * is made 1 pixel. */
pi0_status pi0_image_resize_with_pad(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh,
                                     int ow);
/* The size the image is resized to before padding (rw, rh as in PI0_IO.md §2.1 step 2). */
void pi0_image_pad_geometry(int h, int w, int oh, int ow, int *rh, int *rw, int *top, int *left);

/* uint8 RGB HWC [h, w, 3] -> float CHW [3, h, w], x = (u / 255) * 2 - 1 in float32. */
void pi0_image_to_model(const uint8_t *hwc, int h, int w, float *chw);

#endif
