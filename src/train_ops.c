/* Training heads and losses on row-major float arrays: a linear map (forward
 * and backward) and the MSE and softmax cross-entropy losses with their
 * gradients. Small, plain loops the compiler vectorises (reductions run in 8
 * independent partial sums). */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "rnn_args.h"

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

/* rows, in, out positive and their products representable; x and weight given
 * with rows*in and out*in elements. */
static fs_status check_linear(size_t rows, size_t in, size_t out, const float *x, size_t x_count,
                              const float *w, size_t w_count, size_t *rows_in, size_t *rows_out) {
    if (!x || !w) return fs__fail(FS_ERR_NULL_ARG, "x and weight must not be NULL");
    size_t out_in = 0;
    if (rows == 0 || in == 0 || out == 0)
        return fs__fail(FS_ERR_INVALID_ARG, "linear: rows %zu, in %zu, out %zu must be positive", rows, in, out);
    if (!fs__mul(rows, in, rows_in) || !fs__mul(rows, out, rows_out) || !fs__mul(out, in, &out_in))
        return fs__fail(FS_ERR_NOMEM, "linear: rows %zu, in %zu, out %zu overflow a size", rows, in, out);
    fs_status st = fs__check_count("x", x, x_count, *rows_in, "(rows %zu x in %zu)", rows, in);
    if (st == FS_OK) st = fs__check_count("weight", w, w_count, out_in, "(out %zu x in %zu)", out, in);
    return st;
}

fs_status fs_linear_forward(size_t rows, size_t in, size_t out, const float *x, size_t x_count,
                            const float *weight, size_t weight_count, const float *bias,
                            size_t bias_count, float *y, size_t y_count) {
    fs__clear_error();
    size_t rows_in = 0, rows_out = 0;
    fs_status st = check_linear(rows, in, out, x, x_count, weight, weight_count, &rows_in, &rows_out);
    if (st == FS_OK) st = fs__check_count("bias", bias, bias_count, out, "(out %zu)", out);
    if (st != FS_OK) return st;
    if (!y) return fs__fail(FS_ERR_NULL_ARG, "y must not be NULL");
    st = fs__check_count("y", y, y_count, rows_out, "(rows %zu x out %zu)", rows, out);
    if (st != FS_OK) return st;
    for (size_t n = 0; n < rows; n++)
        for (size_t o = 0; o < out; o++)
            y[n * out + o] = (bias ? bias[o] : 0.0f) + dot(x + n * in, weight + o * in, in);
    return FS_OK;
}

fs_status fs_linear_backward(size_t rows, size_t in, size_t out, const float *x, size_t x_count,
                             const float *weight, size_t weight_count, const float *grad_y,
                             size_t grad_y_count, float *grad_x, size_t grad_x_count,
                             float *grad_weight, size_t grad_weight_count, float *grad_bias,
                             size_t grad_bias_count) {
    fs__clear_error();
    size_t rows_in = 0, rows_out = 0;
    fs_status st = check_linear(rows, in, out, x, x_count, weight, weight_count, &rows_in, &rows_out);
    if (st != FS_OK) return st;
    if (!grad_y) return fs__fail(FS_ERR_NULL_ARG, "grad_y must not be NULL");
    st = fs__check_count("grad_y", grad_y, grad_y_count, rows_out, "(rows %zu x out %zu)", rows, out);
    if (st == FS_OK) st = fs__check_count("grad_x", grad_x, grad_x_count, rows_in, "(rows %zu x in %zu)", rows, in);
    if (st == FS_OK)
        st = fs__check_count("grad_weight", grad_weight, grad_weight_count, weight_count, "(out %zu x in %zu)", out, in);
    if (st == FS_OK) st = fs__check_count("grad_bias", grad_bias, grad_bias_count, out, "(out %zu)", out);
    if (st != FS_OK) return st;
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

/* rows x cols values, a target of as many values (MSE) or one class per row
 * (cross-entropy), a mask of one weight per row, a gradient of the values' size. */
static fs_status check_loss(const char *what, size_t rows, size_t cols, const float *values,
                            size_t values_count, const void *target, size_t target_count, int target_per_value,
                            const float *mask, size_t mask_count, const float *grad, size_t grad_count) {
    size_t n = 0;
    if (cols == 0) return fs__fail(FS_ERR_INVALID_ARG, "%s: cols (classes) must be positive", what);
    if (!fs__mul(rows, cols, &n)) return fs__fail(FS_ERR_NOMEM, "%s: rows %zu x %zu overflow a size", what, rows, cols);
    fs_status st = fs__check_count(what, values, values_count, n, "(rows %zu x %zu)", rows, cols);
    if (st == FS_OK)
        st = target_per_value ? fs__check_count("target", target, target_count, n, "(rows %zu x %zu)", rows, cols)
                              : fs__check_count("target", target, target_count, rows, "(one class per row, rows %zu)", rows);
    if (st == FS_OK) st = fs__check_count("mask", mask, mask_count, rows, "(one weight per row, rows %zu)", rows);
    if (st == FS_OK) st = fs__check_count("grad", grad, grad_count, n, "(rows %zu x %zu)", rows, cols);
    return st;
}

fs_status fs_mse_loss(size_t rows, size_t cols, const float *pred, size_t pred_count, const float *target,
                      size_t target_count, const float *mask, size_t mask_count, float *grad,
                      size_t grad_count, float *loss_out) {
    fs__clear_error();
    if (!pred || !target || !loss_out) return fs__fail(FS_ERR_NULL_ARG, "pred, target and loss_out must not be NULL");
    fs_status st = check_loss("pred", rows, cols, pred, pred_count, target, target_count, 1, mask, mask_count,
                              grad, grad_count);
    if (st != FS_OK) return st;
    double n = 1.0, sum = 0.0;
    st = divisor(mask, rows, cols, &n);
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

fs_status fs_softmax_xent_loss(size_t rows, size_t classes, const float *logits, size_t logits_count,
                               const int32_t *target, size_t target_count, const float *mask,
                               size_t mask_count, float *grad, size_t grad_count, float *loss_out) {
    fs__clear_error();
    if (!logits || !target || !loss_out)
        return fs__fail(FS_ERR_NULL_ARG, "logits, target and loss_out must not be NULL");
    fs_status st = check_loss("logits", rows, classes, logits, logits_count, target, target_count, 0, mask,
                              mask_count, grad, grad_count);
    if (st != FS_OK) return st;
    for (size_t r = 0; r < rows; r++)
        if (target[r] < 0 || (size_t)target[r] >= classes)
            return fs__fail(FS_ERR_INVALID_ARG, "target[%zu]: expected 0..%zu, got %d", r, classes - 1, (int)target[r]);
    double n = 1.0, sum = 0.0;
    st = divisor(mask, rows, 1, &n);
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
