/* AVX-512 training cells: the LSTM record step -- the nonlinearities backward
 * recomputes from the recorded pre-activations, the largest cost of a small
 * training step after the products -- on two blocks of 8 units per zmm. The
 * math is lane-identical to the AVX2 kernel (train_avx2.c; vmath/body.h), so
 * the records agree bit for bit (tests/c/test_train_cells.c). The other cells
 * keep their AVX2 training kernels. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "kernels/cells/train_avx512.c must be compiled with -mavx512f -mavx512vl -mfma"
#endif

#include "../kernels.h"
#include "avx512.h"

static void lstm_record__avx512(size_t H, const fs_cell_params *cp, const float *gx, const float *acc,
                                const float *hn, const float *h, const float *c, float *act) {
    (void)cp, (void)hn, (void)h;
    const size_t ld = 4 * FS_NB; /* gx and acc: one block of 8 units holds its 4 gates */
    for (size_t j0 = 0; j0 < H; j0 += 2 * FS_NB) {
        const int two = j0 + FS_NB < H; /* a second block in the upper lanes */
        const size_t at = j0 * 4, w = H - j0 < 2 * FS_NB ? H - j0 : 2 * FS_NB;
        const __mmask16 lanes = (__mmask16)((1u << w) - 1);
        __m512 pre[4];
        for (size_t q = 0; q < 4; q++)
            pre[q] = _mm512_add_ps(fs__ld2(gx + at + q * FS_NB, ld, two), fs__ld2(acc + at + q * FS_NB, ld, two));
        const __m512 i = fs_sigmoid_ps__avx512(pre[0]), f = fs_sigmoid_ps__avx512(pre[1]);
        const __m512 g = fs_tanh_ps__avx512(pre[2]), o = fs_sigmoid_ps__avx512(pre[3]);
        const __m512 cn = _mm512_fmadd_ps(f, fs__ld2(c + j0, FS_NB, two), _mm512_mul_ps(i, g));
        const __m512 slots[5] = {i, f, g, o, fs_tanh_ps__avx512(cn)};
        for (size_t k = 0; k < 5; k++) _mm512_mask_storeu_ps(act + k * H + j0, lanes, slots[k]);
    }
}

void fs__train_cells_init_avx512(fs_kernels *k) { k->cell_record[FS_TRAIN_LSTM] = lstm_record__avx512; }
