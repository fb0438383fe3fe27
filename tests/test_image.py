#!/usr/bin/python3
"""test_image.py BUILD - compare src/io/image.c against Pillow (Debian python3-pil), the independent
implementation openpi uses.

Random images of odd sizes and aspect ratios are written as PNG; `BUILD/tests/test_image` (the C
test binary in helper mode) decodes them and runs our resize / resize_with_pad / to-model; Pillow
computes the expected result (openpi_client.image_tools.resize_with_pad re-typed below, with
`Image.resize(BILINEAR)`). Resize must be identical or within 1 intensity level (max diff is
reported); JPEG decoding is compared with Pillow's decode of the same file (same libjpeg-turbo:
expected identical), including progressive and CMYK JPEGs (with and without the Adobe marker) and
16-bit PNGs with random samples (Pillow keeps the high byte of RGB/RGBA/grey+alpha samples and clips
16-bit grey to 255).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    if ok:
        passed += 1
    else:
        failed += 1


def run_helper(binary, args, out_path, dtype):
    r = subprocess.run([binary] + args + [out_path], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    raw = open(out_path, "rb").read()
    h, w = np.frombuffer(raw[:8], dtype="<i4")
    return np.frombuffer(raw[8:], dtype=dtype), (int(h), int(w))


def pil_resize_with_pad(img, height, width):
    """openpi_client.image_tools._resize_with_pad_pil, same expressions."""
    cur_width, cur_height = img.size
    if cur_width == width and cur_height == height:
        return img
    ratio = max(cur_width / width, cur_height / height)
    resized_height = int(cur_height / ratio)
    resized_width = int(cur_width / ratio)
    resized = img.resize((resized_width, resized_height), resample=Image.BILINEAR)
    zero = Image.new(resized.mode, (width, height), 0)
    pad_height = max(0, int((height - resized_height) / 2))
    pad_width = max(0, int((width - resized_width) / 2))
    zero.paste(resized, (pad_width, pad_height))
    return zero


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    binary = os.path.join(build, "tests", "test_image")
    if not os.access(binary, os.X_OK):
        check(False, f"{binary} not built")
        return
    rng = np.random.default_rng(1234)
    tmp = tempfile.mkdtemp(prefix="pi0_test_image_")
    out = os.path.join(tmp, "out.raw")
    # (width, height): odd sizes, extreme aspect ratios, upscales, exact size.
    sizes = [(1, 1), (3, 500), (500, 3), (640, 480), (480, 640), (97, 13), (13, 97), (224, 224), (300, 225),
             (225, 300), (50, 40), (111, 223), (1280, 720), (848, 480), (672, 376), (2, 2), (7, 224), (230, 229)]
    targets = [(224, 224), (56, 56)]
    overall = 0
    for (w, h) in sizes:
        # Random noise stresses every tap; add a smooth ramp so the images are not pure noise.
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if w * h > 4:
            a[: h // 2] = (np.arange(w)[None, :, None] * 255 // max(w - 1, 1)).astype(np.uint8)
        path = os.path.join(tmp, f"in_{w}x{h}.png")
        Image.fromarray(a, "RGB").save(path)
        img = Image.open(path)
        for (th, tw) in targets:
            try:
                want = np.asarray(pil_resize_with_pad(img, th, tw), dtype=np.uint8).reshape(-1)
            except ValueError as e:
                # openpi/Pillow raise when a side rounds to 0 px; we make it 1 px (image.h [DIFF]).
                got, hw = run_helper(binary, ["pad", path, str(th), str(tw)], out, np.uint8)
                check(got is not None and hw == (th, tw),
                      f"resize_with_pad {w}x{h} -> {tw}x{th}: Pillow raises ({e}); ours gives a 1-px strip")
                continue
            got, hw = run_helper(binary, ["pad", path, str(th), str(tw)], out, np.uint8)
            if got is None:
                check(False, f"pad {w}x{h} -> {tw}x{th}: helper failed: {hw}")
                continue
            d = int(np.abs(got.astype(int) - want.astype(int)).max())
            n_diff = int((got != want).sum())
            overall = max(overall, d)
            check(hw == (th, tw) and d <= 1, f"resize_with_pad {w}x{h} -> {tw}x{th}: max diff {d}, {n_diff} values differ")
    # Plain Image.resize to arbitrary sizes, including upscales and one-axis changes.
    for (w, h, ow, oh) in [(97, 13, 300, 41), (13, 97, 5, 200), (640, 480, 640, 100), (640, 480, 33, 480),
                           (1, 1, 7, 3), (5, 5, 1, 1), (224, 224, 223, 225)]:
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = os.path.join(tmp, f"r_{w}x{h}.png")
        Image.fromarray(a, "RGB").save(path)
        want = np.asarray(Image.open(path).resize((ow, oh), resample=Image.BILINEAR)).reshape(-1)
        got, hw = run_helper(binary, ["resize", path, str(oh), str(ow)], out, np.uint8)
        if got is None:
            check(False, f"resize {w}x{h} -> {ow}x{oh}: helper failed: {hw}")
            continue
        d = int(np.abs(got.astype(int) - want.astype(int)).max())
        overall = max(overall, d)
        check(d <= 1, f"resize {w}x{h} -> {ow}x{oh}: max diff {d}, {int((got != want).sum())} values differ")
    print(f"     max diff against Pillow over all resize cases: {overall}")
    # to-model values: numpy float32 (u / 255) * 2 - 1, CHW.
    a = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    a[..., 1] = 255 - a[..., 1]
    path = os.path.join(tmp, "ramp.png")
    Image.fromarray(a, "RGB").save(path)
    want = ((a.astype(np.float32) / np.float32(255.0)) * np.float32(2.0) - np.float32(1.0)).transpose(2, 0, 1).reshape(-1)
    got, hw = run_helper(binary, ["model", path], out, np.float32)
    check(got is not None and np.array_equal(got, want), "uint8 -> float32 (u/255)*2-1 CHW bit-identical to numpy")
    # JPEG decoding vs Pillow (both libjpeg-turbo, islow IDCT, fancy upsampling).
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "images")
    for name in ["rgb.jpg", "gray.jpg"]:
        path = os.path.join(here, name)
        want = np.asarray(Image.open(path).convert("RGB")).reshape(-1)
        got, hw = run_helper(binary, ["decode", path], out, np.uint8)
        d = -1 if got is None else int(np.abs(got.astype(int) - want.astype(int)).max())
        check(d == 0, f"JPEG decode {name} vs Pillow: max diff {d}")
    rgb = rng.integers(0, 256, (37, 61, 3), dtype=np.uint8)
    path = os.path.join(tmp, "big.jpg")
    Image.fromarray(rgb).save(path, quality=75)
    want = np.asarray(Image.open(path).convert("RGB")).reshape(-1)
    got, hw = run_helper(binary, ["decode", path], out, np.uint8)
    d = -1 if got is None else int(np.abs(got.astype(int) - want.astype(int)).max())
    check(d == 0, f"JPEG decode 61x37 q75 (4:2:0) vs Pillow: max diff {d}")

    def same_as_pillow(label, path):
        want = np.asarray(Image.open(path).convert("RGB")).reshape(-1)
        got, hw = run_helper(binary, ["decode", path], out, np.uint8)
        d = -1 if got is None else int(np.abs(got.astype(int) - want.astype(int)).max())
        n = -1 if got is None else int((got != want).sum())
        check(d == 0, f"{label} vs Pillow convert('RGB'): max diff {d}, {n} values differ {'' if got is not None else hw}")

    # Progressive JPEG and CMYK JPEG (Pillow reads every 4-component JPEG as Adobe-inverted CMYK).
    for name in ["prog.jpg", "cmyk.jpg"]:
        same_as_pillow(f"JPEG decode {name}", os.path.join(here, name))
    cmyk = rng.integers(0, 256, (29, 53, 4), dtype=np.uint8)
    path = os.path.join(tmp, "cmyk_adobe.jpg")
    Image.fromarray(cmyk, "CMYK").save(path, quality=80)
    same_as_pillow("CMYK JPEG 53x29 with Adobe marker", path)
    data = open(path, "rb").read()
    i = data.find(b"\xff\xee")  # APP14 "Adobe": without it libjpeg sees plain CMYK, Pillow still inverts
    if i > 0:
        n = int.from_bytes(data[i + 2:i + 4], "big")
        path2 = os.path.join(tmp, "cmyk_plain.jpg")
        open(path2, "wb").write(data[:i] + data[i + 2 + n:])
        same_as_pillow("CMYK JPEG 53x29 without Adobe marker", path2)
    else:
        check(False, "Pillow's CMYK JPEG has no Adobe APP14 marker to strip")
    # 16-bit PNGs with values where truncation, rounding and clipping all differ (not v*257).
    import struct
    import zlib

    def png16(path, a, color_type):
        h, w = a.shape[:2]
        raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
        open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    for color_type, ch, label in [(2, 3, "RGB"), (0, 1, "grey"), (4, 2, "grey+alpha"), (6, 4, "RGBA")]:
        a = rng.integers(0, 65536, (19, 23, ch), dtype=np.uint16)
        if color_type == 0:
            a[:9] = rng.integers(0, 400, (9, 23, 1))  # grey: values around the 255 clip too
        a = a[..., 0] if ch == 1 else a
        path = os.path.join(tmp, f"png16_{color_type}.png")
        png16(path, a, color_type)
        same_as_pillow(f"16-bit {label} PNG 23x19 (random samples)", path)


if __name__ == "__main__":
    main()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
