/* Elementwise sigmoid / tanh over an array, AVX2 + FMA (vmath/avx2.h); the
 * tail (n % 8) is padded in a register, so every element is computed the same way. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/vact/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <string.h>

#include "../kernels.h"
#include "../vmath/avx2.h"

static void fs_f32_vact__avx2(size_t n, int act, const float *x, float *y) {
    const int sig = act == FS_ACT_SIGMOID;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, sig ? fs_sigmoid_ps__avx2(v) : fs_tanh_ps__avx2(v));
    }
    if (i < n) {
        float buf[8] = {0};
        memcpy(buf, x + i, (n - i) * sizeof(float));
        const __m256 v = _mm256_loadu_ps(buf);
        _mm256_storeu_ps(buf, sig ? fs_sigmoid_ps__avx2(v) : fs_tanh_ps__avx2(v));
        memcpy(y + i, buf, (n - i) * sizeof(float));
    }
}

void fs__vact_init_avx2(fs_kernels *k) { k->vact = fs_f32_vact__avx2; }
