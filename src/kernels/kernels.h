/*
 * The kernel dispatch table and the packed-weight layout every kernel reads.
 *
 * Packed layout. Hidden units are taken in blocks of FS_NB = 8. A layer with G
 * gates stores, per block jb, a [K][G][8] array: element (k, g, lane) is the
 * weight from input k to gate g of unit jb*8 + lane. The gates of one unit land
 * in one register lane, so the cell update runs straight after the product, and
 * a block is one sequential stream for the kernel. Blocks follow each other
 * (block stride K*G*8). Hidden sizes are padded to a multiple of 8 with zero
 * weights. Outputs and biases use the matching [jb][G][8] column order.
 */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>
#include "fastseq.h"

#define FS_NB 8

typedef struct fs_kernels {
    /* For i < m and nblocks packed blocks of g gates (layout above), column
     * q = (jb*g + p)*8 + l:  c[i*ldc + q] = bias[q] + sum_k a[i*lda + k] * b[(jb*k_ + k)*g*8 + p*8 + l].
     * bias may be NULL (zero). */
    void (*gemm)(size_t m, size_t k, const float *a, size_t lda, const float *b, size_t g,
                 size_t nblocks, const float *bias, float *c, size_t ldc);
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
