/* Training utilities on flat float arrays: all parameters of a model in one
 * vector, gradient clipping, and the SGD (momentum) and Adam updates with
 * torch.optim's arithmetic. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "rnn.h"
#include "rnn_backward.h"
#include "threads.h"

/* Calls fn(model, layer, dir, param, offset, count) for every parameter in flat order. */
typedef fs_status (*param_fn)(fs_rnn *m, int32_t l, int32_t d, fs_param q, float *flat, size_t n);

static fs_status each_param(fs_rnn *m, float *flat, size_t count, param_fn fn) {
    size_t total = 0;
    fs_status st = fs_rnn_param_count(m, &total);
    if (st != FS_OK) return st;
    if (count != total)
        return fs__fail(FS_ERR_SHAPE, "params: expected %zu elements (fs_rnn_param_count), got %zu", total, count);
    size_t off = 0;
    for (int32_t l = 0; l < m->cfg.num_layers; l++)
        for (int32_t d = 0; d < (int32_t)m->dirs; d++)
            for (int q = 0; q < FS_PARAM_COUNT; q++) {
                size_t rows = 0, cols = 0;
                if (!fs__param_shape(m, (size_t)l, (size_t)d, (fs_param)q, &rows, &cols)) continue;
                if ((st = fn(m, l, d, (fs_param)q, flat + off, rows * cols)) != FS_OK) return st;
                off += rows * cols;
            }
    return FS_OK;
}

static fs_status get_one(fs_rnn *m, int32_t l, int32_t d, fs_param q, float *flat, size_t n) {
    return fs_rnn_get_param(m, l, d, q, flat, n);
}

static fs_status set_one(fs_rnn *m, int32_t l, int32_t d, fs_param q, float *flat, size_t n) {
    return fs_rnn_set_param(m, l, d, q, flat, n);
}

fs_status fs_rnn_get_params(const fs_rnn *model, float *out, size_t count) {
    fs__clear_error();
    if (!model || !out) return fs__fail(FS_ERR_NULL_ARG, "model and out must not be NULL");
    return each_param((fs_rnn *)model, out, count, get_one); /* get_one only reads the model */
}

fs_status fs_rnn_set_params(fs_rnn *model, const float *data, size_t count) {
    fs__clear_error();
    if (!model || !data) return fs__fail(FS_ERR_NULL_ARG, "model and data must not be NULL");
    return each_param(model, (float *)data, count, set_one); /* set_one only reads data */
}

fs_status fs_clip_grad_norm(float *grads, size_t count, float max_norm, float *norm_out) {
    fs__clear_error();
    if (!grads && count) return fs__fail(FS_ERR_NULL_ARG, "grads must not be NULL");
    if (!(max_norm >= 0.0f)) return fs__fail(FS_ERR_INVALID_ARG, "max_norm: expected >= 0, got %g", max_norm);
    double sum = 0.0;
    for (size_t i = 0; i < count; i++) sum += (double)grads[i] * grads[i];
    const float norm = (float)sqrt(sum);
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1 */
    const float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f)
        for (size_t i = 0; i < count; i++) grads[i] *= coef;
    if (norm_out) *norm_out = norm;
    return FS_OK;
}

fs_status fs_clip_grad_value(float *grads, size_t count, float clip) {
    fs__clear_error();
    if (!grads && count) return fs__fail(FS_ERR_NULL_ARG, "grads must not be NULL");
    if (!(clip >= 0.0f)) return fs__fail(FS_ERR_INVALID_ARG, "clip: expected >= 0, got %g", clip);
    for (size_t i = 0; i < count; i++) grads[i] = grads[i] > clip ? clip : (grads[i] < -clip ? -clip : grads[i]);
    return FS_OK;
}

/* Optimizer steps are element-wise (any split gives the same bits): threads
 * once the arrays are long enough to pay for a team (read once per call). */
#define FS_OPTIM_PARALLEL_MIN 65536
static int step_threads(size_t count) { return count >= FS_OPTIM_PARALLEL_MIN ? fs__max_threads() : 1; }

fs_status fs_sgd_step(float *params, const float *grads, float *velocity, size_t count, float lr,
                      float momentum, float weight_decay) {
    fs__clear_error();
    if ((!params || !grads) && count) return fs__fail(FS_ERR_NULL_ARG, "params and grads must not be NULL");
    if (momentum != 0.0f && !velocity && count)
        return fs__fail(FS_ERR_NULL_ARG, "velocity must not be NULL when momentum != 0");
    if (!(lr >= 0.0f) || !(momentum >= 0.0f) || !(weight_decay >= 0.0f))
        return fs__fail(FS_ERR_INVALID_ARG, "lr, momentum, weight_decay: expected >= 0, got %g, %g, %g", lr,
                        momentum, weight_decay);
    const int nt = step_threads(count);
    (void)nt; /* unused where OpenMP is off */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < count; i++) {
        float g = grads[i] + weight_decay * params[i];
        if (momentum != 0.0f) g = velocity[i] = momentum * velocity[i] + g;
        params[i] -= lr * g;
    }
    return FS_OK;
}

fs_status fs_adam_step(float *params, const float *grads, float *m, float *v, size_t count,
                       int64_t step, float lr, float beta1, float beta2, float eps, float weight_decay) {
    fs__clear_error();
    if ((!params || !grads || !m || !v) && count)
        return fs__fail(FS_ERR_NULL_ARG, "params, grads, m and v must not be NULL");
    if (step < 1) return fs__fail(FS_ERR_INVALID_ARG, "step: expected >= 1 (count from 1), got %lld", (long long)step);
    if (!(lr >= 0.0f) || !(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f) ||
        !(eps >= 0.0f) || !(weight_decay >= 0.0f))
        return fs__fail(FS_ERR_INVALID_ARG, "lr %g, betas (%g, %g), eps %g, weight_decay %g: out of range", lr,
                        beta1, beta2, eps, weight_decay);
    /* torch.optim.Adam (foreach=False): step_size = lr / (1 - b1^t),
     * denom = sqrt(v) / sqrt(1 - b2^t) + eps */
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const int nt = step_threads(count);
    (void)nt; /* unused where OpenMP is off */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < count; i++) {
        const float g = grads[i] + weight_decay * params[i];
        m[i] += (g - m[i]) * (1.0f - beta1);
        v[i] = v[i] * beta2 + (1.0f - beta2) * g * g;
        const float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        params[i] -= step_size * m[i] / denom;
    }
    return FS_OK;
}
