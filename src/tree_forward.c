/* Tree forward: the input part of every node's gates in one product over all
 * nodes (hoisted, like a sequence's input projection), then per level one
 * product over the level's gathered recurrent inputs and the cell update.
 * A level's rows are split over threads; each row's sums run the same way on
 * any split (kernels.h), so results are the same bits for any thread count. */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "threads.h"
#include "tree.h"

typedef struct run {
    const fs_tree *m;
    const fs_kernels *k;
    const fs_tree_forest *f;
    const fs_tree_layout *lay;
    const float *x;
    float *ws;
    int train;
} run;

/* The recurrent input of node v: the children's h summed in id order
 * (child-sum) or [h_1; ...; h_arity] with absent children as zeros. */
static void gather_input(const run *r, int32_t v, float *dst) {
    const fs_tree *m = r->m;
    const float *h = r->ws + r->lay->h_off;
    const int32_t *ch = r->f->children + r->f->child_start[v];
    const int32_t nc = r->f->child_start[v + 1] - r->f->child_start[v];
    const size_t H = m->H;
    memset(dst, 0, m->K * sizeof(float));
    if (m->cfg.kind == FS_TREE_CHILD_SUM) {
        for (int32_t c = 0; c < nc; c++)
            for (size_t j = 0; j < H; j++) dst[j] += h[(size_t)ch[c] * H + j];
    } else {
        for (int32_t c = 0; c < nc; c++) memcpy(dst + (size_t)c * H, h + (size_t)ch[c] * H, H * sizeof(float));
    }
}

/* Cell update of node v from its gate pre-activations `pre` ([GH], also
 * scratch); writes h (hrow), c, and the activations over gx's row (child-sum:
 * each child's forget gate into the child's f slot, which the child no longer needs). */
static void cell(const run *r, int32_t v, float *pre, float *hrow) {
    const fs_tree *m = r->m;
    const fs_kernels *k = r->k;
    const size_t H = m->H, GHp = fs__tree_pad(m->GH);
    float *gx = r->ws + r->lay->gx_off, *act = gx + (size_t)v * GHp;
    const int32_t *ch = r->f->children + r->f->child_start[v];
    const int32_t nc = r->f->child_start[v + 1] - r->f->child_start[v];
    if (m->cfg.kind == FS_TREE_RECURSIVE) {
        if (m->cfg.relu)
            for (size_t j = 0; j < H; j++) hrow[j] = pre[j] > 0.0f ? pre[j] : 0.0f;
        else
            k->vact(H, FS_ACT_TANH, pre, hrow);
        return;
    }
    float *c = r->ws + r->lay->c_off, *cv = c + (size_t)v * H;
    const size_t gi = 0, gg = (m->G - 2) * H, go = (m->G - 1) * H;
    k->vact(H, FS_ACT_SIGMOID, pre + gi, act + gi);
    k->vact(H, FS_ACT_TANH, pre + gg, act + gg);
    k->vact(H, FS_ACT_SIGMOID, pre + go, act + go);
    for (size_t j = 0; j < H; j++) cv[j] = act[gi + j] * act[gg + j];
    if (m->cfg.kind == FS_TREE_CHILD_SUM) {
        const float *uf = r->ws + r->lay->uf_off;
        const size_t Hp = fs__tree_pad(H);
        float *fpre = pre + H; /* the f slot of pre is not used by child-sum */
        for (int32_t q = 0; q < nc; q++) {
            float *fk = gx + (size_t)ch[q] * GHp + H;
            const float *ufk = uf + (size_t)ch[q] * Hp, *ck = c + (size_t)ch[q] * H;
            for (size_t j = 0; j < H; j++) fpre[j] = act[H + j] + ufk[j]; /* act's f slot: still W_f x + b_f */
            k->vact(H, FS_ACT_SIGMOID, fpre, fk);
            for (size_t j = 0; j < H; j++) cv[j] += fk[j] * ck[j];
        }
    } else {
        k->vact((size_t)m->cfg.arity * H, FS_ACT_SIGMOID, pre + H, act + H);
        for (int32_t q = 0; q < nc; q++) {
            const float *ck = c + (size_t)ch[q] * H;
            for (size_t j = 0; j < H; j++) cv[j] += act[(1 + (size_t)q) * H + j] * ck[j];
        }
    }
    k->vact(H, FS_ACT_TANH, cv, hrow);
    for (size_t j = 0; j < H; j++) hrow[j] *= act[go + j];
}

/* Rows [lo, hi) of one level, in tiles. Level 0 holds exactly the leaves:
 * no recurrent input, no product. */
static void level_rows(const run *r, size_t lo, size_t hi, int leaves, float *tile) {
    const fs_tree *m = r->m;
    const size_t H = m->H, K = m->K, GHp = fs__tree_pad(m->GH), Hp = fs__tree_pad(H);
    const size_t wide = r->lay->tile_wide;
    float *in = tile, *acc = in + FS_TREE_TILE * wide, *ht = acc + FS_TREE_TILE * wide, *uft = ht + FS_TREE_TILE * Hp;
    float *gx = r->ws + r->lay->gx_off, *h = r->ws + r->lay->h_off;
    const int32_t *order = r->f->order;
    const int cs = m->cfg.kind == FS_TREE_CHILD_SUM;
    for (size_t t0 = lo; t0 < hi; t0 += FS_TREE_TILE) {
        const size_t rows = hi - t0 < FS_TREE_TILE ? hi - t0 : FS_TREE_TILE;
        for (size_t i = 0; i < rows; i++) {
            gather_input(r, order[t0 + i], in + i * K);
            if (cs && r->train) memcpy(r->ws + r->lay->hsum_off + (size_t)order[t0 + i] * H, in + i * K, H * sizeof(float));
        }
        if (leaves)
            memset(acc, 0, rows * GHp * sizeof(float));
        else
            r->k->gemm(rows, K, in, K, m->whh_p, FS_TREE_G, GHp / FS_TREE_NB, NULL, acc, GHp);
        for (size_t i = 0; i < rows; i++) {
            const int32_t v = order[t0 + i];
            float *pre = acc + i * GHp;
            const float *g = gx + (size_t)v * GHp;
            for (size_t q = 0; q < m->GH; q++) pre[q] += g[q];
            cell(r, v, pre, ht + i * Hp);
            memcpy(h + (size_t)v * H, ht + i * Hp, H * sizeof(float));
        }
        if (cs) { /* U_f h of these rows, for their parents' forget gates */
            r->k->gemm(rows, H, ht, Hp, m->uf_p, FS_TREE_G, Hp / FS_TREE_NB, NULL, uft, Hp);
            for (size_t i = 0; i < rows; i++)
                memcpy(r->ws + r->lay->uf_off + (size_t)order[t0 + i] * Hp, uft + i * Hp, Hp * sizeof(float));
        }
    }
}

static void worker(const void *arg, int nth, int id) {
    const run *r = arg;
    const fs_tree *m = r->m;
    const size_t GHp = fs__tree_pad(m->GH), N = (size_t)r->f->n;
    float *tile = r->ws + r->lay->tile_off + (size_t)id * r->lay->tile_floats;
    size_t lo, hi;
    fs__tree_split(0, N, nth, id, &lo, &hi);
    if (hi > lo) /* every node's input part, gate rows in PyTorch order, biases folded in */
        r->k->gemm(hi - lo, m->I, r->x + lo * m->I, m->I, m->wih_p, FS_TREE_G, GHp / FS_TREE_NB, m->bias,
                   r->ws + r->lay->gx_off + lo * GHp, GHp);
    FS_BARRIER(nth);
    for (int32_t l = 0; l < r->f->levels; l++) {
        fs__tree_split((size_t)r->f->level_start[l], (size_t)r->f->level_start[l + 1], nth, id, &lo, &hi);
        level_rows(r, lo, hi, l == 0, tile);
        FS_BARRIER(nth);
    }
}

static fs_status check_out(const char *name, const void *p, size_t count, size_t need, const char *shape) {
    if (!p) return fs__fail(FS_ERR_NULL_ARG, "%s must not be NULL", name);
    if (count != need) return fs__fail(FS_ERR_SHAPE, "%s: expected %zu elements (%s), got %zu", name, need, shape, count);
    return FS_OK;
}

fs_status fs_tree_forward(const fs_tree *m, int32_t n, const float *x, size_t x_count, const int64_t *parent,
                          size_t parent_count, float *h_out, size_t h_count, float *c_out, size_t c_count,
                          void *workspace, size_t workspace_bytes, int32_t train) {
    fs__clear_error();
    if (!m) return fs__fail(FS_ERR_NULL_ARG, "model must not be NULL");
    if (train != 0 && train != 1) return fs__fail(FS_ERR_INVALID_ARG, "train: expected 0 or 1, got %d", (int)train);
    fs_tree_layout lay;
    fs_status st = fs__tree_layout(m, n, train, fs__max_threads(), &lay);
    if (st != FS_OK) return st;
    const size_t N = (size_t)n;
    if ((st = check_out("x", x, x_count, N * m->I, "n_nodes x input_size")) != FS_OK) return st;
    if ((st = check_out("h_out", h_out, h_count, N * m->H, "n_nodes x hidden_size")) != FS_OK) return st;
    if (m->cfg.kind == FS_TREE_RECURSIVE) {
        if (c_out || c_count)
            return fs__fail(FS_ERR_INVALID_ARG, "c_out: a recursive network has no cell state (expected NULL, 0)");
    } else if ((st = check_out("c_out", c_out, c_count, N * m->H, "n_nodes x hidden_size")) != FS_OK) {
        return st;
    }
    if ((st = fs__tree_check_ws(workspace, workspace_bytes, &lay)) != FS_OK) return st;
    float *ws = workspace;
    fs_tree_forest f;
    if ((st = fs__tree_forest(m, n, parent, parent_count, (int32_t *)(ws + lay.ints_off), &f)) != FS_OK) return st;
    run r = {m, fs__kernels(), &f, &lay, x, ws, train};
    fs__tree_launch(worker, &r, fs__tree_threads(m, &f, lay.threads));
    memcpy(h_out, ws + lay.h_off, N * m->H * sizeof(float));
    if (c_out) memcpy(c_out, ws + lay.c_off, N * m->H * sizeof(float));
    return FS_OK;
}
