#!/usr/bin/python3
"""test_variant.py BUILD - which model family a checkpoint is, and that family's defaults, when
config.json says less than the test data's does (src/model/variant.c, weights.c detection).

Expected values are openpi's (models/pi0_config.py): max_token_len = 200 if pi05 else 48,
discrete_state_input defaults to pi05; π0 feeds the state to the expert as a token. A π0.5
checkpoint is recognized from its adaptive-norm tensors when config.json names no family;
LeRobot's "type" spelling names it too; explicit fields are kept. Read through `pi0 info`.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILY_KEYS = ("pi05", "variant", "model_type", "type", "discrete_state_input", "max_token_len")
passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += ok
    failed += not ok


def info(pi0, tmp, src, drop, add):
    """pi0 info on src's tensors with config.json minus `drop` plus `add`: (exit code, family, L, state)."""
    d = tempfile.mkdtemp(dir=tmp)
    cfg = json.load(open(os.path.join(ROOT, "tests", "data", src, "config.json")))
    for k in drop:
        cfg.pop(k, None)
    cfg.update(add)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    os.symlink(os.path.join(ROOT, "tests", "data", src, "model.safetensors"), os.path.join(d, "model.safetensors"))
    r = subprocess.run([pi0, "info", "--model", d], capture_output=True, text=True, timeout=120)
    fam = re.search(r"^variant\s+(pi0\.5|pi0)\b.*\((state [^)]*)\)", r.stdout, re.M)
    L = re.search(r"prompt (\d+) tokens", r.stdout)
    return (r.returncode, fam.group(1) if fam else None, int(L.group(1)) if L else None,
            fam.group(2) if fam else None, r.stderr.strip())


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    pi0 = os.path.join(ROOT, build, "pi0")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            # (label, tensors, extra config fields, expected family, L, state)
            ("π0.5 tensors, config names no family", "pi05_tiny", {}, "pi0.5", 200, "state in the prompt"),
            ("π0.5 tensors, discrete_state_input false", "pi05_tiny", {"discrete_state_input": False}, "pi0.5", 200,
             "state not used"),
            ("π0.5 tensors, explicit max_token_len kept", "pi05_tiny", {"max_token_len": 96}, "pi0.5", 96,
             "state in the prompt"),
            ("LeRobot type pi05", "pi05_tiny", {"type": "pi05"}, "pi0.5", 200, "state in the prompt"),
            ("π0 tensors, config names no family", "pi0_tiny", {}, "pi0", 48, "state token"),
            ("π0 tensors, unknown type ignored", "pi0_tiny", {"type": "act"}, "pi0", 48, "state token"),
        ]
        for label, src, add, fam, L, state in cases:
            rc, f, l, s, err = info(pi0, tmp, src, FAMILY_KEYS, add)
            check(rc == 0 and (f, l, s) == (fam, L, state),
                  f"{label}: {f}, prompt {l}, {s} (expected {fam}, {L}, {state}){' ' + err if rc else ''}")
        # the config's word wins over the tensors: π0.5 tensors read as π0 miss π0's tensors
        rc, f, l, s, err = info(pi0, tmp, "pi05_tiny", FAMILY_KEYS, {"pi05": False})
        check(rc != 0 and "missing" in err, f"π0.5 tensors with \"pi05\": false: refused ({err[:120]!r})")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
