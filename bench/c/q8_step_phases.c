/*
 * q8_step_phases -- where a batch-1 int8 LSTM step spends its time, the C core
 * alone: a whole stream step (fp32 and int8 models, alternating), then each
 * phase of the int8 step through the kernel table (best of REPS, µs):
 * the input row quantised, its fine row (remainder + quantisation), the two
 * input products, h quantised, the recurrent product, the cell; the int8
 * fused step (h quantised, product and cell in one kernel) that replaces the
 * last three where the level has one; the fp32 input product and fused step.
 *
 *   q8_step_phases I H [REPS]
 *
 * FASTSEQ_ISA picks the kernel level as for the library.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kernels.h"

#define N_PHASES 12
static const char *const phase_name[N_PHASES] = {
    "stream step fp32", "stream step int8", "x quantised", "x fine row", "x product (coarse)", "x product (fine)",
    "h quantised", "h product", "lstm cell", "fp32 x product", "fp32 fused step", "int8 fused step (+ h)"};

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: q8_step_phases I H [REPS]\n");
        return 2;
    }
    const size_t I = (size_t)atol(argv[1]), H = (size_t)atol(argv[2]);
    const int reps = argc > 3 ? atoi(argv[3]) : 2000;
    if (I < 1 || H < 8 || H % 8 || reps < 1) {
        fprintf(stderr, "q8_step_phases: I >= 1, H a multiple of 8, REPS >= 1\n");
        return 2;
    }
    fs_rnn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cell = FS_CELL_LSTM, cfg.input_size = (int)I, cfg.hidden_size = (int)H, cfg.num_layers = 1, cfg.bias = 1;
    fs_rnn *m = NULL, *q = NULL;
    size_t n_params = 0;
    if (fs_rnn_create(&cfg, &m) != FS_OK || fs_rnn_param_count(m, &n_params) != FS_OK) return bench_fail("q8_step_phases", "model");
    float *params = malloc(n_params * sizeof(float));
    const size_t G = 4, nb = H / FS_NB, n = G * H, kmax = I > H ? I : H, ldq = FS_Q8_ROUND(kmax);
    float *x = malloc(I * sizeof(float)), *y = malloc(H * sizeof(float)), *h = malloc(H * sizeof(float));
    float *c = calloc(H, sizeof(float)), *gx = calloc(n, sizeof(float)), *acc = calloc(n, sizeof(float));
    float *wf = calloc(kmax * n, sizeof(float)), *sc = calloc(n, sizeof(float)), *rest = malloc(I * sizeof(float));
    uint8_t *w8 = calloc(ldq * n, 1);
    int8_t *codes = calloc(2 * ldq, 1);
    float as[2];
    int32_t sums[2];
    if (!params || !x || !y || !h || !c || !gx || !acc || !wf || !sc || !rest || !w8 || !codes) return bench_fail("q8_step_phases", "out of memory");
    srand(1);
    for (size_t i = 0; i < n_params; i++) params[i] = uniform(-0.2f, 0.2f);
    for (size_t i = 0; i < I; i++) x[i] = uniform(-2.0f, 2.0f);
    for (size_t i = 0; i < H; i++) h[i] = uniform(-1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) sc[i] = 1e-3f;
    fs_rnn_stream *sf = NULL, *sq = NULL;
    if (fs_rnn_set_params(m, params, n_params) != FS_OK || fs_set_num_threads(1) != FS_OK ||
        fs_rnn_quantize(m, FS_DTYPE_INT8, 0, &q) != FS_OK || fs_rnn_stream_create(m, 1, &sf) != FS_OK ||
        fs_rnn_stream_create(q, 1, &sq) != FS_OK)
        return bench_fail("q8_step_phases", "model setup");
    const fs_kernels *k = fs__kernels();
    double best[N_PHASES];
    for (int p = 0; p < N_PHASES; p++) best[p] = 1e30;
    enum { INNER = 20 }; /* calls per timing: the clock's own cost out of the figure */
    for (int r = 0; r < reps; r++)
        for (int p = 0; p < N_PHASES; p++) {
            const double t0 = now_us();
            for (int i = 0; i < INNER; i++) switch (p) {
                case 0: fs_rnn_stream_step(sf, x, I, y, H); break;
                case 1: fs_rnn_stream_step(sq, x, I, y, H); break;
                case 2: k->q8_quant_rows(1, I, x, I, codes, ldq, as, sums); break;
                case 3:
                    for (size_t j = 0; j < I; j++) rest[j] = x[j] - as[0] * (float)codes[j];
                    k->q8_quant_rows(1, I, rest, I, codes + ldq, ldq, as + 1, sums + 1);
                    break;
                case 4: k->gemm_q8(1, I, codes, ldq, as, sums, w8, sc, G, nb, sc, gx, n, 0); break;
                case 5: k->gemm_q8(1, I, codes + ldq, ldq, as + 1, sums + 1, w8, sc, G, nb, NULL, gx, n, 1); break;
                case 6: k->q8_quant_rows(1, H, h, H, codes, ldq, as, sums); break;
                case 7: k->gemm_q8(1, H, codes, ldq, as, sums, w8, sc, G, nb, NULL, acc, n, 0); break;
                case 8: k->lstm_cell(nb, gx, G * FS_NB, acc, c, FS_NB, y, FS_NB); break;
                case 9: k->gemm(1, I, x, I, wf, G, nb, sc, gx, n); break;
                case 10: if (k->lstm_step1) k->lstm_step1(H, nb, wf, gx, h, y, c); break;
                case 11:
                    k->q8_quant_rows(1, H, h, H, codes, ldq, as, sums);
                    if (k->lstm_step1_q8) k->lstm_step1_q8(H, nb, codes, as[0], sums[0], w8, sc, gx, y, c);
                    break;
                }
            const double us = (now_us() - t0) / INNER;
            if (us < best[p]) best[p] = us;
        }
    printf("LSTM I=%zu H=%zu batch 1, 1 thread, isa=%s, best of %d (us):\n", I, H, fs_isa_name(fs_active_isa()), reps);
    for (int p = 0; p < N_PHASES; p++) printf("  %-20s %8.3f\n", phase_name[p], best[p]);
    fs_rnn_stream_free(sf), fs_rnn_stream_free(sq), fs_rnn_free(q), fs_rnn_free(m);
    free(params), free(x), free(y), free(h), free(c), free(gx), free(acc), free(wf), free(sc), free(rest), free(w8),
        free(codes);
    return 0;
}
