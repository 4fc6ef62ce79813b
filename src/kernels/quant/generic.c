/* Products with int4 and bf16 packed weights, portable C99: the reference the
 * SIMD levels are tested against (kernels.h: the quantised layout; int8 has
 * the dot path of kernels/qdot/). Weights are widened to fp32 and multiplied
 * by fp32 activations; each output element sums its products in increasing k
 * (int4: within each group, then the groups), so any split of rows or blocks
 * over threads gives the same bits. */
#include <string.h>

#include "../kernels.h"

static float bf16_to_f32(uint16_t v) {
    const uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void fs_q4_gemm_packed__generic(size_t m, size_t k, const float *a, size_t lda, const uint8_t *b,
                                       const float *scale, size_t group, size_t g, size_t nblocks,
                                       const float *bias, float *c, size_t ldc) {
    const size_t width = g * FS_NB, groups = (k + group - 1) / group, kp = (k + 1) / 2;
    for (size_t i = 0; i < m; i++)
        for (size_t jb = 0; jb < nblocks; jb++) {
            const uint8_t *bb = b + jb * kp * width;
            const float *sb = scale + jb * groups * width;
            float acc[4 * FS_NB] = {0};
            for (size_t gr = 0; gr < groups; gr++) {
                float part[4 * FS_NB] = {0};
                const size_t k1 = (gr + 1) * group < k ? (gr + 1) * group : k;
                for (size_t kk = gr * group; kk < k1; kk++) {
                    const float av = a[i * lda + kk];
                    const int shift = (int)(kk % 2) * 4;
                    for (size_t q = 0; q < width; q++)
                        part[q] += av * (float)(((bb[kk / 2 * width + q] >> shift) & 15) - 8);
                }
                for (size_t q = 0; q < width; q++) acc[q] += sb[gr * width + q] * part[q];
            }
            for (size_t q = 0; q < width; q++) {
                const size_t col = jb * width + q;
                c[i * ldc + col] = (bias ? bias[col] : 0.0f) + acc[q];
            }
        }
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
    k->gemm_q4 = fs_q4_gemm_packed__generic;
    k->gemm_bf16 = fs_bf16_gemm_packed__generic;
}
