/* The model object behind fs_rnn: configuration, PyTorch-layout weights and
 * their packed copies (see kernels/kernels.h for the packed layout). */
#ifndef FS_RNN_H
#define FS_RNN_H

#include "fastseq.h"

typedef struct fs_rnn_unit { /* one layer, one direction */
    size_t in_size;
    float *w_ih, *w_hh, *b_ih, *b_hh; /* PyTorch layout, as given */
    float *w_ih_packed;               /* nblk*G panels of [in_size][8] */
    float *w_hh_packed;               /* nblk*G panels of [hidden][8] */
    float *bias_x;                    /* [G*Hp] b_ih + b_hh, folded into the input projection */
    float *bias_h;                    /* [G*Hp] biases that must stay inside the recurrence
                                         (GRU: b_hn, multiplied by r); zero elsewhere */
} fs_rnn_unit;

struct fs_rnn {
    fs_rnn_config cfg;
    size_t gates;   /* 1 RNN, 3 GRU, 4 LSTM */
    size_t dirs;    /* 1 or 2 */
    size_t hp;      /* hidden size rounded up to FS_NB */
    fs_rnn_unit *units; /* [num_layers * dirs], index layer * dirs + direction */
    int owned;          /* 1: fs_rnn_create's block, released by fs_rnn_free */
};

#endif /* FS_RNN_H */
