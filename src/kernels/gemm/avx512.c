/* AVX-512 (F + VL) packed GEMM (the cell epilogues: ../cells/avx512.c).
 *
 * Summation order: kernels.h's (FS_PARTIALS), on every path below.
 *
 * Column layout. A packed block k-row is g*8 contiguous floats (kernels.h).
 * - Panels in fours (g = 4): two zmm per row and k, one broadcast a[i][k];
 *   the S partials are separate accumulators (tile_ff).
 * - An odd number of panels (g = 1, 3) would leave half a zmm idle, so rows k
 *   and k+1 of a panel are interleaved into one zmm instead (lane 2j: column
 *   j of row k, lane 2j+1: of row k+1) and multiplied by (a[i][k], a[i][k+1])
 *   broadcast as one 64-bit pair: even lanes carry one partial and odd lanes
 *   the next, split apart once at the end (tile_pk). One shuffle per panel and
 *   k pair, shared by all rows of the tile.
 * - m == 1 (batch 1): g = 1, 3, 4 in zmm holding S consecutive k-rows of a
 *   block, several blocks in flight (gemv*_zmm); other g: 256-bit, G*S
 *   chains (gemv_block). The same order.
 */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "kernels/gemm/avx512.c must be compiled with -mavx512f -mavx512vl -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"
#include "gemv_avx512.h"
#define PF_DIST 8 /* B k-rows software-prefetched ahead, in tiles that prefetch */

/* Partial sums per element for g gates (see the top of the file). */
#define S_OF(g) FS_PARTIALS(g)

/* ---- panels in fours: two zmm per k-row ---------------------------------- */

/* M rows x 32 columns (panels p..p+3 of one block, b at its first column; ks:
 * the block's k-row stride) with S = 2 accumulators each: 4M <= 24 zmm. */
FS_INLINE void tile_ff(const int M, const int PF, size_t k, const float *a, size_t lda,
                       const float *b, size_t ks, const float *bias, float *c, size_t ldc) {
    __m512 acc[6][2][2];
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) {
        const __m512 init = bias ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int r = 0; r < M; r++) acc[r][v][0] = init, acc[r][v][1] = _mm512_setzero_ps();
    }
    const size_t km = k & ~(size_t)1;
    size_t kk = 0;
    for (; kk < km; kk += 2) {
#pragma GCC unroll 2
        for (int s = 0; s < 2; s++) {
            const float *bk = b + (kk + (size_t)s) * ks;
            if (PF) {
                _mm_prefetch((const char *)(bk + PF_DIST * ks), _MM_HINT_T0);
                _mm_prefetch((const char *)(bk + PF_DIST * ks + 16), _MM_HINT_T0);
            }
            const __m512 w0 = _mm512_loadu_ps(bk), w1 = _mm512_loadu_ps(bk + 16);
#pragma GCC unroll 6
            for (int r = 0; r < M; r++) {
                const __m512 av = _mm512_set1_ps(a[r * lda + kk + s]);
                acc[r][0][s] = _mm512_fmadd_ps(av, w0, acc[r][0][s]);
                acc[r][1][s] = _mm512_fmadd_ps(av, w1, acc[r][1][s]);
            }
        }
    }
    if (kk < k) { /* odd k: the last row, into partial 0 */
        const float *bk = b + kk * ks;
        const __m512 w0 = _mm512_loadu_ps(bk), w1 = _mm512_loadu_ps(bk + 16);
#pragma GCC unroll 6
        for (int r = 0; r < M; r++) {
            const __m512 av = _mm512_set1_ps(a[r * lda + kk]);
            acc[r][0][0] = _mm512_fmadd_ps(av, w0, acc[r][0][0]);
            acc[r][1][0] = _mm512_fmadd_ps(av, w1, acc[r][1][0]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < M; r++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
            _mm512_storeu_ps(c + r * ldc + 16 * v, _mm512_add_ps(acc[r][v][0], acc[r][v][1]));
}

/* ---- any number of panels: k-rows interleaved in pairs ------------------- */

/* 8 floats into the low half of a zmm, the upper half zero. */
FS_INLINE __m512 half_zext(const float *p) { return _mm512_zextps256_ps512(_mm256_loadu_ps(p)); }

/* M rows x G panels (8 columns each, b at the first; ks: the block's k-row
 * stride), S partials as S/2 zmm of interleaved pairs: M * G * S/2 <= 24. */
FS_INLINE void tile_pk(const int G, const int S, const int M, const int PF, size_t k,
                       const float *a, size_t lda, const float *b, size_t ks, const float *bias,
                       float *c, size_t ldc) {
    const __m512i zip = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const int H = S / 2;
    __m512 acc[12][3][2];
#pragma GCC unroll 3
    for (int p = 0; p < G; p++) {
        const __m512 init = bias ? _mm512_permutex2var_ps(half_zext(bias + p * FS_NB), zip, _mm512_setzero_ps())
                                 : _mm512_setzero_ps();
#pragma GCC unroll 12
        for (int r = 0; r < M; r++) {
            acc[r][p][0] = init;
            if (H > 1) acc[r][p][1] = _mm512_setzero_ps();
        }
    }
    const size_t km = k - k % (size_t)S;
    size_t kk = 0;
    for (; kk < km; kk += (size_t)S) {
#pragma GCC unroll 2
        for (int h = 0; h < H; h++) {
            const float *b0 = b + (kk + 2 * (size_t)h) * ks, *b1 = b0 + ks;
            __m512 w[3];
#pragma GCC unroll 3
            for (int p = 0; p < G; p++) {
                if (PF) _mm_prefetch((const char *)(b0 + PF_DIST * ks + p * 16), _MM_HINT_T0);
                w[p] = _mm512_permutex2var_ps(half_zext(b0 + p * FS_NB), zip, half_zext(b1 + p * FS_NB));
            }
#pragma GCC unroll 12
            for (int r = 0; r < M; r++) {
                double pair; /* a[r][k], a[r][k+1] */
                __builtin_memcpy(&pair, a + r * lda + kk + 2 * h, sizeof pair);
                const __m512 av = _mm512_castpd_ps(_mm512_set1_pd(pair));
#pragma GCC unroll 3
                for (int p = 0; p < G; p++) acc[r][p][h] = _mm512_fmadd_ps(av, w[p], acc[r][p][h]);
            }
        }
    }
    const __m512i even = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 13, 11, 9, 7, 5, 3, 1);
#pragma GCC unroll 12
    for (int r = 0; r < M; r++)
#pragma GCC unroll 3
        for (int p = 0; p < G; p++) {
            __m256 part[4];
#pragma GCC unroll 2
            for (int h = 0; h < H; h++) {
                part[2 * h] = _mm512_castps512_ps256(_mm512_permutexvar_ps(even, acc[r][p][h]));
                part[2 * h + 1] = _mm512_castps512_ps256(_mm512_permutexvar_ps(odd, acc[r][p][h]));
            }
            for (size_t t = kk; t < k; t++) /* the k % S tail, into partial 0 */
                part[0] = _mm256_fmadd_ps(_mm256_set1_ps(a[r * lda + t]), _mm256_loadu_ps(b + t * ks + p * FS_NB),
                                          part[0]);
            __m256 sum = part[0];
#pragma GCC unroll 4
            for (int s = 1; s < S; s++) sum = _mm256_add_ps(sum, part[s]);
            _mm256_storeu_ps(c + r * ldc + p * FS_NB, sum);
        }
}

/* ---- rows in tiles ------------------------------------------------------- */

/* Rows [0, m) in tiles of MT rows, then one tile of the m % MT left. PF:
 * prefetch B in software (a block that does not stay in L1 next to A). */
#define ROWS_FN(name, MT, TILE_CALL)                                                               \
    static void name(size_t m, size_t k, const float *a, size_t lda, const float *b, size_t ks,   \
                     const float *bias, float *c, size_t ldc, int pf) {                           \
        size_t i = 0;                                                                              \
        for (; i + MT <= m; i += MT) {                                                             \
            const float *ai = a + i * lda;                                                         \
            float *ci = c + i * ldc;                                                               \
            if (pf) TILE_CALL(MT, 1, ai, ci);                                                      \
            else TILE_CALL(MT, 0, ai, ci);                                                         \
        }                                                                                          \
        a += i * lda, c += i * ldc;                                                                \
        switch (m - i) { /* n < MT ? n : 1 keeps the dead cases within the tile's arrays */       \
        case 11: if (11 < MT) TILE_CALL(11 < MT ? 11 : 1, 1, a, c); break;                         \
        case 10: if (10 < MT) TILE_CALL(10 < MT ? 10 : 1, 1, a, c); break;                         \
        case 9: if (9 < MT) TILE_CALL(9 < MT ? 9 : 1, 1, a, c); break;                             \
        case 8: if (8 < MT) TILE_CALL(8 < MT ? 8 : 1, 1, a, c); break;                             \
        case 7: if (7 < MT) TILE_CALL(7 < MT ? 7 : 1, 1, a, c); break;                             \
        case 6: if (6 < MT) TILE_CALL(6 < MT ? 6 : 1, 1, a, c); break;                             \
        case 5: TILE_CALL(5, 1, a, c); break;                                                      \
        case 4: TILE_CALL(4, 1, a, c); break;                                                      \
        case 3: TILE_CALL(3, 1, a, c); break;                                                      \
        case 2: TILE_CALL(2, 1, a, c); break;                                                      \
        case 1: TILE_CALL(1, 1, a, c); break;                                                      \
        default: break;                                                                            \
        }                                                                                          \
    }

#define CALL_FF(M, PF, ai, ci) tile_ff(M, PF, k, ai, lda, b, ks, bias, ci, ldc)
#define CALL_PK3(M, PF, ai, ci) tile_pk(3, 2, M, PF, k, ai, lda, b, ks, bias, ci, ldc)
#define CALL_PK2(M, PF, ai, ci) tile_pk(2, 2, M, PF, k, ai, lda, b, ks, bias, ci, ldc)
#define CALL_PK1(M, PF, ai, ci) tile_pk(1, 2, M, PF, k, ai, lda, b, ks, bias, ci, ldc)
#define CALL_PK1_S4(M, PF, ai, ci) tile_pk(1, 4, M, PF, k, ai, lda, b, ks, bias, ci, ldc)

ROWS_FN(rows_ff, 6, CALL_FF)         /* 4 panels, S = 2: 6 x 2 x 2 */
ROWS_FN(rows_pk3, 8, CALL_PK3)       /* 3 panels, S = 2: 8 x 3    */
ROWS_FN(rows_pk2, 12, CALL_PK2)      /* 2 panels, S = 2: 12 x 2   */
ROWS_FN(rows_pk1, 12, CALL_PK1)      /* 1 panel,  S = 2: 12 x 1   */
ROWS_FN(rows_pk1_s4, 12, CALL_PK1_S4) /* g = 1,   S = 4: 12 x 2   */

/* ---- one row ------------------------------------------------------------- */

/* m == 1, any g: 256-bit vectors, G*S chains in flight, the same per-element
 * order as the tiles. */
FS_INLINE void gemv_block(const int G, const int S, size_t k, const float *a, const float *b,
                          const float *bias, float *c) {
    __m256 acc[4][8];
#pragma GCC unroll 4
    for (int s = 0; s < S; s++)
#pragma GCC unroll 8
        for (int p = 0; p < G; p++)
            acc[s][p] = (s == 0 && bias) ? _mm256_loadu_ps(bias + p * FS_NB) : _mm256_setzero_ps();
    const size_t w = (size_t)G * FS_NB, km = k - k % (size_t)S;
    size_t kk = 0;
    for (; kk < km; kk += (size_t)S)
#pragma GCC unroll 4
        for (int s = 0; s < S; s++) {
            const __m256 av = _mm256_broadcast_ss(a + kk + s);
#pragma GCC unroll 8
            for (int p = 0; p < G; p++)
                acc[s][p] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + (kk + s) * w + p * FS_NB), acc[s][p]);
        }
    for (; kk < k; kk++) {
        const __m256 av = _mm256_broadcast_ss(a + kk);
#pragma GCC unroll 8
        for (int p = 0; p < G; p++)
            acc[0][p] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + kk * w + p * FS_NB), acc[0][p]);
    }
#pragma GCC unroll 8
    for (int p = 0; p < G; p++) {
        __m256 sum = acc[0][p];
#pragma GCC unroll 4
        for (int s = 1; s < S; s++) sum = _mm256_add_ps(sum, acc[s][p]);
        _mm256_storeu_ps(c + p * FS_NB, sum);
    }
}

/* m == 1, g = 1, 3 or 4: the sums of gemv_avx512.h, stored. */
FS_INLINE void gemv4_zmm(const int NB, size_t k, const float *a, const float *b, size_t bs,
                         const float *bias, float *c, size_t cs) {
    __m512 s[2][2];
    fs__gemv4_sums(NB, k, a, b, bs, bias, cs, s);
#pragma GCC unroll 2
    for (int j = 0; j < NB; j++) {
        _mm512_storeu_ps(c + j * cs, s[j][0]);
        _mm512_storeu_ps(c + j * cs + 16, s[j][1]);
    }
}

FS_INLINE void gemv3_zmm(const int NB, size_t k, const float *a, const float *b, size_t bs,
                         const float *bias, float *c, size_t cs) {
    __m512 rz[3];
    __m256 n[3];
    fs__gemv3_sums(NB, k, a, b, bs, bias, cs, rz, n);
#pragma GCC unroll 3
    for (int j = 0; j < NB; j++) {
        _mm512_storeu_ps(c + j * cs, rz[j]);
        _mm256_storeu_ps(c + j * cs + 16, n[j]);
    }
}

FS_INLINE void gemv1_zmm(const int NB, size_t k, const float *a, const float *b, size_t bs,
                         const float *bias, float *c, size_t cs) {
    __m256 s[4];
    fs__gemv1_sums(NB, k, a, b, bs, bias, cs, s);
#pragma GCC unroll 4
    for (int j = 0; j < NB; j++) _mm256_storeu_ps(c + j * cs, s[j]);
}

/* Blocks [0, nblocks) of gemvG_zmm, NB at a time: blocks i, i + n, i + 2n, ...
 * (n = nblocks / NB) together, so that each of the NB streams of weights runs
 * on through consecutive blocks (the hardware prefetcher keeps up with a
 * stream, not with a fresh one per call); the rest one by one. */
#define GEMV_ZMM_BLOCKS(fn, NB, g)                                                                 \
    do {                                                                                           \
        const size_t w_ = (size_t)(g) * FS_NB, bs_ = k * w_, n_ = nblocks / NB;                    \
        for (size_t i_ = 0; i_ < n_; i_++)                                                         \
            fn(NB, k, a, b + i_ * bs_, n_ * bs_, bias ? bias + i_ * w_ : NULL, c + i_ * w_, n_ * w_); \
        for (size_t jb_ = n_ * NB; jb_ < nblocks; jb_++)                                           \
            fn(1, k, a, b + jb_ * bs_, bs_, bias ? bias + jb_ * w_ : NULL, c + jb_ * w_, w_);       \
    } while (0)

/* m == 1 for g <= 8; 0 when g is out of range (the tiles take it). */
static int gemv(size_t k, const float *a, const float *b, size_t g, size_t nblocks,
                const float *bias, float *c) {
    if (g < 1 || g > 8) return 0;
    switch (g) {
    case 1: GEMV_ZMM_BLOCKS(gemv1_zmm, 4, 1); return 1;
    case 3: GEMV_ZMM_BLOCKS(gemv3_zmm, 3, 3); return 1;
    case 4: GEMV_ZMM_BLOCKS(gemv4_zmm, 2, 4); return 1;
    default: break;
    }
    const size_t width = g * FS_NB;
    for (size_t jb = 0; jb < nblocks; jb++) {
        const float *bb = b + jb * k * width, *bj = bias ? bias + jb * width : NULL;
        float *cj = c + jb * width;
        switch (g) {
        case 2: gemv_block(2, S_OF(2), k, a, bb, bj, cj); break;
        case 5: gemv_block(5, S_OF(5), k, a, bb, bj, cj); break;
        case 6: gemv_block(6, S_OF(6), k, a, bb, bj, cj); break;
        case 7: gemv_block(7, S_OF(7), k, a, bb, bj, cj); break;
        default: gemv_block(8, S_OF(8), k, a, bb, bj, cj); break;
        }
    }
    return 1;
}

/* ---- the slot ------------------------------------------------------------ */

static void fs_f32_gemm_packed__avx512(size_t m, size_t k, const float *a, size_t lda,
                                       const float *b, size_t g, size_t nblocks, const float *bias,
                                       float *c, size_t ldc) {
    if (m == 1 && gemv(k, a, b, g, nblocks, bias, c)) return;
    const size_t width = g * FS_NB, bstride = k * width;
    /* B is prefetched by software when a block cannot stay in L1 next to the
     * tile's A rows. */
    const int pf = bstride * sizeof(float) > 36 * 1024;
    /* Rows per pass over the blocks: few, so the output rows written in one
     * pass stay few (a long ldc maps them onto the same cache sets); B is
     * re-read from L2 per pass. A B that outgrows L2 is streamed once per
     * L2-sized chunk of A instead. */
    size_t chunk = 24;
    if (nblocks * bstride * sizeof(float) > ((size_t)1 << 20) && k) {
        const size_t rows_l2 = ((size_t)128 * 1024 / sizeof(float)) / k / 12 * 12;
        if (rows_l2 > chunk) chunk = rows_l2;
    }
    for (size_t i0 = 0; i0 < m; i0 += chunk) {
        const size_t mi = m - i0 < chunk ? m - i0 : chunk;
        const float *ai = a + i0 * lda;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const float *bb = b + jb * bstride, *bj = bias ? bias + jb * width : NULL;
            float *cj = c + i0 * ldc + jb * width;
            if (g == 1) {
                rows_pk1_s4(mi, k, ai, lda, bb, width, bj, cj, ldc, pf);
                continue;
            }
            size_t p = 0; /* panels in fours, then the 1..3 left */
            for (; p + 4 <= g; p += 4)
                rows_ff(mi, k, ai, lda, bb + p * FS_NB, width, bj ? bj + p * FS_NB : NULL,
                        cj + p * FS_NB, ldc, pf);
            if (p == g) continue;
            const float *bp = bb + p * FS_NB, *biasp = bj ? bj + p * FS_NB : NULL;
            float *cp = cj + p * FS_NB;
            switch (g - p) {
            case 3: rows_pk3(mi, k, ai, lda, bp, width, biasp, cp, ldc, pf); break;
            case 2: rows_pk2(mi, k, ai, lda, bp, width, biasp, cp, ldc, pf); break;
            default: rows_pk1(mi, k, ai, lda, bp, width, biasp, cp, ldc, pf); break;
            }
        }
    }
}

void fs__gemm_init_avx512(fs_kernels *k) {
    k->gemm = fs_f32_gemm_packed__avx512;
    k->panel_gates = 4; /* two zmm per k-row */
}
