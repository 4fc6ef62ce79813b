/* The recurrent step: product with the packed W_hh per block of 8 units, then
 * the fused cell update, with packed-sequence masking. */
#include <string.h>

#include "rnn_step.h"

static int is_active(const int32_t *lengths, size_t t, size_t b) {
    return !lengths || t < (size_t)lengths[b];
}

static void cell_rows(const fs_step *s, size_t jb, size_t b0, size_t b1, const float *tile) {
    const fs_rnn *m = s->model;
    const size_t G = m->gates, hp = m->hp;
    const float *gx = s->gx + b0 * s->ldgx + jb * G * FS_NB;
    const float *acc = tile + b0 * G * FS_NB;
    float *hn = s->h_new + b0 * hp + jb * FS_NB;
    switch (m->cfg.cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU:
        s->k->rnn_cell(b1 - b0, m->cfg.cell == FS_CELL_RNN_RELU, gx, s->ldgx, acc, hn, hp);
        break;
    case FS_CELL_LSTM:
        s->k->lstm_cell(b1 - b0, gx, s->ldgx, acc, s->c + b0 * hp + jb * FS_NB, hp, hn, hp);
        break;
    case FS_CELL_GRU:
        s->k->gru_cell(b1 - b0, gx, s->ldgx, acc, s->h_prev + b0 * hp + jb * FS_NB, hp, hn, hp);
        break;
    }
}

void fs__step_blocks(const fs_step *s, size_t jb0, size_t jb1, float *tile) {
    const fs_rnn *m = s->model;
    const size_t G = m->gates, H = (size_t)m->cfg.hidden_size, hp = m->hp, B = s->batch;
    const float *bias_h = m->cfg.cell == FS_CELL_GRU ? s->unit->bias_h : NULL;
    for (size_t jb = jb0; jb < jb1; jb++) {
        s->k->gemm(B, H, s->h_prev, hp, s->unit->w_hh_packed + jb * G * H * FS_NB, G, 1,
                   bias_h ? bias_h + jb * G * FS_NB : NULL, tile, G * FS_NB);
        const size_t j0 = jb * FS_NB, width = (H - j0 < FS_NB ? H - j0 : FS_NB);
        for (size_t b0 = 0; b0 < B;) {
            if (!is_active(s->lengths, s->t, b0)) {
                /* a finished sequence keeps its state and outputs zeros */
                memcpy(s->h_new + b0 * hp + j0, s->h_prev + b0 * hp + j0, FS_NB * sizeof(float));
                if (s->y) memset(s->y + b0 * s->ldy + j0, 0, width * sizeof(float));
                b0++;
                continue;
            }
            size_t b1 = b0 + 1;
            while (b1 < B && is_active(s->lengths, s->t, b1)) b1++;
            cell_rows(s, jb, b0, b1, tile);
            if (s->y)
                for (size_t b = b0; b < b1; b++)
                    memcpy(s->y + b * s->ldy + j0, s->h_new + b * hp + j0, width * sizeof(float));
            b0 = b1;
        }
    }
}
