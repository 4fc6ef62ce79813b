/*
 * quant_products -- the quantised product slots against fp32 gemm, the C
 * kernels alone: best-of-REPS µs per call, calls interleaved, for each ISA
 * level the CPU has (docs/quantization.md, "Speed").
 *
 *   quant_products ROWS K H [REPS]
 *
 * One packed LSTM matrix: 4 gates, H units (a multiple of 8), K inputs; int4
 * groups of 32; int8 and int4 the dot path, their time including the
 * activation rows' quantisation (once per call, as the driver does; int4 also
 * the group sums of the codes, as rnn_step.c computes them). Weights are zero (the
 * kernels' time does not depend on them).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "kernels.h"

/* int8 / int4: the rows quantised (codes FS_Q4_ROUND(k) apart: room for
 * both), then the dot product. */
typedef struct q8_rows {
    int8_t *q;
    float *scale;
    int32_t *sum, *gsum;
} q8_rows;
static void int8_product(const fs_kernels *t, size_t m, size_t k, const float *a, const q8_rows *qa, const uint8_t *b,
                         const float *s, size_t g, size_t nb, float *c, size_t n) {
    t->q8_quant_rows(m, k, a, k, qa->q, FS_Q4_ROUND(k), qa->scale, qa->sum);
    t->gemm_q8(m, k, qa->q, FS_Q4_ROUND(k), qa->scale, qa->sum, b, s, g, nb, NULL, c, n, 0);
}
static void int4_product(const fs_kernels *t, size_t m, size_t k, const float *a, const q8_rows *qa, const uint8_t *b,
                         const float *s, size_t g, size_t nb, float *c, size_t n) {
    const size_t ldq = FS_Q4_ROUND(k), groups = (k + 31) / 32;
    t->q8_quant_rows(m, k, a, k, qa->q, ldq, qa->scale, qa->sum);
    for (size_t i = 0; i < m; i++)
        for (size_t gr = 0; gr < groups; gr++) {
            int32_t sum = 0;
            for (size_t j = gr * 32; j < ldq && j < gr * 32 + 32; j++) sum += qa->q[i * ldq + j];
            qa->gsum[i * groups + gr] = sum;
        }
    t->gemm_q4(m, k, qa->q, ldq, qa->scale, qa->gsum, groups, b, s, 32, g, nb, NULL, c, n, 0);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: quant_products ROWS K H [REPS]\n");
        return 2;
    }
    const size_t m = (size_t)atol(argv[1]), k = (size_t)atol(argv[2]), H = (size_t)atol(argv[3]);
    const int reps = argc > 4 ? atoi(argv[4]) : 300;
    if (m < 1 || k < 1 || H < 8 || H % 8 || reps < 1) {
        fprintf(stderr, "quant_products: ROWS, K >= 1, H a multiple of 8, REPS >= 1\n");
        return 2;
    }
    const size_t g = 4, nb = H / 8, n = nb * g * 8;
    float *a = calloc(m * k, sizeof(float)), *b = calloc(k * n, sizeof(float)), *c = calloc(m * n, sizeof(float));
    float *s = calloc(n * ((k + 31) / 32), sizeof(float));
    uint8_t *q8 = calloc(FS_Q8_ROUND(k) * n, 1);
    const q8_rows qa = {calloc(m * FS_Q4_ROUND(k), 1), calloc(m, sizeof(float)), calloc(m, sizeof(int32_t)),
                        calloc(m * ((k + 31) / 32), sizeof(int32_t))};
    uint8_t *q4 = calloc(FS_Q4_ROUND(k) / 2 * n, 1);
    uint16_t *h = calloc(k * n, 2);
    if (!a || !b || !c || !s || !q8 || !q4 || !h || !qa.q || !qa.scale || !qa.sum || !qa.gsum) return bench_fail("quant_products", "out of memory");
    for (size_t i = 0; i < m * k; i++) a[i] = uniform(-1.0f, 1.0f);
    static const char *const names[4] = {"f32", "int8", "int4", "bf16"};
    for (fs_isa isa = FS_ISA_GENERIC; isa <= FS_ISA_AVX512; isa++) {
        if (!fs_isa_supported(isa) || fs_set_isa(isa) != FS_OK) continue;
        const fs_kernels *t = fs__kernels();
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < reps; r++)
            for (int w = 0; w < 4; w++) {
                const double t0 = now_us();
                if (w == 0) t->gemm(m, k, a, k, b, g, nb, NULL, c, n);
                else if (w == 1) int8_product(t, m, k, a, &qa, q8, s, g, nb, c, n);
                else if (w == 2) int4_product(t, m, k, a, &qa, q4, s, g, nb, c, n);
                else t->gemm_bf16(m, k, a, k, h, g, nb, NULL, c, n);
                const double d = now_us() - t0;
                if (d < best[w]) best[w] = d;
            }
        printf("%-8s rows %zu k %zu H %zu:", fs_isa_name(isa), m, k, H);
        for (int w = 0; w < 4; w++) printf("  %s %.1f us", names[w], best[w]);
        printf("\n");
    }
    free(a), free(b), free(c), free(s), free(q8), free(q4), free(h), free(qa.q), free(qa.scale), free(qa.sum), free(qa.gsum);
    return 0;
}
