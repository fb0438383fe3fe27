/* fuzz_image.c - libFuzzer harness for the PNG/JPEG decoders (pi0_image_decode) and, when decoding
 * succeeds, resize_with_pad to 56x56 and the conversion to model values. The same bytes are then
 * decoded under a tight budget (3 scans, 2^16 pixel-scans, a cancel after a few polls) so every
 * budget exit (longjmp out of libjpeg's progress monitor, mid-PNG returns) is fuzzed for leaks too.
 * Any crash, leak or sanitizer report is a bug; failing with a status is the expected outcome for
 * most inputs. */
#include <stdint.h>
#include <stdlib.h>

#include "io/image.h"

static int polls, cancel_at;
static int cancel_cb(void *user) {
    (void)user;
    return ++polls >= cancel_at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pi0_image im;
    if (pi0_image_decode(data, size, "fuzz", &im) == PI0_OK) {
        if ((int64_t)im.h * im.w <= 4096 * 4096) {
            uint8_t *out = malloc(56 * 56 * 3);
            float *f = malloc(sizeof(float) * 56 * 56 * 3);
            if (out && f && pi0_image_resize_with_pad(im.data, im.h, im.w, 3, out, 56, 56) == PI0_OK)
                pi0_image_to_model(out, 56, 56, f);
            free(out);
            free(f);
        }
        pi0_image_free(&im);
    }
    pi0_image_budget b = pi0_image_budget_default();
    b.max_scans = 3;
    b.max_scan_pixels = 1 << 16;
    b.max_seconds = 1.0;
    b.cancel = cancel_cb;
    polls = 0;
    cancel_at = size ? 1 + data[size - 1] % 8 : 1;
    if (pi0_image_decode_budget(data, size, "fuzz-budget", &b, &im) == PI0_OK) pi0_image_free(&im);
    return 0;
}
