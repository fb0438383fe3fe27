# Fast backend (src/ops/fast/): no extra libraries. Its ISA-specific files (*_avx512.c) get their
# target flags from the Makefile's pattern rule and are chosen at run time by src/rt/cpu.c.
# bench/build.sh optionally links Debian's oneDNN (libdnnl-dev) for the GEMM comparison only; the
# library and tests never need it, so it is deliberately not in DEBS.
