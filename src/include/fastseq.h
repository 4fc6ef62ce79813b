/*
 * fastseq.h -- the one public header of the fastseq C library.
 *
 * fastseq runs recurrent neural networks (RNN, LSTM, GRU) on the CPU with
 * PyTorch's numerics. The library is plain C11; it needs no Python.
 *
 * Sections:
 *   1. Status codes and errors
 *   2. Runtime information (ISA, threads)
 *   3. Recurrent model: create, weights, forward over a sequence
 *   4. Streaming: one step at a time, state kept in C
 *
 * Conventions:
 *   - every function returns an fs_status (FS_OK == 0) unless stated;
 *     results come back through *_out parameters;
 *   - every buffer is passed with its element count; the library checks each
 *     count against the shapes it expects and never reads or writes past it;
 *   - fs_*_free(NULL) is a no-op;
 *   - a model (fs_rnn) is read-only during forward calls: one model may run on
 *     many threads at once, as long as no fs_rnn_set_param call overlaps.
 */
#ifndef FASTSEQ_H
#define FASTSEQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FS_VERSION_MAJOR 0
#define FS_VERSION_MINOR 1
#define FS_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* 1. Status codes and errors                                               */
/* ------------------------------------------------------------------------ */

/** Status codes. Values are stable: new codes are only ever appended. */
typedef enum fs_status {
    FS_OK = 0,
    FS_ERR_NULL_ARG = 1,     /* a required pointer was NULL */
    FS_ERR_INVALID_ARG = 2,  /* a value is out of its allowed range */
    FS_ERR_SHAPE = 3,        /* a buffer's element count does not fit the shapes */
    FS_ERR_NOMEM = 4,        /* an allocation failed or a size would overflow */
    FS_ERR_UNSUPPORTED = 5   /* valid request this build or model cannot serve */
} fs_status;

/** Short fixed description of a status code; never NULL. */
const char *fs_status_str(fs_status status);

/**
 * Detail of the last error raised by a fastseq call on the calling thread,
 * e.g. "x: expected 120 elements (seq_len 10 x batch 3 x input_size 4), got 100".
 * Empty string when the last call succeeded. The pointer stays valid until the
 * next fastseq call on this thread.
 */
const char *fs_last_error(void);

/* ------------------------------------------------------------------------ */
/* 2. Runtime information                                                   */
/* ------------------------------------------------------------------------ */

/** Instruction-set levels, lowest first. */
typedef enum fs_isa {
    FS_ISA_GENERIC = 0,  /* portable C: the reference every other path is tested against */
    FS_ISA_AVX2 = 1      /* x86-64 AVX2 + FMA */
} fs_isa;

/**
 * The kernel level in use. Chosen once, on first use, from CPUID; the
 * environment variable FASTSEQ_ISA=generic|avx2 caps it (a level the CPU lacks
 * falls back to the best one it has).
 */
fs_isa fs_active_isa(void);

/** Name of an ISA level ("generic", "avx2"); "unknown" for other values. */
const char *fs_isa_name(fs_isa isa);

/**
 * Force a kernel level for this process (tests, benchmarks).
 * FS_ERR_UNSUPPORTED when the CPU or this build lacks it. Not thread-safe
 * against running forward calls.
 */
fs_status fs_set_isa(fs_isa isa);

/**
 * Maximum threads for later calls (process-wide). 0 restores the default:
 * FASTSEQ_NUM_THREADS if set, else OpenMP's default. Problems too small to
 * gain from threads run on one whatever the setting. Results are bit-identical
 * for any thread count. FS_ERR_UNSUPPORTED for n > 1 in a build without OpenMP.
 */
fs_status fs_set_num_threads(int32_t n);

/** The maximum threads later calls may use. */
int32_t fs_get_num_threads(void);

/* ------------------------------------------------------------------------ */
/* 3. Recurrent model                                                       */
/* ------------------------------------------------------------------------ */

/** Cell kinds. Values are stable. */
typedef enum fs_cell {
    FS_CELL_RNN_TANH = 0,  /* h' = tanh(W_ih x + b_ih + W_hh h + b_hh) */
    FS_CELL_RNN_RELU = 1,  /* h' = relu(...) */
    FS_CELL_LSTM = 2,      /* PyTorch nn.LSTM, gate order i, f, g, o */
    FS_CELL_GRU = 3        /* PyTorch nn.GRU, gate order r, z, n (reset after the product) */
} fs_cell;

/** Shape of a recurrent model, with PyTorch's meaning of each field. */
typedef struct fs_rnn_config {
    fs_cell cell;
    int32_t input_size;     /* features of x, > 0 */
    int32_t hidden_size;    /* features of h, > 0 */
    int32_t num_layers;     /* stacked layers, >= 1 */
    int32_t bidirectional;  /* 0 or 1 */
    int32_t bias;           /* 0: no biases (they read as zero), 1: b_ih and b_hh */
} fs_rnn_config;

/** Parameters of one layer and direction, in PyTorch's layout. */
typedef enum fs_param {
    FS_PARAM_WEIGHT_IH = 0,  /* [gates*hidden, layer input]  (gates: RNN 1, GRU 3, LSTM 4) */
    FS_PARAM_WEIGHT_HH = 1,  /* [gates*hidden, hidden] */
    FS_PARAM_BIAS_IH = 2,    /* [gates*hidden] */
    FS_PARAM_BIAS_HH = 3     /* [gates*hidden] */
} fs_param;

/** Opaque model: configuration plus packed weights. */
typedef struct fs_rnn fs_rnn;

/**
 * Create a model with every weight zero.
 * @param config   shape; validated (FS_ERR_INVALID_ARG names the bad field)
 * @param out      receives the model; the caller owns it (fs_rnn_free)
 */
fs_status fs_rnn_create(const fs_rnn_config *config, fs_rnn **out);

/** Release a model made by fs_rnn_create. NULL, or a model made by
 * fs_rnn_init_static, is a no-op. */
void fs_rnn_free(fs_rnn *model);

/**
 * Bytes a model of this configuration occupies (for fs_rnn_init_static).
 * Validates config like fs_rnn_create.
 */
fs_status fs_rnn_memory_size(const fs_rnn_config *config, size_t *bytes_out);

/**
 * Build a model, weights zero, inside caller memory: no allocation at all (for
 * embedded use). buffer must be 64-byte aligned and at least
 * fs_rnn_memory_size bytes; it must outlive the model, which is not freed.
 */
fs_status fs_rnn_init_static(const fs_rnn_config *config, void *buffer, size_t buffer_bytes,
                             fs_rnn **out);

/** The configuration the model was created with. */
fs_status fs_rnn_get_config(const fs_rnn *model, fs_rnn_config *out);

/**
 * Shape of one parameter in PyTorch's layout: rows x cols (cols == 1 for biases).
 * layer in [0, num_layers), direction 0 (forward) or 1 (reverse, bidirectional only).
 */
fs_status fs_rnn_param_shape(const fs_rnn *model, int32_t layer, int32_t direction,
                             fs_param param, size_t *rows_out, size_t *cols_out);

/**
 * Copy one parameter (row-major, PyTorch layout) into the model and repack it
 * for the kernels. count must equal rows*cols. Biases of a model created with
 * bias = 0 are FS_ERR_INVALID_ARG. Not thread-safe against forward calls.
 */
fs_status fs_rnn_set_param(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                           const float *data, size_t count);

/** Copy one parameter out (row-major, PyTorch layout); count must equal rows*cols. */
fs_status fs_rnn_get_param(const fs_rnn *model, int32_t layer, int32_t direction,
                           fs_param param, float *out, size_t count);

/**
 * Arguments of one forward pass over a batch of sequences.
 * Let T = seq_len, B = batch, I = input_size, H = hidden_size,
 * D = 2 if bidirectional else 1, L = num_layers.
 *
 *   x        [T, B, I], or [B, T, I] when batch_first          (required)
 *   lengths  [B] valid steps per sequence, each in [1, T]; NULL: all T.
 *            Packed-sequence semantics: outputs past a sequence's end are
 *            zero, its final state is the one at its last valid step, and
 *            the reverse direction starts from that step.
 *   h0, c0   [L*D, B, H] initial states; NULL: zeros. c0 is for LSTM only.
 *   y        [T, B, D*H], or [B, T, D*H] when batch_first      (required)
 *   h_n, c_n [L*D, B, H] final states; NULL: not wanted. c_n: LSTM only.
 *
 * Each pointer comes with its element count; a non-NULL pointer whose count
 * differs from the shape above is FS_ERR_SHAPE. x and y must not overlap.
 */
typedef struct fs_seq_args {
    int32_t seq_len;
    int32_t batch;
    int32_t batch_first;
    const float *x;        size_t x_count;
    const int32_t *lengths; size_t lengths_count;
    const float *h0;       size_t h0_count;
    const float *c0;       size_t c0_count;
    float *y;              size_t y_count;
    float *h_n;            size_t h_n_count;
    float *c_n;            size_t c_n_count;
} fs_seq_args;

/**
 * Run the model over a batch of sequences. Allocates its workspace once per
 * call (never inside the time loop); see fs_rnn_forward_workspace_size to
 * bring your own. Thread-safe for concurrent calls on one model.
 */
fs_status fs_rnn_forward(const fs_rnn *model, const fs_seq_args *args);

/** Bytes of workspace fs_rnn_forward_ws needs for these T and B. */
fs_status fs_rnn_forward_workspace_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                        size_t *bytes_out);

/**
 * fs_rnn_forward with caller-provided workspace (no allocation at all).
 * workspace must be 64-byte aligned and at least workspace_bytes long.
 */
fs_status fs_rnn_forward_ws(const fs_rnn *model, const fs_seq_args *args,
                            void *workspace, size_t workspace_bytes);

/* ------------------------------------------------------------------------ */
/* 4. Streaming                                                             */
/* ------------------------------------------------------------------------ */

/** Opaque per-stream state (h, c per layer) and scratch, for one model. */
typedef struct fs_rnn_stream fs_rnn_stream;

/**
 * Create a stream of `batch` independent sequences over `model`, states zero.
 * The stream borrows the model: keep the model alive and unchanged while the
 * stream is used. A bidirectional model cannot stream (FS_ERR_UNSUPPORTED).
 * All memory is allocated here; steps allocate nothing.
 */
fs_status fs_rnn_stream_create(const fs_rnn *model, int32_t batch, fs_rnn_stream **out);

/** Release a stream made by fs_rnn_stream_create. NULL, or a stream made by
 * fs_rnn_stream_init_static, is a no-op. */
void fs_rnn_stream_free(fs_rnn_stream *stream);

/** Bytes a stream of `batch` sequences over `model` occupies. The size counts
 * one scratch tile per thread allowed now (fs_get_num_threads). */
fs_status fs_rnn_stream_memory_size(const fs_rnn *model, int32_t batch, size_t *bytes_out);

/** Build a stream inside caller memory (64-byte aligned, at least
 * fs_rnn_stream_memory_size bytes): no allocation at all. Not to be freed. */
fs_status fs_rnn_stream_init_static(const fs_rnn *model, int32_t batch, void *buffer,
                                    size_t buffer_bytes, fs_rnn_stream **out);

/** Zero every state. */
fs_status fs_rnn_stream_reset(fs_rnn_stream *stream);

/**
 * Advance one time step: x [batch, input_size] in, y [batch, hidden_size]
 * (the last layer's new h) out. One stream must not be stepped from two
 * threads at once; different streams may run concurrently.
 */
fs_status fs_rnn_stream_step(fs_rnn_stream *stream, const float *x, size_t x_count, float *y,
                             size_t y_count);

/**
 * Copy the states out: h [num_layers, batch, hidden_size]; c likewise (LSTM
 * only; NULL when not wanted or not an LSTM).
 */
fs_status fs_rnn_stream_get_state(const fs_rnn_stream *stream, float *h, size_t h_count, float *c,
                                  size_t c_count);

/** Overwrite the states; shapes as in fs_rnn_stream_get_state; NULL leaves one as is. */
fs_status fs_rnn_stream_set_state(fs_rnn_stream *stream, const float *h, size_t h_count,
                                  const float *c, size_t c_count);

#ifdef __cplusplus
}
#endif

#endif /* FASTSEQ_H */
