/*
 * Batch-1 products in zmm for g = 1, 3 and 4 gates, results left in
 * registers: the GEMM's m == 1 path (avx512.c) stores them, the fused steps
 * (../step1/avx512.c) run the cell on them directly. One source, so both sum
 * every element in the same order (kernels.h: FS_PARTIALS): bit-identical.
 *
 * A block's k-rows are contiguous, so S of them (g * 8 * S floats) fill
 * whole zmm, each lane in the chain of its own partial; a[k] for those lanes
 * is broadcast per k group, shared by the NB blocks in flight (bs floats
 * apart; enough chains to hide FMA latency). Partial 0 starts from the bias
 * (cs floats apart per block; NULL: zero) and takes the k % S tail last.
 *
 * Include only from translation units compiled with -mavx512f -mavx512vl -mfma.
 */
#ifndef FS_GEMV_AVX512_H
#define FS_GEMV_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "../kernels.h"

FS_INLINE __m512 fs__pair_bcast(float lo, float hi) { /* lanes 0-7 lo, 8-15 hi */
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(lo), _mm512_set1_ps(hi));
}

FS_INLINE __m256 fs__upper8(__m512 v) { /* lanes 8-15 (AVX-512F, no DQ) */
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* g = 4, S = 2, NB <= 4: rows k, k+1 are 4 zmm. out[j][v]: panels 2v, 2v+1 of block j. */
FS_INLINE void fs__gemv4_sums(const int NB, size_t k, const float *a, const float *b, size_t bs,
                              const float *bias, size_t cs, __m512 out[][2]) {
    __m512 acc[4][2][2]; /* [j][v][s] */
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
            acc[j][v][0] = bias ? _mm512_loadu_ps(bias + j * cs + 16 * v) : _mm512_setzero_ps();
            acc[j][v][1] = _mm512_setzero_ps();
        }
    const size_t km = k & ~(size_t)1;
    size_t kk = 0;
    for (; kk < km; kk += 2) {
        const __m512 a0 = _mm512_set1_ps(a[kk]), a1 = _mm512_set1_ps(a[kk + 1]);
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            const float *bk = b + j * bs + kk * 32;
            acc[j][0][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(bk), acc[j][0][0]);
            acc[j][1][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(bk + 16), acc[j][1][0]);
            acc[j][0][1] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(bk + 32), acc[j][0][1]);
            acc[j][1][1] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(bk + 48), acc[j][1][1]);
        }
    }
    if (kk < k) {
        const __m512 a0 = _mm512_set1_ps(a[kk]);
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++)
                acc[j][v][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + j * bs + kk * 32 + 16 * v), acc[j][v][0]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) out[j][v] = _mm512_add_ps(acc[j][v][0], acc[j][v][1]);
}

/* g = 3, S = 2, NB <= 4: rows k, k+1 are 3 zmm: (p0 of panels 0, 1), (p0 of panel 2 |
 * p1 of panel 0), (p1 of panels 1, 2). rz[j]: panels 0, 1 of block j; n[j]: panel 2. */
FS_INLINE void fs__gemv3_sums(const int NB, size_t k, const float *a, const float *b, size_t bs,
                              const float *bias, size_t cs, __m512 rz[], __m256 n[]) {
    __m512 acc[4][3];
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        acc[j][0] = bias ? _mm512_loadu_ps(bias + j * cs) : _mm512_setzero_ps();
        acc[j][1] = bias ? _mm512_zextps256_ps512(_mm256_loadu_ps(bias + j * cs + 16)) : _mm512_setzero_ps();
        acc[j][2] = _mm512_setzero_ps();
    }
    const size_t km = k & ~(size_t)1;
    size_t kk = 0;
    for (; kk < km; kk += 2) {
        const __m512 a0 = _mm512_set1_ps(a[kk]), a1 = _mm512_set1_ps(a[kk + 1]);
        const __m512 a01 = _mm512_mask_blend_ps(0xFF00, a0, a1); /* a[k] | a[k+1] */
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            const float *bk = b + j * bs + kk * 24;
            acc[j][0] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(bk), acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(a01, _mm512_loadu_ps(bk + 16), acc[j][1]);
            acc[j][2] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(bk + 32), acc[j][2]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        const float *bj = b + j * bs;
        __m512 p0 = acc[j][0]; /* panels 0, 1 */
        __m256 p0_2 = _mm512_castps512_ps256(acc[j][1]);
        if (kk < k) {
            p0 = _mm512_fmadd_ps(_mm512_set1_ps(a[kk]), _mm512_loadu_ps(bj + kk * 24), p0);
            p0_2 = _mm256_fmadd_ps(_mm256_set1_ps(a[kk]), _mm256_loadu_ps(bj + kk * 24 + 16), p0_2);
        }
        const __m512 p1 = _mm512_shuffle_f32x4(acc[j][1], acc[j][2], _MM_SHUFFLE(1, 0, 3, 2));
        rz[j] = _mm512_add_ps(p0, p1);
        n[j] = _mm256_add_ps(p0_2, fs__upper8(acc[j][2]));
    }
}

/* g = 1, S = 4, NB <= 4: rows k..k+3 are 2 zmm: (p0 | p1), (p2 | p3). out[j]: block j. */
FS_INLINE void fs__gemv1_sums(const int NB, size_t k, const float *a, const float *b, size_t bs,
                              const float *bias, size_t cs, __m256 out[]) {
    __m512 acc[4][2];
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        acc[j][0] = bias ? _mm512_zextps256_ps512(_mm256_loadu_ps(bias + j * cs)) : _mm512_setzero_ps();
        acc[j][1] = _mm512_setzero_ps();
    }
    const size_t km = k & ~(size_t)3;
    size_t kk = 0;
    for (; kk < km; kk += 4) {
        const __m512 a01 = fs__pair_bcast(a[kk], a[kk + 1]), a23 = fs__pair_bcast(a[kk + 2], a[kk + 3]);
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            const float *bk = b + j * bs + kk * 8;
            acc[j][0] = _mm512_fmadd_ps(a01, _mm512_loadu_ps(bk), acc[j][0]);
            acc[j][1] = _mm512_fmadd_ps(a23, _mm512_loadu_ps(bk + 16), acc[j][1]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) {
        __m256 p0 = _mm512_castps512_ps256(acc[j][0]);
        for (size_t t = kk; t < k; t++)
            p0 = _mm256_fmadd_ps(_mm256_set1_ps(a[t]), _mm256_loadu_ps(b + j * bs + t * 8), p0);
        __m256 sum = _mm256_add_ps(p0, fs__upper8(acc[j][0]));
        sum = _mm256_add_ps(sum, _mm512_castps512_ps256(acc[j][1]));
        out[j] = _mm256_add_ps(sum, fs__upper8(acc[j][1]));
    }
}

#endif /* FS_GEMV_AVX512_H */
