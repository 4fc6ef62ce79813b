/* Elementwise sigmoid / tanh over an array, portable C (the tree cells' gates):
 * the reference the SIMD level is tested against. */
#include <math.h>

#include "../kernels.h"

static void fs_f32_vact__generic(size_t n, int act, const float *x, float *y) {
    if (act == FS_ACT_SIGMOID)
        for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
    else
        for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void fs__vact_init_generic(fs_kernels *k) { k->vact = fs_f32_vact__generic; }
