/*
 * test_gemm.c -- the packed GEMM slot of every kernel level against the
 * generic (reference) one, through the internal table (kernels.h).
 *
 * For each level the CPU and build have: odd sizes (m 1..13, 64, 100; k 1, 2,
 * 3, 6, 8, 37, 64, 256: every k % 4 tail; g 1..5 and 8; 1..5 blocks: every
 * block group of the batch-1 kernels and its remainder; with and without
 * bias; lda and ldc wider than the data) against the reference, within 1e-5
 * of the sum of |terms| of each element; the columns between rows (ldc padding) untouched.
 *
 * Row determinism: a row's result must not depend on the call it is part of
 * (threads split rows and blocks differently). For m = 13 and 100 the full call
 * is compared bit for bit with the same rows computed in pieces: rows split
 * at several points, every row alone (m = 1), every block alone (nblocks = 1).
 *
 * Exit status 0 when every check passes; each failure is printed (up to 30).
 */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void gemm_fn(size_t m, size_t k, const float *a, size_t lda, const float *b, size_t g,
                     size_t nblocks, const float *bias, float *c, size_t ldc);

static float *rand_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++) p[i] = urand(1.0f);
    return p;
}

static const float SENTINEL = -12345.5f;

static gemm_fn *gemm_of(fs_isa isa) {
    if (fs_set_isa(isa) != FS_OK) return NULL;
    return fs__kernels()->gemm; /* the table is refilled by the next fs_set_isa */
}

/* One shape: the level against the reference, then the determinism checks. */
static void check_shape(const char *isa, gemm_fn *ref, gemm_fn *opt, size_t m,
                        size_t k, size_t g, size_t nb, int with_bias, int determinism) {
    const size_t width = g * FS_NB, n = nb * width;
    const size_t lda = k + 3, ldc = n + 5;
    float *a = rand_floats(m * lda), *b = rand_floats(nb * k * width);
    float *bias = with_bias ? rand_floats(n) : NULL;
    float *c_ref = malloc(m * ldc * sizeof(float)), *c = malloc(m * ldc * sizeof(float));
    float *c_part = malloc(m * ldc * sizeof(float));
    if (!c_ref || !c || !c_part) exit(2);
    for (size_t i = 0; i < m * ldc; i++) c_ref[i] = c[i] = c_part[i] = SENTINEL;

    ref(m, k, a, lda, b, g, nb, bias, c_ref, ldc);
    opt(m, k, a, lda, b, g, nb, bias, c, ldc);

    double worst = 0.0;
    int pad_ok = 1;
    for (size_t i = 0; i < m; i++) {
        for (size_t q = 0; q < n; q++) {
            const size_t jb = q / width, p = (q % width) / FS_NB, l = q % FS_NB;
            double scale = bias ? fabs(bias[q]) : 0.0;
            for (size_t kk = 0; kk < k; kk++)
                scale += fabs((double)a[i * lda + kk] * b[(jb * k + kk) * width + p * FS_NB + l]);
            const double err = fabs((double)c[i * ldc + q] - c_ref[i * ldc + q]) / (scale + 1e-30);
            if (!(err <= worst)) worst = err; /* NaN sticks */
        }
        for (size_t q = n; q < ldc; q++) pad_ok &= c[i * ldc + q] == SENTINEL;
    }
    CHECK(worst <= 1e-5, "%s: m=%zu k=%zu g=%zu nblocks=%zu bias=%d: rel. error %.3g vs generic",
          isa, m, k, g, nb, with_bias, worst);
    CHECK(pad_ok, "%s: m=%zu k=%zu g=%zu nblocks=%zu: wrote into the ldc padding", isa, m, k, g, nb);

    if (determinism) {
        const size_t row_bytes = n * sizeof(float);
        /* rows in two pieces, split at several points */
        const size_t splits[] = {1, 2, 5, 6, 7, 11, 12, 50, 99};
        for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) {
            const size_t at = splits[s];
            if (at >= m) continue;
            opt(at, k, a, lda, b, g, nb, bias, c_part, ldc);
            opt(m - at, k, a + at * lda, lda, b, g, nb, bias, c_part + at * ldc, ldc);
            int same = 1;
            for (size_t i = 0; i < m; i++) same &= memcmp(c_part + i * ldc, c + i * ldc, row_bytes) == 0;
            CHECK(same, "%s: m=%zu k=%zu g=%zu nblocks=%zu bias=%d: rows split at %zu differ "
                  "from one call", isa, m, k, g, nb, with_bias, at);
        }
        /* every row alone */
        {
            int same = 1;
            for (size_t i = 0; i < m; i++) {
                opt(1, k, a + i * lda, lda, b, g, nb, bias, c_part + i * ldc, ldc);
                same &= memcmp(c_part + i * ldc, c + i * ldc, row_bytes) == 0;
            }
            CHECK(same, "%s: m=%zu k=%zu g=%zu nblocks=%zu bias=%d: a row alone (m = 1) "
                  "differs from the same row in one call", isa, m, k, g, nb, with_bias);
        }
        /* every block alone */
        if (nb > 1) {
            for (size_t jb = 0; jb < nb; jb++)
                opt(m, k, a, lda, b + jb * k * width, g, 1, bias ? bias + jb * width : NULL,
                    c_part + jb * width, ldc);
            int same = 1;
            for (size_t i = 0; i < m; i++) same &= memcmp(c_part + i * ldc, c + i * ldc, row_bytes) == 0;
            CHECK(same, "%s: m=%zu k=%zu g=%zu nblocks=%zu bias=%d: blocks one at a time "
                  "differ from one call", isa, m, k, g, nb, with_bias);
        }
    }
    free(a), free(b), free(bias), free(c_ref), free(c), free(c_part);
}

int main(void) {
    const fs_isa original = fs_active_isa();
    gemm_fn *ref = gemm_of(FS_ISA_GENERIC);
    if (!ref) {
        fprintf(stderr, "FAIL: the generic level cannot be set\n");
        return 1;
    }
    const fs_isa levels[] = {FS_ISA_GENERIC, FS_ISA_AVX2, FS_ISA_AVX512, FS_ISA_NEON};
    const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 64, 100};
    const size_t ks[] = {1, 2, 3, 6, 8, 37, 64, 256};
    const size_t gs[] = {1, 2, 3, 4, 5, 8};
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        const char *isa = fs_isa_name(levels[li]);
        gemm_fn *opt = gemm_of(levels[li]);
        if (!opt) {
            printf("isa %s: not available here, skipped\n", isa);
            continue;
        }
        const int before = g_failures;
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++)
                    for (size_t nb = 1; nb <= 5; nb++)
                        for (int with_bias = 0; with_bias <= 1; with_bias++)
                            check_shape(isa, ref, opt, ms[mi], ks[ki], gs[gi], nb,
                                        with_bias, ms[mi] == 13 || ms[mi] == 100);
        printf("isa %s: gemm %s\n", isa, g_failures == before ? "ok" : "FAILED");
    }
    fs_set_isa(original);
    printf("test_gemm: %d checks, %d failed\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
