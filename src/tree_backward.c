/* Tree backward, from the tape a training forward leaves in the workspace
 * (gate activations over gx, h, c; child-sum: the children's h sums). Levels
 * run top-down: a node's dh and dc are complete once every level above it is
 * done (its one parent is there), so each level's rows are independent and
 * split over threads like the forward's. Parameter gradients come last, as
 * products over all nodes split by gate rows; every sum runs in a fixed order,
 * so results are the same bits for any thread count. */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "threads.h"
#include "tree.h"

typedef struct brun {
    const fs_tree *m;
    const fs_kernels *k;
    const fs_tree_forest *f;
    const fs_tree_layout *lay;
    const float *x, *dh_in, *dc_in;
    float *dx, *g_wih, *g_whh, *g_bias;
    float *ws;
} brun;

#define WS(r, name) ((r)->ws + (r)->lay->name##_off)

/* A Tree-LSTM node's own gates (restrict: the arrays never overlap, so the
 * loops vectorise): from tc = tanh(c) and dct0 = the cell gradient from above,
 * the gradients of i, g, o's pre-activations; tc becomes d loss / d c. */
static void gates_backward(size_t H, const float *restrict i, const float *restrict g, const float *restrict o,
                           const float *restrict dh, const float *restrict dct0, float *restrict tc,
                           float *restrict dpi, float *restrict dpg, float *restrict dpo) {
    for (size_t j = 0; j < H; j++) {
        const float dct = dct0[j] + dh[j] * o[j] * (1.0f - tc[j] * tc[j]);
        dpo[j] = dh[j] * tc[j] * o[j] * (1.0f - o[j]);
        dpi[j] = dct * g[j] * i[j] * (1.0f - i[j]);
        dpg[j] = dct * i[j] * (1.0f - g[j] * g[j]);
        tc[j] = dct;
    }
}

/* One child's forget gate f: its pre-activation gradient, and the child's cell gradient. */
static void forget_backward(size_t H, const float *restrict dct, const float *restrict f, const float *restrict ck,
                            float *restrict dpf, float *restrict dck) {
    for (size_t j = 0; j < H; j++) {
        dpf[j] = dct[j] * ck[j] * f[j] * (1.0f - f[j]);
        dck[j] += dct[j] * f[j];
    }
}

/* d loss / d pre-activations of node v (dpre[v]'s own slots); a Tree-LSTM also
 * passes the cell gradient to its children and leaves each child's forget-gate
 * gradient in the child's f slot (child-sum) or its own f_l slots (N-ary).
 * tc: H floats of scratch. */
static void cell_backward(const brun *r, int32_t v, float *tc) {
    const fs_tree *m = r->m;
    const size_t H = m->H, GH = m->GH, GHp = fs__tree_pad(GH);
    const float *dh = WS(r, dh) + (size_t)v * H, *h = WS(r, h) + (size_t)v * H;
    float *dp = WS(r, dpre) + (size_t)v * GH;
    if (m->cfg.kind == FS_TREE_RECURSIVE) {
        for (size_t j = 0; j < H; j++)
            dp[j] = dh[j] * (m->cfg.relu ? (h[j] > 0.0f ? 1.0f : 0.0f) : 1.0f - h[j] * h[j]);
        return;
    }
    const int cs = m->cfg.kind == FS_TREE_CHILD_SUM;
    const float *gx = WS(r, gx), *act = gx + (size_t)v * GHp, *c = WS(r, c);
    float *dc = WS(r, dc), *dpre = WS(r, dpre);
    const int32_t *ch = r->f->children + r->f->child_start[v];
    const int32_t nc = r->f->child_start[v + 1] - r->f->child_start[v];
    const size_t gi = 0, gg = (m->G - 2) * H, go = (m->G - 1) * H;
    r->k->vact(H, FS_ACT_TANH, c + (size_t)v * H, tc); /* as the forward computed it */
    gates_backward(H, act + gi, act + gg, act + go, dh, dc + (size_t)v * H, tc, dp + gi, dp + gg, dp + go);
    for (int32_t k = 0; k < nc; k++) /* child by child */
        forget_backward(H, tc, cs ? gx + (size_t)ch[k] * GHp + H : act + (1 + (size_t)k) * H, c + (size_t)ch[k] * H,
                        cs ? dpre + (size_t)ch[k] * GH + H : dp + (1 + (size_t)k) * H, dc + (size_t)ch[k] * H);
}

/* Rows [lo, hi) of one level, in tiles; level 0 (the leaves) passes nothing down. */
static void level_rows(const brun *r, size_t lo, size_t hi, int leaves, float *tile) {
    const fs_tree *m = r->m;
    const size_t H = m->H, GH = m->GH, K = m->K, Kp = fs__tree_pad(K), Hp = fs__tree_pad(H);
    const size_t wide = r->lay->tile_wide;
    float *in = tile, *out = in + FS_TREE_TILE * wide, *ft = out + FS_TREE_TILE * wide, *fo = ft + FS_TREE_TILE * Hp;
    float *dh = WS(r, dh), *dpre = WS(r, dpre);
    const int32_t *order = r->f->order;
    const int cs = m->cfg.kind == FS_TREE_CHILD_SUM;
    for (size_t t0 = lo; t0 < hi; t0 += FS_TREE_TILE) {
        const size_t rows = hi - t0 < FS_TREE_TILE ? hi - t0 : FS_TREE_TILE;
        if (cs) { /* dh += U_f^T (forget-gate gradient of the node as a child; zero at a root) */
            for (size_t i = 0; i < rows; i++)
                memcpy(ft + i * Hp, dpre + (size_t)order[t0 + i] * GH + H, H * sizeof(float));
            r->k->gemm(rows, H, ft, Hp, m->uf_t, FS_TREE_G, Hp / FS_TREE_NB, NULL, fo, Hp);
            for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < H; j++) dh[(size_t)order[t0 + i] * H + j] += fo[i * Hp + j];
        }
        for (size_t i = 0; i < rows; i++) {
            cell_backward(r, order[t0 + i], fo); /* fo is free again here */
            memcpy(in + i * GH, dpre + (size_t)order[t0 + i] * GH, GH * sizeof(float));
        }
        if (leaves) continue;
        /* the gradient of each row's recurrent input (child-sum: U's f rows are zero here) */
        r->k->gemm(rows, GH, in, GH, m->whh_t, FS_TREE_G, Kp / FS_TREE_NB, NULL, out, Kp);
        for (size_t i = 0; i < rows; i++) {
            const int32_t v = order[t0 + i];
            const int32_t *ch = r->f->children + r->f->child_start[v];
            const int32_t nc = r->f->child_start[v + 1] - r->f->child_start[v];
            for (int32_t k = 0; k < nc; k++) {
                const float *src = out + i * Kp + (cs ? 0 : (size_t)k * H);
                for (size_t j = 0; j < H; j++) dh[(size_t)ch[k] * H + j] += src[j];
            }
        }
    }
}

/* The weight gradients' B operands (x and the recurrent inputs over all n
 * nodes, k = node) are packed in chunks of FS_TREE_KC nodes, each chunk a packed
 * B of its own (k = its node count) that stays in L2 while the gradient rows
 * stream past it: chunk c starts at float c*KC*cols_p; row v of chunk c lies
 * in block jb at ((jb*kc + v - c*KC)*32 + l) for column jb*32 + l. */
static inline size_t chunk_nodes(size_t n, size_t k0) { return n - k0 < FS_TREE_KC ? n - k0 : FS_TREE_KC; }

/* Row v (cols floats) into its chunk, zero padded to whole blocks. */
static void pack_row(const float *row, size_t n, size_t cols, size_t v, float *out) {
    const size_t k0 = v / FS_TREE_KC * FS_TREE_KC, kc = chunk_nodes(n, k0), cp = fs__tree_pad(cols);
    float *dst = out + k0 * cp + (v - k0) * FS_TREE_NB;
    for (size_t q = 0; q < cp; q++) dst[(q / FS_TREE_NB) * kc * FS_TREE_NB + q % FS_TREE_NB] = q < cols ? row[q] : 0.0f;
}

/* Packs node v's x and recurrent input rows (the B operands of the weight gradients). */
static void pack_inputs(const brun *r, size_t v0, size_t v1, float *tmp) {
    const fs_tree *m = r->m;
    const size_t N = (size_t)r->f->n, H = m->H;
    for (size_t v = v0; v < v1; v++) {
        pack_row(r->x + v * m->I, N, m->I, v, WS(r, xp));
        if (m->cfg.kind == FS_TREE_CHILD_SUM) {
            pack_row(WS(r, hsum) + v * H, N, H, v, WS(r, hp));
            pack_row(WS(r, h) + v * H, N, H, v, WS(r, hp2));
            continue;
        }
        /* [h_1; ...; h_arity], absent children as zeros */
        const int32_t *ch = r->f->children + r->f->child_start[v];
        const int32_t nc = r->f->child_start[v + 1] - r->f->child_start[v];
        memset(tmp, 0, m->K * sizeof(float));
        for (int32_t k = 0; k < nc; k++) memcpy(tmp + (size_t)k * H, WS(r, h) + (size_t)ch[k] * H, H * sizeof(float));
        pack_row(tmp, N, m->K, v, WS(r, hp));
    }
}

/* dst [rows][n] = src's columns [q0, q0 + rows) of rows [0, n) (stride lds),
 * in blocks of 16 nodes so that reads and writes both stay in whole cache lines. */
static void transpose(const float *src, size_t lds, size_t q0, size_t rows, size_t n, float *dst) {
    for (size_t v0 = 0; v0 < n; v0 += 16) {
        const size_t v1 = n - v0 < 16 ? n : v0 + 16;
        for (size_t q = 0; q < rows; q++)
            for (size_t v = v0; v < v1; v++) dst[q * n + v] = src[v * lds + q0 + q];
    }
}

/* out [rows][cols] (stride ldo) gets a [rows][kc] (stride lda) times one chunk
 * of pack_row's layout (cols padded to cp): through tmp ([rows][cp]), stored
 * into out for the first chunk, added for the others (chunks in node order). */
static void chunk_product(const brun *r, size_t rows, const float *a, size_t lda, size_t kc, const float *b,
                          size_t cols, float *out, size_t ldo, int first, float *tmp) {
    const size_t cp = fs__tree_pad(cols);
    r->k->gemm(rows, kc, a, lda, b, FS_TREE_G, cp / FS_TREE_NB, NULL, tmp, cp);
    for (size_t i = 0; i < rows; i++) {
        float *o = out + i * ldo;
        const float *t = tmp + i * cp;
        if (first)
            memcpy(o, t, cols * sizeof(float));
        else
            for (size_t j = 0; j < cols; j++) o[j] += t[j];
    }
}

/* The weight gradients of gate rows [t0, t0 + rows), chunk by chunk of nodes:
 * the rows' pre-activation gradients transposed into the tile ([rows][kc]),
 * then their products with the chunk's x and recurrent inputs (child-sum's
 * U_f rows, frows: the forget-gate gradients as a child, dft, with each h). */
static void weight_grads(const brun *r, size_t t0, size_t rows, int frows, float *tile) {
    const fs_tree *m = r->m;
    const size_t N = (size_t)r->f->n, H = m->H, GH = m->GH, I = m->I, K = m->K;
    const size_t Ip = fs__tree_pad(I), Kp = fs__tree_pad(K), Hp = fs__tree_pad(H);
    float *at = tile, *tmp = tile + FS_TREE_TILE * FS_TREE_KC;
    for (size_t k0 = 0; k0 < N; k0 += FS_TREE_KC) {
        const size_t kc = chunk_nodes(N, k0);
        transpose(WS(r, dpre) + k0 * GH, GH, t0, rows, kc, at);
        chunk_product(r, rows, at, kc, kc, WS(r, xp) + k0 * Ip, I, r->g_wih + t0 * I, I, k0 == 0, tmp);
        if (frows)
            chunk_product(r, rows, WS(r, dft) + (t0 - H) * N + k0, N, kc, WS(r, hp2) + k0 * Hp, H,
                          r->g_whh + t0 * K, K, k0 == 0, tmp);
        else
            chunk_product(r, rows, at, kc, kc, WS(r, hp) + k0 * Kp, K, r->g_whh + t0 * K, K, k0 == 0, tmp);
    }
}

static void worker(const void *arg, int nth, int id) {
    const brun *r = arg;
    const fs_tree *m = r->m;
    const size_t N = (size_t)r->f->n, H = m->H, GH = m->GH, I = m->I;
    const size_t Ip = fs__tree_pad(I);
    const int cs = m->cfg.kind == FS_TREE_CHILD_SUM;
    float *tile = WS(r, tile) + (size_t)id * r->lay->tile_floats, *dpre = WS(r, dpre);
    size_t lo, hi;
    fs__tree_split(0, N, nth, id, &lo, &hi);
    for (size_t v = lo; v < hi; v++) {
        memcpy(WS(r, dh) + v * H, r->dh_in + v * H, H * sizeof(float));
        if (m->cfg.kind != FS_TREE_RECURSIVE) {
            if (r->dc_in)
                memcpy(WS(r, dc) + v * H, r->dc_in + v * H, H * sizeof(float));
            else
                memset(WS(r, dc) + v * H, 0, H * sizeof(float));
        }
        memset(dpre + v * GH, 0, GH * sizeof(float));
    }
    FS_BARRIER(nth);
    for (int32_t l = r->f->levels - 1; l >= 0; l--) {
        fs__tree_split((size_t)r->f->level_start[l], (size_t)r->f->level_start[l + 1], nth, id, &lo, &hi);
        level_rows(r, lo, hi, l == 0, tile);
        FS_BARRIER(nth);
    }
    fs__tree_split(0, N, nth, id, &lo, &hi);
    pack_inputs(r, lo, hi, tile);
    if (cs) { /* each node's forget-gate gradient as a child, by unit */
        size_t jlo, jhi;
        fs__tree_split(0, H, nth, id, &jlo, &jhi);
        transpose(dpre, GH, H + jlo, jhi - jlo, N, WS(r, dft) + jlo * N);
    }
    FS_BARRIER(nth);
    if (cs) /* dpre's f slot becomes the gradient of the node's own W_f x + b_f: its children's sum */
        for (size_t v = lo; v < hi; v++) {
            const int32_t *ch = r->f->children + r->f->child_start[v];
            const int32_t nc = r->f->child_start[v + 1] - r->f->child_start[v];
            for (size_t j = 0; j < H; j++) {
                float s = 0.0f;
                for (int32_t k = 0; k < nc; k++) s += WS(r, dft)[j * N + (size_t)ch[k]];
                dpre[v * GH + H + j] = s;
            }
        }
    FS_BARRIER(nth);
    for (size_t t0 = lo; t0 < hi; t0 += FS_TREE_TILE) { /* dx = dpre W_ih */
        const size_t rows = hi - t0 < FS_TREE_TILE ? hi - t0 : FS_TREE_TILE;
        r->k->gemm(rows, GH, dpre + t0 * GH, GH, m->wih_t, FS_TREE_G, Ip / FS_TREE_NB, NULL, tile, Ip);
        for (size_t i = 0; i < rows; i++) memcpy(r->dx + (t0 + i) * I, tile + i * Ip, I * sizeof(float));
    }
    size_t rlo, rhi;
    fs__tree_split(0, GH, nth, id, &rlo, &rhi);
    for (size_t q = rlo; q < rhi; q++) r->g_bias[q] = 0.0f;
    for (size_t v = 0; v < N; v++) /* each element summed over the nodes in order */
        for (size_t q = rlo; q < rhi; q++) r->g_bias[q] += dpre[v * GH + q];
    for (size_t t0 = rlo; t0 < rhi;) {
        size_t rows = rhi - t0 < FS_TREE_TILE ? rhi - t0 : FS_TREE_TILE;
        const int frows = cs && t0 >= H && t0 < 2 * H; /* child-sum's U_f: per child, on its own h */
        if (cs && t0 < 2 * H && t0 + rows > (t0 < H ? H : 2 * H)) rows = (t0 < H ? H : 2 * H) - t0;
        weight_grads(r, t0, rows, frows, tile);
        t0 += rows;
    }
}

static fs_status check_buf(const char *name, const void *p, size_t count, size_t need) {
    if (!p) return fs__fail(FS_ERR_NULL_ARG, "%s must not be NULL", name);
    if (count != need) return fs__fail(FS_ERR_SHAPE, "%s: expected %zu elements, got %zu", name, need, count);
    return FS_OK;
}

fs_status fs_tree_backward(const fs_tree *m, int32_t n, const float *x, size_t x_count, const int64_t *parent,
                           size_t parent_count, const float *dh, size_t dh_count, const float *dc, size_t dc_count,
                           float *dx, size_t dx_count, float *grad_w_ih, size_t grad_w_ih_count, float *grad_w_hh,
                           size_t grad_w_hh_count, float *grad_bias, size_t grad_bias_count, void *workspace,
                           size_t workspace_bytes) {
    fs__clear_error();
    if (!m) return fs__fail(FS_ERR_NULL_ARG, "model must not be NULL");
    fs_tree_layout lay;
    fs_status st = fs__tree_layout(m, n, 1, fs__max_threads(), &lay);
    if (st != FS_OK) return st;
    const size_t N = (size_t)n, H = m->H;
    if ((st = check_buf("x", x, x_count, N * m->I)) != FS_OK) return st;
    if ((st = check_buf("dh", dh, dh_count, N * H)) != FS_OK) return st;
    if (m->cfg.kind == FS_TREE_RECURSIVE && (dc || dc_count))
        return fs__fail(FS_ERR_INVALID_ARG, "dc: a recursive network has no cell state (expected NULL, 0)");
    if (dc && (st = check_buf("dc", dc, dc_count, N * H)) != FS_OK) return st;
    if (!dc && dc_count) return fs__fail(FS_ERR_NULL_ARG, "dc is NULL but dc_count is %zu", dc_count);
    if ((st = check_buf("dx", dx, dx_count, N * m->I)) != FS_OK) return st;
    if ((st = check_buf("grad_w_ih", grad_w_ih, grad_w_ih_count, m->GH * m->I)) != FS_OK) return st;
    if ((st = check_buf("grad_w_hh", grad_w_hh, grad_w_hh_count, m->GH * m->K)) != FS_OK) return st;
    if ((st = check_buf("grad_bias", grad_bias, grad_bias_count, m->GH)) != FS_OK) return st;
    if ((st = fs__tree_check_ws(workspace, workspace_bytes, &lay)) != FS_OK) return st;
    float *ws = workspace;
    fs_tree_forest f;
    if ((st = fs__tree_forest(m, n, parent, parent_count, (int32_t *)(ws + lay.ints_off), &f)) != FS_OK) return st;
    brun r = {m, fs__kernels(), &f, &lay, x, dh, dc, dx, grad_w_ih, grad_w_hh, grad_bias, ws};
    fs__tree_launch(worker, &r, fs__tree_threads(m, &f, lay.threads));
    return FS_OK;
}
