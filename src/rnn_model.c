/* fs_rnn: creation, validation, parameter access and weight packing. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "rnn.h"

static size_t gates_of(fs_cell cell) {
    switch (cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU: return 1;
    case FS_CELL_LSTM: return 4;
    case FS_CELL_GRU: return 3;
    }
    return 0;
}

static fs_status check_config(const fs_rnn_config *c) {
    if (gates_of(c->cell) == 0)
        return fs__fail(FS_ERR_INVALID_ARG, "cell: expected 0..3 (RNN_TANH, RNN_RELU, LSTM, GRU), got %d",
                        (int)c->cell);
    if (c->input_size <= 0)
        return fs__fail(FS_ERR_INVALID_ARG, "input_size: expected > 0, got %d", (int)c->input_size);
    if (c->hidden_size <= 0)
        return fs__fail(FS_ERR_INVALID_ARG, "hidden_size: expected > 0, got %d", (int)c->hidden_size);
    if (c->num_layers <= 0)
        return fs__fail(FS_ERR_INVALID_ARG, "num_layers: expected >= 1, got %d", (int)c->num_layers);
    if (c->bidirectional != 0 && c->bidirectional != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "bidirectional: expected 0 or 1, got %d", (int)c->bidirectional);
    if (c->bias != 0 && c->bias != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "bias: expected 0 or 1, got %d", (int)c->bias);
    return FS_OK;
}

/* The whole model lives in one 64-byte aligned block: the struct, the unit
 * table, then every weight array. `layout` walks it once to size it and once
 * to carve it, so the two can never disagree. */
static int layout(const fs_rnn_config *c, char *base, size_t *bytes_out, fs_rnn **model_out) {
    const size_t g = gates_of(c->cell), dirs = c->bidirectional ? 2 : 1;
    const size_t h = (size_t)c->hidden_size, hp = (h + FS_NB - 1) / FS_NB * FS_NB;
    const size_t n_units = (size_t)c->num_layers * dirs;
    size_t at = 0, n;
    fs_rnn *m = (fs_rnn *)base;
    at = fs__align_up(sizeof(fs_rnn));
    fs_rnn_unit *units = base ? (fs_rnn_unit *)(base + at) : NULL;
    if (!fs__mul(n_units, sizeof(fs_rnn_unit), &n) || !fs__add(at, fs__align_up(n), &at)) return 0;
    if (m) {
        m->cfg = *c;
        m->gates = g;
        m->dirs = dirs;
        m->hp = hp;
        m->units = units;
    }
    for (size_t i = 0; i < n_units; i++) {
        const size_t in = i < dirs ? (size_t)c->input_size : dirs * h;
        size_t counts[8];
        const size_t rows[8] = {g * h, g * h, g, g, g * hp, g * hp, g, g};
        const size_t cols[8] = {in, h, h, h, in, h, hp, hp};
        for (int k = 0; k < 8; k++)
            if (!fs__mul(rows[k], cols[k], &counts[k])) return 0;
        float **slots[8] = {NULL};
        if (units) {
            fs_rnn_unit *u = &units[i];
            u->in_size = in;
            float **s[8] = {&u->w_ih, &u->w_hh, &u->b_ih, &u->b_hh, &u->w_ih_packed, &u->w_hh_packed,
                            &u->bias_x, &u->bias_h};
            for (int k = 0; k < 8; k++) slots[k] = s[k];
        }
        for (int k = 0; k < 8; k++) {
            if (!fs__mul(counts[k], sizeof(float), &n) || n > SIZE_MAX - FS_ALIGN) return 0;
            if (slots[k]) *slots[k] = (float *)(base + at);
            if (!fs__add(at, fs__align_up(n), &at)) return 0;
        }
    }
    *bytes_out = at;
    if (model_out) *model_out = m;
    return 1;
}

fs_status fs_rnn_memory_size(const fs_rnn_config *config, size_t *bytes_out) {
    fs__clear_error();
    if (!config || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "config and bytes_out must not be NULL");
    fs_status st = check_config(config);
    if (st != FS_OK) return st;
    if (!layout(config, NULL, bytes_out, NULL))
        return fs__fail(FS_ERR_NOMEM, "model size overflows (hidden_size %d, input_size %d, num_layers %d)",
                        (int)config->hidden_size, (int)config->input_size, (int)config->num_layers);
    return FS_OK;
}

fs_status fs_rnn_init_static(const fs_rnn_config *config, void *buffer, size_t buffer_bytes,
                             fs_rnn **out) {
    size_t need;
    fs_status st = fs_rnn_memory_size(config, &need);
    if (st != FS_OK) return st;
    if (!buffer || !out) return fs__fail(FS_ERR_NULL_ARG, "buffer and out must not be NULL");
    *out = NULL;
    if ((uintptr_t)buffer % FS_ALIGN != 0)
        return fs__fail(FS_ERR_INVALID_ARG, "buffer: expected %d-byte alignment", FS_ALIGN);
    if (buffer_bytes < need)
        return fs__fail(FS_ERR_SHAPE, "buffer: expected at least %zu bytes, got %zu", need, buffer_bytes);
    memset(buffer, 0, need);
    layout(config, buffer, &need, out);
    (*out)->owned = 0;
    return FS_OK;
}

fs_status fs_rnn_create(const fs_rnn_config *config, fs_rnn **out) {
    size_t need;
    fs__clear_error();
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    fs_status st = fs_rnn_memory_size(config, &need);
    if (st != FS_OK) return st;
    void *mem = fs__alloc(need);
    if (!mem) return fs__fail(FS_ERR_NOMEM, "out of memory for a %zu-byte model", need);
    st = fs_rnn_init_static(config, mem, need, out);
    if (st != FS_OK) {
        fs__free(mem);
        return st;
    }
    (*out)->owned = 1;
    return FS_OK;
}

void fs_rnn_free(fs_rnn *m) {
    if (m && m->owned) fs__free(m);
}

fs_status fs_rnn_get_config(const fs_rnn *model, fs_rnn_config *out) {
    fs__clear_error();
    if (!model || !out) return fs__fail(FS_ERR_NULL_ARG, "model and out must not be NULL");
    *out = model->cfg;
    return FS_OK;
}

/* Looks up one parameter: its PyTorch-layout storage and shape. */
static fs_status locate(const fs_rnn *m, int32_t layer, int32_t dir, fs_param param,
                        fs_rnn_unit **unit_out, float **data_out, size_t *rows, size_t *cols) {
    if (!m) return fs__fail(FS_ERR_NULL_ARG, "model must not be NULL");
    if (layer < 0 || layer >= m->cfg.num_layers)
        return fs__fail(FS_ERR_INVALID_ARG, "layer: expected 0..%d, got %d", m->cfg.num_layers - 1,
                        (int)layer);
    if (dir < 0 || (size_t)dir >= m->dirs)
        return fs__fail(FS_ERR_INVALID_ARG, "direction: expected 0..%d, got %d", (int)m->dirs - 1,
                        (int)dir);
    fs_rnn_unit *u = &m->units[(size_t)layer * m->dirs + (size_t)dir];
    const size_t gh = m->gates * (size_t)m->cfg.hidden_size;
    switch (param) {
    case FS_PARAM_WEIGHT_IH: *data_out = u->w_ih; *rows = gh; *cols = u->in_size; break;
    case FS_PARAM_WEIGHT_HH: *data_out = u->w_hh; *rows = gh; *cols = (size_t)m->cfg.hidden_size; break;
    case FS_PARAM_BIAS_IH:
    case FS_PARAM_BIAS_HH:
        if (!m->cfg.bias)
            return fs__fail(FS_ERR_INVALID_ARG, "this model was created with bias = 0: it has no biases");
        *data_out = param == FS_PARAM_BIAS_IH ? u->b_ih : u->b_hh;
        *rows = gh;
        *cols = 1;
        break;
    default:
        return fs__fail(FS_ERR_INVALID_ARG, "param: expected 0..3 (weight_ih, weight_hh, bias_ih, bias_hh), got %d",
                        (int)param);
    }
    *unit_out = u;
    return FS_OK;
}

fs_status fs_rnn_param_shape(const fs_rnn *model, int32_t layer, int32_t direction,
                             fs_param param, size_t *rows_out, size_t *cols_out) {
    fs__clear_error();
    if (!rows_out || !cols_out) return fs__fail(FS_ERR_NULL_ARG, "rows_out and cols_out must not be NULL");
    fs_rnn_unit *u = NULL;
    float *data = NULL;
    return locate(model, layer, direction, param, &u, &data, rows_out, cols_out);
}

/* w: [G*H][K] PyTorch rows -> packed blocks (see kernels.h). Padding stays zero. */
static void pack(const float *w, size_t g_count, size_t h, size_t k, float *out) {
    const size_t width = g_count * FS_NB;
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            float *col = out + (j / FS_NB) * k * width + g * FS_NB + j % FS_NB;
            const float *row = w + (g * h + j) * k;
            for (size_t kk = 0; kk < k; kk++) col[kk * width] = row[kk];
        }
}

static void fold_biases(const fs_rnn *m, fs_rnn_unit *u) {
    const size_t h = (size_t)m->cfg.hidden_size, g_count = m->gates;
    const int gru = m->cfg.cell == FS_CELL_GRU;
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            const size_t at = ((j / FS_NB) * g_count + g) * FS_NB + j % FS_NB;
            const float bi = u->b_ih[g * h + j], bh = u->b_hh[g * h + j];
            const int recurrent_only = gru && g == 2; /* b_hn sits inside r * (W_hn h + b_hn) */
            u->bias_x[at] = recurrent_only ? bi : bi + bh;
            u->bias_h[at] = recurrent_only ? bh : 0.0f;
        }
}

fs_status fs_rnn_set_param(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                           const float *data, size_t count) {
    fs__clear_error();
    fs_rnn_unit *u = NULL;
    float *dst = NULL;
    size_t rows = 0, cols = 0;
    fs_status st = locate(model, layer, direction, param, &u, &dst, &rows, &cols);
    if (st != FS_OK) return st;
    if (!data) return fs__fail(FS_ERR_NULL_ARG, "data must not be NULL");
    if (count != rows * cols)
        return fs__fail(FS_ERR_SHAPE, "parameter %d of layer %d direction %d: expected %zu elements (%zu x %zu), got %zu",
                        (int)param, (int)layer, (int)direction, rows * cols, rows, cols, count);
    memcpy(dst, data, count * sizeof(float));
    const size_t h = (size_t)model->cfg.hidden_size;
    if (param == FS_PARAM_WEIGHT_IH) pack(u->w_ih, model->gates, h, u->in_size, u->w_ih_packed);
    else if (param == FS_PARAM_WEIGHT_HH) pack(u->w_hh, model->gates, h, h, u->w_hh_packed);
    else fold_biases(model, u);
    return FS_OK;
}

fs_status fs_rnn_get_param(const fs_rnn *model, int32_t layer, int32_t direction,
                           fs_param param, float *out, size_t count) {
    fs__clear_error();
    fs_rnn_unit *u = NULL;
    float *src = NULL;
    size_t rows = 0, cols = 0;
    fs_status st = locate(model, layer, direction, param, &u, &src, &rows, &cols);
    if (st != FS_OK) return st;
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    if (count != rows * cols)
        return fs__fail(FS_ERR_SHAPE, "parameter %d of layer %d direction %d: expected %zu elements (%zu x %zu), got %zu",
                        (int)param, (int)layer, (int)direction, rows * cols, rows, cols, count);
    memcpy(out, src, count * sizeof(float));
    return FS_OK;
}
