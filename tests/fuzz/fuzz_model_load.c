/* Fuzz target: the .fsq loader (fs_model_inspect, fs_model_load, and for tree
 * networks fs_tree_inspect, fs_tree_load) on arbitrary bytes, then whatever a
 * loaded model supports (fuzz_common.h; a tree: fz_run_tree). Seeds: corpus/model_load/.
 *
 * Each input is loaded twice: as it is (the checksums catch almost every mutation),
 * and with its file size and CRC-32s recomputed (docs/fsq-format.md), so mutations
 * also reach the field checks behind the checksums.
 *
 *   CC=clang cmake -DFASTSEQ_FUZZ=ON -DFASTSEQ_SANITIZE=ON ...; fuzz_model_load CORPUS_DIR
 * Without libFuzzer, fuzz_replay_model_load replays files through the same function. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Make the header's file_size and every CRC-32 consistent with the bytes. */
static void fix_checksums(uint8_t *p, size_t size) {
    if (size < 32) return;
    put_le(p + 16, size, 8);
    put_le(p + 28, crc32_update(0, p, 28), 4);
    size_t at = 32;
    while (size - at >= 24) {
        uint64_t length = get_le(p + at + 8, 8);
        if (length > size - at - 24) length = size - at - 24;
        uint32_t crc = crc32_update(0, p + at, 20);
        put_le(p + at + 20, crc32_update(crc, p + at + 24, (size_t)length), 4);
        at += 24 + (size_t)length;
    }
}

/* A forest of 1..16 nodes from the bytes (parents may be out of range, cyclic or
 * too many for the arity: errors), forward, then training forward + backward. */
static void fz_run_tree(const fs_tree *t, const fs_tree_config *cfg, fz_bytes *b) {
    const int32_t n = 1 + (fz_u8(b) & 15);
    const size_t I = (size_t)cfg->input_size, H = (size_t)cfg->hidden_size;
    const size_t nx = fz_mul((size_t)n, I), nh = fz_mul((size_t)n, H);
    if (nx > FZ_MAX_FLOATS || nh > FZ_MAX_FLOATS) return;
    int64_t *parent = malloc((size_t)n * sizeof *parent);
    for (int32_t v = 0; parent && v < n; v++) parent[v] = (int64_t)(fz_u8(b) % (unsigned)(n + 2)) - 1;
    const size_t cx = fz_count(b, nx), ch = fz_count(b, nh);
    const int lstm = cfg->kind != FS_TREE_RECURSIVE;
    float *x = fz_floats(b, cx), *h = malloc((ch ? ch : 1) * sizeof *h);
    float *c = lstm ? malloc((ch ? ch : 1) * sizeof *c) : NULL;
    for (int32_t train = 0; train < 2; train++) {
        size_t ws_bytes = 0;
        if (!parent || !x || !h || (lstm && !c) || fs_tree_workspace_size(t, n, train, &ws_bytes) != FS_OK ||
            ws_bytes > FZ_MAX_BYTES)
            break;
        void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
        if (ws && fs_tree_forward(t, n, x, cx, parent, (size_t)n, h, ch, c, lstm ? ch : 0, ws, ws_bytes, train) == FS_OK &&
            train) {
            int64_t rows = 0, cols = 0;
            fs_tree_param_shape(t, FS_TREE_WEIGHT_HH, &rows, &cols);
            const size_t nw_ih = fz_mul((size_t)rows, I), nw_hh = fz_mul((size_t)rows, (size_t)cols);
            float *dh = fz_floats(b, nh), *dx = malloc((nx ? nx : 1) * sizeof *dx);
            float *g_ih = malloc(nw_ih * sizeof *g_ih), *g_hh = malloc(nw_hh * sizeof *g_hh);
            float *g_b = malloc((size_t)rows * sizeof *g_b);
            if (dh && dx && g_ih && g_hh && g_b)
                fs_tree_backward(t, n, x, cx, parent, (size_t)n, dh, nh, NULL, 0, dx, nx, g_ih, nw_ih, g_hh, nw_hh,
                                 g_b, (size_t)rows, ws, ws_bytes);
            free(dh), free(dx), free(g_ih), free(g_hh), free(g_b);
        }
        free(ws);
    }
    free(parent), free(x), free(h), free(c);
}

static void load_and_run(const uint8_t *p, size_t size) {
    fs_model_desc desc;
    fs_status inspected = fs_model_inspect(p, size, &desc);
    const int is_tree = inspected == FS_OK && desc.model_type == FS_MODEL_TREE;
    fs_rnn *m = NULL;
    fs_status loaded = fs_model_load(p, size, &m);
    fs_tree *t = NULL;
    fs_tree_config tree_cfg;
    fs_status tree_loaded = fs_tree_load(p, size, &t);
    /* must agree: a file loads, by exactly one loader, when inspect accepts it */
    if (loaded != FS_ERR_NOMEM && (inspected == FS_OK && !is_tree) != (loaded == FS_OK)) abort();
    if (tree_loaded != FS_ERR_NOMEM && is_tree != (tree_loaded == FS_OK)) abort();
    fz_bytes b = {p + size / 2, size - size / 2}; /* the file's own tail drives the inputs */
    if (loaded == FS_OK) fz_run_model(m, &b);
    if (tree_loaded == FS_OK && fs_tree_inspect(p, size, &tree_cfg) == FS_OK) fz_run_tree(t, &tree_cfg, &b);
    fs_rnn_free(m);
    fs_tree_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* heap blocks of exactly `size` bytes, so ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    load_and_run(copy, size);
    fix_checksums(copy, size);
    load_and_run(copy, size);
    free(copy);
    return 0;
}
