#!/usr/bin/python3
"""test_header.py BUILD - the public headers stand alone: include/pi0.h and include/pi0_policy.h compile
by themselves as strict C11 (-pedantic, warnings as errors) and as C++ (extern "C"), the way an
application would include them (whisper.cpp's tests/test-c.c does the same)."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
passed = failed = 0


def check(ok, msg):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + msg)
    passed += ok
    failed += not ok


SRC = """#include "%s"
int main(void) { pi0_params p = pi0_params_default(); (void)p; return (int)PI0_OK; }
"""
with tempfile.TemporaryDirectory() as tmp:
    for header in ("pi0.h", "pi0_policy.h"):
        for lang, cmd in (("C11", ["cc", "-std=c11", "-pedantic", "-Wall", "-Wextra", "-Werror", "-x", "c"]),
                          ("C++11", ["c++", "-std=c++11", "-pedantic", "-Wall", "-Wextra", "-Werror", "-x", "c++"])):
            src = os.path.join(tmp, "use.txt")
            with open(src, "w") as f:
                f.write(SRC % header)
            r = subprocess.run(cmd + ["-I", os.path.join(ROOT, "include"), "-fsyntax-only", src],
                               capture_output=True, text=True)
            check(r.returncode == 0, "%s alone compiles as %s%s" % (header, lang, (": " + r.stderr.strip()) if r.returncode else ""))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
