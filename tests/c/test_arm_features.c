/*
 * test_arm_features.c -- fs__arm_features() (kernels/arm_features.c): aarch64's
 * optional instruction sets from the kernel's hwcaps, read once.
 *
 *   test_arm_features            the value is stable across calls; 0 off aarch64
 *   test_arm_features MASK       also: the value equals MASK (FS_ARM_* bits). CMake
 *                                runs this under qemu-aarch64 with QEMU_CPU set to a
 *                                core whose features are known (cortex-a53: none of
 *                                them; max: dotprod, bf16 and i8mm).
 */
#include <stdlib.h>

#include "check.h"
#include "kernels.h"

int main(int argc, char **argv) {
    const unsigned first = fs__arm_features();
    printf("arm features: 0x%x (dotprod %d, bf16 %d, i8mm %d)\n", first, !!(first & FS_ARM_DOTPROD),
           !!(first & FS_ARM_BF16), !!(first & FS_ARM_I8MM));
    CHECK(fs__arm_features() == first, "a second call gave 0x%x, the first 0x%x", fs__arm_features(), first);
    CHECK((first & ~(unsigned)(FS_ARM_DOTPROD | FS_ARM_BF16 | FS_ARM_I8MM)) == 0, "unknown bits in 0x%x", first);
#if !defined(__aarch64__)
    CHECK(first == 0, "not aarch64, yet features 0x%x", first);
#endif
    if (argc > 1) {
        const unsigned want = (unsigned)strtoul(argv[1], NULL, 0);
        CHECK(first == want, "expected features 0x%x (QEMU_CPU=%s), got 0x%x", want,
              getenv("QEMU_CPU") ? getenv("QEMU_CPU") : "(unset)", first);
    }
    printf("test_arm_features: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
