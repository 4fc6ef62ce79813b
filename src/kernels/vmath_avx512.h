/*
 * Sigmoid and tanh for AVX-512F, 16 floats per call: the operations of
 * vmath_avx2.h (see there for the method, accuracy and special values) in
 * the same order on wider vectors, so each lane is bit-identical to the AVX2
 * result. That is what lets a kernel mix the two (a ymm tail after zmm
 * pairs) and keeps results independent of how threads split the rows;
 * tests/c/test_cells.c checks it through the cell kernels.
 *
 * Include only from translation units compiled with -mavx512f -mfma.
 */
#ifndef FS_VMATH_AVX512_H
#define FS_VMATH_AVX512_H

#if !defined(__AVX512F__) || !defined(__FMA__)
#error "vmath_avx512.h needs -mavx512f -mfma"
#endif

#include <immintrin.h>

#include "vmath_avx2.h" /* constants (and the ymm versions for tails) */

static inline __m512 fs__expm1_reduced_ps__avx512(__m512 x, __m512i *n_out)
{
    const __m512 magic = _mm512_set1_ps(FS__ROUND_MAGIC);
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(FS__LOG2E), magic);
    __m512 n = _mm512_sub_ps(t, magic);
    *n_out = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(magic));

    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FS__LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FS__LN2_LO), r);

    __m512 p = _mm512_set1_ps(FS__EXP_P4);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(FS__EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(FS__EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(FS__EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(FS__EXP_P0));
    return _mm512_fmadd_ps(_mm512_mul_ps(r, r), p, r);
}

static inline __m512 fs__pow2i_ps__avx512(__m512i n)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
}

/* 1 / (1 + e^-x); as fs_sigmoid_ps__avx2. min/max keep x second so that a
 * NaN survives (the AVX-512 forms have the same operand rule). */
static inline __m512 fs_sigmoid_ps__avx512(__m512 x)
{
    __m512 z = _mm512_min_ps(_mm512_set1_ps(87.0f), x);
    z = _mm512_max_ps(_mm512_set1_ps(-87.0f), z);
    z = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(z), _mm512_set1_epi32((int)0x80000000u)));
    __m512i n;
    __m512 q = fs__expm1_reduced_ps__avx512(z, &n);
    __m512 s = fs__pow2i_ps__avx512(n);
    __m512 d = _mm512_fmadd_ps(s, q, _mm512_add_ps(s, _mm512_set1_ps(1.0f)));
    const __mmask16 ge = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    __m512 num = _mm512_maskz_mov_ps(ge, _mm512_set1_ps(1.0f));
    return _mm512_div_ps(num, d);
}

/* tanh(x) = sign(x) * m / (m + 2), m = e^(2|x|) - 1; as fs_tanh_ps__avx2. */
static inline __m512 fs_tanh_ps__avx512(__m512 x)
{
    const __m512i sign_mask = _mm512_set1_epi32((int)0x80000000u);
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), sign_mask);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign_mask, _mm512_castps_si512(x)));
    ax = _mm512_min_ps(_mm512_set1_ps(10.0f), ax);
    __m512 z = _mm512_add_ps(ax, ax);
    __m512i n;
    __m512 q = fs__expm1_reduced_ps__avx512(z, &n);
    __m512 s = fs__pow2i_ps__avx512(n);
    __m512 m = _mm512_fmadd_ps(s, q, _mm512_sub_ps(s, _mm512_set1_ps(1.0f)));
    __m512 t = _mm512_div_ps(m, _mm512_add_ps(m, _mm512_set1_ps(2.0f)));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

#endif /* FS_VMATH_AVX512_H */
