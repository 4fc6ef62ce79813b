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
 * (Measured by tests/c/test_vmath.c: 8.9e-8, 8.9e-8 / 1.8e-7, 8.4e-8. Cost
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
 * e^x = 2^n e^r; e^r - 1 = r + r^2 P(r) with P of degree 4. The coefficients
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
#error "vmath_avx2.h needs -mavx2 -mfma"
#endif

#include <immintrin.h>

/* log2(e) and ln2 split in two: ln2 = FS__LN2_HI + FS__LN2_LO, where HI is
 * the float nearest ln2 and LO the float nearest the rest. With FMA, n*HI is
 * never rounded before the subtraction, so r = x - n ln2 keeps ~48 bits for
 * |n| <= 150. */
#define FS__LOG2E  1.44269504088896341f
#define FS__LN2_HI 0x1.62e43p-1f                /* 0.693147182... */
#define FS__LN2_LO -0x1.05c61p-29f              /* -1.9046542e-9 */

/* Adding 1.5 * 2^23 to a float of magnitude < 2^22 rounds it to an integer
 * (ties to even) and leaves that integer in the low mantissa bits. */
#define FS__ROUND_MAGIC 12582912.0f             /* 0x1.8p23 */

/* P(r) = (e^r - 1 - r) / r^2 on |r| <= ln2/2; leading term exactly 1/2. */
#define FS__EXP_P0 0.5f
#define FS__EXP_P1 0.1666651964187622f          /* ~1/6   */
#define FS__EXP_P2 0.04166620597243309f         /* ~1/24  */
#define FS__EXP_P3 0.008368882350623608f        /* ~1/120 */
#define FS__EXP_P4 0.0013950478751212358f       /* ~1/720 */

/* Shared core: for x with |x| / ln2 < 2^22 (callers clamp) or NaN, returns
 * q = e^r - 1 and sets *n_out to n (as integer lanes) where x = n ln2 + r.
 * A NaN x gives a NaN q; *n_out is then garbage that the caller must only
 * ever combine multiplicatively with q (NaN * anything = NaN). */
static inline __m256 fs__expm1_reduced_ps__avx2(__m256 x, __m256i *n_out)
{
    const __m256 magic = _mm256_set1_ps(FS__ROUND_MAGIC);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(FS__LOG2E), magic);
    __m256 n = _mm256_sub_ps(t, magic);
    *n_out = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));

    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FS__LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FS__LN2_LO), r);

    __m256 p = _mm256_set1_ps(FS__EXP_P4);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FS__EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FS__EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FS__EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(FS__EXP_P0));
    return _mm256_fmadd_ps(_mm256_mul_ps(r, r), p, r);
}

/* 2^n for integer lanes n in [-126, 127] (built straight into the exponent
 * field). */
static inline __m256 fs__pow2i_ps__avx2(__m256i n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

/* e^x. Below ~-87.3 results are denormal (gradually down to 0 below -103.9),
 * above 88.72 (ln FLT_MAX) +inf, e^-inf = 0, e^+inf = +inf, NaN -> NaN.
 * Sigmoid and tanh do not use this: they clamp tighter and skip the two-step
 * scaling below. */
static inline __m256 fs_exp_ps__avx2(__m256 x)
{
    /* Clamp so that |n| <= 150 (and t keeps n in its mantissa); the result
     * of a clamped lane already over/underflows. min/max return their
     * second operand when either is NaN, hence x goes second. */
    x = _mm256_min_ps(_mm256_set1_ps(100.0f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-110.0f), x);
    __m256i n;
    __m256 q = fs__expm1_reduced_ps__avx2(x, &n);
    __m256 e = _mm256_add_ps(q, _mm256_set1_ps(1.0f));
    /* 2^n as 2^h * 2^(n-h), h = n >> 1, so each factor is a normal float
     * even where 2^n is not; the last multiply then overflows to inf or
     * rounds into the denormals as the true result would. */
    __m256i h = _mm256_srai_epi32(n, 1);
    e = _mm256_mul_ps(e, fs__pow2i_ps__avx2(h));
    return _mm256_mul_ps(e, fs__pow2i_ps__avx2(_mm256_sub_epi32(n, h)));
}

/* 1 / (1 + e^-x). */
static inline __m256 fs_sigmoid_ps__avx2(__m256 x)
{
    /* Past |x| = 87 the result is 1 or below 1.7e-38 (abs error only):
     * clamping keeps 2^n normal, one scaling step suffices and
     * 1 + e^-x stays finite. x goes second so that NaN survives. */
    __m256 z = _mm256_min_ps(_mm256_set1_ps(87.0f), x);
    z = _mm256_max_ps(_mm256_set1_ps(-87.0f), z);
    z = _mm256_xor_ps(z, _mm256_set1_ps(-0.0f));           /* z = -x */
    __m256i n;
    __m256 q = fs__expm1_reduced_ps__avx2(z, &n);
    __m256 s = fs__pow2i_ps__avx2(n);
    /* 1 + e^-x = 1 + s (1 + q) = s q + (s + 1). */
    __m256 d = _mm256_fmadd_ps(s, q, _mm256_add_ps(s, _mm256_set1_ps(1.0f)));
    /* Numerator 0 below the clamp, so sigmoid(x < -87) = 0 exactly (and
     * sigmoid(-inf) = 0) rather than 1.6e-38; an unordered compare is false,
     * and 0 / NaN keeps the NaN. */
    __m256 num = _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ),
                               _mm256_set1_ps(1.0f));
    /* A true division: the divider runs beside the FMA ports, so in a
     * throughput loop it costs no more than rcp + a Newton step (3 more
     * FMA-port uops; measured 15% slower here, error 1.7e-7 instead of 9e-8,
     * and sigmoid(0) = 0.49999997). Same choice in tanh. */
    return _mm256_div_ps(num, d);
}

/* tanh(x) = sign(x) * m / (m + 2), m = e^(2|x|) - 1. */
static inline __m256 fs_tanh_ps__avx2(__m256 x)
{
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    __m256 sign = _mm256_and_ps(x, sign_mask);
    __m256 ax = _mm256_andnot_ps(sign_mask, x);
    /* tanh(10) = 1 - 4e-9 rounds to 1.0f; the clamp keeps m < 5e8. NaN
     * goes second so that it survives. */
    ax = _mm256_min_ps(_mm256_set1_ps(10.0f), ax);
    __m256 z = _mm256_add_ps(ax, ax);
    __m256i n;
    __m256 q = fs__expm1_reduced_ps__avx2(z, &n);
    __m256 s = fs__pow2i_ps__avx2(n);
    /* m = s (1 + q) - 1 = s q + (s - 1): s - 1 is exact for n <= 24 (and
     * negligibly rounded up to n = 29), and for n = 0 m is q itself, so
     * small |x| keeps its relative accuracy. */
    __m256 m = _mm256_fmadd_ps(s, q, _mm256_sub_ps(s, _mm256_set1_ps(1.0f)));
    __m256 t = _mm256_div_ps(m, _mm256_add_ps(m, _mm256_set1_ps(2.0f)));
    return _mm256_or_ps(t, sign);
}

#endif /* FS_VMATH_AVX2_H */
