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
    case FS_CELL_UGRNN: return 2;
    }
    return 0;
}

static fs_status check_flag(const char *name, int32_t v, int allowed, const char *who) {
    if (v != 0 && v != 1) return fs__fail(FS_ERR_INVALID_ARG, "%s: expected 0 or 1, got %d", name, (int)v);
    if (v && !allowed) return fs__fail(FS_ERR_INVALID_ARG, "%s: only %s has this variant", name, who);
    return FS_OK;
}

/* The fs_act of role r as the config gives it: act[r] - 1 for RNN, LSTM, GRU
 * (-1: the usual one); FastRNN / FastGRNN: role f gate_act (FastGRNN), role g
 * update_act; -2 where the cell has no such role. */
static int config_act(const fs_rnn_config *c, int r) {
    const int roles = c->cell == FS_CELL_LSTM ? 3 : c->cell == FS_CELL_GRU || c->cell == FS_CELL_UGRNN ? 2 : 1;
    if (c->cell == FS_CELL_FASTGRNN) return r == FS_ROLE_F ? c->gate_act : r == FS_ROLE_G ? c->update_act : -2;
    if (c->cell == FS_CELL_FASTRNN) return r == FS_ROLE_G ? c->update_act : -2;
    return r < roles ? c->act[r] - 1 : -2;
}

/* The gate activations, their parameters and clip (fs_rnn_config.act ...). */
static fs_status check_acts(const fs_rnn_config *c, int fast) {
    static const char *const role_names[3] = {"f", "g", "h"};
    for (int r = 0; r < 3; r++) {
        const int32_t a = c->act[r];
        const int used = !fast && config_act(c, r) != -2;
        if (a < 0 || a > 1 + FS_ACT_HARD_TANH || (a && !used))
            return fs__fail(FS_ERR_INVALID_ARG, "act[%d] (role %s): expected 0%s, got %d", r, role_names[r],
                            used   ? " or 1 + an fs_act (1..6)"
                            : fast ? " (FastRNN / FastGRNN take gate_act, update_act)"
                                   : " (this cell has no such role)",
                            (int)a);
        const int params = config_act(c, r) == FS_ACT_HARD_SIGMOID;
        const struct { const char *name; float v; } ab[2] = {{"act_alpha", c->act_alpha[r]}, {"act_beta", c->act_beta[r]}};
        for (int i = 0; i < 2; i++)
            if (!isfinite(ab[i].v) || (ab[i].v != 0.0f && !params))
                return fs__fail(FS_ERR_INVALID_ARG, "%s[%d] (role %s): expected %s, got %g", ab[i].name, r,
                                role_names[r], params ? "a finite value" : "0 (only hard_sigmoid takes one)",
                                (double)ab[i].v);
    }
    const int no_clip = fast || c->cell == FS_CELL_UGRNN;
    if (!isfinite(c->clip) || c->clip < 0.0f || (c->clip != 0.0f && no_clip))
        return fs__fail(FS_ERR_INVALID_ARG, "clip: expected 0 (none)%s, got %g",
                        no_clip ? " (FastRNN, FastGRNN, UGRNN have none)" : " or a finite value > 0", (double)c->clip);
    return FS_OK;
}

/* Low rank (W = W_b W_a, U = U_b U_a, the factors shared by the gates): every
 * cell, except U with a projection (U_a would read R features). In a
 * reset-before GRU, U_a also runs on r * h, under U_b's n rows (EdgeML's GRULR). */
static fs_status check_ranks(const fs_rnn_config *c) {
    if (c->w_rank < 0) return fs__fail(FS_ERR_INVALID_ARG, "w_rank: expected 0 (full rank) or > 0, got %d", (int)c->w_rank);
    if (c->u_rank < 0) return fs__fail(FS_ERR_INVALID_ARG, "u_rank: expected 0 (full rank) or > 0, got %d", (int)c->u_rank);
    if (c->u_rank && c->proj_size)
        return fs__fail(FS_ERR_INVALID_ARG, "u_rank: expected 0 with proj_size %d (a low-rank U and a projection "
                        "together are not supported), got %d", (int)c->proj_size, (int)c->u_rank);
    return FS_OK;
}

static fs_status check_config(const fs_rnn_config *c) {
    if (!FS_ENUM_IN(c->cell, FS_CELL_UGRNN))
        return fs__fail(FS_ERR_INVALID_ARG, "cell: expected 0..6 (RNN_TANH, RNN_RELU, LSTM, GRU, FASTRNN, FASTGRNN, UGRNN), got %d",
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
    /* Layers l >= 1 read D*R features and write D*R: their sizes always match;
     * the first layer (input_size in) never adds, so one layer has nothing to add. */
    if ((st = check_flag("residual", c->residual, 1, "")) != FS_OK) return st;
    if (c->residual && c->num_layers < 2)
        return fs__fail(FS_ERR_INVALID_ARG, "residual: expected num_layers >= 2 (layers after the first add "
                        "their input to their output), got num_layers %d", (int)c->num_layers);
    if (c->proj_size < 0 || (c->proj_size && (!lstm || c->proj_size >= c->hidden_size)))
        return fs__fail(FS_ERR_INVALID_ARG, "proj_size: expected 0, or 1..%d for an LSTM, got %d",
                        (int)c->hidden_size - 1, (int)c->proj_size);
    const struct { const char *name; int32_t v; int max; } nums[] = {
        {"update_act", c->update_act, FS_ACT_HARD_TANH},
        {"gate_act", c->gate_act, c->cell == FS_CELL_FASTGRNN ? FS_ACT_HARD_TANH : 0}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (nums[i].v < 0 || nums[i].v > nums[i].max || (nums[i].v && !fast))
            return fs__fail(FS_ERR_INVALID_ARG, "%s: expected 0%s, got %d", nums[i].name,
                            fast ? " or a positive value in range" : " (only FastRNN / FastGRNN use it)",
                            (int)nums[i].v);
    }
    if ((st = check_ranks(c)) != FS_OK) return st;
    if ((st = check_acts(c, fast)) != FS_OK) return st;
    if (c->dtype < FS_DTYPE_F32 || c->dtype > FS_DTYPE_BF16)
        return fs__fail(FS_ERR_INVALID_ARG, "dtype: expected 0..3 (f32, int8, int4, bf16), got %d", (int)c->dtype);
    if (c->dtype == FS_DTYPE_INT4 ? c->group_size != 32 && c->group_size != 64 : c->group_size != 0)
        return fs__fail(FS_ERR_INVALID_ARG, "group_size: expected %s, got %d",
                        c->dtype == FS_DTYPE_INT4 ? "32 or 64 (int4)" : "0 (only int4 has groups)", (int)c->group_size);
    /* int8 products sum in int32 (kernels.h): every reduction (inputs, or both directions' features) stays below the bound */
    const size_t widest = (size_t)c->hidden_size * (c->bidirectional ? 2 : 1);
    if (c->dtype == FS_DTYPE_INT8 && ((size_t)c->input_size > FS_Q8_MAX_K || widest > FS_Q8_MAX_K))
        return fs__fail(FS_ERR_INVALID_ARG, "int8: expected input_size and the layers' features <= %zu, got input_size %d, "
                        "features %zu", FS_Q8_MAX_K, (int)c->input_size, widest);
    return FS_OK;
}

/* Shape of a parameter for a unit with `in` inputs; 0 when the config has none. */
static int param_dims(const fs_rnn *m, size_t in, fs_param p, size_t *rows, size_t *cols) {
    const fs_rnn_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size, G = m->gates;
    const int fast = is_fast(c->cell), lstm = c->cell == FS_CELL_LSTM;
    size_t r = 0, k = 1;
    switch (p) {
    case FS_PARAM_WEIGHT_IH: if (!c->w_rank) r = G * H, k = in; break;
    case FS_PARAM_WEIGHT_HH: if (!c->u_rank) r = G * H, k = m->r; break;
    case FS_PARAM_BIAS_IH:
    case FS_PARAM_BIAS_HH: if (!fast && c->bias) r = G * H; break;
    case FS_PARAM_WEIGHT_IH_A: if (c->w_rank) r = (size_t)c->w_rank, k = in; break;
    case FS_PARAM_WEIGHT_IH_B: if (c->w_rank) r = G * H, k = (size_t)c->w_rank; break;
    case FS_PARAM_WEIGHT_HH_A: if (c->u_rank) r = (size_t)c->u_rank, k = H; break;
    case FS_PARAM_WEIGHT_HH_B: if (c->u_rank) r = G * H, k = (size_t)c->u_rank; break;
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

/* The activation of each role, defaults filled in; custom_acts says whether
 * any differs from the cell's usual ones (then the kernels' *_act slots run).
 * FastRNN, FastGRNN, UGRNN always run their own kernels on these (roles f, g). */
static void resolve_acts(const fs_rnn_config *c, fs_rnn *m) {
    const int fast = is_fast(c->cell) || c->cell == FS_CELL_UGRNN;
    const int usual[3] = {c->cell == FS_CELL_RNN_RELU ? FS_ACT_RELU : c->cell == FS_CELL_RNN_TANH ? FS_ACT_TANH
                                                                                                 : FS_ACT_SIGMOID,
                          FS_ACT_TANH, FS_ACT_TANH};
    m->custom_acts = c->clip != 0.0f;
    m->acts.clip = c->clip;
    for (int r = 0; r < 3; r++) {
        const int given = config_act(c, r);
        const int kind = given >= 0 ? given : usual[r];
        const int hard = kind == FS_ACT_HARD_SIGMOID;
        m->acts.kind[r] = kind;
        m->acts.alpha[r] = hard && c->act_alpha[r] == 0.0f ? 0.2f : c->act_alpha[r];
        m->acts.beta[r] = hard && c->act_beta[r] == 0.0f ? 0.5f : c->act_beta[r];
        if (kind != usual[r] && !fast) m->custom_acts = 1;
    }
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
    resolve_acts(c, m);
}

/* Reserves `bytes` at *at (64-byte aligned); returns the address when carving. */
static int take_bytes(char *base, size_t *at, size_t bytes, float **slot) {
    if (bytes > SIZE_MAX - FS_ALIGN) return 0;
    if (slot) *slot = base && bytes ? (float *)(base + *at) : NULL;
    return fs__add(*at, fs__align_up(bytes), at);
}

/* Reserves n floats at *at, as take_bytes. */
static int take(char *base, size_t *at, size_t n, float **slot) {
    size_t bytes;
    return fs__mul(n, sizeof(float), &bytes) && take_bytes(base, at, bytes, slot);
}

/* One unit's arrays, reserved from *at in the weight block (64-byte aligned
 * each, so a unit's size does not depend on where it starts); u receives the
 * addresses when carving (base non-NULL). Vectors a configuration never reads
 * take no room. */
static int layout_unit(const fs_rnn *m, size_t in, char *base, size_t *at, fs_rnn_unit *u) {
    const fs_rnn_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size, hp = m->hp, G = m->gates;
    const size_t kx = c->w_rank ? (size_t)c->w_rank : in, kh = c->u_rank ? (size_t)c->u_rank : m->r;
    const int rb = c->cell == FS_CELL_GRU && c->reset_before, torch_bias = !is_fast(c->cell) && c->bias;
    const int grnn = c->cell == FS_CELL_FASTGRNN;
    const size_t peep = c->peephole || c->coupled ? hp : 0; /* the training cells read zeros when coupled */
    size_t n, scales;
    u->in_size = in;
    /* the matrices, FS_MAT_* order: columns, inputs; in the model's dtype */
    const struct { size_t cols, k; float **slot; } mats[FS_MAT_COUNT] = {
        {G * hp, kx, &u->w_ih_packed},      {m->wrp, in, &u->w_ih_a_packed},
        {m->gh * hp, kh, &u->w_hh_packed},  {rb ? hp : 0, kh, &u->w_hn_packed},
        {m->urp, H, &u->w_hh_a_packed},     {c->proj_size ? m->rp : 0, H, &u->w_hr_packed}};
    for (size_t k = 0; k < FS_MAT_COUNT; k++)
        if (!fs__mat_sizes(c->dtype, (size_t)c->group_size, mats[k].cols, mats[k].k, &n, &scales) ||
            !take_bytes(base, at, n, mats[k].slot) || !take(base, at, scales, &u->scale[k]))
            return 0;
    const struct { size_t a, b; float **slot; } arrays[] = {
        {G, hp, &u->bias_x},                {G, hp, &u->bias_h},
        {peep, 1, &u->vec[FS_VEC_PI]},      {peep, 1, &u->vec[FS_VEC_PF]},
        {peep, 1, &u->vec[FS_VEC_PO]},      {grnn ? hp : 0, 1, &u->vec[FS_VEC_BIAS_GATE]},
        {is_fast(c->cell) ? hp : 0, 1, &u->vec[FS_VEC_BIAS_UPDATE]},
        {torch_bias ? G * H : 0, 1, &u->bias_raw[0]}, {torch_bias ? G * H : 0, 1, &u->bias_raw[1]},
        {is_fast(c->cell) ? 2 : 0, 1, &u->scalar_raw},
    };
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        if (!fs__mul(arrays[k].a, arrays[k].b, &n) || !take(base, at, n, arrays[k].slot)) return 0;
    return 1;
}

/* The sigmoids of the raw scalars (raw zero: sigmoid 0.5). */
static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static void set_coefs(fs_rnn_unit *u) {
    for (int k = 0; k < 2; k++) u->coef[k] = sigmoid(u->scalar_raw ? u->scalar_raw[k] : 0.0f);
    u->coef[2] = u->coef[3] = 0.5f;
}

/* A model is a header -- the struct and its unit table -- over a weight block
 * holding every unit's arrays. Sizing (header NULL) is arithmetic, so absurd
 * configurations fail fast; carving walks the units. Units of layer 0 read the
 * input, later ones D*R features. */
static int layout(const fs_rnn_config *c, char *header, char *weights, size_t *header_out,
                  size_t *weights_out) {
    fs_rnn tmp, *m = header ? (fs_rnn *)header : &tmp;
    fs_rnn_unit scratch;
    shape(c, m);
    const size_t n_units = (size_t)c->num_layers * m->dirs, inner = m->dirs * m->r;
    size_t at = fs__align_up(sizeof(fs_rnn)), n, w = 0;
    m->units = header ? (fs_rnn_unit *)(header + at) : NULL;
    if (!fs__mul(n_units, sizeof(fs_rnn_unit), &n) || n > SIZE_MAX - FS_ALIGN ||
        !fs__add(at, fs__align_up(n), &at))
        return 0;
    if (!header) {
        size_t first = 0, rest = 0;
        if (!layout_unit(m, (size_t)c->input_size, NULL, &first, &scratch) ||
            !layout_unit(m, inner, NULL, &rest, &scratch) || !fs__mul(first, m->dirs, &first) ||
            !fs__mul(rest, n_units - m->dirs, &rest) || !fs__add(first, rest, &w))
            return 0;
    } else {
        for (size_t i = 0; i < n_units; i++) {
            layout_unit(m, i < m->dirs ? (size_t)c->input_size : inner, weights, &w, &m->units[i]);
            set_coefs(&m->units[i]);
        }
        m->weights = weights;
        m->weights_bytes = w;
    }
    *header_out = at;
    *weights_out = w;
    return 1;
}

static fs_status sizes(const fs_rnn_config *config, size_t *header, size_t *weights) {
    fs_status st = check_config(config);
    if (st != FS_OK) return st;
    if (!layout(config, NULL, NULL, header, weights) || *header > SIZE_MAX - *weights)
        return fs__fail(FS_ERR_NOMEM, "model size overflows (hidden_size %d, input_size %d, num_layers %d)",
                        (int)config->hidden_size, (int)config->input_size, (int)config->num_layers);
    return FS_OK;
}

fs_status fs_rnn_memory_size(const fs_rnn_config *config, size_t *bytes_out) {
    size_t header, weights;
    fs__clear_error();
    if (!config || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "config and bytes_out must not be NULL");
    fs_status st = sizes(config, &header, &weights);
    if (st == FS_OK) *bytes_out = header + weights;
    return st;
}

fs_status fs_rnn_weights_size(const fs_rnn_config *config, size_t *weights_bytes_out,
                              size_t *header_bytes_out) {
    size_t header, weights;
    fs__clear_error();
    if (!config || !weights_bytes_out)
        return fs__fail(FS_ERR_NULL_ARG, "config and weights_bytes_out must not be NULL");
    fs_status st = sizes(config, &header, &weights);
    if (st != FS_OK) return st;
    *weights_bytes_out = weights;
    if (header_bytes_out) *header_bytes_out = header;
    return FS_OK;
}

fs_status fs_rnn_init_static(const fs_rnn_config *config, void *buffer, size_t buffer_bytes,
                             fs_rnn **out) {
    size_t header, weights;
    fs__clear_error();
    if (!config || !out) return fs__fail(FS_ERR_NULL_ARG, "config and out must not be NULL");
    *out = NULL;
    fs_status st = sizes(config, &header, &weights);
    if (st != FS_OK) return st;
    if ((st = fs__check_buffer("buffer", buffer, buffer_bytes, header + weights)) != FS_OK) return st;
    memset(buffer, 0, header + weights);
    layout(config, buffer, (char *)buffer + header, &header, &weights);
    *out = buffer;
    return FS_OK;
}

fs_status fs_rnn_init_static_weights(const fs_rnn_config *config, const void *weights,
                                     size_t weights_bytes, void *buffer, size_t buffer_bytes,
                                     fs_rnn **out) {
    size_t header, need;
    fs__clear_error();
    if (!config || !out) return fs__fail(FS_ERR_NULL_ARG, "config and out must not be NULL");
    *out = NULL;
    fs_status st = sizes(config, &header, &need);
    if (st != FS_OK) return st;
    if ((st = fs__check_buffer("weights", weights, weights_bytes, need)) != FS_OK) return st;
    if (weights_bytes != need)
        return fs__fail(FS_ERR_SHAPE, "weights: expected %zu bytes (fs_rnn_weights_size), got %zu", need,
                        weights_bytes);
    if ((st = fs__check_buffer("buffer", buffer, buffer_bytes, header)) != FS_OK) return st;
    memset(buffer, 0, header);
    /* the block is only read: the model is marked read-only, fs_rnn_set_param refuses it */
    layout(config, buffer, (char *)(uintptr_t)weights, &header, &need);
    (*out = buffer)->readonly = 1;
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

fs_status fs_rnn_weights(const fs_rnn *model, const void **weights_out, size_t *weights_bytes_out) {
    fs__clear_error();
    if (!model || !weights_out || !weights_bytes_out)
        return fs__fail(FS_ERR_NULL_ARG, "model, weights_out and weights_bytes_out must not be NULL");
    *weights_out = model->weights;
    *weights_bytes_out = model->weights_bytes;
    return FS_OK;
}

fs_status fs_rnn_get_config(const fs_rnn *model, fs_rnn_config *out) {
    fs__clear_error();
    if (!model || !out) return fs__fail(FS_ERR_NULL_ARG, "model and out must not be NULL");
    *out = model->cfg;
    return FS_OK;
}

int fs__has_param(const fs_rnn *m, const fs_rnn_unit *u, fs_param p) {
    size_t rows, cols;
    return param_dims(m, u->in_size, p, &rows, &cols);
}

int fs__unit_param_shape(const fs_rnn *m, const fs_rnn_unit *u, fs_param p, size_t *rows, size_t *cols) {
    return param_dims(m, u->in_size, p, rows, cols);
}

/* Looks up one parameter: its unit and shape. */
static fs_status locate(const fs_rnn *m, int32_t layer, int32_t dir, fs_param param,
                        fs_rnn_unit **unit_out, size_t *rows, size_t *cols) {
    if (!m) return fs__fail(FS_ERR_NULL_ARG, "model must not be NULL");
    if (layer < 0 || layer >= m->cfg.num_layers)
        return fs__fail(FS_ERR_INVALID_ARG, "layer: expected 0..%d, got %d", (int)m->cfg.num_layers - 1,
                        (int)layer);
    if (dir < 0 || (size_t)dir >= m->dirs)
        return fs__fail(FS_ERR_INVALID_ARG, "direction: expected 0..%d, got %d", (int)m->dirs - 1,
                        (int)dir);
    if (!FS_ENUM_IN(param, FS_PARAM_COUNT - 1))
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

/* A weight matrix as packed blocks: rows g*h + j of a [g_count*h][k] PyTorch
 * matrix (see kernels.h). GRU reset-before's W_hh is two: r, z rows, then n. */
typedef struct packed_part {
    float *base;
    size_t g_count, h, k;
    float *scale; /* int8 / int4 models: the matrix's scales */
} packed_part;

/* The packed parts of matrix parameter p (0 for a vector or scalar). */
static int packed_parts(const fs_rnn *m, const fs_rnn_unit *u, fs_param p, packed_part part[2]) {
    const fs_rnn_config *c = &m->cfg;
    const size_t H = (size_t)c->hidden_size, in = u->in_size, wr = (size_t)c->w_rank, ur = (size_t)c->u_rank;
    float *const *sc = u->scale;
    switch (p) {
    case FS_PARAM_WEIGHT_IH: part[0] = (packed_part){u->w_ih_packed, m->gates, H, in, sc[FS_MAT_IH]}; return 1;
    case FS_PARAM_WEIGHT_IH_A: part[0] = (packed_part){u->w_ih_a_packed, 1, wr, in, sc[FS_MAT_IH_A]}; return 1;
    case FS_PARAM_WEIGHT_IH_B: part[0] = (packed_part){u->w_ih_packed, m->gates, H, wr, sc[FS_MAT_IH]}; return 1;
    case FS_PARAM_WEIGHT_HH:
        part[0] = (packed_part){u->w_hh_packed, m->gh, H, m->r, sc[FS_MAT_HH]};
        part[1] = (packed_part){u->w_hn_packed, 1, H, m->r, sc[FS_MAT_HN]};
        return u->w_hn_packed ? 2 : 1;
    case FS_PARAM_WEIGHT_HH_A: part[0] = (packed_part){u->w_hh_a_packed, 1, ur, H, sc[FS_MAT_HH_A]}; return 1;
    case FS_PARAM_WEIGHT_HH_B:
        part[0] = (packed_part){u->w_hh_packed, m->gh, H, ur, sc[FS_MAT_HH]};
        part[1] = (packed_part){u->w_hn_packed, 1, H, ur, sc[FS_MAT_HN]};
        return u->w_hn_packed ? 2 : 1;
    case FS_PARAM_WEIGHT_HR: part[0] = (packed_part){u->w_hr_packed, 1, m->r, H, sc[FS_MAT_HR]}; return 1;
    default: return 0;
    }
}

/* Where a vector parameter lives, as given (peepholes and FastGRNN biases sit
 * in vec unchanged, the torch biases and raw scalars in their own arrays). */
static float *vector_of(const fs_rnn_unit *u, fs_param p) {
    switch (p) {
    case FS_PARAM_BIAS_IH: return u->bias_raw[0];
    case FS_PARAM_BIAS_HH: return u->bias_raw[1];
    case FS_PARAM_PEEPHOLE_I: return u->vec[FS_VEC_PI];
    case FS_PARAM_PEEPHOLE_F: return u->vec[FS_VEC_PF];
    case FS_PARAM_PEEPHOLE_O: return u->vec[FS_VEC_PO];
    case FS_PARAM_BIAS_GATE: return u->vec[FS_VEC_BIAS_GATE];
    case FS_PARAM_BIAS_UPDATE: return u->vec[FS_VEC_BIAS_UPDATE];
    case FS_PARAM_ALPHA:
    case FS_PARAM_ZETA: return u->scalar_raw;
    case FS_PARAM_BETA:
    case FS_PARAM_NU: return u->scalar_raw + 1;
    default: return NULL;
    }
}

/* Element (g*h + j, kk) of a packed part, for kk in [0, k). */
static size_t packed_at(const packed_part *pp, size_t g, size_t j) {
    return (j / FS_NB) * pp->k * pp->g_count * FS_NB + g * FS_NB + j % FS_NB;
}

/* w: [g_count*h][k] PyTorch rows <-> packed blocks. Padding stays zero. */
static void pack(const fs_rnn *m, const float *w, const packed_part *pp) {
    if (m->cfg.dtype != FS_DTYPE_F32) {
        fs__quant_pack(m->cfg.dtype, (size_t)m->cfg.group_size, w, pp->base, pp->scale, pp->g_count, pp->h, pp->k);
        return;
    }
    const size_t width = pp->g_count * FS_NB;
    for (size_t g = 0; g < pp->g_count; g++)
        for (size_t j = 0; j < pp->h; j++) {
            float *col = pp->base + packed_at(pp, g, j);
            const float *row = w + (g * pp->h + j) * pp->k;
            for (size_t kk = 0; kk < pp->k; kk++) col[kk * width] = row[kk];
        }
}

static void unpack(const fs_rnn *m, const packed_part *pp, float *w) {
    if (m->cfg.dtype != FS_DTYPE_F32) {
        fs__quant_unpack(m->cfg.dtype, (size_t)m->cfg.group_size, pp->base, pp->scale, pp->g_count, pp->h, pp->k, w);
        return;
    }
    const size_t width = pp->g_count * FS_NB;
    for (size_t g = 0; g < pp->g_count; g++)
        for (size_t j = 0; j < pp->h; j++) {
            const float *col = pp->base + packed_at(pp, g, j);
            float *row = w + (g * pp->h + j) * pp->k;
            for (size_t kk = 0; kk < pp->k; kk++) row[kk] = col[kk * width];
        }
}

void fs__unpack_param(const fs_rnn *m, const fs_rnn_unit *u, fs_param p, float *dst) {
    packed_part part[2];
    size_t rows = 0, cols = 0;
    const int n = packed_parts(m, u, p, part);
    for (int i = 0; i < n; i++) {
        unpack(m, &part[i], dst);
        dst += part[i].g_count * part[i].h * part[i].k;
    }
    if (!n && param_dims(m, u->in_size, p, &rows, &cols)) memcpy(dst, vector_of(u, p), rows * sizeof(float));
}

/* Biases in the packed column order: folded into the input projection except
 * GRU's b_hn, which sits inside r * (W_hn h + b_hn), and FastGRNN's two, which
 * its cell adds to the shared pre-activation. */
static void fold_biases(const fs_rnn *m, fs_rnn_unit *u) {
    const size_t h = (size_t)m->cfg.hidden_size, G = m->gates;
    const int gru_after = m->cfg.cell == FS_CELL_GRU && !m->cfg.reset_before;
    const float *bi = u->bias_raw[0], *bh = u->bias_raw[1];
    const float *bu = m->cfg.bias ? u->vec[FS_VEC_BIAS_UPDATE] : NULL;
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
    if (model->readonly)
        return fs__fail(FS_ERR_UNSUPPORTED, "this model runs over caller-owned const weights "
                        "(fs_rnn_init_static_weights): its parameters cannot change");
    packed_part part[2];
    const int n = packed_parts(model, u, param, part);
    if (n && model->cfg.dtype != FS_DTYPE_F32)
        for (size_t i = 0; i < count; i++)
            if (!isfinite(data[i]))
                return fs__fail(FS_ERR_INVALID_ARG, "parameter %d: element %zu is %g: a %s model quantises only finite weights",
                                (int)param, i, (double)data[i], fs_dtype_name((fs_dtype)model->cfg.dtype));
    for (int i = 0; i < n; i++) {
        pack(model, data, &part[i]);
        data += part[i].g_count * part[i].h * part[i].k;
    }
    if (n) return FS_OK;
    memcpy(vector_of(u, param), data, count * sizeof(float));
    if (param == FS_PARAM_BIAS_IH || param == FS_PARAM_BIAS_HH || param == FS_PARAM_BIAS_UPDATE)
        fold_biases(model, u);
    set_coefs(u);
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
    fs__unpack_param(model, u, param, out);
    return FS_OK;
}

/* ---- quantised matrices in their stored form (rnn_quant.c) ---- */

/* The parts of a quantised model's matrix parameter, its rows, and its raw
 * byte count checked against `bytes` (buf: the caller's buffer, not NULL). */
static fs_status raw_parts(const fs_rnn *m, int32_t layer, int32_t dir, fs_param param, const void *buf,
                           size_t bytes, packed_part part[2], int *n, size_t *rows, size_t *need) {
    fs_rnn_unit *u = NULL;
    size_t cols = 0;
    fs_status st = locate(m, layer, dir, param, &u, rows, &cols);
    if (st != FS_OK) return st;
    if (m->cfg.dtype == FS_DTYPE_F32 || !(*n = packed_parts(m, u, param, part)))
        return fs__fail(FS_ERR_INVALID_ARG, "param %d: the raw form is that of a quantised model's weight matrix; "
                        "this is %s", (int)param, m->cfg.dtype == FS_DTYPE_F32 ? "an fp32 model" : "a vector");
    const size_t g = (size_t)m->cfg.group_size;
    *need = *rows * (fs__raw_scales_per_row(m->cfg.dtype, g, cols) * 4 + fs__raw_row_bytes(m->cfg.dtype, cols));
    if (!buf) return fs__fail(FS_ERR_NULL_ARG, "the raw buffer must not be NULL");
    if (bytes != *need)
        return fs__fail(FS_ERR_SHAPE, "param %d raw form: expected %zu bytes, got %zu", (int)param, *need, bytes);
    return FS_OK;
}

/* Walks the parts, rows of part i after those of the parts before it. */
static int raw_walk(const fs_rnn *m, const packed_part *part, int n, size_t rows, unsigned char *raw, int mode) {
    const int32_t dt = m->cfg.dtype;
    const size_t g = (size_t)m->cfg.group_size, k = part[0].k;
    const size_t spr = fs__raw_scales_per_row(dt, g, k), rb = fs__raw_row_bytes(dt, k);
    unsigned char *codes = raw + rows * spr * 4;
    for (int i = 0, r0 = 0; i < n; r0 += (int)(part[i].g_count * part[i].h), i++)
        if (!fs__quant_raw(dt, g, part[i].base, part[i].scale, part[i].g_count, part[i].h, k, raw + (size_t)r0 * spr * 4,
                           codes + (size_t)r0 * rb, mode))
            return 0;
    return 1;
}

fs_status fs_rnn_param_raw_size(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                size_t *bytes_out) {
    fs__clear_error();
    packed_part part[2];
    int n = 0;
    size_t rows = 0;
    if (!bytes_out) return fs__fail(FS_ERR_NULL_ARG, "bytes_out must not be NULL");
    fs_status st = raw_parts(model, layer, direction, param, bytes_out, 0, part, &n, &rows, bytes_out);
    return st == FS_ERR_SHAPE ? (fs__clear_error(), FS_OK) : st; /* only the size was asked for */
}

fs_status fs_rnn_get_param_raw(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param, void *out,
                               size_t bytes) {
    fs__clear_error();
    packed_part part[2];
    int n = 0;
    size_t rows = 0, need = 0;
    fs_status st = raw_parts(model, layer, direction, param, out, bytes, part, &n, &rows, &need);
    if (st != FS_OK) return st;
    memset(out, 0, bytes);
    raw_walk(model, part, n, rows, out, FS_RAW_READ);
    return FS_OK;
}

fs_status fs_rnn_set_param_raw(fs_rnn *model, int32_t layer, int32_t direction, fs_param param, const void *data,
                               size_t bytes) {
    fs__clear_error();
    packed_part part[2];
    int n = 0;
    size_t rows = 0, need = 0;
    fs_status st = raw_parts(model, layer, direction, param, data, bytes, part, &n, &rows, &need);
    if (st != FS_OK) return st;
    if (model->readonly)
        return fs__fail(FS_ERR_UNSUPPORTED, "this model runs over caller-owned const weights "
                        "(fs_rnn_init_static_weights): its parameters cannot change");
    /* every part checked before any is stored: a bad value leaves the model as it was */
    unsigned char *raw = (unsigned char *)(uintptr_t)data; /* only read when storing */
    if (!raw_walk(model, part, n, rows, raw, FS_RAW_CHECK) || !raw_walk(model, part, n, rows, raw, FS_RAW_STORE))
        return fs__fail(FS_ERR_INVALID_ARG, "param %d raw form: a scale is negative or not finite, or a code is out "
                        "of range (int8 -128, int4 nibble 0, a used or unused nibble wrong, bf16 inf/NaN)", (int)param);
    return FS_OK;
}

/* ---- names of the enums (the bindings read them here rather than copy them) ---- */

static const char *const PARAM_NAMES[FS_PARAM_COUNT] = {
    "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ih_a", "weight_ih_b",
    "weight_hh_a", "weight_hh_b", "weight_hr", "peephole_i", "peephole_f", "peephole_o",
    "bias_gate", "bias_update", "alpha", "beta", "zeta", "nu"};

const char *fs_param_name(fs_param param) {
    return FS_ENUM_IN(param, FS_PARAM_COUNT - 1) ? PARAM_NAMES[param] : "unknown";
}

int32_t fs_param_ndim(fs_param param) {
    if (!FS_ENUM_IN(param, FS_PARAM_COUNT - 1)) return 0;
    switch (param) {
    case FS_PARAM_WEIGHT_IH: case FS_PARAM_WEIGHT_HH: case FS_PARAM_WEIGHT_IH_A: case FS_PARAM_WEIGHT_IH_B:
    case FS_PARAM_WEIGHT_HH_A: case FS_PARAM_WEIGHT_HH_B: case FS_PARAM_WEIGHT_HR: return 2;
    default: return 1;
    }
}

const char *fs_cell_name(fs_cell cell) {
    static const char *const names[] = {"RNN_TANH", "RNN_RELU", "LSTM", "GRU", "FASTRNN", "FASTGRNN", "UGRNN"};
    return FS_ENUM_IN(cell, FS_CELL_UGRNN) ? names[cell] : "unknown";
}

const char *fs_act_name(fs_act act) {
    static const char *const names[] = {"tanh", "sigmoid", "relu", "hard_sigmoid", "softsign", "hard_tanh"};
    return FS_ENUM_IN(act, FS_ACT_HARD_TANH) ? names[act] : "unknown";
}
