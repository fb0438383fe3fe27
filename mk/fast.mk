# Fast backend (src/ops/fast/): no extra libraries. Its ISA-specific files (<name>_<isa>.c) are
# compiled with that ISA's target flags by the pattern rules below, only when building for their
# architecture (the others are left out of LIB_SRC/TOOL_SRC through ISA_SKIP), and are called only
# when the ISA table (src/ops/fast/isa.c) picks their row from the CPU flags (src/rt/cpu.c).
# A new ISA: its suffix in ISA_X86 or ISA_ARM, one flags rule here, its files and its table row.
# bench/build.sh optionally links Debian's oneDNN (libdnnl-dev) for the GEMM comparison only; the
# library and tests never need it, so it is deliberately not in DEBS.
ISA_X86 := avx512 avx512vnni avx2
ISA_ARM := neonbf16 neon
PI0_ARCH := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine 2>/dev/null)))
ifeq ($(PI0_ARCH),x86_64)
ISA_OTHER := $(ISA_ARM)
else ifeq ($(PI0_ARCH),aarch64)
ISA_OTHER := $(ISA_X86)
else
ISA_OTHER := $(ISA_X86) $(ISA_ARM)
endif
ISA_SKIP := $(foreach i,$(ISA_OTHER),%_$(i).c)

$(BUILD)/%_avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c
# the int8 kernels (vpdpbusd): AVX-512 + VNNI, called only when the CPU reports AVX512_VNNI
$(BUILD)/%_avx512vnni.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma
$(BUILD)/%_avx2.o:   CFLAGS += -mavx2 -mfma -mf16c
# NEON (Advanced SIMD) is part of every AArch64 core: armv8-a is the baseline; +bf16 adds BFDOT,
# BFMMLA and BFCVT (FEAT_BF16, ARMv8.6 and some v8.2 cores), used only when HWCAP2_BF16 says so.
$(BUILD)/%_neon.o:     CFLAGS += -march=armv8-a
$(BUILD)/%_neonbf16.o: CFLAGS += -march=armv8.2-a+bf16
