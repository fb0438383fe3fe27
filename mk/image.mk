# Camera images (src/io/image.c).
# libpng: decode PNG observations/files; libjpeg-turbo: decode JPEG. Both are the standard Debian
# decoders, handle corrupt input through setjmp/longjmp error hooks, and are what Pillow links.
# python3-pil + python3-numpy: tests/test_image.py compares our resize against Pillow at test time.
# sentencepiece: spm_train builds the tiny tokenizer used by tests/test_policy.c.
DEBS   += libpng-dev libjpeg62-turbo-dev python3-pil python3-numpy sentencepiece
LDLIBS += -lpng -ljpeg
