/* The smallest forward workspace (fs_rnn_forward_workspace_min_size): the input
 * projected a step at a time gives fs_rnn_forward's results bit for bit on every
 * level; it does not grow with the sequence for one layer; a byte less is
 * refused. And element counts that overflow size_t are refused, not wrapped (a
 * 32-bit target overflows at sizes a 64-bit host does not; here at 2^64). */
#include <stdlib.h>

#include "check.h"

static void *aligned(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

static void check_model(fs_cell cell, int I, int H, int L, int T, int B) {
    fs_rnn_config cfg = make_config(cell, I, H, L, 0, 1);
    fs_rnn *m = NULL;
    size_t n = 0, ws_min = 0, ws_min_long = 0, ws = 0;
    CHECK_STATUS(fs_rnn_create(&cfg, &m), FS_OK);
    if (!m) return;
    CHECK_STATUS(fs_rnn_param_count(m, &n), FS_OK);
    float *params = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) params[i] = urand(0.5f);
    CHECK_STATUS(fs_rnn_set_params(m, params, n), FS_OK);
    CHECK_STATUS(fs_rnn_forward_workspace_size(m, T, B, &ws), FS_OK);
    CHECK_STATUS(fs_rnn_forward_workspace_min_size(m, T, B, &ws_min), FS_OK);
    CHECK_STATUS(fs_rnn_forward_workspace_min_size(m, 50 * T, B, &ws_min_long), FS_OK);
    CHECK(ws_min < ws, "cell %d: min workspace %zu not below the chunked %zu", (int)cell, ws_min, ws);
    if (L == 1) CHECK(ws_min_long == ws_min, "one layer: %zu bytes at 50 T, %zu at T", ws_min_long, ws_min);

    const size_t nx = (size_t)T * B * I, ny = (size_t)T * B * H;
    float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float)), *y_min = malloc(ny * sizeof(float));
    for (size_t i = 0; i < nx; i++) x[i] = urand(1.0f);
    for (fs_isa isa = FS_ISA_GENERIC; isa <= FS_ISA_NEON; isa++) {
        if (!fs_isa_supported(isa)) continue;
        CHECK_STATUS(fs_set_isa(isa), FS_OK);
        fs_seq_args a;
        memset(&a, 0, sizeof a);
        a.seq_len = T, a.batch = B, a.x = x, a.x_count = nx, a.y = y, a.y_count = ny;
        CHECK_STATUS(fs_rnn_forward(m, &a), FS_OK);
        void *w = aligned(ws_min);
        a.y = y_min;
        CHECK_STATUS(fs_rnn_forward_ws(m, &a, w, ws_min), FS_OK);
        CHECK(memcmp(y, y_min, ny * sizeof(float)) == 0, "cell %d isa %s: the smallest workspace differs",
              (int)cell, fs_isa_name(isa));
        CHECK_STATUS(fs_rnn_forward_ws(m, &a, w, ws_min - 1), FS_ERR_SHAPE);
        free(w);
    }
    fs_set_isa(FS_ISA_GENERIC);
    free(x), free(y), free(y_min), free(params);
    fs_rnn_free(m);
}

static void check_count_overflow(void) {
    fs_rnn_config cfg = make_config(FS_CELL_RNN_TANH, 16, 8, 1, 0, 1);
    fs_rnn *m = NULL;
    float dummy[16] = {0};
    CHECK_STATUS(fs_rnn_create(&cfg, &m), FS_OK);
    if (!m) return;
    fs_seq_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = 1 << 30, a.batch = 1 << 30; /* x: 2^30 * 2^30 * 16 elements = 2^64 */
    a.x = dummy, a.x_count = 0;              /* what the product wraps to */
    a.y = dummy + 8, a.y_count = (size_t)1 << 63;
    fs_status s = fs_rnn_forward_ws(m, &a, NULL, 0);
    CHECK(s != FS_OK && strstr(fs_last_error(), "overflow") != NULL,
          "2^64 elements of x -> %s (%s), expected an overflow error", fs_status_str(s), fs_last_error());
    fs_rnn_free(m);
}

int main(void) {
    CHECK_STATUS(fs_set_num_threads(1), FS_OK); /* the sizes below are one thread's */
    check_model(FS_CELL_GRU, 5, 12, 1, 9, 2);
    check_model(FS_CELL_LSTM, 3, 17, 2, 7, 1);
    check_model(FS_CELL_FASTGRNN, 32, 32, 1, 11, 1);
    check_count_overflow();
    printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
