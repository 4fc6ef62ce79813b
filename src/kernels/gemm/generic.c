/* The packed GEMM, portable C: the reference every SIMD GEMM is tested
 * against. Each output element sums its k products in order, so any split of
 * rows or blocks over threads gives the same bits. */
#include "../kernels.h"

static void fs_f32_gemm_packed__generic(size_t m, size_t k, const float *a, size_t lda,
                                        const float *b, size_t g, size_t nblocks,
                                        const float *bias, float *c, size_t ldc) {
    const size_t width = g * FS_NB; /* columns per block */
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const float *bb = b + jb * k * width;
            float acc[4 * FS_NB * 2]; /* g <= 8 */
            for (size_t q = 0; q < width; q++) acc[q] = bias ? bias[jb * width + q] : 0.0f;
            for (size_t kk = 0; kk < k; kk++) {
                const float av = ai[kk];
                for (size_t q = 0; q < width; q++) acc[q] += av * bb[kk * width + q];
            }
            for (size_t q = 0; q < width; q++) c[i * ldc + jb * width + q] = acc[q];
        }
    }
}

void fs__gemm_init_generic(fs_kernels *k) {
    k->gemm = fs_f32_gemm_packed__generic;
    k->panel_gates = 2;
}
