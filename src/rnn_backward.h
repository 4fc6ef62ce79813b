/* Training: the per-cell pieces the sequence driver (rnn_backward.c) calls.
 *
 * A cell kind that can be trained supplies one fs_cell_train: a forward step
 * that also saves what its backward needs, and that backward. Adding a cell is
 * one entry in fs__cell_train (train_cells.c) plus, where the cell has
 * parameters other than W_ih, W_hh, b_ih, b_hh, their gradients in `extra`.
 *
 * Layouts, for one sequence at one step (one "row"):
 *   gx, acc  the input projection (+ folded biases) and the recurrent product
 *            (+ bias_h), in the packed column order of kernels.h: element
 *            (gate g, unit j) at (j / 8) * G * 8 + g * 8 + j % 8;
 *   h, c     the state, updated in place ([H] each; c: LSTM only);
 *   act      `slots * H` floats saved for backward, slot-major ([slot][H]);
 *   dgx      d loss / d (input pre-activations), [G * H] in PyTorch row order
 *            (gate-major: row g * H + j): the rows of W_ih and b_ih;
 *   dgh      d loss / d (recurrent product + b_hh), same layout: the rows of
 *            W_hh and b_hh. Equal to dgx unless `split_dgh`.
 */
#ifndef FS_RNN_BACKWARD_H
#define FS_RNN_BACKWARD_H

#include <stddef.h>

#include "rnn.h"

typedef struct fs_cell_ctx {
    const fs_rnn *model;
    const fs_rnn_unit *unit;
    size_t H; /* hidden units */
    size_t G; /* gate panels per block in gx / acc */
} fs_cell_ctx;

typedef struct fs_cell_train {
    size_t slots;  /* floats per unit saved in act */
    int split_dgh; /* 1: dgh differs from dgx (GRU's reset gate multiplies W_hn h + b_hn) */
    /* One row: h (and c) in place, act written. */
    void (*forward)(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h, float *c,
                    float *act);
    /* One row. In: dh = d loss / d h_new, dc = d loss / d c_new (LSTM), the
     * saved act, h_prev, c_prev. Out: dgx, dgh (when split_dgh), and in place
     * dh = the part of d loss / d h_prev that bypasses W_hh, dc = d loss / d c_prev.
     * `extra` accumulates gradients of cell-specific parameters (NULL: none). */
    void (*backward)(const fs_cell_ctx *cx, const float *act, const float *h_prev,
                     const float *c_prev, float *dh, float *dc, float *dgx, float *dgh,
                     float *extra);
} fs_cell_train;

/* Trainable cell kinds: the index into every ISA's table of fs_cell_train. */
enum { FS_TRAIN_RNN, FS_TRAIN_LSTM, FS_TRAIN_GRU, FS_TRAIN_KINDS };

/* The kind of this model's cell, or -1 when its backward is not implemented yet. */
int fs__cell_train_kind(const fs_rnn *model);

/* The training pieces for this model's cell at the active ISA (the portable
 * entry where an ISA has none), or NULL when its backward is not implemented
 * yet (the caller reports FS_ERR_UNSUPPORTED). slots and split_dgh agree
 * across ISAs: a tape does not depend on the ISA. */
const fs_cell_train *fs__cell_train(const fs_rnn *model);

#if defined(FS_HAVE_AVX2)
/* kernels/train_avx2.c: the AVX2 entry of a kind (NULL or empty: none). */
const fs_cell_train *fs__cell_train_avx2(int kind);
#endif

#endif /* FS_RNN_BACKWARD_H */
