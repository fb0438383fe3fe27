/* fuzz_array.c - libFuzzer harness for the observation-array path of the robot presets: the first
 * bytes choose the preset, dtype and shape of one image array, the rest is its data (including
 * 1-D uint8 arrays, which are decoded as PNG/JPEG). The shape is checked against the data size here,
 * as the server's msgpack codec does before calling the library. */
#include <stdint.h>
#include <string.h>

#include "io/robot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8) return 0;
    static const char *keys[] = {"base_0_rgb", "observation/image", "images/cam_high", "images/cam_x"};
    static const int esize[] = {1, 4, 8, 4, 8, 1, 2, 1, 2, 2, 4, 8};
    int dtype = data[1] % 12, ndim = data[2] % 5;
    int64_t shape[4] = {data[3] % 9, data[4] % 9, data[5] % 9, data[6] % 9};
    const uint8_t *payload = data + 8;
    size_t n = size - 8;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    if (ndim == 1 && dtype == PI0_ARR_U8) shape[0] = (int64_t)n, numel = (int64_t)n;
    if ((size_t)numel * esize[dtype] > n) return 0;
    static const char *robots[] = {"raw", "libero", "aloha", "droid"};
    pi0_robot r;
    if (pi0_robot_init(robots[data[0] % 4], data[7] & 1, &r) != PI0_OK) return 0;
    double state[14] = {0};
    pi0_array arr[2] = {{keys[data[0] / 4 % 4], dtype, ndim, {shape[0], shape[1], shape[2], shape[3]}, payload},
                        {"state", PI0_ARR_F64, 1, {14}, state}};
    pi0_robot_input in;
    if (pi0_robot_inputs(&r, arr, 2, &in) == PI0_OK) pi0_robot_input_free(&in);
    return 0;
}
