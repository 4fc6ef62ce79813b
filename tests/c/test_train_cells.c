/*
 * test_train_cells.c -- the training slots of every level (cell_record,
 * cell_backward) against the generic (reference) level, through the internal
 * kernel tables (kernels.h), on odd unit counts (a partial last block of 8):
 * every trainable cell kind and variant (relu, coupled gates, peepholes,
 * FastRNN / FastGRNN activations). Record outputs within 1e-5 (the SIMD
 * nonlinearities' accuracy against libm); backward outputs, fed the same
 * activations, within 1e-5 relative (the same loops, FMA-contracted).
 */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HMAX 29
#define HP 32 /* HMAX rounded up to whole blocks */

typedef struct kindcase {
    const char *name;
    int kind;
    size_t G, gh, slots;
    fs_cell_params cp; /* vectors filled in below */
} kindcase;

static float vecs[5][HP], whn[HP * HMAX];

static void fill(float *p, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) p[i] = urand(scale);
}

static float max_rel(const float *a, const float *b, size_t n) {
    float e = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float d = fabsf(a[i] - b[i]) / (1.0f + fabsf(b[i]));
        if (!(d <= e)) e = d; /* NaN counts */
    }
    return e;
}

static void check_kind(const fs_kernels *lev, const fs_kernels *ref, const char *level, const kindcase *kc, size_t H) {
    const size_t hp = (H + FS_NB - 1) / FS_NB * FS_NB, S = kc->slots, GH = kc->G * H;
    float gx[HP * 4], acc[HP * 4], hn[HP], h[HP], c[HP];
    float act_r[11 * HMAX], act_l[11 * HMAX]; /* the most slots: LSTM_ACT's 11 */
    fill(gx, sizeof gx / sizeof(float), 3.0f);
    fill(acc, sizeof acc / sizeof(float), 3.0f);
    fill(hn, HP, 2.0f), fill(h, HP, 1.0f), fill(c, HP, 2.0f);
    fs_cell_params cp = kc->cp;
    if (kc->kind == FS_TRAIN_GRU_RB || kc->kind == FS_TRAIN_GRU_RB_ACT) { /* W_hn packed for H units: [hp/8][H][8], zero padding */
        memset(whn, 0, sizeof whn);
        for (size_t jb = 0; jb < hp / FS_NB; jb++)
            for (size_t k = 0; k < H; k++)
                for (size_t l = 0; l < FS_NB && jb * FS_NB + l < H; l++) whn[(jb * H + k) * FS_NB + l] = urand(0.5f);
        cp.whn = whn;
    }
    ref->cell_record[kc->kind](H, &cp, gx, acc, hn, h, c, act_r);
    lev->cell_record[kc->kind](H, &cp, gx, acc, hn, h, c, act_l);
    float e = max_rel(act_l, act_r, S * H);
    CHECK(e <= 1e-5f, "%s %s H=%zu: record differs from generic by %g", level, kc->name, H, (double)e);

    float dh_r[HP], dh_l[HP], dc_r[HP], dc_l[HP], dgx_r[4 * HMAX], dgx_l[4 * HMAX], dgh_r[4 * HMAX], dgh_l[4 * HMAX];
    float ex_r[4 * HMAX], ex_l[4 * HMAX], work[2 * HP];
    fill(dh_r, HP, 1.0f), fill(dc_r, HP, 1.0f), fill(ex_r, 4 * HMAX, 0.1f);
    memcpy(dh_l, dh_r, sizeof dh_r), memcpy(dc_l, dc_r, sizeof dc_r), memcpy(ex_l, ex_r, sizeof ex_r);
    memset(dgx_r, 0, sizeof dgx_r), memset(dgx_l, 0, sizeof dgx_l);
    memset(dgh_r, 0, sizeof dgh_r), memset(dgh_l, 0, sizeof dgh_l);
    ref->cell_backward[kc->kind](H, &cp, act_r, h, c, dh_r, dc_r, dgx_r, dgh_r, ex_r, work);
    lev->cell_backward[kc->kind](H, &cp, act_r, h, c, dh_l, dc_l, dgx_l, dgh_l, ex_l, work);
    e = max_rel(dgx_l, dgx_r, GH);
    CHECK(e <= 1e-5f, "%s %s H=%zu: backward dgx differs from generic by %g", level, kc->name, H, (double)e);
    e = max_rel(dgh_l, dgh_r, GH);
    CHECK(e <= 1e-5f, "%s %s H=%zu: backward dgh differs from generic by %g", level, kc->name, H, (double)e);
    e = max_rel(dh_l, dh_r, H);
    CHECK(e <= 1e-5f, "%s %s H=%zu: backward dh differs from generic by %g", level, kc->name, H, (double)e);
    e = max_rel(dc_l, dc_r, H);
    CHECK(e <= 1e-5f, "%s %s H=%zu: backward dc differs from generic by %g", level, kc->name, H, (double)e);
    e = max_rel(ex_l, ex_r, 4 * HMAX);
    CHECK(e <= 1e-5f, "%s %s H=%zu: backward extra differs from generic by %g", level, kc->name, H, (double)e);
}

/* The AVX-512 LSTM record (train_avx512.c) is lane-identical to AVX2's: the same bits. */
static void check_lstm_record_avx512_is_avx2(void) {
    if (!fs_isa_supported(FS_ISA_AVX512)) return;
    CHECK_STATUS(fs_set_isa(FS_ISA_AVX2), FS_OK);
    const fs_kernels a2 = *fs__kernels();
    CHECK_STATUS(fs_set_isa(FS_ISA_AVX512), FS_OK);
    const fs_kernels a5 = *fs__kernels();
    const fs_cell_params cp = {0};
    for (size_t H = 1; H <= HMAX; H++) {
        float gx[HP * 4], acc[HP * 4], c[HP], act2[5 * HMAX], act5[5 * HMAX];
        fill(gx, HP * 4, 6.0f), fill(acc, HP * 4, 6.0f), fill(c, HP, 3.0f);
        a2.cell_record[FS_TRAIN_LSTM](H, &cp, gx, acc, NULL, NULL, c, act2);
        a5.cell_record[FS_TRAIN_LSTM](H, &cp, gx, acc, NULL, NULL, c, act5);
        CHECK(!memcmp(act2, act5, 5 * H * sizeof(float)), "H=%zu: avx512 LSTM record differs from avx2", H);
    }
}

int main(void) {
    for (int v = 0; v < 5; v++) fill(vecs[v], HP, 0.5f);
    const fs_cell_params none = {0};
    fs_cell_params relu = none, peep = none, coupled = none, sig = none, rl = none, grnn = none;
    relu.relu = 1;
    peep.pi = vecs[0], peep.pf = vecs[1], peep.po = vecs[2];
    coupled = peep, coupled.coupled = 1;
    /* FastRNN / FastGRNN activations: role f the gate, g the update (hard_sigmoid:
     * EdgeML's quantSigm, alpha = beta = 0.5) */
    static const fs_acts a_tanh = {{FS_ACT_SIGMOID, FS_ACT_TANH, FS_ACT_TANH}, {0}, {0}, 0.0f};
    static const fs_acts a_sig = {{FS_ACT_SIGMOID, FS_ACT_SIGMOID, FS_ACT_TANH}, {0}, {0}, 0.0f};
    static const fs_acts a_relu = {{FS_ACT_SIGMOID, FS_ACT_RELU, FS_ACT_TANH}, {0}, {0}, 0.0f};
    static const fs_acts a_soft = {{FS_ACT_SIGMOID, FS_ACT_SOFTSIGN, FS_ACT_TANH}, {0}, {0}, 0.0f};
    static const fs_acts a_quant = {{FS_ACT_HARD_SIGMOID, FS_ACT_HARD_TANH, FS_ACT_TANH}, {0.5f, 0, 0}, {0.5f, 0, 0}, 0.0f};
    static const fs_acts a_qupd = {{FS_ACT_SOFTSIGN, FS_ACT_HARD_SIGMOID, FS_ACT_TANH}, {0, 0.25f, 0}, {0, 0.5f, 0}, 0.0f};
    sig.acts = &a_sig, sig.a = 0.05f, sig.b = 0.95f;
    rl.acts = &a_relu, rl.a = 0.3f, rl.b = 0.6f;
    grnn.acts = &a_tanh, grnn.bg = vecs[3], grnn.bu = vecs[4];
    grnn.a = 0.2f, grnn.b = 0.7f;
    fs_cell_params ftanh = none, fsoft = sig, fhard = sig, gquant = grnn, gqupd = grnn;
    ftanh.acts = &a_tanh, ftanh.a = 0.1f, ftanh.b = 0.9f;
    fsoft.acts = &a_soft, fhard.acts = &a_qupd, gquant.acts = &a_quant, gqupd.acts = &a_qupd;
    /* the *_ACT kinds: chosen activations for roles f, g, h and a clip that cuts some inputs */
    static const fs_acts a_chosen = {{FS_ACT_HARD_SIGMOID, FS_ACT_SOFTSIGN, FS_ACT_HARD_TANH}, {0.3f, 0, 0},
                                     {0.4f, 0, 0}, 2.5f};
    fs_cell_params chosen = none, chosen_peep = peep, chosen_coupled = coupled;
    chosen.acts = chosen_peep.acts = chosen_coupled.acts = &a_chosen;
    const kindcase cases[] = {
        {"rnn_tanh", FS_TRAIN_RNN, 1, 1, 1, none},       {"rnn_relu", FS_TRAIN_RNN, 1, 1, 1, relu},
        {"lstm", FS_TRAIN_LSTM, 4, 4, 5, none},          {"gru", FS_TRAIN_GRU, 3, 3, 4, none},
        {"lstm_peephole", FS_TRAIN_LSTM_EXT, 4, 4, 6, peep},
        {"lstm_coupled", FS_TRAIN_LSTM_EXT, 3, 3, 6, coupled},
        {"gru_reset_before", FS_TRAIN_GRU_RB, 3, 2, 4, none},
        {"fastrnn_tanh", FS_TRAIN_FASTRNN, 1, 1, 1, ftanh}, {"fastrnn_sigmoid", FS_TRAIN_FASTRNN, 1, 1, 1, sig},
        {"fastrnn_relu", FS_TRAIN_FASTRNN, 1, 1, 1, rl},  {"fastgrnn", FS_TRAIN_FASTGRNN, 1, 1, 2, grnn},
        {"fastrnn_softsign", FS_TRAIN_FASTRNN, 1, 1, 1, fsoft},
        {"fastrnn_hard_sigmoid", FS_TRAIN_FASTRNN, 1, 1, 1, fhard},
        {"fastgrnn_quant", FS_TRAIN_FASTGRNN, 1, 1, 2, gquant},
        {"fastgrnn_softsign_hard_sigmoid", FS_TRAIN_FASTGRNN, 1, 1, 2, gqupd},
        {"ugrnn", FS_TRAIN_UGRNN, 2, 2, 2, ftanh}, {"ugrnn_quant", FS_TRAIN_UGRNN, 2, 2, 2, gquant},
        {"rnn_act", FS_TRAIN_RNN_ACT, 1, 1, 2, chosen}, {"lstm_act", FS_TRAIN_LSTM_ACT, 4, 4, 11, chosen_peep},
        {"lstm_act_coupled", FS_TRAIN_LSTM_ACT, 3, 3, 11, chosen_coupled},
        {"gru_act", FS_TRAIN_GRU_ACT, 3, 3, 7, chosen}, {"gru_rb_act", FS_TRAIN_GRU_RB_ACT, 3, 2, 7, chosen},
    };
    const fs_isa start = fs_active_isa();
    CHECK_STATUS(fs_set_isa(FS_ISA_GENERIC), FS_OK);
    const fs_kernels ref = *fs__kernels();
    static const size_t sizes[] = {1, 5, 13, 29};
    for (int isa = FS_ISA_AVX2; isa <= FS_ISA_NEON; isa++) {
        if (!fs_isa_supported((fs_isa)isa)) continue;
        CHECK_STATUS(fs_set_isa((fs_isa)isa), FS_OK);
        const fs_kernels lev = *fs__kernels();
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                check_kind(&lev, &ref, fs_isa_name((fs_isa)isa), &cases[c], sizes[s]);
    }
    check_lstm_record_avx512_is_avx2();
    fs_set_isa(start);
    printf("test_train_cells: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
