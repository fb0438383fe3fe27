# ARM (AArch64) check: the proof that a new ISA is new files plus one table row. The library and the
# three tests that need nothing of the server (test_ops, test_model_ref, test_model_fast) are
# cross-compiled with Debian's aarch64 gcc against Debian's arm64 libraries (multiarch: cjson, png,
# jpeg) into build-arm/, and tests/run.sh runs them under qemu-user: test_ops and test_model_fast
# once per emulated CPU (-cpu max reports BF16: the neon-bf16 ISA row; -cpu cortex-a76, ARMv8.2
# without BF16: the neon row), test_model_ref (the reference path, ISA-independent) once.
# `make test` includes them when the tools are present (ARM_READY); `make arm-deps` installs them
# (as root; .ci/run does), `make test-arm` runs only them. Emulated speed means nothing: ARM speed is
# not measured here.
#
# gcc-aarch64-linux-gnu (+ libc6-dev-arm64-cross): the cross compiler and its C library;
# qemu-user: qemu-aarch64 runs the test binaries on this x86 machine;
# libc6:arm64 libcjson-dev:arm64 libpng-dev:arm64 libjpeg62-turbo-dev:arm64: the arm64 C library the
#   binaries run with under qemu and what libpi0 links (needs `dpkg --add-architecture arm64`; make
#   deps then checks its own packages as pkg:<native arch>).
ARM_CC     := aarch64-linux-gnu-gcc
ARM_BUILD  := build-arm
ARM_TESTS  := test_ops test_model_ref test_model_fast
ARM_CPUS   := max cortex-a76
ARM_DEBS   := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libc6:arm64 libcjson-dev:arm64 libpng-dev:arm64 \
              libjpeg62-turbo-dev:arm64
ARM_LDLIBS := -lm -pthread -lcjson -lpng -ljpeg
ARM_READY  := $(shell command -v $(ARM_CC) >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 && \
                      test -e /usr/lib/aarch64-linux-gnu/libcjson.so && echo yes)

.PHONY: arm-deps arm-build test-arm
arm-deps:
	@$(call MISSING_DEBS,$(ARM_DEBS)); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else echo "missing packages for the ARM tests; run: sudo dpkg --add-architecture arm64 && sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; fi; fi

# A separate build tree with the cross compiler; no sanitizers (LDSAN, OPT reset).
arm-build:
	$(MAKE) BUILD=$(ARM_BUILD) CC=$(ARM_CC) OPT=-O2 LDSAN= LDLIBS="$(ARM_LDLIBS)" $(ARM_TESTS:%=$(ARM_BUILD)/tests/%)

test-arm: arm-deps
	$(MAKE) arm-build
	ARM_BUILD=$(ARM_BUILD) ARM_CPUS="$(ARM_CPUS)" ARM_ONLY=1 bash tests/run.sh
