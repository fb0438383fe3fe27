/* lerobot_image.h - camera images the way LeRobot's π0 / π0.5 prepare them (float32, PyTorch
 * bilinear resize with centred padding, no antialiasing; see lerobot_image.c). */
#ifndef PI0_LEROBOT_IMAGE_H
#define PI0_LEROBOT_IMAGE_H

#include <stdint.h>

#include "pi0.h"

struct pi0_lr_norm;

/* One RGB image [h, w, 3] given as uint8 (u8 != NULL) or as float values in [0, 1] (f32) ->
 * model values chw [3, S, S] in [-1, 1]. `norm` (may be NULL): the camera's VISUAL normalization,
 * applied per channel before the resize as LeRobot's preprocessor does. old_layout: lerobot <= 0.3's
 * resize_with_pad (padding at the left and top, no clamp). Allocates temporaries. */
pi0_status pi0_lr_image_to_model(const uint8_t *u8, const float *f32, int h, int w, int S,
                                 const struct pi0_lr_norm *norm, int old_layout, float *chw);

/* Size of the resized image inside the S x S canvas and its offset. */
void pi0_lr_pad_geometry(int h, int w, int S, int *rh, int *rw, int *top, int *left);

#endif
