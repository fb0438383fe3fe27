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
if [ -z "${ARM_ONLY:-}" ]; then
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.py; do
    [ -e "$t" ] || continue
    run_one "$(basename "$t")" /usr/bin/python3 "$t" "$BUILD"
done
fi
# AArch64 tests (mk/arm.mk), cross-built into $ARM_BUILD, under qemu-user once per emulated CPU
# (ARM_CPUS: the first one runs every test; the others only the tests whose kernels depend on the
# ISA row: the reference path of test_model_ref is the same plain C on every CPU). The binaries run
# with the arm64 multiarch C library (libc6:arm64, its loader /lib/ld-linux-aarch64.so.1), not with
# `-L /usr/aarch64-linux-gnu`: that loader (the cross toolchain's libc) with the multiarch libc.so.6
# of another Debian revision loops forever in the first pthread_create.
if [ -n "${ARM_BUILD:-}" ]; then
    first=1
    for cpu in ${ARM_CPUS:-max}; do
        for t in "$ARM_BUILD"/tests/test_*; do
            case "$t" in *.o|*.d) continue ;; esac
            [ -x "$t" ] || continue
            [ $first = 1 ] || [ "$(basename "$t")" != test_model_ref ] || continue
            run_one "arm64 -cpu $cpu $(basename "$t")" qemu-aarch64 -cpu "$cpu" "$t"
        done
        first=0
    done
fi
echo
[ "$crashed" -eq 0 ] || echo "$crashed test program(s) crashed or printed no result"
total_fail=$((total_fail + crashed))
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
