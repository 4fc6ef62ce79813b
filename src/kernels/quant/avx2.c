/* AVX2 + FMA products with int4 and bf16 packed weights: weights widened to
 * fp32 in registers (int4: both nibbles of a byte; bf16: a 16-bit shift),
 * fp32 activations broadcast, FMA. Tiles of M rows x NP panels keep their
 * accumulators in registers for the whole k loop.
 *
 * Summation order (depends on k only, never on m, nblocks or the tile):
 * bf16 as gemm (kernels.h, FS_PARTIALS); int4 per group two partials (even
 * k, odd k), their sum times the group's scale accumulated into the element
 * in group order, then bias added. */
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

/* int4 tile: M rows x NP panels of one block; bytes kpstride apart per k pair. */
FS_INLINE void tile4(const int M, const int NP, size_t k, size_t group, const float *a, size_t lda,
                     const uint8_t *b, size_t kpstride, const float *scale, size_t sstride, const float *bias,
                     float *c, size_t ldc) {
    const __m256i low = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
    __m256 acc[2][4];
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) acc[r][p] = _mm256_setzero_ps();
    for (size_t k0 = 0, gr = 0; k0 < k; k0 += group, gr++) {
        const size_t k1 = k0 + group < k ? k0 + group : k;
        __m256 part[2][4][2];
        for (int r = 0; r < M; r++)
            for (int p = 0; p < NP; p++) part[r][p][0] = part[r][p][1] = _mm256_setzero_ps();
        size_t kk = k0;
        for (; kk + 2 <= k1; kk += 2) {
            __m256 w[4][2];
            for (int p = 0; p < NP; p++) {
                const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + kk / 2 * kpstride + p * FS_NB)));
                w[p][0] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v, low), eight));
                w[p][1] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v, 4), eight));
            }
            for (int r = 0; r < M; r++)
                for (int h = 0; h < 2; h++) {
                    const __m256 av = _mm256_broadcast_ss(a + r * lda + kk + h);
                    for (int p = 0; p < NP; p++) part[r][p][h] = _mm256_fmadd_ps(av, w[p][h], part[r][p][h]);
                }
        }
        if (kk < k1) /* odd k: the last low nibble */
            for (int p = 0; p < NP; p++) {
                const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + kk / 2 * kpstride + p * FS_NB)));
                const __m256 w = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v, low), eight));
                for (int r = 0; r < M; r++)
                    part[r][p][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * lda + kk), w, part[r][p][0]);
            }
        for (int p = 0; p < NP; p++) {
            const __m256 s = _mm256_loadu_ps(scale + gr * sstride + p * FS_NB);
            for (int r = 0; r < M; r++)
                acc[r][p] = _mm256_fmadd_ps(_mm256_add_ps(part[r][p][0], part[r][p][1]), s, acc[r][p]);
        }
    }
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) {
            const __m256 bi = bias ? _mm256_loadu_ps(bias + p * FS_NB) : _mm256_setzero_ps();
            _mm256_storeu_ps(c + r * ldc + p * FS_NB, _mm256_add_ps(bi, acc[r][p]));
        }
}

FS_INLINE void rows4(const int NP, size_t m, size_t k, size_t group, const float *a, size_t lda, const uint8_t *b,
                     size_t kpstride, const float *scale, size_t sstride, const float *bias, float *c, size_t ldc) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2)
        tile4(2, NP, k, group, a + i * lda, lda, b, kpstride, scale, sstride, bias, c + i * ldc, ldc);
    if (i < m) tile4(1, NP, k, group, a + i * lda, lda, b, kpstride, scale, sstride, bias, c + i * ldc, ldc);
}

static void fs_q4_gemm_packed__avx2(size_t m, size_t k, const float *a, size_t lda, const uint8_t *b,
                                    const float *scale, size_t group, size_t g, size_t nblocks,
                                    const float *bias, float *c, size_t ldc) {
    const size_t width = g * FS_NB, groups = (k + group - 1) / group, kp = (k + 1) / 2;
    for (size_t jb = 0; jb < nblocks; jb++) {
        const uint8_t *bb = b + jb * kp * width;
        const float *sb = scale + jb * groups * width;
        for (size_t p = 0; p < g;) {
            const size_t col = jb * width + p * FS_NB;
            const float *bi = bias ? bias + col : NULL;
            if (g - p >= 2) {
                rows4(2, m, k, group, a, lda, bb + p * FS_NB, width, sb + p * FS_NB, width, bi, c + col, ldc);
                p += 2;
            } else {
                rows4(1, m, k, group, a, lda, bb + p * FS_NB, width, sb + p * FS_NB, width, bi, c + col, ldc);
                p += 1;
            }
        }
    }
}

void fs__quant_init_avx2(fs_kernels *k) {
    k->gemm_q4 = fs_q4_gemm_packed__avx2;
    k->gemm_bf16 = fs_bf16_gemm_packed__avx2;
}
