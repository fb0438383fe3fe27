#!/usr/bin/python3
"""test_symbols.py BUILD - the shared library exports exactly the functions the public headers declare
with PI0_API (everything else is built with -fvisibility=hidden), so internal pi0_ symbols cannot leak
into an application's namespace or become accidental API."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = sys.argv[1] if len(sys.argv) > 1 else "build"
passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += ok
    failed += not ok


declared = set()
for h in ("pi0.h", "pi0_policy.h"):
    text = open(os.path.join(ROOT, "include", h)).read()
    declared |= set(re.findall(r"PI0_API\s+[^;(]*?\b(pi0_\w+)\s*\(", text))
check(len(declared) >= 15, "headers declare %d PI0_API functions" % len(declared))

lib = os.path.join(ROOT, build, "libpi0.so")
r = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True)
check(r.returncode == 0, "nm reads %s%s" % (lib, (": " + r.stderr.strip()) if r.returncode else ""))
exported = {line.split()[-1] for line in r.stdout.splitlines() if line.split() and line.split()[-1].startswith("pi0_")}
others = {line.split()[-1] for line in r.stdout.splitlines()
          if line.split() and line.split()[1] in ("T", "D", "B") and not line.split()[-1].startswith("pi0_")
          and not line.split()[-1].startswith("_")}
check(exported == declared, "exported pi0_ symbols == declared (missing: %s, extra: %s)"
      % (sorted(declared - exported) or "none", sorted(exported - declared) or "none"))
check(not others, "no other exported code or data symbols (%s)" % (sorted(others)[:10] or "none"))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
