/* Runtime ISA dispatch: one table, filled from the portable kernels and then
 * overridden by the best level the CPU (and FASTSEQ_ISA) allows, once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"

static fs_kernels table;
static fs_isa active = FS_ISA_GENERIC;
static int initialised; /* accessed with acquire/release atomics */

static int cpu_has(fs_isa isa) {
    switch (isa) {
    case FS_ISA_GENERIC: return 1;
    case FS_ISA_AVX2:
#if defined(FS_HAVE_AVX2)
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        return 0;
#endif
    case FS_ISA_AVX512:
#if defined(FS_HAVE_AVX512)
        __builtin_cpu_init();
        return cpu_has(FS_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512vl");
#else
        return 0;
#endif
    }
    return 0;
}

static void fill(fs_isa isa) {
    fs_kernels k = {0}; /* slots an ISA lacks stay NULL */
    fs__kernels_init_generic(&k);
#if defined(FS_HAVE_AVX2)
    if (isa >= FS_ISA_AVX2) fs__kernels_init_avx2(&k);
#endif
#if defined(FS_HAVE_AVX512)
    if (isa >= FS_ISA_AVX512) fs__kernels_init_avx512(&k), fs__cells_init_avx512(&k), fs__step1_init_avx512(&k);
#endif
    table = k;
    active = isa;
}

/* The cap FASTSEQ_ISA sets: exactly a level's name. Anything else is reported on
 * stderr and ignored (read at first use, there is no caller to return an error to). */
static fs_isa env_cap(void) {
    const char *env = getenv("FASTSEQ_ISA");
    if (!env) return FS_ISA_AVX512;
    for (fs_isa isa = FS_ISA_GENERIC; isa <= FS_ISA_AVX512; isa++)
        if (strcmp(env, fs_isa_name(isa)) == 0) return isa;
    fprintf(stderr, "fastseq: warning: FASTSEQ_ISA=\"%s\" ignored: expected generic, avx2 or "
                    "avx512 (lower case, no spaces)\n", env);
    return FS_ISA_AVX512;
}

static fs_isa best_allowed(void) {
    fs_isa cap = env_cap();
    for (fs_isa isa = cap; isa > FS_ISA_GENERIC; isa--)
        if (cpu_has(isa)) return isa;
    return FS_ISA_GENERIC;
}

/* Idempotent: racing first calls compute and store the same table. */
static void ensure_init(void) {
    if (__atomic_load_n(&initialised, __ATOMIC_ACQUIRE)) return;
    fill(best_allowed());
    __atomic_store_n(&initialised, 1, __ATOMIC_RELEASE);
}

const fs_kernels *fs__kernels(void) {
    ensure_init();
    return &table;
}

fs_isa fs_active_isa(void) {
    ensure_init();
    return active;
}

const char *fs_isa_name(fs_isa isa) {
    switch (isa) {
    case FS_ISA_GENERIC: return "generic";
    case FS_ISA_AVX2: return "avx2";
    case FS_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

fs_status fs_set_isa(fs_isa isa) {
    fs__clear_error();
    if (isa != FS_ISA_GENERIC && isa != FS_ISA_AVX2 && isa != FS_ISA_AVX512)
        return fs__fail(FS_ERR_INVALID_ARG,
                        "isa: expected 0 (generic), 1 (avx2) or 2 (avx512), got %d", (int)isa);
    if (!cpu_has(isa))
        return fs__fail(FS_ERR_UNSUPPORTED, "isa %s: not supported by this CPU or build",
                        fs_isa_name(isa));
    fill(isa);
    __atomic_store_n(&initialised, 1, __ATOMIC_RELEASE);
    return FS_OK;
}
