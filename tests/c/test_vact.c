/* The vact slot (elementwise sigmoid / tanh of the tree cells) on every SIMD
 * level against double-precision libm (absolute error <= 1e-6, vmath's bound),
 * on every length up to 70 (each tail of 8 and 16 lanes) and special values;
 * each element the same bits wherever it sits in the array; and the AVX-512
 * level the AVX2 level's bits (both run the one vmath body). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kernels.h"

#define MAXN 70

static double want(int act, float x) {
    return act == FS_ACT_SIGMOID ? 1.0 / (1.0 + exp(-(double)x)) : tanh((double)x);
}

static void check_level(const fs_kernels *k, const char *name, const fs_kernels *twin, const char *twin_name) {
    static const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f, -0.5f, 9.0f, -9.0f,
                                     30.0f, -30.0f, 100.0f, -100.0f, INFINITY, -INFINITY};
    const size_t ns = sizeof specials / sizeof specials[0];
    static const int acts[] = {FS_ACT_SIGMOID, FS_ACT_TANH};
    for (size_t a = 0; a < 2; a++)
        for (size_t n = 1; n <= MAXN; n++) {
            const int act = acts[a];
            float x[MAXN], y[MAXN + 1], y2[MAXN + 1], one;
            for (size_t i = 0; i < n; i++) x[i] = i < ns && n % 3 == 0 ? specials[i] : urand(12.0f);
            y[n] = y2[n] = 12345.0f; /* past the end: must stay */
            k->vact(n, act, x, y);
            CHECK(y[n] == 12345.0f, "%s act %d n %zu: wrote past the end", name, act, n);
            for (size_t i = 0; i < n; i++) {
                const double d = fabs((double)y[i] - want(act, x[i]));
                CHECK(d <= 1e-6, "%s act %d n %zu: x %g gives %.9g, want %.9g", name, act, n, (double)x[i],
                      (double)y[i], want(act, x[i]));
                k->vact(1, act, x + i, &one);
                CHECK(memcmp(&one, y + i, sizeof one) == 0, "%s act %d n %zu: element %zu differs alone", name,
                      act, n, i);
            }
            if (twin) {
                twin->vact(n, act, x, y2);
                CHECK(memcmp(y, y2, (n + 1) * sizeof(float)) == 0, "%s act %d n %zu: differs from %s", name, act,
                      n, twin_name);
            }
        }
}

int main(void) {
    const fs_isa original = fs_active_isa();
    fs_kernels avx2;
    int levels = 0;
    if (fs_set_isa(FS_ISA_AVX2) == FS_OK) {
        avx2 = *fs__kernels();
        check_level(&avx2, "avx2", NULL, NULL);
        levels++;
    }
    if (levels && fs_set_isa(FS_ISA_AVX512) == FS_OK) {
        const fs_kernels wide = *fs__kernels();
        check_level(&wide, "avx512", &avx2, "avx2");
        levels++;
    }
    fs_set_isa(original);
    printf("test_vact: %d SIMD level(s)%s, %d checks, %d failed\n", levels, levels ? "" : " (skipped: none here)",
           g_checks, g_failures);
    return g_failures != 0;
}
