/* Training heads and losses on row-major float arrays: a linear map (forward
 * and backward) and the MSE and softmax cross-entropy losses with their
 * gradients. Small, plain loops the compiler vectorises (reductions run in 8
 * independent partial sums). */
#include <math.h>
#include <string.h>

#include "internal.h"

/* sum_k a[k] * b[k] in 8 interleaved partial sums (vectorisable without reassociation flags). */
static float dot(const float *restrict a, const float *restrict b, size_t n) {
    float acc[8] = {0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[k + l] * b[k + l];
    float s = 0.0f;
    for (; k < n; k++) s += a[k] * b[k];
    for (int l = 0; l < 8; l++) s += acc[l];
    return s;
}

static fs_status check_linear(const float *x, const float *w, size_t rows, size_t in, size_t out) {
    if (!x || !w) return fs__fail(FS_ERR_NULL_ARG, "x and weight must not be NULL");
    if (rows == 0 || in == 0 || out == 0)
        return fs__fail(FS_ERR_INVALID_ARG, "linear: rows %zu, in %zu, out %zu must be positive", rows, in, out);
    return FS_OK;
}

fs_status fs_linear_forward(const float *x, size_t rows, size_t in, const float *weight,
                            const float *bias, size_t out, float *y) {
    fs__clear_error();
    fs_status st = check_linear(x, weight, rows, in, out);
    if (st != FS_OK) return st;
    if (!y) return fs__fail(FS_ERR_NULL_ARG, "y must not be NULL");
    for (size_t n = 0; n < rows; n++)
        for (size_t o = 0; o < out; o++)
            y[n * out + o] = (bias ? bias[o] : 0.0f) + dot(x + n * in, weight + o * in, in);
    return FS_OK;
}

fs_status fs_linear_backward(const float *x, size_t rows, size_t in, const float *weight, size_t out,
                             const float *grad_y, float *grad_x, float *grad_weight, float *grad_bias) {
    fs__clear_error();
    fs_status st = check_linear(x, weight, rows, in, out);
    if (st != FS_OK) return st;
    if (!grad_y) return fs__fail(FS_ERR_NULL_ARG, "grad_y must not be NULL");
    for (size_t n = 0; n < rows; n++) {
        const float *restrict xn = x + n * in, *gy = grad_y + n * out;
        float *restrict gx = grad_x ? grad_x + n * in : NULL;
        if (gx) memset(gx, 0, in * sizeof(float));
        for (size_t o = 0; o < out; o++) {
            const float g = gy[o];
            const float *restrict wo = weight + o * in;
            if (gx)
                for (size_t k = 0; k < in; k++) gx[k] += g * wo[k];
            if (grad_weight) {
                float *restrict gw = grad_weight + o * in;
                for (size_t k = 0; k < in; k++) gw[k] += g * xn[k];
            }
            if (grad_bias) grad_bias[o] += g;
        }
    }
    return FS_OK;
}

/* The mean's divisor: rows*cols, or cols times the sum of the row weights. */
static fs_status divisor(const float *mask, size_t rows, size_t cols, double *n_out) {
    double n = (double)rows;
    if (mask) {
        n = 0.0;
        for (size_t r = 0; r < rows; r++) {
            if (!(mask[r] >= 0.0f)) return fs__fail(FS_ERR_INVALID_ARG, "mask[%zu]: expected >= 0, got %g", r, mask[r]);
            n += mask[r];
        }
    }
    n *= (double)cols;
    *n_out = n > 0.0 ? n : 1.0;
    return FS_OK;
}

fs_status fs_mse_loss(const float *pred, const float *target, const float *mask, size_t rows,
                      size_t cols, float *grad, float *loss_out) {
    fs__clear_error();
    if (!pred || !target || !loss_out) return fs__fail(FS_ERR_NULL_ARG, "pred, target and loss_out must not be NULL");
    double n = 1.0, sum = 0.0;
    fs_status st = divisor(mask, rows, cols, &n);
    if (st != FS_OK) return st;
    const float scale = (float)(2.0 / n);
    for (size_t r = 0; r < rows; r++) {
        const float w = mask ? mask[r] : 1.0f;
        float acc = 0.0f;
        for (size_t c = 0; c < cols; c++) {
            const float d = (pred[r * cols + c] - target[r * cols + c]) * w;
            acc += d * d;
            if (grad) grad[r * cols + c] = d * scale;
        }
        sum += acc;
    }
    *loss_out = (float)(sum / n);
    return FS_OK;
}

fs_status fs_softmax_xent_loss(const float *logits, const int32_t *target, const float *mask,
                               size_t rows, size_t classes, float *grad, float *loss_out) {
    fs__clear_error();
    if (!logits || !target || !loss_out)
        return fs__fail(FS_ERR_NULL_ARG, "logits, target and loss_out must not be NULL");
    if (classes == 0) return fs__fail(FS_ERR_INVALID_ARG, "classes: expected > 0");
    for (size_t r = 0; r < rows; r++)
        if (target[r] < 0 || (size_t)target[r] >= classes)
            return fs__fail(FS_ERR_INVALID_ARG, "target[%zu]: expected 0..%zu, got %d", r, classes - 1, (int)target[r]);
    double n = 1.0, sum = 0.0;
    fs_status st = divisor(mask, rows, 1, &n);
    if (st != FS_OK) return st;
    for (size_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        const float w = mask ? mask[r] : 1.0f;
        float mx = z[0];
        for (size_t c = 1; c < classes; c++) mx = z[c] > mx ? z[c] : mx;
        double se = 0.0;
        for (size_t c = 0; c < classes; c++) se += exp((double)z[c] - mx);
        const double lse = mx + log(se);
        sum += w * (lse - z[target[r]]);
        if (grad) {
            for (size_t c = 0; c < classes; c++)
                grad[r * classes + c] = (float)(w * exp((double)z[c] - lse) / n);
            grad[r * classes + target[r]] -= (float)(w / n);
        }
    }
    *loss_out = (float)(sum / n);
    return FS_OK;
}
