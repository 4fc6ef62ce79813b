/* aarch64 NEON training cells: the record steps with vectorised
 * nonlinearities (the AVX2 records' operations on fs_v8, vmath/neon.h). The
 * backward steps stay generic: backward_loops.h's plain loops, which the
 * compiler already vectorises with NEON (baseline on aarch64). */
#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "kernels/cells/train_neon.c is for aarch64 with Advanced SIMD"
#endif

#include <string.h>

#include "../kernels.h"
#include "../vmath/neon.h"

/* Stores lanes [0, w) of v at p (w == 8: one unaligned store). */
static inline void store_n(float *p, fs_v8 v, size_t w) {
    if (w == FS_NB) {
        fs_v8_st(p, v);
    } else {
        float tmp[FS_NB];
        fs_v8_st(tmp, v);
        memcpy(p, tmp, w * sizeof(float));
    }
}

static inline fs_v8 pre(const float *gx, const float *acc, size_t at) {
    return fs_v8_add(fs_v8_ld(gx + at), fs_v8_ld(acc + at));
}

/* fs_act on 8 lanes (relu keeps NaN, as the portable path does). */
static inline fs_v8 act_ps(int kind, fs_v8 x) {
    return kind == FS_ACT_SIGMOID ? fs_v8_sigmoid(x)
           : kind == FS_ACT_RELU  ? fs_v8_max(fs_v8_set1(0.0f), x)
                                  : fs_v8_tanh(x);
}

/* Role r's activation (FastRNN / FastGRNN: every fs_act, no clip); the
 * clamping ones pass NaN through, as the portable path does. */
static inline fs_v8 role_ps(const fs_acts *a, int r, fs_v8 x) {
    const fs_v8 one = fs_v8_set1(1.0f);
    switch (a->kind[r]) {
    case FS_ACT_HARD_SIGMOID:
        x = fs_v8_fma(fs_v8_set1(a->alpha[r]), x, fs_v8_set1(a->beta[r]));
        return fs_v8_min(one, fs_v8_max(fs_v8_set1(0.0f), x));
    case FS_ACT_SOFTSIGN: return fs_v8_div(x, fs_v8_add(one, fs_v8_abs(x)));
    case FS_ACT_HARD_TANH: return fs_v8_min(one, fs_v8_max(fs_v8_set1(-1.0f), x));
    default: return act_ps(a->kind[r], x);
    }
}

/* h, c, hn rows are padded to whole blocks (hp), act rows are not. */

static void rnn_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                             const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB)
        store_n(act + j0, act_ps(cp->relu ? FS_ACT_RELU : FS_ACT_TANH, pre(gx, acc, j0)),
                H - j0 < FS_NB ? H - j0 : FS_NB);
}

static void lstm_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                              const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * 4, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const fs_v8 i = fs_v8_sigmoid(pre(gx, acc, at));
        const fs_v8 f = fs_v8_sigmoid(pre(gx, acc, at + FS_NB));
        const fs_v8 g = fs_v8_tanh(pre(gx, acc, at + 2 * FS_NB));
        const fs_v8 o = fs_v8_sigmoid(pre(gx, acc, at + 3 * FS_NB));
        const fs_v8 cn = fs_v8_fma(f, fs_v8_ld(c + j0), fs_v8_mul(i, g));
        const fs_v8 slots[5] = {i, f, g, o, fs_v8_tanh(cn)};
        for (size_t k = 0; k < 5; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void gru_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                             const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * 3, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const fs_v8 r = fs_v8_sigmoid(pre(gx, acc, at));
        const fs_v8 z = fs_v8_sigmoid(pre(gx, acc, at + FS_NB));
        const fs_v8 hj = fs_v8_ld(acc + at + 2 * FS_NB);
        const fs_v8 n = fs_v8_tanh(fs_v8_fma(r, hj, fs_v8_ld(gx + at + 2 * FS_NB)));
        const fs_v8 slots[4] = {r, z, n, hj};
        for (size_t k = 0; k < 4; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void lstm_ext_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                  const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h;
    const int coupled = cp->coupled;
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const fs_v8 one = fs_v8_set1(1.0f);
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t at = j0 * G, w = H - j0 < FS_NB ? H - j0 : FS_NB;
        float p3[3][FS_NB] = {{0}}; /* peepholes of this block, zero past H */
        const float *pv[3] = {cp->pi, cp->pf, cp->po};
        for (int q = 0; q < 3; q++)
            if (pv[q]) memcpy(p3[q], pv[q] + j0, w * sizeof(float));
        const fs_v8 cprev = fs_v8_ld(c + j0);
        const fs_v8 i = fs_v8_sigmoid(fs_v8_fma(fs_v8_ld(p3[0]), cprev, pre(gx, acc, at)));
        const fs_v8 f = coupled ? fs_v8_sub(one, i)
                                 : fs_v8_sigmoid(fs_v8_fma(fs_v8_ld(p3[1]), cprev,
                                                                       pre(gx, acc, at + FS_NB)));
        const fs_v8 g = fs_v8_tanh(pre(gx, acc, at + gg * FS_NB));
        const fs_v8 cn = fs_v8_fma(f, cprev, fs_v8_mul(i, g));
        const fs_v8 o = fs_v8_sigmoid(fs_v8_fma(fs_v8_ld(p3[2]), cn, pre(gx, acc, at + go * FS_NB)));
        const fs_v8 slots[6] = {i, f, g, o, fs_v8_tanh(cn), cn};
        for (size_t k = 0; k < 6; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void gru_rb_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        const fs_v8 r = fs_v8_sigmoid(fs_v8_add(fs_v8_ld(gx + j0 * 3), fs_v8_ld(acc + j0 * 2)));
        const fs_v8 z = fs_v8_sigmoid(
            fs_v8_add(fs_v8_ld(gx + j0 * 3 + FS_NB), fs_v8_ld(acc + j0 * 2 + FS_NB)));
        const fs_v8 n = fs_v8_tanh(fs_v8_add(fs_v8_ld(gx + j0 * 3 + 2 * FS_NB), fs_v8_ld(hn + j0)));
        const fs_v8 slots[4] = {r, z, n, fs_v8_mul(r, fs_v8_ld(h + j0))};
        for (size_t k = 0; k < 4; k++) store_n(act + k * H + j0, slots[k], w);
    }
}

static void fastrnn_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                 const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB)
        store_n(act + j0, role_ps(cp->acts, FS_ROLE_G, pre(gx, acc, j0)), H - j0 < FS_NB ? H - j0 : FS_NB);
}

static void fastgrnn_record__neon(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                  const float *hn, const float *h, const float *c, float *act) {
    (void)hn, (void)h, (void)c;
    for (size_t j0 = 0; j0 < H; j0 += FS_NB) {
        const size_t w = H - j0 < FS_NB ? H - j0 : FS_NB;
        float bg[FS_NB] = {0}, bu[FS_NB] = {0}; /* the biases are H long */
        memcpy(bg, cp->bg + j0, w * sizeof(float));
        memcpy(bu, cp->bu + j0, w * sizeof(float));
        const fs_v8 p = pre(gx, acc, j0);
        store_n(act + j0, role_ps(cp->acts, FS_ROLE_F, fs_v8_add(p, fs_v8_ld(bg))), w);
        store_n(act + H + j0, role_ps(cp->acts, FS_ROLE_G, fs_v8_add(p, fs_v8_ld(bu))), w);
    }
}

void fs__train_cells_init_neon(fs_kernels *k) {
    /* the *_ACT kinds and every backward slot keep the generic kernels */
    static const fs_cell_record_fn rec[FS_TRAIN_KINDS] = {
        rnn_record__neon, lstm_record__neon, gru_record__neon, lstm_ext_record__neon,
        gru_rb_record__neon, fastrnn_record__neon, fastgrnn_record__neon};
    for (int i = 0; i < FS_TRAIN_KINDS; i++)
        if (rec[i]) k->cell_record[i] = rec[i];
}
