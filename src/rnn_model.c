/* fs_rnn: configuration checks, memory layout, parameter access and packing. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "rnn.h"

static int is_fast(fs_cell cell) { return cell == FS_CELL_FASTRNN || cell == FS_CELL_FASTGRNN; }

static size_t gates_of(const fs_rnn_config *c) {
    switch (c->cell) {
    case FS_CELL_RNN_TANH:
    case FS_CELL_RNN_RELU:
    case FS_CELL_FASTRNN:
    case FS_CELL_FASTGRNN: return 1;
    case FS_CELL_LSTM: return c->coupled ? 3 : 4;
    case FS_CELL_GRU: return 3;
    }
    return 0;
}

static fs_status check_flag(const char *name, int32_t v, int allowed, const char *who) {
    if (v != 0 && v != 1) return fs__fail(FS_ERR_INVALID_ARG, "%s: expected 0 or 1, got %d", name, (int)v);
    if (v && !allowed) return fs__fail(FS_ERR_INVALID_ARG, "%s: only %s has this variant", name, who);
    return FS_OK;
}

static fs_status check_config(const fs_rnn_config *c) {
    if (c->cell < FS_CELL_RNN_TANH || c->cell > FS_CELL_FASTGRNN)
        return fs__fail(FS_ERR_INVALID_ARG, "cell: expected 0..5 (RNN_TANH, RNN_RELU, LSTM, GRU, FASTRNN, FASTGRNN), got %d",
                        (int)c->cell);
    if (c->input_size <= 0)
        return fs__fail(FS_ERR_INVALID_ARG, "input_size: expected > 0, got %d", (int)c->input_size);
    if (c->hidden_size <= 0)
        return fs__fail(FS_ERR_INVALID_ARG, "hidden_size: expected > 0, got %d", (int)c->hidden_size);
    if (c->num_layers <= 0)
        return fs__fail(FS_ERR_INVALID_ARG, "num_layers: expected >= 1, got %d", (int)c->num_layers);
    const int lstm = c->cell == FS_CELL_LSTM, fast = is_fast(c->cell);
    fs_status st;
    if ((st = check_flag("bidirectional", c->bidirectional, 1, "")) != FS_OK) return st;
    if ((st = check_flag("bias", c->bias, 1, "")) != FS_OK) return st;
    if ((st = check_flag("peephole", c->peephole, lstm, "an LSTM")) != FS_OK) return st;
    if ((st = check_flag("coupled", c->coupled, lstm, "an LSTM")) != FS_OK) return st;
    if ((st = check_flag("reset_before", c->reset_before, c->cell == FS_CELL_GRU, "a GRU")) != FS_OK) return st;
    if (c->proj_size < 0 || (c->proj_size && (!lstm || c->proj_size >= c->hidden_size)))
        return fs__fail(FS_ERR_INVALID_ARG, "proj_size: expected 0, or 1..%d for an LSTM, got %d",
                        (int)c->hidden_size - 1, (int)c->proj_size);
    const struct { const char *name; int32_t v; int max; } nums[] = {
        {"update_act", c->update_act, 2}, {"gate_act", c->gate_act, c->cell == FS_CELL_FASTGRNN ? 2 : 0},
        {"w_rank", c->w_rank, INT32_MAX}, {"u_rank", c->u_rank, INT32_MAX}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (nums[i].v < 0 || nums[i].v > nums[i].max || (nums[i].v && !fast))
            return fs__fail(FS_ERR_INVALID_ARG, "%s: expected 0%s, got %d", nums[i].name,
                            fast ? " or a positive value in range" : " (only FastRNN / FastGRNN use it)",
                            (int)nums[i].v);
    }
    return FS_OK;
}

/* Shape of a parameter for a unit with `in` inputs; 0 when the config has none. */
static int param_dims(const fs_rnn *m, size_t in, fs_param p, size_t *rows, size_t *cols) {
    const fs_rnn_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size, G = m->gates;
    const int fast = is_fast(c->cell), lstm = c->cell == FS_CELL_LSTM;
    size_t r = 0, k = 1;
    switch (p) {
    case FS_PARAM_WEIGHT_IH: if (!(fast && c->w_rank)) r = G * H, k = in; break;
    case FS_PARAM_WEIGHT_HH: if (!(fast && c->u_rank)) r = G * H, k = m->r; break;
    case FS_PARAM_BIAS_IH:
    case FS_PARAM_BIAS_HH: if (!fast && c->bias) r = G * H; break;
    case FS_PARAM_WEIGHT_IH_A: if (fast && c->w_rank) r = (size_t)c->w_rank, k = in; break;
    case FS_PARAM_WEIGHT_IH_B: if (fast && c->w_rank) r = H, k = (size_t)c->w_rank; break;
    case FS_PARAM_WEIGHT_HH_A: if (fast && c->u_rank) r = (size_t)c->u_rank, k = H; break;
    case FS_PARAM_WEIGHT_HH_B: if (fast && c->u_rank) r = H, k = (size_t)c->u_rank; break;
    case FS_PARAM_WEIGHT_HR: if (lstm && c->proj_size) r = (size_t)c->proj_size, k = H; break;
    case FS_PARAM_PEEPHOLE_I:
    case FS_PARAM_PEEPHOLE_F:
    case FS_PARAM_PEEPHOLE_O: if (lstm && c->peephole) r = H; break;
    case FS_PARAM_BIAS_GATE: if (c->cell == FS_CELL_FASTGRNN && c->bias) r = H; break;
    case FS_PARAM_BIAS_UPDATE: if (fast && c->bias) r = H; break;
    case FS_PARAM_ALPHA:
    case FS_PARAM_BETA: if (c->cell == FS_CELL_FASTRNN) r = 1; break;
    case FS_PARAM_ZETA:
    case FS_PARAM_NU: if (c->cell == FS_CELL_FASTGRNN) r = 1; break;
    default: break;
    }
    *rows = r;
    *cols = k;
    return r != 0;
}

/* Derived sizes of a configuration (model fields other than units). */
static void shape(const fs_rnn_config *c, fs_rnn *m) {
    m->cfg = *c;
    m->gates = gates_of(c);
    m->gh = c->cell == FS_CELL_GRU && c->reset_before ? 2 : m->gates;
    m->dirs = c->bidirectional ? 2 : 1;
    m->hp = fs__round8((size_t)c->hidden_size);
    m->r = c->proj_size ? (size_t)c->proj_size : (size_t)c->hidden_size;
    m->rp = fs__round8(m->r);
    m->wrp = fs__round8((size_t)c->w_rank);
    m->urp = fs__round8((size_t)c->u_rank);
}

/* Reserves n floats at *at (64-byte aligned); returns the address when carving. */
static int take(char *base, size_t *at, size_t n, float **slot) {
    size_t bytes;
    if (!fs__mul(n, sizeof(float), &bytes) || bytes > SIZE_MAX - FS_ALIGN) return 0;
    if (base && slot) *slot = n ? (float *)(base + *at) : NULL;
    return fs__add(*at, fs__align_up(bytes), at);
}

/* One unit's arrays, reserved from *at (64-byte aligned each, so a unit's
 * size does not depend on where it starts); u receives the addresses when
 * carving (base non-NULL). */
static int layout_unit(const fs_rnn *m, size_t in, char *base, size_t *at, fs_rnn_unit *u) {
    const fs_rnn_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size, hp = m->hp, G = m->gates;
    const size_t kx = c->w_rank ? (size_t)c->w_rank : in, kh = c->u_rank ? (size_t)c->u_rank : m->r;
    const int rb = c->cell == FS_CELL_GRU && c->reset_before;
    size_t n;
    u->in_size = in;
    for (int p = 0; p < FS_PARAM_COUNT; p++) {
        size_t rows, cols;
        u->raw[p] = NULL;
        if (param_dims(m, in, (fs_param)p, &rows, &cols) &&
            (!fs__mul(rows, cols, &n) || !take(base, at, n, &u->raw[p])))
            return 0;
    }
    const struct { size_t a, b; float **slot; } arrays[] = {
        {G * hp, kx, &u->w_ih_packed},      {m->wrp, in, &u->w_ih_a_packed},
        {m->gh * hp, kh, &u->w_hh_packed},  {rb ? hp : 0, m->r, &u->w_hn_packed},
        {m->urp, H, &u->w_hh_a_packed},     {c->proj_size ? m->rp : 0, H, &u->w_hr_packed},
        {G, hp, &u->bias_x},                {G, hp, &u->bias_h},
    };
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        if (!fs__mul(arrays[k].a, arrays[k].b, &n) || !take(base, at, n, arrays[k].slot)) return 0;
    for (int v = 0; v < 5; v++)
        if (!take(base, at, hp, &u->vec[v])) return 0;
    for (int k = 0; k < 4; k++) u->coef[k] = 0.5f; /* sigmoid(0): raw scalars start at zero */
    return 1;
}

/* The whole model is one block: struct, unit table, then every unit's arrays.
 * Sizing (base NULL) is arithmetic, so absurd configurations fail fast; carving
 * walks the units. Units of layer 0 read the input, later ones D*R features. */
static int layout(const fs_rnn_config *c, char *base, size_t *bytes_out) {
    fs_rnn tmp, *m = base ? (fs_rnn *)base : &tmp;
    fs_rnn_unit scratch;
    shape(c, m);
    const size_t n_units = (size_t)c->num_layers * m->dirs, inner = m->dirs * m->r;
    size_t at = fs__align_up(sizeof(fs_rnn)), n;
    m->units = base ? (fs_rnn_unit *)(base + at) : NULL;
    if (!fs__mul(n_units, sizeof(fs_rnn_unit), &n) || n > SIZE_MAX - FS_ALIGN ||
        !fs__add(at, fs__align_up(n), &at))
        return 0;
    if (!base) {
        size_t first = 0, rest = 0, total;
        if (!layout_unit(m, (size_t)c->input_size, NULL, &first, &scratch) ||
            !layout_unit(m, inner, NULL, &rest, &scratch) || !fs__mul(first, m->dirs, &first) ||
            !fs__mul(rest, n_units - m->dirs, &rest) || !fs__add(first, rest, &total) ||
            !fs__add(at, total, &at))
            return 0;
    } else {
        for (size_t i = 0; i < n_units; i++)
            if (!layout_unit(m, i < m->dirs ? (size_t)c->input_size : inner, base, &at, &m->units[i]))
                return 0;
    }
    *bytes_out = at;
    return 1;
}

fs_status fs_rnn_memory_size(const fs_rnn_config *config, size_t *bytes_out) {
    fs__clear_error();
    if (!config || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "config and bytes_out must not be NULL");
    fs_status st = check_config(config);
    if (st != FS_OK) return st;
    if (!layout(config, NULL, bytes_out))
        return fs__fail(FS_ERR_NOMEM, "model size overflows (hidden_size %d, input_size %d, num_layers %d)",
                        (int)config->hidden_size, (int)config->input_size, (int)config->num_layers);
    return FS_OK;
}

fs_status fs_rnn_init_static(const fs_rnn_config *config, void *buffer, size_t buffer_bytes,
                             fs_rnn **out) {
    size_t need;
    fs_status st = fs_rnn_memory_size(config, &need);
    if (st != FS_OK) return st;
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    if ((st = fs__check_buffer("buffer", buffer, buffer_bytes, need)) != FS_OK) return st;
    memset(buffer, 0, need);
    layout(config, buffer, &need);
    *out = buffer;
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
    fs_rnn_init_static(config, mem, need, out);
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

/* Looks up one parameter: its unit and shape. */
static fs_status locate(const fs_rnn *m, int32_t layer, int32_t dir, fs_param param,
                        fs_rnn_unit **unit_out, size_t *rows, size_t *cols) {
    if (!m) return fs__fail(FS_ERR_NULL_ARG, "model must not be NULL");
    if (layer < 0 || layer >= m->cfg.num_layers)
        return fs__fail(FS_ERR_INVALID_ARG, "layer: expected 0..%d, got %d", m->cfg.num_layers - 1,
                        (int)layer);
    if (dir < 0 || (size_t)dir >= m->dirs)
        return fs__fail(FS_ERR_INVALID_ARG, "direction: expected 0..%d, got %d", (int)m->dirs - 1,
                        (int)dir);
    if ((int)param < 0 || param >= FS_PARAM_COUNT)
        return fs__fail(FS_ERR_INVALID_ARG, "param: expected 0..%d, got %d", FS_PARAM_COUNT - 1, (int)param);
    fs_rnn_unit *u = &m->units[(size_t)layer * m->dirs + (size_t)dir];
    if (!param_dims(m, u->in_size, param, rows, cols))
        return fs__fail(FS_ERR_INVALID_ARG, "param %d: this model's configuration has no such parameter",
                        (int)param);
    *unit_out = u;
    return FS_OK;
}

fs_status fs_rnn_param_shape(const fs_rnn *model, int32_t layer, int32_t direction,
                             fs_param param, size_t *rows_out, size_t *cols_out) {
    fs__clear_error();
    if (!rows_out || !cols_out) return fs__fail(FS_ERR_NULL_ARG, "rows_out and cols_out must not be NULL");
    fs_rnn_unit *u = NULL;
    return locate(model, layer, direction, param, &u, rows_out, cols_out);
}

/* w: [g_count*h][k] PyTorch rows -> packed blocks (see kernels.h). Padding stays zero. */
static void pack(const float *w, size_t g_count, size_t h, size_t k, float *out) {
    const size_t width = g_count * FS_NB;
    for (size_t g = 0; g < g_count; g++)
        for (size_t j = 0; j < h; j++) {
            float *col = out + (j / FS_NB) * k * width + g * FS_NB + j % FS_NB;
            const float *row = w + (g * h + j) * k;
            for (size_t kk = 0; kk < k; kk++) col[kk * width] = row[kk];
        }
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Biases in the packed column order: folded into the input projection except
 * GRU's b_hn, which sits inside r * (W_hn h + b_hn), and FastGRNN's two, which
 * its cell adds to the shared pre-activation. */
static void fold_biases(const fs_rnn *m, fs_rnn_unit *u) {
    const size_t h = (size_t)m->cfg.hidden_size, G = m->gates;
    const int gru_after = m->cfg.cell == FS_CELL_GRU && !m->cfg.reset_before;
    const float *bi = u->raw[FS_PARAM_BIAS_IH], *bh = u->raw[FS_PARAM_BIAS_HH];
    const float *bu = u->raw[FS_PARAM_BIAS_UPDATE];
    for (size_t g = 0; g < G; g++)
        for (size_t j = 0; j < h; j++) {
            const size_t at = ((j / FS_NB) * G + g) * FS_NB + j % FS_NB, src = g * h + j;
            float x = 0.0f, inside = 0.0f;
            if (m->cfg.cell == FS_CELL_FASTRNN) {
                x = bu ? bu[j] : 0.0f;
            } else if (bi) {
                const int recurrent_only = gru_after && g == 2;
                x = recurrent_only ? bi[src] : bi[src] + bh[src];
                inside = recurrent_only ? bh[src] : 0.0f;
            }
            u->bias_x[at] = x;
            u->bias_h[at] = inside;
        }
}

static void repack(const fs_rnn *m, fs_rnn_unit *u, fs_param p) {
    const fs_rnn_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size;
    const float *w = u->raw[p];
    switch (p) {
    case FS_PARAM_WEIGHT_IH: pack(w, m->gates, H, u->in_size, u->w_ih_packed); break;
    case FS_PARAM_WEIGHT_IH_A: pack(w, 1, (size_t)c->w_rank, u->in_size, u->w_ih_a_packed); break;
    case FS_PARAM_WEIGHT_IH_B: pack(w, 1, H, (size_t)c->w_rank, u->w_ih_packed); break;
    case FS_PARAM_WEIGHT_HH:
        pack(w, m->gh, H, m->r, u->w_hh_packed);
        if (u->w_hn_packed) pack(w + 2 * H * m->r, 1, H, m->r, u->w_hn_packed);
        break;
    case FS_PARAM_WEIGHT_HH_A: pack(w, 1, (size_t)c->u_rank, H, u->w_hh_a_packed); break;
    case FS_PARAM_WEIGHT_HH_B: pack(w, 1, H, (size_t)c->u_rank, u->w_hh_packed); break;
    case FS_PARAM_WEIGHT_HR: pack(w, 1, m->r, H, u->w_hr_packed); break;
    case FS_PARAM_PEEPHOLE_I: memcpy(u->vec[FS_VEC_PI], w, H * sizeof(float)); break;
    case FS_PARAM_PEEPHOLE_F: memcpy(u->vec[FS_VEC_PF], w, H * sizeof(float)); break;
    case FS_PARAM_PEEPHOLE_O: memcpy(u->vec[FS_VEC_PO], w, H * sizeof(float)); break;
    case FS_PARAM_BIAS_GATE: memcpy(u->vec[FS_VEC_BIAS_GATE], w, H * sizeof(float)); break;
    case FS_PARAM_BIAS_UPDATE:
        memcpy(u->vec[FS_VEC_BIAS_UPDATE], w, H * sizeof(float));
        fold_biases(m, u);
        break;
    case FS_PARAM_BIAS_IH:
    case FS_PARAM_BIAS_HH: fold_biases(m, u); break;
    case FS_PARAM_ALPHA:
    case FS_PARAM_ZETA: u->coef[0] = sigmoid(w[0]); break;
    case FS_PARAM_BETA:
    case FS_PARAM_NU: u->coef[1] = sigmoid(w[0]); break;
    default: break;
    }
}

fs_status fs_rnn_set_param(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                           const float *data, size_t count) {
    fs__clear_error();
    fs_rnn_unit *u = NULL;
    size_t rows = 0, cols = 0;
    fs_status st = locate(model, layer, direction, param, &u, &rows, &cols);
    if (st != FS_OK) return st;
    if (!data) return fs__fail(FS_ERR_NULL_ARG, "data must not be NULL");
    if (count != rows * cols)
        return fs__fail(FS_ERR_SHAPE, "parameter %d of layer %d direction %d: expected %zu elements (%zu x %zu), got %zu",
                        (int)param, (int)layer, (int)direction, rows * cols, rows, cols, count);
    memcpy(u->raw[param], data, count * sizeof(float));
    repack(model, u, param);
    return FS_OK;
}

fs_status fs_rnn_get_param(const fs_rnn *model, int32_t layer, int32_t direction,
                           fs_param param, float *out, size_t count) {
    fs__clear_error();
    fs_rnn_unit *u = NULL;
    size_t rows = 0, cols = 0;
    fs_status st = locate(model, layer, direction, param, &u, &rows, &cols);
    if (st != FS_OK) return st;
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    if (count != rows * cols)
        return fs__fail(FS_ERR_SHAPE, "parameter %d of layer %d direction %d: expected %zu elements (%zu x %zu), got %zu",
                        (int)param, (int)layer, (int)direction, rows * cols, rows, cols, count);
    memcpy(out, u->raw[param], count * sizeof(float));
    return FS_OK;
}
