/*
 * Exp, sigmoid and tanh for AVX-512F + FMA, 16 floats per call: the math of
 * vmath/avx2.h (method, accuracy, special values there), from the same
 * source (vmath/body.h) on wider vectors, so each lane is bit-identical to
 * the AVX2 result. That lets a kernel mix widths and keeps results
 * independent of how threads split rows (tests/c/test_cells.c).
 *
 * Include only from translation units compiled with -mavx512f -mfma.
 */
#ifndef FS_VMATH_AVX512_H
#define FS_VMATH_AVX512_H

#if !defined(__AVX512F__) || !defined(__FMA__)
#error "vmath/avx512.h needs -mavx512f -mfma"
#endif

#include <immintrin.h>

/* The vocabulary of vmath/body.h, 16 lanes. AVX-512F has no float-typed
 * bitwise operations (those are DQ): they go through the integer ones. */
#define FS__BITS(op, a, b) _mm512_castsi512_ps(op(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define FS_V __m512
#define FS_VI __m512i
#define FS_VM(name) name##__avx512
#define FS_SET1 _mm512_set1_ps
#define FS_SET1I _mm512_set1_epi32
#define FS_ADD _mm512_add_ps
#define FS_SUB _mm512_sub_ps
#define FS_MUL _mm512_mul_ps
#define FS_DIV _mm512_div_ps
#define FS_FMADD _mm512_fmadd_ps
#define FS_FNMADD _mm512_fnmadd_ps
#define FS_MIN _mm512_min_ps
#define FS_MAX _mm512_max_ps
#define FS_XOR(a, b) FS__BITS(_mm512_xor_si512, a, b)
#define FS_AND(a, b) FS__BITS(_mm512_and_si512, a, b)
#define FS_ANDNOT(a, b) FS__BITS(_mm512_andnot_si512, a, b)
#define FS_OR(a, b) FS__BITS(_mm512_or_si512, a, b)
#define FS_ONE_IF_GE(x, c) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, c, _CMP_GE_OQ), _mm512_set1_ps(1.0f))
#define FS_AS_INT _mm512_castps_si512
#define FS_AS_FLOAT _mm512_castsi512_ps
#define FS_ADDI _mm512_add_epi32
#define FS_SUBI _mm512_sub_epi32
#define FS_SLLI _mm512_slli_epi32
#define FS_SRAI _mm512_srai_epi32

#include "body.h"
#undef FS__BITS

#endif /* FS_VMATH_AVX512_H */
