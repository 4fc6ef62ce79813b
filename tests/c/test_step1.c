/*
 * test_step1.c -- the fused batch-1 steps of every level that has them
 * against the same level's product (one row) and cell kernel (the blocks as
 * its rows), bit for bit: the fused path runs on one thread and the phases
 * on several, and the two must agree exactly. fp32 (rnn_step1, lstm_step1,
 * gru_step1 against gemm + cell) and int8 (rnn_step1_q8, lstm_step1_q8,
 * gru_step1_q8 against gemm_q8 + cell; gemm_q8_fine1, a lone input row's
 * coarse and fine products, against gemm_q8 twice).
 *
 * Covers k with every remainder the products handle (1..5, 8, 13, 32, 37),
 * 1..11 blocks (whole groups of blocks in flight and 1..3 left over),
 * relu and tanh RNNs, GRU with and without its recurrent bias, inputs large
 * enough to saturate the gates, and (int8) a state of zeros (scale 0).
 */
#include "check.h"
#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_K 37
#define MAX_BLOCKS 11
#define MAX_W (MAX_BLOCKS * 4 * FS_NB) /* columns of the widest product */

static const size_t ks[] = {1, 2, 3, 4, 5, 8, 13, 32, 37};

static void fill(float *p, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) p[i] = urand(scale);
}

enum { RNN, RNN_RELU, LSTM, GRU, GRU_NO_BIAS, N_KINDS };
static const char *kind_name[N_KINDS] = {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru (no bias_h)"};
static const size_t kind_gates[N_KINDS] = {1, 1, 4, 3, 3};

typedef struct case_data {
    float w[MAX_K * MAX_W], bias[MAX_W], gx[MAX_W], h_prev[MAX_BLOCKS * FS_NB + MAX_K];
    float c[MAX_BLOCKS * FS_NB];
} case_data;

/* The phase path at batch 1: the product of all blocks, then the cell with
 * the blocks as rows (rnn_step.c's cell_rows). */
static void phases(const fs_kernels *k, int kind, size_t kk, size_t nb, const case_data *d, float *h, float *c) {
    static float acc[MAX_W];
    const size_t G = kind_gates[kind], w = G * FS_NB;
    const float *bias = kind == GRU ? d->bias : NULL;
    k->gemm(1, kk, d->h_prev, kk, d->w, G, nb, bias, acc, nb * w);
    switch (kind) {
    case RNN:
    case RNN_RELU: k->rnn_cell(nb, kind == RNN_RELU, d->gx, w, acc, h, FS_NB); break;
    case LSTM: k->lstm_cell(nb, d->gx, w, acc, c, FS_NB, h, FS_NB); break;
    default: k->gru_cell(nb, d->gx, w, acc, d->h_prev, FS_NB, h, FS_NB); break;
    }
}

static void fused(const fs_kernels *k, int kind, size_t kk, size_t nb, const case_data *d, float *h, float *c) {
    switch (kind) {
    case RNN:
    case RNN_RELU: k->rnn_step1(kk, nb, kind == RNN_RELU, d->w, d->gx, d->h_prev, h); break;
    case LSTM: k->lstm_step1(kk, nb, d->w, d->gx, d->h_prev, h, c); break;
    default: k->gru_step1(kk, nb, d->w, kind == GRU ? d->bias : NULL, d->gx, d->h_prev, h); break;
    }
}

static int check_level(fs_isa isa) {
    if (fs_set_isa(isa) != FS_OK) return 0;
    const fs_kernels k = *fs__kernels();
    if (!k.rnn_step1 || !k.lstm_step1 || !k.gru_step1) return 0;
    static case_data d;
    static float h_ref[MAX_BLOCKS * FS_NB], h_out[MAX_BLOCKS * FS_NB];
    static float c_ref[MAX_BLOCKS * FS_NB], c_out[MAX_BLOCKS * FS_NB];
    for (int rep = 0; rep < 4; rep++)
        for (int kind = 0; kind < N_KINDS; kind++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t nb = 1; nb <= MAX_BLOCKS; nb++) {
                    const size_t kk = ks[ki];
                    fill(d.w, sizeof d.w / sizeof(float), 0.4f);
                    fill(d.bias, MAX_W, 1.0f);
                    fill(d.gx, MAX_W, rep == 3 ? 12.0f : 3.0f); /* the last round saturates */
                    fill(d.h_prev, sizeof d.h_prev / sizeof(float), 1.0f);
                    fill(d.c, MAX_BLOCKS * FS_NB, 2.0f);
                    memcpy(c_ref, d.c, sizeof c_ref);
                    memcpy(c_out, d.c, sizeof c_out);
                    memset(h_ref, 0, sizeof h_ref);
                    memset(h_out, 0, sizeof h_out);
                    phases(&k, kind, kk, nb, &d, h_ref, c_ref);
                    fused(&k, kind, kk, nb, &d, h_out, c_out);
                    CHECK(memcmp(h_ref, h_out, sizeof h_ref) == 0 && memcmp(c_ref, c_out, sizeof c_ref) == 0,
                          "%s: %s, k %zu, %zu blocks: the fused step differs from gemm + cell", fs_isa_name(isa),
                          kind_name[kind], kk, nb);
                }
    return 1;
}

typedef struct q8_case {
    uint8_t w[FS_Q8_ROUND(MAX_K) * MAX_W];
    float scale[MAX_W], bias[MAX_W], gx[MAX_W], h_prev[MAX_BLOCKS * FS_NB + MAX_K], c[MAX_BLOCKS * FS_NB];
    int8_t hq[FS_Q8_ROUND(MAX_K)];
    float hs;
    int32_t hsum;
} q8_case;

/* int8: the phase path at batch 1, gemm_q8 over all blocks, then the cell with the blocks as rows. */
static void q8_phases(const fs_kernels *k, int kind, size_t kk, size_t nb, const q8_case *d, float *h, float *c) {
    static float acc[MAX_W];
    const size_t G = kind_gates[kind], w = G * FS_NB;
    const float *bias = kind == GRU ? d->bias : NULL;
    k->gemm_q8(1, kk, d->hq, FS_Q8_ROUND(kk), &d->hs, &d->hsum, d->w, d->scale, G, nb, bias, acc, nb * w, 0);
    switch (kind) {
    case RNN:
    case RNN_RELU: k->rnn_cell(nb, kind == RNN_RELU, d->gx, w, acc, h, FS_NB); break;
    case LSTM: k->lstm_cell(nb, d->gx, w, acc, c, FS_NB, h, FS_NB); break;
    default: k->gru_cell(nb, d->gx, w, acc, d->h_prev, FS_NB, h, FS_NB); break;
    }
}

static void q8_fused(const fs_kernels *k, int kind, size_t kk, size_t nb, const q8_case *d, float *h, float *c) {
    switch (kind) {
    case RNN:
    case RNN_RELU: k->rnn_step1_q8(kk, nb, kind == RNN_RELU, d->hq, d->hs, d->hsum, d->w, d->scale, d->gx, h); break;
    case LSTM: k->lstm_step1_q8(kk, nb, d->hq, d->hs, d->hsum, d->w, d->scale, d->gx, h, c); break;
    default:
        k->gru_step1_q8(kk, nb, d->hq, d->hs, d->hsum, d->w, d->scale, kind == GRU ? d->bias : NULL, d->gx, d->h_prev,
                        h);
        break;
    }
}

/* Round rep: 0-2 ordinary, 3 saturating gates, 4 a state of zeros. */
static void q8_fill(const fs_kernels *k, q8_case *d, size_t kk, int rep) {
    for (size_t i = 0; i < sizeof d->w; i++) d->w[i] = (uint8_t)(1 + rand() % 255);
    for (size_t i = 0; i < MAX_W; i++) {
        d->scale[i] = 0.004f * (1.0f + urand(0.5f));
        d->bias[i] = urand(1.0f);
        d->gx[i] = urand(rep == 3 ? 12.0f : 3.0f);
    }
    for (size_t i = 0; i < sizeof d->h_prev / sizeof(float); i++) d->h_prev[i] = rep == 4 ? 0.0f : urand(1.0f);
    for (size_t i = 0; i < MAX_BLOCKS * FS_NB; i++) d->c[i] = urand(2.0f);
    k->q8_quant_rows(1, kk, d->h_prev, kk, d->hq, FS_Q8_ROUND(kk), &d->hs, &d->hsum);
}

static int check_level_q8(fs_isa isa) {
        if (fs_set_isa(isa) != FS_OK) return 0;
    const fs_kernels k = *fs__kernels();
    if (!k.rnn_step1_q8 || !k.lstm_step1_q8 || !k.gru_step1_q8) return 0;
    static q8_case d;
    static float h_ref[MAX_BLOCKS * FS_NB], h_out[MAX_BLOCKS * FS_NB];
    static float c_ref[MAX_BLOCKS * FS_NB], c_out[MAX_BLOCKS * FS_NB];
    for (int rep = 0; rep < 5; rep++)
        for (int kind = 0; kind < N_KINDS; kind++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t nb = 1; nb <= MAX_BLOCKS; nb++) {
                    const size_t kk = ks[ki];
                    q8_fill(&k, &d, kk, rep);
                    memcpy(c_ref, d.c, sizeof c_ref);
                    memcpy(c_out, d.c, sizeof c_out);
                    memset(h_ref, 0, sizeof h_ref);
                    memset(h_out, 0, sizeof h_out);
                    q8_phases(&k, kind, kk, nb, &d, h_ref, c_ref);
                    q8_fused(&k, kind, kk, nb, &d, h_out, c_out);
                    CHECK(memcmp(h_ref, h_out, sizeof h_ref) == 0 && memcmp(c_ref, c_out, sizeof c_ref) == 0,
                          "%s: %s, k %zu, %zu blocks, round %d: the fused int8 step differs from gemm_q8 + cell",
                          fs_isa_name(isa), kind_name[kind], kk, nb, rep);
                }
    return 1;
}

/* gemm_q8_fine1 against gemm_q8 then gemm_q8 accumulating, g 1..4, with and without a
 * bias, a first row of ordinary size and a second one far smaller (a fine row) or zero. */
static int check_level_fine1(fs_isa isa) {
    if (fs_set_isa(isa) != FS_OK) return 0;
    const fs_kernels k = *fs__kernels();
    if (!k.gemm_q8_fine1) return 0;
    static q8_case d;
    static float row[2][MAX_K], c_ref[MAX_W], c_out[MAX_W];
    static int8_t q[2][FS_Q8_ROUND(MAX_K)];
    float s[2];
    int32_t sum[2];
    for (int rep = 0; rep < 4; rep++)
        for (size_t g = 1; g <= 4; g++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t nb = 1; nb <= MAX_BLOCKS; nb++) {
                    const size_t kk = ks[ki], w = g * FS_NB;
                    const float *bias = rep % 2 ? d.bias : NULL;
                    q8_fill(&k, &d, kk, 0);
                    for (size_t i = 0; i < kk; i++) row[0][i] = urand(3.0f), row[1][i] = rep == 3 ? 0.0f : urand(0.01f);
                    k.q8_quant_rows(2, kk, row[0], MAX_K, q[0], FS_Q8_ROUND(MAX_K), s, sum);
                    for (size_t i = 0; i < MAX_W; i++) c_ref[i] = c_out[i] = urand(1.0f);
                    k.gemm_q8(1, kk, q[0], FS_Q8_ROUND(kk), s, sum, d.w, d.scale, g, nb, bias, c_ref, nb * w, 0);
                    k.gemm_q8(1, kk, q[1], FS_Q8_ROUND(kk), s + 1, sum + 1, d.w, d.scale, g, nb, NULL, c_ref, nb * w, 1);
                    k.gemm_q8_fine1(kk, q[0], s[0], sum[0], q[1], s[1], sum[1], d.w, d.scale, g, nb, bias, c_out);
                    CHECK(memcmp(c_ref, c_out, sizeof c_ref) == 0,
                          "%s: gemm_q8_fine1, g %zu, k %zu, %zu blocks, round %d: differs from gemm_q8 twice",
                          fs_isa_name(isa), g, kk, nb, rep);
                }
    return 1;
}

int main(void) {
    const fs_isa original = fs_active_isa();
    int levels = 0;
    for (int isa = FS_ISA_GENERIC; isa <= FS_ISA_NEON; isa++)
        levels += check_level((fs_isa)isa) + check_level_q8((fs_isa)isa) + check_level_fine1((fs_isa)isa);
    fs_set_isa(original);
    if (!levels) {
        printf("test_step1: skipped (no level here has fused steps)\n");
        return 0;
    }
    printf("test_step1: %d level(s) (fp32, int8 steps, int8 fine rows counted apart), %d checks, %d failures\n", levels, g_checks, g_failures);
    return g_failures != 0;
}
