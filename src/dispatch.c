/* Runtime ISA dispatch: the one place an ISA is chosen. One table per level,
 * each filled from the portable kernels and then overridden by every level up
 * to it, once; a table never changes after it is published, so a call that
 * read the active table at its start keeps one consistent set of kernels even
 * if fs_set_isa switches levels meanwhile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"

#define FS_ISA_LEVELS 4
#define FS_ISA_TOP FS_ISA_NEON /* the last level of the enum */

static fs_kernels tables[FS_ISA_LEVELS];
static int active = -1; /* index into tables; -1 until initialised (acquire/release atomics) */

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
    case FS_ISA_NEON:
#if defined(FS_HAVE_NEON)
        return 1; /* Advanced SIMD is baseline on aarch64 */
#else
        return 0;
#endif
    }
    return 0;
}

/* BLIS style: the reference fills every slot, each level overrides what it
 * improves (kernels.h: one filler per kernel file). */
static void fill(fs_isa isa, fs_kernels *k) {
    memset(k, 0, sizeof *k); /* the fused batch-1 steps stay NULL where a level has none */
    (void)isa;               /* a build with only the portable level ignores it */
    fs__gemm_init_generic(k);
    fs__cells_init_generic(k);
    fs__train_cells_init_generic(k);
    fs__vact_init_generic(k);
    fs__quant_init_generic(k);
    fs__qdot_init_generic(k);
#if defined(FS_HAVE_AVX2)
    if (isa >= FS_ISA_AVX2) {
        fs__gemm_init_avx2(k);
        fs__quant_init_avx2(k);
        fs__qdot_init_avx2(k);
        fs__cells_init_avx2(k);
        fs__train_cells_init_avx2(k);
        fs__vact_init_avx2(k);
    }
#endif
#if defined(FS_HAVE_AVX512)
    if (isa >= FS_ISA_AVX512) {
        fs__gemm_init_avx512(k);
        fs__cells_init_avx512(k);
        fs__step1_init_avx512(k);
        fs__quant_init_avx512(k);
        fs__qdot_init_avx512(k);
        if (__builtin_cpu_supports("avx512vnni")) fs__qdot_init_avx512vnni(k); /* not in the level's baseline */
        if (__builtin_cpu_supports("avx512vnni")) fs__step1_q8_init_avx512vnni(k);
        fs__train_cells_init_avx512(k);
        fs__vact_init_avx512(k);
    }
#endif
#if defined(FS_HAVE_NEON)
    if (isa == FS_ISA_NEON) {
        fs__gemm_init_neon(k);
        fs__cells_init_neon(k);
        fs__train_cells_init_neon(k);
    }
#endif
}

/* The cap FASTSEQ_ISA sets: exactly a level's name. Anything else is reported on
 * stderr and ignored (read at first use, there is no caller to return an error to). */
static fs_isa env_cap(void) {
    const char *env = fs__getenv("FASTSEQ_ISA");
    if (!env) return FS_ISA_TOP;
    for (fs_isa isa = FS_ISA_GENERIC; isa <= FS_ISA_TOP; isa++)
        if (strcmp(env, fs_isa_name(isa)) == 0) return isa;
    fprintf(stderr, "fastseq: warning: FASTSEQ_ISA=\"%s\" ignored: expected generic, avx2, "
                    "avx512 or neon (lower case, no spaces)\n", env);
    return FS_ISA_TOP;
}

/* The architecture of a level: 0 the portable one (every build), 1 x86-64, 2 aarch64. */
static int arch_of(fs_isa isa) { return isa == FS_ISA_GENERIC ? 0 : isa == FS_ISA_NEON ? 2 : 1; }

/* The best level the CPU has up to the cap; a cap from another architecture's levels
 * (avx512 on aarch64, neon on x86-64) caps nothing, as a level the CPU lacks. */
static fs_isa best_allowed(void) {
    const fs_isa cap = env_cap();
    for (fs_isa isa = FS_ISA_TOP; isa > FS_ISA_GENERIC && cap != FS_ISA_GENERIC; isa--)
        if (cpu_has(isa) && (arch_of(isa) != arch_of(cap) || isa <= cap)) return isa;
    return FS_ISA_GENERIC;
}

/* Fills the tables of every level the CPU has, then publishes the start level.
 * Racing first calls write the same bytes before either publishes. */
static int ensure_init(void) {
    int a = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (a >= 0) return a;
    for (int isa = 0; isa < FS_ISA_LEVELS; isa++)
        if (cpu_has((fs_isa)isa)) fill((fs_isa)isa, &tables[isa]);
    a = (int)best_allowed();
    int expected = -1;
    if (!__atomic_compare_exchange_n(&active, &expected, a, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        a = expected; /* fs_set_isa or another first call got there first */
    return a;
}

const fs_kernels *fs__kernels(void) { return &tables[ensure_init()]; }

fs_isa fs_active_isa(void) { return (fs_isa)ensure_init(); }

const char *fs_isa_name(fs_isa isa) {
    switch (isa) {
    case FS_ISA_GENERIC: return "generic";
    case FS_ISA_AVX2: return "avx2";
    case FS_ISA_AVX512: return "avx512";
    case FS_ISA_NEON: return "neon";
    }
    return "unknown";
}

int32_t fs_isa_supported(fs_isa isa) {
    return (unsigned)isa <= FS_ISA_TOP && cpu_has(isa);
}

fs_status fs_set_isa(fs_isa isa) {
    fs__clear_error();
    if ((unsigned)isa > FS_ISA_TOP)
        return fs__fail(FS_ERR_INVALID_ARG,
                        "isa: expected 0 (generic), 1 (avx2), 2 (avx512) or 3 (neon), got %d", (int)isa);
    if (!cpu_has(isa))
        return fs__fail(FS_ERR_UNSUPPORTED, "isa %s: not supported by this CPU or build",
                        fs_isa_name(isa));
    ensure_init();
    __atomic_store_n(&active, (int)isa, __ATOMIC_RELEASE);
    return FS_OK;
}

uint32_t fs_version(void) {
    return (uint32_t)(FS_VERSION_MAJOR * 10000 + FS_VERSION_MINOR * 100 + FS_VERSION_PATCH);
}

const char *fs_version_string(void) { return FS_VERSION_STRING; }
