/*
 * Vectorised exp / sigmoid / tanh for AVX2 + FMA, 8 floats per call.
 *
 * Include only from translation units compiled with -mavx2 -mfma (the AVX2
 * kernel files); everything here is static inline, so there is no symbol to
 * dispatch and no cost beyond the instructions themselves.
 *
 *   fs_exp_ps__avx2      e^x, relative error < 1e-7 over normal results
 *                        ([-87.3, 88.7]); +inf above ln(FLT_MAX), gradual
 *                        underflow to 0 below.
 *   fs_sigmoid_ps__avx2  1 / (1 + e^-x), absolute error < 1e-7; exactly 0
 *                        for x < -87, exactly 1 for x > 16.3.
 *   fs_tanh_ps__avx2     tanh(x), absolute error < 1e-7 and relative error
 *                        < 2e-7 for |x| < 0.5 (no cancellation near 0: it is
 *                        built on expm1); exactly +-1 for |x| > 9.02.
 * (Measured by tests/c/test_vmath.c: 8.9e-8, 8.9e-8 / 1.8e-7, 8.5e-8. Cost
 * about 20 vector ops each, one of them a division for sigmoid and tanh.)
 *
 * All three: NaN in gives NaN out (clamps are written so that a NaN operand
 * wins), sigmoid(-inf) = 0, sigmoid(+inf) = 1, tanh(+-inf) = +-1, tanh is
 * exactly odd (tanh(-x) == -tanh(x), tanh(-0) = -0). Denormal inputs behave as
 * the zero they are close to. No lane of sigmoid or tanh ever produces a
 * denormal (which would cost a microcode assist on some cores). Accuracy is
 * checked against double-precision libm by tests/c/test_vmath.c. Do not build
 * with -ffast-math / -ffinite-math-only: the NaN handling relies on IEEE
 * min/max/compare semantics.
 *
 * Method: x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2, so that
 * e^x = 2^n e^r; e^r - 1 = r + r^2 P(r) with P of degree 4 (in Estrin's
 * form: a chain of 3 dependent operations instead of Horner's 4). The coefficients
 * of P are a weighted minimax fit (Lawson iteration on Chebyshev nodes, in
 * double, then rounded to float) of (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2]:
 * weight r^2 minimises the absolute error of e^r (max 4.2e-9 with the float
 * coefficients, far below float rounding), one polynomial serves exp and
 * expm1 (whose relative-error fit, weight |r|, differs by < 3e-7 in any
 * coefficient and gains nothing measurable). A degree-3 P would leave 1e-7
 * of approximation error on top of rounding; degree 4 costs one more FMA.
 */
#ifndef FS_VMATH_AVX2_H
#define FS_VMATH_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "vmath/avx2.h needs -mavx2 -mfma"
#endif

#include <immintrin.h>

/* The vocabulary of vmath/body.h, 8 lanes. */
#define FS_V __m256
#define FS_VI __m256i
#define FS_VM(name) name##__avx2
#define FS_SET1 _mm256_set1_ps
#define FS_SET1I _mm256_set1_epi32
#define FS_ADD _mm256_add_ps
#define FS_SUB _mm256_sub_ps
#define FS_MUL _mm256_mul_ps
#define FS_DIV _mm256_div_ps
#define FS_FMADD _mm256_fmadd_ps
#define FS_FNMADD _mm256_fnmadd_ps
#define FS_MIN _mm256_min_ps
#define FS_MAX _mm256_max_ps
#define FS_XOR _mm256_xor_ps
#define FS_AND _mm256_and_ps
#define FS_ANDNOT _mm256_andnot_ps
#define FS_OR _mm256_or_ps
#define FS_ONE_IF_GE(x, c) _mm256_and_ps(_mm256_cmp_ps(x, c, _CMP_GE_OQ), _mm256_set1_ps(1.0f))
#define FS_AS_INT _mm256_castps_si256
#define FS_AS_FLOAT _mm256_castsi256_ps
#define FS_ADDI _mm256_add_epi32
#define FS_SUBI _mm256_sub_epi32
#define FS_SLLI _mm256_slli_epi32
#define FS_SRAI _mm256_srai_epi32

#include "body.h"

#endif /* FS_VMATH_AVX2_H */
