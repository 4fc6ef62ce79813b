/* Tree networks from C: forward and backward give the same bits for 1, 2 and 3
 * threads on every ISA level (one level's rows split over threads), ISA levels
 * agree within 1e-5, bad forests fail naming the node, and bad buffers are refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define I_SIZE 24
#define H_SIZE 40
#define TREES 64

typedef struct outputs { float *h, *c, *dx, *gw_ih, *gw_hh, *gb; } outputs;

/* A forest of TREES random trees, ids interleaved across trees (node k of tree t is
 * k * TREES + t), no node with more than `arity` children (0: any). Returns N. */
static int make_forest(int64_t *parent, int per_tree, int arity) {
    int kids[64];
    for (int t = 0; t < TREES; t++) {
        memset(kids, 0, sizeof kids);
        parent[t] = -1;
        for (int k = 1; k < per_tree; k++) {
            int p;
            do p = (int)((urand(1.0f) + 1.0f) * 0.5f * (float)k); while (p >= k || (arity && kids[p] >= arity));
            kids[p]++;
            parent[k * TREES + t] = (int64_t)p * TREES + t;
        }
    }
    return per_tree * TREES;
}

static void run(fs_tree *m, int n, const float *x, const int64_t *parent, const float *dh, const float *dc,
                const fs_tree_config *cfg, outputs *o) {
    size_t ws_bytes = 0, H = H_SIZE, G = cfg->kind == FS_TREE_CHILD_SUM ? 4 : cfg->kind == FS_TREE_NARY ? (size_t)cfg->arity + 3 : 1;
    size_t K = cfg->kind == FS_TREE_CHILD_SUM ? H : (size_t)cfg->arity * H, nh = (size_t)n * H;
    const int lstm = cfg->kind != FS_TREE_RECURSIVE;
    CHECK_STATUS(fs_tree_workspace_size(m, n, 1, &ws_bytes), FS_OK);
    void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
    CHECK_STATUS(fs_tree_forward(m, n, x, (size_t)n * I_SIZE, parent, (size_t)n, o->h, nh, lstm ? o->c : NULL,
                                 lstm ? nh : 0, ws, ws_bytes, 1), FS_OK);
    CHECK_STATUS(fs_tree_backward(m, n, x, (size_t)n * I_SIZE, parent, (size_t)n, dh, nh, lstm ? dc : NULL,
                                  lstm ? nh : 0, o->dx, (size_t)n * I_SIZE, o->gw_ih, G * H * I_SIZE, o->gw_hh,
                                  G * H * K, o->gb, G * H, ws, ws_bytes), FS_OK);
    free(ws);
}

static void alloc_outputs(outputs *o, int n) {
    const size_t big = (size_t)8 * H_SIZE * 4 * H_SIZE; /* G <= 8 gates, K <= 4H inputs */
    o->h = calloc((size_t)n * H_SIZE, sizeof(float));
    o->c = calloc((size_t)n * H_SIZE, sizeof(float));
    o->dx = calloc((size_t)n * I_SIZE, sizeof(float));
    o->gw_ih = calloc(big, sizeof(float));
    o->gw_hh = calloc(big, sizeof(float));
    o->gb = calloc(big, sizeof(float));
}

static void free_outputs(outputs *o) {
    free(o->h), free(o->c), free(o->dx), free(o->gw_ih), free(o->gw_hh), free(o->gb);
}

static float max_diff(const float *a, const float *b, size_t n) {
    float d = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float e = a[i] - b[i];
        if (e < 0) e = -e;
        float s = b[i] < 0 ? -b[i] : b[i];
        e /= s > 1.0f ? s : 1.0f;
        if (e > d) d = e;
    }
    return d;
}

static void check_kind(fs_tree_config cfg, const char *what) {
    fs_tree *m = NULL;
    CHECK_STATUS(fs_tree_create(&cfg, &m), FS_OK);
    if (!m) return;
    for (int p = 0; p < FS_TREE_PARAM_COUNT; p++) {
        int64_t rows = 0, cols = 0;
        CHECK_STATUS(fs_tree_param_shape(m, (fs_tree_param)p, &rows, &cols), FS_OK);
        float *w = malloc((size_t)(rows * cols) * sizeof(float));
        for (int64_t i = 0; i < rows * cols; i++) w[i] = urand(0.3f);
        CHECK_STATUS(fs_tree_set_param(m, (fs_tree_param)p, w, (size_t)(rows * cols)), FS_OK);
        free(w);
    }
    int64_t parent[TREES * 16];
    const int n = make_forest(parent, 16, cfg.arity);
    float *x = malloc((size_t)n * I_SIZE * sizeof(float)), *dh = malloc((size_t)n * H_SIZE * sizeof(float));
    float *dc = malloc((size_t)n * H_SIZE * sizeof(float));
    for (int i = 0; i < n * I_SIZE; i++) x[i] = urand(1.0f);
    for (int i = 0; i < n * H_SIZE; i++) dh[i] = urand(1.0f), dc[i] = urand(1.0f);
    const size_t G = cfg.kind == FS_TREE_CHILD_SUM ? 4 : cfg.kind == FS_TREE_NARY ? (size_t)cfg.arity + 3 : 1;
    const size_t K = cfg.kind == FS_TREE_CHILD_SUM ? H_SIZE : (size_t)cfg.arity * H_SIZE;
    const size_t counts[6] = {(size_t)n * H_SIZE, (size_t)n * H_SIZE, (size_t)n * I_SIZE, G * H_SIZE * I_SIZE,
                              G * H_SIZE * K, G * H_SIZE};
    outputs generic, one, again;
    alloc_outputs(&generic, n);
    alloc_outputs(&one, n);
    alloc_outputs(&again, n);
    const fs_isa start = fs_active_isa();
    for (int isa = FS_ISA_GENERIC; isa <= FS_ISA_NEON; isa++) {
        if (!fs_isa_supported((fs_isa)isa)) continue;
        CHECK_STATUS(fs_set_isa((fs_isa)isa), FS_OK);
        CHECK_STATUS(fs_set_num_threads(1), FS_OK);
        run(m, n, x, parent, dh, dc, &cfg, isa == FS_ISA_GENERIC ? &generic : &one);
        float *g[6] = {generic.h, generic.c, generic.dx, generic.gw_ih, generic.gw_hh, generic.gb};
        float *a[6] = {one.h, one.c, one.dx, one.gw_ih, one.gw_hh, one.gb};
        float *b[6] = {again.h, again.c, again.dx, again.gw_ih, again.gw_hh, again.gb};
        float **base = isa == FS_ISA_GENERIC ? g : a;
        for (int k = 0; k < 6 && isa != FS_ISA_GENERIC; k++) {
            const float tol = k < 2 ? 1e-5f : 1e-4f, d = max_diff(a[k], g[k], counts[k]); /* states; gradients */
            CHECK(d <= tol, "%s %s: output %d differs from generic by %g", what, fs_isa_name((fs_isa)isa), k,
                  (double)d);
        }
        for (int t = 2; t <= 3; t++) {
            if (fs_set_num_threads(t) != FS_OK) continue; /* a build without OpenMP */
            run(m, n, x, parent, dh, dc, &cfg, &again);
            for (int k = 0; k < 6; k++)
                CHECK(memcmp(b[k], base[k], counts[k] * sizeof(float)) == 0,
                      "%s %s: output %d with %d threads differs from 1 thread", what, fs_isa_name((fs_isa)isa), k, t);
        }
    }
    fs_set_isa(start);
    fs_set_num_threads(0);
    free_outputs(&generic);
    free_outputs(&one);
    free_outputs(&again);
    free(x), free(dh), free(dc);
    fs_tree_free(m);
}

static void check_errors(void) {
    fs_tree_config cfg = {FS_TREE_NARY, 2, 4, 2, 0};
    fs_tree *m = NULL;
    CHECK_STATUS(fs_tree_create(&cfg, &m), FS_OK);
    size_t ws_bytes = 0;
    CHECK_STATUS(fs_tree_workspace_size(m, 4, 0, &ws_bytes), FS_OK);
    void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
    float x[8] = {0}, h[16], c[16];
    const int64_t cycle[4] = {1, 2, 0, -1}, range[4] = {-1, 0, 4, 0}, wide[4] = {-1, 0, 0, 0};
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, cycle, 4, h, 16, c, 16, ws, ws_bytes, 0), FS_ERR_INVALID_ARG);
    CHECK(strstr(fs_last_error(), "node 0 is on a cycle") != NULL, "cycle detail: %s", fs_last_error());
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, range, 4, h, 16, c, 16, ws, ws_bytes, 0), FS_ERR_INVALID_ARG);
    CHECK(strstr(fs_last_error(), "parent[2] = 4") != NULL, "range detail: %s", fs_last_error());
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, wide, 4, h, 16, c, 16, ws, ws_bytes, 0), FS_ERR_INVALID_ARG);
    CHECK(strstr(fs_last_error(), "node 0 has 3 children") != NULL, "arity detail: %s", fs_last_error());
    const int64_t ok[4] = {-1, 0, 0, 1};
    CHECK_STATUS(fs_tree_forward(m, 4, x, 7, ok, 4, h, 16, c, 16, ws, ws_bytes, 0), FS_ERR_SHAPE);
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, ok, 3, h, 16, c, 16, ws, ws_bytes, 0), FS_ERR_SHAPE);
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, ok, 4, h, 16, c, 15, ws, ws_bytes, 0), FS_ERR_SHAPE);
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, ok, 4, h, 16, c, 16, ws, ws_bytes - 1, 0), FS_ERR_SHAPE);
    CHECK_STATUS(fs_tree_forward(m, 0, x, 0, ok, 0, h, 0, c, 0, ws, ws_bytes, 0), FS_ERR_INVALID_ARG);
    CHECK_STATUS(fs_tree_forward(m, 4, x, 8, ok, 4, h, 16, c, 16, ws, ws_bytes, 0), FS_OK);
    fs_tree_config bad = {FS_TREE_CHILD_SUM, 2, 4, 2, 0};
    fs_tree *none = NULL;
    CHECK_STATUS(fs_tree_create(&bad, &none), FS_ERR_INVALID_ARG);
    bad.kind = 7;
    CHECK_STATUS(fs_tree_create(&bad, &none), FS_ERR_INVALID_ARG);
    fs_tree_free(NULL);
    free(ws);
    fs_tree_free(m);
}

int main(void) {
    check_kind((fs_tree_config){FS_TREE_CHILD_SUM, I_SIZE, H_SIZE, 0, 0}, "child-sum");
    check_kind((fs_tree_config){FS_TREE_NARY, I_SIZE, H_SIZE, 3, 0}, "3-ary");
    check_kind((fs_tree_config){FS_TREE_RECURSIVE, I_SIZE, H_SIZE, 2, 1}, "recursive relu");
    check_errors();
    printf("test_tree: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
