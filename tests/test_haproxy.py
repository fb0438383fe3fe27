#!/usr/bin/python3
"""test_haproxy.py - the "Serving many robots" recipe: `pi0 serve` replicas pinned to their own cores
behind HAProxy (tools/haproxy/pi0-fleet.sh running tools/haproxy/pi0.cfg), on loopback only.

Starts pi0-fleet.sh with 2 replicas of tests/data/pi0_tiny (LIBERO preset, --seed 7, --max-queue 0,
one CPU each) and HAProxy on a free 127.0.0.1 port, then runs 8 openpi-protocol robots through HAProxy at once,
each sending its own observation 6 times and "executing" each chunk for 50 ms while keeping its
session. While the queue is non-empty (both replicas hold a robot, the others wait in HAProxy's
queue) replica 1 is hit: killed with SIGKILL, then (a new fleet) frozen with SIGSTOP, where the
kernel still accepts connections but nothing answers. Checks, for each:
- the launcher prints its replicas and HAProxy; both replicas pass the HTTP health check on
  /healthz (HAProxy's L7OK) before any robot connects;
- every reply, before and after the kill, equals `pi0 run --seed 7` on the same observation
  (PNG files written here, the pixels Pillow reads back sent over the wire; tolerance 1e-6);
- the robot cut off reconnects and is served by the other replica (after SIGSTOP, HAProxy closes
  its session when /healthz fails: on-marked-down shutdown-sessions); no robot hangs (each wait
  <= 60 s, the whole run <= 120 s);
- HAProxy marked replica 1 DOWN and kept replica 2 UP, and no replica ever held 2 robots
  (HAProxy's smax = 1: maxconn 1);
- SIGTERM to the launcher stops HAProxy and the replicas.

The robots connect as openpi's WebsocketClientPolicy does (openpi-client websocket_client_policy.py,
_wait_for_server): connect, read the metadata message, and on ConnectionRefusedError only, sleep
and try again (openpi sleeps 5 s; 0.5 s here); any other error is raised. openpi's infer() does not
retry: when the connection drops mid-request it raises, and the robot program makes a new client
and sends the observation again. The robots here do exactly that on ConnectionClosed.

Usage: /usr/bin/python3 tests/test_haproxy.py BUILD_DIR. Skips (0 passed, 0 failed, 1 skipped)
when BUILD/pi0 is not built, HAProxy is not installed (Debian package haproxy, in DEBS: `make deps`)
or this process may use fewer than 2 CPUs.
"""
import asyncio
import json
import os
import select
import shutil
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
from openpi_msgpack import packb, unpackb  # noqa: E402 (the client codec shared with test_server.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
PI0 = os.path.join(BUILD, "pi0")
FLEET = os.path.join(ROOT, "tools", "haproxy", "pi0-fleet.sh")
MODEL = os.path.join(ROOT, "tests", "data", "pi0_tiny")
TIMEOUT = 60.0       # any single wait
RUN_TIMEOUT = 120.0  # all robots together
SEED = 7
N_ROBOTS, N_REQUESTS, EXEC_S = 8, 6, 0.05
RETRY_SLEEP = 0.5    # openpi's client sleeps 5 s between refused connection attempts

from tally import check, finish  # noqa: E402 (the shared pass/fail counter, tests/tally.py)


def find_haproxy():
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
                                            if os.access(p, os.X_OK)), None)


# ---- inputs and expected replies ------------------------------------------------------------------

def write_norm_stats(path):
    """openpi's norm_stats.json schema, random non-identity z-score stats (LIBERO: 8 state, 7 actions)."""
    rng = np.random.default_rng(1)

    def stats(n):
        return {"mean": [float(x) for x in rng.normal(0, 0.5, n)],
                "std": [float(x) for x in rng.uniform(0.5, 2.0, n)], "q01": None, "q99": None}

    with open(path, "w") as f:
        json.dump({"norm_stats": {"state": stats(8), "actions": stats(7)}}, f)


def write_png(path, rng, h, w):
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(path)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def make_robot_case(tmp, i, serve_extra):
    """Robot i's observation (msgpack bytes) and `pi0 run --seed` actions on the same inputs."""
    rng = np.random.default_rng(100 + i)
    a, b = os.path.join(tmp, f"r{i}_image.png"), os.path.join(tmp, f"r{i}_wrist.png")
    img, wrist = write_png(a, rng, 224, 224), write_png(b, rng, 96, 128)
    state = rng.standard_normal(8)
    prompt = ["pick up", "open it"][i % 2]
    obs = {"observation/image": img, "observation/wrist_image": wrist, "observation/state": state, "prompt": prompt}
    out = os.path.join(tmp, f"r{i}.json")
    args = [PI0, "run", "--model", MODEL, "--robot", "libero", "--prompt", prompt, "--seed", str(SEED),
            "--threads", "1", "--quiet", "--out", out, "--image", f"observation/image={a}",
            "--image", f"observation/wrist_image={b}", "--state", ",".join(repr(float(v)) for v in state),
            *serve_extra]
    p = subprocess.run(args, capture_output=True, timeout=TIMEOUT)
    if p.returncode != 0:
        return packb(obs), f"pi0 run exit {p.returncode}: {p.stderr.decode(errors='replace')[-300:]}"
    with open(out) as f:
        return packb(obs), np.asarray(json.load(f)["actions"], dtype=np.float32)


# ---- the fleet (launcher + HAProxy admin socket) ---------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    def __init__(self, tmp, serve_extra):
        self.stats = os.path.join(tmp, "haproxy.sock")
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, PI0=PI0)
        self.proc = subprocess.Popen(
            ["bash", FLEET, "--model", MODEL, "--replicas", "2", "--cores-per-replica", "1",
             "--listen", f"127.0.0.1:{self.port}", "--stats-socket", self.stats, "--", *serve_extra],
            stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.replicas, self.haproxy_pid, self.lines = {}, None, []
        buf, deadline = b"", time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and self.haproxy_pid is None:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not r:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                w = line.decode().split()
                self.lines.append(line.decode())
                if w[:1] == ["replica"] and len(w) == 8:    # replica I pid PID cpus LIST port PORT
                    self.replicas[int(w[1])] = {"pid": int(w[3]), "cpus": w[5], "port": int(w[7])}
                elif w[:1] == ["haproxy"] and len(w) >= 3:  # haproxy pid PID listening on HOST:PORT
                    self.haproxy_pid = int(w[2])

    def stderr(self, only_haproxy=False):
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        if only_haproxy:  # HAProxy's per-session log lines (option httplog), not the replicas' stderr
            return "\n".join(l for l in text.splitlines() if " robots " in l or "pi0_replicas" in l)
        return text[-2000:]

    def servers(self):
        """HAProxy's `show stat` for the backend's servers: {name: {field: value}}."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(head, l.split(","))) for l in lines[1:] if l]
        return {r["svname"]: r for r in rows if r.get("pxname") == "pi0_replicas"}

    def wait_for(self, pred, seconds=TIMEOUT):
        deadline = time.monotonic() + seconds
        st = {}
        while time.monotonic() < deadline:
            try:
                st = self.servers()
                if pred(st):
                    return True, st
            except (OSError, IndexError):
                pass
            time.sleep(0.02)
        return False, st

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                return None
        return self.proc.returncode


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive (the launcher has not reaped it yet)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- robots ---------------------------------------------------------------------------------------

async def connect_like_openpi(uri):
    """openpi's WebsocketClientPolicy._wait_for_server: retry a refused connection only."""
    while True:
        try:
            # ping_interval=None: no client-side keepalive (openpi's sync client had none before
            # websockets 14), so a frozen replica is noticed only through HAProxy, not by our pings.
            ws = await asyncio.wait_for(websockets.connect(uri, compression=None, max_size=None, ping_interval=None,
                                                           open_timeout=TIMEOUT), TIMEOUT)
            meta = await asyncio.wait_for(ws.recv(), TIMEOUT)
            return ws, unpackb(meta)
        except ConnectionRefusedError:
            await asyncio.sleep(RETRY_SLEEP)


async def robot(uri, obs_bytes, expected, progress):
    """N_REQUESTS inferences on one session; on a dropped connection, a new client and the same
    observation again. Returns (number of correct replies, reconnects, first problem or None)."""
    ws, _ = await connect_like_openpi(uri)
    good, reconnects, problem = 0, 0, None
    try:
        while good < N_REQUESTS:
            try:
                await ws.send(obs_bytes)
                reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
            except websockets.ConnectionClosed:
                reconnects += 1
                ws, _ = await connect_like_openpi(uri)
                continue
            if isinstance(reply, str):  # openpi's client raises on a text reply (a server error)
                return good, reconnects, f"server error text: {reply[:200]}"
            a = unpackb(reply).get("actions")
            if not (isinstance(a, np.ndarray) and a.shape == expected.shape
                    and bool(np.all(np.abs(a.astype(np.float64) - expected) <= 1e-6))):
                problem = problem or f"reply {good}: actions {getattr(a, 'shape', a)} differ from pi0 run"
            else:
                good += 1
            progress[0] += 1
            await asyncio.sleep(EXEC_S)  # the robot executes the chunk, session kept open
    finally:
        await ws.close()
    return good, reconnects, problem


async def run_robots(fleet, cases, sig):
    uri = f"ws://127.0.0.1:{fleet.port}/"
    progress = [0]
    tasks = [asyncio.ensure_future(robot(uri, obs, exp, progress)) for obs, exp in cases]

    # Hit replica 1 while both replicas hold a robot and others wait in HAProxy's queue.
    loop = asyncio.get_running_loop()
    busy = lambda st: (all(st.get(n, {}).get("scur") == "1" for n in ("r1", "r2"))
                       and int(st.get("BACKEND", {}).get("qcur", "0") or 0) >= 1 and progress[0] >= 4)
    ok, st = await loop.run_in_executor(None, fleet.wait_for, busy, TIMEOUT)
    check(ok, f"mid-run: both replicas hold one robot, robots queued in HAProxy "
              f"(r1 scur {st.get('r1', {}).get('scur')}, r2 scur {st.get('r2', {}).get('scur')}, "
              f"queue {st.get('BACKEND', {}).get('qcur')}, replies so far {progress[0]})")
    os.kill(fleet.replicas[1]["pid"], sig)
    hit_at = progress[0]

    done, pending = await asyncio.wait(tasks, timeout=RUN_TIMEOUT)
    for t in pending:
        t.cancel()
    check(not pending, f"no robot hangs: {len(done)}/{len(tasks)} finished within {RUN_TIMEOUT:.0f} s")
    results = [t.result() if t.done() and not t.cancelled() and t.exception() is None
               else (0, 0, repr(t.exception()) if t.done() and not t.cancelled() else "hung") for t in tasks]
    return results, hit_at


def scenario(what, sig, tmp, cases, serve_extra):
    """A fleet of 2 replicas, 8 robots, replica 1 hit by `sig` mid-run; the checks of the file comment."""
    print(f"-- replica 1 {what} mid-run")
    fleet = None
    for _ in range(3):  # the free port found for HAProxy may be taken before it binds: try another
        fleet = Fleet(tmp, serve_extra)
        if fleet.haproxy_pid or "cannot bind" not in fleet.stderr():
            break
        fleet.stop()
    try:
        if not check(len(fleet.replicas) == 2 and fleet.haproxy_pid is not None,
                     f"pi0-fleet.sh started 2 replicas and HAProxy: {fleet.lines} {fleet.stderr()[-600:]!r}"):
            return
        cpus = [fleet.replicas[i]["cpus"] for i in (1, 2)]
        check(cpus[0] != cpus[1], f"replicas pinned to different CPUs: {cpus}")
        ok, st = fleet.wait_for(lambda s: all(s.get(n, {}).get("status") == "UP" and
                                              s[n].get("check_status") == "L7OK" for n in ("r1", "r2")))
        if not check(ok, "both replicas UP by HAProxy's HTTP check on /healthz (L7OK): "
                         + str({n: (r.get("status"), r.get("check_status")) for n, r in st.items()})):
            return

        results, hit_at = asyncio.run(run_robots(fleet, cases, sig))
        for i, (good, reconnects, problem) in enumerate(results):
            check(good == N_REQUESTS and problem is None,
                  f"robot {i}: {good}/{N_REQUESTS} replies equal to pi0 run"
                  + (f" ({reconnects} reconnect)" if reconnects else "") + (f"; {problem}" if problem else ""))
        if any(r[0] != N_REQUESTS or r[2] for r in results):
            print("HAProxy's session log:\n" + fleet.stderr(only_haproxy=True))
        total_reconnects = sum(r[1] for r in results)
        check(total_reconnects >= 1, f"the robot on replica 1 lost its connection, reconnected and was served "
                                     f"by replica 2 ({total_reconnects} reconnects; hit after {hit_at} replies)")
        ok, st = fleet.wait_for(lambda s: s.get("r1", {}).get("status", "").startswith("DOWN"), 10)
        check(ok and st.get("r2", {}).get("status") == "UP",
              f"HAProxy: r1 DOWN ({st.get('r1', {}).get('check_status')}), r2 UP ({st.get('r2', {}).get('status')})")
        smax = {n: st.get(n, {}).get("smax") for n in ("r1", "r2")}
        check(smax == {"r1": "1", "r2": "1"}, f"maxconn 1: no replica ever held 2 robots (smax {smax})")
        check(int(st.get("r2", {}).get("stot", "0") or 0) >= N_ROBOTS // 2,
              f"replica 2 served its share of sessions and the rerouted ones (stot {st.get('r2', {}).get('stot')})")
    finally:
        if sig == signal.SIGSTOP and fleet and 1 in fleet.replicas:
            os.kill(fleet.replicas[1]["pid"], signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        rc = fleet.stop() if fleet else None
    survivors = [p for p in [fleet.haproxy_pid, *(r["pid"] for r in fleet.replicas.values())] if p]
    time.sleep(0.2)
    check(rc is not None and not any(alive(p) for p in survivors),
          f"SIGTERM to pi0-fleet.sh stops HAProxy and the replicas (exit {rc})")


def main():
    haproxy = find_haproxy()
    if not os.path.exists(PI0):
        print(f"skip: {PI0} is not built")
        finish(skipped=1)
    if not haproxy:
        print("skip: haproxy is not installed (Debian package haproxy; `make deps` installs it)")
        finish(skipped=1)
    if len(os.sched_getaffinity(0)) < 2:
        print("skip: fewer than 2 CPUs to pin 2 replicas to")
        finish(skipped=1)

    tmp = tempfile.TemporaryDirectory()
    ns = os.path.join(tmp.name, "norm_libero.json")
    write_norm_stats(ns)
    tok = os.path.join(ROOT, "tests", "data", "policy", "tiny.model")
    extra = ["--norm-stats", ns, *(["--tokenizer", tok] if os.path.exists(tok) else [])]
    cases = [make_robot_case(tmp.name, i, extra) for i in range(N_ROBOTS)]
    bad = [c[1] for c in cases if isinstance(c[1], str)]
    if not check(not bad, f"pi0 run --seed {SEED} on the {N_ROBOTS} robots' observations" + (f": {bad[0]}" if bad else "")):
        finish()
    serve_extra = ["--robot", "libero", "--seed", str(SEED), "--quiet", "--max-queue", "0", *extra]
    scenario("dies (SIGKILL)", signal.SIGKILL, tmp.name, cases, serve_extra)
    scenario("hangs (SIGSTOP: the port still accepts, nothing answers)", signal.SIGSTOP, tmp.name, cases, serve_extra)
    finish()


main()
