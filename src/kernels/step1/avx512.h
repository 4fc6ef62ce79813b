/* The fused batch-1 steps' cell epilogues (AVX-512): two blocks' sums into
 * one zmm of cells (../cells/avx512.h, the cell kernels' own code, so the
 * steps give the cell kernels' bits). Shared by the fp32 steps (avx512.c)
 * and the int8 ones (avx512vnni.c).
 *
 * Include only from translation units compiled with -mavx512f -mavx512vl -mfma. */
#ifndef FS_STEP1_AVX512_H
#define FS_STEP1_AVX512_H

#include "../cells/avx512.h"

#define ADD(a, b) _mm512_add_ps(a, b)

/* (lanes 0-7 of a | lanes 0-7 of b), (lanes 8-15 of a | lanes 8-15 of b), (a | b) */
FS_INLINE __m512 low_halves(__m512 a, __m512 b) { return _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)); }
FS_INLINE __m512 high_halves(__m512 a, __m512 b) { return _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)); }
FS_INLINE __m512 join(__m256 a, __m256 b) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)), _mm256_castps_pd(b), 1));
}

/* Blocks j and j + n (two == 0: j alone) of an LSTM from their sums. */
FS_INLINE void lstm_pair(__m512 s[2][2], const float *gx, float *c, float *h_new, size_t j, size_t n, int two) {
    const float *g = gx + j * 4 * FS_NB;
    const size_t ldg = n * 4 * FS_NB, ld = n * FS_NB;
    __m512 cv = fs__ld2(c + j * FS_NB, ld, two);
    const __m512 hv = fs__lstm_zmm(ADD(fs__ld2(g, ldg, two), low_halves(s[0][0], s[1][0])),
                                   ADD(fs__ld2(g + FS_NB, ldg, two), high_halves(s[0][0], s[1][0])),
                                   ADD(fs__ld2(g + 2 * FS_NB, ldg, two), low_halves(s[0][1], s[1][1])),
                                   ADD(fs__ld2(g + 3 * FS_NB, ldg, two), high_halves(s[0][1], s[1][1])), &cv);
    fs__st2(c + j * FS_NB, ld, two, cv);
    fs__st2(h_new + j * FS_NB, ld, two, hv);
}

/* Blocks j and j + n (two == 0: j alone) of a GRU from their sums. */
FS_INLINE void gru_pair(__m512 rz0, __m512 rz1, __m256 n0, __m256 n1, const float *gx, const float *h_prev,
                        float *h_new, size_t j, size_t n, int two) {
    const float *g = gx + j * 3 * FS_NB;
    const size_t ldg = n * 3 * FS_NB, ld = n * FS_NB;
    const __m512 hv = fs__gru_zmm(ADD(fs__ld2(g, ldg, two), low_halves(rz0, rz1)),
                                  ADD(fs__ld2(g + FS_NB, ldg, two), high_halves(rz0, rz1)), join(n0, n1),
                                  fs__ld2(g + 2 * FS_NB, ldg, two), fs__ld2(h_prev + j * FS_NB, ld, two));
    fs__st2(h_new + j * FS_NB, ld, two, hv);
}

#endif /* FS_STEP1_AVX512_H */
