/* Training: what the backward driver (rnn_backward.c) knows of each cell.
 *
 * A trainable cell kind has a record and a backward kernel per ISA level
 * (kernels.h: cell_record, cell_backward) and one fs_cell_train entry here:
 * the shape of what those kernels exchange, the same at every level. Adding a
 * cell is one entry in fs__cell_train plus its two generic kernels and, where
 * the cell has parameters other than W_ih, W_hh, b_ih, b_hh, their gradients
 * in `extra`. The driver owns everything around the cell that is a matrix
 * product: the input projection and the recurrent product (full or low rank,
 * W = W_b W_a), the LSTM projection h = W_hr m (the cell then sees m as its
 * h), and their gradients. The forward is the inference driver's
 * (rnn_forward.h), recording its gx, acc and states.
 *
 * Layouts, for one sequence at one step (one "row"):
 *   gx, acc  the input projection (+ folded biases) and the recurrent product
 *            (+ bias_h), in the packed column order of kernels.h: element
 *            (gate g, unit j) at (j / 8) * G * 8 + g * 8 + j % 8;
 *   acc      holds `gh` panels (model->gh: 2 for reset-before GRU, whose cell
 *            computes W_hn (r h) itself), else G;
 *   h, c     the state, updated in place ([H] each; c: LSTM only; with a
 *            projection h is m = o tanh(c), projected by the driver);
 *   act      `slots * H` floats the record kernel recomputes for backward, slot-major ([slot][H]);
 *   dgx      d loss / d (input pre-activations), [G * H] in PyTorch row order
 *            (gate-major: row g * H + j): the rows of W_ih and b_ih;
 *   dgh      d loss / d (recurrent product + b_hh), same layout: the rows of
 *            W_hh and b_hh. Equal to dgx unless `split_dgh`.
 */
#ifndef FS_RNN_BACKWARD_H
#define FS_RNN_BACKWARD_H

#include <stddef.h>

#include "kernels/kernels.h"
#include "rnn.h"

/* Gradients of a cell's own parameters: `extra` holds them back to back in the
 * order of fs_cell_train.extra, H floats each (1 for the raw scalars alpha,
 * beta, zeta, nu; their gradients already include the sigmoid's derivative). */
#define FS_CELL_MAX_EXTRA 4

typedef struct fs_cell_train {
    size_t slots;  /* floats per unit of act (the record kernel's output) */
    int split_dgh; /* 1: dgh differs from dgx (GRU's reset gate multiplies W_hn h + b_hn) */
    int mid_slot;  /* act slot holding r h, the operand of W_hn (reset-before GRU); -1: none */
    int n_extra;   /* parameters with gradients in `extra` (absent ones are skipped) */
    fs_param extra[FS_CELL_MAX_EXTRA];
} fs_cell_train;

/* Floats of `extra` for a cell. */
size_t fs__cell_extra_floats(const fs_cell_train *ct, size_t H);

/* The kind of this model's cell (FS_TRAIN_*; -1: a cell with no backward). */
int fs__cell_train_kind(const fs_rnn *model);

/* The training shape of this model's cell, or NULL when its backward is not
 * implemented (the caller reports FS_ERR_UNSUPPORTED). */
const fs_cell_train *fs__cell_train(const fs_rnn *model);

/* 1 and its PyTorch shape when the model has parameter q in unit (layer, dir),
 * else 0 (from the configuration: fs_rnn_param_shape). */
int fs__param_shape(const fs_rnn *model, size_t layer, size_t dir, fs_param q, size_t *rows, size_t *cols);

/* The record and backward kernels' view of one unit (layer, direction). */
fs_cell_params fs__cell_params(const fs_rnn *model, const fs_rnn_unit *unit);

#endif /* FS_RNN_BACKWARD_H */
