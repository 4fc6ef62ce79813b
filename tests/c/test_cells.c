/*
 * test_cells.c -- the cell-epilogue slots of the AVX-512 level against the
 * AVX2 level, bit for bit, and of the NEON level (aarch64) against the generic
 * one, through the internal kernel tables (kernels.h).
 *
 * The AVX-512 kernels run two rows per vector and its math is a lane-wise
 * copy of the AVX2 math, so every output must equal the AVX2 output exactly:
 * for 1..7 rows (pairs and an odd last row), with strides wider than the
 * data, on inputs that reach saturation, +-inf and NaN. Each row computed
 * alone (m = 1) must equal the same row in one call (threads split rows and,
 * at batch 1, blocks differently). Both levels are also held to the generic
 * (reference) kernels within 1e-5 on finite inputs.
 *
 * The NEON kernels are the AVX2 math on 4-lane vectors; they are held to the
 * generic kernels within 1e-5 and to themselves row by row (AVX2 and NEON
 * never run in one process). Exits 0 with "skipped" where the CPU or build
 * lacks both AVX-512 and NEON.
 */
#include "check.h"
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 7
#define LD_GX 40   /* > 4 * 8: the widest gx row of a block */
#define LD_ST 11   /* state rows: 8 used, 3 of padding */

/* Inputs of every kernel: gx, acc, state rows (c or h_prev), z. */
typedef struct inputs {
    float gx[MAX_ROWS * LD_GX], acc[MAX_ROWS * 4 * FS_NB], st[MAX_ROWS * LD_ST], z[MAX_ROWS * LD_ST];
} inputs;

/* Outputs: two state-shaped arrays (h, and c or z), written in place. */
typedef struct outputs {
    float a[MAX_ROWS * LD_ST], b[MAX_ROWS * LD_ST];
} outputs;

static void fill(float *p, size_t n, float scale, int specials) {
    static const float special[] = {INFINITY, -INFINITY, NAN, 100.0f, -100.0f, 0.0f, -0.0f, 1e-40f};
    for (size_t i = 0; i < n; i++)
        p[i] = specials && i % 13 == 5 ? special[(i / 13) % 8] : urand(scale);
}

static void make_inputs(inputs *in, int specials) {
    fill(in->gx, sizeof in->gx / sizeof(float), 6.0f, specials);
    fill(in->acc, sizeof in->acc / sizeof(float), 6.0f, specials);
    fill(in->st, sizeof in->st / sizeof(float), 2.0f, 0);
    for (size_t i = 0; i < sizeof in->z / sizeof(float); i++) in->z[i] = fabsf(urand(1.0f));
}

/* FASTRNN + an fs_act: FastRNN with that update activation */
enum { RNN, RNN_RELU, LSTM, GRU, GRU_RZ, GRU_N, FASTRNN, N_KINDS = FASTRNN + FS_ACT_HARD_TANH + 1 };
static const char *kind_name[N_KINDS] = {"rnn_tanh", "rnn_relu", "lstm", "gru", "gru_rz", "gru_n",
                                         "fastrnn_tanh", "fastrnn_sigmoid", "fastrnn_relu",
                                         "fastrnn_hard_sigmoid", "fastrnn_softsign", "fastrnn_hard_tanh"};

/* The same bits, or NaN in both: a NaN's sign and payload are not specified by IEEE 754
 * for arithmetic, and compilers differ there (clang gives -nan where gcc gives nan). */
static int same_outputs(const outputs *x, const outputs *y) {
    const float *a = (const float *)x, *b = (const float *)y;
    for (size_t q = 0; q < sizeof *x / sizeof(float); q++)
        if (memcmp(a + q, b + q, sizeof(float)) != 0 && !(isnan(a[q]) && isnan(b[q]))) return 0;
    return 1;
}

/* Rows [r0, r0 + m) of one kernel; out starts as a copy of the state. */
static void run(const fs_kernels *k, int kind, const inputs *in, size_t r0, size_t m, outputs *out) {
    const float *gx = in->gx + r0 * LD_GX, *st = in->st + r0 * LD_ST, *z = in->z + r0 * LD_ST;
    float *a = out->a + r0 * LD_ST, *b = out->b + r0 * LD_ST;
    switch (kind) {
    case RNN: k->rnn_cell(m, 0, gx, LD_GX, in->acc + r0 * FS_NB, a, LD_ST); break;
    case RNN_RELU: k->rnn_cell(m, 1, gx, LD_GX, in->acc + r0 * FS_NB, a, LD_ST); break;
    case LSTM: k->lstm_cell(m, gx, LD_GX, in->acc + r0 * 4 * FS_NB, b, LD_ST, a, LD_ST); break;
    case GRU: k->gru_cell(m, gx, LD_GX, in->acc + r0 * 3 * FS_NB, st, LD_ST, a, LD_ST); break;
    case GRU_RZ: k->gru_rz_cell(m, gx, LD_GX, in->acc + r0 * 2 * FS_NB, st, LD_ST, a, b, LD_ST); break;
    case GRU_N: k->gru_n_cell(m, gx, LD_GX, in->acc + r0 * FS_NB, z, LD_ST, st, LD_ST, a, LD_ST); break;
    default: {
        const fs_acts acts = {{FS_ACT_SIGMOID, kind - FASTRNN, FS_ACT_TANH}, {0.0f, 0.35f, 0.0f}, {0.0f, 0.45f, 0.0f}, 0.0f};
        k->fastrnn_cell(m, &acts, gx, LD_GX, in->acc + r0 * FS_NB, st, LD_ST, a, LD_ST, 0.3f, 0.7f);
    }
    }
}

static void start(const inputs *in, outputs *out) {
    memcpy(out->a, in->st, sizeof out->a);
    memcpy(out->b, in->st, sizeof out->b);
}

static double max_diff(const outputs *x, const outputs *y) {
    double d = 0.0;
    for (size_t i = 0; i < MAX_ROWS * LD_ST; i++) {
        d = fmax(d, fabs((double)x->a[i] - y->a[i]));
        d = fmax(d, fabs((double)x->b[i] - y->b[i]));
    }
    return d;
}

/* One vector level: each row alone equals the same row in one call; against
 * `twin` (a level of the same math, or NULL) bit for bit; against the generic
 * kernels within 1e-5 on finite inputs. */
static void check_level(const fs_kernels *lev, const char *name, const fs_kernels *twin, const char *twin_name,
                        const fs_kernels *ref) {
    static inputs in;
    static outputs o_ref, o_twin, o, o_rows;
    for (int specials = 0; specials <= 1; specials++)
        for (int rep = 0; rep < 20; rep++) {
            make_inputs(&in, specials);
            for (int kind = 0; kind < N_KINDS; kind++)
                for (size_t m = 1; m <= MAX_ROWS; m++) {
                    start(&in, &o_twin), start(&in, &o), start(&in, &o_rows), start(&in, &o_ref);
                    run(lev, kind, &in, 0, m, &o);
                    for (size_t r = 0; r < m; r++) run(lev, kind, &in, r, 1, &o_rows);
                    CHECK(same_outputs(&o, &o_rows), "%s: %s, %zu rows: a row alone differs from one call",
                          name, kind_name[kind], m);
                    if (twin) {
                        run(twin, kind, &in, 0, m, &o_twin);
                        CHECK(same_outputs(&o_twin, &o), "%s, %zu rows%s: %s differs from %s", kind_name[kind], m,
                              specials ? " (special values)" : "", name, twin_name);
                    }
                    if (specials) continue;
                    run(ref, kind, &in, 0, m, &o_ref);
                    const double d = max_diff(&o_ref, &o);
                    CHECK(d <= 1e-5, "%s: %s, %zu rows: %.3g from the generic kernel", name, kind_name[kind], m, d);
                }
        }
}

int main(void) {
    const fs_isa original = fs_active_isa();
    CHECK_STATUS(fs_set_isa(FS_ISA_GENERIC), FS_OK);
    const fs_kernels ref = *fs__kernels();
    int levels = 0;
    if (fs_set_isa(FS_ISA_AVX512) == FS_OK) {
        const fs_kernels avx512 = *fs__kernels();
        CHECK_STATUS(fs_set_isa(FS_ISA_AVX2), FS_OK);
        const fs_kernels avx2 = *fs__kernels();
        check_level(&avx512, "avx512", &avx2, "avx2", &ref);
        levels++;
    }
    if (fs_set_isa(FS_ISA_NEON) == FS_OK) {
        const fs_kernels neon = *fs__kernels();
        check_level(&neon, "neon", NULL, NULL, &ref);
        levels++;
    }
    fs_set_isa(original);
    if (!levels) {
        printf("test_cells: skipped (no AVX-512 or NEON level here)\n");
        return 0;
    }
    printf("test_cells: %d level(s), %d checks, %d failed\n", levels, g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
