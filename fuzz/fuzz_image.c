/* fuzz_image.c - libFuzzer harness for the PNG/JPEG decoders (pi0_image_decode) and, when decoding
 * succeeds, resize_with_pad to 56x56 and the conversion to model values. Any crash, leak or
 * sanitizer report is a bug; failing with a status is the expected outcome for most inputs. */
#include <stdint.h>
#include <stdlib.h>

#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pi0_image im;
    if (pi0_image_decode(data, size, "fuzz", &im) != PI0_OK) return 0;
    if ((int64_t)im.h * im.w <= 4096 * 4096) {
        uint8_t *out = malloc(56 * 56 * 3);
        float *f = malloc(sizeof(float) * 56 * 56 * 3);
        if (out && f && pi0_image_resize_with_pad(im.data, im.h, im.w, 3, out, 56, 56) == PI0_OK)
            pi0_image_to_model(out, 56, 56, f);
        free(out);
        free(f);
    }
    pi0_image_free(&im);
    return 0;
}
