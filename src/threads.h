/* Thread-count policy shared by every driver: one setting, one size threshold. */
#ifndef FS_THREADS_H
#define FS_THREADS_H

#include <stddef.h>

/* Threads, of at most max, for a time loop whose recurrent product costs
 * `flops_per_step` and splits into `blocks` independent unit blocks: 1 below
 * the threshold where a per-step barrier costs more than it saves. */
int fs__threads_for(int max, double flops_per_step, size_t blocks);

/* The configured maximum (fs_set_num_threads / FASTSEQ_NUM_THREADS / OpenMP
 * default). Every public entry reads it once and passes it down, so a
 * concurrent fs_set_num_threads never splits one call's sizes and threads. */
int fs__max_threads(void);

/* Drivers call their worker directly when one thread does (a parallel region,
 * even `if (0)`, costs a team setup per call), else from a parallel region.
 * Workers meet at FS_BARRIER(nth): a barrier only when a team of several runs,
 * so a lone worker never binds to a caller's own OpenMP team. */
#if defined(_OPENMP)
#include <omp.h>
#define FS_THREAD_ID() omp_get_thread_num()
#define FS_THREAD_COUNT() omp_get_num_threads()
#define FS_BARRIER(nth) do { if ((nth) > 1) { _Pragma("omp barrier") } } while (0)
#else
#define FS_THREAD_ID() 0
#define FS_THREAD_COUNT() 1
#define FS_BARRIER(nth) ((void)(nth))
#endif

#endif /* FS_THREADS_H */
