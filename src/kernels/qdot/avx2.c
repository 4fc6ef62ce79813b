/* The int8 dot path with AVX2: activation quantisation 8 floats at a time,
 * and the products with weights widened to int16 (vpmovzxbw) and vpmaddwd
 * on activation pairs: exact, where vpmaddubsw would saturate (255 * 127 * 2
 * > 32767). Bits as kernels/qdot/generic.c (kernels.h). */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/qdot/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../kernels.h"

FS_INLINE float hmax(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)));
}

static void fs_q8_quant_rows__avx2(size_t m, size_t k, const float *a, size_t lda, int8_t *q, size_t ldq,
                                   float *scale, int32_t *sum) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    const size_t k4 = FS_Q8_ROUND(k);
    for (size_t i = 0; i < m; i++) {
        const float *row = a + i * lda;
        int8_t *out = q + i * ldq;
        __m256 vmax = _mm256_setzero_ps(), vnan = _mm256_setzero_ps();
        size_t kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            const __m256 v = _mm256_and_ps(_mm256_loadu_ps(row + kk), abs_mask);
            vmax = _mm256_max_ps(v, vmax); /* a NaN v gives vmax back, as generic's compare */
            vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        float amax = hmax(vmax);
        int nan = _mm256_movemask_ps(vnan) != 0;
        for (; kk < k; kk++) {
            const float v = fabsf(row[kk]);
            amax = v > amax ? v : amax;
            nan |= v != v;
        }
        if (nan || amax > FLT_MAX || amax < FS_Q8_TINY) {
            memset(out, 0, k4);
            scale[i] = amax < FS_Q8_TINY && !nan ? 0.0f : NAN;
            sum[i] = 0;
            continue;
        }
        const float inv = 127.0f / amax;
        const __m256 vinv = _mm256_set1_ps(inv);
        __m256i vsum = _mm256_setzero_si256();
        for (kk = 0; kk + 8 <= k; kk += 8) {
            __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row + kk), vinv)); /* nearest even */
            c = _mm256_min_epi32(_mm256_max_epi32(c, lo), hi);
            vsum = _mm256_add_epi32(vsum, c);
            const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
            _mm_storel_epi64((__m128i *)(out + kk), _mm_packs_epi16(w16, w16));
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(vsum), _mm256_extracti128_si256(vsum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        int32_t s = _mm_cvtsi128_si32(s4);
        for (; kk < k; kk++) {
            const long c = lrintf(row[kk] * inv);
            out[kk] = (int8_t)(c > 127 ? 127 : c < -127 ? -127 : c);
            s += out[kk];
        }
        for (; kk < k4; kk++) out[kk] = 0;
        scale[i] = amax / 127.0f;
        sum[i] = s;
    }
}

/* Four activation codes of row r at group kg, widened and repeated: (a0, a1, a2, a3) x 4. */
FS_INLINE __m256i act4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(v)));
}

/* c = bias + (ascale * scale) * (float)(acc - 128 sum), 8 columns. */
FS_INLINE void epilogue(__m256i acc, int32_t asum, float ascale, const float *scale, const float *bias, float *c) {
    const __m256 x = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, _mm256_set1_epi32((int32_t)(128u * (uint32_t)asum))));
    const __m256 t = _mm256_mul_ps(_mm256_set1_ps(ascale), _mm256_loadu_ps(scale));
    _mm256_storeu_ps(c, _mm256_add_ps(bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps(), _mm256_mul_ps(t, x)));
}

/* M rows x NP panels of 8 columns (b: the first panel's bytes at k = 0; k
 * group kg / 4 at kg * width, a panel 32 bytes on). Per panel two accumulators of column pairs (0-3,
 * 4-7) holding (k0 + k1, k2 + k3) sums, folded at the end. */
FS_INLINE void tile(const int M, const int NP, size_t k4, const int8_t *aq, size_t ldq, const float *ascale,
                    const int32_t *asum, const uint8_t *b, size_t width, const float *scale, const float *bias,
                    float *c, size_t ldc, int accumulate) {
    __m256i acc[2][2][2];
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) acc[r][p][0] = acc[r][p][1] = _mm256_setzero_si256();
    for (size_t kg = 0; kg < k4; kg += 4) {
        __m256i w[2][2];
        for (int p = 0; p < NP; p++)
            for (int h = 0; h < 2; h++)
                w[p][h] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + kg * width + p * 32 + h * 16)));
        for (int r = 0; r < M; r++) {
            const __m256i av = act4(aq + r * ldq + kg);
            for (int p = 0; p < NP; p++)
                for (int h = 0; h < 2; h++)
                    acc[r][p][h] = _mm256_add_epi32(acc[r][p][h], _mm256_madd_epi16(w[p][h], av));
        }
    }
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) {
            /* hadd: (c0 c1 c4 c5 | c2 c3 c6 c7); the permute puts columns in order */
            const __m256i s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][p][0], acc[r][p][1]), 0xD8);
            float *out = c + r * ldc + p * FS_NB;
            epilogue(s, asum[r], ascale[r], scale + p * FS_NB, accumulate ? out : bias ? bias + p * FS_NB : NULL, out);
        }
}

FS_INLINE void rows(const int NP, size_t m, size_t k4, const int8_t *aq, size_t ldq, const float *ascale,
                    const int32_t *asum, const uint8_t *b, size_t width, const float *scale, const float *bias,
                    float *c, size_t ldc, int acc) {
    size_t i = 0;
    for (; i + 2 <= m; i += 2)
        tile(2, NP, k4, aq + i * ldq, ldq, ascale + i, asum + i, b, width, scale, bias, c + i * ldc, ldc, acc);
    if (i < m) tile(1, NP, k4, aq + i * ldq, ldq, ascale + i, asum + i, b, width, scale, bias, c + i * ldc, ldc, acc);
}

static void fs_q8_gemm_dot__avx2(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale,
                                 const int32_t *asum, const uint8_t *b, const float *scale, size_t g,
                                 size_t nblocks, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t width = g * FS_NB, k4 = FS_Q8_ROUND(k);
    for (size_t jb = 0; jb < nblocks; jb++) {
        const uint8_t *bb = b + jb * k4 * width;
        for (size_t p = 0; p < g;) {
            const size_t col = jb * width + p * FS_NB, np = g - p >= 2 ? 2 : 1;
            const float *bi = bias ? bias + col : NULL;
            if (np == 2) rows(2, m, k4, aq, ldq, ascale, asum, bb + p * FS_NB * 4, width, scale + col, bi, c + col, ldc, accumulate);
            else rows(1, m, k4, aq, ldq, ascale, asum, bb + p * FS_NB * 4, width, scale + col, bi, c + col, ldc, accumulate);
            p += np;
        }
    }
}

/* int4: vpmaddubsw multiplies a nibble byte (0..15) by an activation code and
 * adds pairs: |2 * 15 * 127| = 3810, so the int16 sums of up to four octets
 * (eight of them, 30480) are exact; vpmaddwd by ones widens them to int32.
 * M rows x NP panels of 8 columns (octet ko at ko * 4 * width bytes, a panel
 * 32 bytes on); per group the kernels.h epilogue order. */
FS_INLINE void tile4(const int M, const int NP, size_t k, size_t group, const int8_t *aq, size_t ldq,
                     const float *ascale, const int32_t *gsum, size_t ldgs, const uint8_t *b, size_t width,
                     const float *scale, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t k8 = FS_Q4_ROUND(k);
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 f[2][2];
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) f[r][p] = _mm256_setzero_ps();
    for (size_t k0 = 0, gr = 0; k0 < k8; k0 += group, gr++) {
        const size_t k1 = k0 + group < k8 ? k0 + group : k8;
        __m256i acc[2][2];
        for (int r = 0; r < M; r++)
            for (int p = 0; p < NP; p++) acc[r][p] = _mm256_setzero_si256();
        for (size_t k2 = k0; k2 < k1; k2 += 32) { /* four octets in int16 */
            __m256i t[2][2];
            for (int r = 0; r < M; r++)
                for (int p = 0; p < NP; p++) t[r][p] = _mm256_setzero_si256();
            for (size_t ko = k2; ko < k1 && ko < k2 + 32; ko += 8) {
                __m256i lo[2], hi[2];
                for (int p = 0; p < NP; p++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(b + ko / 2 * width + p * 32));
                    lo[p] = _mm256_and_si256(v, low), hi[p] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                }
                for (int r = 0; r < M; r++) {
                    int32_t a0, a1;
                    memcpy(&a0, aq + r * ldq + ko, 4), memcpy(&a1, aq + r * ldq + ko + 4, 4);
                    const __m256i v0 = _mm256_set1_epi32(a0), v1 = _mm256_set1_epi32(a1);
                    for (int p = 0; p < NP; p++)
                        t[r][p] = _mm256_add_epi16(t[r][p], _mm256_add_epi16(_mm256_maddubs_epi16(lo[p], v0),
                                                                             _mm256_maddubs_epi16(hi[p], v1)));
                }
            }
            for (int r = 0; r < M; r++)
                for (int p = 0; p < NP; p++) acc[r][p] = _mm256_add_epi32(acc[r][p], _mm256_madd_epi16(t[r][p], ones));
        }
        for (int p = 0; p < NP; p++) {
            const __m256 sc = _mm256_loadu_ps(scale + gr * width + p * FS_NB);
            for (int r = 0; r < M; r++) {
                const __m256i x = _mm256_sub_epi32(acc[r][p], _mm256_set1_epi32((int32_t)(8u * (uint32_t)gsum[r * ldgs + gr])));
                f[r][p] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(x), f[r][p]);
            }
        }
    }
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) {
            float *out = c + r * ldc + p * FS_NB;
            const float *base = accumulate ? out : bias ? bias + p * FS_NB : NULL;
            _mm256_storeu_ps(out, _mm256_add_ps(base ? _mm256_loadu_ps(base) : _mm256_setzero_ps(),
                                                _mm256_mul_ps(_mm256_set1_ps(ascale[r]), f[r][p])));
        }
}

static void fs_q4_gemm_dot__avx2(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale,
                                 const int32_t *gsum, size_t ldgs, const uint8_t *b, const float *scale, size_t group,
                                 size_t g, size_t nblocks, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t width = g * FS_NB, groups = (k + group - 1) / group;
    for (size_t jb = 0; jb < nblocks; jb++) {
        const uint8_t *bb = b + jb * FS_Q4_ROUND(k) / 2 * width;
        for (size_t p = 0; p < g; p += 2) {
            const size_t col = jb * width + p * FS_NB;
            const uint8_t *bp = bb + p * FS_NB * 4;
            const float *sc = scale + jb * groups * width + p * FS_NB, *bi = bias ? bias + col : NULL;
            for (size_t i = 0; i < m; i += 2) {
                const int8_t *ai = aq + i * ldq;
                const int32_t *gi = gsum + i * ldgs;
                if (m - i >= 2 && g - p >= 2)
                    tile4(2, 2, k, group, ai, ldq, ascale + i, gi, ldgs, bp, width, sc, bi, c + i * ldc + col, ldc, accumulate);
                else if (m - i >= 2)
                    tile4(2, 1, k, group, ai, ldq, ascale + i, gi, ldgs, bp, width, sc, bi, c + i * ldc + col, ldc, accumulate);
                else if (g - p >= 2)
                    tile4(1, 2, k, group, ai, ldq, ascale + i, gi, ldgs, bp, width, sc, bi, c + i * ldc + col, ldc, accumulate);
                else
                    tile4(1, 1, k, group, ai, ldq, ascale + i, gi, ldgs, bp, width, sc, bi, c + i * ldc + col, ldc, accumulate);
            }
        }
    }
}

void fs__qdot_init_avx2(fs_kernels *k) {
    k->q8_quant_rows = fs_q8_quant_rows__avx2;
    k->gemm_q8 = fs_q8_gemm_dot__avx2;
    k->gemm_q4 = fs_q4_gemm_dot__avx2;
}
