/* test_msgpack.c - unit tests of the policy server's msgpack-numpy codec (tools/server/
 * msgpack_numpy.c, PI0_IO.md §4.3).
 *
 * Inputs are built with msgpack-c's packer (an independent encoder) the way openpi_client's
 * msgpack_numpy lays them out; our encoder's output is read back with msgpack-c's unpacker.
 * Hostile inputs: every truncation of a valid request, seeded random buffers, wrong value types,
 * declared sizes far beyond the buffer (which must fail without allocating them), and the
 * decoder's own limits (array count, nesting depth, key length). */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "../tools/server/msgpack_numpy.h"

// ---- building requests with msgpack-c ------------------------------------------------------------

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mb;

static void mb_init(mb *b) {
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}
static void str(mb *b, const char *s) { msgpack_pack_str(&b->pk, strlen(s)); msgpack_pack_str_body(&b->pk, s, strlen(s)); }
static void bin(mb *b, const void *p, size_t n) { msgpack_pack_bin(&b->pk, n); msgpack_pack_bin_body(&b->pk, p, n); }
static void binkey(mb *b, const char *s) { bin(b, s, strlen(s)); }

/* An ndarray map exactly as openpi_client.msgpack_numpy.pack_array writes it. */
static void ndarray(mb *b, const void *data, size_t n, const char *dtype, int ndim, const int64_t *shape) {
    msgpack_pack_map(&b->pk, 4);
    binkey(b, "__ndarray__");
    msgpack_pack_true(&b->pk);
    binkey(b, "data");
    bin(b, data, n);
    binkey(b, "dtype");
    str(b, dtype);
    binkey(b, "shape");
    msgpack_pack_array(&b->pk, (size_t)ndim);
    for (int i = 0; i < ndim; i++) msgpack_pack_int64(&b->pk, shape[i]);
}

static const pi0_array *find(const pi0_mpk_obs *o, const char *key) {
    for (int i = 0; i < o->n_arrays; i++)
        if (strcmp(o->arrays[i].key, key) == 0) return &o->arrays[i];
    return NULL;
}

static uint8_t img[224 * 224 * 3];
static double state8[8] = {0.5, -1.25, 3.0, 1e-3, -7.5, 2.0, 0.0, 100.0};

/* A LIBERO-style request: two uint8 HWC images, a float64 state, a prompt. */
static void libero(mb *b) {
    mb_init(b);
    int64_t ishape[3] = {224, 224, 3}, sshape[1] = {8};
    msgpack_pack_map(&b->pk, 4);
    str(b, "observation/image");
    ndarray(b, img, sizeof img, "|u1", 3, ishape);
    str(b, "observation/wrist_image");
    ndarray(b, img, sizeof img, "|u1", 3, ishape);
    str(b, "observation/state");
    ndarray(b, state8, sizeof state8, "<f8", 1, sshape);
    str(b, "prompt");
    str(b, "pick up the black bowl");
}

static int decode(const mb *b, pi0_mpk_obs *o, char *err, size_t cap) {
    return pi0_mpk_decode_obs((const uint8_t *)b->sb.data, b->sb.size, o, err, cap);
}

/* Decode must fail; the message must contain `want`. */
static void expect_fail(const char *label, const uint8_t *p, size_t n, const char *want) {
    static pi0_mpk_obs o;
    char err[512] = "";
    int rc = pi0_mpk_decode_obs(p, n, &o, err, sizeof err);
    CHECK(rc == -1 && strstr(err, want) != NULL, "%s: rejected with '%s' (want '%s')", label, err, want);
}

static void expect_fail_mb(const char *label, mb *b, const char *want) {
    expect_fail(label, (const uint8_t *)b->sb.data, b->sb.size, want);
    msgpack_sbuffer_destroy(&b->sb);
}

// ---- valid requests --------------------------------------------------------------------------------

static void test_libero(void) {
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 7 + 3);
    mb b;
    libero(&b);
    static pi0_mpk_obs o;
    char err[512];
    int rc = decode(&b, &o, err, sizeof err);
    CHECK(rc == 0, "LIBERO request decodes (%s)", rc ? err : "ok");
    CHECK(o.n_arrays == 3, "3 arrays (got %d)", o.n_arrays);
    const pi0_array *a = find(&o, "observation/image");
    CHECK(a && a->dtype == PI0_ARR_U8 && a->ndim == 3 && a->shape[0] == 224 && a->shape[1] == 224 && a->shape[2] == 3,
          "image u8 [224,224,3]");
    CHECK(a && memcmp(a->data, img, sizeof img) == 0, "image bytes equal");
    a = find(&o, "observation/state");
    CHECK(a && a->dtype == PI0_ARR_F64 && a->ndim == 1 && a->shape[0] == 8, "state f64 [8]");
    CHECK(a && memcmp(a->data, state8, sizeof state8) == 0 && ((uintptr_t)a->data % 8) == 0,
          "state values equal and 8-byte aligned");
    CHECK(o.prompt && strcmp(o.prompt, "pick up the black bowl") == 0, "prompt '%s'", o.prompt ? o.prompt : "(null)");
    pi0_mpk_obs_free(&o);

    /* Every proper prefix is a truncated request and must fail cleanly with a byte offset. */
    int bad = 0;
    for (size_t n = 0; n < b.sb.size; n += (n < 200 || b.sb.size - n < 200) ? 1 : 997) {
        err[0] = 0;
        if (pi0_mpk_decode_obs((const uint8_t *)b.sb.data, n, &o, err, sizeof err) != -1 || !strstr(err, "byte")) bad++;
    }
    CHECK(bad == 0, "every truncation of the LIBERO request is rejected with a byte offset (%d bad)", bad);
    msgpack_sbuffer_destroy(&b.sb);
}

static void test_aloha_and_scalars(void) {
    mb b;
    mb_init(&b);
    uint8_t chw[3 * 4 * 5];
    for (size_t i = 0; i < sizeof chw; i++) chw[i] = (uint8_t)i;
    int64_t cshape[3] = {3, 4, 5};
    msgpack_pack_map(&b.pk, 6);
    str(&b, "images");
    msgpack_pack_map(&b.pk, 2);
    str(&b, "cam_high");
    ndarray(&b, chw, sizeof chw, "|u1", 3, cshape);
    str(&b, "cam_left_wrist");
    ndarray(&b, chw, sizeof chw, "|u1", 3, cshape);
    str(&b, "grip");                       /* np.float32(0.25) */
    msgpack_pack_map(&b.pk, 3);
    binkey(&b, "__npgeneric__");
    msgpack_pack_true(&b.pk);
    binkey(&b, "data");
    msgpack_pack_double(&b.pk, 0.25);
    binkey(&b, "dtype");
    str(&b, "<f4");
    str(&b, "plain");                      /* a Python float */
    msgpack_pack_double(&b.pk, -2.5);
    str(&b, "list");                       /* a Python list of numbers */
    msgpack_pack_array(&b.pk, 3);
    msgpack_pack_int(&b.pk, 1);
    msgpack_pack_double(&b.pk, 2.5);
    msgpack_pack_int(&b.pk, -3);
    str(&b, "strkey");                     /* "__ndarray__" as a str key: an ordinary map */
    msgpack_pack_map(&b.pk, 1);
    str(&b, "__ndarray__");
    msgpack_pack_true(&b.pk);
    str(&b, "note");                       /* a non-prompt string: skipped */
    static pi0_mpk_obs o;
    char err[512];
    /* the map declared 6 entries; the 6th value: */
    str(&b, "hello");
    int rc = decode(&b, &o, err, sizeof err);
    CHECK(rc == 0, "ALOHA-style request decodes (%s)", rc ? err : "ok");
    const pi0_array *a = find(&o, "images/cam_high");
    CHECK(a && a->dtype == PI0_ARR_U8 && a->ndim == 3 && a->shape[0] == 3 && a->shape[2] == 5 &&
          memcmp(a->data, chw, sizeof chw) == 0, "nested images flattened to images/cam_high, CHW kept");
    CHECK(find(&o, "images/cam_left_wrist") != NULL, "images/cam_left_wrist present");
    a = find(&o, "grip");
    float g = 0;
    if (a && a->dtype == PI0_ARR_F32) memcpy(&g, a->data, 4);
    CHECK(a && a->ndim == 0 && a->dtype == PI0_ARR_F32 && g == 0.25f, "numpy scalar -> 0-d f32 = %g", g);
    a = find(&o, "plain");
    double d = 0;
    if (a) memcpy(&d, a->data, 8);
    CHECK(a && a->ndim == 0 && a->dtype == PI0_ARR_F64 && d == -2.5, "plain float -> 0-d f64 = %g", d);
    a = find(&o, "list");
    double l[3] = {0};
    if (a && a->dtype == PI0_ARR_F64 && a->shape[0] == 3) memcpy(l, a->data, sizeof l);
    CHECK(a && a->ndim == 1 && l[0] == 1 && l[1] == 2.5 && l[2] == -3, "list of numbers -> f64 [3]");
    a = find(&o, "strkey/__ndarray__");
    CHECK(a && a->dtype == PI0_ARR_BOOL, "str key \"__ndarray__\" is an ordinary map (flattened)");
    CHECK(o.n_skipped == 1 && o.prompt == NULL, "non-prompt string skipped (n_skipped %d), no prompt", o.n_skipped);
    pi0_mpk_obs_free(&o);
    msgpack_sbuffer_destroy(&b.sb);
}

static void test_byte_order_alignment(void) {
    /* '>f8' state: bytes reversed per element; the decoder must swap them back. */
    uint8_t be8[8 * 8];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 8; k++) be8[i * 8 + k] = ((const uint8_t *)&state8[i])[7 - k];
    mb b;
    mb_init(&b);
    int64_t s8[1] = {8};
    msgpack_pack_map(&b.pk, 2);
    str(&b, "be");
    ndarray(&b, be8, sizeof be8, ">f8", 1, s8);
    /* A '<f4' array whose data lands at an odd offset (key length chosen to misalign it). */
    float f3[3] = {1.5f, -2.0f, 3.25f};
    int64_t s3[1] = {3};
    str(&b, "f");
    ndarray(&b, f3, sizeof f3, "<f4", 1, s3);
    static pi0_mpk_obs o;
    char err[512];
    int rc = decode(&b, &o, err, sizeof err);
    CHECK(rc == 0, "byte-order request decodes (%s)", rc ? err : "ok");
    const pi0_array *a = find(&o, "be");
    CHECK(a && a->dtype == PI0_ARR_F64 && memcmp(a->data, state8, sizeof state8) == 0, "'>f8' values swapped to host order");
    a = find(&o, "f");
    CHECK(a && ((uintptr_t)a->data % 4) == 0 && memcmp(a->data, f3, sizeof f3) == 0, "'<f4' data aligned and equal");
    pi0_mpk_obs_free(&o);
    msgpack_sbuffer_destroy(&b.sb);
}

// ---- hostile requests --------------------------------------------------------------------------------

static void test_wrong_types(void) {
    mb b;
    int64_t s2[1] = {2}, s5[5] = {1, 1, 1, 1, 2};
    float f2[2] = {1, 2};

    mb_init(&b); msgpack_pack_array(&b.pk, 1); msgpack_pack_int(&b.pk, 1);
    expect_fail_mb("top level is an array", &b, "expected a map");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); msgpack_pack_int(&b.pk, 1); msgpack_pack_int(&b.pk, 2);
    expect_fail_mb("int map key", &b, "map key is a msgpack uint");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s");
    msgpack_pack_map(&b.pk, 4); binkey(&b, "__ndarray__"); msgpack_pack_true(&b.pk);
    binkey(&b, "data"); bin(&b, f2, 8); binkey(&b, "dtype"); msgpack_pack_int(&b.pk, 5);
    binkey(&b, "shape"); msgpack_pack_array(&b.pk, 1); msgpack_pack_int(&b.pk, 2);
    expect_fail_mb("dtype is an int", &b, "key 's': dtype is a msgpack uint");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s");
    msgpack_pack_map(&b.pk, 4); binkey(&b, "__ndarray__"); msgpack_pack_true(&b.pk);
    binkey(&b, "data"); str(&b, "abcdefgh"); binkey(&b, "dtype"); str(&b, "<f4");
    binkey(&b, "shape"); msgpack_pack_array(&b.pk, 1); msgpack_pack_int(&b.pk, 2);
    expect_fail_mb("data is a str", &b, "data is a msgpack str, expected bin");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s");
    msgpack_pack_map(&b.pk, 4); binkey(&b, "__ndarray__"); msgpack_pack_true(&b.pk);
    binkey(&b, "data"); bin(&b, f2, 8); binkey(&b, "dtype"); str(&b, "<f4");
    binkey(&b, "shape"); msgpack_pack_int(&b.pk, 2);
    expect_fail_mb("shape is an int", &b, "shape is a msgpack uint");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s");
    msgpack_pack_map(&b.pk, 3); binkey(&b, "__ndarray__"); msgpack_pack_true(&b.pk);
    binkey(&b, "data"); bin(&b, f2, 8); binkey(&b, "dtype"); str(&b, "<f4");
    expect_fail_mb("shape missing", &b, "lacks bin key 'shape'");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, f2, 8, "<c8", 1, s2);
    expect_fail_mb("complex dtype", &b, "dtype '<c8' not supported");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, f2, 8, "<U2", 1, s2);
    expect_fail_mb("unicode dtype", &b, "dtype '<U2' not supported");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, f2, 8, "<f4", 5, s5);
    expect_fail_mb("5 dimensions", &b, "5 dimensions");

    int64_t neg[1] = {-2};
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, f2, 8, "<f4", 1, neg);
    expect_fail_mb("negative dim", &b, "negative");

    int64_t three[1] = {3};
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, f2, 8, "<f4", 1, three);
    expect_fail_mb("shape larger than data", &b, "key 's'");

    int64_t one[1] = {1};
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, f2, 8, "<f4", 1, one);
    expect_fail_mb("data larger than shape", &b, "needs 4 bytes");

    mb_init(&b); msgpack_pack_map(&b.pk, 2); str(&b, "s"); ndarray(&b, f2, 8, "<f4", 1, s2);
    str(&b, "s"); ndarray(&b, f2, 8, "<f4", 1, s2);
    expect_fail_mb("duplicate key", &b, "appears twice");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); bin(&b, "a\0b", 3);
    expect_fail_mb("prompt with NUL", &b, "prompt");

    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); str(&b, "\xc3\x28");
    expect_fail_mb("prompt invalid UTF-8", &b, "UTF-8");

    mb_init(&b); msgpack_pack_map(&b.pk, 0); msgpack_pack_nil(&b.pk);
    expect_fail_mb("trailing bytes", &b, "extra bytes");
}

static void test_huge_sizes(void) {
    /* Declared sizes far beyond the buffer: must fail at the header, naming the declared size. */
    static const uint8_t bin32[] = {0x81, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xf0, 0, 0};
    expect_fail("bin32 declares 4 GiB", bin32, sizeof bin32, "declares 4294967280 bytes");
    static const uint8_t str32[] = {0x81, 0xa1, 'x', 0xdb, 0x7f, 0xff, 0xff, 0xff};
    expect_fail("str32 declares 2 GiB", str32, sizeof str32, "declares 2147483647 bytes");
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x'};
    expect_fail("map32 declares 2^32-1 entries", map32, sizeof map32, "declares 4294967295 entries");
    static const uint8_t arr32[] = {0x81, 0xa1, 'x', 0xdd, 0x00, 0xff, 0xff, 0xff};   /* msgpack-c: 512 MiB */
    expect_fail("array32 declares 2^24-1 entries", arr32, sizeof arr32, "declares 16777215 entries");
    static const uint8_t ext32[] = {0x81, 0xa1, 'x', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_fail("ext32 declares 4 GiB", ext32, sizeof ext32, "truncated");
    static const uint8_t badtype[] = {0x81, 0xa1, 'x', 0xc1};
    expect_fail("reserved byte 0xc1", badtype, sizeof badtype, "0xc1 is not a msgpack type");

    mb b;
    uint8_t d8[8] = {0};
    int64_t huge[4] = {INT64_C(1) << 32, INT64_C(1) << 32, INT64_C(1) << 32, INT64_C(1) << 32};
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, d8, 8, "|u1", 4, huge);
    expect_fail_mb("shape product 2^128 (overflow)", &b, "larger than its 8 data bytes");
    int64_t zero_then_huge[2] = {0, INT64_C(1) << 62};
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "s"); ndarray(&b, d8, 8, "|u1", 2, zero_then_huge);
    expect_fail_mb("shape [0, 2^62] with 8 data bytes", &b, "needs 0 bytes");
}

static void test_limits(void) {
    mb b;
    float f = 1;
    int64_t s1[1] = {1};
    mb_init(&b);
    msgpack_pack_map(&b.pk, PI0_MPK_MAX_ARRAYS + 1);
    for (int i = 0; i <= PI0_MPK_MAX_ARRAYS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        str(&b, k);
        ndarray(&b, &f, 4, "<f4", 1, s1);
    }
    expect_fail_mb("65 arrays", &b, "more than 64 arrays");

    mb_init(&b);
    msgpack_pack_map(&b.pk, 1); str(&b, "a");
    msgpack_pack_map(&b.pk, 1); str(&b, "b");
    msgpack_pack_map(&b.pk, 1); str(&b, "c");
    msgpack_pack_map(&b.pk, 1); str(&b, "d");
    msgpack_pack_int(&b.pk, 1);
    expect_fail_mb("maps nested 4 deep", &b, "nested deeper than 3");

    char longkey[200];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, longkey); msgpack_pack_int(&b.pk, 1);
    expect_fail_mb("199-byte key", &b, "too long");

    /* Deeply nested lists inside a skipped value: iterative skip, no recursion limit needed. */
    size_t depth = 100000;
    uint8_t *deep = malloc(depth + 8);
    size_t n = 0;
    deep[n++] = 0x81; deep[n++] = 0xa1; deep[n++] = 'x';
    deep[n++] = 0x91;                   /* a list whose only entry is a list ... */
    for (size_t i = 0; i < depth; i++) deep[n++] = 0x91;
    deep[n++] = 0xc0;
    static pi0_mpk_obs o;
    char err[256];
    int rc = pi0_mpk_decode_obs(deep, n, &o, err, sizeof err);
    CHECK(rc == 0 && o.n_arrays == 0 && o.n_skipped == 1, "100000 nested lists skipped without recursion (%s)", rc ? err : "ok");
    pi0_mpk_obs_free(&o);
    free(deep);
}

static void test_random(void) {
    /* Seeded random buffers, and random bytes flipped inside a valid request: no crash, no leak
     * (run under ASan by `make san`), and every failure has a message. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t buf[256];
    static pi0_mpk_obs o;
    char err[512];
    int n_ok = 0, n_bad_msg = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = 0;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        n = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = (uint8_t)x; }
        if (it % 2) buf[0] = (uint8_t)(0x80 | (x >> 60));  /* half start as a fixmap */
        err[0] = 0;
        if (pi0_mpk_decode_obs(buf, n, &o, err, sizeof err) == 0) { n_ok++; pi0_mpk_obs_free(&o); }
        else if (!err[0]) n_bad_msg++;
    }
    CHECK(n_bad_msg == 0, "20000 random buffers: %d decoded, every rejection has a message", n_ok);

    mb b;
    libero(&b);
    uint8_t *m = malloc(b.sb.size);
    int flips_ok = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(m, b.sb.data, b.sb.size);
        for (int k = 0; k < 3; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            size_t pos = (size_t)(x % 300);   /* headers live in the first bytes and after each image */
            if (x & 1) pos = b.sb.size - 1 - (size_t)((x >> 8) % 120);
            m[pos] = (uint8_t)(x >> 32);
        }
        if (pi0_mpk_decode_obs(m, b.sb.size, &o, err, sizeof err) == 0) { flips_ok++; pi0_mpk_obs_free(&o); }
    }
    CHECK(1, "2000 corrupted LIBERO requests decoded or rejected without crashing (%d decoded)", flips_ok);
    free(m);
    msgpack_sbuffer_destroy(&b.sb);
}

// ---- encoder ------------------------------------------------------------------------------------------

static const msgpack_object *get(const msgpack_object *map, const char *key, int binkeyed) {
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        int t = binkeyed ? MSGPACK_OBJECT_BIN : MSGPACK_OBJECT_STR;
        if ((int)k->type == t && k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, strlen(key)))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static void test_encode(void) {
    float act[3 * 2] = {1, 2, 3, 4, 5, -6.5f};
    pi0_mpk_bytes out;
    int rc = pi0_mpk_pack_response(act, 3, 2, 1.5, 2.5, -1, &out);
    msgpack_zone z;
    msgpack_zone_init(&z, 2048);
    msgpack_object root;
    size_t off = 0;
    int ur = rc == 0 ? msgpack_unpack((const char *)out.data, out.len, &off, &z, &root) : -1;
    CHECK(ur == MSGPACK_UNPACK_SUCCESS && off == out.len && root.type == MSGPACK_OBJECT_MAP && root.via.map.size == 3,
          "response is one map of 3 entries (%zu bytes)", rc ? 0 : out.len);
    if (ur == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *a = get(&root, "actions", 0);
        const msgpack_object *nd = a ? get(a, "__ndarray__", 1) : NULL;
        const msgpack_object *data = a ? get(a, "data", 1) : NULL;
        const msgpack_object *dt = a ? get(a, "dtype", 1) : NULL;
        const msgpack_object *sh = a ? get(a, "shape", 1) : NULL;
        CHECK(a && a->via.map.size == 4 && nd && nd->type == MSGPACK_OBJECT_BOOLEAN && nd->via.boolean,
              "actions: ndarray map with bin key __ndarray__ = true");
        CHECK(dt && dt->type == MSGPACK_OBJECT_STR && dt->via.str.size == 3 && !memcmp(dt->via.str.ptr, "<f4", 3),
              "actions dtype '<f4' (str)");
        CHECK(sh && sh->type == MSGPACK_OBJECT_ARRAY && sh->via.array.size == 2 && sh->via.array.ptr[0].via.u64 == 3 &&
              sh->via.array.ptr[1].via.u64 == 2, "actions shape [3, 2]");
        CHECK(data && data->type == MSGPACK_OBJECT_BIN && data->via.bin.size == sizeof act &&
              !memcmp(data->via.bin.ptr, act, sizeof act), "actions data = 24 bytes of the floats");
        const msgpack_object *pt = get(&root, "policy_timing", 0), *st = get(&root, "server_timing", 0);
        const msgpack_object *pi = pt ? get(pt, "infer_ms", 0) : NULL, *si = st ? get(st, "infer_ms", 0) : NULL;
        CHECK(pi && pi->type == MSGPACK_OBJECT_FLOAT64 && pi->via.f64 == 1.5, "policy_timing.infer_ms = 1.5 (float64)");
        CHECK(si && si->via.f64 == 2.5 && st->via.map.size == 1, "server_timing.infer_ms = 2.5, no prev_total_ms on first");
    }
    msgpack_zone_destroy(&z);
    free(rc == 0 ? out.data : NULL);

    rc = pi0_mpk_pack_response(act, 3, 2, 1.5, 2.5, 40.25, &out);
    msgpack_zone_init(&z, 2048);
    off = 0;
    ur = rc == 0 ? msgpack_unpack((const char *)out.data, out.len, &off, &z, &root) : -1;
    const msgpack_object *st = ur == MSGPACK_UNPACK_SUCCESS ? get(&root, "server_timing", 0) : NULL;
    const msgpack_object *pv = st ? get(st, "prev_total_ms", 0) : NULL;
    CHECK(pv && pv->type == MSGPACK_OBJECT_FLOAT64 && pv->via.f64 == 40.25, "server_timing.prev_total_ms = 40.25");
    msgpack_zone_destroy(&z);
    free(rc == 0 ? out.data : NULL);

    char err[256];
    rc = pi0_mpk_pack_json("{}", &out, err, sizeof err);
    CHECK(rc == 0 && out.len == 1 && out.data[0] == 0x80, "metadata {} -> 0x80");
    free(rc == 0 ? out.data : NULL);

    /* The ALOHA metadata as json.loads + msgpack.packb would give it, built with msgpack-c. */
    mb b;
    mb_init(&b);
    msgpack_pack_map(&b.pk, 2);
    str(&b, "reset_pose");
    msgpack_pack_array(&b.pk, 6);
    msgpack_pack_int(&b.pk, 0); msgpack_pack_double(&b.pk, -1.5); msgpack_pack_double(&b.pk, 1.5);
    msgpack_pack_int(&b.pk, 0); msgpack_pack_int(&b.pk, 0); msgpack_pack_int(&b.pk, 0);
    str(&b, "name");
    str(&b, "aloha");
    rc = pi0_mpk_pack_json("{\"reset_pose\": [0, -1.5, 1.5, 0, 0, 0], \"name\": \"aloha\"}", &out, err, sizeof err);
    CHECK(rc == 0 && out.len == b.sb.size && !memcmp(out.data, b.sb.data, out.len),
          "ALOHA metadata JSON -> msgpack bytes equal msgpack-c's (%zu vs %zu bytes)", rc ? 0 : out.len, b.sb.size);
    free(rc == 0 ? out.data : NULL);
    msgpack_sbuffer_destroy(&b.sb);

    rc = pi0_mpk_pack_json("{\"a\": [1, 2", &out, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "byte"), "bad metadata JSON rejected: %s", err);
}

/* openpi raises on a prompt that is not a str (TokenizePrompt: None -> "Prompt is required", others
 * have no .item() or give no str); np.asarray("text") (a '<U' array) and np.str_ work there. */
static void test_prompt_types(void) {
    mb b;
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); msgpack_pack_nil(&b.pk);
    expect_fail_mb("prompt None", &b, "key 'prompt' is a msgpack nil");
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); msgpack_pack_int(&b.pk, 5);
    expect_fail_mb("prompt 5", &b, "key 'prompt' is a msgpack uint");
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); msgpack_pack_array(&b.pk, 1); str(&b, "a");
    expect_fail_mb("prompt list", &b, "key 'prompt' is a msgpack array");
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); bin(&b, "abc", 3);
    expect_fail_mb("prompt bytes", &b, "key 'prompt' is a msgpack bin");
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); msgpack_pack_map(&b.pk, 1); str(&b, "a"); str(&b, "b");
    expect_fail_mb("prompt dict", &b, "key 'prompt' is a map");
    float f = 1.5f;
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); ndarray(&b, &f, 4, "<f4", 0, NULL);
    expect_fail_mb("prompt float ndarray", &b, "ndarray of dtype '<f4'");

    /* "pick ü" + U+1D11E (4 UTF-8 bytes) as numpy stores np.asarray(...): UCS-4, padded with NULs */
    static const char want[] = "pick \xc3\xbc\xf0\x9d\x84\x9e";
    const uint32_t cps[9] = {'p', 'i', 'c', 'k', ' ', 0xfc, 0x1d11e, 0, 0};
    uint8_t le[36], be[36];
    for (int i = 0; i < 9; i++)
        for (int k = 0; k < 4; k++) {
            le[4 * i + k] = (uint8_t)(cps[i] >> (8 * k));
            be[4 * i + k] = (uint8_t)(cps[i] >> (24 - 8 * k));
        }
    static pi0_mpk_obs o;
    char err[512];
    const char *dts[2] = {"<U9", ">U9"};
    for (int e = 0; e < 2; e++) {
        mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); ndarray(&b, e ? be : le, 36, dts[e], 0, NULL);
        int rc = decode(&b, &o, err, sizeof err);
        CHECK(rc == 0 && o.prompt && strcmp(o.prompt, want) == 0, "prompt as a '%s' ndarray -> UTF-8 '%s' (%s)", dts[e],
              o.prompt ? o.prompt : "(null)", rc ? err : "ok");
        pi0_mpk_obs_free(&o);
        msgpack_sbuffer_destroy(&b.sb);
    }
    int64_t two[1] = {2};
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt"); ndarray(&b, le, 32, "<U4", 1, two);
    expect_fail_mb("prompt '<U4' array of 2", &b, "more than one element");
    mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "prompt");
    msgpack_pack_map(&b.pk, 3); binkey(&b, "__npgeneric__"); msgpack_pack_true(&b.pk);
    binkey(&b, "data"); str(&b, "np.str_ prompt"); binkey(&b, "dtype"); str(&b, "<U14");
    int rc = decode(&b, &o, err, sizeof err);
    CHECK(rc == 0 && o.prompt && !strcmp(o.prompt, "np.str_ prompt"), "prompt as np.str_ (%s)", rc ? err : "ok");
    pi0_mpk_obs_free(&o);
    msgpack_sbuffer_destroy(&b.sb);
}

/* A list of numbers longer than PI0_MPK_MAX_LIST is skipped (no preset reads one) and named. */
static void test_long_lists(void) {
    for (int n = PI0_MPK_MAX_LIST; n <= PI0_MPK_MAX_LIST + 1; n++) {
        mb b;
        mb_init(&b); msgpack_pack_map(&b.pk, 1); str(&b, "extra");
        msgpack_pack_array(&b.pk, (size_t)n);
        for (int i = 0; i < n; i++) msgpack_pack_int(&b.pk, i & 0x7f);
        static pi0_mpk_obs o;
        char err[512];
        int rc = decode(&b, &o, err, sizeof err);
        const pi0_array *a = rc ? NULL : find(&o, "extra");
        if (n == PI0_MPK_MAX_LIST)
            CHECK(a && a->dtype == PI0_ARR_F64 && a->shape[0] == n && ((const double *)a->data)[n - 1] == (n - 1) % 128,
                  "a list of %d numbers is decoded", n);
        else
            CHECK(rc == 0 && !a && o.n_skipped == 1 && !strcmp(o.skipped_key, "extra") &&
                  strstr(o.skipped_why, "list of 4097 numbers"), "a list of %d numbers is skipped and named ('%s': %s)",
                  n, o.skipped_key, o.skipped_why);
        pi0_mpk_obs_free(&o);
        msgpack_sbuffer_destroy(&b.sb);
    }
}

int main(void) {
    test_libero();
    test_aloha_and_scalars();
    test_byte_order_alignment();
    test_wrong_types();
    test_huge_sizes();
    test_limits();
    test_prompt_types();
    test_long_lists();
    test_random();
    test_encode();
    return harness_summary();
}
