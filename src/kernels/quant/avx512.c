/* AVX-512 products with quantised packed weights: as kernels/quant/avx2.c,
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

enum { BF16, Q4 };

/* The columns of two panels (the second may be the first again: a lone panel). */
typedef struct pair {
    const char *b[2];      /* weights of each panel at k = 0 */
    const float *scale[2]; /* int4: per group row; NULL for bf16 */
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

/* int4: M rows of one pair; byte rows kpstride (= width) apart, group scales sstride apart. */
FS_INLINE void tile4(const int M, size_t k, size_t group, size_t width, const float *a, size_t lda, const pair *pr,
                     size_t ldc) {
    const __m512i low = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(8);
    __m512 acc[4];
    for (int r = 0; r < M; r++) acc[r] = _mm512_setzero_ps();
    for (size_t k0 = 0, gr = 0; k0 < k; k0 += group, gr++) {
        const size_t k1 = k0 + group < k ? k0 + group : k;
        __m512 part[4][2];
        for (int r = 0; r < M; r++) part[r][0] = part[r][1] = _mm512_setzero_ps();
        size_t kk = k0;
        for (; kk < k1; kk += 2) {
            const __m128i bytes = _mm_castpd_si128(_mm_loadh_pd(
                _mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)(pr->b[0] + kk / 2 * width))),
                (const double *)(pr->b[1] + kk / 2 * width)));
            const __m512i v = _mm512_cvtepu8_epi32(bytes);
            const __m512 w0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, low), eight));
            if (kk + 1 < k1) {
                const __m512 w1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
                for (int r = 0; r < M; r++) {
                    part[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + kk]), w0, part[r][0]);
                    part[r][1] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + kk + 1]), w1, part[r][1]);
                }
            } else { /* odd k: the last low nibble */
                for (int r = 0; r < M; r++) part[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + kk]), w0, part[r][0]);
            }
        }
        const __m512 s = load2(pr->scale[0] + gr * width, pr->scale[1] + gr * width);
        for (int r = 0; r < M; r++) acc[r] = _mm512_fmadd_ps(_mm512_add_ps(part[r][0], part[r][1]), s, acc[r]);
    }
    for (int r = 0; r < M; r++)
        store2(pr, (size_t)r * ldc,
               _mm512_add_ps(pr->bias[0] ? load2(pr->bias[0], pr->bias[1]) : _mm512_setzero_ps(), acc[r]));
}

FS_INLINE void rows(const int dt, const int S, size_t m, size_t k, size_t group, size_t width, const float *a,
                    size_t lda, const pair *pr, size_t ldc) {
    size_t i = 0;
    pair at = *pr; /* the pair at row i */
    if (dt == Q4) {
        for (; i + 4 <= m; i += 4) {
            at.c[0] = pr->c[0] + i * ldc, at.c[1] = pr->c[1] + i * ldc;
            tile4(4, k, group, width, a + i * lda, lda, &at, ldc);
        }
        for (; i < m; i++) {
            at.c[0] = pr->c[0] + i * ldc, at.c[1] = pr->c[1] + i * ldc;
            tile4(1, k, group, width, a + i * lda, lda, &at, ldc);
        }
        return;
    }
    for (; i + 3 <= m; i += 3) {
        at.c[0] = pr->c[0] + i * ldc, at.c[1] = pr->c[1] + i * ldc;
        tile(3, S, k, width, a + i * lda, lda, &at, ldc);
    }
    for (; i < m; i++) {
        at.c[0] = pr->c[0] + i * ldc, at.c[1] = pr->c[1] + i * ldc;
        tile(1, S, k, width, a + i * lda, lda, &at, ldc);
    }
}

/* Every panel (jb, p) of the call, two at a time. es: bytes per element (int4:
 * per byte row, block stride kp * width bytes); ns: scale floats per block. */
FS_INLINE void gemm_pairs(const int dt, size_t m, size_t k, const float *a, size_t lda, const char *b,
                          const float *scale, size_t group, size_t g, size_t nblocks, const float *bias, float *c,
                          size_t ldc) {
    const size_t width = g * FS_NB, n = g * nblocks;
    const size_t bstride = dt == Q4 ? (k + 1) / 2 * width : k * width * 2;
    const size_t sstride = dt == Q4 ? (k + group - 1) / group * width : width;
    const int S = FS_PARTIALS(g);
    for (size_t i = 0; i < n; i += 2) {
        pair pr;
        pr.lone = i + 1 == n;
        for (int h = 0; h < 2; h++) {
            const size_t panel = pr.lone ? i : i + (size_t)h, jb = panel / g, p = panel % g;
            const size_t col = jb * width + p * FS_NB;
            pr.b[h] = b + jb * bstride + p * FS_NB * (dt == BF16 ? 2 : 1);
            pr.scale[h] = scale ? scale + jb * sstride + p * FS_NB : NULL;
            pr.bias[h] = bias ? bias + col : NULL;
            pr.c[h] = c + col;
        }
        if (S == 2) rows(dt, 2, m, k, group, width, a, lda, &pr, ldc);
        else rows(dt, 4, m, k, group, width, a, lda, &pr, ldc);
    }
}

static void fs_q4_gemm_packed__avx512(size_t m, size_t k, const float *a, size_t lda, const uint8_t *b,
                                      const float *scale, size_t group, size_t g, size_t nblocks,
                                      const float *bias, float *c, size_t ldc) {
    gemm_pairs(Q4, m, k, a, lda, (const char *)b, scale, group, g, nblocks, bias, c, ldc);
}

static void fs_bf16_gemm_packed__avx512(size_t m, size_t k, const float *a, size_t lda, const uint16_t *b,
                                        size_t g, size_t nblocks, const float *bias, float *c, size_t ldc) {
    gemm_pairs(BF16, m, k, a, lda, (const char *)b, NULL, 0, g, nblocks, bias, c, ldc);
}

void fs__quant_init_avx512(fs_kernels *k) {
    k->gemm_q4 = fs_q4_gemm_packed__avx512;
    k->gemm_bf16 = fs_bf16_gemm_packed__avx512;
}
