/* cpu.h - run-time CPU feature detection, computed once and cached: CPUID + XGETBV on x86-64,
 * the kernel's HWCAP bits on AArch64 (getauxval).
 *
 * Kernels compiled for an ISA (files ending _avx512.c, _avx2.c, _neon.c, _neonbf16.c) are only
 * called when the flags here say both the CPU and the OS (saved register state) support them: the
 * fast backend's ISA table (src/ops/fast/isa.c) picks its row from `flags`. Never needs -march=native.
 * Setting the environment variable PI0_CPU_CAPS at first use lowers the detected level (for testing
 * the other paths on a capable machine): "generic" (portable C), "avx2" (AVX2 without AVX-512 or
 * AVX-VNNI: Haswell to Zen 3), "avx2-vnni" (AVX2 + AVX-VNNI, no AVX-512: Alder Lake and later client
 * cores), "avx512" (AVX-512 without BF16), "neon" (NEON without BF16).
 */
#ifndef PI0_CPU_H
#define PI0_CPU_H

typedef struct {
    int avx2;      /* AVX2 + FMA + F16C, with YMM state enabled by the OS */
    int avx512;    /* AVX-512 F, BW, VL, DQ, with ZMM/opmask state enabled by the OS */
    int avx512bf16;/* AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16) on top of avx512 */
    int avx512vnni;
    int avxvnni;   /* AVX-VNNI (VEX-encoded 256-bit vpdpbusd, CPUID.(7,1):EAX[4]) on top of avx2 */
    int neon;      /* AArch64 Advanced SIMD (ASIMD) with fp16 conversions: every ARMv8.2 core */
    int neon_bf16; /* + FEAT_BF16 (BFDOT, BFMMLA, BFCVT), HWCAP2_BF16 */
    int neon_dot;  /* + FEAT_DotProd (SDOT/UDOT: ARMv8.2 cores such as Cortex-A76), HWCAP_ASIMDDP */
    unsigned flags;/* the above as PI0_CAP_* bits */
} pi0_cpu_caps;

enum {
    PI0_CAP_AVX2 = 1u << 0, PI0_CAP_AVX512 = 1u << 1, PI0_CAP_AVX512BF16 = 1u << 2, PI0_CAP_AVX512VNNI = 1u << 3,
    PI0_CAP_NEON = 1u << 4, PI0_CAP_NEON_BF16 = 1u << 5, PI0_CAP_AVXVNNI = 1u << 6,
    PI0_CAP_NEON_DOT = 1u << 7,
};

/* Detected features (thread-safe; the first call detects, later calls return the cached result). */
const pi0_cpu_caps *pi0_cpu_caps_get(void);

/* Short description such as "avx512 bf16 vnni" for logs and benchmarks. */
const char *pi0_cpu_caps_str(void);

/* TEST-ONLY: lower the level the kernels see to PI0_CPU_GENERIC, PI0_CPU_AVX2 (no AVX-VNNI),
 * PI0_CPU_AVX2_VNNI, PI0_CPU_AVX512 (AVX-512 without BF16), PI0_CPU_NEON (NEON without BF16) or back
 * to PI0_CPU_NATIVE (what the hardware has, after PI0_CPU_CAPS).
 * Never raises a level above the detected one. Returns 1 if the level is available (then it is
 * applied), 0 if not (nothing changes). Not thread-safe: call it only while no op is running (test_ops
 * runs its cases once per level with it). The library itself never calls it. */
enum { PI0_CPU_GENERIC = 0, PI0_CPU_AVX2 = 1, PI0_CPU_AVX512 = 2, PI0_CPU_NATIVE = 3, PI0_CPU_NEON = 4,
       PI0_CPU_AVX2_VNNI = 5 };
int pi0_cpu_caps_force(int level);

#endif
