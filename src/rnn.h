/* The model object behind fs_rnn: configuration and the packed weights (see
 * kernels/kernels.h for the packed layout). The weights are held once, packed;
 * fs_rnn_get_param unpacks them on demand. Only what packing cannot give back
 * is kept as given: the biases of the torch cells (bias_x holds b_ih + b_hh)
 * and the raw FastRNN / FastGRNN scalars (coef holds their sigmoid). */
#ifndef FS_RNN_H
#define FS_RNN_H

#include "fastseq.h"
#include "kernels/kernels.h"

/* A unit's packed weight matrices (its w_*_packed, in this order). */
enum { FS_MAT_IH, FS_MAT_IH_A, FS_MAT_HH, FS_MAT_HN, FS_MAT_HH_A, FS_MAT_HR, FS_MAT_COUNT };

typedef struct fs_rnn_unit { /* one layer, one direction */
    size_t in_size;
    /* The w_*_packed matrices hold the model's dtype (cfg.dtype): fp32, or
     * the quantised layout of kernels.h behind the float pointer. */
    float *w_ih_packed;   /* W (or W_b over the rank-w intermediate): G*hp columns */
    float *w_ih_a_packed; /* low-rank W_a: w_rank (padded) columns */
    float *w_hh_packed;   /* U, U_b, or GRU reset-before's r,z rows: gh*hp columns */
    float *w_hn_packed;   /* GRU reset-before: W_hn (low rank: U_b's n rows), hp columns */
    float *w_hh_a_packed; /* low-rank U_a: u_rank (padded) columns */
    float *w_hr_packed;   /* LSTM projection: pp columns */
    float *bias_x;        /* [G*hp] biases folded into the input projection */
    float *bias_h;        /* [G*hp] biases inside the recurrence (GRU: b_hn, times r) */
    float *vec[5];        /* [hp] each: peephole i, f, o; FastGRNN bias gate, update */
    float coef[4];        /* FastRNN sigmoid(alpha), sigmoid(beta); FastGRNN sigmoid(zeta), sigmoid(nu) */
    float *bias_raw[2];   /* [G*H] b_ih, b_hh as given (RNN, LSTM, GRU with bias); else NULL */
    float *scalar_raw;    /* [2] alpha, beta or zeta, nu as given (FastRNN, FastGRNN); else NULL */
    float *scale[FS_MAT_COUNT]; /* int8 / int4: each matrix's scales (kernels.h); else NULL */
} fs_rnn_unit;

enum { FS_VEC_PI, FS_VEC_PF, FS_VEC_PO, FS_VEC_BIAS_GATE, FS_VEC_BIAS_UPDATE };

struct fs_rnn {
    fs_rnn_config cfg;
    size_t gates;  /* columns per unit in the input projection (G) */
    size_t gh;     /* columns per unit in the main recurrent product */
    size_t dirs;   /* 1 or 2 */
    size_t hp;     /* hidden size rounded up to FS_NB */
    size_t r;      /* features of h: proj_size or hidden size */
    size_t rp;     /* r rounded up: the stride of h state rows */
    size_t wrp, urp; /* low ranks rounded up (0 if full rank) */
    fs_rnn_unit *units; /* [num_layers * dirs], index layer * dirs + direction */
    const char *weights; /* every unit's arrays, one block of weights_bytes */
    size_t weights_bytes;
    int owned;          /* 1: fs_rnn_create's block, released by fs_rnn_free */
    int readonly;       /* 1: weights are the caller's const data (fs_rnn_init_static_weights) */
    fs_acts acts;       /* RNN, LSTM, GRU: the activation of each role, resolved */
    int custom_acts;    /* 1: acts or clip differ from the cell's usual ones */
};

/* 1 if the unit has parameter p in this model's configuration. */
int fs__has_param(const fs_rnn *m, const fs_rnn_unit *u, fs_param p);

/* fs__has_param, and the parameter's PyTorch shape (rows, cols: 1 for a vector). */
int fs__unit_param_shape(const fs_rnn *m, const fs_rnn_unit *u, fs_param p, size_t *rows, size_t *cols);

/* Unpacks parameter p of unit u into dst (rows*cols floats of fs_rnn_param_shape,
 * PyTorch layout); p must be present (fs__has_param). */
void fs__unpack_param(const fs_rnn *m, const fs_rnn_unit *u, fs_param p, float *dst);

static inline size_t fs__round8(size_t n) { return (n + 7) / 8 * 8; }

/* Quantised matrices (rnn_quant.c). Bytes of a packed matrix of `cols`
 * columns (a multiple of 8) and k inputs in dtype, and floats of its scales;
 * 0 on overflow. */
int fs__mat_sizes(int32_t dtype, size_t group, size_t cols, size_t k, size_t *bytes, size_t *scales);

/* [g_count*h][k] PyTorch rows <-> a quantised packed matrix (base, scale).
 * Padding stays zero. */
void fs__quant_pack(int32_t dtype, size_t group, const float *w, void *base, float *scale, size_t g_count,
                    size_t h, size_t k);
void fs__quant_unpack(int32_t dtype, size_t group, const void *base, const float *scale, size_t g_count,
                      size_t h, size_t k, float *w);

/* The stored form of a quantised [g_count*h][k] matrix (fs_rnn_get_param_raw):
 * per row fs__raw_scales_per_row little-endian fp32 scales (all rows' first),
 * then per row fs__raw_row_bytes of codes. mode FS_RAW_READ: packed -> (scales,
 * codes); FS_RAW_CHECK: 0 if a stored value is out of range (nothing written);
 * FS_RAW_STORE: (scales, codes) -> packed, checked before. */
enum { FS_RAW_READ, FS_RAW_CHECK, FS_RAW_STORE };
size_t fs__raw_scales_per_row(int32_t dtype, size_t group, size_t k);
size_t fs__raw_row_bytes(int32_t dtype, size_t k);
int fs__quant_raw(int32_t dtype, size_t group, void *base, float *scale, size_t g_count, size_t h, size_t k,
                  unsigned char *scales, unsigned char *codes, int mode);

#endif /* FS_RNN_H */
