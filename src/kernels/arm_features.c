/* aarch64's optional instruction sets, from the kernel's hwcaps (Linux
 * getauxval), read once: what the quantised kernels may use beyond the
 * baseline NEON. Other systems and architectures: none. */
#include "kernels.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

/* The bits of <asm/hwcap.h>, spelled here for older headers that lack them. */
#define FS__HWCAP_ASIMDDP (1ul << 20)
#define FS__HWCAP2_I8MM (1ul << 13)
#define FS__HWCAP2_BF16 (1ul << 14)

static unsigned read_features(void) {
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    return (hw & FS__HWCAP_ASIMDDP ? FS_ARM_DOTPROD : 0u) | (hw2 & FS__HWCAP2_BF16 ? FS_ARM_BF16 : 0u) |
           (hw2 & FS__HWCAP2_I8MM ? FS_ARM_I8MM : 0u);
}
#else
static unsigned read_features(void) { return 0u; }
#endif

unsigned fs__arm_features(void) {
    /* racing first calls compute and store the same value */
    static int ready;
    static unsigned features;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&features, read_features(), __ATOMIC_RELAXED);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&features, __ATOMIC_RELAXED);
}
