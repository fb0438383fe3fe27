# Camera images (src/io/image.c).
# libpng: decode PNG observations/files; libjpeg-turbo: decode JPEG. Both are the standard Debian
# decoders, handle corrupt input through setjmp/longjmp error hooks, and are what Pillow links.
# python3-pil + python3-numpy: tests/test_image.py compares our resize against Pillow at test time.
# python3-sentencepiece: tests/test_policy.py tokenizes prompts with the reference library.
# (sentencepiece's spm_train made tests/data/policy/tiny.model; only gen.sh needs it, not the tests.)
DEBS   += libpng-dev libjpeg62-turbo-dev python3-pil python3-numpy python3-sentencepiece
LDLIBS += -lpng -ljpeg
