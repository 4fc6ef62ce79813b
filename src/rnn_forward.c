/* Sequence driver: per layer and direction, the input projection (a GEMM over
 * a chunk of steps at a time, hoisted out of the recurrence), then the time
 * loop of step phases, with packed-sequence masking. No allocation inside the
 * loop; threads meet at one barrier per phase. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "rnn_args.h"
#include "rnn_forward.h"
#include "rnn_step.h"
#include "threads.h"

/* gx of a chunk: small next to L2, which also holds the recurrent weights
 * (64 KB ran seq h256 LSTM/GRU 5-8 % faster than 256 KB, others alike). */
#define FS_PROJ_CHUNK_BYTES (64 * 1024)

typedef struct plan {
    size_t T, B, I, H, R, D, L;
    int batch_first;
    int threads; /* tiles reserved */
    int record;  /* gx (of every step) and the h history live in the record */
    size_t chunk; /* steps whose input projection is computed together (fits in L2) */
    /* workspace, in floats from its start */
    size_t gx_off, xa_off, buf_off[2], hist_off, c_off, mid_off, z_off, t_off, tile_off, total_floats;
} plan;

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

/* per_step: project the input one step at a time (the least workspace) rather
 * than a chunk of steps ahead. */
static fs_status make_plan(const fs_rnn *m, int32_t seq_len, int32_t batch, int threads, int record,
                           int per_step, plan *p) {
    if (seq_len < 1) return fs__fail(FS_ERR_INVALID_ARG, "seq_len: expected >= 1, got %d", (int)seq_len);
    if (batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)batch);
    p->T = (size_t)seq_len;
    p->B = (size_t)batch;
    p->I = (size_t)m->cfg.input_size;
    p->H = (size_t)m->cfg.hidden_size;
    p->R = m->r;
    p->D = m->dirs;
    p->L = (size_t)m->cfg.num_layers;
    p->threads = threads;
    p->record = record;
    size_t rows, cur = 0, unused = 0;
    int ok = fs__mul(p->T, p->B, &rows);
    /* The input projection runs a chunk of steps ahead of the recurrence: its
     * output (read back one block at a time by the cells) stays in L2. */
    const size_t step_bytes = p->B * m->gates * m->hp * sizeof(float);
    p->chunk = step_bytes >= FS_PROJ_CHUNK_BYTES ? 1 : FS_PROJ_CHUNK_BYTES / step_bytes;
    if (p->chunk > p->T || record) p->chunk = p->T; /* a record keeps every step's gx */
    if (per_step && !record) p->chunk = 1;
    ok = ok && reserve(&cur, record ? 0 : p->chunk * p->B, m->gates * m->hp, &p->gx_off);
    ok = ok && reserve(&cur, p->chunk * p->B, m->wrp, &p->xa_off);
    /* inner layers ping-pong between two buffers; the last layer writes y */
    for (int i = 0; i < 2; i++)
        ok = ok && reserve(&cur, (p->L > (size_t)i + 1 && !record) ? rows : 0, p->D * p->R, &p->buf_off[i]);
    /* h of the chunk's steps and the one before: copied out to y per chunk */
    ok = ok && reserve(&cur, record ? 0 : (p->chunk + 1) * p->B, m->rp, &p->hist_off);
    ok = ok && reserve(&cur, p->B, m->hp, &p->c_off);
    ok = ok && reserve(&cur, p->B, m->hp, &p->mid_off);
    ok = ok && reserve(&cur, p->B, m->hp, &p->z_off);
    ok = ok && reserve(&cur, p->B, m->urp, &p->t_off);
    /* one product tile per thread */
    ok = ok && reserve(&cur, (size_t)p->threads, fs__tile_floats(m, p->B), &p->tile_off);
    ok = ok && fs__mul(cur, sizeof(float), &unused);
    if (!ok)
        return fs__fail(FS_ERR_NOMEM, "workspace size overflows for seq_len %d, batch %d", (int)seq_len,
                        (int)batch);
    p->total_floats = cur;
    return FS_OK;
}

size_t fs__forward_ws_floats(const fs_rnn *m, int32_t seq_len, int32_t batch, int threads, int record) {
    plan p = {0};
    if (seq_len < 1 || batch < 1) return 0;
    return make_plan(m, seq_len, batch, threads, record, 0, &p) == FS_OK ? p.total_floats : 0;
}

static fs_status workspace_size(const fs_rnn *model, int32_t seq_len, int32_t batch, int per_step,
                                size_t *bytes_out) {
    fs__clear_error();
    if (!model || !bytes_out) return fs__fail(FS_ERR_NULL_ARG, "model and bytes_out must not be NULL");
    plan p;
    fs_status st = make_plan(model, seq_len, batch, fs__max_threads(), 0, per_step, &p);
    if (st != FS_OK) return st;
    *bytes_out = p.total_floats * sizeof(float);
    return FS_OK;
}

fs_status fs_rnn_forward_workspace_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                        size_t *bytes_out) {
    return workspace_size(model, seq_len, batch, 0, bytes_out);
}

fs_status fs_rnn_forward_workspace_min_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                            size_t *bytes_out) {
    return workspace_size(model, seq_len, batch, 1, bytes_out);
}

/* Row of (t, b) in a [T, B, *] or [B, T, *] array. */
static size_t row_of(const plan *p, size_t t, size_t b) {
    return p->batch_first ? b * p->T + t : t * p->B + b;
}

/* Worker id's share [*lo, *hi) of [0, n). */
static void split(size_t n, int nth, int id, size_t *lo, size_t *hi) {
    *lo = n * (size_t)id / (size_t)nth;
    *hi = n * (size_t)(id + 1) / (size_t)nth;
}

/* Input projection of steps [t0, t0 + n) into gx, rows laid out like x's
 * ([n, B] time-major, [B, n] batch-first); this thread's share. A full-rank W
 * is split by unit blocks, as the step phases that read gx are, so each
 * thread reads only what it wrote: no barrier. A low-rank W (whose rank-w
 * intermediate needs every column) is split by rows; returns 1 when the
 * threads must then meet before the steps. */
static int project_chunk(const fs_rnn *m, const fs_kernels *k, const plan *p, const fs_rnn_unit *u,
                         const float *in, size_t t0, size_t n, float *gx, float *xa, float *tile, int nth, int id) {
    const size_t G = m->gates, hp = m->hp, in_size = u->in_size, B = p->B;
    const fs_qscratch qs = fs__qscratch(m, B, tile);
    size_t lo, hi;
    if (!m->cfg.w_rank) {
        split(hp / FS_NB, nth, id, &lo, &hi);
        if (!p->batch_first)
            fs__project_blocks(m, k, u, n * B, in + t0 * B * in_size, in_size, gx, lo, hi, &qs);
        else
            for (size_t b = 0; b < B; b++)
                fs__project_blocks(m, k, u, n, in + (b * p->T + t0) * in_size, in_size, gx + b * n * G * hp, lo, hi, &qs);
        return 0;
    }
    if (!p->batch_first) { /* one contiguous run of n*B rows */
        split(n * B, nth, id, &lo, &hi);
        if (hi > lo)
            fs__project(m, k, u, hi - lo, in + (t0 * B + lo) * in_size, in_size, xa + lo * m->wrp,
                        gx + lo * G * hp, &qs);
        return 1;
    }
    split(B, nth, id, &lo, &hi); /* one run of n rows per sequence */
    for (size_t b = lo; b < hi; b++)
        fs__project(m, k, u, n, in + (b * p->T + t0) * in_size, in_size, xa + b * n * m->wrp,
                    gx + b * n * G * hp, &qs);
    return 1;
}

/* One layer and direction of one forward call: what every worker shares. */
typedef struct unit_job {
    const fs_rnn *m;
    const fs_kernels *k;
    const plan *p;
    const fs_rnn_unit *u;
    size_t dir;
    const float *in;
    float *out;
    const int32_t *lengths;
    float *ws;
    float *gx;   /* the chunk's input projection (a record: every step's) */
    float *hist; /* [chunk + 1][B][rp]: the h of step s is slot s % (chunk + 1) */
    const fs_record *rec; /* NULL: not recording */
    size_t ui;            /* the unit's index in the record */
    fs_phase phases[FS_MAX_PHASES];
    size_t blocks[FS_MAX_PHASES], n_phases;
} unit_job;

static float *h_slot(const unit_job *j, size_t s) {
    return j->hist + s % (j->p->chunk + 1) * j->p->B * j->m->rp;
}

/* The outputs of steps [s0, s0 + n) into y, this worker's share of the
 * (step, row) pairs: whole rows at a time, so y's lines are written in long
 * runs rather than a few bytes per unit block (which left batched runs
 * waiting on a read-for-ownership per store); rows past their length get 0.
 * The next chunk's steps overwrite these slots from its second step on,
 * after the barrier that ends its first step. */
static void copy_out(const unit_job *j, size_t s0, size_t n, int nth, int id) {
    const plan *p = j->p;
    const size_t B = p->B, R = p->R, rp = j->m->rp, DR = p->D * R, T = p->T;
    size_t lo, hi;
    split(n * B, nth, id, &lo, &hi);
    for (size_t i = lo; i < hi;) {
        const size_t s = s0 + i / B, b = i % B, t = j->dir ? T - 1 - s : s;
        const float *h = h_slot(j, s + 1) + b * rp;
        float *y = j->out + row_of(p, t, b) * DR + j->dir * R;
        size_t rows = 1; /* time-major, one direction, unpadded: the step's rows are one run */
        if (!p->batch_first && !j->lengths && DR == R && R == rp) rows = (B - b < hi - i ? B - b : hi - i);
        if (j->lengths && t >= (size_t)j->lengths[b]) memset(y, 0, R * sizeof(float));
        else memcpy(y, h, rows * R * sizeof(float));
        i += rows;
    }
}

/* Points the step's record at row (t, 0) of the unit's record arrays (rows
 * of one step are ldr rows apart: 1 time-major, T batch-first). */
static void record_step(const unit_job *j, size_t t, fs_step *st) {
    const fs_record *r = j->rec;
    const fs_rnn *m = j->m;
    const size_t row = row_of(j->p, t, 0), ui = j->ui, hp = m->hp;
    st->ld_rec = j->p->batch_first ? j->p->T : 1;
    st->rec_acc = r->acc + ui * r->acc_unit + row * m->gh * hp;
    st->rec_c = r->c ? r->c + ui * r->c_unit + row * hp : NULL;
    st->rec_mid = r->mid ? r->mid + ui * r->mid_unit + row * hp : NULL;
    st->rec_hn = r->hn ? r->hn + ui * r->hn_unit + row * hp : NULL;
}

/* Worker id of nth: its share of each chunk's projection, of each step
 * phase (unit blocks) and of the chunk's outputs, meeting the others at a
 * barrier after each phase (and a row-split projection). */
static void unit_worker(const unit_job *j, int id, int nth) {
    const fs_rnn *m = j->m;
    const plan *p = j->p;
    const size_t T = p->T, B = p->B, G = m->gates, hp = m->hp, dir = j->dir;
    float *ws = j->ws, *gx = j->gx;
    float *tile = ws + p->tile_off + (size_t)id * fs__tile_floats(m, B);
    for (size_t s0 = 0; s0 < T; s0 += p->chunk) {
        const size_t n = T - s0 < p->chunk ? T - s0 : p->chunk;
        const size_t t0 = dir ? T - s0 - n : s0; /* first time step of the chunk */
        if (project_chunk(m, j->k, p, j->u, j->in, t0, n, gx, ws + p->xa_off, tile, nth, id)) FS_BARRIER(nth);
        for (size_t s = s0; s < s0 + n; s++) {
            const size_t t = dir ? T - 1 - s : s, tc = t - t0;
            fs_step st = {
                .model = m, .k = j->k, .unit = j->u, .batch = B,
                .gx = gx + (p->batch_first ? tc : tc * B) * G * hp,
                .ldgx = (p->batch_first ? n : 1) * G * hp,
                .lengths = j->lengths, .t = t,
                .h_prev = h_slot(j, s), .h_new = h_slot(j, s + 1), .c = ws + p->c_off,
                .mid = ws + p->mid_off, .z = ws + p->z_off, .t_low = ws + p->t_off,
                .y = NULL, /* copy_out writes y */
            };
            if (j->rec) record_step(j, t, &st);
            else if (nth == 1 && fs__step_fused(&st, tile)) continue;
            for (size_t ph = 0; ph < j->n_phases; ph++) {
                size_t lo, hi;
                split(j->blocks[ph], nth, id, &lo, &hi);
                fs__step_phase(&st, j->phases[ph], lo, hi, tile);
                FS_BARRIER(nth);
            }
        }
        copy_out(j, s0, n, nth, id);
    }
}

/* One layer, one direction: input rows `in` ([T*B][in_size]) to columns
 * [dir*R, dir*R + R) of `out` ([T*B][D*R]). */
static void run_unit(const fs_rnn *m, const fs_kernels *k, const plan *p, size_t layer, size_t dir,
                     const float *in, float *out, const fs_seq_args *a, float *ws, const fs_record *rec) {
    const size_t B = p->B, hp = m->hp, unit_at = layer * p->D + dir;
    unit_job j = {.m = m, .k = k, .p = p, .u = &m->units[unit_at], .dir = dir, .in = in, .out = out,
                  .lengths = a->lengths, .ws = ws, .gx = ws + p->gx_off, .hist = ws + p->hist_off,
                  .rec = rec, .ui = unit_at};
    if (rec) j.gx = rec->gx + unit_at * rec->gx_unit, j.hist = rec->hist + unit_at * rec->hist_unit;
    j.n_phases = fs__step_phases(m, j.phases, j.blocks);
    float *c = ws + p->c_off;

    fs__load_state(a->h0 ? a->h0 + unit_at * B * p->R : NULL, B, p->R, m->rp, h_slot(&j, 0));
    fs__load_state(a->c0 ? a->c0 + unit_at * B * p->H : NULL, B, p->H, hp, c);
    memset(ws + p->mid_off, 0, B * hp * sizeof(float));
    const int nt = fs__threads_for(p->threads, 2.0 * (double)B * (double)(m->gh * hp) * (double)m->r,
                                   j.blocks[j.n_phases - 1]);
    if (nt == 1) {
        unit_worker(&j, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        unit_worker(&j, FS_THREAD_ID(), FS_THREAD_COUNT());
    }
    fs__store_state(h_slot(&j, p->T), B, p->R, m->rp, a->h_n ? a->h_n + unit_at * B * p->R : NULL);
    if (m->cfg.cell == FS_CELL_LSTM) fs__store_state(c, B, p->H, hp, a->c_n ? a->c_n + unit_at * B * p->H : NULL);
}

/* A workspace sized for fewer threads (fs_set_num_threads raised since) runs on
 * as many as it holds tiles for: the tiles come last. Returns the floats needed. */
static size_t fit_threads(const fs_rnn *m, plan *p, size_t ws_floats) {
    const size_t tile = fs__tile_floats(m, p->B), align = FS_ALIGN / sizeof(float);
    size_t need = p->total_floats;
    while (p->threads > 1 && ws_floats < need)
        need = p->tile_off + ((size_t)--p->threads * tile + align - 1) / align * align;
    return need;
}

/* A residual layer's output += its input ([T*B][D*R] both): the output the
 * next layer reads (and a record keeps). Rows past a sequence's end stay zero:
 * the input is zero there too (the first layer is never residual). */
static void add_residual(const plan *p, const float *in, float *out) {
    const size_t n = p->T * p->B * p->D * p->R;
    for (size_t i = 0; i < n; i++) out[i] += in[i];
}

fs_status fs__rnn_forward_run(const fs_rnn *model, const fs_seq_args *args, const fs_kernels *k, int threads,
                              float *ws, size_t ws_floats, const fs_record *rec) {
    plan p;
    fs_status st = make_plan(model, args->seq_len, args->batch, threads, rec != NULL, 0, &p);
    if (st != FS_OK) return st;
    if ((st = fs__check_seq_args(model, args)) != FS_OK) return st;
    size_t need = fit_threads(model, &p, ws_floats);
    /* one too small for the chunked input projection projects a step at a time */
    if (ws_floats < need && !rec && p.chunk > 1) {
        make_plan(model, args->seq_len, args->batch, threads, 0, 1, &p);
        need = fit_threads(model, &p, ws_floats);
    }
    p.batch_first = args->batch_first;
    if ((st = fs__check_buffer("workspace", ws, ws_floats * sizeof(float), need * sizeof(float))) != FS_OK)
        return st;
    const float *in = args->x;
    for (size_t l = 0; l < p.L; l++) {
        float *out = l + 1 == p.L ? args->y
                     : rec       ? rec->layer_out + l * p.T * p.B * p.D * p.R
                                 : ws + p.buf_off[l % 2];
        for (size_t d = 0; d < p.D; d++) run_unit(model, k, &p, l, d, in, out, args, ws, rec);
        if (l && model->cfg.residual) add_residual(&p, in, out);
        in = out;
    }
    return FS_OK;
}

fs_status fs_rnn_forward_ws(const fs_rnn *model, const fs_seq_args *args, void *workspace,
                            size_t workspace_bytes) {
    fs__clear_error();
    if (!model || !args) return fs__fail(FS_ERR_NULL_ARG, "model and args must not be NULL");
    return fs__rnn_forward_run(model, args, fs__kernels(), fs__max_threads(), workspace,
                               workspace_bytes / sizeof(float), NULL);
}

fs_status fs_rnn_forward(const fs_rnn *model, const fs_seq_args *args) {
    fs__clear_error();
    if (!model || !args) return fs__fail(FS_ERR_NULL_ARG, "model and args must not be NULL");
    const int threads = fs__max_threads(); /* read once: the size and the run agree */
    plan p;
    fs_status st = fs__check_seq_args(model, args); /* a shape error, not a workspace of the wrong size */
    if (st != FS_OK) return st;
    st = make_plan(model, args->seq_len, args->batch, threads, 0, 0, &p);
    if (st != FS_OK) return st;
    const size_t bytes = p.total_floats * sizeof(float);
    void *ws = fs__alloc(bytes);
    if (!ws) return fs__fail(FS_ERR_NOMEM, "out of memory for a %zu-byte workspace", bytes);
    st = fs__rnn_forward_run(model, args, fs__kernels(), threads, ws, p.total_floats, NULL);
    fs__free(ws);
    return st;
}
