#!/usr/bin/python3
"""test_cli_errors.py BUILD - the pi0 command's error paths (issue 10): messages are built from live
memory and output files are valid.

- `pi0 bench --images 4` on a 3-slot model used to free the context and then read the slot count
  from it for the message (use after free: the release build printed freed heap, `make san` aborts).
- `pi0 run --out x.json` writes strict JSON (no NaN/Infinity, which JSON parsers reject); with a NaN
  weight the run fails naming the first non-finite action and writes nothing; so does a robot-level run
  whose norm stats un-normalize finite actions to Inf.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from tally import check, finish  # noqa: E402 (the shared pass/fail counter, tests/tally.py)


def run(args, timeout=300):
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(ROOT, build, "pi0")
    tiny = os.path.join(ROOT, "tests", "data", "pi0_tiny")
    rc, out, err = run([pi0, "bench", "--model", tiny, "--images", "4", "--runs", "1", "--threads", "1"])
    check(rc == 1 and "error: --images 4 > 3 slots" in err and "AddressSanitizer" not in err,
          f"bench --images 4 on 3 slots: exit {rc}, stderr: {err.strip()[-300:]}")

    case = os.path.join(tiny, "case_00.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "a.json")

        def strict(x):
            raise ValueError(f"non-finite constant {x}")

        rc, _, err = run([pi0, "run", "--model", tiny, "--inputs", case, "--out", out, "--quiet", "--threads", "1"])
        try:
            a = json.load(open(out), parse_constant=strict)
            flat = [v for row in a["actions"] for v in row]
            ok = rc == 0 and len(flat) > 0
        except Exception as e:  # noqa: BLE001 - any failure to parse is the failure we test for
            ok, flat = False, str(e)
        check(ok, f"run --out a.json: exit {rc}, strict JSON parse: {str(flat)[:80]} {err.strip()[-200:]}")

        bad = os.path.join(tmp, "nan_ckpt")
        shutil.copytree(tiny, bad)
        path = os.path.join(bad, "model.safetensors")
        raw = bytearray(open(path, "rb").read())
        hlen = struct.unpack("<Q", raw[:8])[0]
        hdr = json.loads(raw[8:8 + hlen])
        begin = hdr["action_out_proj.bias"]["data_offsets"][0]
        raw[8 + hlen + begin:8 + hlen + begin + 4] = struct.pack("<f", float("nan"))
        open(path, "wb").write(raw)
        out2 = os.path.join(tmp, "b.json")
        rc, _, err = run([pi0, "run", "--model", bad, "--inputs", case, "--out", out2, "--quiet", "--threads", "1"])
        check(rc == 1 and "non-finite" in err and "actions[0, 0]" in err and not os.path.exists(out2),
              f"run with a NaN weight: exit {rc}, wrote {os.path.exists(out2)}, stderr: {err.strip()[-200:]}")

        # Robot level: finite model actions that overflow float32 when un-normalized (std 1e300) are
        # refused by the policy, not written as -inf.
        ns = os.path.join(tmp, "norm_stats.json")
        json.dump({"norm_stats": {"state": {"mean": [0] * 8, "std": [1] * 8},
                                  "actions": {"mean": [0] * 8, "std": [1e300] * 8}}}, open(ns, "w"))
        out3 = os.path.join(tmp, "c.json")
        image = os.path.join(ROOT, "tests", "data", "images", "rgb.png")
        tok = os.path.join(ROOT, "tests", "data", "policy", "tiny.model")
        rc, _, err = run([pi0, "run", "--model", tiny, "--image", "base_0_rgb=" + image, "--prompt", "pick up",
                          "--state", "0,0,0,0,0,0,0,0", "--tokenizer", tok, "--norm-stats", ns, "--out", out3,
                          "--quiet", "--threads", "1"])
        check(rc == 1 and "after un-normalization" in err and "is not finite" in err and not os.path.exists(out3),
              f"robot-level run, actions std 1e300: exit {rc}, wrote {os.path.exists(out3)}, stderr: {err.strip()[-200:]}")


main()
finish()
