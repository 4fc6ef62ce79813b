/* Elementwise sigmoid / tanh over an array, AVX2 + FMA (vmath/avx2.h), 8
 * lanes at a time (vact/body.h). */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels/vact/avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"
#include "../vmath/avx2.h"

#define VACT_FN fs_f32_vact__avx2
#define VACT_V __m256
#define VACT_LOADU _mm256_loadu_ps
#define VACT_STOREU _mm256_storeu_ps
#define VACT_SIGMOID fs_sigmoid_ps__avx2
#define VACT_TANH fs_tanh_ps__avx2
#include "body.h"

void fs__vact_init_avx2(fs_kernels *k) { k->vact = fs_f32_vact__avx2; }
