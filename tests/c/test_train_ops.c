/* The training heads and losses check every buffer's element count against the
 * shapes (FS_ERR_SHAPE naming the buffer) and compute what a plain double loop
 * computes. */
#include <math.h>
#include <stdint.h>

#include "check.h"

enum { ROWS = 5, IN = 7, OUT = 3 };

static void linear_counts(void) {
    float x[ROWS * IN], w[OUT * IN], b[OUT], y[ROWS * OUT];
    for (int i = 0; i < ROWS * IN; i++) x[i] = urand(1.0f);
    for (int i = 0; i < OUT * IN; i++) w[i] = urand(1.0f);
    for (int i = 0; i < OUT; i++) b[i] = urand(1.0f);
    CHECK_STATUS(fs_linear_forward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, b, OUT, y, ROWS * OUT), FS_OK);
    for (int n = 0; n < ROWS; n++)
        for (int o = 0; o < OUT; o++) {
            double ref = b[o];
            for (int k = 0; k < IN; k++) ref += (double)x[n * IN + k] * w[o * IN + k];
            CHECK(fabs(y[n * OUT + o] - ref) < 1e-5, "y[%d][%d] %g vs %g", n, o, y[n * OUT + o], ref);
        }
    CHECK_STATUS(fs_linear_forward(ROWS, IN, OUT, x, ROWS * IN - 1, w, OUT * IN, b, OUT, y, ROWS * OUT), FS_ERR_SHAPE);
    CHECK(strstr(fs_last_error(), "x: expected 35") != NULL, "message: %s", fs_last_error());
    CHECK_STATUS(fs_linear_forward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN + 1, b, OUT, y, ROWS * OUT), FS_ERR_SHAPE);
    CHECK_STATUS(fs_linear_forward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, b, OUT - 1, y, ROWS * OUT), FS_ERR_SHAPE);
    CHECK_STATUS(fs_linear_forward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, b, OUT, y, ROWS * OUT - 1), FS_ERR_SHAPE);
    CHECK(strstr(fs_last_error(), "y:") != NULL, "message: %s", fs_last_error());
    CHECK_STATUS(fs_linear_forward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, NULL, 0, y, ROWS * OUT), FS_OK);
    CHECK_STATUS(fs_linear_forward(SIZE_MAX / 4, 8, OUT, x, ROWS * IN, w, OUT * IN, b, OUT, y, 1), FS_ERR_NOMEM);

    float gy[ROWS * OUT], gx[ROWS * IN], gw[OUT * IN] = {0}, gb[OUT] = {0};
    for (int i = 0; i < ROWS * OUT; i++) gy[i] = urand(1.0f);
    CHECK_STATUS(fs_linear_backward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, gy, ROWS * OUT, gx, ROWS * IN,
                                    gw, OUT * IN, gb, OUT), FS_OK);
    for (int n = 0; n < ROWS; n++)
        for (int k = 0; k < IN; k++) {
            double ref = 0;
            for (int o = 0; o < OUT; o++) ref += (double)gy[n * OUT + o] * w[o * IN + k];
            CHECK(fabs(gx[n * IN + k] - ref) < 1e-5, "grad_x[%d][%d] %g vs %g", n, k, gx[n * IN + k], ref);
        }
    CHECK_STATUS(fs_linear_backward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, gy, ROWS * OUT - 1, gx, ROWS * IN,
                                    gw, OUT * IN, gb, OUT), FS_ERR_SHAPE);
    CHECK_STATUS(fs_linear_backward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, gy, ROWS * OUT, gx, ROWS * IN + 1,
                                    gw, OUT * IN, gb, OUT), FS_ERR_SHAPE);
    CHECK_STATUS(fs_linear_backward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, gy, ROWS * OUT, gx, ROWS * IN,
                                    gw, OUT * IN - 1, gb, OUT), FS_ERR_SHAPE);
    CHECK_STATUS(fs_linear_backward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, gy, ROWS * OUT, gx, ROWS * IN,
                                    gw, OUT * IN, gb, OUT + 1), FS_ERR_SHAPE);
    CHECK_STATUS(fs_linear_backward(ROWS, IN, OUT, x, ROWS * IN, w, OUT * IN, gy, ROWS * OUT, NULL, 0,
                                    NULL, 0, NULL, 0), FS_OK);
}

static void loss_counts(void) {
    float pred[ROWS * OUT], target[ROWS * OUT], mask[ROWS], grad[ROWS * OUT], loss = -1;
    int32_t cls[ROWS];
    for (int i = 0; i < ROWS * OUT; i++) pred[i] = urand(2.0f), target[i] = urand(2.0f);
    for (int r = 0; r < ROWS; r++) mask[r] = 1.0f, cls[r] = r % OUT;
    CHECK_STATUS(fs_mse_loss(ROWS, OUT, pred, ROWS * OUT, target, ROWS * OUT, mask, ROWS, grad, ROWS * OUT,
                             &loss), FS_OK);
    double ref = 0;
    for (int i = 0; i < ROWS * OUT; i++) ref += ((double)pred[i] - target[i]) * ((double)pred[i] - target[i]);
    CHECK(fabs(loss - ref / (ROWS * OUT)) < 1e-5, "mse %g vs %g", loss, ref / (ROWS * OUT));
    CHECK_STATUS(fs_mse_loss(ROWS, OUT, pred, ROWS * OUT, target, ROWS * OUT - 1, NULL, 0, NULL, 0, &loss),
                 FS_ERR_SHAPE);
    CHECK(strstr(fs_last_error(), "target:") != NULL, "message: %s", fs_last_error());
    CHECK_STATUS(fs_mse_loss(ROWS, OUT, pred, ROWS * OUT, target, ROWS * OUT, mask, ROWS + 1, NULL, 0, &loss),
                 FS_ERR_SHAPE);
    CHECK_STATUS(fs_mse_loss(ROWS, OUT, pred, ROWS * OUT, target, ROWS * OUT, NULL, 0, grad, 2, &loss),
                 FS_ERR_SHAPE);
    CHECK_STATUS(fs_softmax_xent_loss(ROWS, OUT, pred, ROWS * OUT, cls, ROWS, mask, ROWS, grad, ROWS * OUT,
                                      &loss), FS_OK);
    ref = 0;
    for (int r = 0; r < ROWS; r++) {
        double se = 0;
        for (int c = 0; c < OUT; c++) se += exp((double)pred[r * OUT + c]);
        ref += log(se) - pred[r * OUT + cls[r]];
    }
    CHECK(fabs(loss - ref / ROWS) < 1e-5, "xent %g vs %g", loss, ref / ROWS);
    CHECK_STATUS(fs_softmax_xent_loss(ROWS, OUT, pred, ROWS * OUT, cls, ROWS - 1, NULL, 0, NULL, 0, &loss),
                 FS_ERR_SHAPE);
    CHECK(strstr(fs_last_error(), "one class per row") != NULL, "message: %s", fs_last_error());
    CHECK_STATUS(fs_softmax_xent_loss(ROWS, 0, pred, 0, cls, ROWS, NULL, 0, NULL, 0, &loss), FS_ERR_INVALID_ARG);
}

int main(void) {
    linear_counts();
    loss_counts();
    printf("test_train_ops: %d checks, %d failed\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
