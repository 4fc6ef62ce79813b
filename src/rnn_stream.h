/* The stream step for callers that project layer 0's input themselves (the
 * decode loops gather it from a per-token table). */
#ifndef FS_RNN_STREAM_H
#define FS_RNN_STREAM_H

#include "fastseq.h"

/* fs_rnn_stream_step with layer 0's input projection given instead of x:
 * gx0 [batch][gates * hp], biases folded, in the layout fs__project writes
 * (rnn_step.h). The same bits as fs_rnn_stream_step over the x that projects
 * to gx0. Validates its arguments like fs_rnn_stream_step. */
fs_status fs__rnn_stream_step_projected(fs_rnn_stream *s, const float *gx0, size_t gx0_count, float *y,
                                        size_t y_count);

#endif /* FS_RNN_STREAM_H */
