/* fs_decode_greedy / fs_decode_beam / fs_decode_continuous from C: every argument
 * validated with a status and a message naming it; constant logits (zero recurrent
 * weights) give outputs known in closed form; beam_size 1 gives greedy's bits. */
#include <math.h>

#include "check.h"

enum { I = 3, H = 8, V = 5, B = 3, T = 6 };

static fs_rnn *gru(int bidir, int random) {
    fs_rnn_config cfg = make_config(FS_CELL_GRU, I, H, 1, bidir, 1);
    fs_rnn *m = NULL;
    CHECK_STATUS(fs_rnn_create(&cfg, &m), FS_OK);
    if (random) {
        static float w[3 * H * H];
        for (int i = 0; i < 3 * H * H; i++) w[i] = urand(1.5f);
        CHECK_STATUS(fs_rnn_set_param(m, 0, 0, FS_PARAM_WEIGHT_IH, w, 3 * H * I), FS_OK);
        CHECK_STATUS(fs_rnn_set_param(m, 0, 0, FS_PARAM_WEIGHT_HH, w, 3 * H * H), FS_OK);
    }
    return m;
}

static void constant_logits(void) {
    /* zero weights: h stays 0, so the logits are the head bias at every step */
    fs_rnn *m = gru(0, 0);
    float head[V * H] = {0}, bias[V] = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f}, emb[V * I] = {0};
    fs_decoder d = {m, V, head, V * H, bias, V, emb, V * I};
    int32_t tokens[B * T], lengths[B];
    float scores[B];
    double lse = 0.0;
    for (int v = 0; v < V; v++) lse += exp((double)bias[v]);
    lse = log(lse);
    /* eos = 4 is not the argmax (2 is): every row runs T steps of token 2 */
    CHECK_STATUS(fs_decode_greedy(&d, B, NULL, 0, NULL, 0, T, 0, 4, tokens, B * T, lengths, B, scores, B), FS_OK);
    for (int b = 0; b < B; b++) {
        CHECK(lengths[b] == T, "length %d", lengths[b]);
        for (int t = 0; t < T; t++) CHECK(tokens[b * T + t] == 2, "token %d", tokens[b * T + t]);
        CHECK(fabs(scores[b] - T * (2.0 - lse)) < 1e-4, "score %g vs %g", scores[b], T * (2.0 - lse));
    }
    /* eos = 2, the argmax: empty outputs, eos everywhere */
    CHECK_STATUS(fs_decode_greedy(&d, B, NULL, 0, NULL, 0, T, 0, 2, tokens, B * T, lengths, B, scores, B), FS_OK);
    CHECK(lengths[0] == 0 && tokens[0] == 2 && tokens[T - 1] == 2, "length %d, tokens %d %d", lengths[0], tokens[0],
          tokens[T - 1]);
    /* beam with eos = 4: ending now scores bias[4] - lse; 2 then 4 scores less: the empty output */
    CHECK_STATUS(fs_decode_beam(&d, B, 3, NULL, 0, NULL, 0, T, 0, 4, 0.0f, tokens, B * T, lengths, B, scores, B),
                 FS_OK);
    CHECK(lengths[1] == 0 && fabs(scores[1] - (1.0 - lse)) < 1e-5, "length %d, score %g", lengths[1], scores[1]);
    /* a length penalty of 3 favours the longest: T tokens of 2 score 6 (2 - lse) / (11/6)^3 ~ -0.56,
     * above 2 2 2 2 2 eos (~ -0.72) and eos alone (1 - lse ~ -1.57) */
    CHECK_STATUS(fs_decode_beam(&d, B, 3, NULL, 0, NULL, 0, T, 0, 4, 3.0f, tokens, B * T, lengths, B, scores, B),
                 FS_OK);
    CHECK(lengths[2] == T && tokens[2 * T] == 2 && tokens[3 * T - 1] == 2, "length %d, tokens %d %d", lengths[2],
          tokens[2 * T], tokens[3 * T - 1]);
    fs_rnn_free(m);
}

static void beam_1_is_greedy(void) {
    fs_rnn *m = gru(0, 1);
    float head[V * H], bias[V], emb[V * I], h0[B * H];
    for (int i = 0; i < V * H; i++) head[i] = urand(2.0f);
    for (int i = 0; i < V; i++) bias[i] = urand(0.5f);
    for (int i = 0; i < V * I; i++) emb[i] = urand(1.0f);
    for (int i = 0; i < B * H; i++) h0[i] = urand(1.0f);
    fs_decoder d = {m, V, head, V * H, bias, V, emb, V * I};
    int32_t tg[B * T], lg[B], tb[B * T], lb[B];
    float sg[B], sb[B];
    CHECK_STATUS(fs_decode_greedy(&d, B, h0, B * H, NULL, 0, T, 0, 1, tg, B * T, lg, B, sg, B), FS_OK);
    CHECK_STATUS(fs_decode_beam(&d, B, 1, h0, B * H, NULL, 0, T, 0, 1, 0.0f, tb, B * T, lb, B, sb, B), FS_OK);
    CHECK(memcmp(tg, tb, sizeof tg) == 0 && memcmp(lg, lb, sizeof lg) == 0 && memcmp(sg, sb, sizeof sg) == 0,
          "beam_size 1 differs from greedy");
    fs_rnn_free(m);
}

/* Sequences that end at different steps leave the rows a step computes (the
 * running ones move to the front, their states swapped): each still gets the
 * bits it gets alone. Large head weights: outputs that differ by row. */
static void rows_alone_match_rows_together(void) {
    fs_rnn *m = gru(0, 1);
    float head[V * H], bias[V], emb[V * I], h0[B * H];
    for (int i = 0; i < V * H; i++) head[i] = urand(6.0f);
    for (int i = 0; i < V; i++) bias[i] = 0.0f;
    for (int i = 0; i < V * I; i++) emb[i] = urand(1.0f);
    for (int i = 0; i < B * H; i++) h0[i] = urand(3.0f);
    fs_decoder d = {m, V, head, V * H, bias, V, emb, V * I};
    int32_t tokens[B * T], lengths[B], one[T], one_len;
    float scores[B], one_score;
    int32_t eos = -1;
    /* the eos that gives the most distinct output lengths */
    int best_distinct = 0;
    for (int32_t e = 1; e < V; e++) {
        CHECK_STATUS(fs_decode_greedy(&d, B, h0, B * H, NULL, 0, T, 0, e, tokens, B * T, lengths, B, scores, B), FS_OK);
        const int distinct = 1 + (lengths[1] != lengths[0]) + (lengths[2] != lengths[0] && lengths[2] != lengths[1]);
        if (distinct > best_distinct) best_distinct = distinct, eos = e;
    }
    CHECK(best_distinct > 1, "no eos makes the output lengths differ: the test would mean nothing");
    CHECK_STATUS(fs_decode_greedy(&d, B, h0, B * H, NULL, 0, T, 0, eos, tokens, B * T, lengths, B, scores, B), FS_OK);
    for (int b = 0; b < B; b++) {
        CHECK_STATUS(fs_decode_greedy(&d, 1, h0 + b * H, H, NULL, 0, T, 0, eos, one, T, &one_len, 1, &one_score, 1),
                     FS_OK);
        CHECK(one_len == lengths[b] && memcmp(one, tokens + b * T, sizeof one) == 0 &&
                  memcmp(&one_score, scores + b, sizeof one_score) == 0,
              "row %d alone: length %d vs %d, score %g vs %g", b, one_len, lengths[b], one_score, scores[b]);
    }
    fs_rnn_free(m);
}

#define CHECK_NAMED(call, expect, word)                                                  \
    do {                                                                                 \
        CHECK_STATUS(call, expect);                                                      \
        CHECK(strstr(fs_last_error(), word) != NULL, "message lacks %s: %s", word, fs_last_error()); \
    } while (0)

static void arguments(void) {
    fs_rnn *m = gru(0, 0), *bi = gru(1, 0);
    fs_rnn_config cont_cfg = make_config(FS_CELL_GRU, V, H, 1, 0, 1);
    fs_rnn *cont = NULL;
    CHECK_STATUS(fs_rnn_create(&cont_cfg, &cont), FS_OK);
    float head[V * H] = {0}, emb[V * I] = {0}, h0[B * H] = {0}, out[B * T * V], start[B * V] = {0};
    int32_t tokens[B * T], lengths[B];
    float scores[B];
    fs_decoder d = {m, V, head, V * H, NULL, 0, emb, V * I}, bad = d;
#define GREEDY(dec, ...) fs_decode_greedy(dec, __VA_ARGS__)
    CHECK_NAMED(GREEDY(NULL, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_NULL_ARG,
                "decoder");
    bad.vocab = 0;
    CHECK_NAMED(GREEDY(&bad, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_INVALID_ARG,
                "vocab");
    bad = d, bad.head_weight_count--;
    CHECK_NAMED(GREEDY(&bad, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_SHAPE,
                "head_weight");
    bad = d, bad.embedding_count++;
    CHECK_NAMED(GREEDY(&bad, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_SHAPE,
                "embedding");
    bad = d, bad.embedding = NULL;
    CHECK_NAMED(GREEDY(&bad, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_NULL_ARG,
                "embedding");
    bad = d, bad.model = bi;
    CHECK_NAMED(GREEDY(&bad, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_UNSUPPORTED,
                "bidirectional");
    CHECK_NAMED(GREEDY(&d, 0, NULL, 0, NULL, 0, T, 0, 1, tokens, 0, lengths, 0, NULL, 0), FS_ERR_INVALID_ARG, "batch");
    CHECK_NAMED(GREEDY(&d, B, NULL, 0, NULL, 0, 0, 0, 1, tokens, 0, lengths, B, NULL, 0), FS_ERR_INVALID_ARG,
                "max_len");
    CHECK_NAMED(GREEDY(&d, B, NULL, 0, NULL, 0, T, V, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_INVALID_ARG,
                "bos");
    CHECK_NAMED(GREEDY(&d, B, NULL, 0, NULL, 0, T, 0, -2, tokens, B * T, lengths, B, NULL, 0), FS_ERR_INVALID_ARG,
                "eos");
    CHECK_NAMED(GREEDY(&d, B, h0, B * H - 1, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_SHAPE,
                "h0");
    CHECK_NAMED(GREEDY(&d, B, h0, B * H, h0, B * H, T, 0, 1, tokens, B * T, lengths, B, NULL, 0), FS_ERR_INVALID_ARG,
                "c0");
    CHECK_NAMED(GREEDY(&d, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T + 1, lengths, B, NULL, 0), FS_ERR_SHAPE,
                "tokens_out");
    CHECK_NAMED(GREEDY(&d, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B - 1, NULL, 0), FS_ERR_SHAPE,
                "lengths_out");
    CHECK_NAMED(GREEDY(&d, B, NULL, 0, NULL, 0, T, 0, 1, tokens, B * T, lengths, B, scores, B + 1), FS_ERR_SHAPE,
                "scores_out");
    CHECK_NAMED(fs_decode_beam(&d, B, 0, NULL, 0, NULL, 0, T, 0, 1, 0.0f, tokens, B * T, lengths, B, NULL, 0),
                FS_ERR_INVALID_ARG, "beam_size");
    CHECK_NAMED(fs_decode_beam(&d, B, 2, NULL, 0, NULL, 0, T, 0, 1, NAN, tokens, B * T, lengths, B, NULL, 0),
                FS_ERR_INVALID_ARG, "length_penalty");
    /* continuous */
    CHECK_NAMED(fs_decode_continuous(&d, B, NULL, 0, NULL, 0, NULL, 0, T, -1, out, B * T * V, lengths, B),
                FS_ERR_INVALID_ARG, "embedding");
    bad = d, bad.embedding = NULL, bad.embedding_count = 0;
    CHECK_NAMED(fs_decode_continuous(&bad, B, NULL, 0, NULL, 0, NULL, 0, T, -1, out, B * T * V, lengths, B),
                FS_ERR_SHAPE, "input_size");
    bad.model = cont;
    CHECK_NAMED(fs_decode_continuous(&bad, B, NULL, 0, NULL, 0, start, B * V - 1, T, -1, out, B * T * V, lengths, B),
                FS_ERR_SHAPE, "start");
    CHECK_NAMED(fs_decode_continuous(&bad, B, NULL, 0, NULL, 0, start, B * V, T, V, out, B * T * V, lengths, B),
                FS_ERR_INVALID_ARG, "stop_channel");
    CHECK_NAMED(fs_decode_continuous(&bad, B, NULL, 0, NULL, 0, start, B * V, T, -1, out, B * T * V - 1, lengths, B),
                FS_ERR_SHAPE, "outputs_out");
    CHECK_STATUS(fs_decode_continuous(&bad, B, NULL, 0, NULL, 0, start, B * V, T, -1, out, B * T * V, lengths, B),
                 FS_OK);
    CHECK(lengths[0] == T && out[0] == 0.0f, "length %d, out %g", lengths[0], out[0]);
#undef GREEDY
    fs_rnn_free(m);
    fs_rnn_free(bi);
    fs_rnn_free(cont);
}

int main(void) {
    constant_logits();
    beam_1_is_greedy();
    rows_alone_match_rows_together();
    arguments();
    printf("test_decode: %d checks, %d failed\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
