/* AVX-512 products with bf16 packed weights: as kernels/quant/avx2.c,
 * with the panels of a call (block jb, panel p, in order) taken two at a time
 * into one zmm register -- adjacent panels of a block, or the last panel of
 * one block with the first of the next -- so every g fills whole registers;
 * a lone last panel runs in the low half. Each element's summation order is
 * avx2.c's, so the results are its bits. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "kernels/quant/avx512.c must be compiled with -mavx512f -mavx512vl -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"

/* The columns of two panels (the second may be the first again: a lone panel). */
typedef struct pair {
    const char *b[2];      /* weights of each panel at k = 0 */
    const float *bias[2];  /* NULL: none */
    float *c[2];
    int lone;
} pair;

FS_INLINE __m512 join(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}
FS_INLINE __m512 load2(const float *p0, const float *p1) { return join(_mm256_loadu_ps(p0), _mm256_loadu_ps(p1)); }
FS_INLINE void store2(const pair *pr, size_t off, __m512 v) {
    _mm256_storeu_ps(pr->c[0] + off, _mm512_castps512_ps256(v));
    if (!pr->lone) _mm256_storeu_ps(pr->c[1] + off, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Sixteen bf16 weights (eight of each panel) at element offset e, widened. */
FS_INLINE __m512 widen(const pair *pr, size_t e) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(pr->b[0] + 2 * e))),
                                              _mm_loadu_si128((const __m128i *)(pr->b[1] + 2 * e)), 1);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

/* bf16: M rows of one pair, S partials; rows lda apart in a, ldc in c. */
FS_INLINE void tile(const int M, const int S, size_t k, size_t width, const float *a, size_t lda,
                    const pair *pr, size_t ldc) {
    __m512 acc[3][4];
    const __m512 init = pr->bias[0] ? load2(pr->bias[0], pr->bias[1]) : _mm512_setzero_ps();
    for (int r = 0; r < M; r++)
        for (int s = 0; s < S; s++) acc[r][s] = s == 0 ? init : _mm512_setzero_ps();
    size_t kk = 0;
    for (; kk + (size_t)S <= k; kk += (size_t)S)
        for (int s = 0; s < S; s++) {
            const __m512 w = widen(pr, (kk + s) * width);
            for (int r = 0; r < M; r++) acc[r][s] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + kk + s]), w, acc[r][s]);
        }
    for (; kk < k; kk++) {
        const __m512 w = widen(pr, kk * width);
        for (int r = 0; r < M; r++) acc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + kk]), w, acc[r][0]);
    }
    for (int r = 0; r < M; r++) {
        __m512 sum = acc[r][0];
        for (int s = 1; s < S; s++) sum = _mm512_add_ps(sum, acc[r][s]);
        store2(pr, (size_t)r * ldc, sum);
    }
}

FS_INLINE void rows(const int S, size_t m, size_t k, size_t width, const float *a, size_t lda, const pair *pr,
                    size_t ldc) {
    size_t i = 0;
    pair at = *pr; /* the pair at row i */
    for (; i + 3 <= m; i += 3) {
        at.c[0] = pr->c[0] + i * ldc, at.c[1] = pr->c[1] + i * ldc;
        tile(3, S, k, width, a + i * lda, lda, &at, ldc);
    }
    for (; i < m; i++) {
        at.c[0] = pr->c[0] + i * ldc, at.c[1] = pr->c[1] + i * ldc;
        tile(1, S, k, width, a + i * lda, lda, &at, ldc);
    }
}

/* Every panel (jb, p) of the call, two at a time. */
static void fs_bf16_gemm_packed__avx512(size_t m, size_t k, const float *a, size_t lda, const uint16_t *bw,
                                        size_t g, size_t nblocks, const float *bias, float *c, size_t ldc) {
    const char *b = (const char *)bw;
    const size_t width = g * FS_NB, n = g * nblocks, bstride = k * width * 2;
    const int S = FS_PARTIALS(g);
    for (size_t i = 0; i < n; i += 2) {
        pair pr;
        pr.lone = i + 1 == n;
        for (int h = 0; h < 2; h++) {
            const size_t panel = pr.lone ? i : i + (size_t)h, jb = panel / g, p = panel % g;
            const size_t col = jb * width + p * FS_NB;
            pr.b[h] = b + jb * bstride + p * FS_NB * 2;
            pr.bias[h] = bias ? bias + col : NULL;
            pr.c[h] = c + col;
        }
        if (S == 2) rows(2, m, k, width, a, lda, &pr, ldc);
        else rows(4, m, k, width, a, lda, &pr, ldc);
    }
}

void fs__quant_init_avx512(fs_kernels *k) {
    k->gemm_bf16 = fs_bf16_gemm_packed__avx512;
}
