#!/usr/bin/python3
"""Generate the small decoder fixtures used by tests/test_image.c (run with Debian's python3-pil).

Every PNG holds pixel value v(x, y, c) = (x*37 + y*11 + c*80) % 256 (per colour channel c), so the
C test computes the expected pixels from the formula, not from our own decoder:
  rgb.png      7x5 RGB 8-bit
  gray.png     7x5 L 8-bit (c = 0)             -> expected RGB = (v, v, v)
  rgba.png     7x5 RGBA, alpha = 17            -> expected RGB = v (alpha dropped)
  rgb16.png    7x5 RGB 16-bit, sample v*256+200 -> expected RGB = v: Pillow keeps the high byte, where
               libpng's rounding (png_set_scale_16) would give v+1 for most pixels
  gray16.png   7x5 16-bit grey, sample v*37 (c = 0) -> expected RGB = min(v*37, 255): Pillow opens it
               as mode "I" and clips to 255 when converting to RGB
  palette.png  7x5 P with 4 colours, index (x+y)%4, colour k = (k*60, 255-k*60, k*20)
  rgb.jpg      40x24 RGB JPEG q90 (compared with Pillow's decode in tests/test_image.py)
  gray.jpg     40x24 L JPEG
  cmyk.jpg     40x24 CMYK JPEG as Pillow writes it (Adobe marker, inverted); compared with Pillow's
               convert("RGB") in tests/test_image.py
  prog.jpg     64x48 progressive RGB JPEG (10 scans)
  scans300.jpg prog.jpg with its smallest scan repeated to 300 scans (issue 10 repeated the last one:
               each scan is a pass over the whole image; the decoder's budget refuses it after 100)
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


def write_png16(path, a16, color_type):
    h, w = a16.shape[:2]
    raw = b"".join(b"\x00" + a16[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
                + png_chunk(b"IEND", b""))


Image.fromarray(v(7, 5, 3), "RGB").save(os.path.join(here, "rgb.png"))
Image.fromarray(v(7, 5, 1)[..., 0], "L").save(os.path.join(here, "gray.png"))
rgba = np.concatenate([v(7, 5, 3), np.full((5, 7, 1), 17, np.uint8)], axis=-1)
Image.fromarray(rgba, "RGBA").save(os.path.join(here, "rgba.png"))
write_png16(os.path.join(here, "rgb16.png"), v(7, 5, 3).astype(np.uint16) * 256 + 200, 2)
write_png16(os.path.join(here, "gray16.png"), v(7, 5, 1)[..., 0].astype(np.uint16) * 37, 0)
y, x = np.mgrid[0:5, 0:7]
p = Image.fromarray(((x + y) % 4).astype(np.uint8), "P")
p.putpalette(sum([[k * 60, 255 - k * 60, k * 20] for k in range(4)], []))
p.save(os.path.join(here, "palette.png"))
rng = np.random.default_rng(7)
Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), "RGB").save(os.path.join(here, "rgb.jpg"), quality=90)
Image.fromarray(v(40, 24, 1)[..., 0], "L").save(os.path.join(here, "gray.jpg"), quality=90)
rng = np.random.default_rng(11)
Image.fromarray(rng.integers(0, 256, (24, 40, 4), dtype=np.uint8), "CMYK").save(os.path.join(here, "cmyk.jpg"), quality=90)
prog = os.path.join(here, "prog.jpg")
Image.fromarray(v(64, 48, 3), "RGB").save(prog, quality=85, progressive=True)


def jpeg_segments(data):
    """(start, end) of each marker segment; an SOS segment includes its entropy-coded data."""
    out, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        if m == 0xD9:
            out.append((i, i + 2, m))
            break
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        j = i + 2 + n
        if m == 0xDA:
            while not (data[j] == 0xFF and data[j + 1] not in (0x00,) and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
        out.append((i, j, m))
        i = j
    return out


data = open(prog, "rb").read()
segs = jpeg_segments(data)
sos = [sg for sg in segs if sg[2] == 0xDA]
assert len(sos) == 10, len(sos)
small = min(sos, key=lambda sg: sg[1] - sg[0])
eoi = segs[-1][0]
open(os.path.join(here, "scans300.jpg"), "wb").write(data[:eoi] + data[small[0]:small[1]] * 290 + data[eoi:])
