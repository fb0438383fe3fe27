/* fuzz_msgpack.c - libFuzzer harness for the request decoder (tools/server/msgpack_numpy.c).
 *
 * Each input is one request message. The decoder must return 0 or -1 without crashing, reading
 * out of bounds or leaking (ASan/UBSan), every rejection must carry a message, and every decoded
 * array must describe exactly its data: ndim 0..4, a known dtype, and its bytes readable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/msgpack_numpy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static pi0_mpk_obs o;
    char err[512];
    /* Copy into an exact-size heap buffer so ASan catches any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (pi0_mpk_decode_obs(buf, size, &o, err, sizeof err) != 0) {
        if (!err[0]) abort();
        free(buf);
        return 0;
    }
    volatile uint8_t sink = 0;
    for (int i = 0; i < o.n_arrays; i++) {
        const pi0_array *a = &o.arrays[i];
        size_t isz = pi0_mpk_dtype_size(a->dtype);
        if (a->ndim < 0 || a->ndim > 4 || isz == 0 || !a->key || !a->data) abort();
        size_t n = isz;
        for (int d = 0; d < a->ndim; d++) {
            if (a->shape[d] < 0) abort();
            n *= (size_t)a->shape[d];
        }
        if (n > size * 8 + 8) abort();   /* never more data than the request could describe */
        if (((uintptr_t)a->data % isz) != 0) abort();
        for (size_t k = 0; k < n; k++) sink ^= ((const uint8_t *)a->data)[k];
    }
    if (o.prompt) sink ^= (uint8_t)strlen(o.prompt);
    (void)sink;
    pi0_mpk_obs_free(&o);
    free(buf);
    return 0;
}
