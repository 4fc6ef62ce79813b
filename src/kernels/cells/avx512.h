/*
 * The AVX-512 cell updates on one zmm of two rows (row i in lanes 0-7, row
 * i+1 in lanes 8-15), from pre-activations: the cell kernels
 * (avx512.c) and the fused batch-1 steps (../step1/avx512.c) both call
 * these, so their results agree bit for bit. The math is lane-identical to
 * the AVX2 kernels (one source, vmath/body.h).
 *
 * Include only from translation units compiled with -mavx512f -mavx512vl -mfma.
 */
#ifndef FS_CELLS_AVX512_H
#define FS_CELLS_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "../kernels.h"

#include "../vmath/avx512.h"

/* Rows p and p + ld into one zmm; with one row (two == 0), zeros above it. */
FS_INLINE __m512 fs__ld2(const float *p, size_t ld, int two) {
    const __m512d lo = _mm512_zextpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(p)));
    if (!two) return _mm512_castpd_ps(lo);
    return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_loadu_ps(p + ld)), 1));
}

FS_INLINE void fs__st2(float *p, size_t ld, int two, __m512 v) {
    _mm256_storeu_ps(p, _mm512_castps512_ps256(v));
    if (two) _mm256_storeu_ps(p + ld, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* max(0, x) returns x when x is NaN: NaNs propagate like torch.relu. */
FS_INLINE __m512 fs__rnn_zmm(__m512 pre, int relu) {
    return relu ? _mm512_max_ps(_mm512_setzero_ps(), pre) : fs_tanh_ps__avx512(pre);
}

/* Gates i, f, g, o from their pre-activations; *c updated; returns h. */
FS_INLINE __m512 fs__lstm_zmm(__m512 pi, __m512 pf, __m512 pg, __m512 po, __m512 *c) {
    const __m512 ig = fs_sigmoid_ps__avx512(pi), fg = fs_sigmoid_ps__avx512(pf);
    const __m512 gg = fs_tanh_ps__avx512(pg), og = fs_sigmoid_ps__avx512(po);
    *c = _mm512_fmadd_ps(fg, *c, _mm512_mul_ps(ig, gg));
    return _mm512_mul_ps(og, fs_tanh_ps__avx512(*c));
}

/* GRU, reset after the product: r, z pre-activations, the n product
 * (W_hn h + b_hn) and its input part, h_prev; returns h. */
FS_INLINE __m512 fs__gru_zmm(__m512 pr, __m512 pz, __m512 acc_n, __m512 gx_n, __m512 hp) {
    const __m512 rg = fs_sigmoid_ps__avx512(pr), zg = fs_sigmoid_ps__avx512(pz);
    const __m512 ng = fs_tanh_ps__avx512(_mm512_fmadd_ps(rg, acc_n, gx_n));
    /* (1 - z) n + z h  ==  n + z (h - n) */
    return _mm512_fmadd_ps(zg, _mm512_sub_ps(hp, ng), ng);
}

#endif /* FS_CELLS_AVX512_H */
