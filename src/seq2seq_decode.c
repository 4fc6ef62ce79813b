/* Decode loops of an encoder-decoder (fastseq.h section 8): per step, the
 * input (embedding row or fed-back output) -> the stream step over every
 * layer -> the head (the kernel table's gemm on a head packed once per call)
 * -> argmax, beam top-k or the continuous output. No Python and no allocation
 * inside the loop: everything is sized and allocated before the first step.
 *
 * Tokens: the first layer's input projection of a token depends on the token
 * only, so a call projects the embedding once ([V][gates * hp], biases folded:
 * the token table) and a step gathers its rows instead of a GEMM over the
 * batch. The gemm sums a row the same way whatever the rows around it
 * (kernels.h), so the table holds the very bits the step would compute. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "rnn.h"
#include "rnn_args.h"
#include "rnn_step.h"
#include "rnn_stream.h"

/* One decode call's shapes and scratch over `rows` stream rows. */
typedef struct decode {
    const fs_decoder *d;
    const fs_kernels *k;
    size_t rows, I, R, H, V, Vp, L, G; /* G: layer 0's projected floats per row */
    int lstm;
    fs_rnn_stream *stream;
    float *x;       /* [rows][I] the step's input (none with a token table) */
    float *table;   /* [V][G] layer 0's input projection per token, or NULL */
    float *gx;      /* [rows][G] the step's rows of the table */
    float *y;       /* [rows][R] the last layer's h */
    float *logits;  /* [rows][Vp] */
    float *head;    /* [Vp/8][R][8]: the head packed as one-gate blocks */
    float *bias;    /* [Vp] zero padded */
    void *mem;
} decode;

static int mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t ab;
    return fs__mul(a, b, &ab) && fs__mul(ab, c, out);
}

static fs_status check_decoder(const fs_decoder *d, int tokens) {
    if (!d || !d->model) return fs__fail(FS_ERR_NULL_ARG, "decoder and decoder->model must not be NULL");
    const fs_rnn *m = d->model;
    if (m->dirs != 1)
        return fs__fail(FS_ERR_UNSUPPORTED, "decoder: a bidirectional model cannot decode step by step");
    if (d->vocab < 1) return fs__fail(FS_ERR_INVALID_ARG, "vocab: expected >= 1, got %d", (int)d->vocab);
    const size_t V = (size_t)d->vocab, I = (size_t)m->cfg.input_size;
    size_t n;
    if (!d->head_weight) return fs__fail(FS_ERR_NULL_ARG, "head_weight must not be NULL");
    if (!fs__mul(V, m->r, &n)) return fs__fail(FS_ERR_NOMEM, "head_weight: V x R overflows");
    fs_status st = fs__check_count("head_weight", d->head_weight, d->head_weight_count, n,
                                   "(vocab %zu x decoder features %zu)", V, m->r);
    if (st == FS_OK) st = fs__check_count("head_bias", d->head_bias, d->head_bias_count, V, "(vocab %zu)", V);
    if (st != FS_OK) return st;
    if (tokens) {
        if (!d->embedding)
            return fs__fail(FS_ERR_NULL_ARG, "embedding: token decoding needs an embedding [vocab, input_size]");
        if (!fs__mul(V, I, &n)) return fs__fail(FS_ERR_NOMEM, "embedding: V x input_size overflows");
        return fs__check_count("embedding", d->embedding, d->embedding_count, n,
                               "(vocab %zu x decoder input_size %zu)", V, I);
    }
    if (d->embedding)
        return fs__fail(FS_ERR_INVALID_ARG, "embedding: continuous decoding feeds the head output back; pass none");
    if (I != V)
        return fs__fail(FS_ERR_SHAPE, "decoder input_size: expected vocab %zu (the head output is fed back), got %zu",
                        V, I);
    return FS_OK;
}

/* Counts of the initial states and outputs against batch, max_len. */
static fs_status check_common(const fs_decoder *d, int32_t batch, int32_t max_len, const float *h0, size_t h0_count,
                              const float *c0, size_t c0_count, size_t out_count, size_t out_per_step,
                              const char *out_name, const void *out, const void *lengths, size_t lengths_count) {
    const fs_rnn *m = d->model;
    if (batch < 1) return fs__fail(FS_ERR_INVALID_ARG, "batch: expected >= 1, got %d", (int)batch);
    if (max_len < 1) return fs__fail(FS_ERR_INVALID_ARG, "max_len: expected >= 1, got %d", (int)max_len);
    if (!out || !lengths) return fs__fail(FS_ERR_NULL_ARG, "%s and lengths_out must not be NULL", out_name);
    if (c0 && m->cfg.cell != FS_CELL_LSTM) return fs__fail(FS_ERR_INVALID_ARG, "c0: only an LSTM has a cell state");
    const size_t B = (size_t)batch, L = (size_t)m->cfg.num_layers, T = (size_t)max_len;
    size_t nh, nc, no;
    if (!fs__mul(L * B, m->r, &nh) || !fs__mul(L * B, (size_t)m->cfg.hidden_size, &nc) ||
        !fs__mul(B * T, out_per_step, &no))
        return fs__fail(FS_ERR_NOMEM, "sizes overflow for batch %zu, max_len %zu", B, T);
    const char *state = "(num_layers %zu x batch %zu x %zu)";
    fs_status st = fs__check_count("h0", h0, h0_count, nh, state, L, B, m->r);
    if (st == FS_OK) st = fs__check_count("c0", c0, c0_count, nc, state, L, B, (size_t)m->cfg.hidden_size);
    if (st == FS_OK)
        st = fs__check_count(out_name, out, out_count, no, "(batch %zu x max_len %zu x %zu)", B, T, out_per_step);
    if (st == FS_OK) st = fs__check_count("lengths_out", lengths, lengths_count, B, "(batch %zu)", B);
    return st;
}

/* Every argument of fs_decode_greedy / fs_decode_beam they share. */
static fs_status check_token_call(const fs_decoder *d, int32_t batch, const float *h0, size_t h0_count,
                                  const float *c0, size_t c0_count, int32_t max_len, int32_t bos, int32_t eos,
                                  const int32_t *tokens, size_t tokens_count, const int32_t *lengths,
                                  size_t lengths_count, const float *scores, size_t scores_count) {
    fs_status st = check_decoder(d, 1);
    if (st == FS_OK)
        st = check_common(d, batch, max_len, h0, h0_count, c0, c0_count, tokens_count, 1, "tokens_out", tokens,
                          lengths, lengths_count);
    if (st != FS_OK) return st;
    if (bos < 0 || bos >= d->vocab)
        return fs__fail(FS_ERR_INVALID_ARG, "bos: expected a token in [0, %d), got %d", (int)d->vocab, (int)bos);
    if (eos < -1 || eos >= d->vocab)
        return fs__fail(FS_ERR_INVALID_ARG, "eos: expected -1 (none) or a token in [0, %d), got %d", (int)d->vocab,
                        (int)eos);
    return fs__check_count("scores_out", scores, scores_count, (size_t)batch, "(batch %d)", (int)batch);
}

static void decode_free(decode *s) {
    fs_rnn_stream_free(s->stream);
    fs__free(s->mem);
}

/* A token table pays when projecting V tokens once costs no more than the
 * rows x steps projections it replaces (it is then no larger than those). */
static int use_table(size_t V, size_t rows, size_t steps) { return V / steps <= rows; }

/* Allocates the stream and scratch for `rows` rows, packs the head, projects
 * the token table (tokens: steps is max_len; 0: continuous) and loads the
 * states: row r starts from caller row r / rep (rep copies of each). */
static fs_status decode_init(decode *s, const fs_decoder *d, size_t rows, size_t rep, size_t steps, const float *h0,
                             const float *c0) {
    const fs_rnn *m = d->model;
    memset(s, 0, sizeof *s);
    s->d = d;
    s->k = fs__kernels();
    s->rows = rows;
    s->I = (size_t)m->cfg.input_size;
    s->R = m->r;
    s->H = (size_t)m->cfg.hidden_size;
    s->V = (size_t)d->vocab;
    s->Vp = (s->V + FS_NB - 1) / FS_NB * FS_NB;
    s->L = (size_t)m->cfg.num_layers;
    s->lstm = m->cfg.cell == FS_CELL_LSTM;
    s->G = m->gates * m->hp;
    if (rows > INT32_MAX) return fs__fail(FS_ERR_NOMEM, "batch x beam_size %zu exceeds INT32_MAX", rows);
    const int table = steps && use_table(s->V, rows, steps);
    const size_t nv = table ? s->V : 0, nx = table ? 0 : rows, ng = table ? rows : 0;
    /* floats of x, y, logits, head, bias, h, c, table, gx, the table's low-rank
     * intermediate, the table projection's tile (int8: its quantised rows):
     * a x b x c each */
    const size_t dims[11][3] = {{nx, s->I, 1}, {rows, s->R, 1}, {rows, s->Vp, 1}, {s->Vp, s->R, 1}, {s->Vp, 1, 1},
                                {s->L, rows, s->R}, {s->L, rows, s->lstm ? s->H : 0}, {nv, s->G, 1}, {ng, s->G, 1},
                                {nv, m->wrp, 1}, {table ? fs__tile_floats(m, 1) : 0, 1, 1}};
    size_t at = 0, offs[11], state_h = 0, state_c = 0;
    for (int i = 0; i < 11; i++) {
        size_t n, bytes;
        offs[i] = at;
        if (!mul3(dims[i][0], dims[i][1], dims[i][2], &n) || !fs__mul(n, sizeof(float), &bytes) ||
            !fs__add(at, fs__align_up(bytes), &at))
            return fs__fail(FS_ERR_NOMEM, "decode scratch overflows for %zu rows", rows);
        if (i == 5) state_h = n;
        if (i == 6) state_c = n;
    }
    if (!(s->mem = fs__alloc(at))) return fs__fail(FS_ERR_NOMEM, "out of memory for decode scratch (%zu bytes)", at);
    char *base = s->mem;
    s->x = (float *)(base + offs[0]);
    s->y = (float *)(base + offs[1]);
    s->logits = (float *)(base + offs[2]);
    s->head = (float *)(base + offs[3]);
    s->bias = (float *)(base + offs[4]);
    float *h = (float *)(base + offs[5]), *c = (float *)(base + offs[6]);
    if (table) {
        s->table = (float *)(base + offs[7]);
        s->gx = (float *)(base + offs[8]);
        const fs_qscratch qs = fs__qscratch(m, 1, (float *)(base + offs[10]));
        fs__project(m, s->k, &m->units[0], s->V, d->embedding, s->I, (float *)(base + offs[9]), s->table, &qs);
    }
    fs_status st = fs_rnn_stream_create(m, (int32_t)rows, &s->stream);
    if (st != FS_OK) {
        decode_free(s);
        return st;
    }
    memset(s->head, 0, s->Vp * s->R * sizeof(float));
    for (size_t v = 0; v < s->V; v++)
        for (size_t r = 0; r < s->R; r++)
            s->head[((v / FS_NB) * s->R + r) * FS_NB + v % FS_NB] = d->head_weight[v * s->R + r];
    for (size_t v = 0; v < s->Vp; v++) s->bias[v] = v < s->V && d->head_bias ? d->head_bias[v] : 0.0f;
    /* states [L][B][n] -> [L][rows][n], each caller row repeated rep times */
    const size_t B = rows / rep;
    for (size_t l = 0; l < s->L; l++)
        for (size_t r = 0; r < rows; r++) {
            const size_t src = l * B + r / rep, dst = l * rows + r;
            if (h0) memcpy(h + dst * s->R, h0 + src * s->R, s->R * sizeof(float));
            else memset(h + dst * s->R, 0, s->R * sizeof(float));
            if (s->lstm && c0) memcpy(c + dst * s->H, c0 + src * s->H, s->H * sizeof(float));
            else if (s->lstm) memset(c + dst * s->H, 0, s->H * sizeof(float));
        }
    st = fs_rnn_stream_set_state(s->stream, h, state_h, s->lstm ? c : NULL, state_c);
    if (st != FS_OK) decode_free(s);
    return st;
}

/* One step of rows [0, rows): the stream over s->x (or the gathered s->gx),
 * then logits = head(y). */
static fs_status decode_step(decode *s, size_t rows) {
    fs_status st = fs__rnn_stream_step_rows(s->stream, s->table ? NULL : s->x, s->gx, rows, s->y);
    if (st != FS_OK) return st;
    s->k->gemm(rows, s->R, s->y, s->R, s->head, 1, s->Vp / FS_NB, s->bias, s->logits, s->Vp);
    return FS_OK;
}

/* The next input of a row: its token's table row, or its embedding. */
static void embed(decode *s, size_t row, int32_t token) {
    if (s->table) memcpy(s->gx + row * s->G, s->table + (size_t)token * s->G, s->G * sizeof(float));
    else memcpy(s->x + row * s->I, s->d->embedding + (size_t)token * s->I, s->I * sizeof(float));
}

/* log sum exp of a row's V logits, in double. */
static double log_sum_exp(const float *z, size_t V) {
    float mx = z[0];
    for (size_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0;
    for (size_t v = 0; v < V; v++) sum += exp((double)z[v] - (double)mx);
    return (double)mx + log(sum);
}

/* tokens_out rows: `len` tokens, then fill (eos, or 0 without one) to max_len. */
static void fill_tail(int32_t *row, size_t len, size_t T, int32_t eos) {
    for (size_t t = len; t < T; t++) row[t] = eos >= 0 ? eos : 0;
}

fs_status fs_decode_greedy(const fs_decoder *decoder, int32_t batch, const float *h0, size_t h0_count,
                           const float *c0, size_t c0_count, int32_t max_len, int32_t bos, int32_t eos,
                           int32_t *tokens_out, size_t tokens_count, int32_t *lengths_out, size_t lengths_count,
                           float *scores_out, size_t scores_count) {
    fs__clear_error();
    fs_status st = check_token_call(decoder, batch, h0, h0_count, c0, c0_count, max_len, bos, eos, tokens_out,
                                    tokens_count, lengths_out, lengths_count, scores_out, scores_count);
    if (st != FS_OK) return st;
    decode s;
    if ((st = decode_init(&s, decoder, (size_t)batch, 1, (size_t)max_len, h0, c0)) != FS_OK) return st;
    const size_t B = (size_t)batch, T = (size_t)max_len;
    /* Rows [0, running) hold the running sequences (row r: sequence seq[r]); a
     * sequence that ends trades rows with the last running one, so a step only
     * computes running rows. A row's bits do not depend on its place. */
    double *score = fs__alloc(B * (sizeof(double) + sizeof(size_t) + sizeof(int32_t)));
    if (!score) {
        decode_free(&s);
        return fs__fail(FS_ERR_NOMEM, "out of memory for %zu sequences' scores", B);
    }
    size_t *seq = (size_t *)(score + B);
    int32_t *next = (int32_t *)(seq + B); /* the row's next input token; -1: it ended */
    for (size_t b = 0; b < B; b++) {
        lengths_out[b] = (int32_t)T;
        score[b] = 0.0;
        seq[b] = b;
        embed(&s, b, bos);
    }
    size_t running = B;
    for (size_t t = 0; t < T && running; t++) {
        if ((st = decode_step(&s, running)) != FS_OK) break;
        for (size_t r = 0; r < running; r++) {
            const size_t b = seq[r];
            const float *z = s.logits + r * s.Vp;
            int32_t best = 0;
            for (size_t v = 1; v < s.V; v++)
                if (z[v] > z[best]) best = (int32_t)v;
            tokens_out[b * T + t] = best;
            if (scores_out) score[b] += (double)z[best] - log_sum_exp(z, s.V);
            next[r] = best == eos ? -1 : best;
            if (best == eos) {
                lengths_out[b] = (int32_t)t;
                fill_tail(tokens_out + b * T, t, T, eos);
            }
        }
        for (size_t r = 0; r < running && st == FS_OK;) {
            if (next[r] >= 0) {
                r++;
                continue;
            }
            const size_t last = --running, sq = seq[r];
            const int32_t nt = next[r];
            if (r != last) st = fs__rnn_stream_swap_rows(s.stream, r, last); /* inputs: embedded below */
            seq[r] = seq[last], seq[last] = sq;
            next[r] = next[last], next[last] = nt;
        }
        for (size_t r = 0; r < running; r++) embed(&s, r, next[r]);
    }
    for (size_t b = 0; scores_out && b < B; b++) scores_out[b] = (float)score[b];
    fs__free(score);
    decode_free(&s);
    return st;
}

/* GNMT's length penalty ((5 + n) / 6)^alpha. */
static double length_penalty(size_t n, double alpha) { return pow((5.0 + (double)n) / 6.0, alpha); }

/* The beam's per-call arrays, carved from one allocation. */
typedef struct beam {
    size_t K, T;
    double *score;       /* [rows] log P of each alive hypothesis; -inf: none */
    double *best_norm;   /* [B] best finished score with the penalty; -inf: none yet */
    double *best_raw;    /* [B] its log P */
    double *cand_score;  /* [2K] one row's ranked candidates */
    size_t *cand_index;  /* [2K] their hypothesis x V + token */
    size_t *parent;      /* [rows] row each new hypothesis extends */
    int32_t *hist, *hist_next; /* [rows][T] tokens so far */
    unsigned char *done; /* [B] */
    float *h, *c, *h_next, *c_next; /* [L][rows][R], [L][rows][H]: states reordered */
    void *mem;
} beam;

static fs_status beam_init(beam *bm, const decode *s, size_t B, size_t K, size_t T) {
    const size_t rows = s->rows, nh = s->L * rows * s->R, nc = s->lstm ? s->L * rows * s->H : 0;
    size_t hist_bytes;
    if (!mul3(rows, T, sizeof(int32_t), &hist_bytes) || rows > SIZE_MAX / sizeof(double))
        return fs__fail(FS_ERR_NOMEM, "beam scratch overflows for %zu rows x max_len %zu", rows, T);
    const size_t sizes[12] = {rows * sizeof(double), B * sizeof(double), B * sizeof(double), 2 * K * sizeof(double),
                              2 * K * sizeof(size_t), rows * sizeof(size_t), hist_bytes, hist_bytes, B, nh * sizeof(float), nc * sizeof(float), 0};
    size_t at = 0, offs[12];
    for (int i = 0; i < 11; i++) {
        offs[i] = at;
        if (!fs__add(at, fs__align_up(sizes[i]), &at)) return fs__fail(FS_ERR_NOMEM, "beam scratch overflows");
    }
    /* h, c twice: the states and their reordered copy */
    const size_t states = at - offs[9];
    offs[11] = at;
    if (!fs__add(at, states, &at)) return fs__fail(FS_ERR_NOMEM, "beam scratch overflows");
    memset(bm, 0, sizeof *bm);
    if (!(bm->mem = fs__alloc(at))) return fs__fail(FS_ERR_NOMEM, "out of memory for beam scratch (%zu bytes)", at);
    char *p = bm->mem;
    bm->K = K;
    bm->T = T;
    bm->score = (double *)(p + offs[0]);
    bm->best_norm = (double *)(p + offs[1]);
    bm->best_raw = (double *)(p + offs[2]);
    bm->cand_score = (double *)(p + offs[3]);
    bm->cand_index = (size_t *)(p + offs[4]);
    bm->parent = (size_t *)(p + offs[5]);
    bm->hist = (int32_t *)(p + offs[6]);
    bm->hist_next = (int32_t *)(p + offs[7]);
    bm->done = (unsigned char *)(p + offs[8]);
    bm->h = (float *)(p + offs[9]);
    bm->c = (float *)(p + offs[10]);
    bm->h_next = (float *)(p + offs[11]);
    bm->c_next = (float *)(p + offs[11] + (offs[10] - offs[9]));
    return FS_OK;
}

/* Ranks one row's extensions: the 2K best (score desc; ties: lowest hypothesis x V + token,
 * as candidates arrive in that order and only a strictly better one displaces). Returns how many. */
static size_t rank_candidates(const decode *s, beam *bm, size_t b) {
    const size_t K = bm->K, V = s->V, cap = 2 * K;
    size_t n = 0;
    for (size_t k = 0; k < K; k++) {
        const size_t row = b * K + k;
        if (bm->score[row] == -INFINITY) continue;
        const float *z = s->logits + row * s->Vp;
        const double base = bm->score[row] - log_sum_exp(z, V);
        for (size_t v = 0; v < V; v++) {
            const double sc = base + (double)z[v];
            if (n == cap && !(sc > bm->cand_score[n - 1])) continue;
            size_t at = n < cap ? n++ : n - 1;
            while (at > 0 && sc > bm->cand_score[at - 1]) {
                bm->cand_score[at] = bm->cand_score[at - 1];
                bm->cand_index[at] = bm->cand_index[at - 1];
                at--;
            }
            bm->cand_score[at] = sc;
            bm->cand_index[at] = k * V + v;
        }
    }
    return n;
}

/* A finished hypothesis of row b: `len` tokens of hypothesis `src` (then `last`, when >= 0). */
static void finish(beam *bm, size_t b, const int32_t *src, size_t len, int32_t last, double raw, double alpha,
                   int32_t eos, int32_t *tokens_out, int32_t *lengths_out) {
    const size_t n = len + (last >= 0);
    const double norm = raw / length_penalty(n, alpha);
    if (!(norm > bm->best_norm[b])) return; /* ties: the first found stays */
    bm->best_norm[b] = norm;
    bm->best_raw[b] = raw;
    int32_t *out = tokens_out + b * bm->T;
    memcpy(out, src, len * sizeof(int32_t));
    lengths_out[b] = (int32_t)len;
    fill_tail(out, len, bm->T, eos);
}

/* One step of row b's beam after the logits: finished and next hypotheses. */
static void beam_row_step(const decode *s, beam *bm, size_t b, size_t t, int32_t eos, double alpha,
                          int32_t *tokens_out, int32_t *lengths_out) {
    const size_t K = bm->K, V = s->V, T = bm->T, n = rank_candidates(s, bm, b);
    size_t alive = 0;
    for (size_t i = 0; i < n && alive < K; i++) {
        const size_t k = bm->cand_index[i] / V, row = b * K + k;
        const int32_t v = (int32_t)(bm->cand_index[i] % V);
        if (v == eos) {
            if (i < K) finish(bm, b, bm->hist + row * T, t, eos, bm->cand_score[i], alpha, eos, tokens_out, lengths_out);
            continue;
        }
        const size_t dst = b * K + alive++;
        bm->parent[dst] = row;
        bm->score[dst] = bm->cand_score[i]; /* score is read only through cand_score from here on */
        memcpy(bm->hist_next + dst * T, bm->hist + row * T, t * sizeof(int32_t));
        bm->hist_next[dst * T + t] = v;
    }
    for (size_t k = alive; k < K; k++) {
        bm->parent[b * K + k] = b * K;
        bm->score[b * K + k] = -INFINITY;
    }
    if (alive == 0) {
        bm->done[b] = 1;
        return;
    }
    if (t + 1 == T) {
        for (size_t k = 0; k < alive; k++)
            finish(bm, b, bm->hist_next + (b * K + k) * T, T, -1, bm->score[b * K + k], alpha, eos, tokens_out,
                   lengths_out);
        return;
    }
    /* log P only falls: an alive hypothesis ends at best at its own score over the
     * largest penalty of the lengths still reachable (t + 2 .. T tokens) */
    const double lp = fmax(length_penalty(t + 2, alpha), length_penalty(T, alpha));
    if (bm->best_norm[b] >= bm->score[b * K] / lp) bm->done[b] = 1;
}

/* Rows of the stream's states in the order of bm->parent. */
static fs_status beam_reorder(const decode *s, beam *bm) {
    const size_t rows = s->rows, nh = s->L * rows * s->R, nc = s->lstm ? s->L * rows * s->H : 0;
    fs_status st = fs_rnn_stream_get_state(s->stream, bm->h, nh, s->lstm ? bm->c : NULL, nc);
    if (st != FS_OK) return st;
    for (size_t l = 0; l < s->L; l++)
        for (size_t r = 0; r < rows; r++) {
            const size_t src = l * rows + bm->parent[r], dst = l * rows + r;
            memcpy(bm->h_next + dst * s->R, bm->h + src * s->R, s->R * sizeof(float));
            if (s->lstm) memcpy(bm->c_next + dst * s->H, bm->c + src * s->H, s->H * sizeof(float));
        }
    return fs_rnn_stream_set_state(s->stream, bm->h_next, nh, s->lstm ? bm->c_next : NULL, nc);
}

fs_status fs_decode_beam(const fs_decoder *decoder, int32_t batch, int32_t beam_size, const float *h0,
                         size_t h0_count, const float *c0, size_t c0_count, int32_t max_len, int32_t bos,
                         int32_t eos, float length_penalty_alpha, int32_t *tokens_out, size_t tokens_count,
                         int32_t *lengths_out, size_t lengths_count, float *scores_out, size_t scores_count) {
    fs__clear_error();
    fs_status st = check_token_call(decoder, batch, h0, h0_count, c0, c0_count, max_len, bos, eos, tokens_out,
                                    tokens_count, lengths_out, lengths_count, scores_out, scores_count);
    if (st != FS_OK) return st;
    if (beam_size < 1) return fs__fail(FS_ERR_INVALID_ARG, "beam_size: expected >= 1, got %d", (int)beam_size);
    if (!isfinite(length_penalty_alpha))
        return fs__fail(FS_ERR_INVALID_ARG, "length_penalty: expected a finite number, got %g", (double)length_penalty_alpha);
    const size_t B = (size_t)batch, K = (size_t)beam_size, T = (size_t)max_len;
    const double alpha = (double)length_penalty_alpha;
    size_t rows;
    if (!fs__mul(B, K, &rows)) return fs__fail(FS_ERR_NOMEM, "batch x beam_size overflows");
    decode s;
    beam bm;
    if ((st = decode_init(&s, decoder, rows, K, T, h0, c0)) != FS_OK) return st;
    if ((st = beam_init(&bm, &s, B, K, T)) != FS_OK) {
        decode_free(&s);
        return st;
    }
    for (size_t r = 0; r < rows; r++) {
        bm.score[r] = r % K == 0 ? 0.0 : -INFINITY; /* one hypothesis per row to begin with */
        embed(&s, r, bos);
    }
    for (size_t b = 0; b < B; b++) {
        bm.best_norm[b] = bm.best_raw[b] = -INFINITY;
        bm.done[b] = 0;
        lengths_out[b] = 0;
        fill_tail(tokens_out + b * T, 0, T, eos);
    }
    for (size_t t = 0; t < T; t++) {
        if ((st = decode_step(&s, rows)) != FS_OK) break;
        size_t running = 0;
        for (size_t b = 0; b < B; b++) {
            if (bm.done[b]) {
                for (size_t k = 0; k < K; k++) bm.parent[b * K + k] = b * K + k;
                continue;
            }
            beam_row_step(&s, &bm, b, t, eos, alpha, tokens_out, lengths_out);
            running += !bm.done[b];
        }
        if (!running || t + 1 == T) break;
        int32_t *swap = bm.hist;
        bm.hist = bm.hist_next;
        bm.hist_next = swap;
        for (size_t r = 0; r < rows; r++) /* a row that is done or has no hypothesis: any valid token */
            embed(&s, r, bm.done[r / K] || bm.score[r] == -INFINITY ? bos : bm.hist[r * T + t]);
        if ((st = beam_reorder(&s, &bm)) != FS_OK) break;
    }
    for (size_t b = 0; scores_out && b < B; b++) scores_out[b] = (float)bm.best_raw[b];
    fs__free(bm.mem);
    decode_free(&s);
    return st;
}

fs_status fs_decode_continuous(const fs_decoder *decoder, int32_t batch, const float *h0, size_t h0_count,
                               const float *c0, size_t c0_count, const float *start, size_t start_count,
                               int32_t max_len, int32_t stop_channel, float *outputs_out, size_t outputs_count,
                               int32_t *lengths_out, size_t lengths_count) {
    fs__clear_error();
    fs_status st = check_decoder(decoder, 0);
    if (st == FS_OK)
        st = check_common(decoder, batch, max_len, h0, h0_count, c0, c0_count, outputs_count,
                          (size_t)decoder->vocab, "outputs_out", outputs_out, lengths_out, lengths_count);
    if (st == FS_OK)
        st = fs__check_count("start", start, start_count, (size_t)batch * (size_t)decoder->vocab,
                             "(batch %d x vocab %d)", (int)batch, (int)decoder->vocab);
    if (st != FS_OK) return st;
    if (stop_channel < -1 || stop_channel >= decoder->vocab)
        return fs__fail(FS_ERR_INVALID_ARG, "stop_channel: expected -1 (none) or a channel in [0, %d), got %d",
                        (int)decoder->vocab, (int)stop_channel);
    decode s;
    if ((st = decode_init(&s, decoder, (size_t)batch, 1, 0, h0, c0)) != FS_OK) return st;
    const size_t B = (size_t)batch, T = (size_t)max_len, V = s.V;
    if (start) memcpy(s.x, start, B * V * sizeof(float));
    else memset(s.x, 0, B * V * sizeof(float));
    memset(outputs_out, 0, B * T * V * sizeof(float));
    size_t running = B;
    for (size_t b = 0; b < B; b++) lengths_out[b] = (int32_t)T;
    for (size_t t = 0; t < T && running; t++) {
        if ((st = decode_step(&s, B)) != FS_OK) break;
        for (size_t b = 0; b < B; b++) {
            const float *z = s.logits + b * s.Vp;
            memcpy(s.x + b * V, z, V * sizeof(float));
            if ((size_t)lengths_out[b] <= t) continue; /* stopped before this step */
            memcpy(outputs_out + (b * T + t) * V, z, V * sizeof(float));
            if (stop_channel >= 0 && z[stop_channel] > 0.0f) {
                lengths_out[b] = (int32_t)(t + 1);
                running--;
            }
        }
    }
    decode_free(&s);
    return st;
}
