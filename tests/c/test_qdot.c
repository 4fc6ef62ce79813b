/*
 * test_qdot.c -- the int8 and int4 dot paths (kernels.h: q8_quant_rows,
 * gemm_q8, gemm_q4, the int8 and int4 dot layouts) of every kernel level
 * against the generic one, bit for bit, and the generic one against an fp64
 * product within docs/quantization.md's bound.
 *
 * Activation rows: random, all zero, huge (1e30) and tiny (1e-30, subnormal)
 * magnitudes, ties of the rounding (exact halves of a code), one Inf and one
 * NaN; k 1, 2, 3, 5, 31, 33, 64, 65, 100, 257 (not multiples of 4); m 1..5,
 * 7, 9; g 1..4; 1 or 3 blocks; lda, ldq and ldc wider than the data. Checks:
 * the same codes, scales and sums on every level; the same products bit for
 * bit; a row alone and each block alone give the same bits as the whole call
 * (any split over threads); accumulate adds to c; the ldc padding untouched; NaN products for the
 * non-finite rows; the largest k (FS_Q8_MAX_K) sums exactly. int4: the same
 * shapes and checks with groups of 32 and 64 (k not a multiple of the group:
 * a short last group; not of 8: a half octet), the codes -7..7 at random.
 */
#include "check.h"
#include "kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static const float SENTINEL = -12345.5f;

/* Row i's kind of values. */
enum { RANDOM, ZERO, HUGE_ROW, TINY, TIES, INF_ROW, NAN_ROW, KINDS };

static void fill_row(float *row, size_t k, int kind) {
    for (size_t kk = 0; kk < k; kk++) {
        const float u = urand(1.0f);
        switch (kind) {
        case ZERO: row[kk] = kk % 2 ? -0.0f : 0.0f; break;
        case HUGE_ROW: row[kk] = u * 1e30f; break;
        case TINY: row[kk] = u * 1e-30f * (kk % 3 ? 1.0f : 1e-10f); break; /* some subnormal */
        case TIES: row[kk] = kk == 0 ? 127.0f : (float)((int)(u * 100.0f)) + 0.5f; break; /* scale 1: halves tie */
        case INF_ROW: row[kk] = kk == k / 2 ? INFINITY : u; break;
        case NAN_ROW: row[kk] = kk == k / 2 ? NAN : u; break;
        default: row[kk] = u * (kk % 5 == 0 ? 3.0f : 1.0f);
        }
    }
}

/* Weights: random codes of nb blocks (k inputs, width columns) in the dot
 * layout, their values w[jb][k][width] = scale * q; scales in (0, 0.1]. */
typedef struct qmat {
    uint8_t *b;
    float *scale, *w;
} qmat;

static qmat make_qmat(size_t k, size_t width, size_t nb, int extreme) {
    const size_t k4 = FS_Q8_ROUND(k);
    qmat q = {xmalloc(nb * k4 * width), xmalloc(nb * width * sizeof(float)), xmalloc(nb * k * width * sizeof(float))};
    memset(q.b, 0, nb * k4 * width); /* the padding: never read as weights (kernels.h) */
    for (size_t i = 0; i < nb * width; i++) q.scale[i] = 0.05f + urand(0.05f);
    for (size_t jb = 0; jb < nb; jb++)
        for (size_t kk = 0; kk < k; kk++)
            for (size_t c = 0; c < width; c++) {
                const int v = extreme ? 127 : (int)lrintf(urand(127.0f));
                q.b[(jb * k4 + kk / 4 * 4) * width + c * 4 + kk % 4] = (uint8_t)(v + 128);
                q.w[(jb * k + kk) * width + c] = q.scale[jb * width + c] * (float)v;
            }
    return q;
}

/* Quantised activations of m rows. */
typedef struct qrows {
    int8_t *q;
    float *scale;
    int32_t *sum;
    size_t ldq;
} qrows;

static qrows quantise(const fs_kernels *t, size_t m, size_t k, const float *a, size_t lda) {
    qrows r = {NULL, xmalloc(m * sizeof(float)), xmalloc(m * sizeof(int32_t)), FS_Q8_ROUND(k) + 8};
    r.q = xmalloc(m * r.ldq);
    memset(r.q, 0x5A, m * r.ldq); /* past FS_Q8_ROUND(k): must stay as is */
    t->q8_quant_rows(m, k, a, lda, r.q, r.ldq, r.scale, r.sum);
    return r;
}

static void free_rows(qrows *r) { free(r->q), free(r->scale), free(r->sum); }

static int same_rows(const qrows *x, const qrows *y, size_t m) {
    return memcmp(x->q, y->q, m * x->ldq) == 0 && memcmp(x->scale, y->scale, m * sizeof(float)) == 0 &&
           memcmp(x->sum, y->sum, m * sizeof(int32_t)) == 0;
}

/* The activation codes of every level: the generic ones, bit for bit, and
 * what the kernels.h contract says they are. */
static void check_quant_rows(const char *isa, const fs_kernels *ref, const fs_kernels *opt, size_t k) {
    const size_t m = KINDS, lda = k + 3;
    float *a = xmalloc(m * lda * sizeof(float));
    for (size_t i = 0; i < m; i++) fill_row(a + i * lda, k, (int)i);
    qrows r = quantise(ref, m, k, a, lda), o = quantise(opt, m, k, a, lda);
    CHECK(same_rows(&r, &o, m), "%s q8_quant_rows k=%zu: not the generic codes", isa, k);
    for (size_t i = 0; i < m; i++) {
        const float *row = a + i * lda;
        float amax = 0.0f;
        for (size_t kk = 0; kk < k; kk++) amax = fmaxf(amax, fabsf(row[kk]));
        int32_t sum = 0, ok = 1;
        const int finite = i != INF_ROW && i != NAN_ROW;
        for (size_t kk = 0; kk < FS_Q8_ROUND(k); kk++) {
            const int8_t q = r.q[i * r.ldq + kk];
            const long want = kk < k && finite && amax >= FS_Q8_TINY ? lrintf(row[kk] * (127.0f / amax)) : 0;
            ok &= q == want && q >= -127;
            sum += q;
        }
        for (size_t kk = FS_Q8_ROUND(k); kk < r.ldq; kk++) ok &= r.q[i * r.ldq + kk] == 0x5A;
        CHECK(ok && sum == r.sum[i], "generic row kind %zu k=%zu: codes or their sum wrong", i, k);
        if (finite) CHECK(r.scale[i] == (amax < FS_Q8_TINY ? 0.0f : amax / 127.0f), "row kind %zu: scale %g, expected %g", i, (double)r.scale[i],
                          (double)(amax < FS_Q8_TINY ? 0.0f : amax / 127.0f));
        else CHECK(isnan(r.scale[i]), "row kind %zu (Inf / NaN): scale %g, expected NaN", i, (double)r.scale[i]);
    }
    free_rows(&r), free_rows(&o), free(a);
}

/* |c - (bias + sum_k a_k w_k)| <= 0.5001 * s_a * sum_k |w_k| + 1e-6 * (|bias| + sum_k |a_k w_k| + s_a sum_k |w_k|)
 * + FS_Q8_TINY * sum_k |w_k| (docs/quantization.md: the activation rounding, four float roundings, tiny rows). */
static double excess(double got, double exact, double s_a, double w1, double mag) {
    const double bound = 0.5001 * s_a * w1 + 1e-6 * (mag + s_a * w1) + FS_Q8_TINY * w1;
    return fabs(got - exact) / (bound + DBL_MIN);
}

static void check_shape(const char *isa, const fs_kernels *ref, const fs_kernels *opt, size_t m, size_t k, size_t g,
                        size_t nb, int with_bias) {
    const size_t width = g * FS_NB, n = nb * width, lda = k + 3, ldc = n + 5;
    qmat q = make_qmat(k, width, nb, 0);
    float *a = xmalloc(m * lda * sizeof(float)), *bias = with_bias ? xmalloc(n * sizeof(float)) : NULL;
    for (size_t i = 0; i < m; i++)
        fill_row(a + i * lda, k, i % 3 == 2 ? TIES : i % 4 == 3 ? ZERO : i == 4 ? TINY : i == 6 ? HUGE_ROW : RANDOM);
    for (size_t i = 0; with_bias && i < n; i++) bias[i] = urand(1.0f);
    qrows r = quantise(ref, m, k, a, lda);
    float *c_ref = xmalloc(m * ldc * sizeof(float)), *c = xmalloc(m * ldc * sizeof(float));
    float *c_part = xmalloc(m * ldc * sizeof(float));
    for (size_t i = 0; i < m * ldc; i++) c_ref[i] = c[i] = c_part[i] = SENTINEL;
    ref->gemm_q8(m, k, r.q, r.ldq, r.scale, r.sum, q.b, q.scale, g, nb, bias, c_ref, ldc, 0);
    opt->gemm_q8(m, k, r.q, r.ldq, r.scale, r.sum, q.b, q.scale, g, nb, bias, c, ldc, 0);
    /* any split: each row alone, each block alone */
    for (size_t i = 0; i < m; i++)
        for (size_t jb = 0; jb < nb; jb++)
            opt->gemm_q8(1, k, r.q + i * r.ldq, r.ldq, r.scale + i, r.sum + i, q.b + jb * FS_Q8_ROUND(k) * width,
                         q.scale + jb * width, g, 1, bias ? bias + jb * width : NULL, c_part + i * ldc + jb * width,
                         ldc, 0);
    /* accumulate: c's own values take the bias's place: c_ref + the product without bias */
    float *c_acc = xmalloc(m * ldc * sizeof(float)), *c_nob = xmalloc(m * ldc * sizeof(float));
    memcpy(c_acc, c_ref, m * ldc * sizeof(float));
    ref->gemm_q8(m, k, r.q, r.ldq, r.scale, r.sum, q.b, q.scale, g, nb, NULL, c_nob, ldc, 0);
    opt->gemm_q8(m, k, r.q, r.ldq, r.scale, r.sum, q.b, q.scale, g, nb, bias, c_acc, ldc, 1);
    int acc_ok = 1;
    for (size_t i = 0; i < m; i++)
        for (size_t col = 0; col < n; col++) {
            const float want = c_ref[i * ldc + col] + c_nob[i * ldc + col];
            acc_ok &= memcmp(&want, &c_acc[i * ldc + col], sizeof want) == 0;
        }
    CHECK(acc_ok, "%s int8 dot: m=%zu k=%zu g=%zu nb=%zu: accumulate is not c + the product", isa, m, k, g, nb);
    free(c_acc), free(c_nob);
    double worst = 0.0;
    int pad_ok = 1, same = 1, split_same = 1;
    for (size_t i = 0; i < m; i++) {
        same &= memcmp(c_ref + i * ldc, c + i * ldc, n * sizeof(float)) == 0;
        split_same &= memcmp(c_part + i * ldc, c + i * ldc, n * sizeof(float)) == 0;
        for (size_t col = n; col < ldc; col++) pad_ok &= c[i * ldc + col] == SENTINEL;
        for (size_t col = 0; col < n; col++) {
            const size_t jb = col / width, cq = col % width;
            double sum = bias ? bias[col] : 0.0, mag = bias ? fabs(bias[col]) : 0.0, w1 = 0.0;
            for (size_t kk = 0; kk < k; kk++) {
                const double w = q.w[(jb * k + kk) * width + cq], t = (double)a[i * lda + kk] * w;
                sum += t, mag += fabs(t), w1 += fabs(w);
            }
            const double e = excess(c_ref[i * ldc + col], sum, r.scale[i], w1, mag);
            if (!(e <= worst)) worst = e; /* NaN sticks */
        }
    }
    CHECK(worst <= 1.0, "generic int8 dot: m=%zu k=%zu g=%zu nb=%zu: %.3g x the bound vs fp64", m, k, g, nb, worst);
    CHECK(same, "%s int8 dot: m=%zu k=%zu g=%zu nb=%zu bias=%d: not the generic bits", isa, m, k, g, nb, with_bias);
    CHECK(split_same, "%s int8 dot: m=%zu k=%zu g=%zu nb=%zu: a row or block alone gives other bits", isa, m, k, g, nb);
    CHECK(pad_ok, "%s int8 dot: m=%zu k=%zu g=%zu: wrote into the ldc padding", isa, m, k, g);
    free_rows(&r), free(q.b), free(q.scale), free(q.w), free(a), free(bias), free(c_ref), free(c), free(c_part);
}

/* Rows with an Inf or a NaN give NaN products on every level. */
static void check_nonfinite(const char *isa, const fs_kernels *t) {
    const size_t k = 9, g = 1;
    qmat q = make_qmat(k, g * FS_NB, 1, 0);
    float a[2 * 9], c[2 * FS_NB];
    fill_row(a, k, INF_ROW), fill_row(a + k, k, NAN_ROW);
    qrows r = quantise(t, 2, k, a, k);
    t->gemm_q8(2, k, r.q, r.ldq, r.scale, r.sum, q.b, q.scale, g, 1, NULL, c, FS_NB, 0);
    int all_nan = 1;
    for (size_t i = 0; i < 2 * FS_NB; i++) all_nan &= isnan(c[i]) != 0;
    CHECK(all_nan, "%s int8 dot: a row with Inf / NaN must give NaN products", isa);
    free_rows(&r), free(q.b), free(q.scale), free(q.w);
}

/* The largest k: every code 127 on both sides, the sum 127 * 127 * k just below 2^31, exact. */
static void check_largest_k(const char *isa, const fs_kernels *t) {
    const size_t k = FS_Q8_MAX_K, g = 2, width = g * FS_NB;
    qmat q = make_qmat(k, width, 1, 1);
    float *a = xmalloc(k * sizeof(float)), c[2 * FS_NB];
    for (size_t kk = 0; kk < k; kk++) a[kk] = 1.0f;
    qrows r = quantise(t, 1, k, a, k);
    t->gemm_q8(1, k, r.q, r.ldq, r.scale, r.sum, q.b, q.scale, g, 1, NULL, c, width, 0);
    int exact = 1;
    for (size_t col = 0; col < width; col++)
        exact &= c[col] == (r.scale[0] * q.scale[col]) * (float)(127 * 127 * (int32_t)k);
    CHECK(exact && r.sum[0] == 127 * (int32_t)k, "%s int8 dot: k = FS_Q8_MAX_K not summed exactly", isa);
    free_rows(&r), free(q.b), free(q.scale), free(q.w), free(a);
}

/* int4 weights: random codes -7..7 of nb blocks in the int4 dot layout
 * (nibbles past k 0), scales per group in (0, 0.1], values w[jb][k][width]. */
static qmat make_q4mat(size_t k, size_t width, size_t nb, size_t group) {
    const size_t k8 = FS_Q4_ROUND(k), groups = (k + group - 1) / group;
    qmat q = {xmalloc(nb * k8 / 2 * width), xmalloc(nb * groups * width * sizeof(float)),
              xmalloc(nb * k * width * sizeof(float))};
    memset(q.b, 0, nb * k8 / 2 * width);
    for (size_t i = 0; i < nb * groups * width; i++) q.scale[i] = 0.05f + urand(0.05f);
    for (size_t jb = 0; jb < nb; jb++)
        for (size_t kk = 0; kk < k; kk++)
            for (size_t c = 0; c < width; c++) {
                const int v = (int)lrintf(urand(7.0f));
                q.b[(jb * k8 / 2 + kk / 8 * 4) * width + c * 4 + kk % 4] |= (uint8_t)((v + 8) << (kk / 4 % 2 * 4));
                q.w[(jb * k + kk) * width + c] = q.scale[(jb * groups + kk / group) * width + c] * (float)v;
            }
    return q;
}

/* Activation rows for int4: q8_quant_rows's, codes zeroed up to the octet (as
 * the driver does) and each group's code sum. */
typedef struct q4rows {
    qrows r;
    int32_t *gsum;
    size_t ldgs;
} q4rows;

static q4rows quantise4(const fs_kernels *t, size_t m, size_t k, const float *a, size_t lda, size_t group) {
    q4rows x = {{NULL, xmalloc(m * sizeof(float)), xmalloc(m * sizeof(int32_t)), FS_Q4_ROUND(k) + 8}, NULL,
                (k + group - 1) / group + 1};
    x.r.q = xmalloc(m * x.r.ldq);
    x.gsum = xmalloc(m * x.ldgs * sizeof(int32_t));
    t->q8_quant_rows(m, k, a, lda, x.r.q, x.r.ldq, x.r.scale, x.r.sum);
    for (size_t i = 0; i < m; i++) {
        for (size_t kk = FS_Q8_ROUND(k); kk < FS_Q4_ROUND(k); kk++) x.r.q[i * x.r.ldq + kk] = 0;
        for (size_t gr = 0; gr < x.ldgs; gr++) {
            int32_t sum = 0;
            for (size_t kk = gr * group; kk < k && kk < (gr + 1) * group; kk++) sum += x.r.q[i * x.r.ldq + kk];
            x.gsum[i * x.ldgs + gr] = sum;
        }
    }
    return x;
}

static void q4_gemm(const fs_kernels *t, size_t m, size_t k, const q4rows *x, size_t row, const qmat *q, size_t jb,
                    size_t group, size_t g, size_t nb, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t width = g * FS_NB, groups = (k + group - 1) / group;
    t->gemm_q4(m, k, x->r.q + row * x->r.ldq, x->r.ldq, x->r.scale + row, x->gsum + row * x->ldgs, x->ldgs,
               q->b + jb * FS_Q4_ROUND(k) / 2 * width, q->scale + jb * groups * width, group, g, nb, bias, c, ldc,
               accumulate);
}

/* int4: |c - (bias + sum_k a_k w_k)| <= 0.5001 s_a sum_k |w_k| (the activation rounding) + (groups + 4) 2^-23
 * (|bias| + sum_k |a_k w_k| + s_a sum_k |w_k|) (a rounding per group's FMA, the epilogue's two) + FS_Q8_TINY
 * sum_k |w_k| (docs/quantization.md). */
static double excess4(double got, double exact, double s_a, double w1, double mag, size_t groups) {
    const double bound = 0.5001 * s_a * w1 + (double)(groups + 4) * 0x1p-23 * (mag + s_a * w1) + FS_Q8_TINY * w1;
    return fabs(got - exact) / (bound + DBL_MIN);
}

static void check_q4_shape(const char *isa, const fs_kernels *ref, const fs_kernels *opt, size_t m, size_t k,
                           size_t g, size_t nb, size_t group, int with_bias) {
    const size_t width = g * FS_NB, n = nb * width, lda = k + 3, ldc = n + 5, groups = (k + group - 1) / group;
    qmat q = make_q4mat(k, width, nb, group);
    float *a = xmalloc(m * lda * sizeof(float)), *bias = with_bias ? xmalloc(n * sizeof(float)) : NULL;
    for (size_t i = 0; i < m; i++)
        fill_row(a + i * lda, k, i % 3 == 2 ? TIES : i % 4 == 3 ? ZERO : i == 4 ? TINY : i == 6 ? HUGE_ROW : RANDOM);
    for (size_t i = 0; with_bias && i < n; i++) bias[i] = urand(1.0f);
    q4rows x = quantise4(ref, m, k, a, lda, group);
    float *c_ref = xmalloc(m * ldc * sizeof(float)), *c = xmalloc(m * ldc * sizeof(float));
    float *c_part = xmalloc(m * ldc * sizeof(float)), *c_acc = xmalloc(m * ldc * sizeof(float));
    float *c_nob = xmalloc(m * ldc * sizeof(float));
    for (size_t i = 0; i < m * ldc; i++) c_ref[i] = c[i] = c_part[i] = SENTINEL;
    q4_gemm(ref, m, k, &x, 0, &q, 0, group, g, nb, bias, c_ref, ldc, 0);
    q4_gemm(opt, m, k, &x, 0, &q, 0, group, g, nb, bias, c, ldc, 0);
    for (size_t i = 0; i < m; i++) /* any split: each row alone, each block alone */
        for (size_t jb = 0; jb < nb; jb++)
            q4_gemm(opt, 1, k, &x, i, &q, jb, group, g, 1, bias ? bias + jb * width : NULL,
                    c_part + i * ldc + jb * width, ldc, 0);
    memcpy(c_acc, c_ref, m * ldc * sizeof(float));
    q4_gemm(ref, m, k, &x, 0, &q, 0, group, g, nb, NULL, c_nob, ldc, 0);
    q4_gemm(opt, m, k, &x, 0, &q, 0, group, g, nb, bias, c_acc, ldc, 1);
    double worst = 0.0;
    int pad_ok = 1, same = 1, split_same = 1, acc_ok = 1;
    for (size_t i = 0; i < m; i++) {
        same &= memcmp(c_ref + i * ldc, c + i * ldc, n * sizeof(float)) == 0;
        split_same &= memcmp(c_part + i * ldc, c + i * ldc, n * sizeof(float)) == 0;
        for (size_t col = n; col < ldc; col++) pad_ok &= c[i * ldc + col] == SENTINEL && c_acc[i * ldc + col] == SENTINEL;
        for (size_t col = 0; col < n; col++) {
            const float want = c_ref[i * ldc + col] + c_nob[i * ldc + col];
            acc_ok &= memcmp(&want, &c_acc[i * ldc + col], sizeof want) == 0;
            const size_t jb = col / width, cq = col % width;
            double sum = bias ? bias[col] : 0.0, mag = bias ? fabs(bias[col]) : 0.0, w1 = 0.0;
            for (size_t kk = 0; kk < k; kk++) {
                const double w = q.w[(jb * k + kk) * width + cq], t = (double)a[i * lda + kk] * w;
                sum += t, mag += fabs(t), w1 += fabs(w);
            }
            const double e = excess4(c_ref[i * ldc + col], sum, x.r.scale[i], w1, mag, groups);
            if (!(e <= worst)) worst = e; /* NaN sticks */
        }
    }
    CHECK(worst <= 1.0, "generic int4 dot: m=%zu k=%zu g=%zu nb=%zu group=%zu: %.3g x the bound vs fp64", m, k, g, nb,
          group, worst);
    CHECK(same, "%s int4 dot: m=%zu k=%zu g=%zu nb=%zu group=%zu bias=%d: not the generic bits", isa, m, k, g, nb, group,
          with_bias);
    CHECK(split_same, "%s int4 dot: m=%zu k=%zu g=%zu nb=%zu group=%zu: a row or block alone gives other bits", isa, m,
          k, g, nb, group);
    CHECK(acc_ok, "%s int4 dot: m=%zu k=%zu g=%zu nb=%zu: accumulate is not c + the product", isa, m, k, g, nb);
    CHECK(pad_ok, "%s int4 dot: m=%zu k=%zu g=%zu: wrote into the ldc padding", isa, m, k, g);
    free_rows(&x.r), free(x.gsum), free(q.b), free(q.scale), free(q.w), free(a), free(bias);
    free(c_ref), free(c), free(c_part), free(c_acc), free(c_nob);
}

/* int4: rows with an Inf or a NaN give NaN products. */
static void check_q4_nonfinite(const char *isa, const fs_kernels *t) {
    const size_t k = 9, g = 1, group = 32;
    qmat q = make_q4mat(k, g * FS_NB, 1, group);
    float a[2 * 9], c[2 * FS_NB];
    fill_row(a, k, INF_ROW), fill_row(a + k, k, NAN_ROW);
    q4rows x = quantise4(t, 2, k, a, k, group);
    q4_gemm(t, 2, k, &x, 0, &q, 0, group, g, 1, NULL, c, FS_NB, 0);
    int all_nan = 1;
    for (size_t i = 0; i < 2 * FS_NB; i++) all_nan &= isnan(c[i]) != 0;
    CHECK(all_nan, "%s int4 dot: a row with Inf / NaN must give NaN products", isa);
    free_rows(&x.r), free(x.gsum), free(q.b), free(q.scale), free(q.w);
}

int main(void) {
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 9}, ks[] = {1, 2, 3, 5, 31, 33, 64, 65, 100, 257};
    if (fs_set_isa(FS_ISA_GENERIC) != FS_OK) return 1;
    const fs_kernels ref = *fs__kernels();
    for (fs_isa isa = FS_ISA_GENERIC; isa <= FS_ISA_NEON; isa++) {
        if (!fs_isa_supported(isa) || fs_set_isa(isa) != FS_OK) continue;
        const fs_kernels opt = *fs__kernels();
        const char *name = fs_isa_name(isa);
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) check_quant_rows(name, &ref, &opt, ks[ki]);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t g = 1; g <= 4; g++)
                    for (size_t nb = 1; nb <= 3; nb += 2)
                        check_shape(name, &ref, &opt, ms[mi], ks[ki], g, nb, (int)((mi + ki + g) % 2));
        check_nonfinite(name, &opt);
        check_largest_k(name, &opt);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t g = 1; g <= 4; g++)
                    for (size_t group = 32; group <= 64; group += 32)
                        check_q4_shape(name, &ref, &opt, ms[mi], ks[ki], g, 1 + 2 * ((mi + g) % 2), group,
                                       (int)((mi + ki + g) % 2));
        check_q4_nonfinite(name, &opt);
    }
    printf("test_qdot: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
