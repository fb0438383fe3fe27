#!/usr/bin/python3
"""test_cli_errors.py BUILD - the pi0 command's error paths (issue 10): messages are built from live
memory and output files are valid.

- `pi0 bench --images 4` on a 3-slot model used to free the context and then read the slot count
  from it for the message (use after free: the release build printed freed heap, `make san` aborts).
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += ok
    failed += not ok


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


main()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
