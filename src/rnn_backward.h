/* Training: the per-cell pieces the sequence driver (rnn_backward.c) calls.
 *
 * A cell kind that can be trained supplies one fs_cell_train: a forward step
 * that also saves what its backward needs, and that backward. Adding a cell is
 * one entry in fs__cell_train (train_cells.c) plus, where the cell has
 * parameters other than W_ih, W_hh, b_ih, b_hh, their gradients in `extra`.
 * The driver owns everything around the cell that is a matrix product: the
 * input projection and the recurrent product (full or low rank, W = W_b W_a),
 * the LSTM projection h = W_hr m (the cell then sees m as its h), and their
 * gradients.
 *
 * Layouts, for one sequence at one step (one "row"):
 *   gx, acc  the input projection (+ folded biases) and the recurrent product
 *            (+ bias_h), in the packed column order of kernels.h: element
 *            (gate g, unit j) at (j / 8) * G * 8 + g * 8 + j % 8;
 *   acc      holds `gh` panels (model->gh: 2 for reset-before GRU, whose cell
 *            computes W_hn (r h) itself), else G;
 *   h, c     the state, updated in place ([H] each; c: LSTM only; with a
 *            projection h is m = o tanh(c), projected by the driver);
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
    size_t G; /* gate panels per block in gx */
    float *work; /* 2 * hp floats of scratch for one call */
} fs_cell_ctx;

/* Gradients of a cell's own parameters: `extra` holds them back to back in the
 * order of fs_cell_train.extra, H floats each (1 for the raw scalars alpha,
 * beta, zeta, nu; their gradients already include the sigmoid's derivative). */
#define FS_CELL_MAX_EXTRA 4

typedef struct fs_cell_train {
    size_t slots;  /* floats per unit saved in act */
    int split_dgh; /* 1: dgh differs from dgx (GRU's reset gate multiplies W_hn h + b_hn) */
    int mid_slot;  /* act slot holding r h, the operand of W_hn (reset-before GRU); -1: none */
    int n_extra;   /* parameters with gradients in `extra` (absent ones are skipped) */
    fs_param extra[FS_CELL_MAX_EXTRA];
    /* One row: h (and c) in place, act written. */
    void (*forward)(const fs_cell_ctx *cx, const float *gx, const float *acc, float *h, float *c,
                    float *act);
    /* One row. In: dh = d loss / d h_new, dc = d loss / d c_new (LSTM), the
     * saved act, h_prev, c_prev. Out: dgx, dgh (when split_dgh), and in place
     * dh = the part of d loss / d h_prev that bypasses W_hh, dc = d loss / d c_prev.
     * `extra` accumulates gradients of the cell's own parameters (see above). */
    void (*backward)(const fs_cell_ctx *cx, const float *act, const float *h_prev,
                     const float *c_prev, float *dh, float *dc, float *dgx, float *dgh,
                     float *extra);
} fs_cell_train;

/* Trainable cell kinds: the index into every ISA's table of fs_cell_train.
 * LSTM_EXT: peepholes and/or coupled gates; GRU_RB: reset before the product. */
enum {
    FS_TRAIN_RNN, FS_TRAIN_LSTM, FS_TRAIN_GRU, FS_TRAIN_LSTM_EXT, FS_TRAIN_GRU_RB,
    FS_TRAIN_FASTRNN, FS_TRAIN_FASTGRNN, FS_TRAIN_KINDS
};

/* The `extra` lists of the cells that have one (shared by every ISA's table). */
#define FS_TRAIN_EXTRA_LSTM_EXT {FS_PARAM_PEEPHOLE_I, FS_PARAM_PEEPHOLE_F, FS_PARAM_PEEPHOLE_O}
#define FS_TRAIN_EXTRA_FASTRNN {FS_PARAM_BIAS_UPDATE, FS_PARAM_ALPHA, FS_PARAM_BETA}
#define FS_TRAIN_EXTRA_FASTGRNN {FS_PARAM_BIAS_GATE, FS_PARAM_BIAS_UPDATE, FS_PARAM_ZETA, FS_PARAM_NU}

/* Floats of `extra` for a cell. */
size_t fs__cell_extra_floats(const fs_cell_train *ct, size_t H);

/* The kind of this model's cell (-1: none, a cell this table does not know). */
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
