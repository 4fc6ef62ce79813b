/* Products with bf16 packed weights, portable C99: the reference the SIMD
 * levels are tested against (kernels.h: the quantised layout; int8 and int4
 * have the dot path of kernels/qdot/). Weights are widened to fp32 and
 * multiplied by fp32 activations; each output element sums its products in
 * increasing k, so any split of rows or blocks over threads gives the same
 * bits. */
#include <string.h>

#include "../kernels.h"

static float bf16_to_f32(uint16_t v) {
    const uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void fs_bf16_gemm_packed__generic(size_t m, size_t k, const float *a, size_t lda, const uint16_t *b,
                                         size_t g, size_t nblocks, const float *bias, float *c, size_t ldc) {
    const size_t width = g * FS_NB;
    for (size_t i = 0; i < m; i++)
        for (size_t jb = 0; jb < nblocks; jb++) {
            const uint16_t *bb = b + jb * k * width;
            float acc[4 * FS_NB];
            for (size_t q = 0; q < width; q++) acc[q] = bias ? bias[jb * width + q] : 0.0f;
            for (size_t kk = 0; kk < k; kk++) {
                const float av = a[i * lda + kk];
                for (size_t q = 0; q < width; q++) acc[q] += av * bf16_to_f32(bb[kk * width + q]);
            }
            for (size_t q = 0; q < width; q++) c[i * ldc + jb * width + q] = acc[q];
        }
}

void fs__quant_init_generic(fs_kernels *k) {
    k->gemm_bf16 = fs_bf16_gemm_packed__generic;
}
