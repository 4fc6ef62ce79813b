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
 *   5. Model file: load a .fsq file
 *   6. Training: tape, backward, optimizer steps, heads and losses
 *   7. Tree networks: child-sum / N-ary Tree-LSTM, recursive networks
 *   8. Sequence to sequence: greedy, beam and continuous decode loops
 *
 * Conventions:
 *   - every function returns an fs_status (FS_OK == 0) unless stated;
 *     results come back through *_out parameters;
 *   - every buffer is passed with its element count; the library checks each
 *     count against the shapes it expects and never reads or writes past it;
 *   - fs_*_free(NULL) is a no-op;
 *   - threads (the library takes no locks; fastseq's Python binding enforces this):
 *     . a model (fs_rnn) is read-only during the calls that use it: one model may
 *       serve fs_rnn_forward, streams and training forward/backward (each with its
 *       own tape) on many threads at once;
 *     . fs_rnn_set_param / fs_rnn_set_params must not overlap any call using the
 *       model (readers-writer: the caller serialises them);
 *     . a stream (fs_rnn_stream) or a tape (fs_rnn_tape) serves one call at a time:
 *       make one per thread;
 *     . fs_set_isa and fs_set_num_threads are process-wide: call them while no
 *       other fastseq call runs;
 *     . fs_last_error() is per thread;
 *   - FASTSEQ_ISA and FASTSEQ_NUM_THREADS are read once, at first use; a value
 *     outside the documented set is ignored with a warning on stderr.
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
#define FS_VERSION_STRING "0.1.0"

/* Every public function carries FS_API: default visibility in a shared build
 * (define FS_BUILD_SHARED; FS_DLL_IMPORT on Windows for users of the DLL). */
#if defined(_WIN32) && defined(FS_BUILD_SHARED)
#define FS_API __declspec(dllexport)
#elif defined(_WIN32) && defined(FS_DLL_IMPORT)
#define FS_API __declspec(dllimport)
#elif defined(__GNUC__)
#define FS_API __attribute__((visibility("default")))
#else
#define FS_API
#endif

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
    FS_ERR_UNSUPPORTED = 5,  /* valid request this build or model cannot serve */
    FS_ERR_FORMAT = 6,       /* a model file is malformed: truncated, bad magic, bad field */
    FS_ERR_CHECKSUM = 7,     /* a model file's checksum does not match: it is corrupted */
    FS_ERR_VERSION = 8,      /* a model file's format version is not one this library reads */
    FS_ERR_IO = 9            /* a file could not be opened or read */
} fs_status;

/** Short fixed description of a status code; never NULL. */
FS_API const char *fs_status_str(fs_status status);

/**
 * Detail of the last error raised by a fastseq call on the calling thread,
 * e.g. "x: expected 120 elements (seq_len 10 x batch 3 x input_size 4), got 100".
 * Empty string when the last call succeeded. The pointer stays valid until the
 * next fastseq call on this thread.
 */
FS_API const char *fs_last_error(void);

/* ------------------------------------------------------------------------ */
/* 2. Runtime information                                                   */
/* ------------------------------------------------------------------------ */

/** Instruction-set levels, lowest first within an architecture (x86-64: generic,
 * avx2, avx512; aarch64: generic, neon). */
typedef enum fs_isa {
    FS_ISA_GENERIC = 0,  /* portable C: the reference every other path is tested against */
    FS_ISA_AVX2 = 1,     /* x86-64 AVX2 + FMA */
    FS_ISA_AVX512 = 2,   /* x86-64 AVX-512 F + VL (GEMM, cell updates, fused batch-1 steps) */
    FS_ISA_NEON = 3      /* aarch64 Advanced SIMD (baseline there): GEMM, cell updates, training records */
} fs_isa;

/**
 * The kernel level in use. Chosen once, on first use, from CPUID; the
 * environment variable FASTSEQ_ISA=generic|avx2|avx512|neon caps it (a level the CPU
 * lacks, or one of another architecture, falls back to the best one it has; any other
 * value, "AVX2" or "avx2 " included, is ignored with a warning on stderr).
 */
FS_API fs_isa fs_active_isa(void);

/** Name of an ISA level ("generic", "avx2", "avx512", "neon"); "unknown" for other values. */
FS_API const char *fs_isa_name(fs_isa isa);

/** 1 when this build and CPU can run `isa` (fs_set_isa would accept it), else 0.
 * Does not change the active level. */
FS_API int32_t fs_isa_supported(fs_isa isa);

/** The library's version, packed: major * 10000 + minor * 100 + patch
 * (FS_VERSION_* of the header it was built with). */
FS_API uint32_t fs_version(void);

/** The same as a string, e.g. "0.1.0"; static, never NULL. */
FS_API const char *fs_version_string(void);

/**
 * Force a kernel level for this process (tests, benchmarks).
 * FS_ERR_UNSUPPORTED when the CPU or this build lacks it. Calls already
 * running keep the level they started with (each call reads the level once).
 */
FS_API fs_status fs_set_isa(fs_isa isa);

/** Upper bound of fs_set_num_threads and FASTSEQ_NUM_THREADS (per-thread scratch is
 * sized by the count: an unbounded one would let a typo allocate gigabytes). */
#define FS_MAX_THREADS 1024

/**
 * Maximum threads for later calls (process-wide), 0 to FS_MAX_THREADS, else
 * FS_ERR_INVALID_ARG. 0 restores the default: FASTSEQ_NUM_THREADS if set (a
 * decimal integer in [1, FS_MAX_THREADS]; any other value is ignored with a
 * warning on stderr), else OpenMP's default (capped at FS_MAX_THREADS). Problems
 * too small to gain from threads run on one whatever the setting. Results are
 * bit-identical for any thread count. FS_ERR_UNSUPPORTED for n > 1 in a build
 * without OpenMP. Not thread-safe against running calls (see the conventions).
 */
FS_API fs_status fs_set_num_threads(int32_t n);

/** The maximum threads later calls may use. */
FS_API int32_t fs_get_num_threads(void);

/* ------------------------------------------------------------------------ */
/* 3. Recurrent model                                                       */
/* ------------------------------------------------------------------------ */

/** Cell kinds. Values are stable. */
typedef enum fs_cell {
    FS_CELL_RNN_TANH = 0,  /* h' = tanh(W_ih x + b_ih + W_hh h + b_hh) */
    FS_CELL_RNN_RELU = 1,  /* h' = relu(...) */
    FS_CELL_LSTM = 2,      /* PyTorch nn.LSTM, gate order i, f, g, o */
    FS_CELL_GRU = 3,       /* PyTorch nn.GRU, gate order r, z, n (reset after the product) */
    FS_CELL_FASTRNN = 4,   /* EdgeML FastRNN: h' = s(alpha) act(W x + U h + b) + s(beta) h */
    FS_CELL_FASTGRNN = 5,  /* EdgeML FastGRNN: z = gate(W x + U h + b_g), h~ = act(... + b_u),
                              h' = z h + (s(zeta) (1 - z) + s(nu)) h~ */
    FS_CELL_UGRNN = 6      /* UGRNN (EdgeML UGRNNLRCell), gate order z, c:
                              z = f(W_z x + b_iz + U_z h + b_hz), c = g(W_c x + b_ic + U_c h + b_hc),
                              h' = z h + (1 - z) c; f, g: act roles f, g (sigmoid, tanh usual) */
} fs_cell;

/** Nonlinearities: FastRNN / FastGRNN (update_act, gate_act; hard_sigmoid's
 * alpha, beta in act_alpha / act_beta at roles g / f) and the gate roles of
 * RNN, LSTM, GRU, UGRNN. Values are stable. */
typedef enum fs_act {
    FS_ACT_TANH = 0,
    FS_ACT_SIGMOID = 1,
    FS_ACT_RELU = 2,
    FS_ACT_HARD_SIGMOID = 3, /* max(0, min(1, alpha x + beta)); ONNX HardSigmoid, EdgeML quantSigm */
    FS_ACT_SOFTSIGN = 4,     /* x / (1 + |x|) */
    FS_ACT_HARD_TANH = 5     /* max(-1, min(1, x)); EdgeML quantTanh */
} fs_act;

/** The gate roles of fs_rnn_config.act, ONNX's names: LSTM f (gates i, f, o),
 * g (cell input), h (cell output); GRU f (gates r, z), g (candidate n); RNN f;
 * UGRNN f (gate z), g (candidate c). */
typedef enum fs_act_role { FS_ROLE_F = 0, FS_ROLE_G = 1, FS_ROLE_H = 2 } fs_act_role;

/** Shape of a recurrent model, with PyTorch's meaning of each field. */
typedef struct fs_rnn_config {
    fs_cell cell;
    int32_t input_size;     /* features of x, > 0 */
    int32_t hidden_size;    /* features of h, > 0 */
    int32_t num_layers;     /* stacked layers, >= 1 */
    int32_t bidirectional;  /* 0 or 1 */
    int32_t bias;           /* 0: no biases (they read as zero), 1: the cell's biases */
    /* Variants; zero everywhere gives the plain PyTorch cell. */
    int32_t proj_size;      /* LSTM: h = W_hr (o * tanh(c)) has proj_size features; 0: none */
    int32_t peephole;       /* LSTM: 1 adds p_i, p_f (on c) and p_o (on the new c) */
    int32_t coupled;        /* LSTM: 1 couples the gates, f = 1 - i (weights hold i, g, o) */
    int32_t reset_before;   /* GRU: 1 gives n = tanh(W_in x + b_in + W_hn (r * h) + b_hn) */
    int32_t update_act;     /* FastRNN / FastGRNN: fs_act of the update h~ (FS_ACT_TANH usual;
                               hard_sigmoid: act_alpha[1], act_beta[1]) */
    int32_t gate_act;       /* FastGRNN: fs_act of the gate z (FS_ACT_SIGMOID usual;
                               hard_sigmoid: act_alpha[0], act_beta[0]) */
    int32_t w_rank;         /* 0 full W, else W = W_b W_a of this rank (W_a shared by the gates) */
    int32_t u_rank;         /* 0 full U, else U = U_b U_a of this rank; not with proj_size. A
                               reset-before GRU's n gate: U_b,n U_a (r * h) */
    /* RNN, LSTM, GRU, UGRNN activations per role (fs_act_role), stored as 1 + fs_act:
     * 0 keeps the role's usual function (f sigmoid, g and h tanh; RNN f: the
     * cell's tanh or relu). act_alpha / act_beta: hard_sigmoid's alpha, beta
     * for that role (0: ONNX's defaults 0.2, 0.5; FastRNN / FastGRNN: see
     * update_act, gate_act); must be 0 for the others. */
    int32_t act[3];
    float act_alpha[3];
    float act_beta[3];
    float clip;             /* RNN, LSTM, GRU: the inputs of the f and g activations are
                               clipped to [-clip, clip] (ONNX `clip`, as ONNX Runtime runs
                               it: an LSTM's h reads c unclipped); 0: none, else > 0 */
    /* Weight precision of the matrices (fs_dtype; 0: fp32), inference only;
     * group_size: int4's group along the reduction, 32 or 64 (0 for the others). */
    int32_t dtype;
    int32_t group_size;
    int32_t residual;       /* 1: every layer after the first adds its input to its output
                               (GNMT-style; needs num_layers >= 2); states are not changed */
} fs_rnn_config;

/**
 * Element type of a model's weight matrices (docs/quantization.md). Vectors
 * (biases, peepholes, scalars) stay fp32, and so do activations and states.
 * int8: symmetric, one fp32 scale per output row; int4: symmetric [-7, 7],
 * one fp32 scale per group of group_size inputs and output row; bf16: fp32
 * rounded to nearest even. A quantised model runs forward, streams and steps;
 * training it is FS_ERR_UNSUPPORTED.
 */
typedef enum fs_dtype {
    FS_DTYPE_F32 = 0,
    FS_DTYPE_INT8 = 1,
    FS_DTYPE_INT4 = 2,
    FS_DTYPE_BF16 = 3
} fs_dtype;

/** "f32", "int8", "int4", "bf16"; "unknown" for other values. */
FS_API const char *fs_dtype_name(fs_dtype dtype);

/**
 * Parameters of one layer and direction, in PyTorch's layout (y = W x).
 * gates: RNN, FastRNN, FastGRNN 1; GRU 3; LSTM 4, coupled LSTM 3 (i, g, o).
 * R = proj_size if set, else hidden: the features of h. A parameter the
 * configuration does not have is FS_ERR_INVALID_ARG.
 */
typedef enum fs_param {
    FS_PARAM_WEIGHT_IH = 0,   /* [gates*hidden, layer input] (full-rank W) */
    FS_PARAM_WEIGHT_HH = 1,   /* [gates*hidden, R] (full-rank U) */
    FS_PARAM_BIAS_IH = 2,     /* [gates*hidden]  RNN, LSTM, GRU */
    FS_PARAM_BIAS_HH = 3,     /* [gates*hidden]  RNN, LSTM, GRU */
    FS_PARAM_WEIGHT_IH_A = 4, /* [w_rank, layer input]  low-rank W = W_b W_a */
    FS_PARAM_WEIGHT_IH_B = 5, /* [gates*hidden, w_rank] */
    FS_PARAM_WEIGHT_HH_A = 6, /* [u_rank, hidden]       low-rank U = U_b U_a */
    FS_PARAM_WEIGHT_HH_B = 7, /* [gates*hidden, u_rank] */
    FS_PARAM_WEIGHT_HR = 8,   /* [proj_size, hidden]  LSTM projection */
    FS_PARAM_PEEPHOLE_I = 9,  /* [hidden]  LSTM peepholes */
    FS_PARAM_PEEPHOLE_F = 10, /* [hidden] */
    FS_PARAM_PEEPHOLE_O = 11, /* [hidden] */
    FS_PARAM_BIAS_GATE = 12,  /* [hidden]  FastGRNN */
    FS_PARAM_BIAS_UPDATE = 13,/* [hidden]  FastRNN (its bias), FastGRNN */
    FS_PARAM_ALPHA = 14,      /* [1] raw; FastRNN uses sigmoid(alpha) */
    FS_PARAM_BETA = 15,       /* [1] raw */
    FS_PARAM_ZETA = 16,       /* [1] raw; FastGRNN */
    FS_PARAM_NU = 17,         /* [1] raw */
    FS_PARAM_COUNT = 18
} fs_param;

/** Names of the enums, as the bindings and files spell them: fs_param_name
 * gives torch's parameter prefix ("weight_ih", "bias_hh", "peephole_i", ...),
 * fs_cell_name the enumerator's suffix ("LSTM", "RNN_TANH", ...), fs_act_name
 * "tanh", "sigmoid", "relu", "hard_sigmoid", "softsign", "hard_tanh".
 * "unknown" for other values; never NULL. */
FS_API const char *fs_param_name(fs_param param);
FS_API const char *fs_cell_name(fs_cell cell);
FS_API const char *fs_act_name(fs_act act);

/** 2 for a weight matrix, 1 for a vector or scalar parameter, 0 for other values. */
FS_API int32_t fs_param_ndim(fs_param param);

/** Opaque model: configuration plus packed weights. */
typedef struct fs_rnn fs_rnn;

/**
 * Create a model with every weight zero.
 * @param config   shape; validated (FS_ERR_INVALID_ARG names the bad field)
 * @param out      receives the model; the caller owns it (fs_rnn_free)
 */
FS_API fs_status fs_rnn_create(const fs_rnn_config *config, fs_rnn **out);

/** Release a model made by fs_rnn_create. NULL, or a model made by
 * fs_rnn_init_static or fs_rnn_init_static_weights, is a no-op. */
FS_API void fs_rnn_free(fs_rnn *model);

/**
 * Bytes a model of this configuration occupies (for fs_rnn_init_static): its
 * packed weights, held once (fs_rnn_get_param unpacks on demand; only the
 * torch cells' biases and the FastRNN / FastGRNN raw scalars are also kept as
 * given), plus a header (the configuration, and about 150 bytes per layer and
 * direction) and 64-byte alignment of each array. Validates config like
 * fs_rnn_create.
 */
FS_API fs_status fs_rnn_memory_size(const fs_rnn_config *config, size_t *bytes_out);

/**
 * Build a model, weights zero, inside caller memory: no allocation at all (for
 * embedded use). buffer must be 64-byte aligned and at least
 * fs_rnn_memory_size bytes; it must outlive the model, which is not freed.
 */
FS_API fs_status fs_rnn_init_static(const fs_rnn_config *config, void *buffer, size_t buffer_bytes,
                                    fs_rnn **out);

/*
 * Weights in caller memory, used in place (flash on a microcontroller): a
 * model is a small header (the configuration and one table entry per layer
 * and direction) over one block of packed weights. fs_rnn_weights gives a
 * model's block; fs_rnn_init_static_weights builds a model whose header lives
 * in `buffer` and whose weights are read straight from `weights` -- nothing
 * is copied, so RAM holds only the header (plus the stream's state and
 * scratch). `fastseq export-c` writes the block as a `static const` array.
 * The block's layout is private to this library version and configuration:
 * make it with the same fastseq version that runs it.
 */

/**
 * Bytes of the packed weight block of a model of this configuration, and
 * (header_bytes_out, may be NULL) of its header: fs_rnn_memory_size is their
 * sum. Validates config like fs_rnn_create.
 */
FS_API fs_status fs_rnn_weights_size(const fs_rnn_config *config, size_t *weights_bytes_out,
                                     size_t *header_bytes_out);

/**
 * The model's packed weight block (read-only; valid while the model lives):
 * *weights_out points into the model, *weights_bytes_out is
 * fs_rnn_weights_size's figure. Copy it to keep it.
 */
FS_API fs_status fs_rnn_weights(const fs_rnn *model, const void **weights_out, size_t *weights_bytes_out);

/**
 * Build a model over caller-owned const weights: `weights` (64-byte aligned,
 * exactly fs_rnn_weights_size bytes, as fs_rnn_weights gave them for this
 * configuration) is read in place and must outlive the model, unchanged;
 * `buffer` (64-byte aligned, at least the header bytes of
 * fs_rnn_weights_size) receives the header. No allocation. The model is
 * read-only: fs_rnn_set_param(s) return FS_ERR_UNSUPPORTED; fs_rnn_free is a
 * no-op on it. Errors: FS_ERR_SHAPE when weights_bytes differs, as
 * fs_rnn_init_static otherwise.
 */
FS_API fs_status fs_rnn_init_static_weights(const fs_rnn_config *config, const void *weights,
                                            size_t weights_bytes, void *buffer, size_t buffer_bytes,
                                            fs_rnn **out);

/** The configuration the model was created with. */
FS_API fs_status fs_rnn_get_config(const fs_rnn *model, fs_rnn_config *out);

/**
 * Shape of one parameter in PyTorch's layout: rows x cols (cols == 1 for biases).
 * layer in [0, num_layers), direction 0 (forward) or 1 (reverse, bidirectional only).
 */
FS_API fs_status fs_rnn_param_shape(const fs_rnn *model, int32_t layer, int32_t direction,
                                    fs_param param, size_t *rows_out, size_t *cols_out);

/**
 * Copy one parameter (row-major, PyTorch layout) into the model, packed for
 * the kernels. count must equal rows*cols. Biases of a model created with
 * bias = 0 are FS_ERR_INVALID_ARG. Not thread-safe against forward calls.
 */
FS_API fs_status fs_rnn_set_param(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                  const float *data, size_t count);

/** Copy one parameter out (row-major, PyTorch layout), unpacked from the
 * kernels' layout: bit-identical to what fs_rnn_set_param was given. count
 * must equal rows*cols. */
FS_API fs_status fs_rnn_get_param(const fs_rnn *model, int32_t layer, int32_t direction,
                                  fs_param param, float *out, size_t count);

/**
 * A quantised copy of an fp32 model: the same configuration with dtype (and,
 * for int4, group_size 32 or 64; else 0), every weight matrix quantised
 * (fs_dtype), the rest copied. src is only read. On a quantised model,
 * fs_rnn_set_param quantises what it is given and fs_rnn_get_param returns
 * the dequantised values (scale * q). Errors: FS_ERR_INVALID_ARG for a bad
 * dtype or group size, FS_ERR_UNSUPPORTED when src is already quantised.
 * @param out  receives the new model; the caller owns it (fs_rnn_free)
 */
FS_API fs_status fs_rnn_quantize(const fs_rnn *src, int32_t dtype, int32_t group_size, fs_rnn **out);

/**
 * A quantised model's weight matrix in its stored form (the .fsq tensors of
 * dtype int8 / int4 / bf16, docs/fsq-format.md), rows and columns as in
 * PyTorch's layout ([rows][cols], fs_rnn_param_shape): int8: rows fp32 scales,
 * then rows*cols int8 codes; int4: rows*ceil(cols/group_size) fp32 scales (row
 * major), then per row ceil(cols/2) bytes (column 2i in the low nibble, 2i+1
 * in the high one, each code + 8; an unused last high nibble 0); bf16:
 * rows*cols uint16. Little-endian. bytes must be fs_rnn_param_raw_size's.
 * fs_rnn_set_param_raw checks every value first (scales finite and >= 0,
 * codes in [-127, 127] / [-7, 7], bf16 finite): FS_ERR_INVALID_ARG changes
 * nothing. An fp32 model or a vector parameter is FS_ERR_INVALID_ARG.
 */
FS_API fs_status fs_rnn_param_raw_size(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                       size_t *bytes_out);
FS_API fs_status fs_rnn_get_param_raw(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                      void *out, size_t bytes);
FS_API fs_status fs_rnn_set_param_raw(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                      const void *data, size_t bytes);

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
 *   h0       [L*D, B, R] initial hidden state (R = proj_size or H); NULL: zeros
 *   c0       [L*D, B, H] initial cell state, LSTM only; NULL: zeros
 *   y        [T, B, D*R], or [B, T, D*R] when batch_first      (required)
 *   h_n, c_n final states, shaped like h0, c0; NULL: not wanted.
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
FS_API fs_status fs_rnn_forward(const fs_rnn *model, const fs_seq_args *args);

/** Bytes of workspace fs_rnn_forward_ws needs for these T and B at the thread
 * count set now (per-thread product tiles are part of it). */
FS_API fs_status fs_rnn_forward_workspace_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                               size_t *bytes_out);

/** Bytes of the smallest workspace fs_rnn_forward_ws runs in at the thread count
 * set now: the input projection one step at a time instead of a chunk of steps
 * ahead (independent of T for one layer). What a microcontroller wants; on a
 * host with caches the chunked workspace is a little faster. */
FS_API fs_status fs_rnn_forward_workspace_min_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                                   size_t *bytes_out);

/**
 * fs_rnn_forward with caller-provided workspace (no allocation at all).
 * workspace must be 64-byte aligned and at least workspace_bytes long; a
 * workspace sized for fewer threads than set now runs on as many as it holds
 * tiles for, one below the chunked size projects a step at a time (FS_ERR_SHAPE
 * below fs_rnn_forward_workspace_min_size at one thread).
 */
FS_API fs_status fs_rnn_forward_ws(const fs_rnn *model, const fs_seq_args *args,
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
FS_API fs_status fs_rnn_stream_create(const fs_rnn *model, int32_t batch, fs_rnn_stream **out);

/** Release a stream made by fs_rnn_stream_create. NULL, or a stream made by
 * fs_rnn_stream_init_static, is a no-op. */
FS_API void fs_rnn_stream_free(fs_rnn_stream *stream);

/** Bytes a stream of `batch` sequences over `model` occupies. The size counts
 * one scratch tile per thread allowed now (fs_get_num_threads). */
FS_API fs_status fs_rnn_stream_memory_size(const fs_rnn *model, int32_t batch, size_t *bytes_out);

/** Build a stream inside caller memory (64-byte aligned, at least
 * fs_rnn_stream_memory_size bytes): no allocation at all. Not to be freed. */
FS_API fs_status fs_rnn_stream_init_static(const fs_rnn *model, int32_t batch, void *buffer,
                                           size_t buffer_bytes, fs_rnn_stream **out);

/** Zero every state. */
FS_API fs_status fs_rnn_stream_reset(fs_rnn_stream *stream);

/**
 * Advance one time step: x [batch, input_size] in, y [batch, R] (the last
 * layer's new h; R = proj_size or hidden_size) out. One stream must not be stepped from two
 * threads at once; different streams may run concurrently.
 */
FS_API fs_status fs_rnn_stream_step(fs_rnn_stream *stream, const float *x, size_t x_count, float *y,
                                    size_t y_count);

/**
 * Copy the states out: h [num_layers, batch, R]; c [num_layers, batch,
 * hidden_size] (LSTM only; NULL when not wanted or not an LSTM).
 */
FS_API fs_status fs_rnn_stream_get_state(const fs_rnn_stream *stream, float *h, size_t h_count, float *c,
                                         size_t c_count);

/** Overwrite the states; shapes as in fs_rnn_stream_get_state; NULL leaves one as is. */
FS_API fs_status fs_rnn_stream_set_state(fs_rnn_stream *stream, const float *h, size_t h_count,
                                         const float *c, size_t c_count);

/* ------------------------------------------------------------------------ */
/* 5. Model file                                                            */
/* ------------------------------------------------------------------------ */

/*
 * A .fsq file holds one model: its layer kind, configuration and weights, in
 * little-endian sections that each carry a CRC-32 (spec: docs/fsq-format.md;
 * Python writes it with fastseq.save). Loading validates the whole file --
 * every length against the buffer size, every checksum, the configuration,
 * every tensor's name and shape -- before it allocates anything, and never
 * reads outside [data, data + size). Errors: FS_ERR_FORMAT (truncated, wrong
 * magic, malformed or inconsistent field), FS_ERR_CHECKSUM (corrupted),
 * FS_ERR_VERSION (format version not read by this library), FS_ERR_UNSUPPORTED
 * (a layer kind, key or dtype this library does not know), FS_ERR_IO (files);
 * fs_last_error() says which field, at which offset.
 */

/** The newest .fsq format version this library reads; it reads versions 1
 * (configuration as Python constructor arguments) to this one (configuration
 * as the fs_rnn_config fields; sections bound to their file). */
#define FS_MODEL_FORMAT_VERSION 3

/** The format's limits: a reader rejects a file beyond any of them as malformed
 * (and a writer must not write one). */
#define FS_MODEL_MAX_SECTIONS 4097     /* one config + tensors and optional sections */
#define FS_MODEL_MAX_TENSORS 4096      /* tensor sections of the layer */
#define FS_MODEL_MAX_NAME 128          /* bytes of a kind, key or tensor name */
#define FS_MODEL_MAX_STRING 256        /* bytes of a string value */
#define FS_MODEL_MAX_ENTRIES 64        /* entries of a config, head or metadata section */
#define FS_MODEL_MAX_NDIM 8            /* dimensions of a tensor */
#define FS_MODEL_MAX_DIM 0x7fffffff    /* each dimension */

/** The kind of model a file holds. Values are stable. */
typedef enum fs_model_type {
    FS_MODEL_RNN = 0, /* a sequence layer: fs_model_load */
    FS_MODEL_TREE = 1 /* a tree network (section 7): fs_tree_load; kind is "TREE_CHILD_SUM",
                         "TREE_NARY" or "TREE_RECURSIVE", config and batch_first are zero */
} fs_model_type;

/** What a model file holds, as fs_model_inspect reports it. */
typedef struct fs_model_desc {
    uint32_t format_version;  /* the file's: 1 .. FS_MODEL_FORMAT_VERSION */
    char kind[32];            /* the cell, NUL-terminated: fs_cell_name (e.g. "LSTM", "RNN_TANH") */
    fs_rnn_config config;     /* the configuration fs_model_load creates the model with */
    int32_t batch_first;      /* 1: the model was saved batch-first; use it for
                                 fs_seq_args.batch_first to read inputs as its author did */
    uint32_t tensor_count;    /* parameter tensors in the file */
    uint64_t param_count;     /* floats in all of them */
    int32_t model_type;       /* fs_model_type: which loader builds the model */
} fs_model_desc;

/**
 * Validate a model file held in memory and describe it, without creating the
 * model. Allocates nothing. data may have any alignment.
 * @param data      the file's bytes; size: their count (exactly the file)
 * @param desc_out  receives the description (on FS_OK only)
 */
FS_API fs_status fs_model_inspect(const void *data, size_t size, fs_model_desc *desc_out);

/**
 * Create a model from a model file held in memory (validated as by
 * fs_model_inspect first). The weights are copied: data may be released once
 * this returns. The caller owns *out (fs_rnn_free). Thread-safe.
 */
FS_API fs_status fs_model_load(const void *data, size_t size, fs_rnn **out);

/**
 * fs_model_load on the contents of the file at `path` (read by
 * fs_model_read_file, then released). FS_ERR_IO when it cannot be opened or
 * read; error details start with the path.
 */
FS_API fs_status fs_model_load_file(const char *path, fs_rnn **out);

/**
 * Read the model file at `path` into memory, reading no more than its header
 * states (plus one byte, to report trailing data): a file that is not a .fsq
 * file fails after 32 bytes, one shorter than its header says fails as
 * truncated, and /dev/zero or an endless pipe is never read to exhaustion.
 * Checks the header (magic, version, checksum) only; validate the rest with
 * fs_model_inspect. *data_out (release with fs_model_data_free) holds
 * *size_out bytes. Errors: FS_ERR_IO, FS_ERR_FORMAT, FS_ERR_VERSION,
 * FS_ERR_CHECKSUM, FS_ERR_NOMEM; details start with the path.
 */
FS_API fs_status fs_model_read_file(const char *path, void **data_out, size_t *size_out);

/** Release the bytes fs_model_read_file returned; NULL is a no-op. */
FS_API void fs_model_data_free(void *data);

/*
 * Optional sections. A file may also hold an output head (a linear map over
 * the layer's outputs, as fastseq.train saves it) and metadata entries;
 * fs_model_load skips them, these accessors read them (after validating the
 * whole file as fs_model_inspect does).
 */

/** Value types of metadata and head entries. Values are stable. */
typedef enum fs_value_type {
    FS_VALUE_INT32 = 1,    /* i */
    FS_VALUE_FLOAT32 = 2,  /* f (widened) */
    FS_VALUE_STRING = 3,   /* s: ASCII, NUL-terminated, at most 256 bytes */
    FS_VALUE_FLOAT64 = 4,  /* f */
    FS_VALUE_NONE = 5      /* no value */
} fs_value_type;

/** One key/value entry (keys: letters, digits, '_' and '.', at most 128 bytes). */
typedef struct fs_model_entry {
    char key[129];
    int32_t type;   /* fs_value_type */
    int32_t i;
    double f;
    char s[257];
} fs_model_entry;


/**
 * The metadata entries of a model file, in file order. *count_out: how many
 * (0 without a metadata section); entries (room for `capacity`, may be NULL
 * to count only) receives them -- FS_ERR_SHAPE when capacity is short.
 */
FS_API fs_status fs_model_metadata(const void *data, size_t size, fs_model_entry *entries, size_t capacity,
                                   size_t *count_out);

/** An output head as a model file describes it. */
typedef struct fs_model_head_desc {
    char kind[32];         /* "PerStepLinear" or "LastStepLinear"; "" when the file has no head */
    int32_t in_features;   /* the layer's output features (directions x features of h) */
    int32_t out_features;
    int32_t bias;          /* 0 or 1 */
} fs_model_head_desc;

/**
 * The output head of a model file, validated (kind, keys, in_features against
 * the layer, tensor shapes). weight [out_features, in_features] (row-major,
 * torch's nn.Linear layout) and bias [out_features] receive its parameters
 * when non-NULL; their counts must match (bias_count 0 without a bias). Call
 * once with NULL buffers to learn the sizes.
 */
FS_API fs_status fs_model_head(const void *data, size_t size, fs_model_head_desc *desc_out, float *weight,
                               size_t weight_count, float *bias, size_t bias_count);

/*
 * Tree networks (section 7) in model files: fs_model_inspect reports
 * model_type FS_MODEL_TREE, fs_model_load refuses them (FS_ERR_UNSUPPORTED),
 * the functions below read them and refuse a sequence layer's file the same
 * way. fs_model_head and fs_model_metadata read a tree file's optional
 * sections (its head, PerStepLinear only, acts on each root's h: in_features
 * is the tree's hidden_size). Spec: docs/fsq-format.md, "Tree networks".
 */
struct fs_tree;        /* fs_tree, section 7 */
struct fs_tree_config; /* fs_tree_config, section 7 */

/** The configuration of the tree network in a model file (validated as by
 * fs_model_inspect; allocates nothing). */
FS_API fs_status fs_tree_inspect(const void *data, size_t size, struct fs_tree_config *config_out);

/**
 * Create a tree network from a model file held in memory (validated first;
 * built by fs_tree_create and fs_tree_set_param). The weights are copied: data
 * may be released once this returns. The caller owns *out (fs_tree_free).
 */
FS_API fs_status fs_tree_load(const void *data, size_t size, struct fs_tree **out);

/** fs_tree_load on the contents of the file at `path` (as fs_model_load_file). */
FS_API fs_status fs_tree_load_file(const char *path, struct fs_tree **out);

/* ------------------------------------------------------------------------ */
/* 6. Training (backward)                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Back-propagation through time. A training forward (fs_rnn_train_forward)
 * runs like fs_rnn_forward and records what the backward pass needs into a
 * tape; fs_rnn_backward then returns the gradients of a loss with respect to
 * every parameter, the input and the initial states, given the loss's
 * gradients with respect to the output and the final states.
 *
 * All parameters of a model form one flat vector ("flat order"): for each
 * layer, each direction (forward, then reverse), each parameter the model has
 * in fs_param order (weight_ih, weight_hh, bias_ih, bias_hh for the PyTorch
 * cells: the order of torch's state_dict), row-major in PyTorch's layout.
 *
 * Every cell and variant has a backward pass: RNN (tanh, relu), LSTM (with
 * peepholes, coupled gates, projection), GRU (both reset forms), FastRNN and
 * FastGRNN (low-rank factors; the raw scalars alpha, beta, zeta, nu get the
 * gradient through their sigmoid). R = proj_size or H below: the features of h.
 */

/** Floats in the flat parameter vector of the model. */
FS_API fs_status fs_rnn_param_count(const fs_rnn *model, size_t *count_out);

/** Where one parameter starts in the flat vector (FS_ERR_INVALID_ARG if the
 * model lacks it). Its length is rows*cols of fs_rnn_param_shape. */
FS_API fs_status fs_rnn_param_offset(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                     size_t *offset_out);

/** Copy every parameter out in flat order; count == fs_rnn_param_count. */
FS_API fs_status fs_rnn_get_params(const fs_rnn *model, float *out, size_t count);

/** Set every parameter from flat order (as fs_rnn_set_param each, repacking
 * the kernels' copies). Not thread-safe against calls using the model. */
FS_API fs_status fs_rnn_set_params(fs_rnn *model, const float *data, size_t count);

/** Opaque record of one training forward: saved activations, states and
 * layer inputs, plus the scratch the backward pass needs. */
typedef struct fs_rnn_tape fs_rnn_tape;

/**
 * Bytes of a tape for sequences of up to seq_len steps and batch sequences
 * (a tape serves any seq_len' <= seq_len and batch' <= batch). It records
 * what the forward computed: about T*B*(I + (L-1)*D*H + L*D*H*(2*gates + 2))
 * floats (input projections, recurrent products, states; H rounded up to 8),
 * plus the forward's workspace or backward's scratch (a few T*B*gates*H),
 * whichever is larger. Sized for the thread count set now; a later call with
 * more threads set runs on as many as the tape holds room for.
 */
FS_API fs_status fs_rnn_tape_size(const fs_rnn *model, int32_t seq_len, int32_t batch, size_t *bytes_out);

/** Build a tape for `model` inside caller memory (64-byte aligned, at least
 * fs_rnn_tape_size bytes): no allocation. Not to be freed. */
FS_API fs_status fs_rnn_tape_init(const fs_rnn *model, int32_t seq_len, int32_t batch, void *buffer,
                                  size_t buffer_bytes, fs_rnn_tape **out);

/** Allocate a tape for `model` (fs_rnn_tape_free releases it). The tape
 * borrows the model: keep it alive and unchanged from a training forward to
 * the backward pass that reads it. */
FS_API fs_status fs_rnn_tape_create(const fs_rnn *model, int32_t seq_len, int32_t batch, fs_rnn_tape **out);

/** Release a tape made by fs_rnn_tape_create. NULL, or a tape made by
 * fs_rnn_tape_init, is a no-op. */
FS_API void fs_rnn_tape_free(fs_rnn_tape *tape);

/**
 * fs_rnn_forward that also records into `tape` (made for this model, large
 * enough for args' seq_len and batch, else FS_ERR_SHAPE): the same driver,
 * kernels and threads, so y, h_n and c_n are bit-identical to fs_rnn_forward's.
 * Arguments and results as fs_rnn_forward, checked the same way; x is copied
 * into the tape.
 * No allocation. One tape serves one call at a time; different tapes may run
 * concurrently on one model.
 */
FS_API fs_status fs_rnn_train_forward(const fs_rnn *model, const fs_seq_args *args, fs_rnn_tape *tape);

/**
 * Gradients wanted from, and given to, one backward pass. Shapes as in
 * fs_seq_args of the recorded forward (T, B, layout, batch_first):
 *
 *   grad_y       [T, B, D*R] d loss / d y; NULL: zero. Entries past a
 *                sequence's length are ignored (those outputs are constant).
 *   grad_h_n     [L*D, B, R] d loss / d h_n; NULL: zero
 *   grad_c_n     [L*D, B, H] d loss / d c_n (LSTM only); NULL: zero
 *   grad_x       [T, B, I] out: d loss / d x; NULL: not wanted
 *   grad_h0      [L*D, B, R] out: d loss / d h0; NULL: not wanted
 *   grad_c0      [L*D, B, H] out: d loss / d c0 (LSTM only); NULL: not wanted
 *   grad_params  [fs_rnn_param_count] out, flat order; NULL: not wanted
 *   accumulate   0: grad_params is overwritten; 1: the gradients are added to
 *                it (gradient accumulation over chunks or batches)
 */
typedef struct fs_grad_args {
    const float *grad_y;   size_t grad_y_count;
    const float *grad_h_n; size_t grad_h_n_count;
    const float *grad_c_n; size_t grad_c_n_count;
    float *grad_x;         size_t grad_x_count;
    float *grad_h0;        size_t grad_h0_count;
    float *grad_c0;        size_t grad_c0_count;
    float *grad_params;    size_t grad_params_count;
    int32_t accumulate;
} fs_grad_args;

/**
 * Back-propagation through time over the forward recorded in `tape` (which
 * must have been made for `model`; the model's weights must not change in
 * between). The tape stays valid: backward may run again on it. Uses the
 * tape's scratch, allocates nothing.
 */
FS_API fs_status fs_rnn_backward(const fs_rnn *model, fs_rnn_tape *tape, const fs_grad_args *args);

/**
 * The recorded state before step t of a unidirectional model: h (and c for an
 * LSTM) [L, B, R] (c: [L, B, H]); NULL: not wanted. For truncated BPTT windows that overlap.
 * A sequence already finished at t gives its final state.
 */
FS_API fs_status fs_rnn_tape_get_state(const fs_rnn_tape *tape, int32_t t, float *h, size_t h_count,
                                       float *c, size_t c_count);

/** Scale grads so their L2 norm is at most max_norm (torch's clip_grad_norm_,
 * factor max_norm / (norm + 1e-6)); *norm_out (may be NULL) gets the norm before. */
FS_API fs_status fs_clip_grad_norm(float *grads, size_t count, float max_norm, float *norm_out);

/** Clamp every gradient to [-clip, clip]. */
FS_API fs_status fs_clip_grad_value(float *grads, size_t count, float clip);

/** torch.optim.SGD step (dampening 0, no Nesterov): g += weight_decay * p;
 * with momentum v = momentum * v + g (v starts at zero), g = v; p -= lr * g.
 * velocity may be NULL when momentum is 0. */
FS_API fs_status fs_sgd_step(float *params, const float *grads, float *velocity, size_t count, float lr,
                             float momentum, float weight_decay);

/** torch.optim.Adam step number `step` (1, 2, ...), m and v start at zero. */
FS_API fs_status fs_adam_step(float *params, const float *grads, float *m, float *v, size_t count,
                              int64_t step, float lr, float beta1, float beta2, float eps, float weight_decay);

/* Heads and losses for training loops (row-major float arrays, rows = T*B
 * positions). Shapes come first; every buffer comes with its element count,
 * checked against them (FS_ERR_SHAPE names the buffer). Thread-safe; no allocation. */

/** y[n][o] = bias[o] + sum_k x[n][k] weight[o][k] (torch's nn.Linear layout):
 * x [rows, in], weight [out, in], bias [out] (NULL, count 0: none), y [rows, out]. */
FS_API fs_status fs_linear_forward(size_t rows, size_t in, size_t out, const float *x, size_t x_count,
                                   const float *weight, size_t weight_count, const float *bias,
                                   size_t bias_count, float *y, size_t y_count);

/** Backward of fs_linear_forward for d loss / d y = grad_y [rows, out]:
 * grad_x [rows, in] is overwritten; grad_weight [out, in] and grad_bias [out]
 * are added to. Any output may be NULL (not wanted; its count is then ignored). */
FS_API fs_status fs_linear_backward(size_t rows, size_t in, size_t out, const float *x, size_t x_count,
                                    const float *weight, size_t weight_count, const float *grad_y,
                                    size_t grad_y_count, float *grad_x, size_t grad_x_count,
                                    float *grad_weight, size_t grad_weight_count, float *grad_bias,
                                    size_t grad_bias_count);

/** Mean squared error of pred against target, both [rows, cols] (torch's
 * MSELoss): mask [rows] (NULL: all 1) weights rows and the mean is over the
 * weighted elements. grad [rows, cols] (may be NULL) receives d loss / d pred. */
FS_API fs_status fs_mse_loss(size_t rows, size_t cols, const float *pred, size_t pred_count,
                             const float *target, size_t target_count, const float *mask,
                             size_t mask_count, float *grad, size_t grad_count, float *loss_out);

/** Softmax cross-entropy of logits [rows, classes] against class indices
 * target [rows] (torch's CrossEntropyLoss), rows weighted by mask as above. */
FS_API fs_status fs_softmax_xent_loss(size_t rows, size_t classes, const float *logits,
                                      size_t logits_count, const int32_t *target, size_t target_count,
                                      const float *mask, size_t mask_count, float *grad,
                                      size_t grad_count, float *loss_out);

/* ------------------------------------------------------------------------ */
/* 7. Tree networks: a forest of recursive cells, scheduled by levels       */
/* ------------------------------------------------------------------------ */
/* A forest of N nodes is given by parent[N] (-1: a root; nodes in any order).
 * The k-th child of a node is its child with the k-th smallest index. Nodes
 * are run by levels (a leaf is level 0, a node 1 + its deepest child): one
 * product per level over all its nodes, rows split over threads; the results
 * are the same bits for any thread count. Gate rows follow PyTorch (W x + b_ih
 * + U h + b_hh). Threads: as fs_rnn (model read-only during calls, one
 * workspace per call). */

typedef struct fs_tree fs_tree;

/** Tree cell kinds. Values are stable. */
typedef enum fs_tree_kind {
    FS_TREE_CHILD_SUM = 0, /* Tai et al. 2015 child-sum Tree-LSTM: gates i, f, g, o; 4H rows, U [4H, H] */
    FS_TREE_NARY = 1,      /* N-ary Tree-LSTM: gates i, f_1..f_N, g, o; (N+3)H rows, U [(N+3)H, N*H] */
    FS_TREE_RECURSIVE = 2  /* recursive network: h = act(W x + U [h_1; ...; h_N] + b); U [H, N*H] */
} fs_tree_kind;

/** A tree model's shape. arity: the most children a node may have (NARY and
 * RECURSIVE, 1 to 64; CHILD_SUM: 0, any number); relu: RECURSIVE only, 1 for
 * relu, 0 for tanh. */
typedef struct fs_tree_config {
    int32_t kind;
    int32_t input_size;
    int32_t hidden_size;
    int32_t arity;
    int32_t relu;
} fs_tree_config;

/** Tree parameters, PyTorch names: weight_ih [G*H, I], weight_hh [G*H, K],
 * bias_ih, bias_hh [G*H] (G, K per fs_tree_kind). */
typedef enum fs_tree_param {
    FS_TREE_WEIGHT_IH = 0, FS_TREE_WEIGHT_HH = 1, FS_TREE_BIAS_IH = 2, FS_TREE_BIAS_HH = 3,
    FS_TREE_PARAM_COUNT = 4
} fs_tree_param;

/** Creates a tree model with zero parameters; *out owns it (fs_tree_free). */
FS_API fs_status fs_tree_create(const fs_tree_config *config, fs_tree **out);

/** Releases a tree model; NULL is a no-op. */
FS_API void fs_tree_free(fs_tree *model);

/** Shape [rows, cols] of parameter p (a bias: cols 1). */
FS_API fs_status fs_tree_param_shape(const fs_tree *model, fs_tree_param p, int64_t *rows_out,
                                     int64_t *cols_out);

/** Copies parameter p in (count = rows * cols); not concurrently with other calls on the model. */
FS_API fs_status fs_tree_set_param(fs_tree *model, fs_tree_param p, const float *data, size_t count);

/** Copies parameter p out (count = rows * cols). */
FS_API fs_status fs_tree_get_param(const fs_tree *model, fs_tree_param p, float *out, size_t count);

/** Bytes of the workspace fs_tree_forward needs for n_nodes nodes; train = 1
 * adds what fs_tree_backward needs (the forward then leaves its tape there). */
FS_API fs_status fs_tree_workspace_size(const fs_tree *model, int32_t n_nodes, int32_t train,
                                        size_t *bytes_out);

/**
 * Runs the forest: x [N, I] node features, parent [N] (-1 or a node index),
 * h_out [N, H] every node's state, c_out [N, H] its cell state (Tree-LSTMs;
 * NULL, count 0 for RECURSIVE). workspace: FS_ALIGN-aligned, at least
 * fs_tree_workspace_size(model, N, train) bytes, caller-owned. A parent out of
 * range, a cycle or more children than the arity: FS_ERR_INVALID_ARG naming the node.
 */
FS_API fs_status fs_tree_forward(const fs_tree *model, int32_t n_nodes, const float *x, size_t x_count,
                                 const int64_t *parent, size_t parent_count, float *h_out, size_t h_count,
                                 float *c_out, size_t c_count, void *workspace, size_t workspace_bytes,
                                 int32_t train);

/**
 * Backward of the last fs_tree_forward(..., train = 1) into the same
 * workspace with the same x and parent: from dh [N, H] = d loss / d h_out and
 * dc [N, H] = d loss / d c_out (NULL, count 0: zero; RECURSIVE: must be NULL),
 * writes dx [N, I] and grad_w_ih, grad_w_hh, grad_bias (the gradient of both
 * bias_ih and bias_hh) in the parameters' shapes. Outputs are overwritten.
 */
FS_API fs_status fs_tree_backward(const fs_tree *model, int32_t n_nodes, const float *x, size_t x_count,
                                  const int64_t *parent, size_t parent_count, const float *dh,
                                  size_t dh_count, const float *dc, size_t dc_count, float *dx,
                                  size_t dx_count, float *grad_w_ih, size_t grad_w_ih_count,
                                  float *grad_w_hh, size_t grad_w_hh_count, float *grad_bias,
                                  size_t grad_bias_count, void *workspace, size_t workspace_bytes);

/* ------------------------------------------------------------------------ */
/* 8. Sequence to sequence: decode loops                                    */
/* ------------------------------------------------------------------------ */

/*
 * A decoder: a unidirectional model (its stream step runs every layer), a
 * linear head to V outputs, and the input it is fed back. Token decoding: an
 * embedding [V, input_size]; the input of step t is the embedding row of the
 * token chosen at t - 1 (bos at t = 0). Continuous decoding: no embedding,
 * input_size == V, the input of step t is the head output of t - 1 (`start`,
 * or zeros, at t = 0). The initial states h0 [num_layers, batch, R] and c0
 * [num_layers, batch, hidden_size] (LSTM; NULL: zeros) are the caller's (an
 * encoder's final states through a bridge). Every array is the caller's, read
 * only, with its element count; the calls allocate their scratch and free it
 * before they return. Rows of a batch are independent: their results do not
 * depend on the batch they run in. Bit-for-bit deterministic for any thread count.
 */
typedef struct fs_decoder {
    const fs_rnn *model;        /* unidirectional, any cell; borrowed for the call */
    int32_t vocab;              /* V >= 1: head outputs (tokens, or continuous features) */
    const float *head_weight;   /* [V, R] (torch's nn.Linear layout), V * R floats */
    size_t head_weight_count;
    const float *head_bias;     /* [V]; NULL (count 0): none */
    size_t head_bias_count;
    const float *embedding;     /* [V, input_size]; NULL (count 0): continuous outputs */
    size_t embedding_count;
} fs_decoder;

/**
 * Greedy token decoding: each step feeds the embedding of the previous token,
 * steps every layer, applies the head and takes the argmax (ties: the lowest
 * index). A row stops at its own `eos` (-1: never) or after max_len tokens.
 * tokens_out [batch, max_len]: a row's tokens, then eos at its length (when it
 * stopped there) and eos (or 0 with eos -1) after; lengths_out [batch]: tokens
 * before eos; scores_out [batch] (NULL: not wanted): the sum of log-softmax
 * probabilities of the tokens taken, eos included. bos in [0, V), eos in [-1, V).
 */
FS_API fs_status fs_decode_greedy(const fs_decoder *decoder, int32_t batch, const float *h0, size_t h0_count,
                                  const float *c0, size_t c0_count, int32_t max_len, int32_t bos, int32_t eos,
                                  int32_t *tokens_out, size_t tokens_count, int32_t *lengths_out,
                                  size_t lengths_count, float *scores_out, size_t scores_count);

/**
 * Beam search over tokens: keeps beam_size hypotheses per row (batch x
 * beam_size states, reordered every step). Each step ranks the 2 x beam_size
 * best extensions by total log-probability (ties: lowest hypothesis x V +
 * token); one ending in eos among the first beam_size is finished, scored by
 * GNMT's length penalty: log P / ((5 + n) / 6)^length_penalty, n = its tokens,
 * eos included (length_penalty 0: log P); the others, in rank order, form
 * the next beam. Hypotheses alive after max_len steps are finished as they
 * are. A row stops once no alive hypothesis can beat its best finished one.
 * Outputs as fs_decode_greedy, for each row's best finished hypothesis;
 * scores_out: its log P (without the penalty). beam_size 1 with
 * length_penalty 0 gives greedy's tokens and scores.
 */
FS_API fs_status fs_decode_beam(const fs_decoder *decoder, int32_t batch, int32_t beam_size, const float *h0,
                                size_t h0_count, const float *c0, size_t c0_count, int32_t max_len, int32_t bos,
                                int32_t eos, float length_penalty, int32_t *tokens_out, size_t tokens_count,
                                int32_t *lengths_out, size_t lengths_count, float *scores_out,
                                size_t scores_count);

/**
 * Continuous decoding (decoder without embedding): the head output of each
 * step is the next step's input. start [batch, V] is the first input (NULL:
 * zeros). A row stops after the first step whose output at stop_channel is
 * above 0 (a stop logit, sigmoid > 0.5; -1: never) or after max_len steps.
 * outputs_out [batch, max_len, V]: each row's outputs, zeros after its
 * length; lengths_out [batch]: steps produced, the stopping one included.
 */
FS_API fs_status fs_decode_continuous(const fs_decoder *decoder, int32_t batch, const float *h0,
                                      size_t h0_count, const float *c0, size_t c0_count, const float *start,
                                      size_t start_count, int32_t max_len, int32_t stop_channel,
                                      float *outputs_out, size_t outputs_count, int32_t *lengths_out,
                                      size_t lengths_count);

#ifdef __cplusplus
}
#endif

#endif /* FASTSEQ_H */
