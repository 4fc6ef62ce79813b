/*
 * The vectorised math of vmath/avx2.h / vmath/avx512.h, written once over a
 * small SIMD vocabulary that each of those headers defines before including
 * this one (and undefines after): the vector types FS_V / FS_VI, FS_VM(name)
 * (the name with the ISA suffix), and one macro per operation (FS_ADD,
 * FS_FMADD, ... see either header). The operations are the same, in the same
 * order, at every width, so a lane's result never depends on the width: an
 * AVX-512 kernel agrees bit for bit with the AVX2 one (tests/c/test_cells.c).
 * Method, accuracy and special values: vmath/avx2.h.
 *
 * No include guard on purpose: included once per vocabulary, which it
 * undefines at its end so that another width can follow.
 */

#ifndef FS__LOG2E
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
#endif

/* t of fs__expm1_reduced_ps for x = k * v: v k log2(e) + FS__ROUND_MAGIC in
 * one FMA (k = 2 is exact in the constant), so x can be made beside it. */
static inline FS_V FS_VM(fs__round_log2_ps)(FS_V v, float k)
{
    return FS_FMADD(v, FS_SET1(k * FS__LOG2E), FS_SET1(FS__ROUND_MAGIC));
}

/* Shared core: for x with |x| / ln2 < 2^22 (callers clamp) or NaN, and t
 * from fs__round_log2_ps, returns q = e^r - 1 and sets *n_out to n (as
 * integer lanes) where x = n ln2 + r. A NaN x gives a NaN q; *n_out is then
 * garbage that the caller must only ever combine multiplicatively with q
 * (NaN * anything = NaN). */
static inline FS_V FS_VM(fs__expm1_reduced_ps)(FS_V x, FS_V t, FS_VI *n_out)
{
    const FS_V magic = FS_SET1(FS__ROUND_MAGIC);
    FS_V n = FS_SUB(t, magic);
    *n_out = FS_SUBI(FS_AS_INT(t), FS_AS_INT(magic));

    FS_V r = FS_FNMADD(n, FS_SET1(FS__LN2_HI), x);
    r = FS_FNMADD(n, FS_SET1(FS__LN2_LO), r);

    /* P(r) in Estrin's form, (p0 + p1 r) + r^2 ((p2 + p3 r) + p4 r^2): the
     * dependent chain is 3 operations where Horner's is 4. */
    const FS_V r2 = FS_MUL(r, r);
    const FS_V lo = FS_FMADD(FS_SET1(FS__EXP_P1), r, FS_SET1(FS__EXP_P0));
    const FS_V hi = FS_FMADD(FS_SET1(FS__EXP_P3), r, FS_SET1(FS__EXP_P2));
    const FS_V p = FS_FMADD(FS_FMADD(FS_SET1(FS__EXP_P4), r2, hi), r2, lo);
    return FS_FMADD(r2, p, r);
}

/* 2^n for integer lanes n in [-126, 127] (built straight into the exponent
 * field). */
static inline FS_V FS_VM(fs__pow2i_ps)(FS_VI n)
{
    return FS_AS_FLOAT(FS_SLLI(FS_ADDI(n, FS_SET1I(127)), 23));
}

/* e^x. Below ~-87.3 results are denormal (gradually down to 0 below -103.9),
 * above 88.72 (ln FLT_MAX) +inf, e^-inf = 0, e^+inf = +inf, NaN -> NaN.
 * Sigmoid and tanh do not use this: they clamp tighter and skip the two-step
 * scaling below. */
static inline FS_V FS_VM(fs_exp_ps)(FS_V x)
{
    /* Clamp so that |n| <= 150 (and t keeps n in its mantissa); the result
     * of a clamped lane already over/underflows. min/max return their
     * second operand when either is NaN, hence x goes second. */
    x = FS_MIN(FS_SET1(100.0f), x);
    x = FS_MAX(FS_SET1(-110.0f), x);
    FS_VI n;
    FS_V q = FS_VM(fs__expm1_reduced_ps)(x, FS_VM(fs__round_log2_ps)(x, 1.0f), &n);
    FS_V e = FS_ADD(q, FS_SET1(1.0f));
    /* 2^n as 2^h * 2^(n-h), h = n >> 1, so each factor is a normal float
     * even where 2^n is not; the last multiply then overflows to inf or
     * rounds into the denormals as the true result would. */
    FS_VI h = FS_SRAI(n, 1);
    e = FS_MUL(e, FS_VM(fs__pow2i_ps)(h));
    return FS_MUL(e, FS_VM(fs__pow2i_ps)(FS_SUBI(n, h)));
}

/* 1 / (1 + e^-x). */
static inline FS_V FS_VM(fs_sigmoid_ps)(FS_V x)
{
    /* Past |x| = 87 the result is 1 or below 1.7e-38 (abs error only):
     * clamping keeps 2^n normal, one scaling step suffices and
     * 1 + e^-x stays finite. x goes second so that NaN survives. */
    FS_V z = FS_MIN(FS_SET1(87.0f), x);
    z = FS_MAX(FS_SET1(-87.0f), z);
    z = FS_XOR(z, FS_SET1(-0.0f));           /* z = -x */
    FS_VI n;
    FS_V q = FS_VM(fs__expm1_reduced_ps)(z, FS_VM(fs__round_log2_ps)(z, 1.0f), &n);
    FS_V s = FS_VM(fs__pow2i_ps)(n);
    /* 1 + e^-x = 1 + s (1 + q) = s q + (s + 1). */
    FS_V d = FS_FMADD(s, q, FS_ADD(s, FS_SET1(1.0f)));
    /* Numerator 0 below the clamp, so sigmoid(x < -87) = 0 exactly (and
     * sigmoid(-inf) = 0) rather than 1.6e-38; an unordered compare is false,
     * and 0 / NaN keeps the NaN. */
    FS_V num = FS_ONE_IF_GE(x, FS_SET1(-87.0f));
    /* A true division: the divider runs beside the FMA ports, so in a
     * throughput loop it costs no more than rcp + a Newton step (3 more
     * FMA-port uops; measured 15% slower here, error 1.7e-7 instead of 9e-8,
     * and sigmoid(0) = 0.49999997). Same choice in tanh. */
    return FS_DIV(num, d);
}

/* tanh(x) = sign(x) * m / (m + 2), m = e^(2|x|) - 1. */
static inline FS_V FS_VM(fs_tanh_ps)(FS_V x)
{
    const FS_V sign_mask = FS_SET1(-0.0f);
    FS_V sign = FS_AND(x, sign_mask);
    FS_V ax = FS_ANDNOT(sign_mask, x);
    /* tanh(10) = 1 - 4e-9 rounds to 1.0f; the clamp keeps m < 5e8. NaN
     * goes second so that it survives. */
    ax = FS_MIN(FS_SET1(10.0f), ax);
    FS_VI n;
    FS_V q = FS_VM(fs__expm1_reduced_ps)(FS_ADD(ax, ax), FS_VM(fs__round_log2_ps)(ax, 2.0f), &n);
    FS_V s = FS_VM(fs__pow2i_ps)(n);
    /* m = s (1 + q) - 1 = s q + (s - 1): s - 1 is exact for n <= 24 (and
     * negligibly rounded up to n = 29), and for n = 0 m is q itself, so
     * small |x| keeps its relative accuracy. */
    FS_V m = FS_FMADD(s, q, FS_SUB(s, FS_SET1(1.0f)));
    FS_V t = FS_DIV(m, FS_ADD(m, FS_SET1(2.0f)));
    /* tanh(10) = 1 - 4e-9 rounds to 1.0f: past 10 (where the lanes above are
     * garbage, never denormal) exactly 1; NaN compares false and is kept. */
    return FS_OR(t, sign);
}

#undef FS_V
#undef FS_VI
#undef FS_VM
#undef FS_SET1
#undef FS_SET1I
#undef FS_ADD
#undef FS_SUB
#undef FS_MUL
#undef FS_DIV
#undef FS_FMADD
#undef FS_FNMADD
#undef FS_MIN
#undef FS_MAX
#undef FS_XOR
#undef FS_AND
#undef FS_ANDNOT
#undef FS_OR
#undef FS_ONE_IF_GE
#undef FS_AS_INT
#undef FS_AS_FLOAT
#undef FS_ADDI
#undef FS_SUBI
#undef FS_SLLI
#undef FS_SRAI
