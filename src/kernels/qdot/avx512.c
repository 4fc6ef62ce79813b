/* The int8 dot path's activation rows with AVX-512F: 16 floats at a time, the
 * tail under a mask; the same float operations as kernels/qdot/generic.c (one
 * multiply by the reciprocal, nearest-even conversion), so the same codes. */
#if !defined(__AVX512F__) || !defined(__AVX512VL__)
#error "kernels/qdot/avx512.c must be compiled with -mavx512f -mavx512vl"
#endif

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../kernels.h"

static void fs_q8_quant_rows__avx512(size_t m, size_t k, const float *a, size_t lda, int8_t *q, size_t ldq,
                                     float *scale, int32_t *sum) {
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    const size_t k4 = FS_Q8_ROUND(k);
    for (size_t i = 0; i < m; i++) {
        const float *row = a + i * lda;
        int8_t *out = q + i * ldq;
        __m512 vmax = _mm512_setzero_ps();
        __mmask16 nan = 0;
        for (size_t kk = 0; kk < k; kk += 16) {
            const __mmask16 live = k - kk >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - kk)) - 1);
            const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(live, row + kk));
            vmax = _mm512_max_ps(v, vmax); /* a NaN v gives vmax back, as generic's compare */
            nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        }
        const float amax = _mm512_reduce_max_ps(vmax);
        if (nan || amax > FLT_MAX || amax < FS_Q8_TINY) { /* non-finite rows give NaN products, tiny ones 0 */
            memset(out, 0, k4);
            scale[i] = amax < FS_Q8_TINY && !nan ? 0.0f : NAN;
            sum[i] = 0;
            continue;
        }
        const __m512 inv = _mm512_set1_ps(127.0f / amax);
        __m512i vsum = _mm512_setzero_si512();
        for (size_t kk = 0; kk < k4; kk += 16) { /* codes past k are 0: the masked lanes load 0 */
            const size_t n = k4 - kk < 16 ? k4 - kk : 16;
            const __mmask16 live = k > kk ? (k - kk >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - kk)) - 1)) : 0;
            __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(live, row + kk), inv)); /* nearest even */
            c = _mm512_min_epi32(_mm512_max_epi32(c, lo), hi);
            vsum = _mm512_add_epi32(vsum, c);
            if (n == 16) {
                _mm_storeu_si128((__m128i *)(out + kk), _mm512_cvtepi32_epi8(c));
            } else { /* the last group of 4, 8 or 12 codes (byte stores need AVX512BW) */
                int8_t codes[16];
                _mm_storeu_si128((__m128i *)codes, _mm512_cvtepi32_epi8(c));
                memcpy(out + kk, codes, n);
            }
        }
        scale[i] = amax / 127.0f;
        sum[i] = _mm512_reduce_add_epi32(vsum);
    }
}

void fs__qdot_init_avx512(fs_kernels *k) { k->q8_quant_rows = fs_q8_quant_rows__avx512; }
