# pi0c build. `make` builds the library, the CLI and the tests; `make test` runs the suite;
# `make san` runs it under ASan+UBSan; `make demo` runs the model on a generated tiny checkpoint.
# Dependencies are declared in mk/*.mk fragments (LDLIBS += ..., DEBS += ...); `make deps` installs
# the Debian packages they name (as root) or prints the apt-get line.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -DPI0_BUILD -Iinclude -Isrc -pthread -fvisibility=hidden -fPIC
LDLIBS  += -lm -pthread
DEBS    :=

.DEFAULT_GOAL := all
include $(sort $(wildcard mk/*.mk))

# ISA_SKIP (mk/fast.mk): the ISA-specific files of other architectures.
LIB_SRC   := $(filter-out $(ISA_SKIP),$(sort $(wildcard src/*.c src/*/*.c src/*/*/*.c)))
TOOL_SRC  := $(filter-out $(ISA_SKIP),$(sort $(wildcard tools/*.c tools/*/*.c)))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB       := $(BUILD)/libpi0.a
SHLIB     := $(BUILD)/libpi0.so

# ISA-specific kernels (<name>_<isa>.c): their target flags and which architecture builds them are
# in mk/fast.mk; chosen at run time.

.PHONY: all test san demo deps clean bench check-full check-full-int8
all: $(LIB) $(SHLIB) $(BUILD)/pi0 $(TEST_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# LDSAN: sanitizer link flags from `make san` (kept apart so target-specific LDFLAGS still apply).
# The shared library exports exactly the PI0_API functions of include/*.h (tests/test_symbols.py).
$(SHLIB): $(LIB_OBJ)
	$(CC) -shared $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/pi0: $(TOOL_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) $(LDFLAGS) $(TOOL_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(CFLAGS) $(LDSAN) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# With the ARM tools present (mk/arm.mk: ARM_READY), the suite includes the AArch64 tests under qemu.
test: deps all $(if $(ARM_READY),arm-build)
	BUILD=$(BUILD) ARM_BUILD=$(if $(ARM_READY),$(ARM_BUILD)) ARM_CPUS="$(ARM_CPUS)" bash tests/run.sh

# Sanitizers: a separate build tree so the normal objects stay optimized.
san:
	$(MAKE) BUILD=build-san OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	        LDSAN="-fsanitize=address,undefined" ARM_READY= test

demo: deps all
	bash tools/demo.sh $(BUILD)

bench: deps all
	$(BUILD)/pi0 bench --random full --runs 3

# Fast vs reference, component by component, on a full-size random checkpoint (not in CI: the
# reference path takes many minutes at full size). FULL_DIR is made once by gen-random.
FULL_DIR ?= /tmp/pi0-random-full
check-full: deps all
	@test -f $(FULL_DIR)/sample_inputs.safetensors || $(BUILD)/pi0 gen-random --preset full --out $(FULL_DIR)
	$(BUILD)/pi0 check --model $(FULL_DIR) --inputs $(FULL_DIR)/sample_inputs.safetensors

# The same with --weights int8: per-component accuracy of the int8 path against the reference, and its
# actions against the bf16 path (~10 GB of memory; BENCHMARKS.md "int8 weights: accuracy").
check-full-int8: deps all
	@test -f $(FULL_DIR)/sample_inputs.safetensors || $(BUILD)/pi0 gen-random --preset full --out $(FULL_DIR)
	$(BUILD)/pi0 check --weights int8 --model $(FULL_DIR) --inputs $(FULL_DIR)/sample_inputs.safetensors

# A package counts as installed for the native architecture (pkg:amd64, or pkg:all): with a foreign architecture
# added (mk/arm.mk's arm64 libraries), a plain `dpkg -s libcjson-dev` is ambiguous and fails. A name
# with an explicit architecture (libcjson-dev:arm64) is checked as given. $(call MISSING_DEBS,PKGS) is
# the shell loop that leaves the packages of PKGS not installed in $$missing (deps, fuzz-deps, arm-deps).
DPKG_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
MISSING_DEBS = missing=""; for p in $(1); do q="$$p:$(DPKG_ARCH) $$p:all"; case $$p in *:*) q=$$p ;; esac; \
	  dpkg-query -W -f='$${db:Status-Abbrev}\n' $$q 2>/dev/null | grep -q '^ii' || missing="$$missing $$p"; done
deps:
	@$(call MISSING_DEBS,$(DEBS)); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; fi; fi

clean:
	rm -rf build build-san build-arm

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_BIN:%=%.d)
