/* Fused batch-1 steps (AVX-512): the recurrent product of a few unit blocks
 * stays in registers (../gemm/gemv_avx512.h) and the cell update runs on it at once
 * (../cells/avx512.h), two blocks per zmm, in one call per step. A small
 * layer's step is short (LSTM H = 32: ~140 ns), so the products' round trip
 * through memory and the per-phase calls were a tenth of it (tiny LSTM
 * forward 10.3 -> 9.2 us). The same inline code as the gemm and cell
 * kernels: the same bits as the phase path (tests/c/test_step1.c).
 *
 * Four blocks are in flight per group: blocks j, j + n, j + 2n, j + 3n with
 * n = nblocks / 4, so each weight stream runs on through consecutive blocks
 * (as in the GEMM's batch-1 path), as two zmm of cells; the nblocks % 4 left
 * go one at a time. (Four LSTM blocks, 16 accumulators, ran H = 32 5 % faster
 * than two groups of two.) */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "kernels/step1/avx512.c must be compiled with -mavx512f -mavx512vl -mfma"
#endif

#include "../gemm/gemv_avx512.h"
#include "../kernels.h"
#include "avx512.h"

static void fs_rnn_step1__avx512(size_t k, size_t nblocks, int relu, const float *w, const float *gx,
                                 const float *h_prev, float *h_new) {
    const size_t bs = k * FS_NB, n = nblocks / 4, ld = n * FS_NB;
    for (size_t j = 0; j < n; j++) {
        __m256 s[4];
        fs__gemv1_sums(4, k, h_prev, w + j * bs, n * bs, NULL, 0, s);
        for (size_t p = 0; p < 2; p++) { /* blocks j + 2pn, j + (2p+1)n */
            const size_t at = (j + 2 * p * n) * FS_NB;
            fs__st2(h_new + at, ld, 1, fs__rnn_zmm(ADD(fs__ld2(gx + at, ld, 1), join(s[2 * p], s[2 * p + 1])), relu));
        }
    }
    for (size_t j = 4 * n; j < nblocks; j++) {
        __m256 s[1];
        fs__gemv1_sums(1, k, h_prev, w + j * bs, bs, NULL, 0, s);
        const __m512 pre = ADD(fs__ld2(gx + j * FS_NB, 0, 0), _mm512_zextps256_ps512(s[0]));
        fs__st2(h_new + j * FS_NB, 0, 0, fs__rnn_zmm(pre, relu));
    }
}

static void fs_lstm_step1__avx512(size_t k, size_t nblocks, const float *w, const float *gx,
                                  const float *h_prev, float *h_new, float *c) {
    const size_t bs = k * 4 * FS_NB, n = nblocks / 4;
    for (size_t j = 0; j < n; j++) {
        __m512 s[4][2];
        fs__gemv4_sums(4, k, h_prev, w + j * bs, n * bs, NULL, 0, s);
        lstm_pair(s, gx, c, h_new, j, n, 1);
        lstm_pair(s + 2, gx, c, h_new, j + 2 * n, n, 1);
    }
    for (size_t j = 4 * n; j < nblocks; j++) {
        __m512 s[2][2];
        fs__gemv4_sums(1, k, h_prev, w + j * bs, bs, NULL, 0, s);
        s[1][0] = s[1][1] = _mm512_setzero_ps();
        lstm_pair(s, gx, c, h_new, j, 0, 0);
    }
}

static void fs_gru_step1__avx512(size_t k, size_t nblocks, const float *w, const float *bias_h,
                                 const float *gx, const float *h_prev, float *h_new) {
    const size_t bs = k * 3 * FS_NB, w3 = 3 * FS_NB, n = nblocks / 4;
    for (size_t j = 0; j < n; j++) {
        __m512 rz[4];
        __m256 nn[4];
        fs__gemv3_sums(4, k, h_prev, w + j * bs, n * bs, bias_h ? bias_h + j * w3 : NULL, n * w3, rz, nn);
        gru_pair(rz[0], rz[1], nn[0], nn[1], gx, h_prev, h_new, j, n, 1);
        gru_pair(rz[2], rz[3], nn[2], nn[3], gx, h_prev, h_new, j + 2 * n, n, 1);
    }
    for (size_t j = 4 * n; j < nblocks; j++) {
        __m512 rz[1];
        __m256 nn[1];
        fs__gemv3_sums(1, k, h_prev, w + j * bs, bs, bias_h ? bias_h + j * w3 : NULL, w3, rz, nn);
        gru_pair(rz[0], _mm512_setzero_ps(), nn[0], _mm256_setzero_ps(), gx, h_prev, h_new, j, 0, 0);
    }
}

void fs__step1_init_avx512(fs_kernels *k) {
    k->rnn_step1 = fs_rnn_step1__avx512;
    k->lstm_step1 = fs_lstm_step1__avx512;
    k->gru_step1 = fs_gru_step1__avx512;
}
