/* cpu.h - run-time CPU feature detection (CPUID + XGETBV), computed once and cached.
 *
 * Kernels compiled for an ISA (files ending _avx512.c / _avx2.c) are only called when the flags
 * here say both the CPU and the OS (saved register state) support them. Never needs -march=native.
 * Setting the environment variable PI0_CPU_CAPS to "generic" or "avx2" at first use lowers the
 * detected level (for testing the portable paths on a capable machine).
 */
#ifndef PI0_CPU_H
#define PI0_CPU_H

typedef struct {
    int avx2;      /* AVX2 + FMA + F16C, with YMM state enabled by the OS */
    int avx512;    /* AVX-512 F, BW, VL, DQ, with ZMM/opmask state enabled by the OS */
    int avx512bf16;/* AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16) on top of avx512 */
    int avx512vnni;
} pi0_cpu_caps;

/* Detected features (thread-safe; the first call detects, later calls return the cached result). */
const pi0_cpu_caps *pi0_cpu_caps_get(void);

/* Short description such as "avx512 bf16 vnni" for logs and benchmarks. */
const char *pi0_cpu_caps_str(void);

/* TEST-ONLY: lower the level the kernels see to PI0_CPU_GENERIC, PI0_CPU_AVX2, PI0_CPU_AVX512
 * (AVX-512 without BF16) or back to PI0_CPU_NATIVE (what the hardware has, after PI0_CPU_CAPS).
 * Never raises a level above the detected one. Returns 1 if the level is available (then it is
 * applied), 0 if not (nothing changes). Not thread-safe: call it only while no op is running (test_ops
 * runs its cases once per level with it). The library itself never calls it. */
enum { PI0_CPU_GENERIC = 0, PI0_CPU_AVX2 = 1, PI0_CPU_AVX512 = 2, PI0_CPU_NATIVE = 3 };
int pi0_cpu_caps_force(int level);

#endif
