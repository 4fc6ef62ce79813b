/* Stream steps for the decode loops: over a prefix of the rows (finished
 * sequences moved past it) and from layer 0's input projection (gathered from
 * a per-token table). */
#ifndef FS_RNN_STREAM_H
#define FS_RNN_STREAM_H

#include "fastseq.h"

/* fs_rnn_stream_step over the stream's first `rows` rows only (1 <= rows <=
 * batch), with layer 0's input x [rows][input_size] or, x NULL, its
 * projection gx0 [rows][gates * hp] (biases folded, the layout fs__project
 * writes, rnn_step.h); y [rows][r]. Rows past `rows` are not stepped and
 * their states are undefined afterwards (the decode loops park finished
 * sequences there). The same bits per row as fs_rnn_stream_step. */
fs_status fs__rnn_stream_step_rows(fs_rnn_stream *s, const float *x, const float *gx0, size_t rows, float *y);

/* Swaps the states (h, and c for an LSTM) of rows a and b in every layer. */
fs_status fs__rnn_stream_swap_rows(fs_rnn_stream *s, size_t a, size_t b);

#endif /* FS_RNN_STREAM_H */
