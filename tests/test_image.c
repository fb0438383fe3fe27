/* test_image.c - image decoding, array conversion, bad inputs and the decoding budget
 * (src/io/image.c, src/io/image_decode.c).
 *
 * Without arguments: unit tests. PNG fixtures in tests/data/images (written by gen.py with Pillow)
 * hold v(x, y, c) = (x*37 + y*11 + c*80) % 256, so expected pixels come from that formula. Bad
 * inputs (truncated, corrupted, not an image, zero size, oversized headers) must fail with a status
 * and a message naming the input, never crash. The decoding budget (issue 10): scans300.jpg (300
 * scans) is refused after 100; each limit (scans, pixels x scans, time, pixels) and the cancel
 * callback stop a decode with the named reason; files declaring 16384 x 4096 with no data behind
 * it are refused before decoding.
 *
 * With arguments it is the helper that tests/test_image.py drives to compare against Pillow:
 *   test_image decode  IN OUT            decoded RGB
 *   test_image resize  IN OH OW OUT      Pillow Image.resize(BILINEAR) equivalent
 *   test_image pad     IN OH OW OUT      openpi resize_with_pad
 *   test_image model   IN OUT            float32 (u/255)*2-1, CHW
 * OUT is raw: int32 h, int32 w, then the pixels (uint8 HWC, or float32 CHW for `model`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/image.h"
#include "io/robot.h"

#define DATA "tests/data/images/"

static int v(int x, int y, int c) { return (x * 37 + y * 11 + c * 80) % 256; }

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz + 1);
    if (b && fread(b, 1, sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* Rewrite the IHDR width/height (bytes 16..23) and fix its CRC (bytes 29..32). */
static void set_png_size(uint8_t *png, uint32_t w, uint32_t h) {
    for (int i = 0; i < 4; i++) {
        png[16 + i] = (uint8_t)(w >> (24 - 8 * i));
        png[20 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    uint32_t c = crc32_png(png + 12, 17);
    for (int i = 0; i < 4; i++) png[29 + i] = (uint8_t)(c >> (24 - 8 * i));
}

/* Expected RGB of fixture `kind` at (x, y), channel c. */
static int expect(const char *kind, int x, int y, int c) {
    if (!strcmp(kind, "gray16")) return v(x, y, 0) * 37 > 255 ? 255 : v(x, y, 0) * 37; /* Pillow "I" -> RGB clips */
    if (!strcmp(kind, "gray")) return v(x, y, 0);
    if (!strcmp(kind, "palette")) {
        int k = (x + y) % 4;
        return c == 0 ? k * 60 : c == 1 ? 255 - k * 60 : k * 20;
    }
    return v(x, y, c);
}

static void test_fixtures(void) {
    const char *kinds[] = {"rgb", "gray", "rgba", "rgb16", "gray16", "palette"};
    for (int i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s.png", kinds[i]);
        pi0_image im;
        pi0_status st = pi0_image_load(path, &im);
        int bad = 0;
        if (st == PI0_OK && im.w == 7 && im.h == 5)
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 7; x++)
                    for (int c = 0; c < 3; c++) bad += im.data[(y * 7 + x) * 3 + c] != expect(kinds[i], x, y, c);
        CHECK(st == PI0_OK && im.w == 7 && im.h == 5 && bad == 0, "decode %s: status %d size %dx%d, %d wrong pixels %s",
              path, st, im.w, im.h, bad, st ? pi0_last_error() : "");
        pi0_image_free(&im);
    }
    const char *jpgs[] = {DATA "rgb.jpg", DATA "gray.jpg", DATA "cmyk.jpg", DATA "prog.jpg"};
    for (int i = 0; i < 4; i++) {
        pi0_image im;
        pi0_status st = pi0_image_load(jpgs[i], &im);
        int w = i == 3 ? 64 : 40, h = i == 3 ? 48 : 24;
        CHECK(st == PI0_OK && im.w == w && im.h == h, "decode %s: %dx%d (pixels checked against Pillow in test_image.py) %s",
              jpgs[i], im.w, im.h, st ? pi0_last_error() : "");
        pi0_image_free(&im);
    }
}

/* Expect failure with a message containing `needle`. */
static void expect_fail(const char *label, const void *buf, size_t n, const char *needle) {
    pi0_image im = {0};
    pi0_status st = pi0_image_decode(buf, n, label, &im);
    const char *msg = pi0_last_error();
    CHECK(st != PI0_OK && im.data == NULL && strstr(msg, needle), "%s: status %s, message \"%s\"", label,
          pi0_status_str(st), msg);
    pi0_image_free(&im);
}

static void test_bad_inputs(void) {
    size_t n_png, n_jpg;
    uint8_t *png = read_file(DATA "rgb.png", &n_png), *jpg = read_file(DATA "rgb.jpg", &n_jpg);
    if (!png || !jpg) { CHECK(0, "fixtures missing (run from the repo root)"); return; }
    expect_fail("empty.png", png, 0, "empty.png");
    expect_fail("text.png", "hello, world, not an image", 26, "not a PNG or JPEG");
    /* Truncations at every length that leaves the signature intact. */
    int png_ok = 0, jpg_ok = 0, png_n = 0, jpg_n = 0;
    for (size_t k = 8; k < n_png; k++) {
        pi0_image im;
        png_n++;
        if (pi0_image_decode(png, k, "trunc.png", &im) != PI0_OK && strstr(pi0_last_error(), "trunc.png")) png_ok++;
        pi0_image_free(&im);
    }
    for (size_t k = 3; k < n_jpg - 2; k++) {   /* the last 2 bytes are the EOI marker */
        pi0_image im;
        jpg_n++;
        if (pi0_image_decode(jpg, k, "trunc.jpg", &im) != PI0_OK && strstr(pi0_last_error(), "trunc.jpg")) jpg_ok++;
        pi0_image_free(&im);
    }
    CHECK(png_ok == png_n, "truncated PNG refused at %d of %d cut points", png_ok, png_n);
    CHECK(jpg_ok == jpg_n, "truncated JPEG refused at %d of %d cut points", jpg_ok, jpg_n);
    expect_fail("half.jpg", jpg, n_jpg / 2, "truncated JPEG");
    /* Corrupt the PNG IDAT bytes / CRC: must fail (CRC error), not crash. */
    uint8_t *c = malloc(n_png);
    memcpy(c, png, n_png);
    c[n_png - 20] ^= 0x55;
    expect_fail("crc.png", c, n_png, "crc.png");
    /* A header declaring 100000 x 100000: refused before allocating. */
    memcpy(c, png, n_png);
    set_png_size(c, 100000, 100000);
    expect_fail("huge.png", c, n_png, "huge.png");
    memcpy(c, png, n_png);
    set_png_size(c, 16000, 16000);   /* each side within libpng's limit, pixel count over ours */
    expect_fail("big.png", c, n_png, "exceeds the limit");
    /* Zero width. */
    memcpy(c, png, n_png);
    set_png_size(c, 0, 5);
    expect_fail("zero.png", c, n_png, "zero.png");
    /* A JPEG whose SOF declares 60000 x 60000: refused before allocating. */
    uint8_t *j = malloc(n_jpg);
    memcpy(j, jpg, n_jpg);
    int patched = 0;
    for (size_t i = 2; i + 8 < n_jpg; i++)
        if (j[i] == 0xff && (j[i + 1] == 0xc0 || j[i + 1] == 0xc2)) {
            j[i + 5] = 0xea; j[i + 6] = 0x60; j[i + 7] = 0xea; j[i + 8] = 0x60;
            patched = 1;
            break;
        }
    CHECK(patched, "found the JPEG SOF marker");
    expect_fail("huge.jpg", j, n_jpg, "exceeds the limit");
    free(j);
    free(c);
    /* Random garbage after a JPEG SOI: every seed must fail cleanly or decode. */
    uint8_t g[600];
    int clean = 0;
    for (int seed = 0; seed < 200; seed++) {
        uint32_t s = 2463534242u + seed;
        for (size_t i = 0; i < sizeof g; i++) { s ^= s << 13; s ^= s >> 17; s ^= s << 5; g[i] = (uint8_t)s; }
        memcpy(g, jpg, 200);   /* valid headers, then noise in the scan */
        pi0_image im;
        pi0_status st = pi0_image_decode(g, sizeof g, "noise.jpg", &im);
        clean += st == PI0_OK || strstr(pi0_last_error(), "noise.jpg") != NULL;
        pi0_image_free(&im);
    }
    CHECK(clean == 200, "200 corrupted JPEGs: %d handled cleanly", clean);
    pi0_image im;
    pi0_status st = pi0_image_load(DATA "does_not_exist.png", &im);
    CHECK(st == PI0_ERR_IO && strstr(pi0_last_error(), "does_not_exist.png"), "missing file: %s", pi0_last_error());
    free(png);
    free(jpg);
}

static void test_arrays(void) {
    /* CHW float [3, 2, 2] -> HWC uint8 with truncation: 0.5*255 = 127.5 -> 127, 1.0 -> 255,
     * -0.1 -> 0 (clamped), 0.999 -> 254.745 -> 254. */
    float chw[12] = {0.5f, 1.0f, -0.1f, 0.999f, 0, 0, 0, 0, 1, 1, 1, 1};
    pi0_array a = {"images/cam_high", PI0_ARR_F32, 3, {3, 2, 2}, chw};
    pi0_image im;
    pi0_status st = pi0_image_from_array(&a, &im);
    CHECK(st == PI0_OK && im.h == 2 && im.w == 2 && im.data[0] == 127 && im.data[3] == 255 && im.data[6] == 0 &&
              im.data[9] == 254 && im.data[1] == 0 && im.data[2] == 255,
          "float CHW -> uint8 HWC (127, 255, 0, 254 in channel 0)");
    pi0_image_free(&im);
    uint8_t hwc[2 * 4 * 3];
    for (int i = 0; i < 24; i++) hwc[i] = (uint8_t)i;
    pi0_array b = {"observation/image", PI0_ARR_U8, 4, {1, 2, 4, 3}, hwc};
    st = pi0_image_from_array(&b, &im);
    CHECK(st == PI0_OK && im.h == 2 && im.w == 4 && memcmp(im.data, hwc, 24) == 0, "uint8 [1,H,W,3] passes through");
    pi0_image_free(&im);
    pi0_array c = {"observation/image", PI0_ARR_U8, 3, {2, 4, 5}, hwc};
    st = pi0_image_from_array(&c, &im);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "observation/image"), "bad shape: %s", pi0_last_error());
    pi0_array d = {"cam", PI0_ARR_U8, 3, {0, 4, 3}, hwc};
    st = pi0_image_from_array(&d, &im);
    CHECK(st == PI0_ERR_ARG && strstr(pi0_last_error(), "cam"), "zero size: %s", pi0_last_error());
    size_t n;
    uint8_t *png = read_file(DATA "rgb.png", &n);
    pi0_array e = {"encoded", PI0_ARR_U8, 1, {(int64_t)n}, png};
    st = pi0_image_from_array(&e, &im);
    CHECK(st == PI0_OK && im.w == 7 && im.h == 5 && im.data[3] == v(1, 0, 0), "1-D uint8 PNG bytes are decoded");
    pi0_image_free(&im);
    free(png);
}

static void test_geometry(void) {
    /* PI0_IO.md §2.1 examples. */
    int cases[][4] = {{480, 640, 168, 224}, {720, 1280, 126, 224}, {480, 848, 126, 224}, {376, 672, 125, 224}};
    for (int i = 0; i < 4; i++) {
        int rh, rw, top, left;
        pi0_image_pad_geometry(cases[i][0], cases[i][1], 224, 224, &rh, &rw, &top, &left);
        CHECK(rh == cases[i][2] && rw == cases[i][3] && top == (224 - rh) / 2 && left == 0,
              "pad geometry %dx%d -> %dx%d at (%d, %d)", cases[i][1], cases[i][0], rw, rh, left, top);
    }
    /* uint8 -> model: 0 -> -1, 255 -> 1, 128 -> (128/255)*2-1 in float32. */
    uint8_t px[3] = {0, 255, 128};
    float out[3];
    pi0_image_to_model(px, 1, 1, out);
    CHECK(out[0] == -1.0f && out[1] == 1.0f && out[2] == ((float)128 / 255.0f) * 2.0f - 1.0f, "to_model %g %g %.9g",
          out[0], out[1], out[2]);
}

static int write_raw(const char *path, int h, int w, const void *data, size_t nbytes) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    int32_t hdr[2] = {h, w};
    fwrite(hdr, sizeof hdr, 1, f);
    fwrite(data, 1, nbytes, f);
    return fclose(f) != 0;
}

static int helper(int argc, char **argv) {
    pi0_image im;
    if (argc < 4 || pi0_image_load(argv[2], &im) != PI0_OK) {
        fprintf(stderr, "helper: %s\n", pi0_last_error());
        return 2;
    }
    int rc = 2;
    if (!strcmp(argv[1], "decode")) {
        rc = write_raw(argv[3], im.h, im.w, im.data, (size_t)im.h * im.w * 3);
    } else if (!strcmp(argv[1], "model")) {
        float *f = malloc(sizeof(float) * im.h * im.w * 3);
        pi0_image_to_model(im.data, im.h, im.w, f);
        rc = write_raw(argv[3], im.h, im.w, f, sizeof(float) * im.h * im.w * 3);
        free(f);
    } else if (argc == 6 && (!strcmp(argv[1], "resize") || !strcmp(argv[1], "pad"))) {
        int oh = atoi(argv[3]), ow = atoi(argv[4]);
        uint8_t *o = malloc((size_t)oh * ow * 3);
        pi0_status st = !strcmp(argv[1], "pad") ? pi0_image_resize_with_pad(im.data, im.h, im.w, 3, o, oh, ow)
                                                : pi0_image_resize(im.data, im.h, im.w, 3, o, oh, ow);
        rc = st != PI0_OK ? 2 : write_raw(argv[5], oh, ow, o, (size_t)oh * ow * 3);
        free(o);
    }
    pi0_image_free(&im);
    return rc;
}

static int n_cancel_polls;
static int cancel_after_3(void *user) {
    (void)user;
    return ++n_cancel_polls > 3;
}

/* Decode `path` under budget b; expect status `want` and `needle` in the message. */
static void expect_budget(const char *label, const char *path, const pi0_image_budget *b, pi0_status want,
                          const char *needle) {
    size_t n;
    uint8_t *buf = read_file(path, &n);
    pi0_image im = {0};
    pi0_status st = buf ? pi0_image_decode_budget(buf, n, path, b, &im) : PI0_ERR_IO;
    const char *msg = pi0_last_error();
    CHECK(st == want && im.data == NULL && strstr(msg, needle) && strstr(msg, path), "%s: status %s, message \"%s\"",
          label, pi0_status_str(st), msg);
    pi0_image_free(&im);
    free(buf);
}

static void test_budget(void) {
    pi0_image_budget d = pi0_image_budget_default(), b;
    CHECK(d.max_scans == 100 && d.max_pixels == PI0_IMAGE_MAX_PIXELS && d.max_scan_pixels == (int64_t)1 << 30 &&
          d.max_seconds == 5.0 && !d.cancel, "default budget: 100 scans, 64 Mi pixels, 2^30 pixel-scans, 5 s");
    pi0_image im;
    CHECK(pi0_image_load(DATA "prog.jpg", &im) == PI0_OK, "prog.jpg (10 scans) decodes under the default budget");
    pi0_image_free(&im);
    expect_budget("300-scan progressive JPEG, default budget", DATA "scans300.jpg", NULL, PI0_ERR_UNSUPPORTED,
                  "more than 100 scans");
    b = d;
    b.max_scans = 3;
    expect_budget("max_scans 3", DATA "prog.jpg", &b, PI0_ERR_UNSUPPORTED, "more than 3 scans");
    b = d;
    b.max_scan_pixels = 64 * 48 * 2;
    expect_budget("max_scan_pixels 2 scans", DATA "prog.jpg", &b, PI0_ERR_UNSUPPORTED, "3 scans x 3072 pixels exceed");
    b = d;
    b.max_seconds = 1e-9;
    expect_budget("max_seconds 1 ns, JPEG", DATA "prog.jpg", &b, PI0_ERR_UNSUPPORTED, "s budget");
    expect_budget("max_seconds 1 ns, PNG", DATA "rgb.png", &b, PI0_ERR_UNSUPPORTED, "s budget");
    b = d;
    b.max_pixels = 959;
    expect_budget("max_pixels 959 < 40x24", DATA "rgb.jpg", &b, PI0_ERR_UNSUPPORTED, "exceeds the limit");
    b = d;
    b.cancel = cancel_after_3;
    n_cancel_polls = 0;
    expect_budget("cancel during a progressive JPEG", DATA "prog.jpg", &b, PI0_ERR_ABORTED, "decoding cancelled");
    CHECK(n_cancel_polls == 4, "cancel polled until it answered (%d polls)", n_cancel_polls);
    n_cancel_polls = 3;
    expect_budget("cancel during a PNG", DATA "rgb.png", &b, PI0_ERR_ABORTED, "decoding cancelled");
    /* the robot transforms pass their budget down to encoded observation arrays */
    size_t n;
    uint8_t *png = read_file(DATA "rgb.png", &n);
    pi0_array arr = {"base_0_rgb", PI0_ARR_U8, 1, {(int64_t)n, 0, 0, 0}, png};
    pi0_robot r;
    pi0_robot_input ri;
    n_cancel_polls = 3;
    pi0_status st = pi0_robot_init("raw", 0, &r);
    if (st == PI0_OK) st = pi0_robot_inputs_budget(&r, &arr, 1, &b, &ri);
    CHECK(st == PI0_ERR_ABORTED && strstr(pi0_last_error(), "base_0_rgb") && strstr(pi0_last_error(), "cancelled"),
          "robot inputs: an encoded camera image is decoded under the caller's budget: %s", pi0_last_error());
    if (st == PI0_OK) pi0_robot_input_free(&ri);

    /* 16384 x 4096 declared, (almost) no data: refused before decoding, from the file size alone */
    uint8_t *c = malloc(n);
    memcpy(c, png, n);
    set_png_size(c, 16384, 4096);
    expect_fail("empty16k.png", c, n, "deflate cannot compress more than 1032:1");
    free(c);
    free(png);
    uint8_t *jpg = read_file(DATA "rgb.jpg", &n);
    int patched = 0;
    for (size_t i = 2; jpg && i + 8 < n && !patched; i++)
        if (jpg[i] == 0xff && (jpg[i + 1] == 0xc0 || jpg[i + 1] == 0xc2)) {
            jpg[i + 5] = 0x10; jpg[i + 6] = 0x00; jpg[i + 7] = 0x40; jpg[i + 8] = 0x00; /* 4096 rows, 16384 columns */
            patched = 1;
        }
    CHECK(patched, "patched the JPEG SOF to 16384x4096");
    expect_fail("empty16k.jpg", jpg, n, "less than 1 bit per block");
    free(jpg);
}

int main(int argc, char **argv) {
    if (argc > 1) return helper(argc, argv);
    test_fixtures();
    test_bad_inputs();
    test_budget();
    test_arrays();
    test_geometry();
    return harness_summary();
}
