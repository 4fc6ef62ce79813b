/* AVX2 + FMA packed GEMM: register-blocked tiles, a GEMV for one row. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/gemm/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"

/* Every path sums in kernels.h's order (FS_PARTIALS). */
#define PARTIALS(g) FS_PARTIALS(g)

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

void fs__gemm_init_avx2(fs_kernels *k) {
    k->gemm = fs_f32_gemm_packed__avx2;
    k->panel_gates = 2; /* a 6 x 2 register tile, whole cache lines per pass */
}
