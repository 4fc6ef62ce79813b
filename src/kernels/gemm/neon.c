/* aarch64 NEON packed GEMM: register-blocked tiles, a GEMV for one row. A
 * block's 8 columns are two q registers; 32 of them hold the same tiles as
 * the AVX2 kernel's 16 ymm (3 rows x 2 panels x 2 partials = 24 accumulators),
 * in the same summation order, so results match AVX2 bit for bit. */
#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "kernels/gemm/neon.c is for aarch64 with Advanced SIMD"
#endif

#include "../kernels.h"
#include "../vmath/neon.h"

/* Every path sums in kernels.h's order (FS_PARTIALS). */
#define PARTIALS(g) FS_PARTIALS(g)

/* acc + a * w, a one float broadcast over the 8 columns of w. */
FS_INLINE fs_v8 fma_bcast(fs_v8 acc, float32x4_t a, fs_v8 w) {
    return (fs_v8){vfmaq_f32(acc.lo, a, w.lo), vfmaq_f32(acc.hi, a, w.hi)};
}

/* C tile of M rows x NP panels of one packed block (k rows kstride apart). */
FS_INLINE void tile(const int M, const int NP, const int S, size_t k, const float *a, size_t lda,
                    const float *b, size_t kstride, const float *bias, float *c, size_t ldc) {
    fs_v8 acc[3][2][4];
    for (int p = 0; p < NP; p++) {
        const fs_v8 init = bias ? fs_v8_ld(bias + p * FS_NB) : fs_v8_set1(0.0f);
        for (int r = 0; r < M; r++)
            for (int s = 0; s < S; s++) acc[r][p][s] = s == 0 ? init : fs_v8_set1(0.0f);
    }
    size_t kk = 0;
    for (; kk + (size_t)S <= k; kk += (size_t)S)
        for (int s = 0; s < S; s++) {
            fs_v8 w[2];
            for (int p = 0; p < NP; p++) w[p] = fs_v8_ld(b + (kk + s) * kstride + p * FS_NB);
            for (int r = 0; r < M; r++) {
                const float32x4_t av = vdupq_n_f32(a[r * lda + kk + s]);
                for (int p = 0; p < NP; p++) acc[r][p][s] = fma_bcast(acc[r][p][s], av, w[p]);
            }
        }
    for (; kk < k; kk++)
        for (int p = 0; p < NP; p++) {
            const fs_v8 w = fs_v8_ld(b + kk * kstride + p * FS_NB);
            for (int r = 0; r < M; r++) acc[r][p][0] = fma_bcast(acc[r][p][0], vdupq_n_f32(a[r * lda + kk]), w);
        }
    for (int r = 0; r < M; r++)
        for (int p = 0; p < NP; p++) {
            fs_v8 sum = acc[r][p][0];
            for (int s = 1; s < S; s++) sum = fs_v8_add(sum, acc[r][p][s]);
            fs_v8_st(c + r * ldc + p * FS_NB, sum);
        }
}

/* Rows [0, m) against NP panels of one block: three rows per tile. */
FS_INLINE void rows(const int NP, const int S, size_t m, size_t k, const float *a, size_t lda,
                    const float *b, size_t kstride, const float *bias, float *c, size_t ldc) {
    size_t i = 0;
    for (; i + 3 <= m; i += 3) tile(3, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
    if (m - i == 2) tile(2, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
    if (m - i == 1) tile(1, NP, S, k, a + i * lda, lda, b, kstride, bias, c + i * ldc, ldc);
}

/* GEMV over one block of G panels, in the summation order above (G*S*2
 * accumulators in flight, at most 16). */
FS_INLINE void gemv_block(const int G, const int S, size_t k, const float *a, const float *b,
                          const float *bias, float *c) {
    fs_v8 acc[4][4];
    for (int s = 0; s < S; s++)
        for (int p = 0; p < G; p++) acc[s][p] = (s == 0 && bias) ? fs_v8_ld(bias + p * FS_NB) : fs_v8_set1(0.0f);
    const size_t w = (size_t)G * FS_NB;
    size_t kk = 0;
    for (; kk + (size_t)S <= k; kk += (size_t)S)
        for (int s = 0; s < S; s++) {
            const float32x4_t av = vdupq_n_f32(a[kk + s]);
            for (int p = 0; p < G; p++) acc[s][p] = fma_bcast(acc[s][p], av, fs_v8_ld(b + (kk + s) * w + p * FS_NB));
        }
    for (; kk < k; kk++) {
        const float32x4_t av = vdupq_n_f32(a[kk]);
        for (int p = 0; p < G; p++) acc[0][p] = fma_bcast(acc[0][p], av, fs_v8_ld(b + kk * w + p * FS_NB));
    }
    for (int p = 0; p < G; p++) {
        fs_v8 sum = acc[0][p];
        for (int s = 1; s < S; s++) sum = fs_v8_add(sum, acc[s][p]);
        fs_v8_st(c + p * FS_NB, sum);
    }
}

static void gemv(size_t k, const float *a, const float *b, size_t g, size_t nblocks,
                 const float *bias, float *c) {
    const size_t width = g * FS_NB;
    for (size_t jb = 0; jb < nblocks; jb++) {
        const float *bb = b + jb * k * width, *bj = bias ? bias + jb * width : NULL;
        float *cj = c + jb * width;
        switch (g) {
        case 1: gemv_block(1, PARTIALS(1), k, a, bb, bj, cj); break;
        case 3: gemv_block(3, PARTIALS(3), k, a, bb, bj, cj); break;
        case 4: gemv_block(4, PARTIALS(4), k, a, bb, bj, cj); break;
        default: /* other gate counts: two panels at a time */
            for (size_t p = 0; p < g; p += 2) {
                if (p + 1 < g) tile(1, 2, 2, k, a, 0, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, cj + p * FS_NB, 0);
                else tile(1, 1, 2, k, a, 0, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, cj + p * FS_NB, 0);
            }
        }
    }
}

static void fs_f32_gemm_packed__neon(size_t m, size_t k, const float *a, size_t lda,
                                     const float *b, size_t g, size_t nblocks, const float *bias,
                                     float *c, size_t ldc) {
    if (m == 1) {
        gemv(k, a, b, g, nblocks, bias, c);
        return;
    }
    const size_t width = g * FS_NB;
    /* Row chunks small enough to stay in L1 while every panel pair passes over them. */
    size_t chunk = k ? (8192 / k) / 3 * 3 : 3;
    if (chunk < 3) chunk = 3;
    for (size_t i0 = 0; i0 < m; i0 += chunk) {
        const size_t mi = m - i0 < chunk ? m - i0 : chunk;
        const float *ai = a + i0 * lda;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const float *bb = b + jb * k * width;
            float *ci = c + i0 * ldc + jb * width;
            const float *bj = bias ? bias + jb * width : NULL;
            size_t p = 0;
            for (; p + 2 <= g; p += 2)
                rows(2, 2, mi, k, ai, lda, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, ci + p * FS_NB, ldc);
            if (g == 1)
                rows(1, PARTIALS(1), mi, k, ai, lda, bb, width, bj, ci, ldc);
            else if (p < g)
                rows(1, PARTIALS(3), mi, k, ai, lda, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL, ci + p * FS_NB, ldc);
        }
    }
}

void fs__gemm_init_neon(fs_kernels *k) {
    k->gemm = fs_f32_gemm_packed__neon;
    k->panel_gates = 2; /* a 3 x 2 tile of 8 columns: 24 of the 32 q registers */
}
