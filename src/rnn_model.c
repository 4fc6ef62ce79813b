/* fs_rnn: creation, validation, parameter access and weight packing. */
#include <stdlib.h>
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

static void free_unit(fs_rnn_unit *u) {
    fs__free(u->w_ih);
    fs__free(u->w_hh);
    fs__free(u->b_ih);
    fs__free(u->b_hh);
    fs__free(u->w_ih_packed);
    fs__free(u->w_hh_packed);
    fs__free(u->bias_x);
    fs__free(u->bias_h);
}

void fs_rnn_free(fs_rnn *m) {
    if (!m) return;
    if (m->units)
        for (size_t i = 0; i < (size_t)m->cfg.num_layers * m->dirs; i++) free_unit(&m->units[i]);
    free(m->units);
    free(m);
}

/* Zeroed, aligned array of a * b floats; NULL on overflow or failure. */
static float *zeros(size_t a, size_t b) {
    size_t n, bytes;
    if (!fs__mul(a, b, &n) || !fs__mul(n, sizeof(float), &bytes)) return NULL;
    float *p = fs__alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static int alloc_unit(fs_rnn_unit *u, size_t in, size_t h, size_t hp, size_t g) {
    u->in_size = in;
    u->w_ih = zeros(g * h, in);
    u->w_hh = zeros(g * h, h);
    u->b_ih = zeros(g, h);
    u->b_hh = zeros(g, h);
    u->w_ih_packed = zeros(g * hp, in);
    u->w_hh_packed = zeros(g * hp, h);
    u->bias_x = zeros(g, hp);
    u->bias_h = zeros(g, hp);
    return u->w_ih && u->w_hh && u->b_ih && u->b_hh && u->w_ih_packed && u->w_hh_packed &&
           u->bias_x && u->bias_h;
}

fs_status fs_rnn_create(const fs_rnn_config *config, fs_rnn **out) {
    fs__clear_error();
    if (!config || !out) return fs__fail(FS_ERR_NULL_ARG, "config and out must not be NULL");
    *out = NULL;
    fs_status st = check_config(config);
    if (st != FS_OK) return st;

    fs_rnn *m = calloc(1, sizeof *m);
    if (!m) return fs__fail(FS_ERR_NOMEM, "out of memory creating the model");
    m->cfg = *config;
    m->gates = gates_of(config->cell);
    m->dirs = config->bidirectional ? 2 : 1;
    const size_t h = (size_t)config->hidden_size;
    m->hp = (h + FS_NB - 1) / FS_NB * FS_NB;
    const size_t n_units = (size_t)config->num_layers * m->dirs;
    m->units = calloc(n_units, sizeof *m->units);
    if (!m->units) {
        fs_rnn_free(m);
        return fs__fail(FS_ERR_NOMEM, "out of memory creating the model");
    }
    for (size_t i = 0; i < n_units; i++) {
        const size_t in = i < m->dirs ? (size_t)config->input_size : m->dirs * h;
        if (!alloc_unit(&m->units[i], in, h, m->hp, m->gates)) {
            fs_rnn_free(m);
            return fs__fail(FS_ERR_NOMEM, "out of memory for the weights (hidden_size %zu, input %zu)",
                            h, in);
        }
    }
    *out = m;
    return FS_OK;
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

/* w: [G*H][K] PyTorch rows -> panels (see kernels.h). Padding stays zero. */
static void pack(const float *w, size_t g_count, size_t h, size_t k, float *out) {
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            float *panel = out + ((j / FS_NB) * g_count + g) * k * FS_NB + j % FS_NB;
            const float *row = w + (g * h + j) * k;
            for (size_t kk = 0; kk < k; kk++) panel[kk * FS_NB] = row[kk];
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
