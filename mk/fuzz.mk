# `make fuzz`: every libFuzzer harness for FUZZ_SECONDS each (default 30): fuzz/fuzz_*.c through
# fuzz/run.sh (image, norm stats, robot arrays, config.json + shard index) and fuzz/server/fuzz_*.c through fuzz/server/run.sh
# (request decoder, WebSocket frames over loopback). Fails if a harness does not build or finds a
# crash, sanitizer report, leak or timeout; findings are in build-fuzz/ and build/fuzz/.
#
# clang + libclang-rt-14-dev (Debian 12's libFuzzer and sanitizer runtimes) are needed only for
# fuzzing, so they are installed here (as root) instead of being added to DEBS for every build.
FUZZ_SECONDS ?= 30
FUZZ_DEBS    := clang libclang-rt-14-dev
FUZZ_LIB     := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_SERVER  := $(patsubst fuzz/server/fuzz_%.c,%,$(sort $(wildcard fuzz/server/fuzz_*.c)))

.PHONY: fuzz fuzz-deps
fuzz: deps fuzz-deps
	@status=0; \
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_LIB) || status=1; \
	bash fuzz/server/run.sh $(FUZZ_SECONDS) $(FUZZ_SERVER) || status=1; \
	if [ $$status -ne 0 ]; then echo "make fuzz: FAILED (a harness did not build or found a crash; see above)"; \
	else echo "make fuzz: $(words $(FUZZ_LIB) $(FUZZ_SERVER)) harnesses x $(FUZZ_SECONDS) s, no findings"; fi; \
	exit $$status

fuzz-deps:
	@$(call MISSING_DEBS,$(FUZZ_DEBS)); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else echo "make fuzz needs clang; run: sudo apt-get install -y$$missing"; exit 1; fi; fi
