#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang (ASan + UBSan + fuzzer) and run each for N seconds.
#   fuzz/run.sh [seconds per harness, default 30] [harness names... default: all]
# Seeds: tests/data/images for the image harness, small JSON files for the norm harness, the test
# checkpoints' config.json and a shard index for the config harness. Crashes are
# written to build-fuzz/<name>/crash-* ; exit status is non-zero if any harness found one.
set -u
cd "$(dirname "$0")/.."
secs=${1:-30}; shift || true
names=${*:-"image norm array config lerobot"}
out=build-fuzz
mkdir -p "$out"
CC=${CC_FUZZ:-clang}
flags="-g -O1 -std=c11 -D_GNU_SOURCE -DPI0_BUILD -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
common="src/err.c src/io/file.c src/io/image.c src/io/image_decode.c src/io/norm.c src/io/robot.c src/model/config.c src/model/variant.c src/io/shard_index.c src/io/lerobot.c src/io/safetensors.c src/ops/weight.c"
status=0
for n in $names; do
    echo "== fuzz_$n (${secs}s)"
    $CC $flags "fuzz/fuzz_$n.c" $common -lpng -ljpeg -lcjson -lm -o "$out/fuzz_$n" || { status=1; continue; }
    corpus="$out/$n/corpus"; mkdir -p "$corpus"
    case $n in
        image|array) cp tests/data/images/*.png tests/data/images/*.jpg "$corpus"/ 2>/dev/null ;;
        config) cp tests/data/pi0_tiny/config.json "$corpus/pi0.json"; cp tests/data/pi05_tiny/config.json "$corpus/pi05.json"
                printf '{"weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}' > "$corpus/index.json" ;;
        norm) printf '{"norm_stats": {"state": {"mean": [1, 2], "std": [1, 0.5], "q01": [0, 1], "q99": [2, 3]}, "actions": {"mean": [0], "std": [1], "q01": null, "q99": null}}}' > "$corpus/seed.json"
              printf '{"norm_stats": {"state": {"mean": [NaN, 2], "std": [Infinity, 0.5]}, "actions": {"mean": [-Infinity], "std": [1]}}}' > "$corpus/nan.json" ;;
        lerobot) { printf '{"type": "pi0", "input_features": {"observation.images.top": {"type": "VISUAL", "shape": [3, 224, 224]}, "observation.state": {"type": "STATE", "shape": [6]}}, "output_features": {"action": {"type": "ACTION", "shape": [6]}}, "empty_cameras": 1, "max_state_dim": 8}'
                   printf '\0{"name": "policy_preprocessor", "steps": [{"registry_name": "rename_observations_processor", "config": {"rename_map": {"a": "observation.images.top"}}}, {"registry_name": "relative_actions_processor", "config": {"enabled": true, "exclude_joints": ["grip"], "action_names": ["x", "gripper"]}}, {"registry_name": "normalizer_processor", "config": {"eps": 1e-08, "features": {"observation.state": {"type": "STATE", "shape": [6]}}, "norm_map": {"STATE": "MEAN_STD"}}, "state_file": "s.safetensors"}]}'; } > "$corpus/seed" ;;
    esac
    dict=""; [ -f "fuzz/$n.dict" ] && dict="-dict=$PWD/fuzz/$n.dict"
    (cd "$out/$n" && "../fuzz_$n" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 $dict corpus) \
        > "$out/$n/log.txt" 2>&1
    rc=$?
    tail -n 3 "$out/$n/log.txt"
    if [ $rc -ne 0 ]; then echo "!! fuzz_$n failed (exit $rc): see $out/$n/"; status=1; fi
done
exit $status
