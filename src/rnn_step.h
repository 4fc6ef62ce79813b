/* One time step of one layer-direction, split into phases over blocks of
 * units: shared by the sequence driver and the stream. Within a phase, block
 * ranges are independent (threads may split them); phases need a barrier. */
#ifndef FS_RNN_STEP_H
#define FS_RNN_STEP_H

#include "kernels/kernels.h"
#include "rnn.h"

typedef enum fs_phase {
    FS_PHASE_LOWRANK, /* t = U_a h (low-rank U) */
    FS_PHASE_CELL,    /* recurrent product + cell update */
    FS_PHASE_PROJ,    /* LSTM projection: h = W_hr (o * tanh(c)) */
    FS_PHASE_GRU_N,   /* GRU reset-before: n from W_hn (r * h), then h */
    FS_PHASE_LOWRANK_N /* GRU reset-before, low-rank U: t = U_a (r * h), W_hn's operand */
} fs_phase;

/* The most phases a step has: low rank, cell, U_a (r * h), n (a low-rank U has no projection). */
#define FS_MAX_PHASES 4

typedef struct fs_step {
    const fs_rnn *model;
    const fs_kernels *k;
    const fs_rnn_unit *unit;
    size_t batch;
    const float *gx;      /* input projection of this step, row b at gx + b * ldgx */
    size_t ldgx;
    const int32_t *lengths; /* NULL: every row active */
    size_t t;
    const float *h_prev;  /* [batch][rp] */
    float *h_new;         /* [batch][rp] */
    float *c;             /* [batch][hp], LSTM only, updated in place */
    float *mid;           /* [batch][hp]: LSTM o*tanh(c) before projection; GRU r*h */
    float *z;             /* [batch][hp]: GRU reset-before z */
    float *t_low;         /* [batch][urp]: low-rank U_a h (reset-before GRU: then U_a (r * h)) */
    float *y;             /* output row b at y + b * ldy (r wide); NULL: none */
    size_t ldy;
    /* Training forward: where the step records (rnn_forward.h's fs_record, row
     * b of this step at b * ld_rec rows); rec_acc NULL: not recording. */
    float *rec_acc, *rec_c, *rec_mid, *rec_hn;
    size_t ld_rec;
} fs_step;

/* The phases of a step for this model, with the block count of each; returns how many. */
size_t fs__step_phases(const fs_rnn *m, fs_phase phases[FS_MAX_PHASES], size_t blocks[FS_MAX_PHASES]);

/* Floats of per-thread product scratch a step over `batch` rows needs (int8
 * models: with room for quantised activation rows after the product tile). */
size_t fs__tile_floats(const fs_rnn *m, size_t batch);

/* int8 / int4 models: quantised activation rows (kernels.h's q8_quant_rows),
 * in a thread's tile after its product floats. Laid out as scales [rows], sums
 * [rows], codes [rows][FS_Q8_ROUND(k)] (int4: FS_Q4_ROUND(k)) for the
 * product's k, int4's code sums per group [rows][ceil(k / group)], then one
 * row of k floats (a fine row's remainder). */
typedef struct fs_qscratch {
    char *base;
    size_t rows; /* the capacity in rows: products of more rows run in chunks of this many */
    int ready;   /* 1: holds the product operand already (fs__qa_prepare): fs__wgemm uses it as is */
    int fine;    /* 1: a layer's input: each row quantised twice (docs/quantization.md, fine rows) */
} fs_qscratch;

/* The quantisation scratch of the tile of a step over `batch` rows. */
fs_qscratch fs__qscratch(const fs_rnn *m, size_t batch, float *tile);

/* int8 / int4 models: rows of a (at most qs->rows) quantised into qs, which is then
 * ready; other dtypes: nothing. */
void fs__qa_prepare(const fs_rnn *m, const fs_kernels *k, fs_qscratch *qs, size_t rows, size_t kk, const float *a,
                    size_t lda);

/* Blocks [lo, hi) of one phase; tile: fs__tile_floats of per-thread scratch. */
void fs__step_phase(const fs_step *s, fs_phase phase, size_t lo, size_t hi, float *tile);

/* Batch 1, one thread, not recording: the whole step by the ISA's fused kernel (product and
 * cell per group of blocks in registers; the same bits as the phases); fp32 and int8
 * (tile: the thread's scratch, fs__tile_floats, where h_prev's codes go).
 * Returns 0 when this model, row or ISA has none: run the phases. */
int fs__step_fused(const fs_step *s, float *tile);

/* The product of packed matrix w (a unit's w_*_packed, with its scale[FS_MAT_*])
 * in the model's dtype, blocks [jb, jb + nb): kernels.h's gemm (or its
 * quantised slot) c = bias + a w over `rows` rows of kk inputs, g gates.
 * int8 / int4: a's rows are quantised into qs (unless it is ready with them). */
void fs__wgemm(const fs_rnn *m, const fs_kernels *k, const float *w, const float *scale, size_t rows, size_t kk,
               const float *a, size_t lda, size_t g, size_t jb, size_t nb, const float *bias, float *c, size_t ldc,
               const fs_qscratch *qs);

/* gx rows [0, rows) = input projection of `in` (rows ld_in apart), biases
 * folded; xa: [rows][wrp] scratch for a low-rank W (unused otherwise); qs:
 * the thread's quantisation scratch (int8 / int4). */
void fs__project(const fs_rnn *m, const fs_kernels *k, const fs_rnn_unit *u, size_t rows,
                 const float *in, size_t ld_in, float *xa, float *gx, const fs_qscratch *qs);

/* The same for the columns of unit blocks [jb0, jb1) only (full-rank W). */
void fs__project_blocks(const fs_rnn *m, const fs_kernels *k, const fs_rnn_unit *u, size_t rows,
                        const float *in, size_t ld_in, float *gx, size_t jb0, size_t jb1, const fs_qscratch *qs);

#endif /* FS_RNN_STEP_H */
