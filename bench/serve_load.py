#!/usr/bin/python3
"""serve_load.py - bounded load test of `pi0 serve` on loopback (not part of `make test`).

Starts `BUILD/pi0 serve --port 0 --robot libero --seed 7 --quiet` on the tiny checkpoint
(tests/data/pi0_tiny), connects N clients (default 8), each in its own thread, and has every
client send R requests (default 20) back to back, each waiting for its reply (the way a robot
loop uses openpi's WebsocketClientPolicy). All clients start together after connecting.

Checks every reply: a msgpack map with openpi's keys, float32 actions [H, 7], finite, and equal to
the reference reply for that client's own observation (each client sends a different observation;
the references are fetched one at a time before the load starts; --seed makes replies
deterministic, so a reply routed to the wrong client or corrupted under load is caught).

Reports throughput (requests / wall time of the loaded phase) and client-side latency p50 / p99
(send to reply received, so it includes queueing behind other clients) plus the mean model time the
server reports (policy_timing.infer_ms) and the server process's CPU time per request in the loaded
phase (user + system, /proc; less sensitive to other work on the machine than wall time). Then, if /tmp/pi0-random-full exists (make it with
`build/pi0 gen-random --preset full --out /tmp/pi0-random-full`), the same on the full-size random
π0 with fewer clients and requests (default 2 x 3).

The clients use python3-websockets' asyncio client with one event loop per thread (Debian 12
ships websockets 10.4, which has no sync client); msgpack-numpy as in tests/test_server.py.

Usage: /usr/bin/python3 bench/serve_load.py [--build build] [--clients 8] [--requests 20] [--threads T]
         [--full-dir /tmp/pi0-random-full] [--full-clients 2] [--full-requests 3] [--no-full]
         [--json FILE] [--serve-arg ARG]...
Exit status: 0 if every reply was correct, 1 otherwise.
"""
import argparse
import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 7
TIMEOUT = 900.0  # any single wait; the full model on a small machine takes seconds per request


sys.path.insert(0, os.path.join(ROOT, "tests"))
from openpi_msgpack import packb, unpackb  # noqa: E402 (the client codec, shared with the other script)


def observation(i):
    """Client i's LIBERO-style observation (224x224 cameras, 8-dim state)."""
    rng = np.random.default_rng(1000 + i)
    return packb({
        "observation/image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/state": rng.standard_normal(8),
        "prompt": "pick up the black bowl",
    })


class Server:
    def __init__(self, pi0, model, extra):
        self.log = tempfile.TemporaryFile()
        args = [pi0, "serve", "--model", model, "--port", "0", "--robot", "libero", "--seed", str(SEED), "--quiet",
                *extra]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = b""
        while time.monotonic() - t0 < TIMEOUT and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    break
                line += ch
            elif self.proc.poll() is not None:
                break
        self.load_s = time.monotonic() - t0
        text = line.decode(errors="replace").strip()
        self.port = int(text.rsplit(":", 1)[1]) if text.startswith("listening on ") else None

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def cpu_s(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def check_reply(raw, horizon, ref):
    """None if raw is a correct reply (equal to ref when given), else what is wrong."""
    if not isinstance(raw, bytes):
        return f"text reply: {str(raw)[:200]}"
    r = unpackb(raw)
    if not isinstance(r, dict) or set(r) != {"actions", "policy_timing", "server_timing"}:
        return f"reply keys {sorted(r) if isinstance(r, dict) else type(r).__name__}"
    a = r["actions"]
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.shape != (horizon, 7):
        return f"actions {getattr(a, 'dtype', None)} {getattr(a, 'shape', None)}, expected float32 ({horizon}, 7)"
    if not np.all(np.isfinite(a)):
        return "non-finite actions"
    if ref is not None and not np.array_equal(a, ref):
        return f"actions differ from this observation's reference (max |d| {np.max(np.abs(a - ref)):.3g})"
    return None


async def client(port, obs, n, horizon, ref, barrier, out, keep):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None,
                                  open_timeout=TIMEOUT, ping_interval=None)
    try:
        await asyncio.wait_for(ws.recv(), TIMEOUT)   # metadata
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        for _ in range(n):
            t0 = time.perf_counter()
            await ws.send(obs)
            raw = await asyncio.wait_for(ws.recv(), TIMEOUT)
            dt = (time.perf_counter() - t0) * 1e3
            err = check_reply(raw, horizon, ref)
            r = unpackb(raw) if err is None else None
            out.append((dt, err, r["policy_timing"]["infer_ms"] if r else None, r["actions"] if keep and r else None))
    finally:
        await ws.close()


def client_thread(port, obs, n, horizon, ref, barrier, out, errors, keep=False):
    try:
        asyncio.run(client(port, obs, n, horizon, ref, barrier, out, keep))
    except Exception as e:  # counted as failed requests
        errors.append(f"{type(e).__name__}: {e}")
        barrier.abort()


def load(label, pi0, model, extra, n_clients, n_req):
    """Run one load test; returns (ok, result dict)."""
    horizon = json.load(open(os.path.join(model, "config.json"))).get("action_horizon", 50)
    load_before = os.getloadavg()[0]   # other work on the machine skews the numbers: report it
    srv = Server(pi0, model, extra)
    if srv.port is None:
        print(f"{label}: server did not start: {srv.stderr()}")
        srv.stop()
        return False, None
    try:
        obs = [observation(i) for i in range(n_clients)]
        # References: each client's observation once, one request at a time (--seed: deterministic).
        refs = []
        for o in obs:
            out, errs = [], []
            client_thread(srv.port, o, 1, horizon, None, threading.Barrier(1), out, errs, keep=True)
            if errs or out[0][1]:
                print(f"{label}: reference request failed: {errs or out[0][1]}")
                return False, None
            refs.append(out[0][3])

        barrier = threading.Barrier(n_clients + 1)
        outs = [[] for _ in range(n_clients)]
        errors = []
        threads = [threading.Thread(target=client_thread,
                                    args=(srv.port, obs[i], n_req, horizon, refs[i], barrier, outs[i], errors))
                   for i in range(n_clients)]
        for t in threads:
            t.start()
        cpu0 = cpu_s(srv.proc.pid)
        try:
            barrier.wait(timeout=TIMEOUT)
        except threading.BrokenBarrierError:
            pass
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = cpu_s(srv.proc.pid) - cpu0   # the server's CPU time in the loaded phase (less load-dependent)
    finally:
        rc = srv.stop()
    lat = np.array([x[0] for o in outs for x in o])
    bad = [x[1] for o in outs for x in o if x[1]] + errors
    infer = [x[2] for o in outs for x in o if x[2] is not None]
    total = n_clients * n_req
    ok_n = sum(1 for o in outs for x in o if x[1] is None)
    res = {
        "label": label, "clients": n_clients, "requests_per_client": n_req, "ok": ok_n, "total": total,
        "wall_s": wall, "req_per_s": ok_n / wall if wall > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "max_ms": float(lat.max()) if lat.size else float("nan"),
        "infer_ms_mean": float(np.mean(infer)) if infer else float("nan"),
        "load_s": srv.load_s, "exit": rc, "loadavg_1min_before": load_before,
        "server_cpu_ms_per_req": cpu * 1e3 / ok_n if ok_n else float("nan"),
    }
    print(f"{label}: {ok_n}/{total} replies correct, {res['req_per_s']:.1f} req/s, latency p50 {res['p50_ms']:.1f} ms, "
          f"p99 {res['p99_ms']:.1f} ms, max {res['max_ms']:.1f} ms; model {res['infer_ms_mean']:.1f} ms/request "
          f"(server-reported mean); server CPU {res['server_cpu_ms_per_req']:.2f} ms/request; wall {wall:.2f} s; "
          f"server start {srv.load_s:.1f} s; exit {rc}; "
          f"1-min load average before {load_before:.2f}", flush=True)
    for b in bad[:5]:
        print(f"  error: {b}")
    return ok_n == total and not errors and rc == 0, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="server inference threads (0 = all CPUs)")
    ap.add_argument("--full-dir", default="/tmp/pi0-random-full")
    ap.add_argument("--full-clients", type=int, default=2)
    ap.add_argument("--full-requests", type=int, default=3)
    ap.add_argument("--no-full", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra argument for pi0 serve (repeat), e.g. --serve-arg=--ping-secs --serve-arg=1")
    a = ap.parse_args()
    build = a.build if os.path.isabs(a.build) else os.path.join(ROOT, a.build)
    pi0 = os.path.join(build, "pi0")
    tmp = tempfile.TemporaryDirectory()
    ns = os.path.join(tmp.name, "norm_stats.json")
    ident = lambda n: {"mean": [0.0] * n, "std": [1.0] * n, "q01": None, "q99": None}
    with open(ns, "w") as f:
        json.dump({"norm_stats": {"state": ident(8), "actions": ident(7)}}, f)
    extra = ["--norm-stats", ns, "--threads", str(a.threads), "--tokenizer",
             os.path.join(ROOT, "tests", "data", "policy", "tiny.model"), *a.serve_arg]

    ok, res = load("tiny", pi0, os.path.join(ROOT, "tests", "data", "pi0_tiny"), extra, a.clients, a.requests)
    results = [res]
    if not a.no_full and os.path.isfile(os.path.join(a.full_dir, "config.json")):
        ok_full, res_full = load("full", pi0, a.full_dir, extra, a.full_clients, a.full_requests)
        ok = ok and ok_full
        results.append(res_full)
    elif not a.no_full:
        print(f"full: skipped ({a.full_dir} does not exist; make it with "
              f"build/pi0 gen-random --preset full --out {a.full_dir})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
