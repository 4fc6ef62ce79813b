/* Thread-count policy shared by every driver: one setting, one size threshold. */
#ifndef FS_THREADS_H
#define FS_THREADS_H

#include <stddef.h>

/* Threads to use for a time loop whose recurrent product costs `flops_per_step`
 * and splits into `blocks` independent unit blocks: 1 below the threshold where
 * a per-step barrier costs more than it saves. */
int fs__threads_for(double flops_per_step, size_t blocks);

/* The configured maximum (fs_set_num_threads / FASTSEQ_NUM_THREADS / OpenMP default). */
int fs__max_threads(void);

#if defined(_OPENMP)
#include <omp.h>
#define FS_THREAD_ID() omp_get_thread_num()
#define FS_THREAD_COUNT() omp_get_num_threads()
#else
#define FS_THREAD_ID() 0
#define FS_THREAD_COUNT() 1
#endif

#endif /* FS_THREADS_H */
