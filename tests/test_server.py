#!/usr/bin/python3
"""test_server.py - end-to-end test of `pi0 serve` on loopback, written from PI0_IO.md §4.

The client side is independent of our C code: msgpack-python packs and unpacks, numpy builds the
arrays, python3-websockets does the WebSocket protocol, and the msgpack-numpy hooks below are
written from the spec (openpi_client.msgpack_numpy). Raw sockets are used only for frame-level
abuse (a frame header declaring 2^62 bytes, a disconnect in the middle of a frame).

Starts `BUILD/pi0 serve --model tests/data/pi0_tiny --port 0 --seed 7` (LIBERO preset; once more
with `--weights int8`, whose replies must equal `pi0 run --weights int8`),
reads the port it prints, and checks: metadata first; LIBERO reply keys, shapes and timing
fields; byte order honoured ('>f8' state gives the same actions as '<f8'); /healthz; malformed
messages (truncated, random bytes, wrong types, huge declared sizes, oversize, text) each get a
text message and close 1011 with openpi's reason while other clients keep being served; a silent
client and a half-sent frame block no one; a disconnect mid-request; SIGTERM stops it cleanly.

Equality with `pi0 run`: the test writes camera images as PNG files (Pillow), runs
`pi0 run --robot R --image KEY=FILE... --state ... --seed 7 --out r.json`, sends the same pixels
(read back from the PNGs by Pillow) and state to `pi0 serve --seed 7`, and requires the float32
actions to be equal. LIBERO on tests/data/pi0_tiny ([H, 7]); ALOHA on a tiny checkpoint with 32
action dims made by `pi0 gen-random --action-dim 32` ([H, 14], CHW images as openpi's ALOHA
client sends them). Both with non-trivial norm stats written here.

Default server (no --seed): the same request twice gives different actions (fresh noise per
request, as openpi), and the seed the server logs for a request reproduces its reply with
`pi0 run --seed`. With --max-clients 2 a third client is closed with 1013 and a reason naming the
limit; with --ping-secs 1 a client that never answers PINGs is pinged and dropped while an idle
client that does answer is kept and served.

Every wait is bounded. Usage: /usr/bin/python3 tests/test_server.py BUILD_DIR. Skips (0 passed,
0 failed) when BUILD/pi0 does not exist; a server that cannot load the model is a failure.
"""
import asyncio
import base64
import http.client
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import msgpack
import numpy as np
import websockets
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
PI0 = os.path.join(BUILD, "pi0")
REASON = "Internal server error. Traceback included in previous frame."
TIMEOUT = 60.0  # seconds for any single wait (the tiny model runs in milliseconds)
SEED = 7        # --seed of the deterministic servers and of the `pi0 run` they are compared with

from tally import check, finish  # noqa: E402 (the shared pass/fail counter, tests/tally.py)


# ---- msgpack-numpy (PI0_IO.md §4.3) -----------------------------------------------------------

from openpi_msgpack import packb, unpackb  # noqa: E402 (the client codec, shared with the other script)


def libero_obs(rng, state_dtype="<f8"):
    return {
        "observation/image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/state": rng.standard_normal(8).astype(state_dtype),
        "prompt": "pick up the black bowl",
    }


def aloha_obs(rng):
    return {
        "state": rng.standard_normal(14).astype(np.float32),
        "images": {cam: rng.integers(0, 256, (3, 224, 224), dtype=np.uint8)
                   for cam in ("cam_high", "cam_left_wrist", "cam_right_wrist")},
        "prompt": "Transfer cube",
    }


# ---- server process -----------------------------------------------------------------------------

class Server:
    def __init__(self, model, robot, extra=("--seed", str(SEED))):
        self.log = tempfile.TemporaryFile()
        args = [PI0, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0", "--robot", robot,
                "--threads", "1", "--max-frame-mib", "8", "--default-prompt", "do something", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        self.port = None
        line = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    break
                line += ch
            elif self.proc.poll() is not None:
                break
        text = line.decode(errors="replace").strip()
        if text.startswith("listening on 127.0.0.1:"):
            self.port = int(text.rsplit(":", 1)[1])
        self.first_line = text

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, bounded wait; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                return None
        return self.proc.returncode


# ---- client helpers -----------------------------------------------------------------------------

async def connect(port):
    ws = await asyncio.wait_for(
        websockets.connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None, open_timeout=TIMEOUT),
        TIMEOUT)
    meta = await asyncio.wait_for(ws.recv(), TIMEOUT)
    return ws, meta


async def roundtrip(port, obs_bytes, n=1):
    """Connect, read metadata, send obs n times; returns (metadata, [replies])."""
    ws, meta = await connect(port)
    out = []
    try:
        for _ in range(n):
            await ws.send(obs_bytes)
            out.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
    finally:
        await ws.close()
    return meta, out


async def expect_error(port, payload):
    """Send payload; expect a text message then close 1011 with openpi's reason. Returns (ok, text)."""
    ws, _ = await connect(port)
    text = None
    try:
        try:
            await ws.send(payload)
        except websockets.ConnectionClosed:
            pass
        try:
            msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
            text = msg if isinstance(msg, str) else None
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    finally:
        await ws.close()
    ok = text is not None and ws.close_code == 1011 and ws.close_reason == REASON
    return ok, text, ws.close_code


def healthz(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def raw_ws(port):
    """A WebSocket handshake on a plain socket; returns the socket after the 101 response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:60])
    return s, rest


def raw_frames(s, rest, limit=8):
    """Read up to `limit` server frames (unmasked) until a close frame; returns [(opcode, payload)]."""
    buf, frames = rest, []

    def need(k):
        nonlocal buf
        while len(buf) < k:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("eof")
            buf += chunk

    try:
        while len(frames) < limit:
            need(2)
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            hdr = 2
            if ln == 126:
                need(4); ln = struct.unpack(">H", buf[2:4])[0]; hdr = 4
            elif ln == 127:
                need(10); ln = struct.unpack(">Q", buf[2:10])[0]; hdr = 10
            need(hdr + ln)
            frames.append((op, buf[hdr:hdr + ln]))
            buf = buf[hdr + ln:]
            if op == 8:
                break
    except (ConnectionError, socket.timeout, OSError):
        pass
    return frames


def frame_header(opcode, length, mask=b"\x01\x02\x03\x04"):
    b0 = 0x80 | opcode
    if length < 126:
        return bytes([b0, 0x80 | length]) + mask
    if length < 65536:
        return bytes([b0, 0x80 | 126]) + struct.pack(">H", length) + mask
    return bytes([b0, 0x80 | 127]) + struct.pack(">Q", length) + mask


def masked(payload, mask=b"\x01\x02\x03\x04"):
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# ---- the test ------------------------------------------------------------------------------------

def bad_payloads(good):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    nd = lambda data, dtype, shape: {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}
    return {
        "truncated request": good[: len(good) // 2],
        "random bytes": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty message": b"",
        "top level is an array": msgpack.packb([1, 2, 3]),
        "dtype is an int": msgpack.packb({"observation/state": nd(b"\0" * 8, 5, [2])}),
        "data is a str": msgpack.packb({"observation/state": nd("abcdefgh", "<f4", [2])}),
        "unsupported dtype <c8": msgpack.packb({"observation/state": nd(b"\0" * 16, "<c8", [2])}),
        "negative dim": msgpack.packb({"observation/state": nd(b"\0" * 8, "<f4", [-2])}),
        "shape/data mismatch": msgpack.packb({"observation/image": nd(img.tobytes(), "|u1", [5, 4, 3])}),
        "huge shape product": msgpack.packb({"observation/image": nd(b"\0" * 8, "|u1", [2**31, 2**31, 2**31, 2**31])}),
        "bin32 declares 4 GiB": b"\x81\xa1x\xc6\xff\xff\xff\xf0" + b"\0" * 16,
        "map32 declares 2^32-1 entries": b"\xdf\xff\xff\xff\xff\xa1x",
        "array32 declares 2^32-1 entries": b"\x81\xa1x\xdd\xff\xff\xff\xff",
        "trailing bytes": msgpack.packb({}) + b"\x00",
        "int map key": msgpack.packb({1: 2}),
        "prompt not UTF-8": b"\x81\xa6prompt\xc4\x02\xff\xfe",
        "text message": "not msgpack",
        "oversize (9 MiB > 8)": b"\x80" + b"\0" * (9 << 20),
    }


async def run_libero(srv, horizon, rng):
    port = srv.port
    good = packb(libero_obs(rng))

    # Metadata, then two requests on one connection.
    meta, replies = await roundtrip(port, good, n=2)
    check(isinstance(meta, bytes) and isinstance(unpackb(meta), dict), f"metadata is a binary msgpack map ({meta[:16]!r})")
    r0 = unpackb(replies[0]) if isinstance(replies[0], bytes) else None
    if not check(isinstance(r0, dict), f"LIBERO reply is a msgpack map ({type(replies[0]).__name__}, "
                                       f"{len(replies[0])} {'bytes' if isinstance(replies[0], bytes) else 'chars'}"
                                       f"{'' if isinstance(replies[0], bytes) else ': ' + replies[0][:300]})"):
        return
    check(set(r0) == {"actions", "policy_timing", "server_timing"}, f"reply keys {sorted(r0)}")
    a = r0.get("actions")
    check(isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.shape == (horizon, 7),
          f"actions float [{horizon}, 7]: got {getattr(a, 'dtype', None)} {getattr(a, 'shape', None)}")
    check(isinstance(a, np.ndarray) and bool(np.all(np.isfinite(a))), "actions finite")
    pt, st = r0.get("policy_timing", {}), r0.get("server_timing", {})
    check(isinstance(pt.get("infer_ms"), float) and pt["infer_ms"] >= 0, f"policy_timing.infer_ms {pt}")
    check(isinstance(st.get("infer_ms"), float) and "prev_total_ms" not in st, f"first server_timing {st}")
    r1 = unpackb(replies[1])
    st1 = r1.get("server_timing", {})
    check(isinstance(st1.get("prev_total_ms"), float) and st1["prev_total_ms"] > 0, f"second server_timing {st1}")
    check(np.array_equal(r1["actions"], a), "same request twice -> same actions (--seed)")

    # Byte order: the same state sent big-endian must give the same actions.
    obs = libero_obs(np.random.default_rng(11))
    _, (le,) = await roundtrip(port, packb(obs))
    obs_be = dict(obs, **{"observation/state": obs["observation/state"].astype(">f8")})
    _, (bige,) = await roundtrip(port, packb(obs_be))
    le, bige = unpackb(le), unpackb(bige)
    check(isinstance(le, dict) and isinstance(bige, dict) and np.array_equal(le["actions"], bige["actions"]),
          "'>f8' state gives the same actions as '<f8'")
    obs_f4 = dict(obs, **{"observation/state": obs["observation/state"].astype("<f4")})
    _, (f4,) = await roundtrip(port, packb(obs_f4))
    f4 = unpackb(f4)
    check(isinstance(f4, dict) and f4["actions"].shape == (horizon, 7), "'<f4' state accepted")

    status, body = healthz(port)
    check(status == 200 and body == b"OK\n", f"GET /healthz -> {status} {body!r}")

    # Malformed messages: each gets text + close 1011; the server stays up.
    for label, payload in bad_payloads(good).items():
        ok, text, code = await expect_error(port, payload)
        check(ok, f"{label}: text error + close 1011 (code {code}, text {str(text)[:160]!r})")
    check(srv.alive(), "server alive after malformed messages")
    ok, text, code = await expect_error(port, packb(aloha_obs(rng)))
    check(ok and "observation/image" in (text or ""),
          f"ALOHA-style observation on the LIBERO server: policy error names the missing key ({text!r})")

    # Frame-level abuse on raw sockets.
    s, rest = raw_ws(port)
    s.settimeout(10)
    s.sendall(frame_header(2, 1 << 62) + masked(good[:1000]))   # lws reports the frame once data arrives
    frames = raw_frames(s, rest)
    s.close()
    ops = [f[0] for f in frames]
    code = struct.unpack(">H", frames[-1][1][:2])[0] if frames and frames[-1][0] == 8 else None
    check(ops[:1] == [2] and 1 in ops and code == 1011, f"frame declaring 2^62 bytes: opcodes {ops}, close {code}")

    s, _ = raw_ws(port)
    s.sendall(frame_header(2, 100000) + masked(good[:5000]))
    s.close()                                              # disconnect mid-frame
    s, _ = raw_ws(port)
    s.sendall(frame_header(2, len(good)) + masked(good))
    s.close()                                              # disconnect while the request is queued/running
    _, (after,) = await roundtrip(port, good)
    check(isinstance(after, bytes) and "actions" in unpackb(after), "served after mid-frame and mid-request disconnects")

    # Many clients at once, with a silent client and a stalled half-frame client connected.
    silent, _ = await connect(port)
    stalled, rest = raw_ws(port)
    stalled.sendall(frame_header(2, len(good)) + masked(good[:1000]))
    results = await asyncio.gather(*[roundtrip(port, packb(libero_obs(np.random.default_rng(100 + i))), n=2)
                                     for i in range(6)], return_exceptions=True)
    oks = sum(1 for r in results if not isinstance(r, Exception) and all(
        isinstance(x, bytes) and "actions" in unpackb(x) for x in r[1]))
    check(oks == 6, f"6 concurrent clients x 2 requests served while a silent and a stalled client wait ({oks}/6)")
    await silent.close()
    stalled.close()
    status, _ = healthz(port)
    check(status == 200 and srv.alive(), "healthz after the concurrency test")


async def run_aloha(srv, horizon, rng):
    ws, meta = await connect(srv.port)
    m = unpackb(meta)
    check(isinstance(m, dict), f"ALOHA metadata map {m}")
    await ws.send(packb(aloha_obs(rng)))
    reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
    await ws.close()
    r = unpackb(reply) if isinstance(reply, bytes) else None
    a = r.get("actions") if isinstance(r, dict) else None
    check(isinstance(a, np.ndarray) and a.shape == (horizon, 14), f"ALOHA actions [{horizon}, 14]: {getattr(a, 'shape', reply)}")
    status, _ = healthz(srv.port)
    check(status == 200, "healthz after the ALOHA request")


def write_norm_stats(path, n_state, n_actions, seed):
    """openpi's norm_stats.json schema with random (non-identity) z-score statistics, so that the
    comparison with `pi0 run` covers normalization and unnormalization too."""
    rng = np.random.default_rng(seed)

    def stats(n):
        return {"mean": [float(x) for x in rng.normal(0, 0.5, n)],
                "std": [float(x) for x in rng.uniform(0.5, 2.0, n)], "q01": None, "q99": None}

    with open(path, "w") as f:
        json.dump({"norm_stats": {"state": stats(n_state), "actions": stats(n_actions)}}, f)


def tokenizer_args():
    tok = os.path.join(ROOT, "tests", "data", "policy", "tiny.model")
    return ["--tokenizer", tok] if os.path.exists(tok) else []


def write_png(path, rng, h, w):
    """Random RGB pixels to a PNG (Pillow); returns the pixels Pillow reads back (uint8 [h, w, 3])."""
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(path)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def pi0_run(model, robot, images, state, prompt, seed, extra, out):
    """`pi0 run` at the robot level; images = [(key, png path)]; returns float32 actions or an error string."""
    args = [PI0, "run", "--model", model, "--robot", robot, "--prompt", prompt, "--seed", str(seed),
            "--threads", "1", "--quiet", "--out", out, *extra]
    for key, path in images:
        args += ["--image", f"{key}={path}"]
    if state is not None:
        args += ["--state", ",".join(repr(float(v)) for v in state)]
    p = subprocess.run(args, capture_output=True, timeout=TIMEOUT)
    if p.returncode != 0:
        return f"pi0 run exit {p.returncode}: {p.stderr.decode(errors='replace')[-400:]}"
    with open(out) as f:
        return np.asarray(json.load(f)["actions"], dtype=np.float32)


async def serve_once(port, obs):
    ws, _ = await connect(port)
    try:
        await ws.send(packb(obs))
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
    finally:
        await ws.close()
    r = unpackb(reply) if isinstance(reply, bytes) else None
    if not isinstance(r, dict) or not isinstance(r.get("actions"), np.ndarray):
        return f"no actions in the reply: {str(reply)[:300]}"
    return r["actions"]


def compare(label, served, ran, shape):
    if isinstance(served, str) or isinstance(ran, str):
        return check(False, f"{label}: {served if isinstance(served, str) else ran}")
    check(served.dtype == np.float32 and served.shape == shape,
          f"{label}: reply actions float32 {list(shape)} (got {served.dtype} {list(served.shape)})")
    ok = served.shape == ran.shape and bool(np.all(np.abs(served.astype(np.float64) - ran) <= 1e-6))
    d = float(np.max(np.abs(served.astype(np.float64) - ran))) if served.shape == ran.shape else float("nan")
    return check(ok, f"{label}: pi0 serve == pi0 run (max |d| {d:.3g}, tolerance 1e-6, {ran.size} values)")


def libero_case(tmp, rng):
    """PNG files + the matching LIBERO observation (HWC uint8, float64 state)."""
    a, b = os.path.join(tmp, "libero_a.png"), os.path.join(tmp, "libero_b.png")
    img, wrist = write_png(a, rng, 224, 224), write_png(b, rng, 120, 160)  # 160x120: resize-with-pad
    state = rng.standard_normal(8)
    obs = {"observation/image": img, "observation/wrist_image": wrist, "observation/state": state,
           "prompt": "pick up the black bowl"}
    return obs, [("observation/image", a), ("observation/wrist_image", b)], state


async def compare_libero(srv, model, extra, tmp, horizon):
    obs, images, state = libero_case(tmp, np.random.default_rng(21))
    served = await serve_once(srv.port, obs)
    ran = pi0_run(model, "libero", images, state, obs["prompt"], SEED, extra, os.path.join(tmp, "r_libero.json"))
    compare("LIBERO", served, ran, (horizon, 7))


async def compare_aloha(srv, model, extra, tmp, horizon):
    rng = np.random.default_rng(22)
    cams, images = {}, []
    for cam, (h, w) in (("cam_high", (224, 224)), ("cam_left_wrist", (96, 128)), ("cam_right_wrist", (240, 320))):
        path = os.path.join(tmp, f"aloha_{cam}.png")
        cams[cam] = np.ascontiguousarray(write_png(path, rng, h, w).transpose(2, 0, 1))  # CHW, as openpi's ALOHA
        images.append((cam, path))
    state = rng.standard_normal(14).astype(np.float32)
    obs = {"state": state, "images": cams, "prompt": "Transfer cube"}
    served = await serve_once(srv.port, obs)
    ran = pi0_run(model, "aloha", images, state, obs["prompt"], SEED, extra, os.path.join(tmp, "r_aloha.json"))
    compare("ALOHA", served, ran, (horizon, 14))


async def expect_refused(port, limit):
    """Connect when the server is full: expect close 1013 and a reason naming --max-clients, no metadata."""
    ws = await asyncio.wait_for(websockets.connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None,
                                                   open_timeout=TIMEOUT), TIMEOUT)
    got = None
    try:
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    reason = ws.close_reason or ""
    return got is None and ws.close_code == 1013 and f"--max-clients {limit}" in reason, ws.close_code, reason


def silent_raw_client(port, wait):
    """A WebSocket client that never answers PINGs: returns (saw a PING, the server closed the connection)."""
    s, buf = raw_ws(port)
    s.settimeout(1.0)
    saw_ping, closed = False, False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not closed:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):   # small server frames only
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            saw_ping |= op == 9
            closed |= op == 8
            buf = buf[2 + ln:]
    s.close()
    return saw_ping, closed


async def run_default(srv, model, extra, tmp, horizon):
    """The server without --seed, --max-clients 2, --ping-secs 1."""
    obs, images, state = libero_case(tmp, np.random.default_rng(23))
    _, (r0, r1) = await roundtrip(srv.port, packb(obs), n=2)
    a0, a1 = unpackb(r0)["actions"], unpackb(r1)["actions"]
    check(a0.shape == (horizon, 7) and not np.array_equal(a0, a1),
          "no --seed: the same request twice gives different actions (fresh noise per request)")
    seeds = [int(x) for x in re.findall(r"seed (\d+), inferred", srv.stderr())]
    if check(len(seeds) == 2 and seeds[1] == seeds[0] + 1, f"per-request seeds logged, consecutive ({seeds})"):
        ran = pi0_run(model, "libero", images, state, obs["prompt"], seeds[0], extra, os.path.join(tmp, "r_seed.json"))
        check(not isinstance(ran, str) and np.array_equal(a0, ran),
              f"the logged seed {seeds[0]} reproduces the first reply with pi0 run --seed")

    # Capacity: two clients connected, the third is refused with 1013; after one leaves, served again.
    c1, _ = await connect(srv.port)
    c2, _ = await connect(srv.port)
    ok, code, reason = await expect_refused(srv.port, 2)
    check(ok, f"--max-clients 2: third client closed with 1013 and a clear reason (code {code}, {reason!r})")
    await c1.send(packb(obs))
    reply = await asyncio.wait_for(c1.recv(), TIMEOUT)
    check(isinstance(reply, bytes) and "actions" in unpackb(reply), "connected clients still served when full")
    await c2.close()
    await asyncio.sleep(0.2)  # let the server see the close
    _, (after,) = await roundtrip(srv.port, packb(obs))
    check(isinstance(after, bytes) and "actions" in unpackb(after), "a client is accepted again once one left")
    await c1.close()
    await asyncio.sleep(0.2)

    # Liveness (--ping-secs 1): a raw client that ignores PINGs is pinged and dropped; an idle
    # websockets client (which answers PINGs) stays connected meanwhile and is served afterwards.
    idle, _ = await connect(srv.port)
    raw = asyncio.get_running_loop().run_in_executor(None, silent_raw_client, srv.port, 10.0)
    saw_ping, closed = await asyncio.wait_for(raw, TIMEOUT)
    check(saw_ping and closed, f"--ping-secs 1: a client that never answers PINGs is pinged (saw ping {saw_ping}) "
                               f"and dropped (closed {closed})")
    await idle.send(packb(obs))
    reply = await asyncio.wait_for(idle.recv(), TIMEOUT)
    check(isinstance(reply, bytes) and "actions" in unpackb(reply), "an idle client that answers PINGs is kept and served")
    await idle.close()


def start(label, model, robot, extra):
    srv = Server(model, robot, extra)
    ok = check(srv.port is not None, f"{label}: server started and printed its port "
                                     f"(stdout {srv.first_line!r}; stderr: {srv.stderr()[-600:]})")
    return srv, ok


def stop(label, srv):
    rc = srv.stop()
    check(rc == 0, f"{label}: SIGTERM -> clean exit" if rc == 0 else
          f"{label}: SIGTERM -> clean exit (rc {rc}); stderr tail: {srv.stderr()[-300:]!r}")


def session(label, model, robot, extra, coro_fn, limit):
    """Start a server, run coro_fn(srv) within `limit` seconds, stop it; an exception is a failure."""
    srv, ok = start(label, model, robot, extra)
    try:
        if ok:
            asyncio.run(asyncio.wait_for(coro_fn(srv), limit))
    except Exception as e:  # a hung or broken exchange is a failure, not a crash of the test
        check(False, f"{label}: exception {type(e).__name__}: {e}")
    finally:
        if ok:
            stop(label, srv)
        else:
            srv.stop()


def main():
    if not os.path.exists(PI0):
        print(f"skip: {PI0} is not built")
        finish()
    model = os.path.join(ROOT, "tests", "data", "pi0_tiny")
    cfg = json.load(open(os.path.join(model, "config.json")))
    horizon, action_dim = cfg.get("action_horizon", 50), cfg.get("action_dim", 32)
    tmp = tempfile.TemporaryDirectory()
    t = tmp.name
    ns_libero = os.path.join(t, "norm_libero.json")
    write_norm_stats(ns_libero, 8, 7, 1)
    libero_extra = ["--norm-stats", ns_libero, *tokenizer_args()]
    seeded = ["--seed", str(SEED)]

    # LIBERO, --seed: protocol, malformed input, concurrency, then equality with pi0 run.
    async def libero(srv):
        await run_libero(srv, horizon, np.random.default_rng(1))
        await compare_libero(srv, model, libero_extra, t, horizon)
    session("libero", model, "libero", [*libero_extra, *seeded], libero, 300)

    # --weights int8: the server's replies equal `pi0 run --weights int8` (a server that ignored the option
    # gives the bf16 actions: max |d| 0.09 here, far above the 1e-6 tolerance).
    async def libero_int8(srv):
        await compare_libero(srv, model, [*libero_extra, "--weights", "int8"], t, horizon)
    session("libero int8", model, "libero", [*libero_extra, *seeded, "--weights", "int8"], libero_int8, 120)

    # ALOHA on the 8-dim test model: refused at startup, clearly.
    if action_dim < 14:
        srv = Server(model, "aloha", [*libero_extra, *seeded])
        rc = srv.proc.wait(timeout=TIMEOUT) if srv.port is None else None
        err = srv.stderr()
        check(srv.port is None and rc == 1 and "14" in err and str(action_dim) in err,
              f"aloha on a {action_dim}-dim model: refused at startup (rc {rc}): {err.strip()[-200:]!r}")
        srv.stop()

    # ALOHA on a tiny checkpoint with 32 action dims, 14-dim norm stats: equality with pi0 run.
    m32 = os.path.join(t, "tiny32")
    g = subprocess.run([PI0, "gen-random", "--preset", "tiny", "--action-dim", "32", "--out", m32],
                       capture_output=True, timeout=TIMEOUT)
    if check(g.returncode == 0, f"gen-random --preset tiny --action-dim 32 ({g.stderr.decode(errors='replace')[-200:]})"):
        h32 = json.load(open(os.path.join(m32, "config.json"))).get("action_horizon", 50)
        ns_aloha = os.path.join(t, "norm_aloha.json")
        write_norm_stats(ns_aloha, 14, 14, 2)
        aloha_extra = ["--norm-stats", ns_aloha, *tokenizer_args()]

        async def aloha(srv):
            await run_aloha(srv, h32, np.random.default_rng(1))
            await compare_aloha(srv, m32, aloha_extra, t, h32)
        session("aloha", m32, "aloha", [*aloha_extra, *seeded], aloha, 120)

    # Defaults (fresh noise per request), capacity and liveness limits.
    session("default seed", model, "libero", [*libero_extra, "--max-clients", "2", "--ping-secs", "1"],
            lambda srv: run_default(srv, model, libero_extra, t, horizon), 120)
    tmp.cleanup()
    finish()


if __name__ == "__main__":
    main()
