#!/usr/bin/env bash
# Build and run the server fuzzers with clang's libFuzzer + ASan + UBSan.
#   fuzz/server/run.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]   targets: msgpack frame
# Seeds (valid requests and frames) are generated with Debian's python3-msgpack/numpy into
# build/fuzz/corpus/<target>/; findings are written to build/fuzz/ as crash-*/leak-*/timeout-*.
# Exit status: non-zero if a harness does not build or finds anything (libFuzzer exits non-zero
# on a crash, sanitizer report, leak or -timeout). `make fuzz` runs this (mk/fuzz.mk).
set -u
cd "$(dirname "$0")/../.."
secs=${1:-60}; shift || true
targets=${*:-msgpack frame}
out=build/fuzz
mkdir -p "$out"
CC=${CC_FUZZ:-clang}   # not $CC: make's or the user's cc cannot build -fsanitize=fuzzer
flags="-g -O1 -std=c11 -D_GNU_SOURCE -DPI0_BUILD -Iinclude -Isrc -Itools -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

/usr/bin/python3 - "$out/corpus" <<'PY' || { echo "!! cannot write the seed corpus"; exit 1; }
import os, struct, sys
import msgpack, numpy as np
root = sys.argv[1]
def nd(a):
    return {b"__ndarray__": True, b"data": a.tobytes(), b"dtype": a.dtype.str, b"shape": list(a.shape)}
reqs = [
    {"observation/image": nd(np.zeros((4, 4, 3), np.uint8)), "observation/state": nd(np.arange(8.0)), "prompt": "pick"},
    {"state": nd(np.ones(14, np.float32)), "images": {"cam_high": nd(np.zeros((3, 2, 2), np.uint8))}},
    {"g": {b"__npgeneric__": True, b"data": 0.5, b"dtype": "<f4"}, "l": [1, 2.5], "b": nd(np.arange(3, dtype=">i4"))},
    {},
]
def frame(payload, op=2, fin=True, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
for t in ("msgpack", "frame"):
    os.makedirs(os.path.join(root, t), exist_ok=True)
for i, r in enumerate(reqs):
    p = msgpack.packb(r)
    open(os.path.join(root, "msgpack", f"seed{i}"), "wb").write(p)
    open(os.path.join(root, "frame", f"seed{i}"), "wb").write(frame(p) + frame(p))
    half = len(p) // 2
    open(os.path.join(root, "frame", f"frag{i}"), "wb").write(frame(p[:half], fin=False) + frame(b"", op=9) + frame(p[half:], op=0))
open(os.path.join(root, "frame", "ping_close"), "wb").write(frame(b"hi", op=9) + frame(b"\x03\xe8", op=8))
PY

status=0
for t in $targets; do
    case $t in
        msgpack) srcs="tools/server/msgpack_numpy.c"; libs="-lmsgpackc -lcjson -lm" ;;
        frame)   srcs="tools/server/ws.c tools/server/ws_limits.c tools/server/msgpack_numpy.c"; libs="-lwebsockets -lmsgpackc -lcjson -lm" ;;
        *)       echo "!! fuzz_$t: unknown target (add its sources to fuzz/server/run.sh)"; status=1; continue ;;
    esac
    # shellcheck disable=SC2086
    if ! $CC $flags "fuzz/server/fuzz_$t.c" $srcs $libs -o "$out/fuzz_$t"; then
        echo "!! fuzz_$t: build failed"; status=1; continue
    fi
    mkdir -p "$out/corpus/$t"
    echo "== fuzz_$t (${secs}s)"
    "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -artifact_prefix="$out/" \
        "$out/corpus/$t" > "$out/$t.log" 2>&1
    rc=$?
    tail -n 3 "$out/$t.log"
    if [ $rc -ne 0 ]; then echo "!! fuzz_$t failed (exit $rc): see $out/$t.log and $out/crash-* leak-* timeout-*"; status=1; fi
done
exit $status
