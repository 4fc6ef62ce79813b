/* The tree model behind fs_tree, the forest structure and the workspace layout
 * shared by the tree forward (tree_forward.c) and backward (tree_backward.c).
 *
 * Every product is the table's packed gemm on blocks of FS_TREE_G = 4 panels
 * (kernels.h: [K][4][8], 32 consecutive output columns per block, the gemm's
 * fastest path), so output columns are PyTorch's gate rows in order
 * (r = gate * H + unit), padded to a multiple of 32. Internal arrays are
 * indexed by node id. */
#ifndef FS_TREE_H
#define FS_TREE_H

#include <stdint.h>

#include "fastseq.h"
#include "kernels/kernels.h"

struct fs_tree {
    fs_tree_config cfg;
    size_t I, H;      /* input and hidden size */
    size_t G;         /* gates per unit: 4, arity + 3, or 1 */
    size_t K;         /* recurrent inputs per node: H (child-sum) or arity * H */
    size_t GH;        /* gate rows, G * H */
    float *raw[FS_TREE_PARAM_COUNT]; /* the parameters as given, PyTorch layout */
    float *bias;      /* [pad(GH)] bias_ih + bias_hh */
    float *wih_p;     /* forward: x -> gate rows (K = I) */
    float *whh_p;     /* forward: recurrent input -> gate rows */
    float *wih_t;     /* backward: gate-row gradients -> dx (K = GH, I columns) */
    float *whh_t;     /* backward: gate-row gradients -> recurrent input (child-sum: f rows zero) */
    float *uf_p;      /* child-sum: h of a child -> its forget gate (U_f, rows H..2H) */
    float *uf_t;      /* child-sum: forget-gate gradient -> dh of the child */
};

/* Rows of a level-scheduled forest, all arrays in the workspace. */
typedef struct fs_tree_forest {
    int32_t n, levels;
    int32_t *level_start; /* [levels + 1]: rows of level l are order[level_start[l] .. level_start[l+1]) */
    int32_t *order;       /* [n] node ids by (level, id) */
    int32_t *child_start; /* [n + 1]: children of v are children[child_start[v] .. child_start[v+1]) */
    int32_t *children;    /* [n] ascending within a node */
} fs_tree_forest;

/* Rows per product tile, each thread's scratch. */
#define FS_TREE_TILE 32

/* Nodes per chunk of the backward's weight-gradient products (tree_backward.c). */
#define FS_TREE_KC 256

/* The workspace, in floats from its start (each offset FS_ALIGN-aligned). */
typedef struct fs_tree_layout {
    int threads; /* tiles reserved */
    size_t ints_off;                /* 6n + 2 int32: forest and its scratch */
    size_t gx_off;                  /* [n][GHp]: input part of the gates, then their activations */
    size_t h_off, c_off;            /* [n][H] */
    size_t uf_off;                  /* child-sum: [n][Hp] U_f h */
    size_t hsum_off;                /* child-sum, train: [n][H] sum of the children's h */
    size_t tile_off, tile_floats;   /* per thread */
    size_t tile_wide;               /* widest padded row of a tile's products: max(GH, K, I) padded */
    /* train only */
    size_t dh_off, dc_off;          /* [n][H] */
    size_t dpre_off;                /* [n][GH] gradient of the gate pre-activations */
    size_t dft_off;                 /* child-sum: [H][n] forget-gate gradient of each node as a child */
    size_t xp_off, hp_off, hp2_off; /* packed x, recurrent inputs (child-sum: hsum, then h) */
    size_t total;
} fs_tree_layout;

/* Panels per packed block, and the columns of a block. */
#define FS_TREE_G 4
#define FS_TREE_NB (FS_TREE_G * FS_NB)

/* n columns padded to whole blocks. */
static inline size_t fs__tree_pad(size_t n) { return (n + FS_TREE_NB - 1) / FS_TREE_NB * FS_TREE_NB; }

/* Layout for n nodes (train: with the backward's arrays); FS_ERR_NOMEM on overflow. */
fs_status fs__tree_layout(const fs_tree *m, int32_t n, int train, int threads, fs_tree_layout *lay);

/* Validates x/parent counts and builds the forest in the workspace's ints:
 * a parent out of range, a cycle, more children than the arity fail naming the node. */
fs_status fs__tree_forest(const fs_tree *m, int32_t n, const int64_t *parent, size_t parent_count,
                          int32_t *ints, fs_tree_forest *f);

/* Checks the workspace pointer and size against the layout. */
fs_status fs__tree_check_ws(const void *ws, size_t bytes, const fs_tree_layout *lay);

/* Threads for a forest: one unless a level's product is large enough to split. */
int fs__tree_threads(const fs_tree *m, const fs_tree_forest *f, int max_threads);

/* Runs fn(arg, nth, id) on nth threads (directly when one does). */
void fs__tree_launch(void (*fn)(const void *arg, int nth, int id), const void *arg, int nth);

/* Worker id's share [*lo, *hi) of [lo0, hi0). */
static inline void fs__tree_split(size_t lo0, size_t hi0, int nth, int id, size_t *lo, size_t *hi) {
    const size_t n = hi0 - lo0;
    *lo = lo0 + n * (size_t)id / (size_t)nth;
    *hi = lo0 + n * (size_t)(id + 1) / (size_t)nth;
}

#endif /* FS_TREE_H */
