/* The recurrent step: products with packed weights per block of 8 units, the
 * fused cell update, packed-sequence masking. */
#include <string.h>

#include "rnn_step.h"

static int is_active(const int32_t *lengths, size_t t, size_t b) {
    return !lengths || t < (size_t)lengths[b];
}

size_t fs__step_phases(const fs_rnn *m, fs_phase phases[FS_MAX_PHASES], size_t blocks[FS_MAX_PHASES]) {
    size_t n = 0;
    if (m->cfg.u_rank) phases[n] = FS_PHASE_LOWRANK, blocks[n++] = m->urp / FS_NB;
    phases[n] = FS_PHASE_CELL, blocks[n++] = m->hp / FS_NB;
    if (m->cfg.proj_size) phases[n] = FS_PHASE_PROJ, blocks[n++] = m->rp / FS_NB;
    if (m->cfg.cell == FS_CELL_GRU && m->cfg.reset_before) {
        if (m->cfg.u_rank) phases[n] = FS_PHASE_LOWRANK_N, blocks[n++] = m->urp / FS_NB; /* t_low is free again */
        phases[n] = FS_PHASE_GRU_N, blocks[n++] = m->hp / FS_NB;
    }
    return n;
}

/* A single row runs the product of many blocks in one call (independent FMA
 * chains across blocks hide their latency), so its tile spans every block. */
static size_t product_floats(const fs_rnn *m, size_t batch) {
    return batch == 1 ? m->gates * m->hp : batch * m->gates * FS_NB;
}

/* int8: rows of quantised activations a tile holds: a step's rows, and at
 * least enough that the input projection's rows run in few chunks. */
#define FS_Q8_MIN_ROWS 16
static size_t q8_rows(size_t batch) { return batch > FS_Q8_MIN_ROWS ? batch : FS_Q8_MIN_ROWS; }

/* The widest k of the model's products: inputs, the features inner layers read, H. */
static size_t q8_widest_k(const fs_rnn *m) {
    const fs_rnn_config *c = &m->cfg;
    size_t k = (size_t)c->input_size > (size_t)c->hidden_size ? (size_t)c->input_size : (size_t)c->hidden_size;
    return k > m->dirs * m->r ? k : m->dirs * m->r;
}

/* The integer dot paths' activation rows for a product of kk inputs: codes
 * ldq apart (int4: whole octets) and, for int4, each row's code sums per group. */
typedef struct qform {
    size_t ldq, group, ldgs; /* group, ldgs: 0 for int8 */
} qform;
static qform qform_of(const fs_rnn *m, size_t kk) {
    if (m->cfg.dtype != FS_DTYPE_INT4) return (qform){FS_Q8_ROUND(kk), 0, 0};
    const size_t group = (size_t)m->cfg.group_size;
    return (qform){FS_Q4_ROUND(kk), group, (kk + group - 1) / group};
}

size_t fs__tile_floats(const fs_rnn *m, size_t batch) {
    const size_t widest = q8_widest_k(m);
    const qform f = qform_of(m, widest);
    /* scales, sums, codes and group sums per row; one row of floats for the fine rows' remainders */
    const int dot = m->cfg.dtype == FS_DTYPE_INT8 || m->cfg.dtype == FS_DTYPE_INT4;
    const size_t q8 = dot ? q8_rows(batch) * (8 + f.ldq + 4 * f.ldgs) + widest * 4 : 0;
    return product_floats(m, batch) + (q8 + sizeof(float) - 1) / sizeof(float);
}

fs_qscratch fs__qscratch(const fs_rnn *m, size_t batch, float *tile) {
    return (fs_qscratch){(char *)(tile + product_floats(m, batch)), q8_rows(batch), 0, 0};
}

/* The parts of a quantisation scratch: slot i's scale, sum, codes and group sums, the remainder row. */
static float *qa_scale(const fs_qscratch *qs, size_t i) { return (float *)qs->base + i; }
static int32_t *qa_sum(const fs_qscratch *qs, size_t i) { return (int32_t *)(qs->base + qs->rows * 4) + i; }
static int8_t *qa_codes(const fs_qscratch *qs, size_t i, qform f) { return (int8_t *)(qs->base + qs->rows * 8) + i * f.ldq; }
static int32_t *qa_gsum(const fs_qscratch *qs, size_t i, qform f) {
    return (int32_t *)(qs->base + qs->rows * (8 + f.ldq)) + i * f.ldgs;
}
static float *qa_rest(const fs_qscratch *qs, qform f) { return (float *)(qs->base + qs->rows * (8 + f.ldq + 4 * f.ldgs)); }

/* n rows of a quantised into slots lo..: q8_quant_rows, then for int4 the
 * codes up to the octet zeroed and the group sums. */
static void qa_rows(const fs_kernels *k, const fs_qscratch *qs, qform f, size_t n, size_t kk, const float *a,
                    size_t lda, size_t lo) {
    k->q8_quant_rows(n, kk, a, lda, qa_codes(qs, lo, f), f.ldq, qa_scale(qs, lo), qa_sum(qs, lo));
    for (size_t i = lo; f.group && i < lo + n; i++) {
        int8_t *q = qa_codes(qs, i, f);
        int32_t *gs = qa_gsum(qs, i, f);
        for (size_t j = FS_Q8_ROUND(kk); j < f.ldq; j++) q[j] = 0;
        for (size_t gr = 0; gr < f.ldgs; gr++) {
            const size_t k1 = (gr + 1) * f.group < kk ? (gr + 1) * f.group : kk;
            int32_t sum = 0;
            for (size_t j = gr * f.group; j < k1; j++) sum += q[j];
            gs[gr] = sum;
        }
    }
}

/* The product of n rows from slot lo: gemm_q8, or gemm_q4 with the group sums. */
static void qa_gemm(const fs_kernels *k, const fs_qscratch *qs, qform f, size_t lo, size_t n, size_t kk,
                    const uint8_t *w, const float *scale, size_t g, size_t nb, const float *bias, float *c, size_t ldc,
                    int accumulate) {
    if (f.group)
        k->gemm_q4(n, kk, qa_codes(qs, lo, f), f.ldq, qa_scale(qs, lo), qa_gsum(qs, lo, f), f.ldgs, w, scale, f.group,
                   g, nb, bias, c, ldc, accumulate);
    else
        k->gemm_q8(n, kk, qa_codes(qs, lo, f), f.ldq, qa_scale(qs, lo), qa_sum(qs, lo), w, scale, g, nb, bias, c, ldc,
                   accumulate);
}

void fs__qa_prepare(const fs_rnn *m, const fs_kernels *k, fs_qscratch *qs, size_t rows, size_t kk, const float *a,
                    size_t lda) {
    if (m->cfg.dtype != FS_DTYPE_INT8 && m->cfg.dtype != FS_DTYPE_INT4) return;
    qa_rows(k, qs, qform_of(m, kk), rows, kk, a, lda, 0);
    qs->ready = 1;
}

/* Fine rows: each row's remainder a - s q (fp32, the same operations on every
 * level) quantised again into slot lo + i. */
static void q8_fine_rows(const fs_kernels *k, const fs_qscratch *qs, qform f, size_t n, size_t kk, const float *a,
                         size_t lda, size_t lo) {
    float *rest = qa_rest(qs, f);
    for (size_t i = 0; i < n; i++) {
        const int8_t *q = qa_codes(qs, i, f);
        const float s = *qa_scale(qs, i);
        for (size_t j = 0; j < kk; j++) rest[j] = a[i * lda + j] - s * (float)q[j];
        qa_rows(k, qs, f, 1, kk, rest, kk, lo + i);
    }
}

/* int8 / int4: the product in chunks of the scratch's rows, each quantised
 * once for every block; fine: half the rows a chunk, each a coarse and a fine
 * row, the fine product added to the coarse one. */
static void q8_product(const fs_kernels *k, qform f, const uint8_t *w, const float *scale, size_t rows, size_t kk,
                       const float *a, size_t lda, size_t g, size_t nb, const float *bias, float *c, size_t ldc,
                       const fs_qscratch *qs) {
    const size_t chunk = qs->fine ? qs->rows / 2 : qs->rows;
    for (size_t r0 = 0; r0 < rows; r0 += chunk) {
        const size_t n = rows - r0 < chunk ? rows - r0 : chunk;
        if (!qs->ready) qa_rows(k, qs, f, n, kk, a + r0 * lda, lda, 0);
        if (qs->fine && !f.group && g <= 4 && k->gemm_q8_fine1) { /* int8 row by row, both products in one pass */
            q8_fine_rows(k, qs, f, n, kk, a + r0 * lda, lda, chunk);
            for (size_t i = 0; i < n; i++)
                k->gemm_q8_fine1(kk, qa_codes(qs, i, f), *qa_scale(qs, i), *qa_sum(qs, i), qa_codes(qs, chunk + i, f),
                                 *qa_scale(qs, chunk + i), *qa_sum(qs, chunk + i), w, scale, g, nb, bias,
                                 c + (r0 + i) * ldc);
            continue;
        }
        qa_gemm(k, qs, f, 0, n, kk, w, scale, g, nb, bias, c + r0 * ldc, ldc, 0);
        if (!qs->fine) continue;
        q8_fine_rows(k, qs, f, n, kk, a + r0 * lda, lda, chunk);
        qa_gemm(k, qs, f, chunk, n, kk, w, scale, g, nb, NULL, c + r0 * ldc, ldc, 1);
    }
}

void fs__wgemm(const fs_rnn *m, const fs_kernels *k, const float *w, const float *scale, size_t rows, size_t kk,
               const float *a, size_t lda, size_t g, size_t jb, size_t nb, const float *bias, float *c, size_t ldc,
               const fs_qscratch *qs) {
    const size_t width = g * FS_NB, group = (size_t)m->cfg.group_size;
    switch (m->cfg.dtype) {
    case FS_DTYPE_INT8:
        q8_product(k, qform_of(m, kk), (const uint8_t *)w + jb * FS_Q8_ROUND(kk) * width, scale + jb * width, rows, kk,
                   a, lda, g, nb, bias, c, ldc, qs);
        break;
    case FS_DTYPE_INT4:
        q8_product(k, qform_of(m, kk), (const uint8_t *)w + jb * FS_Q4_ROUND(kk) / 2 * width,
                   scale + jb * ((kk + group - 1) / group) * width, rows, kk, a, lda, g, nb, bias, c, ldc, qs);
        break;
    case FS_DTYPE_BF16:
        k->gemm_bf16(rows, kk, a, lda, (const uint16_t *)w + jb * kk * width, g, nb, bias, c, ldc);
        break;
    default: k->gemm(rows, kk, a, lda, w + jb * kk * width, g, nb, bias, c, ldc);
    }
}

/* A layer's input rows (int8): fine rows, see docs/quantization.md. */
static fs_qscratch fine_rows(const fs_qscratch *qs) {
    fs_qscratch f = *qs;
    f.fine = 1;
    return f;
}

void fs__project_blocks(const fs_rnn *m, const fs_kernels *k, const fs_rnn_unit *u, size_t rows,
                        const float *in, size_t ld_in, float *gx, size_t jb0, size_t jb1, const fs_qscratch *qs) {
    const size_t w = m->gates * FS_NB;
    const fs_qscratch fine = fine_rows(qs);
    if (jb1 > jb0)
        fs__wgemm(m, k, u->w_ih_packed, u->scale[FS_MAT_IH], rows, u->in_size, in, ld_in, m->gates, jb0, jb1 - jb0,
                  u->bias_x + jb0 * w, gx + jb0 * w, m->gates * m->hp, &fine);
}

void fs__project(const fs_rnn *m, const fs_kernels *k, const fs_rnn_unit *u, size_t rows,
                 const float *in, size_t ld_in, float *xa, float *gx, const fs_qscratch *qs) {
    const size_t G = m->gates, hp = m->hp;
    if (m->cfg.w_rank) {
        const fs_qscratch fine = fine_rows(qs);
        fs__wgemm(m, k, u->w_ih_a_packed, u->scale[FS_MAT_IH_A], rows, u->in_size, in, ld_in, 1, 0, m->wrp / FS_NB,
                  NULL, xa, m->wrp, &fine);
        fs__wgemm(m, k, u->w_ih_packed, u->scale[FS_MAT_IH], rows, (size_t)m->cfg.w_rank, xa, m->wrp, G, 0,
                  hp / FS_NB, u->bias_x, gx, G * hp, qs);
    } else {
        fs__project_blocks(m, k, u, rows, in, ld_in, gx, 0, hp / FS_NB, qs);
    }
}

/* The cell update of active rows [b0, b1) for blocks [jb, jb + nb); acc: the
 * product of those blocks. Several blocks come with one row only (batch 1):
 * consecutive blocks then lie a fixed stride apart in every operand, so the
 * kernel takes them as its rows, in one call. */
static void cell_rows(const fs_step *s, size_t jb, size_t nb, size_t b0, size_t b1, const float *acc) {
    const fs_rnn *m = s->model;
    const fs_kernels *k = s->k;
    const fs_rnn_unit *u = s->unit;
    const fs_rnn_config *c = &m->cfg;
    const size_t hp = m->hp, rp = m->rp, j0 = jb * FS_NB;
    const int by_block = nb > 1; /* then b1 == b0 + 1 */
    const size_t n = by_block ? nb : b1 - b0;
    const size_t ldgx = by_block ? m->gates * FS_NB : s->ldgx;
    const size_t ldh = by_block ? FS_NB : rp, ldc = by_block ? FS_NB : hp;
    const float *gx = s->gx + b0 * s->ldgx + jb * m->gates * FS_NB;
    const float *hprev = s->h_prev + b0 * rp + j0;
    float *hn = s->h_new + b0 * rp + j0;
    acc += b0 * m->gh * FS_NB;
    const fs_acts *a = m->custom_acts ? &m->acts : NULL; /* chosen activations: the *_act cells */
    switch (c->cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU:
        if (a) k->rnn_cell_act(n, a, gx, ldgx, acc, hn, ldh);
        else k->rnn_cell(n, c->cell == FS_CELL_RNN_RELU, gx, ldgx, acc, hn, ldh);
        break;
    case FS_CELL_LSTM: {
        float *cc = s->c + b0 * hp + j0;
        float *dst = c->proj_size ? s->mid + b0 * hp + j0 : hn; /* projected after all blocks */
        const size_t ld = by_block ? FS_NB : c->proj_size ? hp : rp;
        if (!a && !c->peephole && !c->coupled) {
            k->lstm_cell(n, gx, ldgx, acc, cc, ldc, dst, ld);
            break;
        }
        for (size_t i = 0; i < nb; i++) { /* per-block peephole vectors: a block per call */
            const size_t j = j0 + i * FS_NB, o = i * FS_NB;
            const float *pi = c->peephole ? u->vec[FS_VEC_PI] + j : NULL;
            const float *pf = c->peephole ? u->vec[FS_VEC_PF] + j : NULL;
            const float *po = c->peephole ? u->vec[FS_VEC_PO] + j : NULL;
            const float *gxi = gx + i * m->gates * FS_NB, *acci = acc + i * m->gh * FS_NB;
            const size_t ldd = c->proj_size ? hp : rp;
            if (a) k->lstm_cell_act(b1 - b0, a, gxi, s->ldgx, acci, cc + o, hp, dst + o, ldd, pi, pf, po, c->coupled);
            else k->lstm_cell_ext(b1 - b0, gxi, s->ldgx, acci, cc + o, hp, dst + o, ldd, pi, pf, po, c->coupled);
        }
        break;
    }
    case FS_CELL_GRU:
        if (c->reset_before && a)
            k->gru_rz_cell_act(n, a, gx, ldgx, acc, hprev, ldh, s->mid + b0 * hp + j0, s->z + b0 * hp + j0, ldc);
        else if (c->reset_before)
            k->gru_rz_cell(n, gx, ldgx, acc, hprev, ldh, s->mid + b0 * hp + j0, s->z + b0 * hp + j0, ldc);
        else if (a)
            k->gru_cell_act(n, a, gx, ldgx, acc, hprev, ldh, hn, ldh);
        else
            k->gru_cell(n, gx, ldgx, acc, hprev, ldh, hn, ldh);
        break;
    case FS_CELL_UGRNN:
        k->ugrnn_cell(n, &m->acts, gx, ldgx, acc, hprev, ldh, hn, ldh);
        break;
    case FS_CELL_FASTRNN:
        k->fastrnn_cell(n, &m->acts, gx, ldgx, acc, hprev, ldh, hn, ldh, u->coef[0], u->coef[1]);
        break;
    case FS_CELL_FASTGRNN:
        for (size_t i = 0; i < nb; i++) { /* per-block bias vectors: a block per call */
            const size_t o = i * FS_NB;
            k->fastgrnn_cell(b1 - b0, &m->acts, gx + o, s->ldgx, acc + o,
                             u->vec[FS_VEC_BIAS_GATE] + j0 + o, u->vec[FS_VEC_BIAS_UPDATE] + j0 + o, hprev + o,
                             rp, hn + o, rp, u->coef[0], u->coef[1]);
        }
        break;
    }
}

/* The last phase of a step owns h_new and y for its blocks (columns [j0, j1)
 * of h): active rows publish their new h, finished sequences keep theirs. */
static void publish(const fs_step *s, size_t j0, size_t j1, size_t b0, size_t b1, int active) {
    const size_t rp = s->model->rp, r = s->model->r, width = (j1 < r ? j1 : r) - j0;
    const size_t bytes = width * sizeof(float);
    if (active && !s->y) return;
    for (size_t b = b0; b < b1; b++) {
        if (!active) memcpy(s->h_new + b * rp + j0, s->h_prev + b * rp + j0, (j1 - j0) * sizeof(float));
        if (!s->y) continue;
        float *y = s->y + b * s->ldy + j0;
        if (!active) memset(y, 0, bytes);
        else if (width == FS_NB) memcpy(y, s->h_new + b * rp + j0, FS_NB * sizeof(float)); /* inlined: the usual case */
        else memcpy(y, s->h_new + b * rp + j0, bytes);
    }
}

typedef void (*rows_fn)(const fs_step *, size_t jb, size_t nb, size_t b0, size_t b1, const float *tile);

/* Blocks [jb, jb + nb) of a phase whose product is in tile: fn on each run
 * of active rows, then publish if final. */
static void for_runs(const fs_step *s, size_t jb, size_t nb, int final, const float *tile, rows_fn fn) {
    if (!s->lengths) { /* every row active: one run */
        fn(s, jb, nb, 0, s->batch, tile);
        if (final) publish(s, jb * FS_NB, (jb + nb) * FS_NB, 0, s->batch, 1);
        return;
    }
    for (size_t b0 = 0; b0 < s->batch;) {
        const int active = is_active(s->lengths, s->t, b0);
        size_t b1 = b0 + 1;
        while (b1 < s->batch && is_active(s->lengths, s->t, b1) == active) b1++;
        if (active) fn(s, jb, nb, b0, b1, tile);
        if (final) publish(s, jb * FS_NB, (jb + nb) * FS_NB, b0, b1, active);
        b0 = b1;
    }
}

static void proj_rows(const fs_step *s, size_t jb, size_t nb, size_t b0, size_t b1, const float *tile) {
    const size_t width = nb * FS_NB; /* nb > 1 only with one row: the tile row is that wide */
    for (size_t b = b0; b < b1; b++)
        memcpy(s->h_new + b * s->model->rp + jb * FS_NB, tile + b * width, width * sizeof(float));
}

static void gru_n_rows(const fs_step *s, size_t jb, size_t nb, size_t b0, size_t b1, const float *tile) {
    const size_t hp = s->model->hp, rp = s->model->rp, j0 = jb * FS_NB;
    const int by_block = nb > 1; /* blocks as the kernel's rows, as in cell_rows */
    const size_t ld = by_block ? FS_NB : 0;
    if (s->model->custom_acts) {
        s->k->gru_n_cell_act(by_block ? nb : b1 - b0, &s->model->acts,
                             s->gx + b0 * s->ldgx + jb * 3 * FS_NB + 2 * FS_NB, by_block ? 3 * FS_NB : s->ldgx,
                             tile + b0 * FS_NB, s->z + b0 * hp + j0, by_block ? ld : hp, s->h_prev + b0 * rp + j0,
                             by_block ? ld : rp, s->h_new + b0 * rp + j0, by_block ? ld : rp);
        return;
    }
    s->k->gru_n_cell(by_block ? nb : b1 - b0, s->gx + b0 * s->ldgx + jb * 3 * FS_NB + 2 * FS_NB,
                     by_block ? 3 * FS_NB : s->ldgx, tile + b0 * FS_NB, s->z + b0 * hp + j0, by_block ? ld : hp,
                     s->h_prev + b0 * rp + j0, by_block ? ld : rp, s->h_new + b0 * rp + j0, by_block ? ld : rp);
}

/* Training forward: w floats of each of the step's rows of src (row stride
 * lds) into columns [j0, j0 + w) of a record array whose rows are `width` wide. */
static void record_cols(const fs_step *s, float *dst, size_t width, const float *src, size_t lds, size_t j0,
                        size_t w) {
    for (size_t b = 0; b < s->batch; b++)
        memcpy(dst + b * s->ld_rec * width + j0, src + b * lds, w * sizeof(float));
}

/* int8: h_prev quantised once into the tile, then the level's fused int8 step. */
static int step_fused_q8(const fs_step *s, float *tile) {
    const fs_rnn *m = s->model;
    const fs_kernels *k = s->k;
    const fs_rnn_unit *u = s->unit;
    const fs_rnn_config *c = &m->cfg;
    const size_t nb = m->hp / FS_NB;
    const int lstm = c->cell == FS_CELL_LSTM && !c->peephole && !c->coupled, gru = c->cell == FS_CELL_GRU && !c->reset_before;
    const int rnn = c->cell == FS_CELL_RNN_TANH || c->cell == FS_CELL_RNN_RELU;
    if (!(lstm && k->lstm_step1_q8) && !(gru && k->gru_step1_q8) && !(rnn && k->rnn_step1_q8)) return 0;
    fs_qscratch qs = fs__qscratch(m, 1, tile);
    fs__qa_prepare(m, k, &qs, 1, m->r, s->h_prev, m->rp);
    const int8_t *hq = qa_codes(&qs, 0, qform_of(m, m->r));
    const float hs = *qa_scale(&qs, 0);
    const int32_t hsum = *qa_sum(&qs, 0);
    const uint8_t *w = (const uint8_t *)u->w_hh_packed;
    const float *scale = u->scale[FS_MAT_HH];
    if (lstm) k->lstm_step1_q8(m->r, nb, hq, hs, hsum, w, scale, s->gx, s->h_new, s->c);
    else if (gru) k->gru_step1_q8(m->r, nb, hq, hs, hsum, w, scale, u->bias_h, s->gx, s->h_prev, s->h_new);
    else k->rnn_step1_q8(m->r, nb, c->cell == FS_CELL_RNN_RELU, hq, hs, hsum, w, scale, s->gx, s->h_new);
    return 1;
}

int fs__step_fused(const fs_step *s, float *tile) {
    const fs_rnn *m = s->model;
    const fs_rnn_config *c = &m->cfg;
    const fs_kernels *k = s->k;
    const fs_rnn_unit *u = s->unit;
    const size_t nb = m->hp / FS_NB;
    if (s->batch != 1 || !is_active(s->lengths, s->t, 0) || c->u_rank || c->proj_size || s->rec_acc ||
        m->custom_acts || (c->dtype != FS_DTYPE_F32 && c->dtype != FS_DTYPE_INT8)) /* fp32, int8, the usual activations */
        return 0;
    if (c->dtype == FS_DTYPE_INT8) {
        if (!step_fused_q8(s, tile)) return 0;
    } else {
        switch (c->cell) {
        case FS_CELL_RNN_TANH:
        case FS_CELL_RNN_RELU:
            if (!k->rnn_step1) return 0;
            k->rnn_step1(m->r, nb, c->cell == FS_CELL_RNN_RELU, u->w_hh_packed, s->gx, s->h_prev, s->h_new);
            break;
        case FS_CELL_LSTM:
            if (!k->lstm_step1 || c->peephole || c->coupled) return 0;
            k->lstm_step1(m->r, nb, u->w_hh_packed, s->gx, s->h_prev, s->h_new, s->c);
            break;
        case FS_CELL_GRU:
            if (!k->gru_step1 || c->reset_before) return 0;
            k->gru_step1(m->r, nb, u->w_hh_packed, u->bias_h, s->gx, s->h_prev, s->h_new);
            break;
        default: return 0;
        }
    }
    if (s->y) memcpy(s->y, s->h_new, m->r * sizeof(float));
    return 1;
}

/* Rows a step's products cover: rows past the last active one are skipped
 * (callers that sort by length skip every finished row), except when
 * recording (the tape keeps every row's product). */
static size_t product_rows(const fs_step *s) {
    size_t n = s->batch;
    if (!s->lengths || s->rec_acc) return n;
    while (n > 1 && !is_active(s->lengths, s->t, n - 1)) n--;
    return n;
}

void fs__step_phase(const fs_step *s, fs_phase phase, size_t lo, size_t hi, float *tile) {
    const fs_rnn *m = s->model;
    const fs_rnn_unit *u = s->unit;
    const size_t B = product_rows(s), H = (size_t)m->cfg.hidden_size, hp = m->hp, gh = m->gh;
    if (hi <= lo) return;
    /* the phase's operand a (B rows of kk, lda apart), quantised once for all its blocks (int8) */
    const float *a = s->mid; /* LSTM o * tanh(c) (projection); GRU r * h (U_a, or W_hn at full rank) */
    size_t kk = phase == FS_PHASE_PROJ ? H : m->r, lda = hp;
    if (phase == FS_PHASE_LOWRANK || (phase == FS_PHASE_CELL && !m->cfg.u_rank))
        a = s->h_prev, kk = m->r, lda = m->rp;
    else if ((phase == FS_PHASE_CELL || phase == FS_PHASE_GRU_N) && m->cfg.u_rank)
        a = s->t_low, kk = (size_t)m->cfg.u_rank, lda = m->urp;
    else if (phase == FS_PHASE_GRU_N)
        kk = H;
    fs_qscratch qs = fs__qscratch(m, B, tile);
    fs__qa_prepare(m, s->k, &qs, B, kk, a, lda);
    if (phase == FS_PHASE_LOWRANK || phase == FS_PHASE_LOWRANK_N) { /* straight into t_low: no epilogue */
        fs__wgemm(m, s->k, u->w_hh_a_packed, u->scale[FS_MAT_HH_A], B, kk, a, lda, 1, lo, hi - lo, NULL,
                  s->t_low + lo * FS_NB, m->urp, &qs);
        return;
    }
    const int rb = m->cfg.cell == FS_CELL_GRU && m->cfg.reset_before;
    const int final = phase != FS_PHASE_CELL || (!m->cfg.proj_size && !rb);
    const size_t width = (phase == FS_PHASE_CELL ? gh : 1) * FS_NB;
    const size_t per_call = s->batch == 1 ? hi - lo : 1; /* blocks per product (see fs__tile_floats) */
    for (size_t jb = lo; jb < hi; jb += per_call) {
        const size_t nb = hi - jb < per_call ? hi - jb : per_call;
        rows_fn rows = cell_rows;
        if (phase == FS_PHASE_CELL) {
            const float *bias_h = m->cfg.cell == FS_CELL_GRU && !rb ? u->bias_h + jb * width : NULL;
            fs__wgemm(m, s->k, u->w_hh_packed, u->scale[FS_MAT_HH], B, kk, a, lda, gh, jb, nb, bias_h, tile,
                      nb * width, &qs);
            if (s->rec_acc) { /* what the cell reads, and c before it changes */
                record_cols(s, s->rec_acc, gh * hp, tile, nb * width, jb * width, nb * width);
                if (s->rec_c) record_cols(s, s->rec_c, hp, s->c + jb * FS_NB, hp, jb * FS_NB, nb * FS_NB);
            }
        } else if (phase == FS_PHASE_PROJ) {
            fs__wgemm(m, s->k, u->w_hr_packed, u->scale[FS_MAT_HR], B, kk, a, lda, 1, jb, nb, NULL, tile, nb * width,
                      &qs);
            rows = proj_rows;
        } else { /* W_hn (r * h), or its low-rank U_b rows over t_low = U_a (r * h) */
            fs__wgemm(m, s->k, u->w_hn_packed, u->scale[FS_MAT_HN], B, kk, a, lda, 1, jb, nb, NULL, tile, nb * width,
                      &qs);
            if (s->rec_hn) record_cols(s, s->rec_hn, hp, tile, nb * width, jb * FS_NB, nb * FS_NB);
            rows = gru_n_rows;
        }
        for_runs(s, jb, nb, final, tile, rows);
        if (phase == FS_PHASE_CELL && s->rec_mid) record_cols(s, s->rec_mid, hp, s->mid + jb * FS_NB, hp, jb * FS_NB, nb * FS_NB);
    }
}
