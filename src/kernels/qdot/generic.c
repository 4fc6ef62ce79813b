/* The int8 dot-product path, portable C99: the reference every level gives
 * bit for bit (kernels.h: the int8 dot layout). Activations are quantised per
 * row; products sum exactly in 32-bit integers (wrapping, as the SIMD levels'
 * adds do: the true sum fits whenever k <= FS_Q8_MAX_K); the float epilogue
 * is one fixed sequence of operations. */
#include <float.h>
#include <math.h>

#include "../kernels.h"

static void fs_q8_quant_rows__generic(size_t m, size_t k, const float *a, size_t lda, int8_t *q, size_t ldq,
                                      float *scale, int32_t *sum) {
    const size_t k4 = FS_Q8_ROUND(k);
    for (size_t i = 0; i < m; i++) {
        const float *row = a + i * lda;
        int8_t *out = q + i * ldq;
        float amax = 0.0f;
        int nan = 0;
        for (size_t kk = 0; kk < k; kk++) {
            const float v = fabsf(row[kk]);
            amax = v > amax ? v : amax;
            nan |= v != v;
        }
        int32_t s = 0;
        if (nan || amax > FLT_MAX || amax < FS_Q8_TINY) { /* non-finite rows give NaN products, tiny ones 0 */
            for (size_t kk = 0; kk < k4; kk++) out[kk] = 0;
            scale[i] = amax < FS_Q8_TINY && !nan ? 0.0f : NAN;
            sum[i] = 0;
            continue;
        }
        const float inv = 127.0f / amax;
        for (size_t kk = 0; kk < k; kk++) {
            const long c = lrintf(row[kk] * inv);
            out[kk] = (int8_t)(c > 127 ? 127 : c < -127 ? -127 : c);
            s += out[kk];
        }
        for (size_t kk = k; kk < k4; kk++) out[kk] = 0;
        scale[i] = amax / 127.0f;
        sum[i] = s;
    }
}

static void fs_q8_gemm_dot__generic(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale,
                                    const int32_t *asum, const uint8_t *b, const float *scale, size_t g,
                                    size_t nblocks, const float *bias, float *c, size_t ldc, int accumulate) {
    const size_t width = g * FS_NB, k4 = FS_Q8_ROUND(k);
    for (size_t i = 0; i < m; i++) {
        const int8_t *ar = aq + i * ldq;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const uint8_t *bb = b + jb * k4 * width;
            for (size_t q = 0; q < width; q++) {
                uint32_t acc = 0; /* unsigned: wraps like the SIMD adds */
                for (size_t kg = 0; kg < k4; kg += 4)
                    for (size_t t = 0; t < 4; t++)
                        acc += (uint32_t)bb[kg * width + q * 4 + t] * (uint32_t)(int32_t)ar[kg + t];
                const size_t col = jb * width + q;
                const float x = (float)(int32_t)(acc - 128u * (uint32_t)asum[i]);
                const float t = ascale[i] * scale[col];
                const float base = accumulate ? c[i * ldc + col] : bias ? bias[col] : 0.0f;
                c[i * ldc + col] = base + t * x;
            }
        }
    }
}

/* int4: per group an exact int32 sum of (q_w + 8) q_a over its octets (the low
 * nibbles the first four k of an octet, the high ones the next four), less 8
 * times the group's code sum, FMA'd with the group scale in group order. */
static void fs_q4_gemm_dot__generic(size_t m, size_t k, const int8_t *aq, size_t ldq, const float *ascale,
                                    const int32_t *gsum, size_t ldgs, const uint8_t *b, const float *scale,
                                    size_t group, size_t g, size_t nblocks, const float *bias, float *c, size_t ldc,
                                    int accumulate) {
    const size_t width = g * FS_NB, k8 = FS_Q4_ROUND(k), groups = (k + group - 1) / group;
    for (size_t i = 0; i < m; i++) {
        const int8_t *ar = aq + i * ldq;
        for (size_t jb = 0; jb < nblocks; jb++) {
            const uint8_t *bb = b + jb * k8 / 2 * width;
            const float *sb = scale + jb * groups * width;
            for (size_t q = 0; q < width; q++) {
                float f = 0.0f;
                for (size_t gr = 0; gr < groups; gr++) {
                    const size_t k1 = (gr + 1) * group < k8 ? (gr + 1) * group : k8;
                    uint32_t acc = 0; /* unsigned: wraps like the SIMD adds (the true sum fits) */
                    for (size_t ko = gr * group; ko < k1; ko += 8)
                        for (size_t t = 0; t < 4; t++) {
                            const uint32_t byte = bb[ko / 2 * width + q * 4 + t];
                            acc += (byte & 15u) * (uint32_t)(int32_t)ar[ko + t];
                            acc += (byte >> 4) * (uint32_t)(int32_t)ar[ko + 4 + t];
                        }
                    const float x = (float)(int32_t)(acc - 8u * (uint32_t)gsum[i * ldgs + gr]);
                    f = fmaf(sb[gr * width + q], x, f);
                }
                const size_t col = jb * width + q;
                const float base = accumulate ? c[i * ldc + col] : bias ? bias[col] : 0.0f;
                c[i * ldc + col] = base + ascale[i] * f;
            }
        }
    }
}

void fs__qdot_init_generic(fs_kernels *k) {
    k->q8_quant_rows = fs_q8_quant_rows__generic;
    k->gemm_q8 = fs_q8_gemm_dot__generic;
    k->gemm_q4 = fs_q4_gemm_dot__generic;
}
