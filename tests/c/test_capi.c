/*
 * test_capi.c -- the public C API, used the way a C caller would: only
 * "fastseq.h", no Python.
 *
 * Checks fs_rnn_forward for LSTM, GRU and both plain RNNs against a small
 * straightforward reference written here (double precision loops, PyTorch's
 * equations from DESIGN.md section 2), on every ISA the machine has, and checks
 * that bad arguments come back as the documented status codes.
 *
 * Exit status 0 when every check passes; each failure is printed.
 */
#include "fastseq.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Either of two codes is acceptable (for cases the header leaves open). */
#define CHECK_STATUS2(call, e1, e2)                                          \
    do {                                                                     \
        fs_status s_ = (call);                                               \
        CHECK(s_ == (e1) || s_ == (e2),                                      \
              "%s -> %d (%s), expected %s or %s; detail: %s", #call,         \
              (int)s_, fs_status_str(s_), fs_status_str(e1),                 \
              fs_status_str(e2), fs_last_error());                           \
    } while (0)

/* ------------------------------------------------------------------ helpers */

static float *falloc(size_t n) {
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void fill(float *p, size_t n, float a) {
    for (size_t i = 0; i < n; i++) p[i] = urand(a);
}

static void fill_const(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

static int gates_of(fs_cell cell) {
    switch (cell) {
    case FS_CELL_LSTM: return 4;
    case FS_CELL_GRU: return 3;
    default: return 1;
    }
}

static const char *cell_name(fs_cell cell) {
    switch (cell) {
    case FS_CELL_RNN_TANH: return "RNN_TANH";
    case FS_CELL_RNN_RELU: return "RNN_RELU";
    case FS_CELL_LSTM: return "LSTM";
    case FS_CELL_GRU: return "GRU";
    default: return "?";
    }
}

/* --------------------------------------------------------- the reference */

#define MAXL 4

typedef struct params {
    fs_rnn_config cfg;
    int G, D;
    float *p[MAXL][2][4]; /* PyTorch layout; NULL for absent biases */
} params;

static size_t layer_in(const params *P, int l) {
    return l == 0 ? (size_t)P->cfg.input_size : (size_t)(P->D * P->cfg.hidden_size);
}

static size_t param_rows(const params *P) { return (size_t)(P->G * P->cfg.hidden_size); }

static size_t param_cols(const params *P, int l, int which) {
    if (which == FS_PARAM_WEIGHT_IH) return layer_in(P, l);
    if (which == FS_PARAM_WEIGHT_HH) return (size_t)P->cfg.hidden_size;
    return 1;
}

static void params_init(params *P, const fs_rnn_config *cfg) {
    memset(P, 0, sizeof *P);
    P->cfg = *cfg;
    P->G = gates_of(cfg->cell);
    P->D = cfg->bidirectional ? 2 : 1;
    float a = 1.0f / sqrtf((float)cfg->hidden_size); /* PyTorch's default init range */
    for (int l = 0; l < cfg->num_layers; l++)
        for (int d = 0; d < P->D; d++)
            for (int w = 0; w < 4; w++) {
                if (w >= FS_PARAM_BIAS_IH && !cfg->bias) continue;
                size_t n = param_rows(P) * param_cols(P, l, w);
                P->p[l][d][w] = falloc(n);
                fill(P->p[l][d][w], n, a);
            }
}

static void params_free(params *P) {
    for (int l = 0; l < MAXL; l++)
        for (int d = 0; d < 2; d++)
            for (int w = 0; w < 4; w++) free(P->p[l][d][w]);
}

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* y = W v (+ b), W [rows, cols] row-major float, v double. */
static void matvec(const float *W, const float *bias, const double *v, size_t rows,
                   size_t cols, double *y) {
    for (size_t r = 0; r < rows; r++) {
        double s = bias ? (double)bias[r] : 0.0;
        for (size_t c = 0; c < cols; c++) s += (double)W[r * cols + c] * v[c];
        y[r] = s;
    }
}

/*
 * Reference forward. x, y in the caller's layout (batch_first or not);
 * lengths/h0/c0 may be NULL. Outputs in double.
 */
static void ref_forward(const params *P, int T, int B, int batch_first, const float *x,
                        const int32_t *lengths, const float *h0, const float *c0, double *y,
                        double *h_n, double *c_n) {
    const int H = P->cfg.hidden_size, D = P->D, G = P->G, L = P->cfg.num_layers;
    size_t in_max = layer_in(P, 0) > (size_t)(D * H) ? layer_in(P, 0) : (size_t)(D * H);
    /* time-major working copies */
    double *in = (double *)calloc((size_t)T * B * in_max, sizeof(double));
    double *out = (double *)calloc((size_t)T * B * D * H, sizeof(double));
    double *h = (double *)calloc((size_t)H, sizeof(double));
    double *c = (double *)calloc((size_t)H, sizeof(double));
    double *ax = (double *)calloc((size_t)G * H, sizeof(double));
    double *ah = (double *)calloc((size_t)G * H, sizeof(double));
    if (!in || !out || !h || !c || !ax || !ah) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    size_t I0 = layer_in(P, 0);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < I0; k++) {
                size_t src = batch_first ? ((size_t)b * T + t) * I0 + k
                                         : ((size_t)t * B + b) * I0 + k;
                in[((size_t)t * B + b) * in_max + k] = x[src];
            }
    for (int l = 0; l < L; l++) {
        size_t nin = layer_in(P, l);
        memset(out, 0, (size_t)T * B * D * H * sizeof(double));
        for (int d = 0; d < D; d++) {
            const float *Wih = P->p[l][d][FS_PARAM_WEIGHT_IH];
            const float *Whh = P->p[l][d][FS_PARAM_WEIGHT_HH];
            const float *bih = P->p[l][d][FS_PARAM_BIAS_IH];
            const float *bhh = P->p[l][d][FS_PARAM_BIAS_HH];
            size_t sidx = (size_t)(l * D + d);
            for (int b = 0; b < B; b++) {
                int len = lengths ? lengths[b] : T;
                for (int j = 0; j < H; j++) {
                    h[j] = h0 ? h0[(sidx * B + b) * H + j] : 0.0;
                    c[j] = c0 ? c0[(sidx * B + b) * H + j] : 0.0;
                }
                for (int s = 0; s < len; s++) {
                    int t = d == 0 ? s : len - 1 - s;
                    matvec(Wih, bih, &in[((size_t)t * B + b) * in_max], (size_t)G * H, nin, ax);
                    matvec(Whh, bhh, h, (size_t)G * H, (size_t)H, ah);
                    for (int j = 0; j < H; j++) {
                        switch (P->cfg.cell) {
                        case FS_CELL_RNN_TANH: h[j] = tanh(ax[j] + ah[j]); break;
                        case FS_CELL_RNN_RELU: {
                            double v = ax[j] + ah[j];
                            h[j] = v > 0 ? v : 0.0;
                            break;
                        }
                        case FS_CELL_LSTM: {
                            double ig = sigm(ax[j] + ah[j]);
                            double fg = sigm(ax[H + j] + ah[H + j]);
                            double gg = tanh(ax[2 * H + j] + ah[2 * H + j]);
                            double og = sigm(ax[3 * H + j] + ah[3 * H + j]);
                            c[j] = fg * c[j] + ig * gg;
                            h[j] = og * tanh(c[j]);
                            break;
                        }
                        case FS_CELL_GRU: {
                            double r = sigm(ax[j] + ah[j]);
                            double z = sigm(ax[H + j] + ah[H + j]);
                            double n = tanh(ax[2 * H + j] + r * ah[2 * H + j]);
                            h[j] = (1.0 - z) * n + z * h[j];
                            break;
                        }
                        default: break; /* only the four PyTorch cells are tested here */
                        }
                    }
                    for (int j = 0; j < H; j++) out[((size_t)t * B + b) * D * H + d * H + j] = h[j];
                }
                for (int j = 0; j < H; j++) {
                    h_n[(sidx * B + b) * H + j] = h[j];
                    c_n[(sidx * B + b) * H + j] = c[j];
                }
            }
        }
        for (size_t i = 0; i < (size_t)T * B; i++)
            for (int k = 0; k < D * H; k++) in[i * in_max + k] = out[i * D * H + k];
    }
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            for (int k = 0; k < D * H; k++) {
                size_t dst = batch_first ? ((size_t)b * T + t) * D * H + k
                                         : ((size_t)t * B + b) * D * H + k;
                y[dst] = out[((size_t)t * B + b) * D * H + k];
            }
    free(in);
    free(out);
    free(h);
    free(c);
    free(ax);
    free(ah);
}

static double max_abs_diff(const float *got, const double *want, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= m)) m = d; /* NaN wins */
    }
    return m;
}

/* ------------------------------------------------------------ the model */

static fs_rnn *make_model(const params *P) {
    fs_rnn *m = NULL;
    fs_status s = fs_rnn_create(&P->cfg, &m);
    CHECK(s == FS_OK && m != NULL, "fs_rnn_create(%s) -> %s: %s", cell_name(P->cfg.cell),
          fs_status_str(s), fs_last_error());
    if (s != FS_OK) return NULL;
    for (int l = 0; l < P->cfg.num_layers; l++)
        for (int d = 0; d < P->D; d++)
            for (int w = 0; w < 4; w++) {
                if (!P->p[l][d][w]) continue;
                size_t rows = 0, cols = 0;
                CHECK_STATUS(fs_rnn_param_shape(m, l, d, (fs_param)w, &rows, &cols), FS_OK);
                CHECK(rows == param_rows(P) && cols == param_cols(P, l, w),
                      "param_shape(%d,%d,%d) = %zux%zu, expected %zux%zu", l, d, w, rows, cols,
                      param_rows(P), param_cols(P, l, w));
                size_t n = param_rows(P) * param_cols(P, l, w);
                CHECK_STATUS(fs_rnn_set_param(m, l, d, (fs_param)w, P->p[l][d][w], n), FS_OK);
                float *back = falloc(n);
                CHECK_STATUS(fs_rnn_get_param(m, l, d, (fs_param)w, back, n), FS_OK);
                CHECK(memcmp(back, P->p[l][d][w], n * sizeof(float)) == 0,
                      "get_param(%d,%d,%d) differs from what was set", l, d, w);
                free(back);
            }
    return m;
}

typedef struct run_case {
    int T, B, batch_first, use_lengths, use_h0, want_states;
} run_case;

/* Run one case through fs_rnn_forward (and fs_rnn_forward_ws) and compare. */
static void check_forward(const params *P, fs_rnn *m, const run_case *rc, const char *isa) {
    const int T = rc->T, B = rc->B, H = P->cfg.hidden_size, D = P->D;
    const int L = P->cfg.num_layers;
    const int is_lstm = P->cfg.cell == FS_CELL_LSTM;
    size_t nx = (size_t)T * B * P->cfg.input_size, ny = (size_t)T * B * D * H;
    size_t ns = (size_t)L * D * B * H;
    float *x = falloc(nx), *y = falloc(ny), *y2 = falloc(ny);
    float *h0 = falloc(ns), *c0 = falloc(ns), *hn = falloc(ns), *cn = falloc(ns);
    double *ry = (double *)calloc(ny, sizeof(double));
    double *rh = (double *)calloc(ns, sizeof(double)), *rc_ = (double *)calloc(ns, sizeof(double));
    int32_t *lengths = (int32_t *)malloc(sizeof(int32_t) * (size_t)B);
    if (!ry || !rh || !rc_ || !lengths) exit(2);
    fill(x, nx, 1.5f);
    fill(h0, ns, 0.8f);
    fill(c0, ns, 0.8f);
    for (int b = 0; b < B; b++) lengths[b] = 1 + (int32_t)((b * 7 + 3) % T);
    lengths[B / 2] = T;
    fill_const(y, ny, 1234.5f); /* garbage: the library must overwrite every element */
    fill_const(hn, ns, -999.0f);
    fill_const(cn, ns, -999.0f);

    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = T;
    a.batch = B;
    a.batch_first = rc->batch_first;
    a.x = x;
    a.x_count = nx;
    if (rc->use_lengths) {
        a.lengths = lengths;
        a.lengths_count = (size_t)B;
    }
    if (rc->use_h0) {
        a.h0 = h0;
        a.h0_count = ns;
        if (is_lstm) {
            a.c0 = c0;
            a.c0_count = ns;
        }
    }
    a.y = y;
    a.y_count = ny;
    if (rc->want_states) {
        a.h_n = hn;
        a.h_n_count = ns;
        if (is_lstm) {
            a.c_n = cn;
            a.c_n_count = ns;
        }
    }
    ref_forward(P, T, B, rc->batch_first, x, rc->use_lengths ? lengths : NULL,
                rc->use_h0 ? h0 : NULL, (rc->use_h0 && is_lstm) ? c0 : NULL, ry, rh, rc_);

    char what[256];
    snprintf(what, sizeof what,
             "%s I=%d H=%d L=%d D=%d bias=%d T=%d B=%d batch_first=%d lengths=%d h0=%d isa=%s",
             cell_name(P->cfg.cell), P->cfg.input_size, H, L, D, P->cfg.bias, T, B,
             rc->batch_first, rc->use_lengths, rc->use_h0, isa);
    const double tol = 1e-5;
    fs_status s = fs_rnn_forward(m, &a);
    CHECK(s == FS_OK, "%s: fs_rnn_forward -> %s: %s", what, fs_status_str(s), fs_last_error());
    if (s == FS_OK) {
        CHECK(fs_last_error() != NULL && fs_last_error()[0] == '\0',
              "%s: fs_last_error not empty after success: '%s'", what, fs_last_error());
        double e = max_abs_diff(y, ry, ny);
        CHECK(e <= tol, "%s: y max|diff| = %g", what, e);
        if (rc->want_states) {
            e = max_abs_diff(hn, rh, ns);
            CHECK(e <= tol, "%s: h_n max|diff| = %g", what, e);
            if (is_lstm) {
                e = max_abs_diff(cn, rc_, ns);
                CHECK(e <= tol, "%s: c_n max|diff| = %g", what, e);
            }
        }
    }

    /* Same pass with caller-provided workspace: bit-identical output. */
    size_t bytes = 0;
    CHECK_STATUS(fs_rnn_forward_workspace_size(m, T, B, &bytes), FS_OK);
    size_t alloc = ((bytes ? bytes : 1) + 63) / 64 * 64;
    void *ws = aligned_alloc(64, alloc);
    if (!ws) exit(2);
    fill_const(y2, ny, -7.0f);
    a.y = y2;
    s = fs_rnn_forward_ws(m, &a, ws, alloc);
    CHECK(s == FS_OK, "%s: fs_rnn_forward_ws(%zu bytes) -> %s: %s", what, alloc,
          fs_status_str(s), fs_last_error());
    if (s == FS_OK)
        CHECK(memcmp(y, y2, ny * sizeof(float)) == 0, "%s: forward_ws output differs", what);
    if (bytes > 0) {
        /* a workspace sized for fewer threads runs on fewer; below one thread's size the
         * input is projected a step at a time; below the smallest workspace it fails */
        const int32_t threads = fs_get_num_threads();
        size_t bytes1 = 0, bytes_min = 0;
        CHECK_STATUS(fs_set_num_threads(1), FS_OK);
        CHECK_STATUS(fs_rnn_forward_workspace_size(m, T, B, &bytes1), FS_OK);
        CHECK_STATUS(fs_rnn_forward_workspace_min_size(m, T, B, &bytes_min), FS_OK);
        CHECK_STATUS(fs_set_num_threads(threads), FS_OK);
        CHECK_STATUS(fs_rnn_forward_ws(m, &a, ws, bytes1), FS_OK);
        CHECK(memcmp(y, y2, ny * sizeof(float)) == 0, "%s: forward_ws on one thread's workspace differs", what);
        fill_const(y2, ny, -7.0f);
        CHECK_STATUS(fs_rnn_forward_ws(m, &a, ws, bytes_min), FS_OK);
        CHECK(memcmp(y, y2, ny * sizeof(float)) == 0, "%s: forward_ws in the smallest workspace differs", what);
        CHECK_STATUS2(fs_rnn_forward_ws(m, &a, ws, bytes_min - 1), FS_ERR_SHAPE, FS_ERR_INVALID_ARG);
        if (alloc >= bytes + 64) { /* misaligned pointer, enough bytes */
            CHECK_STATUS2(fs_rnn_forward_ws(m, &a, (char *)ws + 4, bytes), FS_ERR_INVALID_ARG,
                          FS_ERR_SHAPE);
        }
        CHECK_STATUS(fs_rnn_forward_ws(m, &a, NULL, bytes), FS_ERR_NULL_ARG);
    }
    free(ws);

    free(x);
    free(y);
    free(y2);
    free(h0);
    free(c0);
    free(hn);
    free(cn);
    free(ry);
    free(rh);
    free(rc_);
    free(lengths);
}

static void test_numerics(fs_cell cell, int I, int H, int L, int bidir, int bias,
                          const char *isa) {
    fs_rnn_config cfg = make_config(cell, I, H, L, bidir, bias);
    params P;
    params_init(&P, &cfg);
    fs_rnn *m = make_model(&P);
    if (m) {
        fs_rnn_config back;
        CHECK_STATUS(fs_rnn_get_config(m, &back), FS_OK);
        CHECK(back.cell == cfg.cell && back.input_size == I && back.hidden_size == H &&
                  back.num_layers == L && back.bidirectional == bidir && back.bias == bias,
              "fs_rnn_get_config does not match the create config");
        static const run_case cases[] = {
            {7, 3, 0, 1, 1, 1}, {7, 3, 1, 1, 1, 1}, {7, 3, 0, 0, 0, 1},
            {1, 1, 0, 0, 1, 1}, {5, 4, 1, 0, 0, 0}, {23, 5, 0, 1, 0, 1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_forward(&P, m, &cases[i], isa);
    }
    fs_rnn_free(m);
    params_free(&P);
}

/* ------------------------------------------------------------ bad arguments */

static void test_bad_args(void) {
    const int I = 4, H = 3, L = 2, T = 5, B = 2, D = 2;
    fs_rnn_config cfg = make_config(FS_CELL_LSTM, I, H, L, 1, 1);
    fs_rnn *m = NULL;

    /* create */
    CHECK_STATUS(fs_rnn_create(NULL, &m), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_create(&cfg, NULL), FS_ERR_NULL_ARG);
    {
        fs_rnn_config bad[] = {
            make_config((fs_cell)99, I, H, L, 1, 1), make_config((fs_cell)-1, I, H, L, 1, 1),
            make_config(FS_CELL_GRU, 0, H, L, 1, 1),  make_config(FS_CELL_GRU, -2, H, L, 1, 1),
            make_config(FS_CELL_GRU, I, 0, L, 1, 1),  make_config(FS_CELL_GRU, I, -1, L, 1, 1),
            make_config(FS_CELL_GRU, I, H, 0, 1, 1),  make_config(FS_CELL_GRU, I, H, L, 2, 1),
            make_config(FS_CELL_GRU, I, H, L, -1, 1), make_config(FS_CELL_GRU, I, H, L, 1, 2),
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            fs_rnn *mb = NULL;
            fs_status s = fs_rnn_create(&bad[i], &mb);
            CHECK(s == FS_ERR_INVALID_ARG, "bad config #%zu -> %s, expected %s", i,
                  fs_status_str(s), fs_status_str(FS_ERR_INVALID_ARG));
            if (s == FS_ERR_INVALID_ARG)
                CHECK(fs_last_error()[0] != '\0', "bad config #%zu: empty fs_last_error", i);
            if (s == FS_OK) fs_rnn_free(mb);
        }
    }

    CHECK_STATUS(fs_rnn_create(&cfg, &m), FS_OK);
    if (!m) return;

    /* config / shapes */
    fs_rnn_config got;
    size_t rows, cols;
    CHECK_STATUS(fs_rnn_get_config(NULL, &got), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_get_config(m, NULL), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_param_shape(m, 0, 0, FS_PARAM_WEIGHT_IH, &rows, &cols), FS_OK);
    CHECK(rows == (size_t)(4 * H) && cols == (size_t)I, "weight_ih_l0 shape %zux%zu", rows, cols);
    CHECK_STATUS(fs_rnn_param_shape(m, 1, 1, FS_PARAM_WEIGHT_IH, &rows, &cols), FS_OK);
    CHECK(rows == (size_t)(4 * H) && cols == (size_t)(D * H), "weight_ih_l1 shape %zux%zu", rows,
          cols);
    CHECK_STATUS(fs_rnn_param_shape(m, 0, 0, FS_PARAM_BIAS_HH, &rows, &cols), FS_OK);
    CHECK(rows == (size_t)(4 * H) && cols == 1, "bias_hh_l0 shape %zux%zu", rows, cols);
    CHECK_STATUS(fs_rnn_param_shape(NULL, 0, 0, FS_PARAM_WEIGHT_IH, &rows, &cols), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_param_shape(m, 0, 0, FS_PARAM_WEIGHT_IH, NULL, &cols), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_param_shape(m, L, 0, FS_PARAM_WEIGHT_IH, &rows, &cols), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_param_shape(m, -1, 0, FS_PARAM_WEIGHT_IH, &rows, &cols), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_param_shape(m, 0, 2, FS_PARAM_WEIGHT_IH, &rows, &cols), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_param_shape(m, 0, 0, (fs_param)99, &rows, &cols), FS_ERR_INVALID_ARG);

    /* set_param / get_param */
    float wbuf[4 * 3 * 6];
    size_t nw = (size_t)(4 * H * I);
    fill(wbuf, sizeof wbuf / sizeof wbuf[0], 0.5f);
    CHECK_STATUS(fs_rnn_set_param(m, 0, 0, FS_PARAM_WEIGHT_IH, wbuf, nw), FS_OK);
    CHECK_STATUS(fs_rnn_set_param(NULL, 0, 0, FS_PARAM_WEIGHT_IH, wbuf, nw), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_set_param(m, 0, 0, FS_PARAM_WEIGHT_IH, NULL, nw), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_set_param(m, 0, 0, FS_PARAM_WEIGHT_IH, wbuf, nw - 1), FS_ERR_SHAPE);
    CHECK_STATUS(fs_rnn_set_param(m, 0, 0, FS_PARAM_WEIGHT_IH, wbuf, nw + 1), FS_ERR_SHAPE);
    CHECK_STATUS(fs_rnn_set_param(m, 1, 0, FS_PARAM_WEIGHT_IH, wbuf, nw), FS_ERR_SHAPE);
    CHECK_STATUS(fs_rnn_set_param(m, L, 0, FS_PARAM_WEIGHT_IH, wbuf, nw), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_set_param(m, 0, 2, FS_PARAM_WEIGHT_IH, wbuf, nw), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_set_param(m, 0, 0, (fs_param)99, wbuf, nw), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_rnn_get_param(m, 0, 0, FS_PARAM_WEIGHT_IH, wbuf, nw - 1), FS_ERR_SHAPE);
    CHECK_STATUS(fs_rnn_get_param(m, 0, 0, FS_PARAM_WEIGHT_IH, NULL, nw), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_get_param(NULL, 0, 0, FS_PARAM_WEIGHT_IH, wbuf, nw), FS_ERR_NULL_ARG);
    {
        fs_rnn_config nb = make_config(FS_CELL_RNN_TANH, I, H, 1, 0, 0);
        fs_rnn *m2 = NULL;
        CHECK_STATUS(fs_rnn_create(&nb, &m2), FS_OK);
        if (m2) {
            CHECK_STATUS(fs_rnn_set_param(m2, 0, 0, FS_PARAM_BIAS_IH, wbuf, (size_t)H),
                         FS_ERR_INVALID_ARG);
            CHECK_STATUS(fs_rnn_set_param(m2, 0, 1, FS_PARAM_WEIGHT_IH, wbuf, (size_t)(H * I)),
                         FS_ERR_INVALID_ARG);
        }
        fs_rnn_free(m2);
    }

    /* forward */
    size_t nx = (size_t)T * B * I, ny = (size_t)T * B * D * H, ns = (size_t)L * D * B * H;
    float x[5 * 2 * 4], y[5 * 2 * 6], h0[2 * 2 * 2 * 3], c0[2 * 2 * 2 * 3], hn[2 * 2 * 2 * 3],
        cn[2 * 2 * 2 * 3];
    int32_t lengths[3] = {T, 2, 1};
    fill(x, nx, 1.0f);
    fill(h0, ns, 1.0f);
    fill(c0, ns, 1.0f);
    fs_seq_args good;
    memset(&good, 0, sizeof good);
    good.seq_len = T;
    good.batch = B;
    good.x = x;
    good.x_count = nx;
    good.lengths = lengths;
    good.lengths_count = (size_t)B;
    good.h0 = h0;
    good.h0_count = ns;
    good.c0 = c0;
    good.c0_count = ns;
    good.y = y;
    good.y_count = ny;
    good.h_n = hn;
    good.h_n_count = ns;
    good.c_n = cn;
    good.c_n_count = ns;
    fs_seq_args a = good;
    CHECK_STATUS(fs_rnn_forward(m, &a), FS_OK);
    CHECK_STATUS(fs_rnn_forward(NULL, &a), FS_ERR_NULL_ARG);
    CHECK(fs_last_error()[0] != '\0', "fs_last_error empty after a failed call");
    CHECK_STATUS(fs_rnn_forward(m, NULL), FS_ERR_NULL_ARG);
    a = good; a.x = NULL;               CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_NULL_ARG);
    a = good; a.y = NULL;               CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_NULL_ARG);
    a = good; a.x_count = nx - 1;       CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.x_count = nx + 1;       CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.y_count = ny - 1;       CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.h0_count = ns - 1;      CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.c0_count = ns + 1;      CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.h_n_count = ns - 1;     CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.c_n_count = 1;          CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.lengths_count = B + 1;  CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.lengths_count = B - 1;  CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    a = good; a.seq_len = T + 1;        CHECK_STATUS(fs_rnn_forward(m, &a), FS_ERR_SHAPE);
    /* counts checked before a workspace of that many steps is allocated: not FS_ERR_NOMEM
     * (T*B*I overflowing size_t is an invalid argument; counts that fit, a shape error) */
    a = good; a.seq_len = INT32_MAX; a.batch = INT32_MAX;
    CHECK_STATUS2(fs_rnn_forward(m, &a), FS_ERR_INVALID_ARG, FS_ERR_SHAPE);
    a = good; a.seq_len = -1;
    CHECK_STATUS2(fs_rnn_forward(m, &a), FS_ERR_INVALID_ARG, FS_ERR_SHAPE);
    a = good; a.batch = -1;
    CHECK_STATUS2(fs_rnn_forward(m, &a), FS_ERR_INVALID_ARG, FS_ERR_SHAPE);
    {
        int32_t bad_values[] = {0, -1, T + 1, 1000};
        for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
            int32_t lb[2] = {T, bad_values[i]};
            a = good;
            a.lengths = lb;
            fs_status s = fs_rnn_forward(m, &a);
            CHECK(s == FS_ERR_INVALID_ARG, "lengths value %d -> %s, expected %s", (int)lb[1],
                  fs_status_str(s), fs_status_str(FS_ERR_INVALID_ARG));
        }
    }
    /* workspace size */
    size_t bytes = 0;
    CHECK_STATUS(fs_rnn_forward_workspace_size(NULL, T, B, &bytes), FS_ERR_NULL_ARG);
    CHECK_STATUS(fs_rnn_forward_workspace_size(m, T, B, NULL), FS_ERR_NULL_ARG);
    CHECK_STATUS2(fs_rnn_forward_workspace_size(m, -1, B, &bytes), FS_ERR_INVALID_ARG,
                  FS_ERR_SHAPE);

    /* a successful call clears the last error */
    a = good;
    CHECK_STATUS(fs_rnn_forward(m, &a), FS_OK);
    CHECK(fs_last_error()[0] == '\0', "fs_last_error not cleared by success: '%s'",
          fs_last_error());

    fs_rnn_free(m);
}

static void test_misc(void) {
    fs_rnn_free(NULL); /* no-op */
    for (int s = 0; s <= 5; s++) {
        const char *str = fs_status_str((fs_status)s);
        CHECK(str != NULL && str[0] != '\0', "fs_status_str(%d) empty", s);
    }
    CHECK(fs_status_str((fs_status)999) != NULL, "fs_status_str(999) is NULL");
    CHECK(fs_status_str((fs_status)-3) != NULL, "fs_status_str(-3) is NULL");
    CHECK(fs_last_error() != NULL, "fs_last_error() is NULL");
    CHECK(strcmp(fs_isa_name(FS_ISA_GENERIC), "generic") == 0, "fs_isa_name(GENERIC)");
    CHECK(strcmp(fs_isa_name(FS_ISA_AVX2), "avx2") == 0, "fs_isa_name(AVX2)");
    CHECK(fs_isa_name((fs_isa)77) != NULL && strcmp(fs_isa_name((fs_isa)77), "unknown") == 0,
          "fs_isa_name(77) should be \"unknown\"");
    fs_isa now = fs_active_isa();
    CHECK(strcmp(fs_isa_name(now), "unknown") != 0, "fs_active_isa() = %d has no name",
          (int)now);
    CHECK(fs_set_isa((fs_isa)77) != FS_OK, "fs_set_isa(77) accepted");
    CHECK(fs_active_isa() == now, "a failed fs_set_isa changed the level");
}

int main(void) {
    test_misc();
    test_bad_args();

    const fs_isa original = fs_active_isa();
    /* every level the header names (they are numbered from 0 with no gaps) */
    fs_isa levels[16];
    size_t nlevels = 0;
    for (int k = 0; k < 16 && strcmp(fs_isa_name((fs_isa)k), "unknown") != 0; k++)
        levels[nlevels++] = (fs_isa)k;
    CHECK(nlevels >= 2, "expected at least the generic and avx2 levels, got %zu", nlevels);
    int ran = 0;
    for (size_t k = 0; k < nlevels; k++) {
        fs_status s = fs_set_isa(levels[k]);
        if (s == FS_ERR_UNSUPPORTED) {
            printf("isa %s: not available here, skipped\n", fs_isa_name(levels[k]));
            continue;
        }
        CHECK(s == FS_OK, "fs_set_isa(%s) -> %s", fs_isa_name(levels[k]), fs_status_str(s));
        if (s != FS_OK) continue;
        CHECK(fs_active_isa() == levels[k], "fs_active_isa after fs_set_isa(%s)",
              fs_isa_name(levels[k]));
        const char *isa = fs_isa_name(levels[k]);
        ran++;
        /* cell, I, H, L, bidirectional, bias */
        const fs_cell cells[] = {FS_CELL_LSTM, FS_CELL_GRU, FS_CELL_RNN_TANH, FS_CELL_RNN_RELU};
        for (size_t c = 0; c < 4; c++) {
            test_numerics(cells[c], 5, 6, 2, 1, 1, isa);
            test_numerics(cells[c], 3, 17, 1, 0, 0, isa);
            test_numerics(cells[c], 13, 37, 3, 1, 1, isa);
            test_numerics(cells[c], 1, 1, 1, 1, 1, isa);
            test_numerics(cells[c], 64, 64, 1, 0, 1, isa);
        }
    }
    CHECK(ran >= 1, "no ISA level could be set (generic must always work)");
    fs_set_isa(original);

    printf("test_capi: %d checks, %d failed\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
