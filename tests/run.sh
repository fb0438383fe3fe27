#!/usr/bin/env bash
# Runs every test binary in $BUILD/tests and every tests/test_*.py (with Debian's python3), adds up
# their "N passed, N failed" lines and exits non-zero if anything failed or a runner crashed.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
total_pass=0; total_fail=0; crashed=0
run_one() {
    local name=$1; shift
    local out rc
    echo "== $name"
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out" | tail -n 40
    local line
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then echo "!! $name: no result line (exit $rc)"; crashed=$((crashed + 1)); return; fi
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "!! $name: exit $rc"; crashed=$((crashed + 1)); fi
}
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.py; do
    [ -e "$t" ] || continue
    run_one "$(basename "$t")" /usr/bin/python3 "$t" "$BUILD"
done
echo
[ "$crashed" -eq 0 ] || echo "$crashed test program(s) crashed or printed no result"
total_fail=$((total_fail + crashed))
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
