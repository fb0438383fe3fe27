#!/usr/bin/python3
"""Generate the small decoder fixtures used by tests/test_image.c (run with Debian's python3-pil).

Every PNG holds pixel value v(x, y, c) = (x*37 + y*11 + c*80) % 256 (per colour channel c), so the
C test computes the expected pixels from the formula, not from our own decoder:
  rgb.png      7x5 RGB 8-bit
  gray.png     7x5 L 8-bit (c = 0)             -> expected RGB = (v, v, v)
  rgba.png     7x5 RGBA, alpha = 17            -> expected RGB = v (alpha dropped)
  rgb16.png    7x5 RGB 16-bit, sample v*257    -> expected RGB = v (exact under 16->8 scaling)
  palette.png  7x5 P with 4 colours, index (x+y)%4, colour k = (k*60, 255-k*60, k*20)
  rgb.jpg      40x24 RGB JPEG q90 (compared with Pillow's decode in tests/test_image.py)
  gray.jpg     40x24 L JPEG
"""
import os
import struct
import zlib

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))


def v(w, h, c):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 37 + y * 11 + k * 80) % 256 for k in range(c)], axis=-1).astype(np.uint8)


def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def write_rgb16(path, a16):
    h, w, _ = a16.shape
    raw = b"".join(b"\x00" + a16[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
                + png_chunk(b"IEND", b""))


Image.fromarray(v(7, 5, 3), "RGB").save(os.path.join(here, "rgb.png"))
Image.fromarray(v(7, 5, 1)[..., 0], "L").save(os.path.join(here, "gray.png"))
rgba = np.concatenate([v(7, 5, 3), np.full((5, 7, 1), 17, np.uint8)], axis=-1)
Image.fromarray(rgba, "RGBA").save(os.path.join(here, "rgba.png"))
write_rgb16(os.path.join(here, "rgb16.png"), v(7, 5, 3).astype(np.uint16) * 257)
y, x = np.mgrid[0:5, 0:7]
p = Image.fromarray(((x + y) % 4).astype(np.uint8), "P")
p.putpalette(sum([[k * 60, 255 - k * 60, k * 20] for k in range(4)], []))
p.save(os.path.join(here, "palette.png"))
rng = np.random.default_rng(7)
Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), "RGB").save(os.path.join(here, "rgb.jpg"), quality=90)
Image.fromarray(v(40, 24, 1)[..., 0], "L").save(os.path.join(here, "gray.jpg"), quality=90)
