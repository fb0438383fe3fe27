/* lerobot_image.c - a camera image as LeRobot's π0 / π0.5 feed it to the model
 * (policies/pi0/modeling_pi0.py _preprocess_images, policies/common/vla_utils.py
 * resize_with_pad_torch), float32 throughout:
 *   u8 pixels -> u / 255 (prepare_observation_for_inference); float images are taken as given;
 *   the camera's VISUAL normalization when the checkpoint has one (per channel, the preprocessor);
 *   if (H, W) != (S, S): ratio = max(W / S, H / S) (double), rh = int(H / ratio), rw = int(W / ratio);
 *     F.interpolate(mode="bilinear", align_corners=False, antialias=False) to rh x rw;
 *     clamp to [0, 1]; pad with 0 centred (the odd pixel right / bottom);
 *   x * 2 - 1.
 * The resize follows ATen's generic CPU kernel for contiguous NCHW float input
 * (UpSampleKernel.cpp, HelperInterpLinear): per axis scale = (float)in / out, source
 * s = max(scale * (o + 0.5) - 0.5, 0), i0 = min(floor(s), in - 1), l1 = clamp(s - i0, 0, 1),
 * i1 = i0 + (i0 < in - 1), l0 = 1 - l1 (an axis whose size does not change copies); the value is
 * (x[y0][x0] w0 + x[y0][x1] w1) h0 + (x[y1][x0] w0 + x[y1][x1] w1) h1, all in float.
 * Unlike openpi's Pillow path this does not antialias when downscaling. lerobot <= 0.3 padded at the
 * left / top instead and did not clamp (old_layout). */
#include "io/lerobot_image.h"

#include <math.h>
#include <stdlib.h>

#include "err.h"
#include "io/lerobot.h"

typedef struct {
    int i0, i1;
    float l0, l1;
} tap;

static void axis_taps(int in, int out, tap *t) {
    const float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        if (in == out) {
            t[o] = (tap){o, o, 1.0f, 0.0f};
            continue;
        }
        float s = scale * ((float)o + 0.5f) - 0.5f;
        if (s < 0.0f) s = 0.0f;
        int i0 = (int)floorf(s);
        if (i0 > in - 1) i0 = in - 1;
        float l1 = s - (float)i0;
        if (l1 < 0.0f) l1 = 0.0f;
        if (l1 > 1.0f) l1 = 1.0f;
        t[o] = (tap){i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
    }
}

void pi0_lr_pad_geometry(int h, int w, int S, int *rh, int *rw, int *top, int *left) {
    double ratio = (double)w / S > (double)h / S ? (double)w / S : (double)h / S;
    *rh = (int)(h / ratio);
    *rw = (int)(w / ratio);
    if (*rh < 1) *rh = 1;   /* [DIFF] F.interpolate refuses a 0-pixel side */
    if (*rw < 1) *rw = 1;
    *top = (S - *rh) / 2;    /* divmod: the remainder goes to the bottom / right */
    *left = (S - *rw) / 2;
}

pi0_status pi0_lr_image_to_model(const uint8_t *u8, const float *f32, int h, int w, int S, const pi0_lr_norm *norm,
                                 int old_layout, float *chw) {
    if ((!u8 && !f32) || !chw || h <= 0 || w <= 0 || S <= 0)
        return pi0_err(PI0_ERR_ARG, "pi0_lr_image_to_model: bad arguments (%dx%d -> %d)", w, h, S);
    const size_t plane = (size_t)S * S;
    /* the input as LeRobot's float32 [3, h, w] */
    float *src = malloc(sizeof(float) * 3 * (size_t)h * w);
    if (!src) return pi0_err(PI0_ERR_NOMEM, "image %dx%d", w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)y * w + x) * 3 + c;
                src[((size_t)c * h + y) * w + x] = u8 ? (float)u8[i] / 255.0f : f32[i];
            }
    if (norm)
        for (int c = 0; c < 3; c++) pi0_lr_apply_dim(norm, c, src + (size_t)c * h * w, (size_t)h * w);
    if (h == S && w == S) {
        for (size_t i = 0; i < 3 * plane; i++) chw[i] = src[i] * 2.0f - 1.0f;
        free(src);
        return PI0_OK;
    }
    int rh, rw, top, left;
    pi0_lr_pad_geometry(h, w, S, &rh, &rw, &top, &left);
    if (old_layout) {   /* lerobot <= 0.3 resize_with_pad: F.pad(..., (pad_w, 0, pad_h, 0)) */
        top = S - rh > 0 ? S - rh : 0;
        left = S - rw > 0 ? S - rw : 0;
    }
    tap *ty = malloc(sizeof(tap) * (size_t)rh), *tx = malloc(sizeof(tap) * (size_t)rw);
    if (!ty || !tx) {
        free(src), free(ty), free(tx);
        return pi0_err(PI0_ERR_NOMEM, "image resize taps");
    }
    axis_taps(h, rh, ty);
    axis_taps(w, rw, tx);
    for (size_t i = 0; i < 3 * plane; i++) chw[i] = -1.0f;   /* padding 0.0 -> -1 */
    for (int c = 0; c < 3; c++) {
        const float *p = src + (size_t)c * h * w;
        float *o = chw + (size_t)c * plane;
        for (int y = 0; y < rh; y++) {
            const float *r0 = p + (size_t)ty[y].i0 * w, *r1 = p + (size_t)ty[y].i1 * w;
            for (int x = 0; x < rw; x++) {
                const tap t = tx[x];
                float t0 = r0[t.i0] * t.l0 + r0[t.i1] * t.l1;
                float t1 = r1[t.i0] * t.l0 + r1[t.i1] * t.l1;
                float v = t0 * ty[y].l0 + t1 * ty[y].l1;
                if (old_layout) {
                    /* no clamp before lerobot 0.4 */
                } else if (v < 0.0f) {
                    v = 0.0f;                /* clamp(0, 1); NaN stays NaN as in torch */
                } else if (v > 1.0f) {
                    v = 1.0f;
                }
                o[(size_t)(y + top) * S + x + left] = v * 2.0f - 1.0f;
            }
        }
    }
    free(src);
    free(ty);
    free(tx);
    return PI0_OK;
}
