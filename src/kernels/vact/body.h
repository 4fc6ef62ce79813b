/* The vact kernel of one SIMD level, VACT_FN: included by vact/<level>.c
 * after vmath/<level>.h with VACT_V (the vector type), VACT_LOADU,
 * VACT_STOREU, VACT_SIGMOID and VACT_TANH defined. Whole vectors, then the
 * tail (n % lanes) padded in a buffer, so every element is computed the same
 * way at any position. */
#include <string.h>

static void VACT_FN(size_t n, int act, const float *x, float *y) {
    enum { LANES = sizeof(VACT_V) / sizeof(float) };
    const int sig = act == FS_ACT_SIGMOID;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        const VACT_V v = VACT_LOADU(x + i);
        VACT_STOREU(y + i, sig ? VACT_SIGMOID(v) : VACT_TANH(v));
    }
    if (i < n) {
        float buf[LANES] = {0};
        memcpy(buf, x + i, (n - i) * sizeof(float));
        const VACT_V v = VACT_LOADU(buf);
        VACT_STOREU(buf, sig ? VACT_SIGMOID(v) : VACT_TANH(v));
        memcpy(y + i, buf, (n - i) * sizeof(float));
    }
}
