#!/usr/bin/env bash
# Builds bench/gemm_bench.c (fast-backend GEMM vs oneDNN on the π0 shapes) into $BUILD/gemm_bench
# and bench/attn_bench.c (fast-backend attention vs an fp32 FMA loop) into $BUILD/attn_bench.
# bench/rtc_cost.c (the real-time chunking modes' cost, BENCHMARKS.md) into $BUILD/rtc_cost.
# oneDNN (Debian libdnnl-dev, OpenMP build) is optional: without dnnl.h only our kernels are timed.
# The peak microkernels (tools/bench/peak*.c, as `pi0 bench` uses) give the in-run bf16 peak.
# Run: OMP_NUM_THREADS=2 build/gemm_bench [--threads 2] [--f32] [--shape expert]
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s "$BUILD/libpi0.a" "$BUILD/tools/bench/peak.o" "$BUILD/tools/bench/peak_avx512.o" "$BUILD/tools/bench/peak_avx2.o"
DNNL=""
if [ -e /usr/include/dnnl.h ]; then DNNL="-DHAVE_DNNL -ldnnl"; fi
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -pthread bench/gemm_bench.c \
   "$BUILD/tools/bench/peak.o" "$BUILD/tools/bench/peak_avx512.o" "$BUILD/tools/bench/peak_avx2.o" "$BUILD/libpi0.a" $DNNL -lm -lcjson -o "$BUILD/gemm_bench"
echo "built $BUILD/gemm_bench"
# attention microbenchmark (fast backend vs an fp32 FMA loop timed in the same run); no extra deps
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -pthread bench/attn_bench.c \
   "$BUILD/libpi0.a" -lm -lcjson -o "$BUILD/attn_bench"
echo "built $BUILD/attn_bench"
# the int8 outlier threshold measurement (src/ops/fast/quant_int8.c) and, with --speed, the handling's cost; no extra deps
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -pthread bench/quant_outliers.c \
   "$BUILD/libpi0.a" -lm -lcjson -o "$BUILD/quant_outliers"
echo "built $BUILD/quant_outliers"
# full-size accuracy of --int8-vision against the bf16 fast path, and the activations' max/rms per
# matmul site (no timing, no extra deps; reads test-style case files through tests/case_io.h)
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -Itests -pthread bench/int8_vision_acc.c \
   "$BUILD/libpi0.a" -lm -lcjson -o "$BUILD/int8_vision_acc"
echo "built $BUILD/int8_vision_acc"
# what each real-time chunking mode costs (BENCHMARKS.md "Real-time chunking (RTC)"); no extra deps
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -pthread bench/rtc_cost.c \
   "$BUILD/tools/bench/peak.o" "$BUILD/tools/bench/peak_avx512.o" "$BUILD/tools/bench/peak_avx2.o" "$BUILD/libpi0.a" -lm -lcjson -o "$BUILD/rtc_cost"
echo "built $BUILD/rtc_cost"
