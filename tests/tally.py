"""tally.py - the pass/fail counter the Python tests share: check() prints one `ok`/`FAIL` line per
assertion, finish() prints the `N passed, N failed` line that tests/run.sh adds up and exits non-zero
on any failure."""
import sys

passed = failed = 0


def check(ok, label):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + label, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def finish(skipped=0):
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(1 if failed else 0)
