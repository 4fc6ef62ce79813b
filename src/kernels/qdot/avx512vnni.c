/* The int8 dot products with AVX512_VNNI: vpdpbusd multiplies the weights'
 * unsigned bytes (q + 128) by four broadcast activation codes and adds each
 * column's four products into its int32 lane: 64 multiply-adds per zmm
 * instruction. Columns go 32 (two zmm), 16 (one) or 8 (a ymm) at a time.
 * Integer sums are exact, so the extra partial sums a lone row uses (to
 * hide vpdpbusd's latency) change no bits: the results are generic.c's. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512VNNI__)
#error "kernels/qdot/avx512vnni.c must be compiled with -mavx512f -mavx512vl -mavx512vnni"
#endif

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "../kernels.h"

FS_INLINE int32_t act4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* c = bias + (ascale * scale) * (float)(acc - 128 sum) for 8 or 16 columns. */
FS_INLINE void epi16(__m512i acc, int32_t asum, float ascale, const float *scale, const float *bias, float *c) {
    const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_set1_epi32((int32_t)(128u * (uint32_t)asum))));
    const __m512 t = _mm512_mul_ps(_mm512_set1_ps(ascale), _mm512_loadu_ps(scale));
    _mm512_storeu_ps(c, _mm512_add_ps(bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps(), _mm512_mul_ps(t, x)));
}
FS_INLINE void epi8(__m256i acc, int32_t asum, float ascale, const float *scale, const float *bias, float *c) {
    const __m256 x = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, _mm256_set1_epi32((int32_t)(128u * (uint32_t)asum))));
    const __m256 t = _mm256_mul_ps(_mm256_set1_ps(ascale), _mm256_loadu_ps(scale));
    _mm256_storeu_ps(c, _mm256_add_ps(bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps(), _mm256_mul_ps(t, x)));
}

/* M rows x NZ zmm (16 columns each) at b (k group kg / 4 at kg * width
 * bytes); S partial sums over alternating k groups. */
FS_INLINE void tile16(const int M, const int NZ, const int S, size_t k4, const int8_t *aq, size_t ldq,
                      const float *ascale, const int32_t *asum, const uint8_t *b, size_t width, const float *scale,
                      const float *bias, float *c, size_t ldc, int accumulate) {
    __m512i acc[4][2][4];
    for (int r = 0; r < M; r++)
        for (int z = 0; z < NZ; z++)
            for (int s = 0; s < S; s++) acc[r][z][s] = _mm512_setzero_si512();
    size_t kg = 0;
    for (; kg + 4 * (size_t)S <= k4; kg += 4 * (size_t)S)
        for (int s = 0; s < S; s++) {
            const size_t at = kg + 4 * (size_t)s;
            __m512i w[2];
            for (int z = 0; z < NZ; z++) w[z] = _mm512_loadu_si512((const void *)(b + at * width + z * 64));
            for (int r = 0; r < M; r++) {
                const __m512i av = _mm512_set1_epi32(act4(aq + r * ldq + at));
                for (int z = 0; z < NZ; z++) acc[r][z][s] = _mm512_dpbusd_epi32(acc[r][z][s], w[z], av);
            }
        }
    for (; kg < k4; kg += 4)
        for (int z = 0; z < NZ; z++) {
            const __m512i w = _mm512_loadu_si512((const void *)(b + kg * width + z * 64));
            for (int r = 0; r < M; r++)
                acc[r][z][0] = _mm512_dpbusd_epi32(acc[r][z][0], w, _mm512_set1_epi32(act4(aq + r * ldq + kg)));
        }
    for (int r = 0; r < M; r++)
        for (int z = 0; z < NZ; z++) {
            __m512i sum = acc[r][z][0];
            for (int s = 1; s < S; s++) sum = _mm512_add_epi32(sum, acc[r][z][s]);
            float *out = c + r * ldc + z * 16;
            epi16(sum, asum[r], ascale[r], scale + z * 16, accumulate ? out : bias ? bias + z * 16 : NULL, out);
        }
}

/* The same for 8 columns (a ymm). */
FS_INLINE void tile8(const int M, const int S, size_t k4, const int8_t *aq, size_t ldq, const float *ascale,
                     const int32_t *asum, const uint8_t *b, size_t width, const float *scale, const float *bias,
                     float *c, size_t ldc, int accumulate) {
    __m256i acc[4][4];
    for (int r = 0; r < M; r++)
        for (int s = 0; s < S; s++) acc[r][s] = _mm256_setzero_si256();
    size_t kg = 0;
    for (; kg + 4 * (size_t)S <= k4; kg += 4 * (size_t)S)
        for (int s = 0; s < S; s++) {
            const size_t at = kg + 4 * (size_t)s;
            const __m256i w = _mm256_loadu_si256((const __m256i *)(b + at * width));
            for (int r = 0; r < M; r++)
                acc[r][s] = _mm256_dpbusd_epi32(acc[r][s], w, _mm256_set1_epi32(act4(aq + r * ldq + at)));
        }
    for (; kg < k4; kg += 4) {
        const __m256i w = _mm256_loadu_si256((const __m256i *)(b + kg * width));
        for (int r = 0; r < M; r++)
            acc[r][0] = _mm256_dpbusd_epi32(acc[r][0], w, _mm256_set1_epi32(act4(aq + r * ldq + kg)));
    }
    for (int r = 0; r < M; r++) {
        __m256i sum = acc[r][0];
        for (int s = 1; s < S; s++) sum = _mm256_add_epi32(sum, acc[r][s]);
        epi8(sum, asum[r], ascale[r], scale, accumulate ? c + r * ldc : bias, c + r * ldc);
    }
}

/* Every row for columns [col, col + n) of a block (n 32, 16 or 8): 4 rows a
 * tile, a lone row with 4 partial sums. */
FS_INLINE void rows(const int n, size_t m, size_t k4, const int8_t *aq, size_t ldq, const float *ascale,
                    const int32_t *asum, const uint8_t *b, size_t width, const float *scale, const float *bias,
                    float *c, size_t ldc, int acc) {
    size_t i = 0;
#define FS_Q8_TILE(M, S)                                                                                         \
    (n == 8 ? tile8(M, S, k4, aq + i * ldq, ldq, ascale + i, asum + i, b, width, scale, bias, c + i * ldc, ldc, acc) \
            : tile16(M, n / 16, S, k4, aq + i * ldq, ldq, ascale + i, asum + i, b, width, scale, bias,               \
                     c + i * ldc, ldc, acc))
    for (; i + 4 <= m; i += 4) FS_Q8_TILE(4, 1);
    if (m - i == 3) FS_Q8_TILE(3, 1);
    else if (m - i == 2) FS_Q8_TILE(2, 2);
    else if (m - i == 1) FS_Q8_TILE(1, 4);
#undef FS_Q8_TILE
}

static void fs_q8_gemm_dot__avx512vnni(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale,
                                       const int32_t *asum, const uint8_t *b, const float *scale, size_t g,
                                       size_t nblocks, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t width = g * FS_NB, k4 = FS_Q8_ROUND(k);
    for (size_t jb = 0; jb < nblocks; jb++) {
        const uint8_t *bb = b + jb * k4 * width;
        for (size_t q = 0; q < width;) {
            const int n = width - q >= 32 ? 32 : width - q >= 16 ? 16 : 8;
            const size_t col = jb * width + q;
            rows(n, m, k4, aq, ldq, ascale, asum, bb + q * 4, width, scale + col, bias ? bias + col : NULL, c + col,
                 ldc, accumulate);
            q += (size_t)n;
        }
    }
}

/* int4: a 16-column octet row at p (the last zmm of a tile may be half: 8
 * columns, its upper lanes 0) as its low nibbles and its high ones: shifted
 * down (shift: an extra operation, shared by a tile's rows), or times 16 (one
 * and, no shift: those sums come out 16 times too large, exactly, and are
 * divided by 16 at the group's end). */
typedef struct nibbles { __m512i lo, hi; } nibbles;
FS_INLINE nibbles load_nibbles(const uint8_t *p, __mmask16 live, const int shift) {
    const __m512i v = _mm512_maskz_loadu_epi32(live, p), low = _mm512_set1_epi32(0x0F0F0F0F);
    return (nibbles){_mm512_and_si512(v, low), shift ? _mm512_and_si512(_mm512_srli_epi32(v, 4), low)
                                                     : _mm512_andnot_si512(low, v)};
}

/* One octet (8 k) of M rows x NZ zmm: S = 1, both halves into accumulator 0
 * (the high nibbles shifted); else the low ones into s, the high ones (times
 * 16) into s + 1. */
FS_INLINE void octet(const int M, const int NZ, const int S, const int8_t *aq, size_t ldq, const uint8_t *b,
                     __mmask16 last, __m512i acc[4][2][4], const int s) {
    nibbles w[2];
    for (int z = 0; z < NZ; z++) w[z] = load_nibbles(b + z * 64, z == NZ - 1 ? last : (__mmask16)0xFFFF, S == 1);
    for (int r = 0; r < M; r++) {
        const __m512i a0 = _mm512_set1_epi32(act4(aq + r * ldq)), a1 = _mm512_set1_epi32(act4(aq + r * ldq + 4));
        for (int z = 0; z < NZ; z++) {
            acc[r][z][s] = _mm512_dpbusd_epi32(acc[r][z][s], w[z].lo, a0);
            acc[r][z][S == 1 ? s : s + 1] = _mm512_dpbusd_epi32(acc[r][z][S == 1 ? s : s + 1], w[z].hi, a1);
        }
    }
}

/* int4: M rows x NZ zmm of columns (the last `live` lanes) at b (octet ko at
 * ko * 4 * width bytes), S partial sums over alternating octets per nibble
 * half (the low ones starting from -8 times the row's group code sum); per
 * group that exact sum FMA'd with the group scale (the kernels.h order). */
FS_INLINE void tile4(const int M, const int NZ, const int S, size_t k, size_t group, const int8_t *aq, size_t ldq,
                     const float *ascale, const int32_t *gsum, size_t ldgs, const uint8_t *b, size_t width,
                     const float *scale, __mmask16 last, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t k8 = FS_Q4_ROUND(k);
    __m512 f[4][2];
    for (int r = 0; r < M; r++)
        for (int z = 0; z < NZ; z++) f[r][z] = _mm512_setzero_ps();
    for (size_t k0 = 0, gr = 0; k0 < k8; k0 += group, gr++) {
        const size_t k1 = k0 + group < k8 ? k0 + group : k8;
        __m512i acc[4][2][4]; /* the low-nibble sums start from -8 times the group's code sum */
        for (int r = 0; r < M; r++) {
            const __m512i corr = _mm512_set1_epi32((int32_t)(0u - 8u * (uint32_t)gsum[r * ldgs + gr]));
            for (int z = 0; z < NZ; z++)
                for (int s = 0; s < (S == 1 ? 1 : 4); s++) acc[r][z][s] = s == 0 ? corr : _mm512_setzero_si512();
        }
        size_t ko = k0;
        for (; ko + 8 * (size_t)S <= k1; ko += 8 * (size_t)S)
            for (int s = 0; s < S; s++)
                octet(M, NZ, S, aq + ko + 8 * (size_t)s, ldq, b + (ko + 8 * (size_t)s) / 2 * width, last, acc, 2 * s);
        if (ko < k1) octet(M, NZ, S, aq + ko, ldq, b + ko / 2 * width, last, acc, 0); /* an odd octet count */
        for (int z = 0; z < NZ; z++) {
            const __m512 sc = _mm512_maskz_loadu_ps(z == NZ - 1 ? last : (__mmask16)0xFFFF, scale + gr * width + z * 16);
            for (int r = 0; r < M; r++) {
                __m512i sum = acc[r][z][0];
                if (S == 2) { /* |high sums| <= 16 * 15 * 127 * 64: no overflow */
                    const __m512i hi16 = _mm512_add_epi32(acc[r][z][1], acc[r][z][3]);
                    sum = _mm512_add_epi32(_mm512_add_epi32(sum, acc[r][z][2]), _mm512_srai_epi32(hi16, 4));
                }
                f[r][z] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(sum), f[r][z]);
            }
        }
    }
    for (int r = 0; r < M; r++)
        for (int z = 0; z < NZ; z++) {
            const __mmask16 live = z == NZ - 1 ? last : (__mmask16)0xFFFF;
            float *out = c + r * ldc + z * 16;
            const float *base = accumulate ? out : bias ? bias + z * 16 : NULL;
            const __m512 bv = base ? _mm512_maskz_loadu_ps(live, base) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(out, live, _mm512_add_ps(bv, _mm512_mul_ps(_mm512_set1_ps(ascale[r]), f[r][z])));
        }
}

FS_INLINE void rows4(const int NZ, size_t m, size_t k, size_t group, const int8_t *aq, size_t ldq,
                     const float *ascale, const int32_t *gsum, size_t ldgs, const uint8_t *b, size_t width,
                     const float *scale, __mmask16 last, const float *bias, float *c, size_t ldc, int acc) {
    size_t i = 0;
    for (; i + 4 <= m; i += 4)
        tile4(4, NZ, 1, k, group, aq + i * ldq, ldq, ascale + i, gsum + i * ldgs, ldgs, b, width, scale, last, bias,
              c + i * ldc, ldc, acc);
    for (; i + 2 <= m; i += 2)
        tile4(2, NZ, 1, k, group, aq + i * ldq, ldq, ascale + i, gsum + i * ldgs, ldgs, b, width, scale, last, bias,
              c + i * ldc, ldc, acc);
    if (i < m)
        tile4(1, NZ, 2, k, group, aq + i * ldq, ldq, ascale + i, gsum + i * ldgs, ldgs, b, width, scale, last, bias,
              c + i * ldc, ldc, acc);
}

static void fs_q4_gemm_dot__avx512vnni(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale,
                                       const int32_t *gsum, size_t ldgs, const uint8_t *b, const float *scale,
                                       size_t group, size_t g, size_t nblocks, const float *bias, float *c,
                                       size_t ldc, int accumulate) {
    const size_t width = g * FS_NB, groups = (k + group - 1) / group;
    for (size_t jb = 0; jb < nblocks; jb++) {
        const uint8_t *bb = b + jb * FS_Q4_ROUND(k) / 2 * width;
        for (size_t q = 0; q < width; q += 32) { /* 32 columns (two zmm) at a time; 8 or 24 end in half a zmm */
            const size_t n = width - q < 32 ? width - q : 32, col = jb * width + q;
            const __mmask16 last = n % 16 ? (__mmask16)0x00FF : (__mmask16)0xFFFF;
            const float *sc = scale + jb * groups * width + q, *bi = bias ? bias + col : NULL;
            if (n > 16) rows4(2, m, k, group, aq, ldq, ascale, gsum, ldgs, bb + q * 4, width, sc, last, bi, c + col, ldc, accumulate);
            else rows4(1, m, k, group, aq, ldq, ascale, gsum, ldgs, bb + q * 4, width, sc, last, bi, c + col, ldc, accumulate);
        }
    }
}

void fs__qdot_init_avx512vnni(fs_kernels *k) {
    k->gemm_q8 = fs_q8_gemm_dot__avx512vnni;
    k->gemm_q4 = fs_q4_gemm_dot__avx512vnni;
}
