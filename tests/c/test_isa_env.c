/*
 * test_isa_env.c -- the level FASTSEQ_ISA leads to at first use (dispatch.c).
 *
 *   FASTSEQ_ISA=... test_isa_env [EXPECTED]
 *
 * The active level has a name and the CPU runs it; with EXPECTED, it is that
 * level (its name). CMake runs it with EXPECTED on
 * aarch64 (under qemu), where the levels are known: generic stays generic, neon
 * is neon, and an x86 level (avx512) caps nothing, so the CPU's best, neon.
 */
#include <stdlib.h>

#include "check.h"

int main(int argc, char **argv) {
    const char *env = getenv("FASTSEQ_ISA");
    const fs_isa active = fs_active_isa();
    const char *got = fs_isa_name(active);
    CHECK(strcmp(got, "unknown") != 0 && fs_isa_supported(active), "FASTSEQ_ISA=%s: active level %d (%s)",
          env ? env : "(unset)", (int)active, got);
    if (argc > 1)
        CHECK(strcmp(got, argv[1]) == 0, "FASTSEQ_ISA=%s: expected level %s, got %s", env ? env : "(unset)",
              argv[1], got);
    printf("test_isa_env: FASTSEQ_ISA=%s -> %s; %d checks, %d failures\n", env ? env : "(unset)", got, g_checks,
           g_failures);
    return g_failures != 0;
}
