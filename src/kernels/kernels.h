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
 *
 * Quantised layout (models of dtype int4, bf16): the same [K][G][8] blocks
 * with narrower elements. bf16: one uint16_t (the upper half of the fp32
 * bits) per element, block stride K*G*8 elements.
 * int8 (the dot layout, for integer dot products): per block, k in groups of
 * four, [ceil(K / 4)][G*8][4] bytes: byte t of (group kg, column col) is
 * q + 128 (1..255, the unsigned operand of vpdpbusd) for k = 4 kg + t; a zmm
 * load is 16 columns x 4 k, a ymm 8. Block stride FS_Q8_ROUND(K) * G * 8 bytes.
 * Bytes past K (and of padded columns) are never read as weights: the
 * activations' codes are 0 there, and padded columns have scale 0. One float
 * scale per column, in the biases' [jb][G][8] order.
 * int4 (the dot layout with two k groups a byte): per block, k in groups of
 * eight, [ceil(K / 8)][G*8][4] bytes: byte t of (octet ko, column col) holds
 * q + 8 (1..15) for k = 8 ko + t in its low nibble and for k = 8 ko + 4 + t in
 * its high one, so an and (low) or a shift and an and (high) gives the int8 dot
 * layout's bytes of k group 2 ko or 2 ko + 1. Block stride FS_Q4_ROUND(K) / 2
 * * G * 8 bytes; nibbles past K are 0 (never read as weights: the activation
 * codes there are 0). Scales per group of `group` consecutive k (32 or 64, a
 * multiple of 8; the last may be shorter) and column: per block
 * [ceil(K / group)][G][8] floats. The value of an element is scale * q.
 */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "fastseq.h"

#define FS_NB 8

/* The int8 dot path: k rounded up to whole groups of four, and the largest
 * reduction whose exact sum of products (|q_w q_a| <= 127 * 127 each) fits
 * in int32, which the products accumulate in. */
#define FS_Q8_ROUND(k) (((k) + 3) / 4 * 4)
#define FS_Q8_MAX_K ((size_t)131072)
/* int4: k rounded up to whole octets (two k groups of four a byte). */
#define FS_Q4_ROUND(k) (((k) + 7) / 8 * 8)
/* Activation rows with max |a| below this count as zero (codes 0, scale 0):
 * then 127 / max |a| and max |a| / 127 are normal floats. */
#define FS_Q8_TINY 0x1p-100f

/*
 * Summation order: what makes every result independent of the thread count.
 * An output element of a product (gemm, the fused batch-1 steps) is summed the
 * same way whatever m, nblocks, the row's position or the code path that
 * computes it, so any split of rows or blocks over threads gives the same
 * bits. SIMD levels: S = FS_PARTIALS(g) partial sums for blocks of g gates;
 * partial s takes the products of k = s, s + S, s + 2S, ... below k - k % S,
 * in increasing k; partial 0 starts from the bias and then takes the k % S
 * tail products in order; the result is ((p0 + p1) + p2) + p3 (S chains also
 * keep a lone row, batch 1, from waiting on FMA latency). The generic level
 * sums each element's products in order. Drivers split work only by rows or
 * unit blocks, never along k; sums over rows (backward's extra parameters)
 * run in row order after the split.
 */
#define FS_PARTIALS(g) ((g) == 1 ? 4 : 2)

/* For the SIMD kernels' small helpers. */
#define FS_INLINE static inline __attribute__((always_inline))

/* Trainable cell kinds: the index into the record and backward slots.
 * LSTM_EXT: peepholes and/or coupled gates; GRU_RB: reset before the product;
 * *_ACT: chosen activations or clip (fs_acts), any variant of the cell. */
enum {
    FS_TRAIN_RNN, FS_TRAIN_LSTM, FS_TRAIN_GRU, FS_TRAIN_LSTM_EXT, FS_TRAIN_GRU_RB,
    FS_TRAIN_FASTRNN, FS_TRAIN_FASTGRNN,
    FS_TRAIN_RNN_ACT, FS_TRAIN_LSTM_ACT, FS_TRAIN_GRU_ACT, FS_TRAIN_GRU_RB_ACT, FS_TRAIN_UGRNN, FS_TRAIN_KINDS
};

/* The activations of a cell per role (fs_act_role): fs_act kinds with
 * hard_sigmoid's alpha, beta; clip > 0 clips the inputs of roles f and g to
 * [-clip, clip]. FastRNN / FastGRNN: role f is the gate z, role g the update
 * h~ (their clip is 0). */
typedef struct fs_acts {
    int kind[3];
    float alpha[3], beta[3];
    float clip;
} fs_acts;

/* A cell's options and per-unit parameters for its record and backward
 * kernels (NULL / 0 where a cell has none): values, never a model. */
typedef struct fs_cell_params {
    int relu;                  /* RNN: relu, else tanh */
    int coupled;               /* LSTM: f = 1 - i (gate panels i, g, o) */
    const float *pi, *pf, *po; /* LSTM peepholes, [H] each */
    const float *bg, *bu;      /* FastGRNN bias gate, bias update, [H] each */
    const float *whn;          /* reset-before GRU: W_hn packed (layout above, one gate, K = H; low-rank U:
                                  U_b's n rows, K = u_rank) */
    const float *ua;           /* reset-before GRU with low-rank U: U_a packed (K = H); NULL: full rank */
    size_t u_rank;             /* ... and its rank */
    const fs_acts *acts;       /* the *_ACT kinds, FastRNN, FastGRNN: the activations and clip */
    float a, b;                /* FastRNN sigmoid(alpha), sigmoid(beta); FastGRNN sigmoid(zeta), sigmoid(nu) */
} fs_cell_params;

/* Training, one row of H units (rnn_backward.c drives them):
 * record: from what the forward recorded -- gx (input projection + folded
 *   biases) and acc (recurrent product + bias_h), packed column order, G and
 *   gh panels per block; hn = W_hn (r h) of a reset-before GRU; h_prev, c_prev
 *   (hp-padded rows) -- the activations backward needs, act[slot][H];
 * backward: from act, h_prev, c_prev and dh = d loss / d h_new, dc = d loss /
 *   d c_new: dgx = d loss / d (input pre-activations), [G*H] in PyTorch row
 *   order (gate-major: row g*H + j), dgh the same for the recurrent product
 *   (cells whose dgh differs from dgx), and in place dh = the part of
 *   d loss / d h_prev that bypasses W_hh, dc = d loss / d c_prev; `extra`
 *   accumulates the gradients of the cell's own parameters (rnn_backward.h).
 * work: 2 * hp + round8(u_rank) floats of scratch. */
typedef void (*fs_cell_record_fn)(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                  const float *hn, const float *h_prev, const float *c_prev, float *act);
typedef void (*fs_cell_backward_fn)(size_t H, const fs_cell_params *cp, const float *act, const float *h_prev,
                                    const float *c_prev, float *dh, float *dc, float *dgx, float *dgh,
                                    float *extra, float *work);

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
    /* LSTM with peepholes (pi, pf, po; NULL: none) and/or coupled gates
     * (coupled: panels i, g, o and f = 1 - i; else i, f, g, o). */
    void (*lstm_cell_ext)(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                          size_t ldc, float *h, size_t ldh, const float *pi, const float *pf,
                          const float *po, int coupled);
    /* GRU, reset before the product, first half: from the r, z panels of acc
     * ([m][2*8]) and gx ([r, z, n] blocks), rh = r * h_prev and z. */
    void (*gru_rz_cell)(size_t m, const float *gx, size_t ldgx, const float *acc,
                        const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld);
    /* ... second half: h = (1 - z) tanh(gx_n + acc) + z h_prev (acc: [m][8]). */
    void (*gru_n_cell)(size_t m, const float *gx_n, size_t ldgx, const float *acc, const float *z,
                       size_t ldz, const float *h_prev, size_t ldhp, float *h, size_t ldh);
    /* FastRNN: h = a * act(gx + acc) + b * h_prev (a = sigmoid(alpha), b = sigmoid(beta));
     * act: role g of acts. */
    void (*fastrnn_cell)(size_t m, const fs_acts *acts, const float *gx, size_t ldgx, const float *acc,
                         const float *h_prev, size_t ldhp, float *h, size_t ldh, float a, float b);
    /* FastGRNN: pre = gx + acc; z = f(pre + bg); u = g(pre + bu) (roles f, g of acts);
     * h = z h_prev + (zeta (1 - z) + nu) u (zeta, nu already through sigmoid). */
    void (*fastgrnn_cell)(size_t m, const fs_acts *acts, const float *gx, size_t ldgx,
                          const float *acc, const float *bg, const float *bu, const float *h_prev,
                          size_t ldhp, float *h, size_t ldh, float zeta, float nu);
    /* UGRNN (gx, acc: [z, c] panels): z = f(gx + acc), c = g(gx + acc) (roles f, g of
     * acts, no clip); h = z h_prev + (1 - z) c. Generic and AVX2. */
    void (*ugrnn_cell)(size_t m, const fs_acts *acts, const float *gx, size_t ldgx, const float *acc,
                       const float *h_prev, size_t ldhp, float *h, size_t ldh);
    /* The cells above with chosen activations (fs_acts; the cell's usual
     * ones take the slots above, and their fused batch-1 steps). Generic and
     * AVX2 (which the AVX-512 level keeps). */
    void (*rnn_cell_act)(size_t m, const fs_acts *a, const float *gx, size_t ldgx, const float *acc,
                         float *h, size_t ldh);
    void (*lstm_cell_act)(size_t m, const fs_acts *a, const float *gx, size_t ldgx, const float *acc,
                          float *c, size_t ldc, float *h, size_t ldh, const float *pi, const float *pf,
                          const float *po, int coupled);
    void (*gru_cell_act)(size_t m, const fs_acts *a, const float *gx, size_t ldgx, const float *acc,
                         const float *h_prev, size_t ldhp, float *h, size_t ldh);
    void (*gru_rz_cell_act)(size_t m, const fs_acts *a, const float *gx, size_t ldgx, const float *acc,
                            const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld);
    void (*gru_n_cell_act)(size_t m, const fs_acts *a, const float *gx_n, size_t ldgx, const float *acc,
                           const float *z, size_t ldz, const float *h_prev, size_t ldhp, float *h, size_t ldh);
    /* Batch 1, a whole step: the recurrent product (k inputs h_prev, nblocks
     * packed blocks w; GRU: plus bias_h) fused with the cell update, the same
     * bits as gemm + the cell kernel above. gx: the step's input projection
     * [nblocks][G][8]; h_new: [nblocks * 8]; the GRU also reads h_prev as the
     * previous state, the LSTM updates c. NULL where an ISA has none. */
    void (*rnn_step1)(size_t k, size_t nblocks, int relu, const float *w, const float *gx,
                      const float *h_prev, float *h_new);
    void (*lstm_step1)(size_t k, size_t nblocks, const float *w, const float *gx, const float *h_prev,
                       float *h_new, float *c);
    void (*gru_step1)(size_t k, size_t nblocks, const float *w, const float *bias_h, const float *gx,
                      const float *h_prev, float *h_new);
    /* int8 dot path (kernels/qdot/). q8_quant_rows: each of m rows of k
     * floats quantised: amax = max |a|, scale[i] = amax / 127, q = a * (127 /
     * amax) (one multiply by that reciprocal) rounded to nearest even, clamped
     * to [-127, 127]; codes k .. FS_Q8_ROUND(k) are 0; sum[i] = the row's sum
     * of codes. A row with amax < FS_Q8_TINY: codes 0, scale 0; a row with an
     * Inf or NaN: codes 0, scale NaN (its products are NaN). Every level gives the same bits.
     * gemm_q8 (b: the int8 dot layout): with acc = sum_k (q_w + 128) q_a in
     * int32, c[i*ldc + q] = bias[q] + (ascale[i] * scale[q]) * (float)(acc -
     * 128 * asum[i]), that order of float operations (no FMA) on every level:
     * the integer part is exact (k <= FS_Q8_MAX_K), so every level, and any
     * split of rows or blocks over threads, gives the generic level's bits.
     * aq rows ldq >= FS_Q8_ROUND(k) apart. bias may be NULL (zero).
     * accumulate: c's own value takes bias's place (c[i*ldc + q] + ...; bias
     * unused): a second product added to a first, as the fine rows do. */
    void (*q8_quant_rows)(size_t m, size_t k, const float *a, size_t lda, int8_t *q, size_t ldq, float *scale,
                          int32_t *sum);
    void (*gemm_q8)(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale, const int32_t *asum,
                    const uint8_t *b, const float *scale, size_t g, size_t nblocks, const float *bias, float *c,
                    size_t ldc, int accumulate);
    /* int4 dot path (kernels/qdot/; b: the int4 dot layout, aq: rows as
     * q8_quant_rows gives them, codes 0 up to FS_Q4_ROUND(k), ldq >= that;
     * gsum: per row (ldgs apart) the sum of its codes in each group of k):
     * per group gr, x = (float)(sum_{k in gr} (q_w + 8) q_a - 8 * gsum[gr]) in
     * int32 (exact), f = fma(scale[gr][q], x, f) over the groups in order from
     * f = 0; then c[i*ldc + q] = bias[q] + ascale[i] * f (no FMA), the same
     * operations on every level, so every level gives the generic bits.
     * accumulate, bias: as gemm_q8. */
    void (*gemm_q4)(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale, const int32_t *gsum,
                    size_t ldgs, const uint8_t *b, const float *scale, size_t group, size_t g, size_t nblocks,
                    const float *bias, float *c, size_t ldc, int accumulate);
    /* Quantised weights, weight-only: gemm_bf16, as gemm with b's elements
     * bf16 (widened exactly to fp32); bias may be NULL (zero). SIMD levels
     * keep gemm's order (FS_PARTIALS). */
    void (*gemm_bf16)(size_t m, size_t k, const float *a, size_t lda, const uint16_t *b, size_t g,
                      size_t nblocks, const float *bias, float *c, size_t ldc);
    /* Blocking parameter: the gates per block (8 columns each) of the widest
     * B-operand panels backward's GEMMs run fastest on (1, 2 or 4). */
    size_t panel_gates;
    /* y[i] = act(x[i]) for i < n, act FS_ACT_SIGMOID or FS_ACT_TANH (the tree
     * cells' gates; any element computed the same way at any position). */
    void (*vact)(size_t n, int act, const float *x, float *y);
    /* Training: per trainable cell kind (FS_TRAIN_*), see above. */
    fs_cell_record_fn cell_record[FS_TRAIN_KINDS];
    fs_cell_backward_fn cell_backward[FS_TRAIN_KINDS];
    /* Batch 1, int8 (the dot layout): the fused steps above from h_prev's
     * quantised row (q8_quant_rows of one row of k: codes hq, FS_Q8_ROUND(k)
     * of them, scale hs, sum hsum) and w's column scales: the same bits as
     * gemm_q8 (one row, every block; the GRU with bias bias_h, may be NULL) +
     * the cell kernel. NULL where a level has none. */
    void (*rnn_step1_q8)(size_t k, size_t nblocks, int relu, const int8_t *hq, float hs, int32_t hsum,
                         const uint8_t *w, const float *scale, const float *gx, float *h_new);
    void (*lstm_step1_q8)(size_t k, size_t nblocks, const int8_t *hq, float hs, int32_t hsum, const uint8_t *w,
                          const float *scale, const float *gx, float *h_new, float *c);
    void (*gru_step1_q8)(size_t k, size_t nblocks, const int8_t *hq, float hs, int32_t hsum, const uint8_t *w,
                         const float *scale, const float *bias_h, const float *gx, const float *h_prev, float *h_new);
    /* int8: one row's coarse and fine codes (docs/quantization.md, fine rows: q1,
     * s1, sum1 and q2, s2, sum2 as q8_quant_rows gives them) times nblocks blocks of g <= 4
     * gates in one pass over the weights: the same bits as gemm_q8 of the first (bias may
     * be NULL) then gemm_q8 of the second accumulating. NULL where a level has none. */
    void (*gemm_q8_fine1)(size_t k, const int8_t *q1, float s1, int32_t sum1, const int8_t *q2, float s2,
                          int32_t sum2, const uint8_t *b, const float *scale, size_t g, size_t nblocks,
                          const float *bias, float *c);
} fs_kernels;

/* The table for the active ISA; initialised once on first use. */
const fs_kernels *fs__kernels(void);

/* The fillers, one per kernel file (kernels/<op>/<level>.c), called by
 * dispatch.c in level order: generic fills every slot (BLIS style), each
 * higher level overrides what it improves. */
void fs__gemm_init_generic(fs_kernels *k);
void fs__cells_init_generic(fs_kernels *k);
void fs__train_cells_init_generic(fs_kernels *k);
void fs__vact_init_generic(fs_kernels *k);
void fs__quant_init_generic(fs_kernels *k);
void fs__qdot_init_generic(fs_kernels *k);
#if defined(FS_HAVE_AVX2)
void fs__qdot_init_avx2(fs_kernels *k);
void fs__quant_init_avx2(fs_kernels *k);
void fs__gemm_init_avx2(fs_kernels *k);
void fs__cells_init_avx2(fs_kernels *k);
void fs__train_cells_init_avx2(fs_kernels *k);
void fs__vact_init_avx2(fs_kernels *k);
#endif
#if defined(FS_HAVE_AVX512)
void fs__gemm_init_avx512(fs_kernels *k);
void fs__cells_init_avx512(fs_kernels *k); /* the plain cells; peephole/coupled LSTM, FastGRNN, training stay avx2 */
void fs__step1_init_avx512(fs_kernels *k); /* the fused batch-1 steps */
void fs__quant_init_avx512(fs_kernels *k);
void fs__train_cells_init_avx512(fs_kernels *k); /* the LSTM record step; other training cells stay avx2 */
void fs__vact_init_avx512(fs_kernels *k);
void fs__qdot_init_avx512(fs_kernels *k);       /* the activation rows */
void fs__qdot_init_avx512vnni(fs_kernels *k);   /* the int8 products, only where the CPU has AVX512_VNNI (else avx2's) */
void fs__step1_q8_init_avx512vnni(fs_kernels *k); /* the fused batch-1 int8 steps, likewise only with AVX512_VNNI */
#endif

#if defined(FS_HAVE_NEON)
void fs__gemm_init_neon(fs_kernels *k);
void fs__cells_init_neon(fs_kernels *k);
void fs__train_cells_init_neon(fs_kernels *k); /* the records; backward stays generic (compiler-vectorised) */
#endif

/* aarch64's optional features for the kernels that need them (dotprod: sdot /
 * udot; bf16: bfdot / bfmmla; i8mm: smmla / usmmla), read once from the
 * kernel's hwcaps (getauxval); 0 elsewhere (kernels/arm_features.c). */
enum { FS_ARM_DOTPROD = 1u << 0, FS_ARM_BF16 = 1u << 1, FS_ARM_I8MM = 1u << 2 };
unsigned fs__arm_features(void);

#endif /* FS_KERNELS_H */
