#!/usr/bin/env bash
# Regenerates tests/data/policy/tiny.model: a SentencePiece BPE model whose 300 pieces fit the tiny
# test checkpoints' vocabulary (vocab_size 300), with Gemma's special ids (<pad> 0, <eos> 1, <bos> 2,
# <unk> 3), byte fallback, identity normalization, no dummy prefix (PI0_IO.md §1.3).
# needs: apt-get install sentencepiece   (spm_train). The output is committed.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp/train.txt" <<'PY'
import random, sys
random.seed(5)
words = "pick up the red cube place it in drawer open close fold towel bowl plate fork put on left right top".split()
with open(sys.argv[1], "w") as f:
    for _ in range(2000):
        f.write(" ".join(random.choice(words) for _ in range(random.randint(2, 8))) + "\n")
PY
spm_train --input="$tmp/train.txt" --model_prefix="$tmp/tiny" --model_type=bpe --vocab_size=300 \
  --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --pad_piece="<pad>" --eos_piece="<eos>" --bos_piece="<bos>" \
  --unk_piece="<unk>" --byte_fallback=true --add_dummy_prefix=false --remove_extra_whitespaces=false \
  --normalization_rule_name=identity --split_digits=true >/dev/null 2>&1
cp "$tmp/tiny.model" tiny.model
