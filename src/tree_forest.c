/* Tree forests: the parent array checked and turned into levels (leaves are
 * level 0, a node is 1 + its deepest child; rows ordered by (level, id)), in
 * O(n); and the workspace layout both tree passes share. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "threads.h"
#include "tree.h"

/* Below this many multiply-adds per level the barrier outweighs the split. */
#define FS_TREE_PARALLEL_MIN_FLOPS 2.0e5

static int reserve(size_t *cursor, size_t a, size_t b, size_t *off) {
    size_t n, end;
    const size_t align = FS_ALIGN / sizeof(float);
    if (!fs__mul(a, b, &n) || n > SIZE_MAX - align) return 0;
    n = (n + align - 1) / align * align;
    if (!fs__add(*cursor, n, &end)) return 0;
    *off = *cursor;
    *cursor = end;
    return 1;
}

fs_status fs__tree_layout(const fs_tree *m, int32_t n, int train, int threads, fs_tree_layout *lay) {
    if (n < 1) return fs__fail(FS_ERR_INVALID_ARG, "n_nodes: expected >= 1, got %d", (int)n);
    const size_t N = (size_t)n, H = m->H, GH = m->GH, Hp = fs__tree_pad(H), GHp = fs__tree_pad(GH);
    const size_t Ip = fs__tree_pad(m->I), Kp = fs__tree_pad(m->K);
    const int cs = m->cfg.kind == FS_TREE_CHILD_SUM, lstm = m->cfg.kind != FS_TREE_RECURSIVE;
    size_t wide = GHp > Kp ? GHp : Kp, cur = 0, unused;
    if (Ip > wide) wide = Ip;
    memset(lay, 0, sizeof *lay);
    lay->threads = threads;
    lay->tile_wide = wide;
    /* a tile: the rows' recurrent inputs (or gate gradients), their product,
     * and two [rows][Hp] buffers (h and U_f h; the forget gradients and their product) */
    lay->tile_floats = FS_TREE_TILE * (2 * wide + 2 * Hp);
    /* backward's weight gradients: a chunk of gradient rows transposed, and their product */
    if (train && lay->tile_floats < FS_TREE_TILE * (FS_TREE_KC + wide)) lay->tile_floats = FS_TREE_TILE * (FS_TREE_KC + wide);
    int ok = reserve(&cur, 6 * N + 2, sizeof(int32_t) / sizeof(float), &lay->ints_off);
    ok = ok && reserve(&cur, N, GHp, &lay->gx_off);
    ok = ok && reserve(&cur, N, H, &lay->h_off);
    ok = ok && reserve(&cur, lstm ? N : 0, H, &lay->c_off);
    ok = ok && reserve(&cur, cs ? N : 0, Hp, &lay->uf_off);
    ok = ok && reserve(&cur, cs && train ? N : 0, H, &lay->hsum_off);
    ok = ok && reserve(&cur, (size_t)threads, lay->tile_floats, &lay->tile_off);
    if (train) {
        ok = ok && reserve(&cur, N, H, &lay->dh_off);
        ok = ok && reserve(&cur, lstm ? N : 0, H, &lay->dc_off);
        ok = ok && reserve(&cur, N, GH, &lay->dpre_off);
        ok = ok && reserve(&cur, cs ? H : 0, N, &lay->dft_off);
        ok = ok && reserve(&cur, Ip, N, &lay->xp_off);
        ok = ok && reserve(&cur, Kp, N, &lay->hp_off);
        ok = ok && reserve(&cur, cs ? Hp : 0, N, &lay->hp2_off);
    }
    ok = ok && fs__mul(cur, sizeof(float), &unused);
    if (!ok) return fs__fail(FS_ERR_NOMEM, "tree workspace size overflows for %d nodes", (int)n);
    lay->total = cur;
    return FS_OK;
}

fs_status fs_tree_workspace_size(const fs_tree *model, int32_t n_nodes, int32_t train, size_t *bytes_out) {
    fs__clear_error();
    if (!model || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "model and bytes_out must not be NULL");
    if (train != 0 && train != 1) return fs__fail(FS_ERR_INVALID_ARG, "train: expected 0 or 1, got %d", (int)train);
    fs_tree_layout lay;
    fs_status st = fs__tree_layout(model, n_nodes, train, fs__max_threads(), &lay);
    if (st != FS_OK) return st;
    *bytes_out = lay.total * sizeof(float);
    return FS_OK;
}

fs_status fs__tree_check_ws(const void *ws, size_t bytes, const fs_tree_layout *lay) {
    return fs__check_buffer("workspace", ws, bytes, lay->total * sizeof(float));
}

fs_status fs__tree_forest(const fs_tree *m, int32_t n, const int64_t *parent, size_t parent_count,
                          int32_t *ints, fs_tree_forest *f) {
    if (!parent) return fs__fail(FS_ERR_NULL_ARG, "parent must not be NULL");
    if (parent_count != (size_t)n)
        return fs__fail(FS_ERR_SHAPE, "parent: expected %d elements (one per node), got %zu", (int)n, parent_count);
    const int32_t N = n;
    int32_t *lvl = ints, *order = lvl + N, *level_start = order + N, *child_start = level_start + N + 1;
    int32_t *children = child_start + N + 1, *pending = children + N;
    memset(child_start, 0, (size_t)(N + 1) * sizeof(int32_t));
    for (int32_t v = 0; v < N; v++) {
        const int64_t p = parent[v];
        if (p < -1 || p >= N)
            return fs__fail(FS_ERR_INVALID_ARG, "parent[%d] = %lld: expected -1 (a root) or a node index "
                            "in [0, %d)", (int)v, (long long)p, (int)N);
        if (p >= 0) child_start[p + 1]++;
    }
    const int32_t arity = m->cfg.kind == FS_TREE_CHILD_SUM ? INT32_MAX : m->cfg.arity;
    for (int32_t v = 0; v < N; v++) {
        if (child_start[v + 1] > arity)
            return fs__fail(FS_ERR_INVALID_ARG, "node %d has %d children: expected at most the arity, %d",
                            (int)v, (int)child_start[v + 1], (int)arity);
        pending[v] = child_start[v + 1];
        child_start[v + 1] += child_start[v];
    }
    for (int32_t v = 0; v < N; v++) lvl[v] = child_start[v]; /* fill cursors, ascending ids */
    for (int32_t v = 0; v < N; v++)
        if (parent[v] >= 0) children[lvl[parent[v]]++] = v;
    /* Kahn from the leaves: a node is ready when all its children are done;
     * nodes never ready lie on a cycle. order[] is the queue. */
    int32_t head = 0, tail = 0;
    for (int32_t v = 0; v < N; v++) {
        lvl[v] = 0;
        if (pending[v] == 0) order[tail++] = v;
    }
    while (head < tail) {
        const int32_t v = order[head++];
        const int64_t p = parent[v];
        if (p < 0) continue;
        if (lvl[p] < lvl[v] + 1) lvl[p] = lvl[v] + 1;
        if (--pending[p] == 0) order[tail++] = (int32_t)p;
    }
    if (tail < N) {
        int32_t v = 0;
        while (pending[v] == 0) v++;
        return fs__fail(FS_ERR_INVALID_ARG, "parent: node %d is on a cycle (following its parents leads "
                        "back to it)", (int)v);
    }
    int32_t levels = 0;
    for (int32_t v = 0; v < N; v++)
        if (lvl[v] + 1 > levels) levels = lvl[v] + 1;
    memset(level_start, 0, (size_t)(levels + 1) * sizeof(int32_t));
    for (int32_t v = 0; v < N; v++) level_start[lvl[v] + 1]++;
    for (int32_t l = 0; l < levels; l++) level_start[l + 1] += level_start[l];
    for (int32_t l = 0; l < levels; l++) pending[l] = level_start[l];
    for (int32_t v = 0; v < N; v++) order[pending[lvl[v]]++] = v;
    f->n = N;
    f->levels = levels;
    f->level_start = level_start;
    f->order = order;
    f->child_start = child_start;
    f->children = children;
    return FS_OK;
}

int fs__tree_threads(const fs_tree *m, const fs_tree_forest *f, int max_threads) {
    const double rows = (double)f->n / (double)f->levels;
    const double flops = rows * (double)m->GH * (double)(m->I + m->K);
    if (max_threads <= 1 || flops < FS_TREE_PARALLEL_MIN_FLOPS || rows < 2.0) return 1;
    return rows < max_threads ? (int)rows : max_threads;
}

void fs__tree_launch(void (*fn)(const void *arg, int nth, int id), const void *arg, int nth) {
    if (nth == 1) {
        fn(arg, 1, 0);
        return;
    }
#if defined(_OPENMP)
#pragma omp parallel num_threads(nth)
    fn(arg, FS_THREAD_COUNT(), FS_THREAD_ID());
#endif
}
