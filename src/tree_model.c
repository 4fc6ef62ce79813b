/* fs_tree: configuration checks, parameters, and the packed forms of the
 * weights each product reads (tree.h). */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tree.h"

/* w [rows][k] as the gemm's B for y = a w^T: out[(jb*k + kk)*32 + l] = w[jb*32 + l][kk]. */
static void pack_rows(const float *w, size_t rows, size_t k, float *out) {
    for (size_t jb = 0; jb < fs__tree_pad(rows) / FS_TREE_NB; jb++)
        for (size_t kk = 0; kk < k; kk++)
            for (size_t l = 0; l < FS_TREE_NB; l++) {
                const size_t r = jb * FS_TREE_NB + l;
                out[(jb * k + kk) * FS_TREE_NB + l] = r < rows ? w[r * k + kk] : 0.0f;
            }
}

/* w [rows][cols] as the gemm's B for y = a w (k = rows): out[(jb*rows + r)*32 + l] = w[r][jb*32 + l]. */
static void pack_cols(const float *w, size_t rows, size_t cols, float *out) {
    for (size_t jb = 0; jb < fs__tree_pad(cols) / FS_TREE_NB; jb++)
        for (size_t r = 0; r < rows; r++)
            for (size_t l = 0; l < FS_TREE_NB; l++) {
                const size_t q = jb * FS_TREE_NB + l;
                out[(jb * rows + r) * FS_TREE_NB + l] = q < cols ? w[r * cols + q] : 0.0f;
            }
}

static fs_status check_config(const fs_tree_config *c) {
    if (c->kind < FS_TREE_CHILD_SUM || c->kind > FS_TREE_RECURSIVE)
        return fs__fail(FS_ERR_INVALID_ARG, "kind: expected 0 (child_sum), 1 (nary) or 2 (recursive), got %d",
                        (int)c->kind);
    if (c->input_size < 1 || c->hidden_size < 1)
        return fs__fail(FS_ERR_INVALID_ARG, "input_size, hidden_size: expected >= 1, got %d, %d",
                        (int)c->input_size, (int)c->hidden_size);
    if (c->kind == FS_TREE_CHILD_SUM && c->arity != 0)
        return fs__fail(FS_ERR_INVALID_ARG, "arity: a child-sum tree takes any number of children "
                        "(expected 0), got %d", (int)c->arity);
    if (c->kind != FS_TREE_CHILD_SUM && (c->arity < 1 || c->arity > 64))
        return fs__fail(FS_ERR_INVALID_ARG, "arity: expected 1 to 64, got %d", (int)c->arity);
    if (c->relu != 0 && c->relu != 1)
        return fs__fail(FS_ERR_INVALID_ARG, "relu: expected 0 or 1, got %d", (int)c->relu);
    if (c->relu && c->kind != FS_TREE_RECURSIVE)
        return fs__fail(FS_ERR_INVALID_ARG, "relu: only a recursive network (kind 2) has a choice of activation");
    return FS_OK;
}

static void param_dims(const fs_tree *m, fs_tree_param p, size_t *rows, size_t *cols) {
    *rows = m->GH;
    *cols = p == FS_TREE_WEIGHT_IH ? m->I : p == FS_TREE_WEIGHT_HH ? m->K : 1;
}

fs_status fs_tree_create(const fs_tree_config *config, fs_tree **out) {
    fs__clear_error();
    if (!config || !out) return fs__fail(FS_ERR_NULL_ARG, "config and out must not be NULL");
    *out = NULL;
    fs_status st = check_config(config);
    if (st != FS_OK) return st;
    fs_tree *m = fs__alloc(sizeof *m); /* the library's allocator: none (NULL) on bare metal */
    if (!m) return fs__fail(FS_ERR_NOMEM, "out of memory for the tree model");
    memset(m, 0, sizeof *m);
    m->cfg = *config;
    m->I = (size_t)config->input_size;
    m->H = (size_t)config->hidden_size;
    const size_t arity = (size_t)config->arity;
    m->G = config->kind == FS_TREE_CHILD_SUM ? 4 : config->kind == FS_TREE_NARY ? arity + 3 : 1;
    m->K = config->kind == FS_TREE_CHILD_SUM ? m->H : arity * m->H;
    m->GH = m->G * m->H;
    const size_t GHp = fs__tree_pad(m->GH), Hp = fs__tree_pad(m->H);
    /* floats of each array: a * b (hidden sizes fit size_t: int32 times arity <= 67) */
    const size_t sizes[][2] = {{m->GH, m->I}, {m->GH, m->K}, {m->GH, 1}, {m->GH, 1}, {GHp, 1},
                               {GHp, m->I}, {GHp, m->K}, {fs__tree_pad(m->I), m->GH},
                               {fs__tree_pad(m->K), m->GH}, {Hp, m->H}, {Hp, m->H}};
    float **dst[] = {&m->raw[0], &m->raw[1], &m->raw[2], &m->raw[3], &m->bias, &m->wih_p, &m->whh_p,
                     &m->wih_t, &m->whh_t, &m->uf_p, &m->uf_t};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const int cs_only = dst[i] == &m->uf_p || dst[i] == &m->uf_t;
        if (cs_only && config->kind != FS_TREE_CHILD_SUM) continue;
        size_t floats = 0, bytes = 0;
        if (!fs__mul(sizes[i][0], sizes[i][1], &floats) || !fs__mul(floats, sizeof(float), &bytes) ||
            !(*dst[i] = fs__alloc(bytes))) {
            fs_tree_free(m);
            return fs__fail(FS_ERR_NOMEM, "out of memory for the tree model's weights (%zu x %zu floats)",
                            sizes[i][0], sizes[i][1]);
        }
        memset(*dst[i], 0, bytes);
    }
    *out = m;
    return FS_OK;
}

void fs_tree_free(fs_tree *m) {
    if (!m) return;
    for (int p = 0; p < FS_TREE_PARAM_COUNT; p++) fs__free(m->raw[p]);
    fs__free(m->bias);
    fs__free(m->wih_p);
    fs__free(m->whh_p);
    fs__free(m->wih_t);
    fs__free(m->whh_t);
    fs__free(m->uf_p);
    fs__free(m->uf_t);
    fs__free(m);
}

static fs_status check_param(const fs_tree *m, fs_tree_param p) {
    if (!m) return fs__fail(FS_ERR_NULL_ARG, "model must not be NULL");
    if ((int)p < 0 || p >= FS_TREE_PARAM_COUNT)
        return fs__fail(FS_ERR_INVALID_ARG, "param: expected 0 to %d, got %d", FS_TREE_PARAM_COUNT - 1, (int)p);
    return FS_OK;
}

fs_status fs_tree_param_shape(const fs_tree *m, fs_tree_param p, int64_t *rows_out, int64_t *cols_out) {
    fs__clear_error();
    fs_status st = check_param(m, p);
    if (st != FS_OK) return st;
    if (!rows_out || !cols_out) return fs__fail(FS_ERR_NULL_ARG, "rows_out and cols_out must not be NULL");
    size_t r, c;
    param_dims(m, p, &r, &c);
    *rows_out = (int64_t)r;
    *cols_out = (int64_t)c;
    return FS_OK;
}

/* Rebuilds the packed forms that read parameter p. */
static void repack(fs_tree *m, fs_tree_param p) {
    const size_t H = m->H, GH = m->GH;
    if (p == FS_TREE_WEIGHT_IH) {
        pack_rows(m->raw[p], GH, m->I, m->wih_p);
        pack_cols(m->raw[p], GH, m->I, m->wih_t);
    } else if (p == FS_TREE_WEIGHT_HH) {
        const float *u = m->raw[p];
        pack_rows(u, GH, m->K, m->whh_p);
        pack_cols(u, GH, m->K, m->whh_t);
        if (m->cfg.kind == FS_TREE_CHILD_SUM) {
            /* the forget rows act per child (uf_*), not on the children's sum */
            for (size_t r = H; r < 2 * H; r++)
                for (size_t jb = 0; jb < fs__tree_pad(m->K) / FS_TREE_NB; jb++)
                    memset(m->whh_t + (jb * GH + r) * FS_TREE_NB, 0, FS_TREE_NB * sizeof(float));
            pack_rows(u + H * H, H, H, m->uf_p);
            pack_cols(u + H * H, H, H, m->uf_t);
        }
    } else {
        for (size_t r = 0; r < GH; r++) m->bias[r] = m->raw[FS_TREE_BIAS_IH][r] + m->raw[FS_TREE_BIAS_HH][r];
    }
}

fs_status fs_tree_set_param(fs_tree *m, fs_tree_param p, const float *data, size_t count) {
    fs__clear_error();
    fs_status st = check_param(m, p);
    if (st != FS_OK) return st;
    if (!data) return fs__fail(FS_ERR_NULL_ARG, "data must not be NULL");
    size_t r, c;
    param_dims(m, p, &r, &c);
    if (count != r * c)
        return fs__fail(FS_ERR_SHAPE, "data: expected %zu elements (%zu x %zu), got %zu", r * c, r, c, count);
    memcpy(m->raw[p], data, count * sizeof(float));
    repack(m, p);
    return FS_OK;
}

fs_status fs_tree_get_param(const fs_tree *m, fs_tree_param p, float *out, size_t count) {
    fs__clear_error();
    fs_status st = check_param(m, p);
    if (st != FS_OK) return st;
    if (!out) return fs__fail(FS_ERR_NULL_ARG, "out must not be NULL");
    size_t r, c;
    param_dims(m, p, &r, &c);
    if (count != r * c)
        return fs__fail(FS_ERR_SHAPE, "out: expected %zu elements (%zu x %zu), got %zu", r * c, r, c, count);
    memcpy(out, m->raw[p], count * sizeof(float));
    return FS_OK;
}
