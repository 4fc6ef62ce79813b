/* The C benchmarks' shared pieces: a monotonic clock, a comparator for
 * medians, uniform test data, failure reports. */
#ifndef FS_BENCH_UTIL_H
#define FS_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastseq.h"

static inline double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

/* qsort comparator on doubles. */
static inline int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline float uniform(float lo, float hi) { return lo + (hi - lo) * (float)rand() / (float)RAND_MAX; }

/* Reports a failed call with the library's detail; returns the exit status 1. */
static inline int bench_fail(const char *prog, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, fs_last_error());
    return 1;
}

#endif /* FS_BENCH_UTIL_H */
