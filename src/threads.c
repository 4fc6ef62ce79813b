/* Thread settings: fs_set_num_threads, FASTSEQ_NUM_THREADS, and the policy
 * that keeps small problems on one thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "threads.h"

/* Below this many FLOPs per step the fork/barrier (~1-2 us) outweighs the split. */
#define FS_PARALLEL_MIN_FLOPS 4.0e5

static int configured; /* 0: not set; read with relaxed atomics */

/* FASTSEQ_NUM_THREADS as a whole decimal integer in [1, FS_MAX_THREADS]; 0 when unset.
 * Anything else ("1e3", "4 ", "-2", "99999") is reported on stderr and ignored: a
 * setting read at first use has no caller to return an error to. */
static int env_threads(void) {
    const char *env = fs__getenv("FASTSEQ_NUM_THREADS");
    if (!env) return 0;
    char *end = NULL;
    errno = 0;
    long n = strtol(env, &end, 10);
    if (errno || end == env || *end != '\0' || n < 1 || n > FS_MAX_THREADS) {
        fprintf(stderr, "fastseq: warning: FASTSEQ_NUM_THREADS=\"%s\" ignored: expected a whole "
                        "number from 1 to %d\n", env, FS_MAX_THREADS);
        return 0;
    }
    return (int)n;
}

static int default_threads(void) {
    int n = env_threads();
    if (n >= 1) return n;
#if defined(_OPENMP)
    n = omp_get_max_threads();
    return n > FS_MAX_THREADS ? FS_MAX_THREADS : n;
#else
    return 1;
#endif
}

int fs__max_threads(void) {
    static int fallback; /* default_threads(), read once (racing first calls store the same) */
    int n = __atomic_load_n(&configured, __ATOMIC_RELAXED);
    if (n >= 1) return n;
    n = __atomic_load_n(&fallback, __ATOMIC_RELAXED);
    if (n < 1) __atomic_store_n(&fallback, n = default_threads(), __ATOMIC_RELAXED);
    return n;
}

fs_status fs_set_num_threads(int32_t n) {
    fs__clear_error();
    if (n < 0 || n > FS_MAX_THREADS)
        return fs__fail(FS_ERR_INVALID_ARG, "num_threads: expected 0 (the default) to %d, got %d",
                        FS_MAX_THREADS, (int)n);
#if !defined(_OPENMP)
    if (n > 1) return fs__fail(FS_ERR_UNSUPPORTED, "num_threads %d: this build has no OpenMP", (int)n);
#endif
    __atomic_store_n(&configured, n, __ATOMIC_RELAXED);
    return FS_OK;
}

int32_t fs_get_num_threads(void) { return fs__max_threads(); }

int fs__threads_for(int n, double flops_per_step, size_t blocks) {
    if (n <= 1 || flops_per_step < FS_PARALLEL_MIN_FLOPS) return 1;
    return (size_t)n > blocks ? (int)blocks : n;
}
