/*
 * Exp, sigmoid and tanh for aarch64 Advanced SIMD (NEON), 4 floats per call:
 * the math of vmath/avx2.h (method, accuracy, special values there), from the
 * same source (vmath/body.h). NEON's FMA is fused like x86's, so each lane is
 * bit-identical to the AVX2 and AVX-512 results (tests/c/test_vmath.c checks
 * the accuracy on every level it is built for).
 *
 * NaN: NEON's min/max return NaN when either operand is NaN (x86 returns the
 * second operand); body.h always puts x second, so a NaN survives either way.
 */
#ifndef FS_VMATH_NEON_H
#define FS_VMATH_NEON_H

#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "vmath/neon.h needs aarch64 with Advanced SIMD"
#endif

#include <arm_neon.h>

/* The vocabulary of vmath/body.h, 4 lanes. Bitwise operations go through the
 * integer view of the vectors. */
#define FS__BITS(op, a, b) vreinterpretq_f32_u32(op(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)))
#define FS_V float32x4_t
#define FS_VI int32x4_t
#define FS_VM(name) name##__neon
#define FS_SET1 vdupq_n_f32
#define FS_SET1I vdupq_n_s32
#define FS_ADD vaddq_f32
#define FS_SUB vsubq_f32
#define FS_MUL vmulq_f32
#define FS_DIV vdivq_f32
#define FS_FMADD(a, b, c) vfmaq_f32(c, a, b)  /* a * b + c */
#define FS_FNMADD(a, b, c) vfmsq_f32(c, a, b) /* c - a * b */
#define FS_MIN vminq_f32
#define FS_MAX vmaxq_f32
#define FS_XOR(a, b) FS__BITS(veorq_u32, a, b)
#define FS_AND(a, b) FS__BITS(vandq_u32, a, b)
#define FS_ANDNOT(a, b) FS__BITS(vbicq_u32, b, a) /* ~a & b, as x86's andnot */
#define FS_OR(a, b) FS__BITS(vorrq_u32, a, b)
#define FS_ONE_IF_GE(x, c) vreinterpretq_f32_u32(vandq_u32(vcgeq_f32(x, c), vreinterpretq_u32_f32(vdupq_n_f32(1.0f))))
#define FS_AS_INT vreinterpretq_s32_f32
#define FS_AS_FLOAT vreinterpretq_f32_s32
#define FS_ADDI vaddq_s32
#define FS_SUBI vsubq_s32
#define FS_SLLI vshlq_n_s32
#define FS_SRAI vshrq_n_s32

#include "body.h"
#undef FS__BITS

/* A block of FS_NB = 8 units as two q registers, with the operations the
 * kernels use on it (fs_v8_fma(a, b, c) = a * b + c, as x86's fmadd). */
typedef struct fs_v8 { float32x4_t lo, hi; } fs_v8;

#define FS__V8_1(name, f) static inline fs_v8 name(fs_v8 a) { return (fs_v8){f(a.lo), f(a.hi)}; }
#define FS__V8_2(name, f) static inline fs_v8 name(fs_v8 a, fs_v8 b) { return (fs_v8){f(a.lo, b.lo), f(a.hi, b.hi)}; }
FS__V8_1(fs_v8_exp, fs_exp_ps__neon)
FS__V8_1(fs_v8_sigmoid, fs_sigmoid_ps__neon)
FS__V8_1(fs_v8_tanh, fs_tanh_ps__neon)
FS__V8_2(fs_v8_add, vaddq_f32)
FS__V8_2(fs_v8_sub, vsubq_f32)
FS__V8_2(fs_v8_mul, vmulq_f32)
FS__V8_2(fs_v8_div, vdivq_f32)
FS__V8_2(fs_v8_min, vminq_f32)
FS__V8_2(fs_v8_max, vmaxq_f32)
#undef FS__V8_1
#undef FS__V8_2
static inline fs_v8 fs_v8_ld(const float *p) { return (fs_v8){vld1q_f32(p), vld1q_f32(p + 4)}; }
static inline void fs_v8_st(float *p, fs_v8 v) { vst1q_f32(p, v.lo), vst1q_f32(p + 4, v.hi); }
static inline fs_v8 fs_v8_set1(float x) { return (fs_v8){vdupq_n_f32(x), vdupq_n_f32(x)}; }
static inline fs_v8 fs_v8_fma(fs_v8 a, fs_v8 b, fs_v8 c) {
    return (fs_v8){vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)};
}
static inline fs_v8 fs_v8_abs(fs_v8 a) { return (fs_v8){vabsq_f32(a.lo), vabsq_f32(a.hi)}; }

#endif /* FS_VMATH_NEON_H */
