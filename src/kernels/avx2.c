/* AVX2 + FMA kernels: register-blocked packed GEMM/GEMV and fused cell updates. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include "kernels.h"
#include "vmath_avx2.h"

/* Summation order, shared by every path so that a row's result never depends
 * on how many rows a call holds (threads split rows differently): S partial
 * sums, partial s taking k = s (mod S) in increasing k, partial 0 starting
 * from the bias and taking the tail, then ((p0 + p1) + p2) + p3. S = 4 for
 * single-panel blocks, else 2: enough FMA chains in flight for a GEMV. */
#define PARTIALS(g) ((g) == 1 ? 4 : 2)

/* C tile of M rows x NP panels of one packed block (k rows kstride apart):
 * M*NP*S accumulators (at most 12) stay in registers for the whole k loop. */
FS_INLINE void tile(const int M, const int NP, const int S, size_t k, const float *a, size_t lda,
                    const float *b, size_t kstride, const float *bias, float *c, size_t ldc) {
    __m256 acc[3][2][4];
    for (int p = 0; p < NP; p++) {
        const __m256 init = bias ? _mm256_loadu_ps(bias + p * FS_NB) : _mm256_setzero_ps();
        for (int r = 0; r < M; r++)
            for (int s = 0; s < S; s++) acc[r][p][s] = s == 0 ? init : _mm256_setzero_ps();
    }
    size_t kk = 0;
    for (; kk + (size_t)S <= k; kk += (size_t)S)
        for (int s = 0; s < S; s++) {
            __m256 w[2];
            for (int p = 0; p < NP; p++) w[p] = _mm256_loadu_ps(b + (kk + s) * kstride + p * FS_NB);
            for (int r = 0; r < M; r++) {
                const __m256 av = _mm256_broadcast_ss(a + r * lda + kk + s);
                for (int p = 0; p < NP; p++) acc[r][p][s] = _mm256_fmadd_ps(av, w[p], acc[r][p][s]);
            }
        }
    for (; kk < k; kk++)
        for (int p = 0; p < NP; p++) {
            const __m256 w = _mm256_loadu_ps(b + kk * kstride + p * FS_NB);
            for (int r = 0; r < M; r++)
                acc[r][p][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * lda + kk), w, acc[r][p][0]);
        }
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) {
            __m256 sum = acc[r][p][0];
            for (int s = 1; s < S; s++) sum = _mm256_add_ps(sum, acc[r][p][s]);
            _mm256_storeu_ps(c + r * ldc + p * FS_NB, sum);
        }
}

/* Rows [0, m) against NP panels of one block: three rows per tile. */
FS_INLINE void rows(const int NP, const int S, size_t m, size_t k, const float *a, size_t lda,
                    const float *b, size_t kstride, const float *bias, float *c, size_t ldc) {
    size_t i = 0;
    for (; i + 3 <= m; i += 3) tile(3, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
    if (m - i == 2) tile(2, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
    if (m - i == 1) tile(1, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
}

/* GEMV over one block of G panels, in the summation order above (G*S
 * accumulators in flight). */
FS_INLINE void gemv_block(const int G, const int S, size_t k, const float *a, const float *b,
                          const float *bias, float *c) {
    __m256 acc[4][4];
    for (int s = 0; s < S; s++)
        for (int p = 0; p < G; p++)
            acc[s][p] = (s == 0 && bias) ? _mm256_loadu_ps(bias + p * FS_NB) : _mm256_setzero_ps();
    const size_t w = (size_t)G * FS_NB;
    size_t kk = 0;
    for (; kk + (size_t)S <= k; kk += (size_t)S)
        for (int s = 0; s < S; s++) {
            const __m256 av = _mm256_broadcast_ss(a + kk + s);
            for (int p = 0; p < G; p++)
                acc[s][p] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + (kk + s) * w + p * FS_NB), acc[s][p]);
        }
    for (; kk < k; kk++) {
        const __m256 av = _mm256_broadcast_ss(a + kk);
        for (int p = 0; p < G; p++)
            acc[0][p] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + kk * w + p * FS_NB), acc[0][p]);
    }
    for (int p = 0; p < G; p++) {
        __m256 sum = acc[0][p];
        for (int s = 1; s < S; s++) sum = _mm256_add_ps(sum, acc[s][p]);
        _mm256_storeu_ps(c + p * FS_NB, sum);
    }
}

static void gemv(size_t k, const float *a, const float *b, size_t g, size_t nblocks,
                 const float *bias, float *c) {
    const size_t width = g * FS_NB;
    for (size_t jb = 0; jb < nblocks; jb++) {
        const float *bb = b + jb * k * width, *bj = bias ? bias + jb * width : NULL;
        float *cj = c + jb * width;
        switch (g) {
        case 1: gemv_block(1, PARTIALS(1), k, a, bb, bj, cj); break;
        case 3: gemv_block(3, PARTIALS(3), k, a, bb, bj, cj); break;
        case 4: gemv_block(4, PARTIALS(4), k, a, bb, bj, cj); break;
        default: /* other gate counts: two panels at a time */
            for (size_t p = 0; p < g; p += 2) {
                if (p + 1 < g) tile(1, 2, 2, k, a, 0, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, cj + p * FS_NB, 0);
                else tile(1, 1, 2, k, a, 0, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, cj + p * FS_NB, 0);
            }
        }
    }
}

static void fs_f32_gemm_packed__avx2(size_t m, size_t k, const float *a, size_t lda,
                                     const float *b, size_t g, size_t nblocks, const float *bias,
                                     float *c, size_t ldc) {
    if (m == 1) {
        gemv(k, a, b, g, nblocks, bias, c);
        return;
    }
    const size_t width = g * FS_NB;
    /* Row chunks small enough to stay in L1 while every panel pair passes over them. */
    size_t chunk = k ? (8192 / k) / 3 * 3 : 3;
    if (chunk < 3) chunk = 3;
    for (size_t i0 = 0; i0 < m; i0 += chunk) {
        const size_t mi = m - i0 < chunk ? m - i0 : chunk;
        const float *ai = a + i0 * lda;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const float *bb = b + jb * k * width;
            float *ci = c + i0 * ldc + jb * width;
            const float *bj = bias ? bias + jb * width : NULL;
            size_t p = 0;
            for (; p + 2 <= g; p += 2)
                rows(2, 2, mi, k, ai, lda, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, ci + p * FS_NB, ldc);
            if (g == 1)
                rows(1, PARTIALS(1), mi, k, ai, lda, bb, width, bj, ci, ldc);
            else if (p < g)
                rows(1, PARTIALS(3), mi, k, ai, lda, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, ci + p * FS_NB, ldc);
        }
    }
}

static void fs_rnn_cell__avx2(size_t m, int relu, const float *gx, size_t ldgx, const float *acc,
                              float *h, size_t ldh) {
    const __m256 zero = _mm256_setzero_ps();
    for (size_t i = 0; i < m; i++) {
        const __m256 pre = _mm256_add_ps(_mm256_loadu_ps(gx + i * ldgx), _mm256_loadu_ps(acc + i * FS_NB));
        /* max(0, x) returns x when x is NaN: NaNs propagate like torch.relu */
        _mm256_storeu_ps(h + i * ldh, relu ? _mm256_max_ps(zero, pre) : fs_tanh_ps__avx2(pre));
    }
}

static void fs_lstm_cell__avx2(size_t m, const float *gx, size_t ldgx, const float *acc, float *c,
                               size_t ldc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 4 * FS_NB;
        const __m256 ig = fs_sigmoid_ps__avx2(_mm256_add_ps(_mm256_loadu_ps(g), _mm256_loadu_ps(r)));
        const __m256 fg = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + FS_NB), _mm256_loadu_ps(r + FS_NB)));
        const __m256 gg = fs_tanh_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + 2 * FS_NB), _mm256_loadu_ps(r + 2 * FS_NB)));
        const __m256 og = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + 3 * FS_NB), _mm256_loadu_ps(r + 3 * FS_NB)));
        const __m256 cn = _mm256_fmadd_ps(fg, _mm256_loadu_ps(c + i * ldc), _mm256_mul_ps(ig, gg));
        _mm256_storeu_ps(c + i * ldc, cn);
        _mm256_storeu_ps(h + i * ldh, _mm256_mul_ps(og, fs_tanh_ps__avx2(cn)));
    }
}

static void fs_gru_cell__avx2(size_t m, const float *gx, size_t ldgx, const float *acc,
                              const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        const __m256 rg = fs_sigmoid_ps__avx2(_mm256_add_ps(_mm256_loadu_ps(g), _mm256_loadu_ps(r)));
        const __m256 zg = fs_sigmoid_ps__avx2(
            _mm256_add_ps(_mm256_loadu_ps(g + FS_NB), _mm256_loadu_ps(r + FS_NB)));
        const __m256 ng = fs_tanh_ps__avx2(
            _mm256_fmadd_ps(rg, _mm256_loadu_ps(r + 2 * FS_NB), _mm256_loadu_ps(g + 2 * FS_NB)));
        const __m256 hp = _mm256_loadu_ps(h_prev + i * ldhp);
        /* (1 - z) n + z h  ==  n + z (h - n) */
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(zg, _mm256_sub_ps(hp, ng), ng));
    }
}

FS_INLINE __m256 act8(int kind, __m256 x) {
    switch (kind) {
    case FS_ACT_SIGMOID: return fs_sigmoid_ps__avx2(x);
    case FS_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x);
    default: return fs_tanh_ps__avx2(x);
    }
}

#define LD(p) _mm256_loadu_ps(p)
#define ADD(a, b) _mm256_add_ps(a, b)

static void fs_lstm_cell_ext__avx2(size_t m, const float *gx, size_t ldgx, const float *acc,
                                   float *c, size_t ldc, float *h, size_t ldh, const float *pi,
                                   const float *pf, const float *po, int coupled) {
    const size_t G = coupled ? 3 : 4, gg = coupled ? 1 : 2, go = coupled ? 2 : 3;
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 vpi = pi ? LD(pi) : zero, vpf = pf ? LD(pf) : zero, vpo = po ? LD(po) : zero;
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * G * FS_NB;
        const __m256 cp = LD(c + i * ldc);
        const __m256 ig = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(vpi, cp, ADD(LD(g), LD(r))));
        const __m256 fg = coupled ? _mm256_sub_ps(one, ig)
                                  : fs_sigmoid_ps__avx2(_mm256_fmadd_ps(vpf, cp, ADD(LD(g + FS_NB), LD(r + FS_NB))));
        const __m256 cand = fs_tanh_ps__avx2(ADD(LD(g + gg * FS_NB), LD(r + gg * FS_NB)));
        const __m256 cn = _mm256_fmadd_ps(fg, cp, _mm256_mul_ps(ig, cand));
        const __m256 og = fs_sigmoid_ps__avx2(_mm256_fmadd_ps(vpo, cn, ADD(LD(g + go * FS_NB), LD(r + go * FS_NB))));
        _mm256_storeu_ps(c + i * ldc, cn);
        _mm256_storeu_ps(h + i * ldh, _mm256_mul_ps(og, fs_tanh_ps__avx2(cn)));
    }
}

static void fs_gru_rz_cell__avx2(size_t m, const float *gx, size_t ldgx, const float *acc,
                                 const float *h_prev, size_t ldhp, float *rh, float *z, size_t ld) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 2 * FS_NB;
        _mm256_storeu_ps(rh + i * ld, _mm256_mul_ps(fs_sigmoid_ps__avx2(ADD(LD(g), LD(r))), LD(h_prev + i * ldhp)));
        _mm256_storeu_ps(z + i * ld, fs_sigmoid_ps__avx2(ADD(LD(g + FS_NB), LD(r + FS_NB))));
    }
}

static void fs_gru_n_cell__avx2(size_t m, const float *gx_n, size_t ldgx, const float *acc,
                                const float *z, size_t ldz, const float *h_prev, size_t ldhp,
                                float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const __m256 n = fs_tanh_ps__avx2(ADD(LD(gx_n + i * ldgx), LD(acc + i * FS_NB)));
        /* (1 - z) n + z h  ==  n + z (h - n) */
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(LD(z + i * ldz), _mm256_sub_ps(LD(h_prev + i * ldhp), n), n));
    }
}

static void fs_fastrnn_cell__avx2(size_t m, int kind, const float *gx, size_t ldgx, const float *acc,
                                  const float *h_prev, size_t ldhp, float *h, size_t ldh, float a,
                                  float b) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (size_t i = 0; i < m; i++) {
        const __m256 u = act8(kind, ADD(LD(gx + i * ldgx), LD(acc + i * FS_NB)));
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(va, u, _mm256_mul_ps(vb, LD(h_prev + i * ldhp))));
    }
}

static void fs_fastgrnn_cell__avx2(size_t m, int gate_act, int update_act, const float *gx,
                                   size_t ldgx, const float *acc, const float *bg, const float *bu,
                                   const float *h_prev, size_t ldhp, float *h, size_t ldh,
                                   float zeta, float nu) {
    const __m256 vz = _mm256_set1_ps(zeta), vn = _mm256_set1_ps(nu), one = _mm256_set1_ps(1.0f);
    const __m256 vbg = LD(bg), vbu = LD(bu);
    for (size_t i = 0; i < m; i++) {
        const __m256 pre = ADD(LD(gx + i * ldgx), LD(acc + i * FS_NB));
        const __m256 z = act8(gate_act, ADD(pre, vbg)), u = act8(update_act, ADD(pre, vbu));
        const __m256 keep = _mm256_fmadd_ps(vz, _mm256_sub_ps(one, z), vn);
        _mm256_storeu_ps(h + i * ldh, _mm256_fmadd_ps(z, LD(h_prev + i * ldhp), _mm256_mul_ps(keep, u)));
    }
}

void fs__kernels_init_avx2(fs_kernels *k) {
    k->gemm = fs_f32_gemm_packed__avx2;
    k->panel_gates = 2; /* a 6 x 2 register tile, whole cache lines per pass */
    k->rnn_cell = fs_rnn_cell__avx2;
    k->lstm_cell = fs_lstm_cell__avx2;
    k->gru_cell = fs_gru_cell__avx2;
    k->lstm_cell_ext = fs_lstm_cell_ext__avx2;
    k->gru_rz_cell = fs_gru_rz_cell__avx2;
    k->gru_n_cell = fs_gru_n_cell__avx2;
    k->fastrnn_cell = fs_fastrnn_cell__avx2;
    k->fastgrnn_cell = fs_fastgrnn_cell__avx2;
}
