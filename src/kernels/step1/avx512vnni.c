/* Fused batch-1 int8 steps (AVX512_VNNI): h_prev's codes (quantised once by
 * the caller) times a few unit blocks of the int8 dot layout with vpdpbusd,
 * the sums kept in registers, the gemm_q8 epilogue and the cell update run on
 * them at once (./avx512.h), in one call per step. Without them a step wrote
 * every block's products to a tile and ran the cell kernel over it.
 *
 * Integer sums are exact, so how the blocks are grouped changes no bits; the
 * epilogue is gemm_q8's (bias + (s_h * s_w) * (float)(acc - 128 sum), no FMA)
 * and the cells are the cell kernels' code: the same bits as gemm_q8 + the
 * cell kernel (tests/c/test_step1.c). Blocks go four at a time (one
 * accumulator per 16 columns, each an independent chain), what is left over
 * one at a time; two blocks share one zmm of cells.
 *
 * gemm_q8_fine1 (also here: it shares the dot helpers) is an input row's two
 * products (docs/quantization.md, fine rows) in one pass: each weight load
 * feeds both rows' vpdpbusd, then gemm_q8's two epilogues in order. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512VNNI__) || !defined(__FMA__)
#error "kernels/step1/avx512vnni.c must be compiled with -mavx512f -mavx512vl -mavx512vnni -mfma"
#endif

#include <string.h>

#include "../kernels.h"
#include "avx512.h"

FS_INLINE __m512i codes4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Columns [16 z, 16 z + 16) of a block of `width` columns (8, 24 or 32): the
 * last piece of an 8- or 24-wide block holds 8 columns (upper lanes zero). */
FS_INLINE __mmask16 piece_mask(size_t width, int z) { return width - 16 * (size_t)z >= 16 ? 0xFFFF : 0x00FF; }

/* NB consecutive blocks (bs bytes apart) of NZ pieces: acc[j][z] = sum_k (q_w + 128) q_h. */
FS_INLINE void dot_blocks(const int NB, const int NZ, size_t k4, const int8_t *hq, const uint8_t *w, size_t bs,
                          size_t width, __m512i acc[4][2]) {
    for (int j = 0; j < NB; j++)
        for (int z = 0; z < NZ; z++) acc[j][z] = _mm512_setzero_si512();
    for (size_t kg = 0; kg < k4; kg += 4) {
        const __m512i hv = codes4(hq + kg);
        for (int j = 0; j < NB; j++)
            for (int z = 0; z < NZ; z++) {
                const void *at = w + (size_t)j * bs + kg * width + (size_t)z * 64;
                const __m512i wv = _mm512_maskz_loadu_epi32(piece_mask(width, z), at);
                acc[j][z] = _mm512_dpbusd_epi32(acc[j][z], wv, hv);
            }
    }
}

/* (hs * scale) * (float)(acc - 128 hsum) on one piece; the barrier keeps the compiler from
 * fusing the multiply into the add that follows (gemm_q8 does not). */
FS_INLINE __m512 product(__m512i acc, int32_t hsum, float hs, const float *scale, __mmask16 m) {
    const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_set1_epi32((int32_t)(128u * (uint32_t)hsum))));
    __m512 p = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(hs), _mm512_maskz_loadu_ps(m, scale)), x);
    __asm__("" : "+v"(p));
    return p;
}

/* gemm_q8's epilogue on one piece: bias (or 0) + the product. */
FS_INLINE __m512 epilogue(__m512i acc, int32_t hsum, float hs, const float *scale, const float *bias, __mmask16 m) {
    return _mm512_add_ps(bias ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps(), product(acc, hsum, hs, scale, m));
}

/* The float sums of blocks [j, j + NB) (NB <= 4), columns of block j + i at sums[i]. */
FS_INLINE void block_sums(const int NB, const int NZ, size_t k, const int8_t *hq, float hs, int32_t hsum,
                          const uint8_t *w, const float *scale, const float *bias, size_t width, size_t j,
                          __m512 sums[4][2]) {
    const size_t k4 = FS_Q8_ROUND(k), bs = k4 * width;
    __m512i acc[4][2];
    dot_blocks(NB, NZ, k4, hq, w + j * bs, bs, width, acc);
    for (int i = 0; i < NB; i++)
        for (int z = 0; z < NZ; z++) {
            const size_t col = (j + (size_t)i) * width + 16 * (size_t)z;
            sums[i][z] = epilogue(acc[i][z], hsum, hs, scale + col, bias ? bias + col : NULL, piece_mask(width, z));
        }
}

static void fs_lstm_step1_q8__avx512vnni(size_t k, size_t nblocks, const int8_t *hq, float hs, int32_t hsum,
                                         const uint8_t *w, const float *scale, const float *gx, float *h_new,
                                         float *c) {
    const size_t width = 4 * FS_NB;
    size_t j = 0;
    for (; j + 4 <= nblocks; j += 4) {
        __m512 s[4][2];
        block_sums(4, 2, k, hq, hs, hsum, w, scale, NULL, width, j, s);
        lstm_pair(s, gx, c, h_new, j, 1, 1);
        lstm_pair(s + 2, gx, c, h_new, j + 2, 1, 1);
    }
    for (; j < nblocks; j++) {
        __m512 s[4][2];
        block_sums(1, 2, k, hq, hs, hsum, w, scale, NULL, width, j, s);
        s[1][0] = s[1][1] = _mm512_setzero_ps();
        lstm_pair(s, gx, c, h_new, j, 0, 0);
    }
}

static void fs_gru_step1_q8__avx512vnni(size_t k, size_t nblocks, const int8_t *hq, float hs, int32_t hsum,
                                        const uint8_t *w, const float *scale, const float *bias_h, const float *gx,
                                        const float *h_prev, float *h_new) {
    const size_t width = 3 * FS_NB;
    size_t j = 0;
    for (; j + 4 <= nblocks; j += 4) {
        __m512 s[4][2];
        block_sums(4, 2, k, hq, hs, hsum, w, scale, bias_h, width, j, s);
        for (int p = 0; p < 2; p++)
            gru_pair(s[2 * p][0], s[2 * p + 1][0], _mm512_castps512_ps256(s[2 * p][1]),
                     _mm512_castps512_ps256(s[2 * p + 1][1]), gx, h_prev, h_new, j + 2 * (size_t)p, 1, 1);
    }
    for (; j < nblocks; j++) {
        __m512 s[4][2];
        block_sums(1, 2, k, hq, hs, hsum, w, scale, bias_h, width, j, s);
        gru_pair(s[0][0], _mm512_setzero_ps(), _mm512_castps512_ps256(s[0][1]), _mm256_setzero_ps(), gx, h_prev,
                 h_new, j, 0, 0);
    }
}

static void fs_rnn_step1_q8__avx512vnni(size_t k, size_t nblocks, int relu, const int8_t *hq, float hs,
                                        int32_t hsum, const uint8_t *w, const float *scale, const float *gx,
                                        float *h_new) {
    size_t j = 0;
    for (; j + 4 <= nblocks; j += 4) {
        __m512 s[4][2];
        block_sums(4, 1, k, hq, hs, hsum, w, scale, NULL, FS_NB, j, s);
        for (size_t p = 0; p < 2; p++) { /* blocks j + 2p, j + 2p + 1 */
            const size_t at = (j + 2 * p) * FS_NB;
            const __m512 sum = join(_mm512_castps512_ps256(s[2 * p][0]), _mm512_castps512_ps256(s[2 * p + 1][0]));
            fs__st2(h_new + at, FS_NB, 1, fs__rnn_zmm(ADD(fs__ld2(gx + at, FS_NB, 1), sum), relu));
        }
    }
    for (; j < nblocks; j++) {
        __m512 s[4][2];
        block_sums(1, 1, k, hq, hs, hsum, w, scale, NULL, FS_NB, j, s);
        fs__st2(h_new + j * FS_NB, 0, 0, fs__rnn_zmm(ADD(fs__ld2(gx + j * FS_NB, 0, 0), s[0][0]), relu));
    }
}

/* One row's coarse and fine codes times NB blocks of NZ pieces, each weight load used twice. */
FS_INLINE void dot2_blocks(const int NB, const int NZ, size_t k4, const int8_t *q1, const int8_t *q2,
                           const uint8_t *w, size_t bs, size_t width, __m512i acc1[2][2], __m512i acc2[2][2]) {
    for (int j = 0; j < NB; j++)
        for (int z = 0; z < NZ; z++) acc1[j][z] = acc2[j][z] = _mm512_setzero_si512();
    for (size_t kg = 0; kg < k4; kg += 4) {
        const __m512i v1 = codes4(q1 + kg), v2 = codes4(q2 + kg);
        for (int j = 0; j < NB; j++)
            for (int z = 0; z < NZ; z++) {
                const void *at = w + (size_t)j * bs + kg * width + (size_t)z * 64;
                const __m512i wv = _mm512_maskz_loadu_epi32(piece_mask(width, z), at);
                acc1[j][z] = _mm512_dpbusd_epi32(acc1[j][z], wv, v1);
                acc2[j][z] = _mm512_dpbusd_epi32(acc2[j][z], wv, v2);
            }
    }
}

/* Blocks [j, j + NB) of gemm_q8_fine1: the coarse epilogue, then the fine one added to it. */
FS_INLINE void fine1_blocks(const int NB, const int NZ, size_t k, const int8_t *q1, float s1, int32_t sum1,
                            const int8_t *q2, float s2, int32_t sum2, const uint8_t *b, const float *scale,
                            size_t width, const float *bias, float *c, size_t j) {
    const size_t k4 = FS_Q8_ROUND(k), bs = k4 * width;
    __m512i acc1[2][2], acc2[2][2];
    dot2_blocks(NB, NZ, k4, q1, q2, b + j * bs, bs, width, acc1, acc2);
    for (int i = 0; i < NB; i++)
        for (int z = 0; z < NZ; z++) {
            const size_t col = (j + (size_t)i) * width + 16 * (size_t)z;
            const __mmask16 m = piece_mask(width, z);
            const __m512 coarse = epilogue(acc1[i][z], sum1, s1, scale + col, bias ? bias + col : NULL, m);
            _mm512_mask_storeu_ps(c + col, m, _mm512_add_ps(coarse, product(acc2[i][z], sum2, s2, scale + col, m)));
        }
}

static void fs_q8_gemm_fine1__avx512vnni(size_t k, const int8_t *q1, float s1, int32_t sum1, const int8_t *q2,
                                         float s2, int32_t sum2, const uint8_t *b, const float *scale, size_t g,
                                         size_t nblocks, const float *bias, float *c) {
    const size_t width = g * FS_NB;
    size_t j = 0;
    const int nz = width > 16 ? 2 : 1;
    for (; j + 2 <= nblocks; j += 2) {
        if (nz == 2) fine1_blocks(2, 2, k, q1, s1, sum1, q2, s2, sum2, b, scale, width, bias, c, j);
        else fine1_blocks(2, 1, k, q1, s1, sum1, q2, s2, sum2, b, scale, width, bias, c, j);
    }
    for (; j < nblocks; j++) {
        if (nz == 2) fine1_blocks(1, 2, k, q1, s1, sum1, q2, s2, sum2, b, scale, width, bias, c, j);
        else fine1_blocks(1, 1, k, q1, s1, sum1, q2, s2, sum2, b, scale, width, bias, c, j);
    }
}

void fs__step1_q8_init_avx512vnni(fs_kernels *k) {
    k->gemm_q8_fine1 = fs_q8_gemm_fine1__avx512vnni;
    k->lstm_step1_q8 = fs_lstm_step1_q8__avx512vnni;
    k->gru_step1_q8 = fs_gru_step1_q8__avx512vnni;
    k->rnn_step1_q8 = fs_rnn_step1_q8__avx512vnni;
}
