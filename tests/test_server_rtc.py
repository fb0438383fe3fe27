#!/usr/bin/python3
"""test_server_rtc.py BUILD - real-time chunking through `pi0 serve` (tools/server/rtc_keys.h).

A LIBERO server on the tiny π0 (--seed 7, non-trivial norm stats; LIBERO π0 has delta actions, so
the server must re-anchor the previous chunk to the new state). A client sends a plain request, then
the same kind of request with 'rtc_prev_actions' (rows s.. of the first reply) and
'rtc_inference_delay'. The reply must equal `pi0 run --robot libero ... --prev-actions FIRST.npy
--delay D --horizon S --seed 7` on the same images (PNG, lossless) and state, and differ from the
reply without RTC. A client that sends neither key gets exactly today's reply. Every misuse (one key
alone, delay > rows, delay > executed steps, too many rows, wrong column count, a float delay, a
3-D array) gets an error text naming the key and close 1011, and the server keeps serving.
"""
import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import websockets
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from openpi_msgpack import packb, unpackb  # noqa: E402

ROOT = os.path.dirname(HERE)
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
PI0 = os.path.join(BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD), "pi0")
TIMEOUT = 60.0
passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg, flush=True)
    passed += bool(ok)
    failed += not ok


def start_server(args):
    proc = subprocess.Popen([PI0, "serve", "--host", "127.0.0.1", "--port", "0", "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line, deadline = b"", time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            ch = os.read(proc.stdout.fileno(), 1)
            if not ch:
                break
            line += ch
        elif proc.poll() is not None:
            break
    text = line.decode(errors="replace").strip()
    port = int(text.rsplit(":", 1)[1]) if text.startswith("listening on") else None
    return proc, port


async def request(port, obs):
    """Returns ('ok', actions) or ('error', text)."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None,
                                  open_timeout=TIMEOUT) as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)           # metadata
        await ws.send(packb(obs))
        try:
            msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
        except websockets.ConnectionClosed:
            return "closed", None
        if isinstance(msg, str):
            try:
                await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            except asyncio.TimeoutError:
                pass
            return "error", (msg, ws.close_code)
        return "ok", np.asarray(unpackb(msg)["actions"])


def main():
    tmp = tempfile.mkdtemp(prefix="pi0_srv_rtc_")
    ckpt = os.path.join(HERE, "data", "pi0_tiny")
    tok = os.path.join(HERE, "data", "policy", "tiny.model")
    rng = np.random.default_rng(11)
    stats = {"state": {"mean": rng.normal(0, 1, 8).tolist(), "std": rng.uniform(0.5, 2, 8).tolist()},
             "actions": {"mean": rng.normal(0, 1, 7).tolist(), "std": rng.uniform(0.5, 2, 7).tolist()}}
    ns = os.path.join(tmp, "norm_stats.json")
    with open(ns, "w") as f:
        json.dump({"norm_stats": stats}, f)
    img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(img).save(os.path.join(tmp, "img.png"))
    Image.fromarray(wrist).save(os.path.join(tmp, "wrist.png"))
    s1 = rng.normal(0, 1, 8)
    s2 = s1 + rng.normal(0, 0.3, 8)

    def obs(state, **extra):
        o = {"observation/image": img, "observation/wrist_image": wrist, "observation/state": state, "prompt": "pick"}
        o.update(extra)
        return o

    common = ["--model", ckpt, "--robot", "libero", "--norm-stats", ns, "--tokenizer", tok, "--seed", "7"]
    proc, port = start_server([*common, "--threads", "1"])
    if port is None:
        check(False, f"server starts: {proc.stderr.read().decode(errors='replace')[-500:] if proc.poll() is not None else ''}")
        print(f"{passed} passed, {failed} failed")
        return 1
    try:
        kind, a1 = asyncio.run(request(port, obs(s1)))
        check(kind == "ok" and a1.shape == (5, 7), f"plain request: {kind}, shape {getattr(a1, 'shape', None)}")
        kind, a1b = asyncio.run(request(port, obs(s1)))
        check(kind == "ok" and np.array_equal(a1, a1b), "a client sending no RTC keys gets today's reply (same seed)")
        np.save(os.path.join(tmp, "a1.npy"), a1.astype(np.float32))
        H, s, d = 5, 2, 1
        kind, b = asyncio.run(request(port, obs(s2, rtc_prev_actions=a1[s:].astype(np.float32),
                                                rtc_inference_delay=d)))
        kind0, b0 = asyncio.run(request(port, obs(s2)))
        run = subprocess.run([PI0, "run", *common, "--image", f"observation/image={tmp}/img.png", "--image",
                              f"observation/wrist_image={tmp}/wrist.png", "--prompt", "pick", "--state",
                              ",".join(map(repr, s2)), "--prev-actions", os.path.join(tmp, "a1.npy"), "--delay", str(d),
                              "--horizon", str(s), "--out", os.path.join(tmp, "b.npy"), "--quiet"],
                             capture_output=True, text=True)
        want = np.load(os.path.join(tmp, "b.npy")) if run.returncode == 0 else None
        check(kind == "ok" and want is not None and np.array_equal(b, want),
              f"RTC request = pi0 run --prev-actions --delay {d} --horizon {s} (robot units, re-anchored): "
              f"{kind}, max |d| {np.abs(b - want).max() if kind == 'ok' and want is not None else run.stderr.strip()}")
        check(kind == "ok" and kind0 == "ok" and np.abs(b - b0).max() > 1e-3,
              f"RTC changes the reply (max |d| vs no RTC {np.abs(b - b0).max() if kind == 'ok' else 'n/a'})")
        tail = a1[s:].astype(np.float32)
        bad = [
            ({"rtc_prev_actions": tail}, "without 'rtc_inference_delay'"),
            ({"rtc_inference_delay": 1}, "without 'rtc_prev_actions'"),
            ({"rtc_prev_actions": tail, "rtc_inference_delay": 4}, "'rtc_inference_delay' = 4 must be <="),
            ({"rtc_prev_actions": a1[1:].astype(np.float32), "rtc_inference_delay": 2}, "<= the 1 actions executed"),
            ({"rtc_prev_actions": np.zeros((6, 7), np.float32), "rtc_inference_delay": 0}, "has 6 rows, more than"),
            ({"rtc_prev_actions": np.zeros((3, 8), np.float32), "rtc_inference_delay": 1},
             "rtc.prev_dim = 8, but robot 'libero' returns 7"),
            ({"rtc_prev_actions": tail, "rtc_inference_delay": 1.5}, "'rtc_inference_delay': expected an integer"),
            ({"rtc_prev_actions": np.zeros((1, 3, 7, 1), np.float32), "rtc_inference_delay": 1},
             "'rtc_prev_actions': expected a numeric array"),
        ]
        for extra, needle in bad:
            kind, res = asyncio.run(request(port, obs(s2, **extra)))
            text, code = res if kind == "error" else ("", None)
            check(kind == "error" and needle in text and code == 1011,
                  f"misuse {sorted(extra)}: error naming it, close {code}: {text[:150]}")
        kind, again = asyncio.run(request(port, obs(s1)))
        check(kind == "ok" and np.array_equal(again, a1), "the server still serves after the errors")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
