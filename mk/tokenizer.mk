# Tokenizer and prompt builder (src/io/tokenizer.c, src/io/prompt.c, tools/cmd_tokenize.c).
# No build or test dependency: the golden ids in tests/data/tokenizer/ are committed, so neither the
# library nor `make test` needs sentencepiece. Only regenerating them does
# (tests/gen_tokenizer_data.sh: spm_train, spm_encode and the Python binding), hence not in DEBS:
TOKENIZER_GEN_DEBS := sentencepiece python3-sentencepiece
