/* image.h - camera images: PNG/JPEG decoding, openpi's Pillow-bilinear resize-with-pad, and the
 * conversion to model values (PI0_IO.md §2, PI0_MODEL.md §7.2).
 *
 * Contract:
 * - Decoders take untrusted bytes. They never crash on corrupt or truncated data (libpng's setjmp,
 *   a libjpeg error manager that longjmps), check the image size against PI0_IMAGE_MAX_DIM and
 *   PI0_IMAGE_MAX_PIXELS before allocating, and name the file (or the caller's label) in errors.
 * - Decoded images are always 8-bit RGB, HWC: gray is replicated, alpha is dropped (not composited,
 *   like `img[..., :3]`), palettes are expanded, 16-bit PNG samples are scaled to 8 bits.
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

/* Decode a PNG or JPEG held in memory (format found from the magic bytes). `name` labels error
 * messages (a file name or an observation key; may be NULL). On error out->data is NULL. */
pi0_status pi0_image_decode(const void *buf, size_t n, const char *name, pi0_image *out);
/* Read and decode a PNG or JPEG file. */
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
