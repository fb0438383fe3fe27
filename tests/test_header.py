#!/usr/bin/python3
"""test_header.py BUILD - the public headers stand alone: include/pi0.h and include/pi0_policy.h compile
by themselves as strict C11 (-pedantic, warnings as errors) and as C++ (extern "C"), the way an
application would include them (whisper.cpp's tests/test-c.c does the same). And the pi0 command
uses nothing internal beyond src/tools_api.h: no file in tools/ includes another header of src/."""
import glob
import os
import re
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from tally import check, finish  # noqa: E402 (the shared pass/fail counter, tests/tally.py)


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

# tools/ includes the public headers, its own headers and src/tools_api.h, nothing else of src/.
tool_files = sorted(glob.glob(os.path.join(ROOT, "tools", "**", "*.[ch]"), recursive=True))
bad = []
for path in tool_files:
    for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', open(path).read(), re.M):
        local = os.path.normpath(os.path.join(os.path.dirname(path), name))
        if os.path.exists(local) and local.startswith(os.path.join(ROOT, "tools") + os.sep):
            continue  # the command's own headers
        if name in ("pi0.h", "pi0_policy.h", "tools_api.h"):
            continue
        bad.append("%s: %s" % (os.path.relpath(path, ROOT), name))
check(len(tool_files) > 20 and not bad, "%d tools/ files include only pi0.h, pi0_policy.h, src/tools_api.h and tools/ "
      "headers%s" % (len(tool_files), (": " + ", ".join(bad)) if bad else ""))
finish()
