/*
 * test_quant.c -- the weight-only quantised product slot (gemm_bf16; int8's
 * and int4's dot path: test_qdot.c) of every kernel level against the generic
 * (reference) one, and the generic one against a double-precision sum of the
 * widened weights; fs_rnn_quantize's int8 / int4 / bf16 numerics against an
 * independent quantisation here; the stored (raw) form's round trip.
 *
 * Sizes are odd on purpose: m 1..5, 7 and 9 (row tiles, several, and remainders),
 * k 1, 2, 3, 31, 33, 64, 65, 100, g 1..4, 1 or 3 blocks, with and without
 * bias, lda and ldc wider than the data. The bound (docs/quantization.md):
 * |level - generic| <= 1e-5 * (|bias| + sum_k |a_k * w_k|); the ldc padding
 * untouched; bit-identical to the same level's fp32 gemm on the widened
 * weights; each row's bits independent of the call (the row alone, m = 1,
 * gives the same bits); AVX-512 gives AVX2's bits.
 */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

static const float SENTINEL = -12345.5f;

static float bf16_value(uint16_t v) {
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Random bf16 weights of nb blocks (k inputs, width columns) and their
 * values w[jb][k][width]. */
typedef struct qmat {
    uint16_t *b;
    float *w;
} qmat;

static qmat make_qmat(size_t k, size_t width, size_t nb) {
    qmat q = {xmalloc(nb * k * width * 2), xmalloc(nb * k * width * sizeof(float))};
    for (size_t i = 0; i < nb * k * width; i++) {
        q.b[i] = (uint16_t)(0x3c00 + (int)urand(1000.0f) * 3); /* sign and exponent vary */
        q.w[i] = bf16_value(q.b[i]);
    }
    return q;
}

static void check_shape(const char *isa, const fs_kernels *ref, const fs_kernels *opt, size_t m, size_t k,
                        size_t g, size_t nb, int with_bias) {
    const size_t width = g * FS_NB, n = nb * width, lda = k + 3, ldc = n + 5;
    qmat q = make_qmat(k, width, nb);
    float *a = xmalloc(m * lda * sizeof(float)), *bias = with_bias ? xmalloc(n * sizeof(float)) : NULL;
    for (size_t i = 0; i < m * lda; i++) a[i] = urand(1.0f);
    for (size_t i = 0; with_bias && i < n; i++) bias[i] = urand(1.0f);
    float *c_ref = xmalloc(m * ldc * sizeof(float)), *c = xmalloc(m * ldc * sizeof(float));
    float *c_row = xmalloc(ldc * sizeof(float)), *c_f32 = xmalloc(m * ldc * sizeof(float));
    for (size_t i = 0; i < m * ldc; i++) c_ref[i] = c[i] = c_f32[i] = SENTINEL;
    ref->gemm_bf16(m, k, a, lda, q.b, g, nb, bias, c_ref, ldc);
    opt->gemm_bf16(m, k, a, lda, q.b, g, nb, bias, c, ldc);
    double worst_level = 0.0, worst_ref = 0.0;
    int pad_ok = 1, rows_ok = 1;
    for (size_t i = 0; i < m; i++) {
        for (size_t col = 0; col < n; col++) {
            const size_t jb = col / width, cq = col % width;
            double sum = bias ? bias[col] : 0.0, mag = bias ? fabs(bias[col]) : 0.0;
            for (size_t kk = 0; kk < k; kk++) {
                const double t = (double)a[i * lda + kk] * q.w[(jb * k + kk) * width + cq];
                sum += t;
                mag += fabs(t);
            }
            const double e_ref = fabs(c_ref[i * ldc + col] - sum) / (mag + 1e-30);
            const double e_lvl = fabs((double)c[i * ldc + col] - c_ref[i * ldc + col]) / (mag + 1e-30);
            if (!(e_ref <= worst_ref)) worst_ref = e_ref; /* NaN sticks */
            if (!(e_lvl <= worst_level)) worst_level = e_lvl;
        }
        for (size_t col = n; col < ldc; col++) pad_ok &= c[i * ldc + col] == SENTINEL;
        opt->gemm_bf16(1, k, a + i * lda, lda, q.b, g, nb, bias, c_row, ldc);
        rows_ok &= memcmp(c_row, c + i * ldc, n * sizeof(float)) == 0;
    }
    CHECK(worst_ref <= 1e-5, "generic bf16: m=%zu k=%zu g=%zu nb=%zu: rel. error %.3g vs double", m, k, g, nb,
          worst_ref);
    CHECK(worst_level <= 1e-5, "%s bf16: m=%zu k=%zu g=%zu nb=%zu bias=%d: rel. error %.3g vs generic", isa, m, k, g,
          nb, with_bias, worst_level);
    CHECK(pad_ok, "%s bf16: m=%zu k=%zu g=%zu: wrote into the ldc padding", isa, m, k, g);
    CHECK(rows_ok, "%s bf16: m=%zu k=%zu g=%zu nb=%zu: a row alone gives other bits", isa, m, k, g, nb);
    { /* the same bits as gemm on the widened weights: the level's own gemm, or
       * the generic one where the level keeps the generic bf16 kernel (NEON) */
        const fs_kernels *same_sums = opt->gemm_bf16 == ref->gemm_bf16 ? ref : opt;
        same_sums->gemm(m, k, a, lda, q.w, g, nb, bias, c_f32, ldc);
        int same = 1;
        for (size_t i = 0; i < m; i++) same &= memcmp(c_f32 + i * ldc, c + i * ldc, n * sizeof(float)) == 0;
        CHECK(same, "%s bf16: m=%zu k=%zu g=%zu nb=%zu: differs from gemm on the widened weights", isa, m, k, g, nb);
    }
    free(q.b), free(q.w), free(a), free(bias), free(c_ref), free(c), free(c_row), free(c_f32);
}

static void check_levels(void) {
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 9}, ks[] = {1, 2, 3, 31, 33, 64, 65, 100};
    if (fs_set_isa(FS_ISA_GENERIC) != FS_OK) return;
    const fs_kernels ref = *fs__kernels();
    for (fs_isa isa = FS_ISA_GENERIC; isa <= FS_ISA_NEON; isa++) {
        if (!fs_isa_supported(isa) || fs_set_isa(isa) != FS_OK) continue;
        const fs_kernels opt = *fs__kernels();
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t g = 1; g <= 4; g++)
                    for (size_t nb = 1; nb <= 3; nb += 2)
                        check_shape(fs_isa_name(isa), &ref, &opt, ms[mi], ks[ki], g, nb, (int)((mi + ki + g) % 2));
    }
}

/* The AVX-512 level pairs panels across blocks but keeps AVX2's per-element
 * order: the same bits. */
static void check_avx512_is_avx2(void) {
    if (!fs_isa_supported(FS_ISA_AVX512) || fs_set_isa(FS_ISA_AVX2) != FS_OK) return;
    const fs_kernels avx2 = *fs__kernels();
    fs_set_isa(FS_ISA_AVX512);
    const fs_kernels avx512 = *fs__kernels();
    for (size_t g = 1; g <= 4; g++)
        for (size_t m = 1; m <= 9; m += 4)
            for (size_t k = 1; k <= 69; k += 17) {
                const size_t width = g * FS_NB, nb = 3, n = nb * width;
                qmat q = make_qmat(k, width, nb);
                float *a = xmalloc(m * k * sizeof(float)), *bias = xmalloc(n * sizeof(float));
                float *c1 = xmalloc(m * n * sizeof(float)), *c2 = xmalloc(m * n * sizeof(float));
                for (size_t i = 0; i < m * k; i++) a[i] = urand(1.0f);
                for (size_t i = 0; i < n; i++) bias[i] = urand(1.0f);
                avx2.gemm_bf16(m, k, a, k, q.b, g, nb, bias, c1, n);
                avx512.gemm_bf16(m, k, a, k, q.b, g, nb, bias, c2, n);
                CHECK(memcmp(c1, c2, m * n * sizeof(float)) == 0, "avx512 bf16: m=%zu k=%zu g=%zu: not avx2's bits", m,
                      k, g);
                free(q.b), free(q.w), free(a), free(bias), free(c1), free(c2);
            }
}

/* fs_rnn_quantize's numerics on one matrix, recomputed here: a weight of
 * row r, input k dequantises to s * q, s = max|w| / qmax over the row (int8)
 * or its group (int4), q = w / s rounded to nearest even; bf16 rounds the
 * fp32 bits to nearest even. */
static void check_quantize(void) {
    const int H = 13, I = 70; /* odd: padded blocks, a partial int4 group, an odd k */
    fs_rnn_config cfg = make_config(FS_CELL_LSTM, I, H, 1, 0, 1);
    fs_rnn *src = NULL;
    CHECK_STATUS(fs_rnn_create(&cfg, &src), FS_OK);
    if (!src) return;
    const size_t n = 4 * (size_t)H * I;
    float *w = xmalloc(n * sizeof(float)), *got = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) w[i] = urand(1.0f) * (i % 7 == 0 ? 4.0f : 1.0f);
    w[5] = 1.00390625f + 0.001953125f; /* a bf16 tie: 1 + 2^-8 + 2^-9 rounds up to even */
    CHECK_STATUS(fs_rnn_set_param(src, 0, 0, FS_PARAM_WEIGHT_IH, w, n), FS_OK);
    const struct { int32_t dtype, group; } kinds[] = {{FS_DTYPE_INT8, 0}, {FS_DTYPE_INT4, 32}, {FS_DTYPE_INT4, 64},
                                                      {FS_DTYPE_BF16, 0}};
    for (size_t t = 0; t < sizeof kinds / sizeof kinds[0]; t++) {
        fs_rnn *q = NULL;
        CHECK_STATUS(fs_rnn_quantize(src, kinds[t].dtype, kinds[t].group, &q), FS_OK);
        if (!q) continue;
        CHECK_STATUS(fs_rnn_get_param(q, 0, 0, FS_PARAM_WEIGHT_IH, got, n), FS_OK);
        int exact = 1;
        for (size_t r = 0; r < 4 * (size_t)H; r++)
            for (size_t k = 0; k < (size_t)I; k++) {
                const float v = w[r * I + k];
                float expect;
                if (kinds[t].dtype == FS_DTYPE_BF16) {
                    uint32_t bits;
                    memcpy(&bits, &v, sizeof bits);
                    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
                    memcpy(&expect, &bits, sizeof bits);
                } else {
                    const size_t span = kinds[t].group ? (size_t)kinds[t].group : (size_t)I, k0 = k / span * span;
                    const float qmax = kinds[t].dtype == FS_DTYPE_INT8 ? 127.0f : 7.0f;
                    float amax = 0.0f;
                    for (size_t j = k0; j < k0 + span && j < (size_t)I; j++)
                        amax = fabsf(w[r * I + j]) > amax ? fabsf(w[r * I + j]) : amax;
                    const float s = amax / qmax;
                    expect = s * nearbyintf(v / s);
                }
                exact &= got[r * I + k] == expect;
            }
        CHECK(exact, "fs_rnn_quantize %s group %d: a weight differs from its quantisation", fs_dtype_name(kinds[t].dtype),
              (int)kinds[t].group);
        CHECK(got[5] == 1.0078125f || kinds[t].dtype != FS_DTYPE_BF16, "bf16 tie: got %.9g", (double)got[5]);
        fs_rnn_free(q);
    }
    fs_rnn *q = NULL;
    CHECK_STATUS(fs_rnn_quantize(src, FS_DTYPE_INT4, 16, &q), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_quantize(src, FS_DTYPE_INT8, 32, &q), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_quantize(src, 7, 0, &q), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_quantize(src, FS_DTYPE_F32, 0, &q), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_quantize(src, FS_DTYPE_INT8, 0, &q), FS_OK);
    fs_rnn *qq = NULL;
    CHECK_STATUS(fs_rnn_quantize(q, FS_DTYPE_INT4, 32, &qq), FS_ERR_UNSUPPORTED);
    size_t bytes = 0;
    CHECK_STATUS(fs_rnn_tape_size(q, 3, 1, &bytes), FS_ERR_UNSUPPORTED);
    w[0] = NAN;
    CHECK_STATUS(fs_rnn_set_param(q, 0, 0, FS_PARAM_WEIGHT_IH, w, n), FS_ERR_INVALID_ARG);
    fs_rnn_free(q);
    fs_rnn_free(src);
    free(w), free(got);
}

/* The stored form (fs_rnn_get_param_raw / set_param_raw): a round trip into a
 * fresh model of the same configuration gives the same weights; a bad value
 * or size is refused and changes nothing. GRU reset-before: W_hh is two
 * packed parts (r, z rows, then n rows). */
static void check_raw(void) {
    fs_rnn_config cfg = make_config(FS_CELL_GRU, 37, 11, 1, 0, 1);
    cfg.reset_before = 1;
    fs_rnn *src = NULL;
    CHECK_STATUS(fs_rnn_create(&cfg, &src), FS_OK);
    if (!src) return;
    const size_t n = 3 * 11 * 11;
    float *w = xmalloc(n * sizeof(float)), *a = xmalloc(n * sizeof(float)), *b = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) w[i] = urand(1.0f);
    CHECK_STATUS(fs_rnn_set_param(src, 0, 0, FS_PARAM_WEIGHT_HH, w, n), FS_OK);
    size_t bytes = 0;
    CHECK_STATUS(fs_rnn_param_raw_size(src, 0, 0, FS_PARAM_WEIGHT_HH, &bytes), FS_ERR_INVALID_ARG); /* fp32 */
    for (int32_t dt = FS_DTYPE_INT8; dt <= FS_DTYPE_BF16; dt++) {
        fs_rnn *q = NULL, *dst = NULL;
        CHECK_STATUS(fs_rnn_quantize(src, dt, dt == FS_DTYPE_INT4 ? 32 : 0, &q), FS_OK);
        fs_rnn_config qc = cfg;
        qc.dtype = dt, qc.group_size = dt == FS_DTYPE_INT4 ? 32 : 0;
        CHECK_STATUS(fs_rnn_create(&qc, &dst), FS_OK);
        if (!q || !dst) continue;
        CHECK_STATUS(fs_rnn_param_raw_size(q, 0, 0, FS_PARAM_WEIGHT_HH, &bytes), FS_OK);
        const size_t expect = 33 * (dt == FS_DTYPE_INT8 ? 4 + 11 : dt == FS_DTYPE_INT4 ? 4 + 6 : 22);
        CHECK(bytes == expect, "%s raw size %zu, expected %zu", fs_dtype_name(dt), bytes, expect);
        unsigned char *raw = xmalloc(bytes);
        CHECK_STATUS(fs_rnn_get_param_raw(q, 0, 0, FS_PARAM_WEIGHT_HH, raw, bytes), FS_OK);
        CHECK_STATUS(fs_rnn_set_param_raw(dst, 0, 0, FS_PARAM_WEIGHT_HH, raw, bytes - 1), FS_ERR_SHAPE);
        CHECK_STATUS(fs_rnn_set_param_raw(dst, 0, 0, FS_PARAM_WEIGHT_HH, raw, bytes), FS_OK);
        CHECK_STATUS(fs_rnn_get_param(q, 0, 0, FS_PARAM_WEIGHT_HH, a, n), FS_OK);
        CHECK_STATUS(fs_rnn_get_param(dst, 0, 0, FS_PARAM_WEIGHT_HH, b, n), FS_OK);
        CHECK(memcmp(a, b, n * sizeof(float)) == 0, "%s: raw round trip changed the weights", fs_dtype_name(dt));
        /* the last row's (an n row's) last value made invalid: refused, nothing changed */
        if (dt == FS_DTYPE_BF16) raw[bytes - 1] = 0x7F, raw[bytes - 2] = 0x80; /* +inf */
        else if (dt == FS_DTYPE_INT8) raw[bytes - 1] = 0x80;                     /* -128 */
        else raw[bytes - 1] &= 0xF0;                                           /* nibble 0 */
        memset(b, 0, n * sizeof(float));
        CHECK_STATUS(fs_rnn_set_param(dst, 0, 0, FS_PARAM_WEIGHT_HH, b, n), FS_OK); /* all zero now */
        CHECK_STATUS(fs_rnn_set_param_raw(dst, 0, 0, FS_PARAM_WEIGHT_HH, raw, bytes), FS_ERR_INVALID_ARG);
        CHECK_STATUS(fs_rnn_get_param(dst, 0, 0, FS_PARAM_WEIGHT_HH, b, n), FS_OK);
        int untouched = 1;
        for (size_t i = 0; i < n; i++) untouched &= b[i] == 0.0f;
        CHECK(untouched, "%s: a refused raw form changed the model", fs_dtype_name(dt));
        free(raw);
        fs_rnn_free(q);
        fs_rnn_free(dst);
    }
    fs_rnn_free(src);
    free(w), free(a), free(b);
}

/* The header's names, and "unknown" on either side of the range (a negative value too:
 * the range check must not rely on the enum's signedness, which differs by ABI). */
static void check_dtype_names(void) {
    const char *const expect[] = {"f32", "int8", "int4", "bf16"};
    for (int d = 0; d < 4; d++)
        CHECK(strcmp(fs_dtype_name((fs_dtype)d), expect[d]) == 0, "fs_dtype_name(%d) = %s, expected %s", d,
              fs_dtype_name((fs_dtype)d), expect[d]);
    CHECK(strcmp(fs_dtype_name((fs_dtype)4), "unknown") == 0, "fs_dtype_name(4) = %s", fs_dtype_name((fs_dtype)4));
    CHECK(strcmp(fs_dtype_name((fs_dtype)-1), "unknown") == 0, "fs_dtype_name(-1) = %s", fs_dtype_name((fs_dtype)-1));
}

int main(void) {
    check_dtype_names();
    check_levels();
    check_avx512_is_avx2();
    check_quantize();
    check_raw();
    printf("test_quant: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
