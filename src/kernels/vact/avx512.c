/* Elementwise sigmoid / tanh over an array, AVX-512F + FMA (vmath/avx512.h),
 * 16 lanes at a time (vact/body.h); each lane the AVX2 level's bits (one vmath
 * body for both). */
#if !defined(__AVX512F__) || !defined(__FMA__)
#error "kernels/vact/avx512.c must be compiled with -mavx512f -mfma"
#endif

#include <immintrin.h>

#include "../kernels.h"
#include "../vmath/avx512.h"

#define VACT_FN fs_f32_vact__avx512
#define VACT_V __m512
#define VACT_LOADU _mm512_loadu_ps
#define VACT_STOREU _mm512_storeu_ps
#define VACT_SIGMOID fs_sigmoid_ps__avx512
#define VACT_TANH fs_tanh_ps__avx512
#include "body.h"

void fs__vact_init_avx512(fs_kernels *k) { k->vact = fs_f32_vact__avx512; }
