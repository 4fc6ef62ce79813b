/* AVX2 + FMA products with bf16 packed weights: weights widened to fp32 in
 * registers (a 16-bit shift), fp32 activations broadcast, FMA. Tiles of M
 * rows x NP panels keep their accumulators in registers for the whole k loop.
 * Summation order: gemm's (kernels.h, FS_PARTIALS), never depending on m,
 * nblocks or the tile. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/quant/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"

/* Eight bf16 weights of one panel at p, widened to fp32. */
FS_INLINE __m256 widen(const void *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* bf16 tile: M rows x NP panels of one block (elements kstride apart per k;
 * 2 bytes each), S partials. */
FS_INLINE void tile(const int M, const int NP, const int S, size_t k, const float *a, size_t lda,
                    const char *b, size_t kstride, const float *bias, float *c, size_t ldc) {
    const size_t es = 2;
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
            for (int p = 0; p < NP; p++) w[p] = widen(b + ((kk + s) * kstride + p * FS_NB) * es);
            for (int r = 0; r < M; r++) {
                const __m256 av = _mm256_broadcast_ss(a + r * lda + kk + s);
                for (int p = 0; p < NP; p++) acc[r][p][s] = _mm256_fmadd_ps(av, w[p], acc[r][p][s]);
            }
        }
    for (; kk < k; kk++)
        for (int p = 0; p < NP; p++) {
            const __m256 w = widen(b + (kk * kstride + p * FS_NB) * es);
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

/* Every row of one block's NP panels starting at panel offset (columns). */
FS_INLINE void rows(const int NP, const int S, size_t m, size_t k, const float *a, size_t lda,
                    const char *b, size_t kstride, const float *bias, float *c, size_t ldc) {
    size_t i = 0;
    for (; i + 3 <= m; i += 3) tile(3, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
    if (m - i == 2) tile(2, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
    if (m - i == 1) tile(1, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
}

static void fs_bf16_gemm_packed__avx2(size_t m, size_t k, const float *a, size_t lda, const uint16_t *bw,
                                      size_t g, size_t nblocks, const float *bias, float *c, size_t ldc) {
    const char *b = (const char *)bw;
    const size_t width = g * FS_NB, es = 2;
    const int S = FS_PARTIALS(g);
    for (size_t jb = 0; jb < nblocks; jb++) {
        const char *bb = b + jb * k * width * es;
        for (size_t p = 0; p < g;) { /* panels two at a time */
            const size_t col = jb * width + p * FS_NB;
            const float *bi = bias ? bias + col : NULL;
            if (g - p >= 2) {
                if (S == 2) rows(2, 2, m, k, a, lda, bb + p * FS_NB * es, width, bi, c + col, ldc);
                else rows(2, 4, m, k, a, lda, bb + p * FS_NB * es, width, bi, c + col, ldc);
                p += 2;
            } else {
                if (S == 2) rows(1, 2, m, k, a, lda, bb + p * FS_NB * es, width, bi, c + col, ldc);
                else rows(1, 4, m, k, a, lda, bb + p * FS_NB * es, width, bi, c + col, ldc);
                p += 1;
            }
        }
    }
}

void fs__quant_init_avx2(fs_kernels *k) {
    k->gemm_bf16 = fs_bf16_gemm_packed__avx2;
}
