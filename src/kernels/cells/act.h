/* The gate activations of fs_acts, scalar: the generic cells' forward
 * functions and their derivatives from the output y. */
#ifndef FS_CELLS_ACT_H
#define FS_CELLS_ACT_H

#include <math.h>

#include "../kernels.h"

/* max(lo, min(hi, x)) that passes NaN through, as the tanh / sigmoid cells do. */
static inline float fs__clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static inline float fs__act(int kind, float alpha, float beta, float x) {
    switch (kind) {
    case FS_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case FS_ACT_RELU: return (x > 0.0f || isnan(x)) ? x : 0.0f;
    case FS_ACT_HARD_SIGMOID: return fs__clampf(alpha * x + beta, 0.0f, 1.0f);
    case FS_ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    case FS_ACT_HARD_TANH: return fs__clampf(x, -1.0f, 1.0f);
    default: return tanhf(x);
    }
}

/* d act / d x from y = act(x). The piecewise-linear ones take the slope of
 * their open pieces (0 where clamped, as torch's clamp / relu grads do). */
static inline float fs__dact(int kind, float alpha, float y) {
    switch (kind) {
    case FS_ACT_SIGMOID: return y * (1.0f - y);
    case FS_ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    case FS_ACT_HARD_SIGMOID: return y > 0.0f && y < 1.0f ? alpha : 0.0f;
    case FS_ACT_SOFTSIGN: return (1.0f - fabsf(y)) * (1.0f - fabsf(y));
    case FS_ACT_HARD_TANH: return y > -1.0f && y < 1.0f ? 1.0f : 0.0f;
    default: return 1.0f - y * y;
    }
}

/* Role r's activation of x, x first clipped when a->clip > 0: roles f and g
 * (an LSTM's h reads the cell state unclipped, as in ONNX Runtime). */
static inline float fs__role(const fs_acts *a, int r, float x) {
    if (a->clip > 0.0f) x = fs__clampf(x, -a->clip, a->clip);
    return fs__act(a->kind[r], a->alpha[r], a->beta[r], x);
}

#endif /* FS_CELLS_ACT_H */
