/* One time step of one layer-direction, over a range of unit blocks: shared by
 * the sequence driver and the stream. */
#ifndef FS_RNN_STEP_H
#define FS_RNN_STEP_H

#include "kernels/kernels.h"
#include "rnn.h"

typedef struct fs_step {
    const fs_rnn *model;
    const fs_kernels *k;
    const fs_rnn_unit *unit;
    size_t batch;
    const float *gx;      /* input projection of this step, row b at gx + b * ldgx */
    size_t ldgx;
    const int32_t *lengths; /* NULL: every row active */
    size_t t;
    const float *h_prev;  /* [batch][hp] */
    float *h_new;         /* [batch][hp] */
    float *c;             /* [batch][hp], LSTM only, updated in place */
    float *y;             /* output row b at y + b * ldy (hidden_size wide); NULL: none */
    size_t ldy;
} fs_step;

/* Blocks [jb0, jb1) of the step, using tile ([batch][G*8] floats) as scratch.
 * Writes h_new (and c, y) for those blocks only, so ranges may run on
 * different threads. */
void fs__step_blocks(const fs_step *s, size_t jb0, size_t jb1, float *tile);

#endif /* FS_RNN_STEP_H */
