/* Gate activations and clip (fs_rnn_config.act, act_alpha, act_beta, clip):
 * validation names the field; every ISA level agrees with generic within
 * 1e-5 relative (the products' summation order, the vector sigmoid / tanh
 * (~1e-6 absolute) and FMA rounding in the AVX2 *_act cells, which AVX-512
 * also runs); batch 1 (the step path that replaces the fused steps) gives row
 * 0 of a batch bit for bit; and an activation set
 * equal to the usual one but routed through the *_act cells (a clip no input
 * reaches) matches the usual cells within the vector math's bound. */
#include <math.h>
#include <stdlib.h>

#include "check.h"

enum { T = 6, B = 3, I = 5 };

static void bad(fs_rnn_config cfg, const char *field, const char *what) {
    fs_rnn *m = NULL;
    fs_status s = fs_rnn_create(&cfg, &m);
    CHECK(s == FS_ERR_INVALID_ARG, "%s -> %s, expected FS_ERR_INVALID_ARG", what, fs_status_str(s));
    CHECK(strstr(fs_last_error(), field) != NULL, "%s: the message '%s' does not name %s", what,
          fs_last_error(), field);
    fs_rnn_free(m);
}

static void test_validation(void) {
    fs_rnn_config c = make_config(FS_CELL_LSTM, I, 7, 1, 0, 1);
    c.act[1] = 7; /* 1 + FS_ACT_HARD_TANH is the largest */
    bad(c, "act[1]", "LSTM act[1] = 7");
    c = make_config(FS_CELL_LSTM, I, 7, 1, 0, 1);
    c.act[0] = -1;
    bad(c, "act[0]", "LSTM act[0] = -1");
    c = make_config(FS_CELL_GRU, I, 7, 1, 0, 1);
    c.act[2] = 1 + FS_ACT_TANH; /* a GRU has roles f, g only */
    bad(c, "act[2]", "GRU act[2]");
    c = make_config(FS_CELL_FASTRNN, I, 7, 1, 0, 1);
    c.act[0] = 1 + FS_ACT_SIGMOID;
    bad(c, "act[0]", "FastRNN act[0]");
    c = make_config(FS_CELL_LSTM, I, 7, 1, 0, 1);
    c.act_alpha[2] = 0.5f; /* tanh takes none */
    bad(c, "act_alpha[2]", "alpha for tanh");
    c = make_config(FS_CELL_RNN_TANH, I, 7, 1, 0, 1);
    c.act[0] = 1 + FS_ACT_HARD_SIGMOID;
    c.act_beta[0] = NAN;
    bad(c, "act_beta[0]", "NaN beta");
    c = make_config(FS_CELL_GRU, I, 7, 1, 0, 1);
    c.clip = -1.0f;
    bad(c, "clip", "negative clip");
    c.clip = INFINITY;
    bad(c, "clip", "infinite clip");
    c = make_config(FS_CELL_FASTGRNN, I, 7, 1, 0, 1);
    c.clip = 1.0f;
    bad(c, "clip", "FastGRNN clip");
    CHECK(strcmp(fs_act_name(FS_ACT_HARD_TANH), "hard_tanh") == 0, "fs_act_name(FS_ACT_HARD_TANH)");
}

/* A model with seeded weights (the same for the same cfg and seed). */
static fs_rnn *make(const fs_rnn_config *cfg, uint64_t seed) {
    fs_rnn *m = NULL;
    fs_status s = fs_rnn_create(cfg, &m);
    CHECK(s == FS_OK, "create: %s", fs_last_error());
    if (s != FS_OK) return NULL;
    g_rng = seed;
    for (int p = 0; p < FS_PARAM_COUNT; p++) {
        size_t rows = 0, cols = 0;
        if (fs_rnn_param_shape(m, 0, 0, (fs_param)p, &rows, &cols) != FS_OK) continue;
        float *v = malloc(rows * cols * sizeof *v);
        for (size_t i = 0; i < rows * cols; i++) v[i] = urand(0.6f);
        CHECK(fs_rnn_set_param(m, 0, 0, (fs_param)p, v, rows * cols) == FS_OK, "set %d: %s", p, fs_last_error());
        free(v);
    }
    return m;
}

/* y [T][batch][H] from x [T][B][I] (the first `batch` rows of each step). */
static void run(const fs_rnn *m, int batch, const float *x, float *y, int H) {
    float xb[T * B * I];
    for (int t = 0; t < T; t++) memcpy(xb + t * batch * I, x + t * B * I, (size_t)batch * I * sizeof(float));
    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = T, a.batch = batch;
    a.x = xb, a.x_count = (size_t)T * batch * I;
    a.y = y, a.y_count = (size_t)T * batch * H;
    fs_status s = fs_rnn_forward(m, &a);
    CHECK(s == FS_OK, "forward: %s", fs_last_error());
}

static float max_rel_err(const float *got, const float *ref, size_t n) {
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float e = fabsf(got[i] - ref[i]) / fmaxf(1.0f, fabsf(ref[i]));
        if (!(e <= worst)) worst = e; /* NaN counts as worst */
    }
    return worst;
}

static fs_rnn_config acts_config(int which, int H) {
    fs_rnn_config c;
    switch (which) {
    case 0: /* LSTM with peepholes, every function somewhere, clip */
        c = make_config(FS_CELL_LSTM, I, H, 1, 0, 1);
        c.peephole = 1;
        c.act[0] = 1 + FS_ACT_HARD_SIGMOID, c.act[1] = 1 + FS_ACT_SOFTSIGN, c.act[2] = 1 + FS_ACT_HARD_TANH;
        c.act_alpha[0] = 0.3f, c.act_beta[0] = 0.45f, c.clip = 1.25f;
        break;
    case 1: /* coupled LSTM */
        c = make_config(FS_CELL_LSTM, I, H, 1, 0, 1);
        c.coupled = 1;
        c.act[1] = 1 + FS_ACT_RELU;
        break;
    case 2: /* GRU, reset after */
        c = make_config(FS_CELL_GRU, I, H, 1, 0, 1);
        c.act[0] = 1 + FS_ACT_HARD_SIGMOID, c.act[1] = 1 + FS_ACT_SOFTSIGN, c.clip = 0.9f;
        break;
    case 3: /* GRU, reset before */
        c = make_config(FS_CELL_GRU, I, H, 1, 0, 1);
        c.reset_before = 1;
        c.act[0] = 1 + FS_ACT_HARD_SIGMOID, c.act[1] = 1 + FS_ACT_HARD_TANH;
        break;
    default: /* RNN */
        c = make_config(FS_CELL_RNN_RELU, I, H, 1, 0, 1);
        c.act[0] = 1 + FS_ACT_SOFTSIGN, c.clip = 0.7f;
        break;
    }
    return c;
}

static void test_levels(void) {
    const int sizes[] = {1, 7, 13, 37};
    float x[T * B * I];
    g_rng = 11;
    for (int i = 0; i < T * B * I; i++) x[i] = urand(2.5f);
    for (int which = 0; which < 5; which++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const int H = sizes[si];
            const size_t n = (size_t)T * B * H;
            float *ref = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
            float *y1 = malloc((size_t)T * H * sizeof(float));
            const fs_rnn_config cfg = acts_config(which, H);
            fs_rnn *m = make(&cfg, 100 + (uint64_t)which);
            if (!m) continue;
            fs_set_isa(FS_ISA_GENERIC);
            run(m, B, x, ref, H);
            for (int k = 0; k < 16 && strcmp(fs_isa_name((fs_isa)k), "unknown") != 0; k++) {
                if (fs_set_isa((fs_isa)k) != FS_OK) continue;
                run(m, B, x, y, H);
                const float e = max_rel_err(y, ref, n);
                CHECK(e <= 1e-5f, "case %d H %d isa %s: max rel err %g vs generic", which, H,
                      fs_isa_name((fs_isa)k), (double)e);
                run(m, 1, x, y1, H);
                for (int t = 0; t < T; t++)
                    CHECK(memcmp(y1 + t * H, y + (size_t)t * B * H, (size_t)H * sizeof(float)) == 0,
                          "case %d H %d isa %s: batch 1 differs from row 0 at step %d", which, H,
                          fs_isa_name((fs_isa)k), t);
            }
            fs_set_isa(FS_ISA_GENERIC);
            fs_rnn_free(m);
            free(ref), free(y), free(y1);
        }
}

/* The usual functions through the *_act cells (a clip of 1e30 routes them
 * there and cuts nothing) against the usual cells, on every level. */
static void test_usual_functions_through_the_act_cells(void) {
    const fs_cell cells[] = {FS_CELL_LSTM, FS_CELL_GRU, FS_CELL_RNN_TANH};
    const int H = 19;
    const size_t n = (size_t)T * B * H;
    float x[T * B * I], *y = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    g_rng = 12;
    for (int i = 0; i < T * B * I; i++) x[i] = urand(2.0f);
    for (int c = 0; c < 3; c++) {
        fs_rnn_config usual = make_config(cells[c], I, H, 1, 0, 1), routed = usual;
        routed.clip = 1e30f;
        fs_rnn *mu = make(&usual, 7), *mr = make(&routed, 7);
        for (int k = 0; mu && mr && k < 16 && strcmp(fs_isa_name((fs_isa)k), "unknown") != 0; k++) {
            if (fs_set_isa((fs_isa)k) != FS_OK) continue;
            run(mu, B, x, ref, H);
            run(mr, B, x, y, H);
            const float e = max_rel_err(y, ref, n);
            CHECK(e <= 1e-5f, "cell %d isa %s: act cells vs usual cells: max rel err %g", (int)cells[c],
                  fs_isa_name((fs_isa)k), (double)e);
        }
        fs_set_isa(FS_ISA_GENERIC);
        fs_rnn_free(mu), fs_rnn_free(mr);
    }
    free(y), free(ref);
}

int main(void) {
    const fs_isa original = fs_active_isa();
    test_validation();
    test_levels();
    test_usual_functions_through_the_act_cells();
    fs_set_isa(original);
    printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
