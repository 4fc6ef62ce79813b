/* Sequence-argument checks and state copies shared by the forward drivers. */
#ifndef FS_RNN_ARGS_H
#define FS_RNN_ARGS_H

#include "fastseq.h"

/* FS_ERR_SHAPE naming `name`, the expected count and the shape (printf format
 * and arguments, formatted only then) when ptr is given and its count differs. */
fs_status fs__check_count(const char *name, const void *ptr, size_t given, size_t expected,
                          const char *shape_fmt, ...) __attribute__((format(printf, 5, 6)));

/* Every field of `a` against the model's shapes (see fs_seq_args). */
fs_status fs__check_seq_args(const fs_rnn *m, const fs_seq_args *a);

/* [B][n] caller rows <-> [B][stride] state rows (padding zero; src NULL: zeros). */
void fs__load_state(const float *src, size_t B, size_t n, size_t stride, float *dst);
void fs__store_state(const float *src, size_t B, size_t n, size_t stride, float *dst);

#endif /* FS_RNN_ARGS_H */
