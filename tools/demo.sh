#!/usr/bin/env bash
# `make demo`: make a tiny random checkpoint with a sample observation, then run it on both paths
# and print the action chunk and timings. Usage: tools/demo.sh BUILD_DIR
set -euo pipefail
B=${1:-build}
D=demo/pi0-tiny
mkdir -p demo
"$B/pi0" gen-random --preset tiny --out "$D" --seed 1
echo
echo "== pi0 info"
"$B/pi0" info --model "$D"
echo
echo "== pi0 run (reference path)"
"$B/pi0" run --model "$D" --inputs "$D/sample_inputs.safetensors" --backend ref --quiet
echo
echo "== pi0 run (fast path), actions written to demo/actions.json"
"$B/pi0" run --model "$D" --inputs "$D/sample_inputs.safetensors" --out demo/actions.json
