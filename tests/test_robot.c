/* test_robot.c - robot presets (src/io/robot.c): camera slots and masks, state assembly, ALOHA
 * conversions, delta masks, output dims, and errors naming the key at fault.
 *
 * ALOHA expected values come from numpy, typing openpi's aloha_policy.py formulas (PI0_IO.md §4.4):
 *   to_angular(v):  v = v*(0.058-0.01844)+0.01844; c = (0.022²+v²-0.036²)/(2·0.022·v);
 *                   (arcsin(clip(c,-1,1)) - 0.5476)/(1.6296-0.5476)
 *     to_angular(0.5) = -0.1400559217021429, to_angular(1.0) = 0.945652797407483,
 *     to_angular(0.0) = -1.0798655475132917
 *   from_angular(v) = (v + 0.5476 + 0.6213)/(1.4910 + 0.6213)
 *     from_angular(0.25) = 0.6717322350044973, from_angular(-0.1) = 0.5060360744212469 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/robot.h"

static uint8_t img_hwc[4 * 6 * 3], img_chw[3 * 5 * 2];
static float img_f[3 * 2 * 2];

static int close_to(double a, double b) { return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1); }

static void test_libero(void) {
    double state[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    pi0_array in[4] = {
        {"observation/image", PI0_ARR_U8, 3, {4, 6, 3}, img_hwc},
        {"observation/wrist_image", PI0_ARR_U8, 3, {3, 5, 2}, img_chw},
        {"observation/state", PI0_ARR_F64, 1, {8}, state},
        {"extra/ignored", PI0_ARR_F32, 1, {3}, img_f}};
    pi0_robot r;
    pi0_robot_input ri;
    pi0_robot_init("libero", PI0_VARIANT_PI0, &r);
    pi0_status st = pi0_robot_inputs(&r, in, 4, &ri);
    CHECK(st == PI0_OK && ri.mask[0] && ri.mask[1] && !ri.mask[2] && ri.img[0].h == 4 && ri.img[0].w == 6 &&
              ri.img[1].h == 5 && ri.img[1].w == 2 && !ri.img[2].data && ri.state_dim == 8 && ri.state[7] == 8,
          "libero: base 6x4 HWC, wrist 2x5 CHW, right empty, state 8 (%s)", st ? pi0_last_error() : "");
    CHECK(ri.img[1].data && ri.img[1].data[0] == img_chw[0] && ri.img[1].data[1] == img_chw[10] &&
              ri.img[1].data[2] == img_chw[20] && ri.img[1].data[3] == img_chw[1],
          "libero: CHW wrist image transposed to HWC");
    pi0_robot_input_free(&ri);
    CHECK(r.n_out == 7 && r.n_delta == 7 && r.delta[0] && r.delta[5] && !r.delta[6], "pi0_libero: 7 dims out, delta 0-5");
    pi0_robot_init("libero", PI0_VARIANT_PI05, &r);
    CHECK(r.n_delta == 0, "pi05_libero: no delta actions");
    st = pi0_robot_inputs(&r, in, 2, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "'observation/state' is missing"), "libero missing state: %s",
          pi0_last_error());
    pi0_array dup[3] = {in[0], in[0], in[2]};
    st = pi0_robot_inputs(&r, dup, 3, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "twice"), "duplicate key: %s", pi0_last_error());
}

static void test_droid(void) {
    float joints[7] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
    float grip = 0.25f;
    pi0_array in[4] = {
        {"observation/exterior_image_1_left", PI0_ARR_U8, 3, {4, 6, 3}, img_hwc},
        {"observation/wrist_image_left", PI0_ARR_F32, 3, {3, 2, 2}, img_f},
        {"observation/joint_position", PI0_ARR_F32, 1, {7}, joints},
        {"observation/gripper_position", PI0_ARR_F32, 0, {0}, &grip}};
    pi0_robot r;
    pi0_robot_input ri;
    pi0_robot_init("droid", PI0_VARIANT_PI05, &r);
    pi0_status st = pi0_robot_inputs(&r, in, 4, &ri);
    CHECK(st == PI0_OK && ri.state_dim == 8 && ri.state[0] == (double)0.1f && ri.state[7] == 0.25 && ri.mask[0] &&
              ri.mask[1] && !ri.mask[2],
          "droid: state = joints[7] ++ gripper (0-d promoted), float32 -> double exactly (%s)", st ? pi0_last_error() : "");
    pi0_robot_input_free(&ri);
    CHECK(r.n_out == 8 && r.n_delta == 0, "droid: 8 dims out, no delta");
    in[3].ndim = 1;
    in[3].shape[0] = 1;
    st = pi0_robot_inputs(&r, in, 4, &ri);
    CHECK(st == PI0_OK && ri.state_dim == 8, "droid: gripper [1] accepted");
    pi0_robot_input_free(&ri);
    st = pi0_robot_inputs(&r, in, 3, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "observation/gripper_position"), "droid missing gripper: %s",
          pi0_last_error());
    in[2].shape[0] = 6;
    st = pi0_robot_inputs(&r, in, 4, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "observation/joint_position") && strstr(pi0_last_error(), "7"),
          "droid 6 joints: %s", pi0_last_error());
}

static void test_aloha(void) {
    double state[14];
    for (int i = 0; i < 14; i++) state[i] = 0.1 * (i + 1);
    state[6] = 0.5;
    state[13] = 1.0;
    pi0_array in[5] = {
        {"images/cam_high", PI0_ARR_U8, 3, {3, 5, 2}, img_chw},
        {"images/cam_low", PI0_ARR_U8, 3, {3, 5, 2}, img_chw},
        {"images/cam_right_wrist", PI0_ARR_F32, 3, {3, 2, 2}, img_f},
        {"state", PI0_ARR_F64, 1, {14}, state},
        {"prompt_extra", PI0_ARR_U8, 1, {0}, img_chw}};
    pi0_robot r;
    pi0_robot_input ri;
    pi0_robot_init("aloha", PI0_VARIANT_PI0, &r);
    pi0_status st = pi0_robot_inputs(&r, in, 5, &ri);
    CHECK(st == PI0_OK && ri.mask[0] && !ri.mask[1] && ri.mask[2] && !ri.img[1].data && ri.img[2].h == 2,
          "aloha: cam_high -> base, no left wrist (mask 0), cam_right_wrist -> right, cam_low ignored (%s)",
          st ? pi0_last_error() : "");
    /* sign mask [1,-1,-1,1,1,1,1,1,-1,-1,1,1,1,1]; grippers 6 and 13 through to_angular */
    CHECK(ri.state_dim == 14 && close_to(ri.state[0], 0.1) && close_to(ri.state[1], -0.2) &&
              close_to(ri.state[2], -0.30000000000000004) && close_to(ri.state[8], -0.9) && close_to(ri.state[9], -1.0) &&
              close_to(ri.state[12], 1.3) && close_to(ri.state[6], -0.1400559217021429) &&
              close_to(ri.state[13], 0.945652797407483),
          "aloha adapt_to_pi state: flips and gripper %.16g %.16g", ri.state[6], ri.state[13]);
    pi0_robot_input_free(&ri);
    CHECK(close_to(pi0_aloha_gripper_to_angular(0.0), -1.0798655475132917), "to_angular(0) = %.16g",
          pi0_aloha_gripper_to_angular(0.0));
    CHECK(r.n_out == 14 && r.n_delta == 14 && r.delta[5] && !r.delta[6] && r.delta[7] && r.delta[12] && !r.delta[13],
          "aloha: 14 dims out, delta 0-5 and 7-12");
    pi0_robot rs;
    pi0_robot_init("aloha_sim", PI0_VARIANT_PI0, &rs);
    CHECK(rs.n_delta == 0 && rs.aloha_adapt, "aloha_sim: no delta, same conversions");
    pi0_array bad[2] = {in[0], {"images/cam_top", PI0_ARR_U8, 3, {3, 5, 2}, img_chw}};
    st = pi0_robot_inputs(&r, bad, 2, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "'images/cam_top'"), "unknown camera: %s", pi0_last_error());
    st = pi0_robot_inputs(&r, in + 1, 3, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "images/cam_high"), "missing cam_high: %s", pi0_last_error());
    /* Absolute actions + output conversion on a [2, 16] chunk (model dims 16 > 14). */
    double act[2 * 16], st14[14];
    for (int i = 0; i < 32; i++) act[i] = 0.01 * i;
    for (int i = 0; i < 14; i++) st14[i] = 1.0;
    pi0_robot_absolute(&r, act, 2, 16, st14, 14);
    CHECK(close_to(act[0], 1.0) && close_to(act[6], 0.06) && close_to(act[12], 1.12) && close_to(act[13], 0.13) &&
              close_to(act[14], 0.14) && close_to(act[16], 1.16),
          "aloha absolute actions: +state on dims 0-5, 7-12 only");
    act[6] = 0.25;
    act[13] = -0.1;
    float out[2 * 16];
    int cols = 0;
    st = pi0_robot_outputs(&r, act, 2, 16, out, &cols);
    CHECK(st == PI0_OK && cols == 14 && out[1] == (float)-1.01 && out[0] == 1.0f &&
              out[6] == (float)0.6717322350044973 && out[13] == (float)0.5060360744212469 &&
              out[14] == (float)act[16],
          "aloha outputs: 14 cols, flips, grippers %.9g %.9g", out[6], out[13]);
    st = pi0_robot_outputs(&r, act, 2, 8, out, &cols);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "14"), "aloha on an 8-dim model: %s", pi0_last_error());
}

static void test_raw(void) {
    int32_t state[3] = {1, -2, 3};
    pi0_array in[2] = {{"right_wrist_0_rgb", PI0_ARR_U8, 3, {4, 6, 3}, img_hwc}, {"state", PI0_ARR_I32, 1, {3}, state}};
    pi0_robot r;
    pi0_robot_input ri;
    pi0_robot_init(NULL, PI0_VARIANT_PI0, &r);
    pi0_status st = pi0_robot_inputs(&r, in, 2, &ri);
    CHECK(st == PI0_OK && !ri.mask[0] && !ri.mask[1] && ri.mask[2] && ri.state_dim == 3 && ri.state[1] == -2,
          "raw: right wrist only, int32 state (%s)", st ? pi0_last_error() : "");
    pi0_robot_input_free(&ri);
    st = pi0_robot_inputs(&r, in, 1, &ri);
    CHECK(st == PI0_OK && ri.state_dim == 0, "raw: state optional");
    pi0_robot_input_free(&ri);
    st = pi0_robot_inputs(&r, in + 1, 1, &ri);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "base_0_rgb"), "raw without images: %s", pi0_last_error());
    double act[6] = {1, 2, 3, 4, 5, 6};
    float out[6];
    int cols;
    st = pi0_robot_outputs(&r, act, 2, 3, out, &cols);
    CHECK(st == PI0_OK && cols == 3 && out[5] == 6.0f, "raw: all dims out");
    st = pi0_robot_init("ur5", 0, &r);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "'ur5'") && strstr(pi0_last_error(), "aloha"), "unknown: %s",
          pi0_last_error());
}

int main(void) {
    for (size_t i = 0; i < sizeof img_hwc; i++) img_hwc[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof img_chw; i++) img_chw[i] = (uint8_t)(i * 5 + 1);
    for (size_t i = 0; i < 12; i++) img_f[i] = (float)i / 11.0f;
    test_libero();
    test_droid();
    test_aloha();
    test_raw();
    return harness_summary();
}
