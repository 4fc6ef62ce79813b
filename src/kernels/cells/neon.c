/* aarch64 NEON inference cell updates: the AVX2 cells' operations in the same
 * order on a block of 8 units as two q registers (fs_v8, vmath/neon.h), so
 * every lane matches AVX2 bit for bit. Training: train_neon.c. */
#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "kernels/cells/neon.c is for aarch64 with Advanced SIMD"
#endif

#include "../kernels.h"
#include "../vmath/neon.h"

static void fs_rnn_cell__neon(size_t m, int relu, const float *gx, size_t ldgx, const float *acc,
                              float *h, size_t ldh) {
    const fs_v8 zero = fs_v8_set1(0.0f);
    for (size_t i = 0; i < m; i++) {
        const fs_v8 pre = fs_v8_add(fs_v8_ld(gx + i * ldgx), fs_v8_ld(acc + i * FS_NB));
        /* max(0, x) returns x when x is NaN: NaNs propagate like torch.relu */
        fs_v8_st(h + i * ldh, relu ? fs_v8_max(zero, pre) : fs_v8_tanh(pre));
    }
}

static void fs_lstm_cell__neon(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                               size_t ldc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 4 * FS_NB;
        const fs_v8 ig = fs_v8_sigmoid(fs_v8_add(fs_v8_ld(g), fs_v8_ld(r)));
        const fs_v8 fg = fs_v8_sigmoid(
            fs_v8_add(fs_v8_ld(g + FS_NB), fs_v8_ld(r + FS_NB)));
        const fs_v8 gg = fs_v8_tanh(
            fs_v8_add(fs_v8_ld(g + 2 * FS_NB), fs_v8_ld(r + 2 * FS_NB)));
        const fs_v8 og = fs_v8_sigmoid(
            fs_v8_add(fs_v8_ld(g + 3 * FS_NB), fs_v8_ld(r + 3 * FS_NB)));
        const fs_v8 cn = fs_v8_fma(fg, fs_v8_ld(c + i * ldc), fs_v8_mul(ig, gg));
        fs_v8_st(c + i * ldc, cn);
        fs_v8_st(h + i * ldh, fs_v8_mul(og, fs_v8_tanh(cn)));
    }
}

static void fs_gru_cell__neon(size_t m, const float *gx, size_t ldgx, const float *acc,
                              const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        const fs_v8 rg = fs_v8_sigmoid(fs_v8_add(fs_v8_ld(g), fs_v8_ld(r)));
        const fs_v8 zg = fs_v8_sigmoid(
            fs_v8_add(fs_v8_ld(g + FS_NB), fs_v8_ld(r + FS_NB)));
        const fs_v8 ng = fs_v8_tanh(
            fs_v8_fma(rg, fs_v8_ld(r + 2 * FS_NB), fs_v8_ld(g + 2 * FS_NB)));
        const fs_v8 hp = fs_v8_ld(h_prev + i * ldhp);
        /* (1 - z) n + z h  ==  n + z (h - n) */
        fs_v8_st(h + i * ldh, fs_v8_fma(zg, fs_v8_sub(hp, ng), ng));
    }
}

#define LD(p) fs_v8_ld(p)
#define ADD(a, b) fs_v8_add(a, b)

static void fs_lstm_cell_ext__neon(size_t m, const float *gx, size_t ldgx, const float *acc,
                                   float *c, size_t ldc, float *h, size_t ldh, const float *pi,
                                   const float *pf, const float *po, int coupled) {
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const fs_v8 zero = fs_v8_set1(0.0f), one = fs_v8_set1(1.0f);
    const fs_v8 vpi = pi ? LD(pi) : zero, vpf = pf ? LD(pf) : zero, vpo = po ? LD(po) : zero;
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * G * FS_NB;
        const fs_v8 cp = LD(c + i * ldc);
        const fs_v8 ig = fs_v8_sigmoid(fs_v8_fma(vpi, cp, ADD(LD(g), LD(r))));
        const fs_v8 fg = coupled ? fs_v8_sub(one, ig)
                                  : fs_v8_sigmoid(fs_v8_fma(vpf, cp, ADD(LD(g + FS_NB), LD(r + FS_NB))));
        const fs_v8 cand = fs_v8_tanh(ADD(LD(g + gg * FS_NB), LD(r + gg * FS_NB)));
        const fs_v8 cn = fs_v8_fma(fg, cp, fs_v8_mul(ig, cand));
        const fs_v8 og = fs_v8_sigmoid(fs_v8_fma(vpo, cn, ADD(LD(g + go * FS_NB), LD(r + go * FS_NB))));
        fs_v8_st(c + i * ldc, cn);
        fs_v8_st(h + i * ldh, fs_v8_mul(og, fs_v8_tanh(cn)));
    }
}

static void fs_gru_rz_cell__neon(size_t m, const float *gx, size_t ldgx, const float *acc,
                                 const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        fs_v8_st(rh + i * ld, fs_v8_mul(fs_v8_sigmoid(ADD(LD(g), LD(r))), LD(h_prev + i * ldhp)));
        fs_v8_st(z + i * ld, fs_v8_sigmoid(ADD(LD(g + FS_NB), LD(r + FS_NB))));
    }
}

static void fs_gru_n_cell__neon(size_t m, const float *gx_n, size_t ldgx, const float *acc,
                                const float *z, size_t ldz, const float *h_prev, size_t ldhp,
                                float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const fs_v8 n = fs_v8_tanh(ADD(LD(gx_n + i * ldgx), LD(acc + i * FS_NB)));
        /* (1 - z) n + z h  ==  n + z (h - n) */
        fs_v8_st(h + i * ldh, fs_v8_fma(LD(z + i * ldz), fs_v8_sub(LD(h_prev + i * ldhp), n), n));
    }
}

/* ---- the cells with chosen activations (fs_acts), one register per gate ---- */

/* Role r's activation of v (v clipped first when a->clip > 0: roles f, g).
 * max(lo, v) and min(hi, v) return v when v is NaN: NaNs pass through as in
 * the generic cells. */
static inline fs_v8 act_ps(const fs_acts *a, int r, fs_v8 v, int clip) {
    if (clip && a->clip > 0.0f)
        v = fs_v8_min(fs_v8_set1(a->clip), fs_v8_max(fs_v8_set1(-a->clip), v));
    switch (a->kind[r]) {
    case FS_ACT_SIGMOID: return fs_v8_sigmoid(v);
    case FS_ACT_RELU: return fs_v8_max(fs_v8_set1(0.0f), v);
    case FS_ACT_HARD_SIGMOID:
        v = fs_v8_fma(fs_v8_set1(a->alpha[r]), v, fs_v8_set1(a->beta[r]));
        return fs_v8_min(fs_v8_set1(1.0f), fs_v8_max(fs_v8_set1(0.0f), v));
    case FS_ACT_SOFTSIGN: {
        const fs_v8 abs = fs_v8_abs(v);
        return fs_v8_div(v, fs_v8_add(fs_v8_set1(1.0f), abs));
    }
    case FS_ACT_HARD_TANH: return fs_v8_min(fs_v8_set1(1.0f), fs_v8_max(fs_v8_set1(-1.0f), v));
    default: return fs_v8_tanh(v);
    }
}

static void fs_fastrnn_cell__neon(size_t m, const fs_acts *acts, const float *gx, size_t ldgx, const float *acc,
                                  const float *h_prev, size_t ldhp, float *h, size_t ldh, float a,
                                  float b) {
    const fs_v8 va = fs_v8_set1(a), vb = fs_v8_set1(b);
    for (size_t i = 0; i < m; i++) {
        const fs_v8 u = act_ps(acts, FS_ROLE_G, ADD(LD(gx + i * ldgx), LD(acc + i * FS_NB)), 0);
        fs_v8_st(h + i * ldh, fs_v8_fma(va, u, fs_v8_mul(vb, LD(h_prev + i * ldhp))));
    }
}

static void fs_fastgrnn_cell__neon(size_t m, const fs_acts *acts, const float *gx,
                                   size_t ldgx, const float *acc, const float *bg, const float *bu,
                                   const float *h_prev, size_t ldhp, float *h, size_t ldh,
                                   float zeta, float nu) {
    const fs_v8 vz = fs_v8_set1(zeta), vn = fs_v8_set1(nu), one = fs_v8_set1(1.0f);
    const fs_v8 vbg = LD(bg), vbu = LD(bu);
    for (size_t i = 0; i < m; i++) {
        const fs_v8 pre = ADD(LD(gx + i * ldgx), LD(acc + i * FS_NB));
        const fs_v8 z = act_ps(acts, FS_ROLE_F, ADD(pre, vbg), 0), u = act_ps(acts, FS_ROLE_G, ADD(pre, vbu), 0);
        const fs_v8 keep = fs_v8_fma(vz, fs_v8_sub(one, z), vn);
        fs_v8_st(h + i * ldh, fs_v8_fma(z, LD(h_prev + i * ldhp), fs_v8_mul(keep, u)));
    }
}

static inline fs_v8 sum_ps(const float *p, const float *q) {
    return fs_v8_add(fs_v8_ld(p), fs_v8_ld(q));
}

static void fs_rnn_cell_act__neon(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                  const float *acc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++)
        fs_v8_st(h + i * ldh, act_ps(a, FS_ROLE_F, sum_ps(gx + i * ldgx, acc + i * FS_NB), 1));
}

static void fs_lstm_cell_act__neon(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                   const float *acc, float *c, size_t ldc, float *h, size_t ldh,
                                   const float *pi, const float *pf, const float *po, int coupled) {
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const fs_v8 zero = fs_v8_set1(0.0f);
    const fs_v8 vpi = pi ? fs_v8_ld(pi) : zero, vpf = pf ? fs_v8_ld(pf) : zero;
    const fs_v8 vpo = po ? fs_v8_ld(po) : zero;
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * G * FS_NB;
        const fs_v8 cp = fs_v8_ld(c + i * ldc);
        const fs_v8 ig = act_ps(a, FS_ROLE_F, fs_v8_fma(vpi, cp, sum_ps(g, r)), 1);
        const fs_v8 fg = coupled ? fs_v8_sub(fs_v8_set1(1.0f), ig)
                                  : act_ps(a, FS_ROLE_F, fs_v8_fma(vpf, cp, sum_ps(g + FS_NB, r + FS_NB)), 1);
        const fs_v8 cand = act_ps(a, FS_ROLE_G, sum_ps(g + gg * FS_NB, r + gg * FS_NB), 1);
        const fs_v8 cn = fs_v8_fma(fg, cp, fs_v8_mul(ig, cand));
        const fs_v8 og = act_ps(a, FS_ROLE_F, fs_v8_fma(vpo, cn, sum_ps(g + go * FS_NB, r + go * FS_NB)), 1);
        fs_v8_st(c + i * ldc, cn);
        fs_v8_st(h + i * ldh, fs_v8_mul(og, act_ps(a, FS_ROLE_H, cn, 0)));
    }
}

/* (1 - z) n + z h_prev */
static inline fs_v8 gru_mix_ps(fs_v8 z, fs_v8 n, fs_v8 hp) {
    return fs_v8_fma(z, fs_v8_sub(hp, n), n);
}

static void fs_gru_cell_act__neon(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                  const float *acc, const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        const fs_v8 rg = act_ps(a, FS_ROLE_F, sum_ps(g, r), 1);
        const fs_v8 zg = act_ps(a, FS_ROLE_F, sum_ps(g + FS_NB, r + FS_NB), 1);
        const fs_v8 ng = act_ps(a, FS_ROLE_G, fs_v8_fma(rg, fs_v8_ld(r + 2 * FS_NB),
                                                               fs_v8_ld(g + 2 * FS_NB)), 1);
        fs_v8_st(h + i * ldh, gru_mix_ps(zg, ng, fs_v8_ld(h_prev + i * ldhp)));
    }
}

static void fs_gru_rz_cell_act__neon(size_t m, const fs_acts *a, const float *gx, size_t ldgx,
                                     const float *acc, const float *h_prev, size_t ldhp, float *rh,
                                     float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        const fs_v8 rg = act_ps(a, FS_ROLE_F, sum_ps(g, r), 1);
        fs_v8_st(rh + i * ld, fs_v8_mul(rg, fs_v8_ld(h_prev + i * ldhp)));
        fs_v8_st(z + i * ld, act_ps(a, FS_ROLE_F, sum_ps(g + FS_NB, r + FS_NB), 1));
    }
}

static void fs_gru_n_cell_act__neon(size_t m, const fs_acts *a, const float *gx_n, size_t ldgx,
                                    const float *acc, const float *z, size_t ldz, const float *h_prev,
                                    size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const fs_v8 n = act_ps(a, FS_ROLE_G, sum_ps(gx_n + i * ldgx, acc + i * FS_NB), 1);
        fs_v8_st(h + i * ldh, gru_mix_ps(fs_v8_ld(z + i * ldz), n, fs_v8_ld(h_prev + i * ldhp)));
    }
}

void fs__cells_init_neon(fs_kernels *k) {
    k->rnn_cell_act = fs_rnn_cell_act__neon;
    k->lstm_cell_act = fs_lstm_cell_act__neon;
    k->gru_cell_act = fs_gru_cell_act__neon;
    k->gru_rz_cell_act = fs_gru_rz_cell_act__neon;
    k->gru_n_cell_act = fs_gru_n_cell_act__neon;
    k->rnn_cell = fs_rnn_cell__neon;
    k->lstm_cell = fs_lstm_cell__neon;
    k->gru_cell = fs_gru_cell__neon;
    k->lstm_cell_ext = fs_lstm_cell_ext__neon;
    k->gru_rz_cell = fs_gru_rz_cell__neon;
    k->gru_n_cell = fs_gru_n_cell__neon;
    k->fastrnn_cell = fs_fastrnn_cell__neon;
    k->fastgrnn_cell = fs_fastgrnn_cell__neon;
}
