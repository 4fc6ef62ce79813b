/*
 * The kernel dispatch table and the packed-weight layout every kernel reads.
 *
 * Packed layout. Hidden units are taken in blocks of FS_NB = 8. A layer with G
 * gates has, per block, G panels of 8 columns: column (gate g, unit j) lives in
 * panel (j / 8) * G + g, lane j % 8, so the gates of one unit land in one
 * register lane and the cell update runs straight after the product. A panel
 * over K inputs is K rows of 8 floats, contiguous (unit stride for the kernel).
 * Hidden sizes are padded to a multiple of 8 with zero weights.
 */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>
#include "fastseq.h"

#define FS_NB 8

typedef struct fs_kernels {
    /* c[i][p*8 + l] = bias[p*8 + l] + sum_k a[i*lda + k] * b[(p*k_ + k)*8 + l]
     * for i < m, p < npanels, l < 8; bias may be NULL (zero). */
    void (*gemm)(size_t m, size_t k, const float *a, size_t lda, const float *b, size_t npanels,
                 const float *bias, float *c, size_t ldc);
    /* One block of 8 units over m rows. gx: input projection (+ folded biases),
     * acc: recurrent product [m][G*8]; h / c: state rows with strides ldh / ldc. */
    void (*rnn_cell)(size_t m, int relu, const float *gx, size_t ldgx, const float *acc,
                     float *h, size_t ldh);
    void (*lstm_cell)(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                      size_t ldc, float *h, size_t ldh);
    /* acc's n part already holds W_hn h + b_hn; h_prev is read, h written. */
    void (*gru_cell)(size_t m, const float *gx, size_t ldgx, const float *acc,
                     const float *h_prev, size_t ldhp, float *h, size_t ldh);
} fs_kernels;

/* The table for the active ISA; initialised once on first use. */
const fs_kernels *fs__kernels(void);

/* Per-ISA fillers: each overrides the slots it improves (reference first). */
void fs__kernels_init_generic(fs_kernels *k);
#if defined(FS_HAVE_AVX2)
void fs__kernels_init_avx2(fs_kernels *k);
#endif

#endif /* FS_KERNELS_H */
