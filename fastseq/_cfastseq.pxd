# Declarations of src/include/fastseq.h, one-to-one.
from libc.stdint cimport int32_t, uint32_t

cdef extern from "fastseq.h" nogil:
    ctypedef enum fs_status:
        FS_OK
        FS_ERR_NULL_ARG
        FS_ERR_INVALID_ARG
        FS_ERR_SHAPE
        FS_ERR_NOMEM
        FS_ERR_UNSUPPORTED
        FS_ERR_FORMAT
        FS_ERR_CHECKSUM
        FS_ERR_VERSION
        FS_ERR_IO

    const char *fs_status_str(fs_status status)
    const char *fs_last_error()

    ctypedef enum fs_isa:
        FS_ISA_GENERIC
        FS_ISA_AVX2
        FS_ISA_AVX512
        FS_ISA_NEON

    fs_isa fs_active_isa()
    const char *fs_isa_name(fs_isa isa)
    fs_status fs_set_isa(fs_isa isa)
    int32_t fs_isa_supported(fs_isa isa)
    uint32_t fs_version()
    const char *fs_version_string()
    enum: FS_MAX_THREADS
    fs_status fs_set_num_threads(int32_t n)
    int32_t fs_get_num_threads()

    ctypedef enum fs_cell:
        FS_CELL_RNN_TANH
        FS_CELL_RNN_RELU
        FS_CELL_LSTM
        FS_CELL_GRU
        FS_CELL_FASTRNN
        FS_CELL_FASTGRNN
        FS_CELL_UGRNN

    ctypedef enum fs_act:
        FS_ACT_TANH
        FS_ACT_SIGMOID
        FS_ACT_RELU
        FS_ACT_HARD_SIGMOID
        FS_ACT_SOFTSIGN
        FS_ACT_HARD_TANH

    ctypedef struct fs_rnn_config:
        fs_cell cell
        int32_t input_size
        int32_t hidden_size
        int32_t num_layers
        int32_t bidirectional
        int32_t bias
        int32_t proj_size
        int32_t peephole
        int32_t coupled
        int32_t reset_before
        int32_t update_act
        int32_t gate_act
        int32_t w_rank
        int32_t u_rank
        int32_t act[3]
        float act_alpha[3]
        float act_beta[3]
        float clip
        int32_t dtype
        int32_t group_size
        int32_t residual

    ctypedef enum fs_param:
        FS_PARAM_WEIGHT_IH
        FS_PARAM_WEIGHT_HH
        FS_PARAM_BIAS_IH
        FS_PARAM_BIAS_HH
        FS_PARAM_WEIGHT_IH_A
        FS_PARAM_WEIGHT_IH_B
        FS_PARAM_WEIGHT_HH_A
        FS_PARAM_WEIGHT_HH_B
        FS_PARAM_WEIGHT_HR
        FS_PARAM_PEEPHOLE_I
        FS_PARAM_PEEPHOLE_F
        FS_PARAM_PEEPHOLE_O
        FS_PARAM_BIAS_GATE
        FS_PARAM_BIAS_UPDATE
        FS_PARAM_ALPHA
        FS_PARAM_BETA
        FS_PARAM_ZETA
        FS_PARAM_NU
        FS_PARAM_COUNT

    ctypedef struct fs_rnn:
        pass

    fs_status fs_rnn_create(const fs_rnn_config *config, fs_rnn **out)
    void fs_rnn_free(fs_rnn *model)
    fs_status fs_rnn_memory_size(const fs_rnn_config *config, size_t *bytes_out)
    fs_status fs_rnn_init_static(const fs_rnn_config *config, void *buffer, size_t buffer_bytes,
                                 fs_rnn **out)
    fs_status fs_rnn_weights_size(const fs_rnn_config *config, size_t *weights_bytes_out,
                                  size_t *header_bytes_out)
    fs_status fs_rnn_weights(const fs_rnn *model, const void **weights_out, size_t *weights_bytes_out)
    fs_status fs_rnn_init_static_weights(const fs_rnn_config *config, const void *weights,
                                         size_t weights_bytes, void *buffer, size_t buffer_bytes,
                                         fs_rnn **out)
    const char *fs_param_name(fs_param param)
    const char *fs_cell_name(fs_cell cell)
    const char *fs_act_name(fs_act act)
    const char *fs_dtype_name(int32_t dtype)
    fs_status fs_rnn_quantize(const fs_rnn *src, int32_t dtype, int32_t group_size, fs_rnn **out)
    fs_status fs_rnn_param_raw_size(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                    size_t *bytes_out)
    fs_status fs_rnn_get_param_raw(const fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                   void *out, size_t bytes)
    fs_status fs_rnn_set_param_raw(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                                   const void *data, size_t bytes)
    int32_t fs_param_ndim(fs_param param)
    fs_status fs_rnn_get_config(const fs_rnn *model, fs_rnn_config *out)
    fs_status fs_rnn_param_shape(const fs_rnn *model, int32_t layer, int32_t direction,
                                 fs_param param, size_t *rows_out, size_t *cols_out)
    fs_status fs_rnn_set_param(fs_rnn *model, int32_t layer, int32_t direction, fs_param param,
                               const float *data, size_t count)
    fs_status fs_rnn_get_param(const fs_rnn *model, int32_t layer, int32_t direction,
                               fs_param param, float *out, size_t count)

    ctypedef struct fs_seq_args:
        int32_t seq_len
        int32_t batch
        int32_t batch_first
        const float *x
        size_t x_count
        const int32_t *lengths
        size_t lengths_count
        const float *h0
        size_t h0_count
        const float *c0
        size_t c0_count
        float *y
        size_t y_count
        float *h_n
        size_t h_n_count
        float *c_n
        size_t c_n_count

    fs_status fs_rnn_forward(const fs_rnn *model, const fs_seq_args *args)
    fs_status fs_rnn_forward_workspace_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                            size_t *bytes_out)
    fs_status fs_rnn_forward_workspace_min_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                                size_t *bytes_out)
    fs_status fs_rnn_forward_ws(const fs_rnn *model, const fs_seq_args *args,
                                void *workspace, size_t workspace_bytes)

    ctypedef struct fs_rnn_stream:
        pass

    fs_status fs_rnn_stream_create(const fs_rnn *model, int32_t batch, fs_rnn_stream **out)
    void fs_rnn_stream_free(fs_rnn_stream *stream)
    fs_status fs_rnn_stream_memory_size(const fs_rnn *model, int32_t batch, size_t *bytes_out)
    fs_status fs_rnn_stream_init_static(const fs_rnn *model, int32_t batch, void *buffer,
                                        size_t buffer_bytes, fs_rnn_stream **out)
    fs_status fs_rnn_stream_reset(fs_rnn_stream *stream)
    fs_status fs_rnn_stream_step(fs_rnn_stream *stream, const float *x, size_t x_count, float *y,
                                 size_t y_count)
    fs_status fs_rnn_stream_get_state(const fs_rnn_stream *stream, float *h, size_t h_count,
                                      float *c, size_t c_count)
    fs_status fs_rnn_stream_set_state(fs_rnn_stream *stream, const float *h, size_t h_count,
                                      const float *c, size_t c_count)

# ---- 6. Training (backward) ------------------------------------------------------------
from libc.stdint cimport int64_t

cdef extern from "fastseq.h" nogil:
    fs_status fs_rnn_param_count(const fs_rnn *model, size_t *count_out)
    fs_status fs_rnn_param_offset(const fs_rnn *model, int32_t layer, int32_t direction,
                                  fs_param param, size_t *offset_out)
    fs_status fs_rnn_get_params(const fs_rnn *model, float *out, size_t count)
    fs_status fs_rnn_set_params(fs_rnn *model, const float *data, size_t count)

    ctypedef struct fs_rnn_tape:
        pass

    fs_status fs_rnn_tape_size(const fs_rnn *model, int32_t seq_len, int32_t batch,
                               size_t *bytes_out)
    fs_status fs_rnn_tape_init(const fs_rnn *model, int32_t seq_len, int32_t batch, void *buffer,
                               size_t buffer_bytes, fs_rnn_tape **out)
    fs_status fs_rnn_tape_create(const fs_rnn *model, int32_t seq_len, int32_t batch,
                                 fs_rnn_tape **out)
    void fs_rnn_tape_free(fs_rnn_tape *tape)
    fs_status fs_rnn_train_forward(const fs_rnn *model, const fs_seq_args *args, fs_rnn_tape *tape)

    ctypedef struct fs_grad_args:
        const float *grad_y
        size_t grad_y_count
        const float *grad_h_n
        size_t grad_h_n_count
        const float *grad_c_n
        size_t grad_c_n_count
        float *grad_x
        size_t grad_x_count
        float *grad_h0
        size_t grad_h0_count
        float *grad_c0
        size_t grad_c0_count
        float *grad_params
        size_t grad_params_count
        int32_t accumulate

    fs_status fs_rnn_backward(const fs_rnn *model, fs_rnn_tape *tape, const fs_grad_args *args)
    fs_status fs_rnn_tape_get_state(const fs_rnn_tape *tape, int32_t t, float *h, size_t h_count,
                                    float *c, size_t c_count)

    fs_status fs_clip_grad_norm(float *grads, size_t count, float max_norm, float *norm_out)
    fs_status fs_clip_grad_value(float *grads, size_t count, float clip)
    fs_status fs_sgd_step(float *params, const float *grads, float *velocity, size_t count,
                          float lr, float momentum, float weight_decay)
    fs_status fs_adam_step(float *params, const float *grads, float *m, float *v, size_t count,
                           int64_t step, float lr, float beta1, float beta2, float eps,
                           float weight_decay)

    fs_status fs_linear_forward(size_t rows, size_t in_, size_t out, const float *x, size_t x_count,
                                const float *weight, size_t weight_count, const float *bias,
                                size_t bias_count, float *y, size_t y_count)
    fs_status fs_linear_backward(size_t rows, size_t in_, size_t out, const float *x, size_t x_count,
                                 const float *weight, size_t weight_count, const float *grad_y,
                                 size_t grad_y_count, float *grad_x, size_t grad_x_count,
                                 float *grad_weight, size_t grad_weight_count, float *grad_bias,
                                 size_t grad_bias_count)
    fs_status fs_mse_loss(size_t rows, size_t cols, const float *pred, size_t pred_count,
                          const float *target, size_t target_count, const float *mask,
                          size_t mask_count, float *grad, size_t grad_count, float *loss_out)
    fs_status fs_softmax_xent_loss(size_t rows, size_t classes, const float *logits,
                                   size_t logits_count, const int32_t *target, size_t target_count,
                                   const float *mask, size_t mask_count, float *grad,
                                   size_t grad_count, float *loss_out)

# ---- 5. Model file ----
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "fastseq.h" nogil:
    enum:
        FS_MODEL_FORMAT_VERSION

    ctypedef struct fs_model_desc:
        uint32_t format_version
        char kind[32]
        fs_rnn_config config
        int32_t batch_first
        uint32_t tensor_count
        uint64_t param_count
        int32_t model_type

    ctypedef enum fs_model_type:
        FS_MODEL_RNN
        FS_MODEL_TREE

    fs_status fs_model_inspect(const void *data, size_t size, fs_model_desc *desc_out)
    fs_status fs_model_load(const void *data, size_t size, fs_rnn **out)
    fs_status fs_model_load_file(const char *path, fs_rnn **out)
    fs_status fs_model_read_file(const char *path, void **data_out, size_t *size_out)
    void fs_model_data_free(void *data)

    ctypedef enum fs_value_type:
        FS_VALUE_INT32
        FS_VALUE_FLOAT32
        FS_VALUE_STRING
        FS_VALUE_FLOAT64
        FS_VALUE_NONE

    ctypedef struct fs_model_entry:
        char key[129]
        int32_t type
        int32_t i
        double f
        char s[257]

    enum:
        FS_MODEL_MAX_SECTIONS
        FS_MODEL_MAX_TENSORS
        FS_MODEL_MAX_NAME
        FS_MODEL_MAX_STRING
        FS_MODEL_MAX_ENTRIES
        FS_MODEL_MAX_NDIM
        FS_MODEL_MAX_DIM

    fs_status fs_model_metadata(const void *data, size_t size, fs_model_entry *entries, size_t capacity,
                                size_t *count_out)

    ctypedef struct fs_model_head_desc:
        char kind[32]
        int32_t in_features
        int32_t out_features
        int32_t bias

    fs_status fs_model_head(const void *data, size_t size, fs_model_head_desc *desc_out, float *weight,
                            size_t weight_count, float *bias, size_t bias_count)

    # 7. Tree networks
    ctypedef struct fs_tree:
        pass

    ctypedef enum fs_tree_kind:
        FS_TREE_CHILD_SUM
        FS_TREE_NARY
        FS_TREE_RECURSIVE

    ctypedef struct fs_tree_config:
        int32_t kind
        int32_t input_size
        int32_t hidden_size
        int32_t arity
        int32_t relu

    ctypedef enum fs_tree_param:
        FS_TREE_WEIGHT_IH
        FS_TREE_WEIGHT_HH
        FS_TREE_BIAS_IH
        FS_TREE_BIAS_HH
        FS_TREE_PARAM_COUNT

    fs_status fs_tree_create(const fs_tree_config *config, fs_tree **out)
    void fs_tree_free(fs_tree *model)
    fs_status fs_tree_param_shape(const fs_tree *model, fs_tree_param p, int64_t *rows_out, int64_t *cols_out)
    fs_status fs_tree_set_param(fs_tree *model, fs_tree_param p, const float *data, size_t count)
    fs_status fs_tree_get_param(const fs_tree *model, fs_tree_param p, float *out, size_t count)
    fs_status fs_tree_workspace_size(const fs_tree *model, int32_t n_nodes, int32_t train, size_t *bytes_out)
    fs_status fs_tree_forward(const fs_tree *model, int32_t n_nodes, const float *x, size_t x_count,
                              const int64_t *parent, size_t parent_count, float *h_out, size_t h_count,
                              float *c_out, size_t c_count, void *workspace, size_t workspace_bytes,
                              int32_t train)
    fs_status fs_tree_backward(const fs_tree *model, int32_t n_nodes, const float *x, size_t x_count,
                               const int64_t *parent, size_t parent_count, const float *dh, size_t dh_count,
                               const float *dc, size_t dc_count, float *dx, size_t dx_count,
                               float *grad_w_ih, size_t grad_w_ih_count, float *grad_w_hh,
                               size_t grad_w_hh_count, float *grad_bias, size_t grad_bias_count,
                               void *workspace, size_t workspace_bytes)

    # 5. Model file: tree networks
    fs_status fs_tree_inspect(const void *data, size_t size, fs_tree_config *config_out)
    fs_status fs_tree_load(const void *data, size_t size, fs_tree **out)
    fs_status fs_tree_load_file(const char *path, fs_tree **out)

    # 8. Sequence to sequence: decode loops
    ctypedef struct fs_decoder:
        const fs_rnn *model
        int32_t vocab
        const float *head_weight
        size_t head_weight_count
        const float *head_bias
        size_t head_bias_count
        const float *embedding
        size_t embedding_count

    fs_status fs_decode_greedy(const fs_decoder *decoder, int32_t batch, const float *h0, size_t h0_count,
                               const float *c0, size_t c0_count, int32_t max_len, int32_t bos, int32_t eos,
                               int32_t *tokens_out, size_t tokens_count, int32_t *lengths_out,
                               size_t lengths_count, float *scores_out, size_t scores_count)
    fs_status fs_decode_beam(const fs_decoder *decoder, int32_t batch, int32_t beam_size, const float *h0,
                             size_t h0_count, const float *c0, size_t c0_count, int32_t max_len, int32_t bos,
                             int32_t eos, float length_penalty, int32_t *tokens_out, size_t tokens_count,
                             int32_t *lengths_out, size_t lengths_count, float *scores_out,
                             size_t scores_count)
    fs_status fs_decode_continuous(const fs_decoder *decoder, int32_t batch, const float *h0,
                                   size_t h0_count, const float *c0, size_t c0_count, const float *start,
                                   size_t start_count, int32_t max_len, int32_t stop_channel,
                                   float *outputs_out, size_t outputs_count, int32_t *lengths_out,
                                   size_t lengths_count)
