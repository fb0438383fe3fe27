#!/usr/bin/python3
"""test_bench_json.py - the shape of `pi0 bench --json` (tools/bench/cmd_bench.c), which scripts read.

Runs `BUILD/pi0 bench --model tests/data/pi0_tiny --runs 3 --steps 4 --json` and checks: one JSON
object; every timing is named ({"min": s, "median": s}, min <= median, both >= 0); one entry per
denoising step; the run parameters echo the command line; and the int8 peak's instruction set agrees
with what the kernel reports in /proc/cpuinfo (independent of our CPUID code): avx512_vnni ->
"avx512-vnni" with a positive rate, else avx_vnni -> "avx-vnni", else "none" with 0. Default thread
count: under `taskset -c <one cpu>` (util-linux) the bench reports 1 thread (the affinity mask, not
every online CPU: what a pinned `pi0 serve` replica relies on). With --weights int8 the JSON says
"weights": "int8" and the total's total_pct_of_peak is against the int8 peak (when the CPU has one).
Speeds are never asserted. Skips (0 passed, 0 failed) when BUILD/pi0 does not exist.
Usage: /usr/bin/python3 tests/test_bench_json.py BUILD_DIR.
"""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
PI0 = os.path.join(BUILD, "pi0")

from tally import check, finish  # noqa: E402 (the shared pass/fail counter, tests/tally.py)


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def is_stat(v):
    return (isinstance(v, dict) and set(v) == {"min", "median"}
            and all(isinstance(x, (int, float)) and x >= 0 for x in v.values()) and v["min"] <= v["median"])


def main():
    if not os.path.exists(PI0):
        print(f"skip: {PI0} not built")
        finish()
    model = os.path.join(ROOT, "tests", "data", "pi0_tiny")
    r = subprocess.run([PI0, "bench", "--model", model, "--runs", "3", "--steps", "4", "--json"],
                       capture_output=True, text=True, timeout=300)
    if not check(r.returncode == 0, f"pi0 bench --json exits 0 (stderr: {r.stderr.strip()[-200:]})"):
        finish()
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    check(len(lines) == 1, "one line of output")
    try:
        j = json.loads(r.stdout)
    except ValueError as e:
        check(False, f"output is JSON: {e}")
        finish()
    check(j.get("runs") == 3 and j.get("steps") == 4 and j.get("backend") == "fast", "run parameters echoed")
    for k in ("vision_s", "prefix_s", "denoise_s", "total_s"):
        check(is_stat(j.get(k)), f"{k} is {{min, median}} with 0 <= min <= median: {j.get(k)}")
    steps = j.get("step_s")
    check(isinstance(steps, list) and len(steps) == 4 and all(is_stat(s) for s in steps),
          "step_s: one {min, median} per step")
    for k in ("peak_fp32_gflops", "peak_bf16_gflops", "peak_int8_gops", "load_s", "peak_rss_gib"):
        check(isinstance(j.get(k), (int, float)) and j[k] >= 0, f"{k} is a number >= 0")
    # Pinned to one CPU, the default thread count (--threads 0) must be 1: the affinity mask.
    taskset = shutil.which("taskset")
    if taskset:
        cpu = min(os.sched_getaffinity(0))
        p = subprocess.run([taskset, "-c", str(cpu), PI0, "bench", "--model", model, "--runs", "1", "--steps", "1",
                            "--json"], capture_output=True, text=True, timeout=300)
        try:
            th = json.loads(p.stdout).get("threads") if p.returncode == 0 else f"exit {p.returncode}"
        except ValueError:
            th = "no JSON"
        check(th == 1, f"under taskset -c {cpu}: threads {th} (want 1; {len(os.sched_getaffinity(0))} CPUs here)")
    else:
        print("skip: taskset not installed (util-linux)")
    flags = cpu_flags()
    isa, gops = j.get("peak_int8_isa"), j.get("peak_int8_gops", -1)
    if flags is None:
        check(isa in ("avx512-vnni", "avx-vnni", "none"), f"peak_int8_isa is a known value: {isa}")
    else:
        avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
        want = ("avx512-vnni" if avx512 and "avx512_vnni" in flags else
                "avx-vnni" if "avx2" in flags and "avx_vnni" in flags else "none")
        check(isa == want, f"peak_int8_isa {isa} matches /proc/cpuinfo ({want})")
        check((gops > 0) == (want != "none"), f"peak_int8_gops {gops} > 0 exactly when VNNI is present")
    check(j.get("weights") == "bf16" and j.get("total_peak") in ("bf16", "fp32"),
          f"default run: weights bf16, total against the {j.get('total_peak')} peak")
    # --weights int8: named in the JSON, and the total is a fraction of the int8 peak when there is one
    p = subprocess.run([PI0, "bench", "--model", model, "--runs", "1", "--steps", "1", "--weights", "int8", "--json"],
                       capture_output=True, text=True, timeout=300)
    try:
        j8 = json.loads(p.stdout) if p.returncode == 0 else {}
    except ValueError:
        j8 = {}
    want_peak = "int8" if j8.get("peak_int8_gops", 0) > 0 else ("bf16" if j8.get("peak_bf16_gflops", 0) > 0 else "fp32")
    check(j8.get("weights") == "int8" and j8.get("total_peak") == want_peak
          and isinstance(j8.get("total_pct_of_peak"), (int, float)),
          f"--weights int8: weights {j8.get('weights')}, total_peak {j8.get('total_peak')} (want {want_peak}), "
          f"total_pct_of_peak {j8.get('total_pct_of_peak')} (exit {p.returncode}: {p.stderr.strip()[-200:]})")
    finish()


main()
