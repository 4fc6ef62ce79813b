/* The .fsq model file (docs/fsq-format.md): validation (fs_model_inspect) and
 * loading (fs_model_load, fs_model_load_file).
 *
 * Safety rule: every length read from the file is checked against the bytes
 * that remain before anything is read through it, with overflow-checked
 * arithmetic; fields are read byte by byte (little-endian, any alignment).
 * A file is validated completely -- every checksum, the configuration, every
 * tensor's name and shape -- before any model memory is allocated.
 *
 * Kinds, configuration keys and tensor names are tables: supporting a new
 * layer kind means adding rows to KINDS, KEYS and TENSORS below. Version 1
 * files name Python classes and their constructor arguments (KINDS_V1,
 * KEYS_V1); version 2 files name the cell and the fs_rnn_config fields.
 * A tree network (fs_tree) is a version 2 kind of its own (TREE_*): its keys
 * are rows of KEYS_V2, its tensors TREE_TENSORS, and it is built through
 * fs_tree_create and fs_tree_set_param (fs_tree_load).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "internal.h"
#include "rnn.h"

/* ---- format constants (docs/fsq-format.md) ------------------------------- */

static const unsigned char FSQ_MAGIC[8] = {0x89, 'F', 'S', 'Q', '\r', '\n', 0x1a, '\n'};
enum {
    FSQ_HEADER_BYTES = 32,
    FSQ_SECTION_HEADER_BYTES = 24,
    FSQ_SEC_CONFIG = 1,
    FSQ_SEC_TENSOR = 2,
    FSQ_SEC_HEAD = 3,        /* optional: an output head's kind and config */
    FSQ_SEC_HEAD_TENSOR = 4, /* optional: its weight and bias */
    FSQ_SEC_METADATA = 5,    /* optional: entries */
    FSQ_FLAG_OPTIONAL = 1,
    FSQ_VAL_INT32 = 1,
    FSQ_VAL_FLOAT32 = 2,
    FSQ_VAL_STRING = 3,
    FSQ_VAL_FLOAT64 = 4,
    FSQ_VAL_NONE = 5,
    FSQ_DTYPE_FLOAT32 = 1, /* 2, 3, 4: int8, int4, bf16 (fs_dtype + 1), version 3 */
    FSQ_DATA_ALIGN = 64,
    /* limits: a reader rejects anything beyond them as malformed */
    FSQ_MAX_SECTIONS = FS_MODEL_MAX_SECTIONS,
    FSQ_MAX_TENSORS = FS_MODEL_MAX_TENSORS,
    FSQ_MAX_NAME = FS_MODEL_MAX_NAME,
    FSQ_MAX_STRING = FS_MODEL_MAX_STRING,
    FSQ_MAX_ENTRIES = FS_MODEL_MAX_ENTRIES,
    FSQ_MAX_NDIM = FS_MODEL_MAX_NDIM
};
#define FSQ_MAX_DIM ((uint64_t)FS_MODEL_MAX_DIM)

/* ---- bounded little-endian reads ------------------------------------------ */

typedef struct cursor {
    const unsigned char *p; /* start of the region */
    size_t end;             /* bytes in the region */
    size_t at;              /* next byte to read */
} cursor;

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Little-endian floats out of the file, any alignment, any host. */
static void copy_floats(const unsigned char *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t bits = le32(src + 4 * i);
        memcpy(&dst[i], &bits, 4);
    }
}

static int take(cursor *c, size_t n, const unsigned char **out) {
    if (n > c->end - c->at) return 0;
    *out = c->p + c->at;
    c->at += n;
    return 1;
}

static int rd_u32(cursor *c, uint32_t *v) {
    const unsigned char *p;
    if (!take(c, 4, &p)) return 0;
    *v = le32(p);
    return 1;
}

static int rd_u64(cursor *c, uint64_t *v) {
    const unsigned char *p;
    if (!take(c, 8, &p)) return 0;
    *v = le64(p);
    return 1;
}

/* A length-prefixed string of at most `max` bytes (no terminator in the file). */
typedef struct fsq_str {
    const char *s;
    size_t n;
} fsq_str;

static int rd_str(cursor *c, size_t max, fsq_str *out) {
    uint32_t n;
    const unsigned char *p;
    if (!rd_u32(c, &n) || n > max || !take(c, n, &p)) return 0;
    out->s = (const char *)p;
    out->n = n;
    return 1;
}

static int str_is(fsq_str a, const char *b) { return strlen(b) == a.n && memcmp(a.s, b, a.n) == 0; }

/* Names: ASCII letters, digits, '_' and '.' only (so they print safely). */
static int valid_name(fsq_str a) {
    if (a.n == 0) return 0;
    for (size_t i = 0; i < a.n; i++) {
        const char ch = a.s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

/* ---- the tables ------------------------------------------------------------ */

/* What the configuration section describes, before it becomes an fs_rnn_config. */
typedef struct fsq_parsed {
    fs_rnn_config cfg;
    int32_t batch_first;
    int32_t nonlinearity; /* RNN: 0 tanh, 1 relu */
    int32_t reset_after;  /* GRU: 1 torch's form, 0 reset-before */
    fs_tree_config tree;  /* a tree network's configuration (TREE_* kinds; cfg stays zero) */
} fsq_parsed;

/* Layer kinds, one bit each: which KEYS and TENSORS rows apply. */
enum {
    K_RNN = 1u << 0,
    K_LSTM = 1u << 1,
    K_GRU = 1u << 2,
    K_FASTRNN = 1u << 3,
    K_FASTGRNN = 1u << 4,
    K_UGRNN = 1u << 5,
    K_TREE_CHILD_SUM = 1u << 6, /* tree networks: not K_ALL, they share no key with a layer */
    K_TREE_NARY = 1u << 7,
    K_TREE_RECURSIVE = 1u << 8,
    K_TREE = K_TREE_CHILD_SUM | K_TREE_NARY | K_TREE_RECURSIVE,
    K_TORCH = K_RNN | K_LSTM | K_GRU | K_UGRNN, /* the cells with torch's biases */
    K_FAST = K_FASTRNN | K_FASTGRNN,
    K_ALL = K_TORCH | K_FAST
};

typedef struct fsq_kind {
    const char *name; /* version 1: the Python class name; 2: fs_cell_name of the cell */
    unsigned mask;
    fs_cell (*finish)(fsq_parsed *p); /* the cell; sets fields derived from the keys */
} fsq_kind;

static fs_cell finish_rnn(fsq_parsed *p) { return p->nonlinearity ? FS_CELL_RNN_RELU : FS_CELL_RNN_TANH; }
static fs_cell finish_lstm(fsq_parsed *p) { (void)p; return FS_CELL_LSTM; }
static fs_cell finish_gru(fsq_parsed *p) { p->cfg.reset_before = !p->reset_after; return FS_CELL_GRU; }
static fs_cell finish_fastrnn(fsq_parsed *p) { (void)p; return FS_CELL_FASTRNN; }
static fs_cell finish_fastgrnn(fsq_parsed *p) { (void)p; return FS_CELL_FASTGRNN; }
static fs_cell finish_tanh(fsq_parsed *p) { (void)p; return FS_CELL_RNN_TANH; }
static fs_cell finish_relu(fsq_parsed *p) { (void)p; return FS_CELL_RNN_RELU; }
static fs_cell finish_gru_v2(fsq_parsed *p) { (void)p; return FS_CELL_GRU; }
static fs_cell finish_ugrnn(fsq_parsed *p) { (void)p; return FS_CELL_UGRNN; }
/* A tree has no cell: these set its kind, and cfg.cell stays 0 like the rest of cfg. */
static fs_cell finish_tree_child_sum(fsq_parsed *p) { p->tree.kind = FS_TREE_CHILD_SUM; return (fs_cell)0; }
static fs_cell finish_tree_nary(fsq_parsed *p) { p->tree.kind = FS_TREE_NARY; return (fs_cell)0; }
static fs_cell finish_tree_recursive(fsq_parsed *p) { p->tree.kind = FS_TREE_RECURSIVE; return (fs_cell)0; }

static const fsq_kind KINDS_V1[] = {
    {"RNN", K_RNN, finish_rnn},
    {"LSTM", K_LSTM, finish_lstm},
    {"GRU", K_GRU, finish_gru},
    {"FastRNN", K_FASTRNN, finish_fastrnn},
    {"FastGRNN", K_FASTGRNN, finish_fastgrnn},
};

static const fsq_kind KINDS_V2[] = {
    {"RNN_TANH", K_RNN, finish_tanh},
    {"RNN_RELU", K_RNN, finish_relu},
    {"LSTM", K_LSTM, finish_lstm},
    {"GRU", K_GRU, finish_gru_v2},
    {"FASTRNN", K_FASTRNN, finish_fastrnn},
    {"FASTGRNN", K_FASTGRNN, finish_fastgrnn},
    {"UGRNN", K_UGRNN, finish_ugrnn},
    {"TREE_CHILD_SUM", K_TREE_CHILD_SUM, finish_tree_child_sum},
    {"TREE_NARY", K_TREE_NARY, finish_tree_nary},
    {"TREE_RECURSIVE", K_TREE_RECURSIVE, finish_tree_recursive},
};

typedef struct fsq_choice {
    const char *name;
    int32_t value;
} fsq_choice;

static const fsq_choice RNN_ACTS[] = {{"tanh", 0}, {"relu", 1}, {NULL, 0}};
static const fsq_choice ACTS_V1[] = {{"tanh", FS_ACT_TANH}, {"sigmoid", FS_ACT_SIGMOID}, {"relu", FS_ACT_RELU}, {NULL, 0}};
static const fsq_choice ACTS[] = {{"tanh", FS_ACT_TANH},         {"sigmoid", FS_ACT_SIGMOID},
                                  {"relu", FS_ACT_RELU},         {"hard_sigmoid", FS_ACT_HARD_SIGMOID},
                                  {"softsign", FS_ACT_SOFTSIGN}, {"hard_tanh", FS_ACT_HARD_TANH},
                                  {NULL, 0}};
/* fs_rnn_config.act: 1 + fs_act */
static const fsq_choice ROLE_ACTS[] = {{"tanh", 1 + FS_ACT_TANH}, {"sigmoid", 1 + FS_ACT_SIGMOID},
                                       {"relu", 1 + FS_ACT_RELU}, {"hard_sigmoid", 1 + FS_ACT_HARD_SIGMOID},
                                       {"softsign", 1 + FS_ACT_SOFTSIGN}, {"hard_tanh", 1 + FS_ACT_HARD_TANH},
                                       {NULL, 0}};

/* fs_rnn_config.dtype (version 3) */
static const fsq_choice DTYPES[] = {{"f32", FS_DTYPE_F32}, {"int8", FS_DTYPE_INT8}, {"int4", FS_DTYPE_INT4},
                                    {"bf16", FS_DTYPE_BF16}, {NULL, 0}};

/* Value kinds a key accepts. */
typedef enum fsq_vkind {
    V_INT,    /* int32 in [lo, hi]; also `none` (meaning the default) when nullable */
    V_CHOICE, /* a string from `choices` */
    V_FLOAT   /* float32 or float64, into a float field (ignored where offset is FSQ_IGNORED:
                 initialisers, not needed to run the model) */
} fsq_vkind;

#define FSQ_IGNORED ((size_t)-1)

typedef struct fsq_key {
    const char *name;
    unsigned kinds;            /* K_* mask of the kinds that take it */
    fsq_vkind vkind;
    size_t offset;             /* int32_t (V_FLOAT: float) field of fsq_parsed it sets, or FSQ_IGNORED */
    int32_t lo, hi;            /* allowed range (V_INT) */
    int32_t def;               /* value when absent (or none) */
    int required, nullable;
    const fsq_choice *choices; /* V_CHOICE */
} fsq_key;

#define OFF(field) offsetof(fsq_parsed, field)
static const fsq_key KEYS_V1[] = {
    {"input_size", K_ALL, V_INT, OFF(cfg.input_size), 1, INT32_MAX, 0, 1, 0, NULL},
    {"hidden_size", K_ALL, V_INT, OFF(cfg.hidden_size), 1, INT32_MAX, 0, 1, 0, NULL},
    {"num_layers", K_ALL, V_INT, OFF(cfg.num_layers), 1, INT32_MAX, 1, 0, 0, NULL},
    {"bias", K_ALL, V_INT, OFF(cfg.bias), 0, 1, 1, 0, 0, NULL},
    {"batch_first", K_ALL, V_INT, OFF(batch_first), 0, 1, 0, 0, 0, NULL},
    {"bidirectional", K_ALL, V_INT, OFF(cfg.bidirectional), 0, 1, 0, 0, 0, NULL},
    {"nonlinearity", K_RNN, V_CHOICE, OFF(nonlinearity), 0, 0, 0, 0, 0, RNN_ACTS},
    {"proj_size", K_LSTM, V_INT, OFF(cfg.proj_size), 0, INT32_MAX, 0, 0, 0, NULL},
    {"peephole", K_LSTM, V_INT, OFF(cfg.peephole), 0, 1, 0, 0, 0, NULL},
    {"coupled", K_LSTM, V_INT, OFF(cfg.coupled), 0, 1, 0, 0, 0, NULL},
    {"reset_after", K_GRU, V_INT, OFF(reset_after), 0, 1, 1, 0, 0, NULL},
    {"nonlinearity", K_FASTRNN, V_CHOICE, OFF(cfg.update_act), 0, 0, FS_ACT_TANH, 0, 0, ACTS_V1},
    {"update_nonlinearity", K_FASTGRNN, V_CHOICE, OFF(cfg.update_act), 0, 0, FS_ACT_TANH, 0, 0, ACTS_V1},
    {"gate_nonlinearity", K_FASTGRNN, V_CHOICE, OFF(cfg.gate_act), 0, 0, FS_ACT_SIGMOID, 0, 0, ACTS_V1},
    {"w_rank", K_FAST, V_INT, OFF(cfg.w_rank), 0, INT32_MAX, 0, 0, 1, NULL},
    {"u_rank", K_FAST, V_INT, OFF(cfg.u_rank), 0, INT32_MAX, 0, 0, 1, NULL},
    {"alpha_init", K_FASTRNN, V_FLOAT, FSQ_IGNORED, 0, 0, 0, 0, 0, NULL},
    {"beta_init", K_FASTRNN, V_FLOAT, FSQ_IGNORED, 0, 0, 0, 0, 0, NULL},
    {"zeta_init", K_FASTGRNN, V_FLOAT, FSQ_IGNORED, 0, 0, 0, 0, 0, NULL},
    {"nu_init", K_FASTGRNN, V_FLOAT, FSQ_IGNORED, 0, 0, 0, 0, 0, NULL},
};

/* Version 2: the fs_rnn_config fields by name, for every cell (check_config then
 * refuses a field a cell does not have); absent fields are zero, as in fs_rnn_config. */
static const fsq_key KEYS_V2[] = {
    {"input_size", K_ALL, V_INT, OFF(cfg.input_size), 1, INT32_MAX, 0, 1, 0, NULL},
    {"hidden_size", K_ALL, V_INT, OFF(cfg.hidden_size), 1, INT32_MAX, 0, 1, 0, NULL},
    {"num_layers", K_ALL, V_INT, OFF(cfg.num_layers), 1, INT32_MAX, 1, 0, 0, NULL},
    {"bidirectional", K_ALL, V_INT, OFF(cfg.bidirectional), 0, 1, 0, 0, 0, NULL},
    {"bias", K_ALL, V_INT, OFF(cfg.bias), 0, 1, 1, 0, 0, NULL},
    {"batch_first", K_ALL, V_INT, OFF(batch_first), 0, 1, 0, 0, 0, NULL},
    {"proj_size", K_ALL, V_INT, OFF(cfg.proj_size), 0, INT32_MAX, 0, 0, 0, NULL},
    {"peephole", K_ALL, V_INT, OFF(cfg.peephole), 0, 1, 0, 0, 0, NULL},
    {"coupled", K_ALL, V_INT, OFF(cfg.coupled), 0, 1, 0, 0, 0, NULL},
    {"reset_before", K_ALL, V_INT, OFF(cfg.reset_before), 0, 1, 0, 0, 0, NULL},
    {"update_act", K_ALL, V_CHOICE, OFF(cfg.update_act), 0, 0, FS_ACT_TANH, 0, 0, ACTS},
    {"gate_act", K_ALL, V_CHOICE, OFF(cfg.gate_act), 0, 0, FS_ACT_TANH, 0, 0, ACTS},
    {"w_rank", K_ALL, V_INT, OFF(cfg.w_rank), 0, INT32_MAX, 0, 0, 0, NULL},
    {"u_rank", K_ALL, V_INT, OFF(cfg.u_rank), 0, INT32_MAX, 0, 0, 0, NULL},
    {"act_f", K_ALL, V_CHOICE, OFF(cfg.act[0]), 0, 0, 0, 0, 0, ROLE_ACTS},
    {"act_g", K_ALL, V_CHOICE, OFF(cfg.act[1]), 0, 0, 0, 0, 0, ROLE_ACTS},
    {"act_h", K_ALL, V_CHOICE, OFF(cfg.act[2]), 0, 0, 0, 0, 0, ROLE_ACTS},
    {"act_alpha_f", K_ALL, V_FLOAT, OFF(cfg.act_alpha[0]), 0, 0, 0, 0, 0, NULL},
    {"act_alpha_g", K_ALL, V_FLOAT, OFF(cfg.act_alpha[1]), 0, 0, 0, 0, 0, NULL},
    {"act_alpha_h", K_ALL, V_FLOAT, OFF(cfg.act_alpha[2]), 0, 0, 0, 0, 0, NULL},
    {"act_beta_f", K_ALL, V_FLOAT, OFF(cfg.act_beta[0]), 0, 0, 0, 0, 0, NULL},
    {"act_beta_g", K_ALL, V_FLOAT, OFF(cfg.act_beta[1]), 0, 0, 0, 0, 0, NULL},
    {"act_beta_h", K_ALL, V_FLOAT, OFF(cfg.act_beta[2]), 0, 0, 0, 0, 0, NULL},
    {"clip", K_ALL, V_FLOAT, OFF(cfg.clip), 0, 0, 0, 0, 0, NULL},
    {"dtype", K_ALL, V_CHOICE, OFF(cfg.dtype), 0, 0, FS_DTYPE_F32, 0, 0, DTYPES},
    {"group_size", K_ALL, V_INT, OFF(cfg.group_size), 0, 64, 0, 0, 0, NULL},
    {"residual", K_ALL, V_INT, OFF(cfg.residual), 0, 1, 0, 0, 0, NULL},
    /* tree networks: the fs_tree_config fields (arity in its documented 1..64; relu by name) */
    {"input_size", K_TREE, V_INT, OFF(tree.input_size), 1, INT32_MAX, 0, 1, 0, NULL},
    {"hidden_size", K_TREE, V_INT, OFF(tree.hidden_size), 1, INT32_MAX, 0, 1, 0, NULL},
    {"arity", K_TREE_NARY | K_TREE_RECURSIVE, V_INT, OFF(tree.arity), 1, 64, 0, 1, 0, NULL},
    {"nonlinearity", K_TREE_RECURSIVE, V_CHOICE, OFF(tree.relu), 0, 0, 0, 1, 0, RNN_ACTS},
};
#undef OFF

/* The kinds and keys one format version uses. */
typedef struct fsq_tables {
    const fsq_kind *kinds;
    size_t n_kinds;
    const fsq_key *keys;
    size_t n_keys;
    const char *known; /* the kinds, for messages */
} fsq_tables;

static const fsq_tables TABLES[2] = {
    {KINDS_V1, sizeof KINDS_V1 / sizeof KINDS_V1[0], KEYS_V1, sizeof KEYS_V1 / sizeof KEYS_V1[0],
     "RNN, LSTM, GRU, FastRNN, FastGRNN"},
    {KINDS_V2, sizeof KINDS_V2 / sizeof KINDS_V2[0], KEYS_V2, sizeof KEYS_V2 / sizeof KEYS_V2[0],
     "RNN_TANH, RNN_RELU, LSTM, GRU, FASTRNN, FASTGRNN, UGRNN, TREE_CHILD_SUM, TREE_NARY, TREE_RECURSIVE"},
};
#define FSQ_MAX_KEYS 48 /* at least the rows of the longest KEYS table */
_Static_assert(sizeof KEYS_V2 / sizeof KEYS_V2[0] <= FSQ_MAX_KEYS, "FSQ_MAX_KEYS: too few for KEYS_V2");

/* One dimension of a tensor's shape, in terms of the configuration. */
typedef enum fsq_dim {
    DIM_NONE = 0, /* no such dimension (a 1-D tensor's second one) */
    DIM_GATES_H,  /* gates * hidden_size */
    DIM_HIDDEN,   /* hidden_size */
    DIM_FEATURES, /* features of h: proj_size if set, else hidden_size */
    DIM_LAYER_IN, /* the layer's input: input_size, or directions * features */
    DIM_PROJ,     /* proj_size */
    DIM_W_RANK,   /* w_rank */
    DIM_U_RANK,   /* u_rank */
    DIM_ONE       /* 1 */
} fsq_dim;

typedef struct fsq_tensor_rule {
    const char *prefix; /* the name is <prefix>_l<layer>[_reverse] */
    unsigned kinds;
    fs_param param;
    fsq_dim rows, cols; /* shape [rows] if cols == DIM_NONE, else [rows, cols] */
    int (*present)(const fsq_parsed *p); /* NULL: always */
} fsq_tensor_rule;

static int has_bias(const fsq_parsed *p) { return p->cfg.bias != 0; }
static int full_w(const fsq_parsed *p) { return p->cfg.w_rank == 0; }
static int full_u(const fsq_parsed *p) { return p->cfg.u_rank == 0; }
static int low_w(const fsq_parsed *p) { return p->cfg.w_rank != 0; }
static int low_u(const fsq_parsed *p) { return p->cfg.u_rank != 0; }
static int has_proj(const fsq_parsed *p) { return p->cfg.proj_size != 0; }
static int has_peephole(const fsq_parsed *p) { return p->cfg.peephole != 0; }

/* In state_dict order (fs_param order): files list tensors this way, readers accept any. */
static const fsq_tensor_rule TENSORS[] = {
    {"weight_ih", K_ALL, FS_PARAM_WEIGHT_IH, DIM_GATES_H, DIM_LAYER_IN, full_w},
    {"weight_hh", K_ALL, FS_PARAM_WEIGHT_HH, DIM_GATES_H, DIM_FEATURES, full_u},
    {"bias_ih", K_TORCH, FS_PARAM_BIAS_IH, DIM_GATES_H, DIM_NONE, has_bias},
    {"bias_hh", K_TORCH, FS_PARAM_BIAS_HH, DIM_GATES_H, DIM_NONE, has_bias},
    {"weight_ih_a", K_ALL, FS_PARAM_WEIGHT_IH_A, DIM_W_RANK, DIM_LAYER_IN, low_w},
    {"weight_ih_b", K_ALL, FS_PARAM_WEIGHT_IH_B, DIM_GATES_H, DIM_W_RANK, low_w},
    {"weight_hh_a", K_ALL, FS_PARAM_WEIGHT_HH_A, DIM_U_RANK, DIM_HIDDEN, low_u},
    {"weight_hh_b", K_ALL, FS_PARAM_WEIGHT_HH_B, DIM_GATES_H, DIM_U_RANK, low_u},
    {"weight_hr", K_LSTM, FS_PARAM_WEIGHT_HR, DIM_PROJ, DIM_HIDDEN, has_proj},
    {"peephole_i", K_LSTM, FS_PARAM_PEEPHOLE_I, DIM_HIDDEN, DIM_NONE, has_peephole},
    {"peephole_f", K_LSTM, FS_PARAM_PEEPHOLE_F, DIM_HIDDEN, DIM_NONE, has_peephole},
    {"peephole_o", K_LSTM, FS_PARAM_PEEPHOLE_O, DIM_HIDDEN, DIM_NONE, has_peephole},
    {"bias_gate", K_FASTGRNN, FS_PARAM_BIAS_GATE, DIM_HIDDEN, DIM_NONE, has_bias},
    {"bias_update", K_FASTGRNN, FS_PARAM_BIAS_UPDATE, DIM_HIDDEN, DIM_NONE, has_bias},
    {"bias", K_FASTRNN, FS_PARAM_BIAS_UPDATE, DIM_HIDDEN, DIM_NONE, has_bias},
    {"alpha", K_FASTRNN, FS_PARAM_ALPHA, DIM_ONE, DIM_NONE, NULL},
    {"beta", K_FASTRNN, FS_PARAM_BETA, DIM_ONE, DIM_NONE, NULL},
    {"zeta", K_FASTGRNN, FS_PARAM_ZETA, DIM_ONE, DIM_NONE, NULL},
    {"nu", K_FASTGRNN, FS_PARAM_NU, DIM_ONE, DIM_NONE, NULL},
};
#define N_TENSOR_RULES (sizeof TENSORS / sizeof TENSORS[0])

/* Tensor slots (layer, direction, rule) are tracked in a bitmap on the stack. */
#define FSQ_MAX_SLOTS 32768u

static int rule_applies(const fsq_tensor_rule *r, const fsq_kind *k, const fsq_parsed *p) {
    return (r->kinds & k->mask) && (!r->present || r->present(p));
}

static uint64_t gates_of(const fs_rnn_config *c) {
    switch (c->cell) {
    case FS_CELL_LSTM: return c->coupled ? 3 : 4;
    case FS_CELL_GRU: return 3;
    case FS_CELL_UGRNN: return 2;
    default: return 1;
    }
}

static uint64_t dim_value(fsq_dim d, const fsq_parsed *p, int32_t layer) {
    const fs_rnn_config *c = &p->cfg;
    const uint64_t H = (uint64_t)c->hidden_size, D = c->bidirectional ? 2 : 1;
    const uint64_t R = c->proj_size ? (uint64_t)c->proj_size : H;
    switch (d) {
    case DIM_NONE: return 0;
    case DIM_GATES_H: return gates_of(c) * H;
    case DIM_HIDDEN: return H;
    case DIM_FEATURES: return R;
    case DIM_LAYER_IN: return layer == 0 ? (uint64_t)c->input_size : D * R;
    case DIM_PROJ: return (uint64_t)c->proj_size;
    case DIM_W_RANK: return (uint64_t)c->w_rank;
    case DIM_U_RANK: return (uint64_t)c->u_rank;
    case DIM_ONE: return 1;
    }
    return 0;
}

/* ---- parsing ----------------------------------------------------------------- */

typedef struct fsq_file {
    const unsigned char *data;
    size_t size;
    uint32_t sections;
    uint32_t version;
    uint32_t crc_seed; /* version 2: the CRC-32 of the file id, which every section checksum starts from */
} fsq_file;

/* One section, located and checksum-verified. */
typedef struct fsq_section {
    uint32_t index, type, flags;
    size_t at;      /* offset of its header in the file */
    size_t payload; /* offset of its payload in the file */
    size_t length;  /* payload bytes */
} fsq_section;

static const char *section_name(uint32_t type) {
    static const char *names[] = {"unknown", "config", "tensor", "head", "head tensor", "metadata"};
    return names[type <= FSQ_SEC_METADATA ? type : 0];
}

/* The fixed header, given at least its first `size` bytes of the file: magic,
 * version, checksum and fields. *file_size_out: the size it states. */
static fs_status check_header(const unsigned char *p, size_t size, uint64_t *file_size_out,
                              uint32_t *sections_out, uint32_t *version_out) {
    if (size < sizeof FSQ_MAGIC)
        return fs__fail(FS_ERR_FORMAT, "truncated: %zu bytes is too short for a .fsq model file (header is %d bytes)",
                        size, FSQ_HEADER_BYTES);
    if (memcmp(p, FSQ_MAGIC, sizeof FSQ_MAGIC) != 0)
        return fs__fail(FS_ERR_FORMAT, "not a .fsq model file: wrong magic bytes at offset 0 "
                        "(expected 89 46 53 51 0d 0a 1a 0a, got %02x %02x %02x %02x %02x %02x %02x %02x); "
                        "convert a checkpoint with `fastseq convert`",
                        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    if (size < FSQ_HEADER_BYTES)
        return fs__fail(FS_ERR_FORMAT, "truncated: %zu bytes, the header alone is %d bytes", size,
                        FSQ_HEADER_BYTES);
    const uint32_t version = le32(p + 8);
    if (version < 1 || version > FS_MODEL_FORMAT_VERSION)
        return fs__fail(FS_ERR_VERSION, "format version %u is not supported: this fastseq reads versions 1 to %d "
                        "(a newer fastseq may read it)", (unsigned)version, FS_MODEL_FORMAT_VERSION);
    const uint32_t crc = le32(p + 28), actual = fs__crc32_update(0, p, 28);
    if (crc != actual)
        return fs__fail(FS_ERR_CHECKSUM, "header checksum mismatch (stored %08x, computed %08x): the file is corrupted",
                        (unsigned)crc, (unsigned)actual);
    const uint32_t reserved = le32(p + 24); /* version 2: the file id */
    if (version == 1 && reserved != 0)
        return fs__fail(FS_ERR_FORMAT, "header: reserved field is %u, expected 0", (unsigned)reserved);
    *file_size_out = le64(p + 16);
    *sections_out = le32(p + 12);
    *version_out = version;
    return FS_OK;
}

static fs_status parse_header(const void *data, size_t size, fsq_file *f) {
    const unsigned char *p = data;
    uint64_t file_size = 0;
    uint32_t sections = 0, version = 0;
    if (!data) return fs__fail(FS_ERR_NULL_ARG, "data must not be NULL");
    fs_status st = check_header(p, size, &file_size, &sections, &version);
    if (st != FS_OK) return st;
    if (file_size != (uint64_t)size) {
        if (file_size > (uint64_t)size)
            return fs__fail(FS_ERR_FORMAT, "truncated: the header says %llu bytes, got %zu",
                            (unsigned long long)file_size, size);
        return fs__fail(FS_ERR_FORMAT, "%zu trailing bytes after the end of the model (the header says %llu bytes, got %zu)",
                        size - (size_t)file_size, (unsigned long long)file_size, size);
    }
    if (sections < 1 || sections > FSQ_MAX_SECTIONS)
        return fs__fail(FS_ERR_FORMAT, "header: section count %u out of range (expected 1..%d)",
                        (unsigned)sections, FSQ_MAX_SECTIONS);
    f->data = p;
    f->size = size;
    f->sections = sections;
    f->version = version;
    f->crc_seed = version >= 2 ? fs__crc32_update(0, p + 24, 4) : 0;
    return FS_OK;
}

/* Section `index` at offset `at` of a file whose bounds are known to hold it. */
static void locate_section(const fsq_file *f, uint32_t index, size_t at, fsq_section *s) {
    const unsigned char *h = f->data + at;
    s->index = index;
    s->type = le32(h);
    s->flags = le32(h + 4);
    s->at = at;
    s->payload = at + FSQ_SECTION_HEADER_BYTES;
    s->length = (size_t)le64(h + 8);
}

/* Locates section `index` at offset `at`, checks its bounds and (check_crc) its checksum. */
static fs_status parse_section(const fsq_file *f, uint32_t index, size_t at, int check_crc, fsq_section *s) {
    const unsigned char *h = f->data + at;
    if (f->size - at < FSQ_SECTION_HEADER_BYTES)
        return fs__fail(FS_ERR_FORMAT, "truncated: section %u of %u at offset %zu needs a %d-byte header, %zu bytes remain",
                        (unsigned)index, (unsigned)f->sections, at, FSQ_SECTION_HEADER_BYTES, f->size - at);
    const uint64_t length = le64(h + 8);
    const uint32_t reserved = le32(h + 16), crc = le32(h + 20);
    const size_t room = f->size - at - FSQ_SECTION_HEADER_BYTES;
    if (length > (uint64_t)room)
        return fs__fail(FS_ERR_FORMAT, "section %u at offset %zu: length %llu runs past the end of the file (%zu bytes remain)",
                        (unsigned)index, at, (unsigned long long)length, room);
    locate_section(f, index, at, s);
    const uint32_t actual =
        check_crc ? fs__crc32_update(fs__crc32_update(f->crc_seed, h, 20), f->data + s->payload, s->length) : crc;
    if (crc != actual)
        return fs__fail(FS_ERR_CHECKSUM, "section %u (%s) at offset %zu: checksum mismatch (stored %08x, computed %08x): "
                        "the file is corrupted%s", (unsigned)index, section_name(s->type), at, (unsigned)crc,
                        (unsigned)actual, f->version >= 2 ? ", or the section comes from another file" : "");
    if (reserved != 0)
        return fs__fail(FS_ERR_FORMAT, "section %u at offset %zu: reserved field is %u, expected 0",
                        (unsigned)index, at, (unsigned)reserved);
    return FS_OK;
}

static fs_status config_error(const fsq_section *s, const char *what) {
    return fs__fail(FS_ERR_FORMAT, "config section at offset %zu: %s", s->at, what);
}

static fs_status parse_config(const fsq_file *f, const fsq_section *s, const fsq_kind **kind_out,
                              fsq_parsed *out) {
    cursor c = {f->data + s->payload, s->length, 0};
    fsq_str kind_name;
    uint32_t n_entries;
    char msg[160];
    if (s->flags != 0) return config_error(s, "flags must be 0");
    if (!rd_str(&c, FSQ_MAX_NAME, &kind_name) || !valid_name(kind_name))
        return config_error(s, "the layer kind is missing or malformed");
    const fsq_tables *tb = &TABLES[f->version == 1 ? 0 : 1]; /* version 3: version 2's tables */
    const fsq_key *KEYS = tb->keys;
    const size_t N_KEYS = tb->n_keys;
    const fsq_kind *kind = NULL;
    for (size_t i = 0; i < tb->n_kinds; i++)
        if (str_is(kind_name, tb->kinds[i].name)) kind = &tb->kinds[i];
    if (!kind)
        return fs__fail(FS_ERR_UNSUPPORTED, "layer kind '%.*s' is not known to this fastseq (format version %u knows %s); "
                        "the file may come from a newer version", (int)kind_name.n, kind_name.s,
                        (unsigned)f->version, tb->known);
    if (!rd_u32(&c, &n_entries) || n_entries > FSQ_MAX_ENTRIES) {
        snprintf(msg, sizeof msg, "entry count missing or above %d", FSQ_MAX_ENTRIES);
        return config_error(s, msg);
    }
    memset(out, 0, sizeof *out);
    unsigned seen[FSQ_MAX_KEYS] = {0};
    for (size_t i = 0; i < N_KEYS; i++)
        if ((KEYS[i].kinds & kind->mask) && KEYS[i].offset != FSQ_IGNORED)
            *(int32_t *)((char *)out + KEYS[i].offset) = KEYS[i].def;
    for (uint32_t e = 0; e < n_entries; e++) {
        fsq_str key;
        uint32_t type, raw = 0;
        const unsigned char *skip = NULL;
        fsq_str sval = {NULL, 0};
        if (!rd_str(&c, FSQ_MAX_NAME, &key) || !valid_name(key) || !rd_u32(&c, &type)) {
            snprintf(msg, sizeof msg, "entry %u: key truncated or malformed", (unsigned)e);
            return config_error(s, msg);
        }
        int ok = 0;
        if (type == FSQ_VAL_INT32 || type == FSQ_VAL_FLOAT32) ok = rd_u32(&c, &raw);
        else if (type == FSQ_VAL_FLOAT64) ok = take(&c, 8, &skip);
        else if (type == FSQ_VAL_STRING) ok = rd_str(&c, FSQ_MAX_STRING, &sval);
        else if (type == FSQ_VAL_NONE) ok = 1;
        if (!ok) {
            snprintf(msg, sizeof msg, "entry '%.*s': value type %u unknown or value truncated", (int)key.n,
                     key.s, (unsigned)type);
            return config_error(s, msg);
        }
        const fsq_key *rule = NULL;
        size_t ri = 0;
        for (size_t i = 0; i < N_KEYS && !rule; i++)
            if ((KEYS[i].kinds & kind->mask) && str_is(key, KEYS[i].name)) rule = &KEYS[i], ri = i;
        if (!rule)
            return fs__fail(FS_ERR_UNSUPPORTED, "config key '%.*s' is not known for a %s in this fastseq; "
                            "the file may come from a newer version", (int)key.n, key.s, kind->name);
        if (seen[ri]++) {
            snprintf(msg, sizeof msg, "key '%s' appears twice", rule->name);
            return config_error(s, msg);
        }
        const int fits = rule->vkind == V_INT ? type == FSQ_VAL_INT32 || (rule->nullable && type == FSQ_VAL_NONE)
                         : rule->vkind == V_CHOICE ? type == FSQ_VAL_STRING
                                                   : type == FSQ_VAL_FLOAT32 || type == FSQ_VAL_FLOAT64;
        if (!fits) {
            static const char *want[] = {"an int32", "a string", "a float"};
            snprintf(msg, sizeof msg, "key '%s': expected %s%s, got value type %u", rule->name, want[rule->vkind],
                     rule->nullable ? " or none" : "", (unsigned)type);
            return config_error(s, msg);
        }
        int32_t v = rule->def;
        if (type == FSQ_VAL_INT32) {
            /* two's complement, as written (without an implementation-defined cast) */
            v = raw <= (uint32_t)INT32_MAX ? (int32_t)raw : -(int32_t)(~raw) - 1;
            if (v < rule->lo || v > rule->hi) {
                snprintf(msg, sizeof msg, "key '%s': expected %d..%d, got %d", rule->name, (int)rule->lo,
                         (int)rule->hi, (int)v);
                return config_error(s, msg);
            }
        } else if (type == FSQ_VAL_STRING) {
            const fsq_choice *ch = rule->choices;
            while (ch->name && !str_is(sval, ch->name)) ch++;
            if (!ch->name) {
                snprintf(msg, sizeof msg, "key '%s': value '%.*s' is not one this fastseq knows", rule->name,
                         (int)(sval.n > 32 ? 32 : sval.n), sval.s);
                return fs__fail(FS_ERR_UNSUPPORTED, "config section at offset %zu: %s", s->at, msg);
            }
            v = ch->value;
        }
        if (rule->offset == FSQ_IGNORED) continue;
        if (rule->vkind == V_FLOAT) { /* check_config judges the value (finite, range) */
            float f;
            if (type == FSQ_VAL_FLOAT32) {
                memcpy(&f, &raw, sizeof f);
            } else {
                uint64_t bits = 0;
                double d;
                for (int b = 7; b >= 0; b--) bits = bits << 8 | skip[b]; /* little-endian */
                memcpy(&d, &bits, sizeof d);
                f = (float)d;
            }
            memcpy((char *)out + rule->offset, &f, sizeof f);
        } else {
            *(int32_t *)((char *)out + rule->offset) = v;
        }
    }
    if (c.at != c.end) {
        snprintf(msg, sizeof msg, "%zu unexpected bytes after the last entry", c.end - c.at);
        return config_error(s, msg);
    }
    for (size_t i = 0; i < N_KEYS; i++)
        if ((KEYS[i].kinds & kind->mask) && KEYS[i].required && !seen[i]) {
            snprintf(msg, sizeof msg, "required key '%s' is missing", KEYS[i].name);
            return config_error(s, msg);
        }
    out->cfg.cell = kind->finish(out);
    *kind_out = kind;
    return FS_OK;
}

/* A parsed tensor section: which parameter it is and where its data lies. */
typedef struct fsq_tensor {
    const fsq_tensor_rule *rule;
    int32_t layer, direction;
    uint64_t slot;       /* (layer * D + direction) * N_TENSOR_RULES + rule index */
    const unsigned char *data;
    size_t count;        /* elements */
    int32_t dtype;       /* fs_dtype of the data (version 3: a quantised matrix) */
    size_t bytes;        /* of the data */
} fsq_tensor;

/* Splits <prefix>_l<digits>[_reverse]; 1 on success. */
static int parse_tensor_name(fsq_str name, const fsq_kind *kind, const fsq_parsed *p,
                             fsq_tensor *t) {
    for (size_t r = 0; r < N_TENSOR_RULES; r++) {
        const fsq_tensor_rule *rule = &TENSORS[r];
        const size_t plen = strlen(rule->prefix);
        if (!rule_applies(rule, kind, p) || name.n < plen + 3 || memcmp(name.s, rule->prefix, plen) != 0 ||
            memcmp(name.s + plen, "_l", 2) != 0)
            continue;
        size_t i = plen + 2, digits = 0;
        uint64_t layer = 0;
        while (i < name.n && name.s[i] >= '0' && name.s[i] <= '9' && digits < 10) {
            layer = layer * 10 + (uint64_t)(name.s[i] - '0');
            i++, digits++;
        }
        if (digits == 0 || (digits > 1 && name.s[plen + 2] == '0')) continue;
        int dir = 0;
        if (i == name.n) dir = 0;
        else if (name.n - i == 8 && memcmp(name.s + i, "_reverse", 8) == 0) dir = 1;
        else continue;
        if (layer >= (uint64_t)p->cfg.num_layers || (dir && !p->cfg.bidirectional)) return 0;
        t->rule = rule;
        t->layer = (int32_t)layer;
        t->direction = dir;
        t->slot = (layer * (p->cfg.bidirectional ? 2u : 1u) + (uint64_t)dir) * N_TENSOR_RULES + r;
        return 1;
    }
    return 0;
}

/* A tensor section's payload as the format defines it, whatever the tensor is:
 * name, float32 dtype, shape, aligned data filling the section exactly. */
typedef struct fsq_raw_tensor {
    fsq_str name;
    uint32_t ndim;
    uint64_t dims[FSQ_MAX_NDIM];
    const unsigned char *data;
    size_t count; /* elements */
    int32_t dtype; /* fs_dtype */
    size_t bytes;  /* of the data */
} fsq_raw_tensor;

/* Bytes of a tensor's data: float32 4 per element; a quantised matrix (rows x
 * cols, fs_rnn_get_param_raw's form) its scales and codes. count <= 2 * the
 * section's bytes (checked), so this cannot overflow. */
static uint64_t data_bytes(int32_t dtype, int32_t group, const uint64_t *dims, uint64_t count) {
    if (dtype == FS_DTYPE_F32) return count * 4;
    const size_t cols = (size_t)dims[1];
    return dims[0] * (fs__raw_scales_per_row(dtype, (size_t)group, cols) * 4 + fs__raw_row_bytes(dtype, cols));
}

/* p: the layer's configuration (its dtype allows quantised matrices), NULL for a head tensor. */
static fs_status read_tensor(const fsq_file *f, const fsq_section *s, const fsq_parsed *p, fsq_raw_tensor *t) {
    cursor c = {f->data + s->payload, s->length, 0};
    fsq_str name;
    uint32_t dtype, ndim;
    uint64_t *dims = t->dims, data_offset;
    if (!rd_str(&c, FSQ_MAX_NAME, &name) || !valid_name(name))
        return fs__fail(FS_ERR_FORMAT, "tensor section at offset %zu: name missing or malformed", s->at);
    const int nl = (int)name.n;
    if (!rd_u32(&c, &dtype) || !rd_u32(&c, &ndim))
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: truncated before its shape", nl, name.s, s->at);
    const int32_t want = p && f->version >= 3 ? p->cfg.dtype : FS_DTYPE_F32; /* the quantised dtype allowed */
    if (dtype != FSQ_DTYPE_FLOAT32 && (want == FS_DTYPE_F32 || dtype != (uint32_t)want + 1))
        return fs__fail(FS_ERR_UNSUPPORTED, "tensor '%.*s' at offset %zu: dtype %u is not supported here (this fastseq reads "
                        "1 = float32%s)", nl, name.s, s->at, (unsigned)dtype,
                        want == FS_DTYPE_INT8 ? ", 2 = int8" : want == FS_DTYPE_INT4 ? ", 3 = int4" : want == FS_DTYPE_BF16 ? ", 4 = bf16" : "");
    const int32_t dt = dtype == FSQ_DTYPE_FLOAT32 ? FS_DTYPE_F32 : want;
    if (ndim < 1 || ndim > FSQ_MAX_NDIM)
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: %u dimensions, expected 1..%d", nl, name.s,
                        s->at, (unsigned)ndim, FSQ_MAX_NDIM);
    uint64_t count = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        if (!rd_u64(&c, &dims[d]))
            return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: truncated inside its shape", nl, name.s, s->at);
        if (dims[d] > FSQ_MAX_DIM)
            return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: dimension %u is %llu, above the limit %u",
                            nl, name.s, s->at, (unsigned)d, (unsigned long long)dims[d], (unsigned)FS_MODEL_MAX_DIM);
        /* the elements can never outnumber the section's bytes: stop before overflow */
        if (dims[d] != 0 && count > 2 * (uint64_t)s->length / dims[d]) /* int4: two elements a byte */
            return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: shape product exceeds its section (%zu bytes)",
                            nl, name.s, s->at, s->length);
        count *= dims[d];
    }
    if (!rd_u64(&c, &data_offset))
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: truncated before its data offset", nl, name.s, s->at);
    if (dt != FS_DTYPE_F32 && ndim != 2)
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: a %s tensor is a matrix, got %u dimensions", nl,
                        name.s, s->at, fs_dtype_name((fs_dtype)dt), (unsigned)ndim);
    const uint64_t bytes = data_bytes(dt, p ? p->cfg.group_size : 0, dims, count);
    if (data_offset < c.at || data_offset > s->length || bytes > (uint64_t)s->length - data_offset ||
        data_offset + bytes != (uint64_t)s->length)
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' at offset %zu: data offset %llu and %llu %s elements do not fill its %zu-byte section",
                        nl, name.s, s->at, (unsigned long long)data_offset, (unsigned long long)count,
                        fs_dtype_name((fs_dtype)dt), s->length);
    if ((s->payload + (size_t)data_offset) % FSQ_DATA_ALIGN != 0)
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s': data at file offset %zu is not %d-byte aligned", nl, name.s,
                        s->payload + (size_t)data_offset, FSQ_DATA_ALIGN);
    for (size_t i = c.at; i < (size_t)data_offset; i++)
        if (c.p[i] != 0)
            return fs__fail(FS_ERR_FORMAT, "tensor '%.*s': padding byte at file offset %zu is not zero", nl, name.s,
                            s->payload + i);
    t->name = name;
    t->ndim = ndim;
    t->data = c.p + data_offset;
    t->count = (size_t)count;
    t->dtype = dt;
    t->bytes = (size_t)bytes;
    return FS_OK;
}

/* "[d0, d1, ...]" of a shape, for messages. */
static void shape_text(const fsq_raw_tensor *t, char *got, size_t cap) {
    int at = snprintf(got, cap, "[");
    for (uint32_t d = 0; d < t->ndim && at < (int)cap - 16; d++)
        at += snprintf(got + at, cap - (size_t)at, d ? ", %llu" : "%llu", (unsigned long long)t->dims[d]);
    snprintf(got + at, cap - (size_t)at, "]");
}

/* The tensor's shape is [rows] (ndim 1) or [rows, cols] (ndim 2), or an error naming both. */
static fs_status expect_shape(const fsq_raw_tensor *t, uint32_t ndim, uint64_t rows, uint64_t cols) {
    if (t->ndim == ndim && t->dims[0] == rows && (ndim == 1 || t->dims[1] == cols)) return FS_OK;
    char got[64];
    shape_text(t, got, sizeof got);
    if (ndim == 1)
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s': expected shape [%llu], got %s", (int)t->name.n, t->name.s,
                        (unsigned long long)rows, got);
    return fs__fail(FS_ERR_FORMAT, "tensor '%.*s': expected shape [%llu, %llu], got %s", (int)t->name.n, t->name.s,
                    (unsigned long long)rows, (unsigned long long)cols, got);
}

static fs_status parse_tensor(const fsq_file *f, const fsq_section *s, const fsq_kind *kind,
                              const fsq_parsed *p, fsq_tensor *t) {
    fsq_raw_tensor raw;
    if (s->flags != 0)
        return fs__fail(FS_ERR_FORMAT, "tensor section at offset %zu: flags must be 0", s->at);
    fs_status st = read_tensor(f, s, p, &raw);
    if (st != FS_OK) return st;
    const fsq_str name = raw.name;
    const int nl = (int)name.n;
    if (!parse_tensor_name(name, kind, p, t))
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' is not a parameter of this %s (num_layers %d, bidirectional %d, bias %d)",
                        nl, name.s, kind->name, (int)p->cfg.num_layers, (int)p->cfg.bidirectional, (int)p->cfg.bias);
    const uint64_t rows = dim_value(t->rule->rows, p, t->layer);
    const uint64_t cols = dim_value(t->rule->cols, p, t->layer);
    const uint32_t want_ndim = t->rule->cols == DIM_NONE ? 1 : 2;
    if ((st = expect_shape(&raw, want_ndim, rows, cols)) != FS_OK) return st;
    if ((raw.dtype != FS_DTYPE_F32) != (p->cfg.dtype != FS_DTYPE_F32 && want_ndim == 2))
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s': expected %s data (the layer's dtype is %s), got %s", nl, name.s,
                        want_ndim == 2 ? fs_dtype_name((fs_dtype)p->cfg.dtype) : "f32",
                        fs_dtype_name((fs_dtype)p->cfg.dtype), fs_dtype_name((fs_dtype)raw.dtype));
    t->data = raw.data;
    t->count = raw.count;
    t->dtype = raw.dtype;
    t->bytes = raw.bytes;
    return FS_OK;
}

/* ---- tree networks: their four tensors ------------------------------------------ */

/* fs_tree_param order; shapes [G*H, I], [G*H, K], [G*H], [G*H] (fs_tree_kind). */
static const char *const TREE_TENSORS[FS_TREE_PARAM_COUNT] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

static void tree_shape(const fs_tree_config *c, int which, uint64_t *rows, uint64_t *cols) {
    const uint64_t H = (uint64_t)c->hidden_size, N = (uint64_t)c->arity;
    const uint64_t G = c->kind == FS_TREE_CHILD_SUM ? 4 : c->kind == FS_TREE_NARY ? N + 3 : 1;
    const uint64_t K = c->kind == FS_TREE_CHILD_SUM ? H : N * H;
    *rows = G * H;
    *cols = which == FS_TREE_WEIGHT_IH ? (uint64_t)c->input_size : which == FS_TREE_WEIGHT_HH ? K : 0;
}

/* A tree tensor section: which parameter (*which) and its float32 data, shape checked. */
static fs_status parse_tree_tensor(const fsq_file *f, const fsq_section *s, const fsq_kind *kind,
                                   const fs_tree_config *c, int *which, fsq_raw_tensor *t) {
    if (s->flags != 0)
        return fs__fail(FS_ERR_FORMAT, "tensor section at offset %zu: flags must be 0", s->at);
    fs_status st = read_tensor(f, s, NULL, t); /* NULL: float32 only */
    if (st != FS_OK) return st;
    *which = 0;
    while (*which < FS_TREE_PARAM_COUNT && !str_is(t->name, TREE_TENSORS[*which])) ++*which;
    if (*which == FS_TREE_PARAM_COUNT)
        return fs__fail(FS_ERR_FORMAT, "tensor '%.*s' is not a parameter of a %s (it has weight_ih, weight_hh, "
                        "bias_ih, bias_hh)", (int)t->name.n, t->name.s, kind->name);
    uint64_t rows, cols;
    tree_shape(c, *which, &rows, &cols);
    return expect_shape(t, *which <= FS_TREE_WEIGHT_HH ? 2 : 1, rows, cols);
}

/* Copies a tree tensor into the model through its public parameter API. */
static fs_status set_tree_tensor(fs_tree *tree, int which, const fsq_raw_tensor *t) {
    float *tmp = fs__alloc(t->count * sizeof(float));
    if (!tmp) return fs__fail(FS_ERR_NOMEM, "out of memory for a %zu-float tensor", t->count);
    copy_floats(t->data, t->count, tmp);
    fs_status st = fs_tree_set_param(tree, (fs_tree_param)which, tmp, t->count);
    fs__free(tmp);
    return st;
}

/* Float data is little-endian in the file; on a big-endian host (or an unaligned
 * buffer) it is copied through `tmp` first. */
static int host_is_little_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static fs_status set_tensor(fs_rnn *model, const fsq_tensor *t) {
    if (t->dtype != FS_DTYPE_F32) /* read byte by byte: any host, any alignment */
        return fs_rnn_set_param_raw(model, t->layer, t->direction, t->rule->param, t->data, t->bytes);
    const int direct = host_is_little_endian() && (uintptr_t)t->data % sizeof(float) == 0;
    if (direct)
        return fs_rnn_set_param(model, t->layer, t->direction, t->rule->param, (const float *)(const void *)t->data,
                                t->count);
    float *tmp = fs__alloc(t->count * sizeof(float));
    if (!tmp) return fs__fail(FS_ERR_NOMEM, "out of memory for a %zu-float tensor", t->count);
    for (size_t i = 0; i < t->count; i++) {
        const uint32_t bits = le32(t->data + 4 * i);
        memcpy(&tmp[i], &bits, 4);
    }
    fs_status st = fs_rnn_set_param(model, t->layer, t->direction, t->rule->param, tmp, t->count);
    fs__free(tmp);
    return st;
}

/* Validates the whole file; with `model` or `tree` (created from this very file's
 * configuration, after a walk without one verified every checksum) copies every
 * tensor into it, checking everything again but the checksums. tree_cfg (may be
 * NULL) receives a tree network's configuration. */
static fs_status walk(const void *data, size_t size, fs_model_desc *desc, fs_tree_config *tree_cfg, fs_rnn *model,
                      fs_tree *tree) {
    fsq_file f;
    memset(&f, 0, sizeof f);
    fs_status st = parse_header(data, size, &f);
    if (st != FS_OK) return st;
    const fsq_kind *kind = NULL;
    fsq_parsed parsed;
    memset(&parsed, 0, sizeof parsed);
    unsigned char seen[FSQ_MAX_SLOTS / 8];
    uint64_t expected = 0, params = 0;
    uint32_t tensors = 0;
    size_t at = FSQ_HEADER_BYTES;
    for (uint32_t i = 0; i < f.sections; i++) {
        fsq_section s;
        memset(&s, 0, sizeof s);
        if ((st = parse_section(&f, i, at, model == NULL && tree == NULL, &s)) != FS_OK) return st;
        at = s.payload + s.length;
        if (i == 0 && s.type != FSQ_SEC_CONFIG)
            return fs__fail(FS_ERR_FORMAT, "section 0 at offset %zu: expected the config section (type 1), got type %u",
                            s.at, (unsigned)s.type);
        if (s.type == FSQ_SEC_CONFIG) {
            if (i != 0) return fs__fail(FS_ERR_FORMAT, "section %u at offset %zu: a second config section", (unsigned)i, s.at);
            if ((st = parse_config(&f, &s, &kind, &parsed)) != FS_OK) return st;
            memset(seen, 0, sizeof seen);
            if (kind->mask & K_TREE) { /* its four tensors; sizes: checked against their sections */
                expected = FS_TREE_PARAM_COUNT;
                continue;
            }
            if (parsed.cfg.dtype != FS_DTYPE_F32 && f.version < 3)
                return fs__fail(FS_ERR_FORMAT, "config section at offset %zu: a %s layer needs format version 3, the file is version %u",
                                s.at, fs_dtype_name((fs_dtype)parsed.cfg.dtype), (unsigned)f.version);
            const uint64_t units = (uint64_t)parsed.cfg.num_layers * (parsed.cfg.bidirectional ? 2u : 1u);
            size_t per_unit = 0;
            for (size_t r = 0; r < N_TENSOR_RULES; r++) per_unit += rule_applies(&TENSORS[r], kind, &parsed);
            expected = units * per_unit;
            if (expected > FSQ_MAX_TENSORS || units * N_TENSOR_RULES > FSQ_MAX_SLOTS)
                return fs__fail(FS_ERR_FORMAT, "config: num_layers %d gives %llu tensors, more than a .fsq file may hold (%d)",
                                (int)parsed.cfg.num_layers, (unsigned long long)expected, FSQ_MAX_TENSORS);
            if (expected > (uint64_t)f.sections - 1)
                return fs__fail(FS_ERR_FORMAT, "the file has %u tensor sections, a %s with num_layers %d, bidirectional %d, bias %d has %llu",
                                (unsigned)f.sections - 1, kind->name, (int)parsed.cfg.num_layers,
                                (int)parsed.cfg.bidirectional, (int)parsed.cfg.bias, (unsigned long long)expected);
            /* the rest as fs_rnn_create would check it (bounded: the layer count is small now) */
            size_t bytes;
            if ((st = fs_rnn_memory_size(&parsed.cfg, &bytes)) != FS_OK) {
                char detail[256];
                snprintf(detail, sizeof detail, "%s", fs_last_error());
                return fs__fail(FS_ERR_FORMAT, "config section at offset %zu: invalid configuration: %s", s.at, detail);
            }
        } else if (s.type == FSQ_SEC_TENSOR && (kind->mask & K_TREE)) {
            fsq_raw_tensor t;
            int which = 0;
            if ((st = parse_tree_tensor(&f, &s, kind, &parsed.tree, &which, &t)) != FS_OK) return st;
            if (seen[0] & (1u << which))
                return fs__fail(FS_ERR_FORMAT, "tensor section %u at offset %zu: %s appears twice", (unsigned)i, s.at,
                                TREE_TENSORS[which]);
            seen[0] |= (unsigned char)(1u << which);
            tensors++;
            params += t.count;
            if (tree && (st = set_tree_tensor(tree, which, &t)) != FS_OK) return st;
        } else if (s.type == FSQ_SEC_TENSOR) {
            fsq_tensor t;
            memset(&t, 0, sizeof t);
            if ((st = parse_tensor(&f, &s, kind, &parsed, &t)) != FS_OK) return st;
            if (seen[t.slot / 8] & (1u << (t.slot % 8)))
                return fs__fail(FS_ERR_FORMAT, "tensor section %u at offset %zu: %s_l%d%s appears twice", (unsigned)i,
                                s.at, t.rule->prefix, (int)t.layer, t.direction ? "_reverse" : "");
            seen[t.slot / 8] |= (unsigned char)(1u << (t.slot % 8));
            tensors++;
            params += t.count;
            if (model && (st = set_tensor(model, &t)) != FS_OK) return st;
        } else if (s.type >= FSQ_SEC_HEAD && s.type <= FSQ_SEC_METADATA && s.flags != FSQ_FLAG_OPTIONAL) {
            return fs__fail(FS_ERR_FORMAT, "section %u (%s) at offset %zu: flags must be %d (optional), got %u",
                            (unsigned)i, section_name(s.type), s.at, FSQ_FLAG_OPTIONAL, (unsigned)s.flags);
        } else if (!(s.flags & FSQ_FLAG_OPTIONAL)) {
            return fs__fail(FS_ERR_UNSUPPORTED, "section %u at offset %zu: type %u is not known to this fastseq and not marked optional; "
                            "the file may come from a newer version", (unsigned)i, s.at, (unsigned)s.type);
        }
    }
    if (at != f.size)
        return fs__fail(FS_ERR_FORMAT, "%zu bytes after the last section (offset %zu) are not part of any section",
                        f.size - at, at);
    if (tensors != expected) /* optional sections took the place of tensors */
        return fs__fail(FS_ERR_FORMAT, "the file has %u tensors, a %s with this configuration has %llu", (unsigned)tensors,
                        kind->name, (unsigned long long)expected);
    if (desc) {
        memset(desc, 0, sizeof *desc);
        desc->format_version = f.version;
        const int is_tree = (kind->mask & K_TREE) != 0;
        snprintf(desc->kind, sizeof desc->kind, "%s", is_tree ? kind->name : fs_cell_name(parsed.cfg.cell));
        desc->model_type = is_tree ? FS_MODEL_TREE : FS_MODEL_RNN;
        desc->config = parsed.cfg;
        desc->batch_first = parsed.batch_first;
        desc->tensor_count = tensors;
        desc->param_count = params;
    }
    if (tree_cfg) *tree_cfg = parsed.tree;
    return FS_OK;
}

/* ---- optional sections: output head, metadata ------------------------------ */

/* Calls visit(ctx, section) for every section after the config, in file order,
 * on a file walk has validated. Stops at the first error. */
typedef fs_status (*section_fn)(void *ctx, const fsq_file *f, const fsq_section *s);

static fs_status each_section(const void *data, size_t size, section_fn visit, void *ctx) {
    fsq_file f;
    fs_status st = parse_header(data, size, &f);
    if (st != FS_OK) return st;
    size_t at = FSQ_HEADER_BYTES;
    for (uint32_t i = 0; i < f.sections; i++) {
        fsq_section s;
        locate_section(&f, i, at, &s); /* bounds and checksum verified by walk */
        at = s.payload + s.length;
        if (i > 0 && (st = visit(ctx, &f, &s)) != FS_OK) return st;
    }
    return FS_OK;
}

/* One (key, typed value) entry of a head or metadata payload. */
static fs_status read_entry(cursor *c, const fsq_section *s, uint32_t e, fs_model_entry *out) {
    fsq_str key, sval;
    uint32_t type, raw;
    const unsigned char *p;
    memset(out, 0, sizeof *out);
    if (!rd_str(c, FSQ_MAX_NAME, &key) || !valid_name(key) || !rd_u32(c, &type))
        return fs__fail(FS_ERR_FORMAT, "%s section at offset %zu: entry %u: key truncated or malformed",
                        section_name(s->type), s->at, (unsigned)e);
    memcpy(out->key, key.s, key.n);
    out->type = (int32_t)type;
    int ok = 1;
    switch (type) {
    case FS_VALUE_INT32:
        if ((ok = rd_u32(c, &raw))) out->i = raw <= (uint32_t)INT32_MAX ? (int32_t)raw : -(int32_t)(~raw) - 1;
        break;
    case FS_VALUE_FLOAT32:
        if ((ok = rd_u32(c, &raw))) {
            float v;
            memcpy(&v, &raw, 4);
            out->f = v;
        }
        break;
    case FS_VALUE_FLOAT64:
        if ((ok = take(c, 8, &p))) {
            const uint64_t bits = le64(p);
            memcpy(&out->f, &bits, 8);
        }
        break;
    case FS_VALUE_STRING:
        if ((ok = rd_str(c, FSQ_MAX_STRING, &sval))) memcpy(out->s, sval.s, sval.n);
        break;
    case FS_VALUE_NONE: break;
    default: ok = 0;
    }
    if (!ok)
        return fs__fail(FS_ERR_FORMAT, "%s section at offset %zu: entry '%s': value type %u unknown or value truncated",
                        section_name(s->type), s->at, out->key, (unsigned)type);
    return FS_OK;
}

/* The u32 count and entries of a payload from c's position to its end; keys
 * unique. entries (capacity cap) may be NULL: count only. */
static fs_status read_entries(cursor *c, const fsq_section *s, fs_model_entry *entries, size_t cap,
                              size_t *count_out) {
    uint32_t n;
    fs_model_entry seen[FSQ_MAX_ENTRIES];
    if (!rd_u32(c, &n) || n > FSQ_MAX_ENTRIES)
        return fs__fail(FS_ERR_FORMAT, "%s section at offset %zu: entry count missing or above %d",
                        section_name(s->type), s->at, FSQ_MAX_ENTRIES);
    for (uint32_t e = 0; e < n; e++) {
        fs_status st = read_entry(c, s, e, &seen[e]);
        if (st != FS_OK) return st;
        for (uint32_t k = 0; k < e; k++)
            if (strcmp(seen[k].key, seen[e].key) == 0)
                return fs__fail(FS_ERR_FORMAT, "%s section at offset %zu: key '%s' appears twice",
                                section_name(s->type), s->at, seen[e].key);
    }
    if (c->at != c->end)
        return fs__fail(FS_ERR_FORMAT, "%s section at offset %zu: %zu unexpected bytes after the last entry",
                        section_name(s->type), s->at, c->end - c->at);
    if (entries && cap < n)
        return fs__fail(FS_ERR_SHAPE, "entries: room for %zu, the file has %u", cap, (unsigned)n);
    if (entries) memcpy(entries, seen, n * sizeof *entries);
    *count_out = n;
    return FS_OK;
}

typedef struct metadata_ctx {
    fs_model_entry *entries;
    size_t cap, count;
    int found;
} metadata_ctx;

static fs_status visit_metadata(void *ctx, const fsq_file *f, const fsq_section *s) {
    metadata_ctx *m = ctx;
    if (s->type != FSQ_SEC_METADATA) return FS_OK;
    if (m->found++)
        return fs__fail(FS_ERR_FORMAT, "section %u (metadata) at offset %zu: a second metadata section",
                        (unsigned)s->index, s->at);
    cursor c = {f->data + s->payload, s->length, 0};
    return read_entries(&c, s, m->entries, m->cap, &m->count);
}

/* What the head's sections say, checked against the model's output. */
typedef struct head_ctx {
    int64_t features; /* the model's output features: a layer's D*R, a tree's hidden_size */
    int tree;         /* a tree network: its head acts on each root's h (PerStepLinear) */
    fs_model_head_desc *desc;
    fsq_raw_tensor weight, bias;
    int heads, has_weight, has_bias;
} head_ctx;

static fs_status visit_head(void *ctx, const fsq_file *f, const fsq_section *s) {
    head_ctx *h = ctx;
    fs_status st;
    if (s->type == FSQ_SEC_HEAD) {
        cursor c = {f->data + s->payload, s->length, 0};
        fsq_str kind;
        fs_model_entry entries[FSQ_MAX_ENTRIES];
        size_t n = 0;
        if (h->heads++)
            return fs__fail(FS_ERR_FORMAT, "section %u (head) at offset %zu: a second head section",
                            (unsigned)s->index, s->at);
        if (!rd_str(&c, FSQ_MAX_NAME, &kind) || !valid_name(kind))
            return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: the head kind is missing or malformed", s->at);
        if (!str_is(kind, "PerStepLinear") && !str_is(kind, "LastStepLinear"))
            return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: kind '%.*s' is not known to this fastseq "
                            "(it knows PerStepLinear, LastStepLinear); the file may come from a newer version",
                            s->at, (int)(kind.n > 32 ? 32 : kind.n), kind.s);
        if (h->tree && !str_is(kind, "PerStepLinear"))
            return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: a tree network's head is PerStepLinear "
                            "(on each root's h), got '%.*s'", s->at, (int)kind.n, kind.s);
        memcpy(h->desc->kind, kind.s, kind.n);
        if ((st = read_entries(&c, s, entries, FSQ_MAX_ENTRIES, &n)) != FS_OK) return st;
        int32_t *fields[] = {&h->desc->in_features, &h->desc->out_features, &h->desc->bias};
        const char *names[] = {"in_features", "out_features", "bias"};
        h->desc->bias = 1;
        for (size_t e = 0; e < n; e++) {
            size_t k = 0;
            while (k < 3 && strcmp(entries[e].key, names[k]) != 0) k++;
            if (k == 3)
                return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: unknown config key '%s'", s->at,
                                entries[e].key);
            const int32_t v = entries[e].i, lo = k < 2 ? 1 : 0, hi = k < 2 ? INT32_MAX : 1;
            if (entries[e].type != FS_VALUE_INT32 || v < lo || v > hi)
                return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: %s: expected an int32 in %d..%d",
                                s->at, names[k], (int)lo, (int)hi);
            *fields[k] = v;
        }
        if (h->desc->in_features < 1 || h->desc->out_features < 1)
            return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: in_features and out_features are required",
                            s->at);
        if (h->desc->in_features != h->features)
            return fs__fail(FS_ERR_FORMAT, "head section at offset %zu: in_features %d does not match the %s's "
                            "%lld output features", s->at, (int)h->desc->in_features, h->tree ? "tree" : "layer",
                            (long long)h->features);
    } else if (s->type == FSQ_SEC_HEAD_TENSOR) {
        fsq_raw_tensor t;
        if (!h->heads)
            return fs__fail(FS_ERR_FORMAT, "section %u (head tensor) at offset %zu: a head tensor before the head section",
                            (unsigned)s->index, s->at);
        if ((st = read_tensor(f, s, NULL, &t)) != FS_OK) return st;
        const int is_w = str_is(t.name, "weight"), is_b = str_is(t.name, "bias");
        const int64_t in = h->desc->in_features, out = h->desc->out_features;
        if ((!is_w && !is_b) || (is_b && !h->desc->bias))
            return fs__fail(FS_ERR_FORMAT, "head: unexpected tensor '%.*s' (a %s with bias=%d has weight%s)",
                            (int)t.name.n, t.name.s, h->desc->kind, (int)h->desc->bias,
                            h->desc->bias ? ", bias" : "");
        if ((is_w && h->has_weight++) || (is_b && h->has_bias++))
            return fs__fail(FS_ERR_FORMAT, "head: tensor '%.*s' appears twice", (int)t.name.n, t.name.s);
        if (is_w ? t.ndim != 2 || t.dims[0] != (uint64_t)out || t.dims[1] != (uint64_t)in
                 : t.ndim != 1 || t.dims[0] != (uint64_t)out) {
            char got[64];
            shape_text(&t, got, sizeof got);
            if (is_w)
                return fs__fail(FS_ERR_FORMAT, "head: tensor 'weight': expected shape [%lld, %lld], got %s",
                                (long long)out, (long long)in, got);
            return fs__fail(FS_ERR_FORMAT, "head: tensor 'bias': expected shape [%lld], got %s", (long long)out, got);
        }
        *(is_w ? &h->weight : &h->bias) = t;
    }
    return FS_OK;
}

/* ---- public API ------------------------------------------------------------ */

fs_status fs_model_inspect(const void *data, size_t size, fs_model_desc *desc_out) {
    fs__clear_error();
    if (!desc_out) return fs__fail(FS_ERR_NULL_ARG, "desc_out must not be NULL");
    return walk(data, size, desc_out, NULL, NULL, NULL);
}

fs_status fs_model_load(const void *data, size_t size, fs_rnn **out) {
    fs_model_desc desc;
    fs__clear_error();
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    fs_status st = walk(data, size, &desc, NULL, NULL, NULL);
    if (st != FS_OK) return st;
    if (desc.model_type == FS_MODEL_TREE)
        return fs__fail(FS_ERR_UNSUPPORTED, "the file holds a tree network (%s), not a sequence layer: load it with "
                        "fs_tree_load", desc.kind);
    fs_rnn *model = NULL;
    if ((st = fs_rnn_create(&desc.config, &model)) != FS_OK) return st;
    if ((st = walk(data, size, NULL, NULL, model, NULL)) != FS_OK) {
        fs_rnn_free(model);
        return st;
    }
    *out = model;
    return FS_OK;
}

fs_status fs_model_head(const void *data, size_t size, fs_model_head_desc *desc_out, float *weight,
                        size_t weight_count, float *bias, size_t bias_count) {
    fs_model_desc model;
    fs_tree_config tree;
    fs__clear_error();
    if (!desc_out) return fs__fail(FS_ERR_NULL_ARG, "desc_out must not be NULL");
    fs_status st = walk(data, size, &model, &tree, NULL, NULL);
    if (st != FS_OK) return st;
    fs_model_head_desc desc;
    memset(&desc, 0, sizeof desc);
    head_ctx h;
    memset(&h, 0, sizeof h);
    h.tree = model.model_type == FS_MODEL_TREE;
    const fs_rnn_config *c = &model.config;
    h.features = h.tree ? tree.hidden_size
                        : (c->bidirectional ? 2 : 1) * (int64_t)(c->proj_size ? c->proj_size : c->hidden_size);
    h.desc = &desc;
    if ((st = each_section(data, size, visit_head, &h)) != FS_OK) return st;
    if (h.heads && !h.has_weight) return fs__fail(FS_ERR_FORMAT, "head: tensor 'weight' is missing");
    if (h.heads && desc.bias && !h.has_bias) return fs__fail(FS_ERR_FORMAT, "head: tensor 'bias' is missing");
    const size_t nw = h.weight.count, nb = h.has_bias ? h.bias.count : 0;
    if (weight && weight_count != nw)
        return fs__fail(FS_ERR_SHAPE, "weight: expected %zu elements (out_features x in_features), got %zu", nw,
                        weight_count);
    if (bias && bias_count != nb)
        return fs__fail(FS_ERR_SHAPE, "bias: expected %zu elements (out_features, or 0 without a bias), got %zu",
                        nb, bias_count);
    if (weight && nw) copy_floats(h.weight.data, nw, weight);
    if (bias && nb) copy_floats(h.bias.data, nb, bias);
    *desc_out = desc;
    return FS_OK;
}

fs_status fs_model_metadata(const void *data, size_t size, fs_model_entry *entries, size_t capacity,
                            size_t *count_out) {
    fs__clear_error();
    if (!count_out) return fs__fail(FS_ERR_NULL_ARG, "count_out must not be NULL");
    metadata_ctx m = {entries, capacity, 0, 0};
    fs_status st = walk(data, size, NULL, NULL, NULL, NULL);
    if (st == FS_OK) st = each_section(data, size, visit_metadata, &m);
    if (st == FS_OK) *count_out = m.count;
    return st;
}

fs_status fs_model_read_file(const char *path, void **data_out, size_t *size_out) {
    fs__clear_error();
    if (!path || !data_out || !size_out) return fs__fail(FS_ERR_NULL_ARG, "path, data_out and size_out must not be NULL");
    *data_out = NULL;
    *size_out = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fs__fail(FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[FSQ_HEADER_BYTES], *buf = NULL;
    uint64_t want = 0;
    uint32_t sections = 0, version = 0;
    size_t len = fread(head, 1, sizeof head, fp);
    fs_status st = ferror(fp) ? fs__fail(FS_ERR_IO, "%s: read error in the header", path)
                              : check_header(head, len, &want, &sections, &version);
    /* the header states the size: read no more than that and one byte (trailing bytes
     * are an error fs_model_load reports); a shorter file is truncated */
    if (st == FS_OK && want > (uint64_t)SIZE_MAX - 1)
        st = fs__fail(FS_ERR_FORMAT, "the header says %llu bytes: more than this machine can address",
                      (unsigned long long)want);
    const size_t cap = st == FS_OK ? (size_t)want + 1 : 0; /* > len: the header is at most its 32 bytes */
    size_t room = 0;
    while (st == FS_OK) {
        if (len == room || !buf) { /* grow by doubling, from 64 KiB, up to cap */
            size_t grown = room ? room * 2 : (size_t)1 << 16;
            if (grown > cap || grown < room) grown = cap;
            unsigned char *nb = realloc(buf, grown);
            if (!nb) {
                st = fs__fail(FS_ERR_NOMEM, "%s: out of memory reading the file (%zu bytes so far)", path, len);
                break;
            }
            if (!buf) memcpy(nb, head, len);
            buf = nb;
            room = grown;
        }
        const size_t got = fread(buf + len, 1, room - len, fp);
        len += got;
        if (ferror(fp)) st = fs__fail(FS_ERR_IO, "%s: read error after %zu bytes", path, len);
        else if (got == 0 || len == cap) break;
    }
    fclose(fp);
    if (st == FS_OK && (uint64_t)len < want)
        st = fs__fail(FS_ERR_FORMAT, "truncated: the header says %llu bytes, got %zu", (unsigned long long)want, len);
    if (st != FS_OK) {
        free(buf);
        if (st != FS_ERR_NOMEM && strncmp(fs_last_error(), path, strlen(path)) != 0) {
            char detail[400];
            snprintf(detail, sizeof detail, "%s", fs_last_error());
            fs__fail(st, "%s: %s", path, detail);
        }
        return st;
    }
    *data_out = buf;
    *size_out = len;
    return FS_OK;
}

void fs_model_data_free(void *data) { free(data); }

/* Loads the file at `path` with `load` (into *out); error details start with the path. */
static fs_status load_file(const char *path, fs_status (*load)(const void *, size_t, void *), void *out) {
    void *data = NULL;
    size_t size = 0;
    fs_status st = fs_model_read_file(path, &data, &size);
    if (st != FS_OK) return st;
    st = load(data, size, out);
    if (st != FS_OK && st != FS_ERR_NOMEM) {
        char detail[400];
        snprintf(detail, sizeof detail, "%s", fs_last_error());
        fs__fail(st, "%s: %s", path, detail);
    }
    free(data);
    return st;
}

static fs_status load_rnn(const void *data, size_t size, void *out) { return fs_model_load(data, size, out); }

fs_status fs_model_load_file(const char *path, fs_rnn **out) {
    fs__clear_error();
    if (!path || !out) return fs__fail(FS_ERR_NULL_ARG, "path and out must not be NULL");
    *out = NULL;
    return load_file(path, load_rnn, out);
}

/* ---- tree networks ----------------------------------------------------------- */

fs_status fs_tree_inspect(const void *data, size_t size, fs_tree_config *config_out) {
    fs_model_desc desc;
    fs_tree_config cfg;
    fs__clear_error();
    if (!config_out) return fs__fail(FS_ERR_NULL_ARG, "config_out must not be NULL");
    fs_status st = walk(data, size, &desc, &cfg, NULL, NULL);
    if (st != FS_OK) return st;
    if (desc.model_type != FS_MODEL_TREE)
        return fs__fail(FS_ERR_UNSUPPORTED, "the file holds a sequence layer (%s), not a tree network: load it with "
                        "fs_model_load", desc.kind);
    *config_out = cfg;
    return FS_OK;
}

fs_status fs_tree_load(const void *data, size_t size, fs_tree **out) {
    fs_tree_config cfg;
    fs__clear_error();
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    *out = NULL;
    fs_status st = fs_tree_inspect(data, size, &cfg);
    if (st != FS_OK) return st;
    fs_tree *tree = NULL;
    if ((st = fs_tree_create(&cfg, &tree)) != FS_OK) return st;
    if ((st = walk(data, size, NULL, NULL, NULL, tree)) != FS_OK) {
        fs_tree_free(tree);
        return st;
    }
    *out = tree;
    return FS_OK;
}

static fs_status load_tree(const void *data, size_t size, void *out) { return fs_tree_load(data, size, out); }

fs_status fs_tree_load_file(const char *path, fs_tree **out) {
    fs__clear_error();
    if (!path || !out) return fs__fail(FS_ERR_NULL_ARG, "path and out must not be NULL");
    *out = NULL;
    return load_file(path, load_tree, out);
}
