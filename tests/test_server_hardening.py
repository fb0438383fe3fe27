#!/usr/bin/python3
"""test_server_hardening.py - `pi0 serve` against hostile and careless clients (issue 10, server side;
issue 13's --max-queue), on loopback with the tiny checkpoint. Each check is a finding that once
failed; the client side is python3-websockets, raw sockets and msgpack-python (tests/test_server.py
has the protocol basics).

Slow requests: `--backend ref --steps N` makes one request take seconds on the tiny model (~1.4 ms
per step on the reference path), so that a client can leave while its request waits or runs. Whether a request ran is read from the
server's log ("seed S, inferred" / "cancelled", "queued request is dropped") and its exit summary.

- cancellation: clients that send a request and leave (close frame, FIN) while another request
  runs: their requests never run; the running one of a client that leaves is cancelled between ops,
  or inside a long JPEG decode (--allow-encoded-images); a client that stays is served;
- --max-queue 0: a request that arrives while one runs gets a text error and close 1013;
- shutdown: SIGTERM during a request that would run for a long time cancels it, the client gets a
  text message and close 1001, a queued client too; a second signal during the drain changes
  nothing; exit 0 in less than the request would have taken;
- limits: --idle-secs (1008 for a client that never sends a request; a served client may idle),
  --min-rate-kib (1008 for a trickling frame), --max-buffer-mib (1013 for a frame that does not
  fit next to two others in progress), and a long list under an ignored key is not turned into doubles (peak RSS of the server);
- file descriptors: under `ulimit -n 64`, 80 idle TCP connections do not make the server spin
  (CPU time over 2 s), and a client is served while they stay open (the oldest connections that
  sent no request headers are closed to make room);
- openpi parity: norm stats without 'state' serve like openpi's non-strict Normalize (the same
  actions as identity state stats); a prompt that is not a str is an error; a '<U' ndarray prompt
  equals the str prompt; --host localhost; 16 KB of upgrade headers accepted, 40 KB get 431;
  --host 0.0.0.0 warns; PNG bytes are refused unless --allow-encoded-images, and then give the
  same actions as the pixels Pillow decodes.

Usage: /usr/bin/python3 tests/test_server_hardening.py BUILD_DIR (skips when BUILD/pi0 is missing).
"""
import asyncio
import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import websockets
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402 (helpers: Server, connect, raw_ws, frames, norm stats)
from openpi_msgpack import packb, unpackb  # noqa: E402

PI0, ROOT, TIMEOUT, SEED = ts.PI0, ts.ROOT, ts.TIMEOUT, ts.SEED
from tally import check  # noqa: E402 (the shared pass/fail counter, tests/tally.py)
import tally  # noqa: E402


def libero_obs(seed=1, **kw):
    obs = ts.libero_obs(np.random.default_rng(seed))
    obs.update(kw)
    return obs


async def send_and_get(ws, payload):
    await ws.send(payload)
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def expect_close(ws, code):
    """Read until the server closes; returns (ok, text messages seen, close code, reason)."""
    texts = []
    try:
        while True:
            m = await asyncio.wait_for(ws.recv(), TIMEOUT)
            if isinstance(m, str):
                texts.append(m)
    except websockets.ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    return ws.close_code == code, texts, ws.close_code, ws.close_reason or ""


def actions_of(reply):
    r = unpackb(reply) if isinstance(reply, bytes) else None
    return r.get("actions") if isinstance(r, dict) else None


def wait_log(srv, pattern, count=1, limit=TIMEOUT):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if len(re.findall(pattern, srv.stderr(10**7))) >= count:
            return True
        time.sleep(0.05)
    return False


class Srv(ts.Server):
    def stderr(self, tail=3000):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-tail:]


def start(label, extra, model=None, robot="libero"):
    srv = Srv(model or MODEL, robot, [*BASE, *extra])
    ok = check(srv.port is not None, f"{label}: server started ({srv.first_line!r}; {srv.stderr()[-300:]!r})")
    return srv, ok


def stop(label, srv):
    rc = srv.stop()
    check(rc == 0, f"{label}: SIGTERM -> exit 0 (rc {rc})")
    return srv.stderr(10**7)


# ---- cancellation ------------------------------------------------------------------------------

async def cancellation(srv):
    good = packb(libero_obs())
    a, _ = await ts.connect(srv.port)            # runs first, then leaves with a close frame
    await a.send(good)
    check(wait_log(srv, r"conn \d+ \(.*\): request"), "cancellation: the first request is queued or running")
    time.sleep(0.3)
    leavers = []
    for _ in range(4):                           # send and leave politely while the first one runs
        ws, _ = await ts.connect(srv.port)
        await ws.send(good)
        leavers.append(ws)
    fin, _ = ts.raw_ws(srv.port)                 # send, then FIN (half-close) without a close frame
    fin.sendall(ts.frame_header(2, len(good)) + ts.masked(good))
    fin.shutdown(socket.SHUT_WR)
    for ws in leavers:
        await ws.close()
    await a.close()
    stayer, _ = await ts.connect(srv.port)
    t0 = time.monotonic()
    reply = await send_and_get(stayer, good)
    dt = time.monotonic() - t0
    await stayer.close()
    fin.close()
    a0 = actions_of(reply)
    check(a0 is not None and a0.shape[1] == 7, f"cancellation: the client that stayed is served ({dt:.1f} s)")
    log = srv.stderr(10**7)
    inferred, cancelled = len(re.findall(r"inferred in", log)), len(re.findall(r"cancelled in", log))
    dropped = len(re.findall(r"queued request is dropped", log))
    check(inferred == 1 and cancelled + dropped == 6,
          f"cancellation: 6 clients left (close frame x5, FIN x1): none of their requests ran to the end "
          f"(inferred {inferred} = only the stayer, cancelled while running {cancelled}, dropped {dropped})")
    check(cancelled >= 1, f"cancellation: the running request of a leaving client was cancelled between ops ({cancelled})")


async def max_queue(srv):
    good = packb(libero_obs())
    a, _ = await ts.connect(srv.port)
    await a.send(good)
    check(wait_log(srv, r"request \d+ bytes"), "--max-queue 0: first request accepted")
    b, _ = await ts.connect(srv.port)
    await b.send(good)
    ok, texts, code, reason = await expect_close(b, 1013)
    check(ok and texts and "--max-queue 0" in texts[0],
          f"--max-queue 0: a second request while one runs: text error + close 1013 ({code}, {texts[:1]}, {reason!r})")
    reply = await asyncio.wait_for(a.recv(), TIMEOUT)
    check(actions_of(reply) is not None, "--max-queue 0: the running request is answered")
    reply = await send_and_get(a, good)
    check(actions_of(reply) is not None, "--max-queue 0: served again once idle")
    await a.close()


def shutdown(extra):
    """SIGTERM while a request runs for a long time and another waits; a second signal in the drain."""
    srv, ok = start("shutdown", extra)
    if not ok:
        srv.stop()
        return
    result = {}

    async def clients():
        good = packb(libero_obs())
        a, _ = await ts.connect(srv.port)
        b, _ = await ts.connect(srv.port)
        await a.send(good)
        wait_log(srv, r"request \d+ bytes")
        await b.send(good)
        wait_log(srv, r"request \d+ bytes", 2)
        time.sleep(0.3)
        result["t0"] = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGINT)      # a second signal during the drain
        result["a"] = await expect_close(a, 1001)
        result["b"] = await expect_close(b, 1001)

    asyncio.run(asyncio.wait_for(clients(), 60))
    try:
        rc = srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        rc = None
    dt = time.monotonic() - result["t0"]
    ok_a, texts_a, code_a, _ = result["a"]
    ok_b, texts_b, code_b, _ = result["b"]
    check(ok_a and texts_a and "cancelled" in texts_a[0],
          f"shutdown: the running request is cancelled, its client gets a text + close 1001 ({code_a}, {texts_a[:1]})")
    check(ok_b and texts_b and "dropped" in texts_b[0],
          f"shutdown: the queued request is dropped, its client gets a text + close 1001 ({code_b}, {texts_b[:1]})")
    check(rc == 0, f"shutdown: SIGTERM then SIGINT during the drain -> exit 0 (rc {rc})")
    check(dt < 8, f"shutdown: exit {dt:.1f} s after SIGTERM (drain 3 s + 2 s; the request alone runs far longer)")
    log = srv.stderr(10**7)
    check("inferred in" not in log, "shutdown: neither request ran to the end")


# ---- limits ------------------------------------------------------------------------------------

def trickle_client(port, total, rate, seconds):
    """Declare a `total`-byte frame and send `rate` bytes/s; returns (close code, text) from the server."""
    s, rest = ts.raw_ws(port)
    s.sendall(ts.frame_header(2, total))
    deadline = time.monotonic() + seconds
    s.settimeout(0.2)
    buf = rest
    while time.monotonic() < deadline:
        try:
            s.sendall(b"\x00" * rate)
        except OSError:
            break
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        except socket.timeout:
            pass
        except OSError:
            break
        if any(f[0] == 8 for f in parse_frames(buf)):
            break
        time.sleep(max(0.0, 1.0 - 0.2))
    s.close()
    frames = parse_frames(buf)
    close = next((f for f in frames if f[0] == 8), None)
    text = next((f[1].decode(errors="replace") for f in frames if f[0] == 1), "")
    return (int.from_bytes(close[1][:2], "big") if close and len(close[1]) >= 2 else None), text


def parse_frames(buf):
    out, i = [], 0
    while i + 2 <= len(buf):
        op, ln, h = buf[i] & 0x0F, buf[i + 1] & 0x7F, 2
        if ln == 126:
            if i + 4 > len(buf):
                break
            ln, h = int.from_bytes(buf[i + 2:i + 4], "big"), 4
        elif ln == 127:
            if i + 10 > len(buf):
                break
            ln, h = int.from_bytes(buf[i + 2:i + 10], "big"), 10
        if i + h + ln > len(buf):
            break
        out.append((op, buf[i + h:i + h + ln]))
        i += h + ln
    return out


def rss_peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


async def limits(srv):
    good = packb(libero_obs())
    port = srv.port
    # idle timeout (--idle-secs 2): one client never sends; another is served, idles 3 s, is served again
    idle, _ = await ts.connect(port)
    busy, _ = await ts.connect(port)
    first = await send_and_get(busy, good)
    ok, texts, code, reason = await expect_close(idle, 1008)
    check(ok and "--idle-secs" in reason, f"--idle-secs 2: a client that sends no request is closed with 1008 "
                                          f"({code}, {reason!r})")
    await asyncio.sleep(1.0)
    again = await send_and_get(busy, good)
    check(actions_of(first) is not None and actions_of(again) is not None,
          "--idle-secs 2: a client that was served may idle longer and is served again")
    await busy.close()

    # minimum data rate (--min-rate-kib 64): 1 KiB/s of a 1 MiB frame
    loop = asyncio.get_running_loop()
    code, text = await loop.run_in_executor(None, trickle_client, port, 1 << 20, 1024, 15)
    check(code == 1008 and "--min-rate-kib" in text, f"--min-rate-kib 64: a 1 KiB/s frame is closed with 1008 "
                                                    f"({code}, {text[:100]!r})")

    # buffer budget (--max-frame-mib 40 --max-buffer-mib 42): two 20 MiB frames in progress fit, a third does not
    held = []
    for _ in range(3):
        s, rest = ts.raw_ws(port)
        s.sendall(ts.frame_header(2, 20 << 20) + b"\x00" * 65536)
        held.append((s, rest))
        await asyncio.sleep(0.5)   # in this order on the server
    s, rest = held[2]
    s.settimeout(10)
    frames = ts.raw_frames(s, rest)
    text = next((f[1].decode(errors="replace") for f in frames if f[0] == 1), "")
    close = next((int.from_bytes(f[1][:2], "big") for f in frames if f[0] == 8 and len(f[1]) >= 2), None)
    check(close == 1013 and "--max-buffer-mib" in text,
          f"--max-buffer-mib 42: a third 20 MiB message is refused with 1013 ({close}, {text[:120]!r})")
    for s, _ in held:
        s.close()
    await asyncio.sleep(0.3)
    ws, _ = await ts.connect(port)
    check(actions_of(await send_and_get(ws, good)) is not None, "--max-buffer-mib: served once the budget is free")
    await ws.close()

    # a long list under an ignored key: not decoded (32 MiB of small ints would be 256 MiB of doubles)
    obs = libero_obs()
    n = 32 << 20
    big = packb(obs)
    big = bytes([big[0] + 1]) + big[1:] + b"\xa5extra" + b"\xdd" + n.to_bytes(4, "big") + b"\x01" * n
    before = rss_peak_mib(srv.proc.pid)
    s, rest = ts.raw_ws(port)     # a zero mask leaves the payload as is (python masking 32 MiB is slow)
    s.settimeout(TIMEOUT)
    s.sendall(ts.frame_header(2, len(big), mask=b"\0\0\0\0") + big)
    frames = ts.raw_frames(s, rest, limit=2)
    s.close()
    binary = [f[1] for f in frames if f[0] == 2]   # the metadata, then the reply
    reply = binary[1] if len(binary) > 1 else (frames[-1][1] if frames else None)
    after = rss_peak_mib(srv.proc.pid)
    check(actions_of(reply) is not None and after - before < 100,
          f"a list of 32 Mi small ints under an ignored key is skipped: served, peak RSS +{after - before:.0f} MiB "
          f"(limit 100; as doubles it would be +256)")
    state_list = dict(obs)
    state_list["observation/state"] = list(range(5000))
    ws, _ = await ts.connect(port)
    ok, texts, code, _ = await expect_close_after(ws, packb(state_list), 1011)
    check(ok and texts and "'observation/state' was ignored" in texts[0],
          f"a 5000-long list as the state: the error says the key was ignored ({texts[:1]})")


async def expect_close_after(ws, payload, code):
    await ws.send(payload)
    return await expect_close(ws, code)


def fd_exhaustion(extra):
    """Under ulimit -n 64, many idle TCP connections: no busy loop, and service resumes."""
    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    log = tempfile.TemporaryFile()
    args = [PI0, "serve", "--model", MODEL, "--port", "0", "--robot", "libero", "--threads", "1", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, preexec_fn=low_fds)
    line = proc.stdout.readline().decode().strip()
    if not check(line.startswith("listening on 127.0.0.1:"), f"ulimit -n 64: server started ({line!r})"):
        proc.kill()
        return
    port = int(line.rsplit(":", 1)[1])
    socks = []
    for _ in range(80):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    time.sleep(0.5)

    def cpu():
        with open(f"/proc/{proc.pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu()
    time.sleep(2.0)
    used = cpu() - c0
    check(used < 0.5, f"ulimit -n 64, {len(socks)} idle TCP connections: server CPU {used:.2f} s in 2 s (no accept "
                      f"busy loop; limit 0.5)")

    async def client():
        ws, _ = await ts.connect(port)
        r = await send_and_get(ws, packb(libero_obs()))
        await ws.close()
        return r
    t0 = time.monotonic()
    try:   # the idle connections are still open: the oldest ones before their request make room
        reply = asyncio.run(asyncio.wait_for(client(), 30))
    except Exception as e:  # noqa: BLE001
        reply = repr(e)
    dt = time.monotonic() - t0
    log.seek(0)
    evicted = log.read().decode(errors="replace").count("closing the oldest one that sent no request")
    check(actions_of(reply) is not None and evicted > 0,
          f"ulimit -n 64: a client is served while {len(socks)} idle TCP connections stay open ({dt:.1f} s; "
          f"{evicted} idle connections closed to make room; {str(reply)[:60]})")
    for s in socks:
        s.close()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    log.seek(0)
    err = log.read().decode(errors="replace")
    check(rc == 0 and err.count("accept: errno") < 5, f"ulimit -n 64: clean exit (rc {rc}), "
                                                      f"{err.count('accept: errno')} accept errors logged")


# ---- openpi parity -----------------------------------------------------------------------------

async def prompt_types(srv):
    base = libero_obs()
    for label, value in (("None", None), ("5", 5), ("a list", ["pick", "up"]), ("bytes", b"pick up")):
        ws, _ = await ts.connect(srv.port)
        ok, texts, code, _ = await expect_close_after(ws, packb(dict(base, prompt=value)), 1011)
        check(ok and texts and "'prompt'" in texts[0], f"prompt {label}: error + close 1011, as openpi raises "
                                                       f"({code}, {texts[:1]})")
    ws, _ = await ts.connect(srv.port)
    a_str = actions_of(await send_and_get(ws, packb(base)))
    a_u = actions_of(await send_and_get(ws, packb(dict(base, prompt=np.asarray(base["prompt"])))))
    a_np = actions_of(await send_and_get(ws, packb(dict(base, prompt=np.str_(base["prompt"])))))
    await ws.close()
    check(a_str is not None and a_u is not None and np.array_equal(a_str, a_u) and np.array_equal(a_str, a_np),
          "prompt as np.asarray(str) ('<U' ndarray) and np.str_ give the str prompt's actions")


async def pipelined(srv):
    """Two requests sent back to back (openpi's client never does this, python websockets allows it):
    the second is held until the first is answered, then both are answered in order."""
    ws, _ = await ts.connect(srv.port)
    o1, o2 = packb(libero_obs(11)), packb(libero_obs(12))
    await ws.send(o1)
    await ws.send(o2)
    r1 = actions_of(await asyncio.wait_for(ws.recv(), TIMEOUT))
    r2 = actions_of(await asyncio.wait_for(ws.recv(), TIMEOUT))
    s1 = actions_of(await send_and_get(ws, o1))
    s2 = actions_of(await send_and_get(ws, o2))
    await ws.close()
    check(all(x is not None for x in (r1, r2, s1, s2)) and np.array_equal(r1, s1) and np.array_equal(r2, s2),
          "two pipelined requests on one connection: both answered, in order")


def costly_jpeg():
    """A 525 KB progressive JPEG, 8192x4096: about 2 s of decoding, within the default budget."""
    h, w = 4096, 8192
    y = np.broadcast_to(np.linspace(0, 255, h, dtype=np.float32)[:, None], (h, w))
    x = np.broadcast_to(np.linspace(0, 255, w, dtype=np.float32)[None, :], (h, w))
    buf = io.BytesIO()
    Image.fromarray(np.stack([(y + x) / 2, y, x], -1).astype(np.uint8)).save(buf, format="JPEG", progressive=True,
                                                                              quality=90)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


async def decode_cancel(srv):
    """A client that leaves while its JPEG is being decoded: the decode stops (the policy passes the
    request's cancel flag to the decoder's budget), well before the decode would have finished."""
    jpg = costly_jpeg()
    ws, _ = await ts.connect(srv.port)
    t0 = time.monotonic()
    await ws.send(packb(libero_obs(**{"observation/image": jpg})))
    wait_log(srv, r"request \d+ bytes")
    await asyncio.sleep(0.3)
    await ws.close()
    wait_log(srv, r"(cancelled|inferred|failed) in")
    m = re.search(r"cancelled in ([0-9.]+) ms: (.*)", srv.stderr(10**7))
    check(m is not None and "decoding cancelled" in m.group(2),
          f"a client leaves during a ~2 s JPEG decode: the decode is cancelled "
          f"({m.group(0)[:160] if m else srv.stderr()[-300:]!r}; {time.monotonic() - t0:.1f} s)")


async def encoded_images(srv_plain, srv_enc):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    png = np.frombuffer(buf.getvalue(), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    obs = libero_obs()
    ws, _ = await ts.connect(srv_plain.port)
    ok, texts, code, _ = await expect_close_after(ws, packb(dict(obs, **{"observation/image": png})), 1011)
    check(ok and texts and "--allow-encoded-images" in texts[0],
          f"PNG bytes refused without --allow-encoded-images ({code}, {texts[:1]})")
    ws, _ = await ts.connect(srv_enc.port)
    a_png = actions_of(await send_and_get(ws, packb(dict(obs, **{"observation/image": png}))))
    a_pix = actions_of(await send_and_get(ws, packb(dict(obs, **{"observation/image": decoded}))))
    await ws.close()
    check(a_png is not None and a_pix is not None and np.array_equal(a_png, a_pix),
          "--allow-encoded-images: PNG bytes give the actions of the pixels Pillow decodes")


def upgrade_with_headers(port, nbytes):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    req = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Cookie: session=" + b"x" * nbytes + b"\r\n\r\n")
    s.sendall(req)
    buf = b""
    try:
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    s.close()
    return buf.split(b"\r\n", 1)[0].decode(errors="replace")


def start_host(host, extra=()):
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([PI0, "serve", "--model", MODEL, "--host", host, "--port", "0", "--robot", "libero",
                             "--threads", "1", *BASE, *extra], stdout=subprocess.PIPE, stderr=log)
    line = proc.stdout.readline().decode().strip()
    port = int(line.rsplit(":", 1)[1]) if line.startswith("listening on ") else None
    return proc, log, port, line


def stop_proc(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def parity(tmp):
    # norm stats without 'state' vs identity state stats (mean 0, std + 1e-6 == 1.0 exactly)
    ns = json.load(open(NS))["norm_stats"]
    no_state, ident = os.path.join(tmp, "ns_no_state.json"), os.path.join(tmp, "ns_ident.json")
    json.dump({"norm_stats": {"actions": ns["actions"]}}, open(no_state, "w"))
    json.dump({"norm_stats": {"actions": ns["actions"], "state": {"mean": [0.0] * 8, "std": [1 - 1e-6] * 8,
                                                                   "q01": None, "q99": None}}}, open(ident, "w"))
    results = []
    for path in (no_state, ident):
        srv = Srv(MODEL, "libero", [*BASE, "--norm-stats", path, "--seed", str(SEED)])
        if srv.port is None:
            results.append(f"no start: {srv.stderr()[-300:]}")
            srv.stop()
            continue

        async def one(port=srv.port):
            ws, _ = await ts.connect(port)
            r = await send_and_get(ws, packb(libero_obs(3)))
            await ws.close()
            return r
        results.append(actions_of(asyncio.run(one())))
        srv.stop()
    a, b = results
    check(isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b),
          f"norm stats without 'state': served, state not normalized (openpi's non-strict Normalize): equal to "
          f"identity state stats ({str(a)[:80] if not isinstance(a, np.ndarray) else 'equal' if b is not None else b})")

    # --host localhost
    proc, log, port, line = start_host("localhost")
    st = ts.healthz(port)[0] if port else None
    check(st == 200, f"--host localhost: listening ({line!r}), /healthz {st}")
    # request headers: 16 KB accepted, 40 KB -> 431
    if port:
        first = upgrade_with_headers(port, 16 * 1024)
        check(first.startswith("HTTP/1.1 101"), f"upgrade with a 16 KB Cookie header accepted ({first!r})")
        first = upgrade_with_headers(port, 40 * 1024)
        check(first.startswith("HTTP/1.1 431"), f"upgrade with a 40 KB Cookie header: 431 ({first!r})")
        st = ts.healthz(port)[0]
        check(st == 200, "healthz after the header tests")
    stop_proc(proc)
    # --host 0.0.0.0: a warning at startup
    proc, log, port, line = start_host("0.0.0.0")
    time.sleep(0.2)
    rc = stop_proc(proc)
    log.seek(0)
    err = log.read().decode(errors="replace")
    check(port is not None and rc == 0 and "warning" in err and "no authentication" in err,
          f"--host 0.0.0.0: startup warning about no authentication ({err[:160]!r})")


# ---- main --------------------------------------------------------------------------------------

def session(label, extra, coro_fn, limit=90):
    srv, ok = start(label, extra)
    try:
        if ok:
            asyncio.run(asyncio.wait_for(coro_fn(srv), limit))
    except Exception as e:  # noqa: BLE001 (a hung or broken exchange is a failure)
        check(False, f"{label}: exception {type(e).__name__}: {e}")
    finally:
        if ok:
            return stop(label, srv)
        srv.stop()
    return ""


def main():
    global MODEL, NS, BASE
    if not os.path.exists(PI0):
        print(f"skip: {PI0} is not built")
        print("0 passed, 0 failed")
        return 0
    MODEL = os.path.join(ROOT, "tests", "data", "pi0_tiny")
    tmp = tempfile.TemporaryDirectory()
    NS = os.path.join(tmp.name, "norm.json")
    ts.write_norm_stats(NS, 8, 7, 1)
    BASE = ["--norm-stats", NS, *ts.tokenizer_args()]
    seeded = ["--seed", str(SEED)]

    log = session("cancellation", ["--backend", "ref", "--steps", "1500"], cancellation)
    m = re.search(r"stopped: (\d+) replies, (\d+) errors, (\d+) cancelled while running, (\d+) dropped", log)
    check(m is not None and m.group(1) == "1", f"cancellation: exit summary {m.group(0) if m else log[-300:]!r}")
    session("max-queue", ["--backend", "ref", "--steps", "700", "--max-queue", "0"], max_queue)
    shutdown(["--backend", "ref", "--steps", "10000"])
    session("limits", ["--idle-secs", "2", "--min-rate-kib", "64", "--max-frame-mib", "40", "--max-buffer-mib", "42",
                       *seeded], limits)
    fd_exhaustion(BASE)
    async def prompt_and_pipelined(srv):
        await prompt_types(srv)
        await pipelined(srv)
    session("prompt", seeded, prompt_and_pipelined)

    plain, ok1 = start("encoded (refused)", seeded)
    enc, ok2 = start("encoded (allowed)", [*seeded, "--allow-encoded-images"])
    try:
        if ok1 and ok2:
            asyncio.run(asyncio.wait_for(encoded_images(plain, enc), 60))
    except Exception as e:  # noqa: BLE001
        check(False, f"encoded images: exception {type(e).__name__}: {e}")
    plain.stop()
    enc.stop()
    session("decode cancel", [*seeded, "--allow-encoded-images", "--max-frame-mib", "8"], decode_cancel)
    parity(tmp.name)
    tmp.cleanup()
    tally.finish()


if __name__ == "__main__":
    sys.exit(main())
