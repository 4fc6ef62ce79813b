/* Portable reference kernels: plain C, libm nonlinearities. Every optimised
 * kernel is tested against these. */
#include <math.h>

#include "kernels.h"

static void fs_f32_gemm_packed__generic(size_t m, size_t k, const float *a, size_t lda,
                                        const float *b, size_t g, size_t nblocks,
                                        const float *bias, float *c, size_t ldc) {
    const size_t width = g * FS_NB; /* columns per block */
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const float *bb = b + jb * k * width;
            float acc[4 * FS_NB * 2]; /* g <= 8 */
            for (size_t q = 0; q < width; q++) acc[q] = bias ? bias[jb * width + q] : 0.0f;
            for (size_t kk = 0; kk < k; kk++) {
                const float av = ai[kk];
                for (size_t q = 0; q < width; q++) acc[q] += av * bb[kk * width + q];
            }
            for (size_t q = 0; q < width; q++) c[i * ldc + jb * width + q] = acc[q];
        }
    }
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void fs_rnn_cell__generic(size_t m, int relu, const float *gx, size_t ldgx,
                                 const float *acc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        for (int l = 0; l < FS_NB; l++) {
            const float pre = gx[i * ldgx + l] + acc[i * FS_NB + l];
            h[i * ldh + l] = relu ? ((pre > 0.0f || isnan(pre)) ? pre : 0.0f) : tanhf(pre);
        }
    }
}

static void fs_lstm_cell__generic(size_t m, const float *gx, size_t ldgx, const float *acc,
                                  float *c, size_t ldc, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 4 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float ig = sigmoidf(g[l] + r[l]);
            const float fg = sigmoidf(g[FS_NB + l] + r[FS_NB + l]);
            const float gg = tanhf(g[2 * FS_NB + l] + r[2 * FS_NB + l]);
            const float og = sigmoidf(g[3 * FS_NB + l] + r[3 * FS_NB + l]);
            const float cn = fg * c[i * ldc + l] + ig * gg;
            c[i * ldc + l] = cn;
            h[i * ldh + l] = og * tanhf(cn);
        }
    }
}

static void fs_gru_cell__generic(size_t m, const float *gx, size_t ldgx, const float *acc,
                                 const float *h_prev, size_t ldhp, float *h, size_t ldh) {
    for (size_t i = 0; i < m; i++) {
        const float *g = gx + i * ldgx, *r = acc + i * 3 * FS_NB;
        for (int l = 0; l < FS_NB; l++) {
            const float rg = sigmoidf(g[l] + r[l]);
            const float zg = sigmoidf(g[FS_NB + l] + r[FS_NB + l]);
            const float ng = tanhf(g[2 * FS_NB + l] + rg * r[2 * FS_NB + l]);
            h[i * ldh + l] = (1.0f - zg) * ng + zg * h_prev[i * ldhp + l];
        }
    }
}

void fs__kernels_init_generic(fs_kernels *k) {
    k->gemm = fs_f32_gemm_packed__generic;
    k->rnn_cell = fs_rnn_cell__generic;
    k->lstm_cell = fs_lstm_cell__generic;
    k->gru_cell = fs_gru_cell__generic;
}
