#!/usr/bin/python3
"""test_server.py - end-to-end test of `pi0 serve` on loopback, written from PI0_IO.md §4.

The client side is independent of our C code: msgpack-python packs and unpacks, numpy builds the
arrays, python3-websockets does the WebSocket protocol, and the msgpack-numpy hooks below are
written from the spec (openpi_client.msgpack_numpy). Raw sockets are used only for frame-level
abuse (a frame header declaring 2^62 bytes, a disconnect in the middle of a frame).

Starts `BUILD/pi0 serve --model tests/data/pi0_tiny --port 0` (LIBERO preset, then ALOHA),
reads the port it prints, and checks: metadata first; LIBERO reply keys, shapes and timing
fields; byte order honoured ('>f8' state gives the same actions as '<f8'); /healthz; malformed
messages (truncated, random bytes, wrong types, huge declared sizes, oversize, text) each get a
text message and close 1011 with openpi's reason while other clients keep being served; a silent
client and a half-sent frame block no one; a disconnect mid-request; SIGTERM stops it cleanly.
Every wait is bounded. Usage: /usr/bin/python3 tests/test_server.py BUILD_DIR. Skips (0 passed,
0 failed) when BUILD/pi0 does not exist; a server that cannot load the model is a failure.
"""
import asyncio
import base64
import functools
import http.client
import json
import os
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
PI0 = os.path.join(BUILD, "pi0")
REASON = "Internal server error. Traceback included in previous frame."
TIMEOUT = 60.0  # seconds for any single wait (the tiny model runs in milliseconds)

passed = failed = 0


def check(ok, label):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + label, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


# ---- msgpack-numpy (PI0_IO.md §4.3) -----------------------------------------------------------

def pack_array(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise ValueError(f"unsupported dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def unpack_array(obj):
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


packb = functools.partial(msgpack.packb, default=pack_array)
unpackb = functools.partial(msgpack.unpackb, object_hook=unpack_array)


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
    def __init__(self, model, robot, extra=()):
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
    check(np.array_equal(r1["actions"], a), "same request twice -> same actions (fixed seed)")

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


def policy_files(tmp, action_dim):
    """--tokenizer and --norm-stats for the tiny checkpoint: the 300-piece fixture tokenizer and
    identity statistics (mean 0, std 1) written here in openpi's norm_stats.json schema."""
    ns = os.path.join(tmp, "norm_stats.json")
    ident = {"mean": [0.0] * action_dim, "std": [1.0] * action_dim, "q01": None, "q99": None}
    with open(ns, "w") as f:
        json.dump({"norm_stats": {"state": ident, "actions": ident}}, f)
    args = ["--norm-stats", ns]
    tok = os.path.join(ROOT, "tests", "data", "policy", "tiny.model")
    if os.path.exists(tok):
        args += ["--tokenizer", tok]
    return args


def main():
    if not os.path.exists(PI0):
        print(f"skip: {PI0} is not built")
        finish()
    model = os.path.join(ROOT, "tests", "data", "pi0_tiny")
    if not os.path.isdir(model):
        model = os.path.normpath(os.path.join(ROOT, "..", "shared", "testdata", "pi0_tiny"))
    cfg = json.load(open(os.path.join(model, "config.json")))
    horizon, action_dim = cfg.get("action_horizon", 50), cfg.get("action_dim", 32)
    tmp = tempfile.TemporaryDirectory()
    extra = policy_files(tmp.name, action_dim)

    for robot in ("libero", "aloha"):
        srv = Server(model, robot, extra)
        try:
            if robot == "aloha" and action_dim < 14:
                # ALOHA returns 14 action dims; a narrower model must be refused at startup, clearly.
                rc = srv.proc.wait(timeout=TIMEOUT) if srv.port is None else None
                err = srv.stderr()
                check(srv.port is None and rc == 1 and "14" in err and str(action_dim) in err,
                      f"aloha on a {action_dim}-dim model: refused at startup (rc {rc}): {err.strip()[-200:]!r}")
                continue
            if not check(srv.port is not None, f"{robot}: server started and printed its port "
                                               f"(stdout {srv.first_line!r}; stderr: {srv.stderr()[-600:]})"):
                continue
            rng = np.random.default_rng(1)
            if robot == "libero":
                asyncio.run(asyncio.wait_for(run_libero(srv, horizon, rng), 300))
            else:
                asyncio.run(asyncio.wait_for(run_aloha(srv, horizon, rng), 120))
        except Exception as e:  # a hung or broken exchange is a failure, not a crash of the test
            check(False, f"{robot}: exception {type(e).__name__}: {e}")
        finally:
            if srv.port is not None:
                rc = srv.stop()
                check(rc == 0, f"{robot}: SIGTERM -> clean exit (rc {rc}); stderr tail: {srv.stderr()[-300:]!r}"
                      if rc != 0 else f"{robot}: SIGTERM -> clean exit")
            else:
                srv.stop()
    tmp.cleanup()
    finish()


if __name__ == "__main__":
    main()
