/* cpu.c - CPUID/XGETBV (x86-64) or HWCAP (AArch64) feature detection, cached (see cpu.h). On other
 * targets every flag is 0 (portable kernels). */
#include "rt/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define PI0_X86 1
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
#endif

static pi0_cpu_caps g_caps;
static pi0_cpu_caps g_native; /* after PI0_CPU_CAPS; pi0_cpu_caps_force restores or lowers from it */
static char g_caps_str[64];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#ifdef PI0_X86
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static void make_str(void);

static void detect(void) {
    memset(&g_caps, 0, sizeof g_caps);
#ifdef PI0_X86
    unsigned int a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
        unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
        int ymm_ok = (xcr0 & 0x6) == 0x6;     /* SSE + AVX state */
        int zmm_ok = (xcr0 & 0xe6) == 0xe6;   /* + opmask, ZMM_Hi256, Hi16_ZMM */
        unsigned int max_leaf = __get_cpuid_max(0, NULL);
        if (max_leaf >= 7 && avx && ymm_ok) {
            __cpuid_count(7, 0, a, b, c, d);
            int avx2 = (b >> 5) & 1;
            int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
            int vnni = (c >> 11) & 1;
            g_caps.avx2 = avx2 && fma && f16c;
            g_caps.avx512 = g_caps.avx2 && zmm_ok && f && dq && bw && vl;
            g_caps.avx512vnni = g_caps.avx512 && vnni;
            if (a >= 1) { /* leaf 7's highest subleaf */
                __cpuid_count(7, 1, a, b, c, d);
                g_caps.avx512bf16 = g_caps.avx512 && ((a >> 5) & 1);
                g_caps.avxvnni = g_caps.avx2 && ((a >> 4) & 1);
            }
        }
    }
#endif
#if defined(__aarch64__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    g_caps.neon = (hw & HWCAP_ASIMD) != 0;
    g_caps.neon_bf16 = g_caps.neon && (hw2 & HWCAP2_BF16) != 0;
    g_caps.neon_dot = g_caps.neon && (hw & HWCAP_ASIMDDP) != 0;
#endif
    const char *env = getenv("PI0_CPU_CAPS");
    if (env && strcmp(env, "generic") == 0) memset(&g_caps, 0, sizeof g_caps);
    if (env && strcmp(env, "avx2") == 0) g_caps.avx512 = g_caps.avx512bf16 = g_caps.avx512vnni = g_caps.avxvnni = 0;
    if (env && strcmp(env, "avx2-vnni") == 0) g_caps.avx512 = g_caps.avx512bf16 = g_caps.avx512vnni = 0;
    if (env && strcmp(env, "avx512") == 0) g_caps.avx512bf16 = 0; /* AVX-512 without BF16 */
    if (env && strcmp(env, "neon") == 0) g_caps.neon_bf16 = 0;    /* NEON without BF16 */
    g_native = g_caps;
    make_str();
}

int pi0_cpu_caps_force(int level) {
    pthread_once(&g_once, detect);
    pi0_cpu_caps c = g_native;
    if (level == PI0_CPU_GENERIC) memset(&c, 0, sizeof c);
    else if (level == PI0_CPU_AVX2 || level == PI0_CPU_AVX2_VNNI) {
        if (!c.avx2 || (level == PI0_CPU_AVX2_VNNI && !c.avxvnni)) return 0;
        c.avx512 = c.avx512bf16 = c.avx512vnni = 0;
        if (level == PI0_CPU_AVX2) c.avxvnni = 0;
    } else if (level == PI0_CPU_AVX512) {
        if (!c.avx512) return 0;
        c.avx512bf16 = 0;
    } else if (level == PI0_CPU_NEON) {
        if (!c.neon) return 0;
        c.neon_bf16 = 0;
    } else if (level != PI0_CPU_NATIVE) return 0;
    g_caps = c;
    make_str();
    return 1;
}

static void make_str(void) {
    g_caps.flags = (g_caps.avx2 ? PI0_CAP_AVX2 : 0) | (g_caps.avx512 ? PI0_CAP_AVX512 : 0) |
                   (g_caps.avx512bf16 ? PI0_CAP_AVX512BF16 : 0) | (g_caps.avx512vnni ? PI0_CAP_AVX512VNNI : 0) |
                   (g_caps.neon ? PI0_CAP_NEON : 0) | (g_caps.neon_bf16 ? PI0_CAP_NEON_BF16 : 0) |
                   (g_caps.avxvnni ? PI0_CAP_AVXVNNI : 0) | (g_caps.neon_dot ? PI0_CAP_NEON_DOT : 0);
    strcpy(g_caps_str, "generic");
    if (g_caps.avx2) strcpy(g_caps_str, "avx2");
    if (g_caps.avx512) strcpy(g_caps_str, "avx512");
    if (g_caps.avx512bf16) strcat(g_caps_str, " bf16");
    if (g_caps.avx512vnni) strcat(g_caps_str, " vnni");
    if (g_caps.avxvnni) strcat(g_caps_str, g_caps.avx512 ? " avx-vnni" : " vnni");
    if (g_caps.neon) strcpy(g_caps_str, "neon");
    if (g_caps.neon_bf16) strcat(g_caps_str, " bf16");
    if (g_caps.neon_dot) strcat(g_caps_str, " dot");
}

const pi0_cpu_caps *pi0_cpu_caps_get(void) {
    pthread_once(&g_once, detect);
    return &g_caps;
}

const char *pi0_cpu_caps_str(void) {
    pthread_once(&g_once, detect);
    return g_caps_str;
}
