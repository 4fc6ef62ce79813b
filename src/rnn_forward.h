/* The sequence driver's internal entry: fs_rnn_forward and the training
 * forward (rnn_backward.c) are both this one driver, the training forward with
 * a record of what backward needs. */
#ifndef FS_RNN_FORWARD_H
#define FS_RNN_FORWARD_H

#include "kernels/kernels.h"
#include "rnn.h"

/* Where a training forward records, per layer-direction unit ui (the array
 * at + ui * <its unit stride>). Rows of gx, acc, c, mid and hn follow x's row
 * layout (row of (t, b): t*B + b, or b*T + t when batch_first):
 *   gx     [N][G*hp]  the input projection (+ folded biases);
 *   acc    [N][gh*hp] the recurrent product (+ bias_h) the cell read;
 *   c      [N][hp]    LSTM: c before the step;
 *   mid    [N][hp]    LSTM with projection: o tanh(c), the projection's input;
 *   hn     [N][hp]    reset-before GRU: W_hn (r h);
 *   hist   [T+1][B][rp] h before step s at slot s (s: the direction's step
 *          index; slot T holds h_n), in step order, not row order;
 *   layer_out [L-1][N][D*R] the inner layers' outputs (the next layer's input).
 * A NULL array is not recorded (the model has no use for it). */
typedef struct fs_record {
    float *gx, *acc, *c, *mid, *hn, *hist, *layer_out;
    size_t gx_unit, acc_unit, c_unit, mid_unit, hn_unit, hist_unit;
} fs_record;

/* Floats of workspace fs__rnn_forward_run needs on `threads` threads (record:
 * whether it records; gx and h history then live in the record). 0 when the
 * size overflows or the arguments are out of range (the run reports why). */
size_t fs__forward_ws_floats(const fs_rnn *m, int32_t seq_len, int32_t batch, int threads, int record);

/* The forward over a sequence with the kernels k on up to `threads` threads
 * (fewer when ws_floats holds fewer per-thread tiles), recording into rec
 * unless NULL. Checks args and the workspace; ws is FS_ALIGN-aligned. */
fs_status fs__rnn_forward_run(const fs_rnn *m, const fs_seq_args *args, const fs_kernels *k, int threads,
                              float *ws, size_t ws_floats, const fs_record *rec);

#endif /* FS_RNN_FORWARD_H */
