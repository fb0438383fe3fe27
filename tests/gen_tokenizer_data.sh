#!/usr/bin/env bash
# Regenerates tests/data/tokenizer/: small SentencePiece BPE models trained with Debian's spm_train,
# the hard test strings, and the ids the sentencepiece library (0.1.97) gives for them. The outputs
# are committed, so the test suite itself needs no sentencepiece; run this only to change them.
#
#   needs: apt-get install sentencepiece python3-sentencepiece   (spm_train, spm_encode, Python binding)
#
# Files written (all under tests/data/tokenizer/):
#   train.txt                training text (GPL-3 + Apache-2.0 license texts + generated lines; deleted after)
#   <m>.model                models: gemma_like (identity, byte fallback, no dummy prefix, user symbols),
#                            defaults (nmt_nfkc charsmap, dummy prefix, extra-space removal, no byte fallback),
#                            suffix (identity, byte fallback, treat_whitespace_as_suffix, dummy prefix),
#                            gemma_unused (gemma_like with some merged pieces re-typed UNUSED)
#   strings.txt              hard strings, one per line (raw bytes, may be invalid UTF-8)
#   <m>.ids                  `spm_encode --output_format=id` of strings.txt, line by line
#   strings_hex.txt          strings that cannot be lines (newline, CR, NUL): hex of the bytes, one per line
#   <m>.hex.ids              their ids from the Python binding (same C++ library as spm_encode)
#   pi0_prompts.txt          π0 prompt cases: `<max_len> <hex of raw task>` per line
#   gemma_like.pi0.ids       expected π0 tokens per case, openpi's recipe run with the Python binding:
#                            [bos] + encode(clean(task)) + encode("\n"), padded with 0 / truncated
set -euo pipefail
cd "$(dirname "$0")/data/tokenizer"
PY=/usr/bin/python3

# ---- training text ---------------------------------------------------------------------------
$PY - <<'EOF'
import random
random.seed(1234)
words = ("pick up the red cube place it in the drawer open close fold towel robot arm gripper left right "
         "café naïve résumé über straße déjà vu señor façade 中文 机器人 抓取 杯子 打开 抽屉 日本語 ロボット "
         "Привет мир робот рука こんにちは 안녕하세요 emoji 🤖 👍 🍎 Task State Action 0 1 2 3 4 5 6 7 8 9 "
         "3.14 -1 128 255 255 42 <start_of_turn> user model <end_of_turn>").split()
with open("train.txt", "w", encoding="utf-8") as f:
    for name in ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"):
        f.write(open(name, encoding="utf-8").read())
    for _ in range(3000):
        n = random.randint(3, 14)
        line = " ".join(random.choice(words) for _ in range(n))
        if random.random() < 0.1: line = "  " + line
        if random.random() < 0.1: line = line.replace(" ", "\t", 1)
        f.write(line + "\n")
EOF

common=(--input=train.txt --model_type=bpe --num_threads=1 --minloglevel=2 --character_coverage=0.9995)
# Gemma-like settings (PI0_IO.md §1.3) with Gemma's special ids 0..3.
spm_train "${common[@]}" --model_prefix=gemma_like --vocab_size=1200 --byte_fallback=true --split_digits=true \
    --add_dummy_prefix=false --remove_extra_whitespaces=false --normalization_rule_name=identity \
    --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 --pad_piece='<pad>' --eos_piece='<eos>' --bos_piece='<bos>' \
    --user_defined_symbols=$'<start_of_turn>,<end_of_turn>,<loc0001>,<loc00>,\xe2\x96\x81\xe2\x96\x81,\t,\t\t' \
    >/dev/null 2>&1
# spm_train defaults (nmt_nfkc, add_dummy_prefix, remove_extra_whitespaces, no byte fallback -> <unk>).
# User symbols that NFKC would rewrite: the normalizer must pass them through unchanged.
spm_train "${common[@]}" --model_prefix=defaults --vocab_size=800 \
    --user_defined_symbols=$'\xef\xbc\xa1\xef\xbc\xa2,\xe2\x91\xa0\xe2\x91\xa1,<tag>' >/dev/null 2>&1
# Whitespace as suffix, with dummy suffix and extra-space removal, identity normalization.
spm_train "${common[@]}" --model_prefix=suffix --vocab_size=600 --byte_fallback=true \
    --treat_whitespace_as_suffix=true --normalization_rule_name=identity >/dev/null 2>&1
rm -f ./*.vocab train.txt

# UNUSED pieces: gemma_like with every 7th merged piece re-typed UNUSED (type field 3 = 5), written by a
# small protobuf re-serializer. The library still merges through UNUSED pieces and splits them back.
$PY - <<'EOF2'
def varint(b, i):
    x = s = 0
    while True:
        c = b[i]; i += 1; x |= (c & 0x7f) << s; s += 7
        if c < 0x80: return x, i
def enc(x):
    out = bytearray()
    while True:
        c = x & 0x7f; x >>= 7
        out.append(c | (0x80 if x else 0))
        if not x: return bytes(out)
b = open("gemma_like.model", "rb").read()
i, out, pid = 0, bytearray(), 0
while i < len(b):
    tag, j = varint(b, i)
    assert tag & 7 == 2
    n, k = varint(b, j)
    body = b[k:k + n]
    if tag >> 3 == 1:
        has_type = b"\x18" in body[-2:-1]
        if 300 <= pid < 1100 and pid % 7 == 0 and not has_type:
            body = body + b"\x18\x05"
        pid += 1
    out += enc(tag) + enc(len(body)) + body
    i = k + n
open("gemma_unused.model", "wb").write(bytes(out))
EOF2

# ---- test strings ------------------------------------------------------------------------------
$PY - <<'EOF'
lines = [
    "", "a", " ", "   ", "hello world", "pick up the red cube", "  leading spaces", "trailing spaces   ",
    "runs   of    spaces  inside", "\ttab\tseparated\t\tfields\t", "mixed \t \t whitespace",
    "café naïve résumé über straße", "Ça va? Él está aquí. Ærøskøbing", "中文字符测试 机器人抓取杯子",
    "日本語のテキスト、ロボット。", "한국어 텍스트", "Привет, мир!", "emoji 🤖👍🏽🍎 and 👨‍👩‍👧", "🤖",
    "digits 0123456789 3.14159 -42 1e10", "12345678901234567890", "State: 128 131 97 255 -1 140 128 200;",
    "Task: pick up the fork, State: 0 -1 128 255;", "<bos>", "<bos> literal <eos> <pad> <unk>",
    "<start_of_turn>user hi<end_of_turn>", "<loc0001><loc00><loc0002><loc000>", "<start_of_turn<end_of_turn>>",
    "\u2581 literal lower block \u2581\u2581", "ꙮ rare ᚠᛇᚻ runes 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0007 bell", "ＡＢＣ full width １２３ ｶﾀｶﾅ",
    "ﬁ ligature ① circled ™ ½ x²", "zero\u200bwidth\u200bspace and nbsp\u00a0here", "a\u3000ideographic\u3000space",
    "combining e\u0301 vs é", "CAPS lowercase MiXeD", "punctuation !@#$%^&*()_+-=[]{};':\",./<>?`~",
    "under_score_words", "x" * 3000, ("the robot picks up the cube " * 120).strip(),
    "\U0010FFFF max code point \U0001F600",
    # equal-score ties (the same pair at several places): the leftmost merges first
    "\uff21\uff22\uff23 \u2460\u2461\u2462 <tag>x</tag> \u2460 \uff21",
    "lll", "alllb", "sssss", "eeeee", "ooooooo", "ttt ppp rrr nnn ccc", "lllll lllll", "sheee seees",
]
raw = [l.encode("utf-8") for l in lines]
raw += [b"invalid \xff\xfe bytes", b"\xc3 lone lead byte", b"overlong \xc0\xaf and surrogate \xed\xa0\x80",
        b"truncated \xe4\xb8", b"\x80\x80\x80"]
with open("strings.txt", "wb") as f:
    for r in raw:
        assert b"\n" not in r and b"\r" not in r
        f.write(r + b"\n")
hexs = ["\n", "a\nb", "line one\nline two\n", "\r\n", "ends with newline\n", " \n ", "nul\x00byte", "\n\n\n",
        "tab\t\nnewline"]
with open("strings_hex.txt", "w") as f:
    for h in hexs:
        f.write(h.encode("utf-8").hex() + "\n")
prompts = [(48, "pick up the red cube"), (48, "  open_the drawer\n"), (48, "\t Fold the towel \u3000"),
           (48, ""), (12, "this prompt is much too long for twelve tokens"), (16, "café_naïve\nrésumé 123"),
           (8, "<bos> x")]
with open("pi0_prompts.txt", "w") as f:
    for L, t in prompts:
        f.write("%d %s\n" % (L, t.encode("utf-8").hex()))
EOF

for m in gemma_like gemma_unused defaults suffix; do
    spm_encode --model=$m.model --output_format=id < strings.txt > $m.ids
    $PY - "$m" <<'EOF'
import sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1] + ".model")
with open(sys.argv[1] + ".hex.ids", "w") as out:
    for line in open("strings_hex.txt"):
        out.write(" ".join(map(str, sp.encode(bytes.fromhex(line.strip()).decode("utf-8")))) + "\n")
EOF
done

# π0 prompts: openpi PaligemmaTokenizer.tokenize (state=None), with this model in place of PaliGemma's.
$PY - <<'EOF'
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file="gemma_like.model")
with open("gemma_like.pi0.ids", "w") as out:
    for line in open("pi0_prompts.txt"):
        L, h = line.split(" ") if " " in line.strip() else (line.strip(), "")
        L = int(L); text = bytes.fromhex(h.strip()).decode("utf-8")
        cleaned = text.strip().replace("_", " ").replace("\n", " ")
        ids = sp.encode(cleaned, add_bos=True) + sp.encode("\n")
        n = len(ids)
        ids = ids[:L] + [0] * max(0, L - n)
        mask = [1] * min(n, L) + [0] * max(0, L - n)
        out.write(" ".join(map(str, ids)) + " | " + " ".join(map(str, mask)) + "\n")
EOF
echo "regenerated $(pwd)"
