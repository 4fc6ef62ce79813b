"""One data layout rule for training, like torch: fit, tbptt, predict and the heads read x
in the layer's layout ([T, N, I] unless batch_first); the old sample-major mistake is a
clear ValueError, and tbptt takes fit's loss spellings."""
import numpy as np
import pytest

import fastseq
from fastseq import train


def _model(batch_first, head="last"):
    layer = fastseq.LSTM(2, 8, batch_first=batch_first, seed=0)
    h = train.LastStepLinear(8, 1, seed=0) if head == "last" else train.PerStepLinear(8, 1, seed=0)
    return train.SequenceModel(layer, h)


def test_sample_major_data_on_a_time_major_layer_is_a_clear_error():
    x = np.zeros((512, 20, 2), np.float32)          # [N, T, I] given to a time-major layer
    y = np.zeros((512, 1), np.float32)
    with pytest.raises(ValueError, match=r"y: expected 20 targets .*holds 20 sequences of 512 steps"
                                         r".*batch_first=True or pass x.transpose\(1, 0, 2\)"):
        train.fit(_model(False), x, y, progress=False)


@pytest.mark.parametrize("batch_first", [False, True])
def test_fit_and_predict_share_the_layout(batch_first):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((64, 7, 2)).astype(np.float32)          # sample-major source
    y = xs.sum(axis=(1, 2))[:, None] / 7
    x = xs if batch_first else np.swapaxes(xs, 0, 1).copy()
    model = _model(batch_first)
    train.fit(model, x, y, epochs=2, batch_size=16, progress=False)
    pred, _ = model.predict(x)
    assert pred.shape == (64, 1)


def test_fit_gives_the_same_model_in_either_layout():
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((32, 6, 2)).astype(np.float32)
    y = rng.standard_normal((32, 6, 1)).astype(np.float32)
    params = []
    for bf in (True, False):
        model = _model(bf, head="step")
        xa, ya = (xs, y) if bf else (np.swapaxes(xs, 0, 1), np.swapaxes(y, 0, 1))
        train.fit(model, xa, ya, epochs=2, batch_size=8, progress=False)
        params.append(model.params.copy())
    np.testing.assert_allclose(params[0], params[1], atol=1e-6)


def test_per_step_targets_must_match_the_layout():
    x = np.zeros((6, 4, 2), np.float32)                    # T=6, N=4
    with pytest.raises(ValueError, match=r"y: expected per-step targets \[T, N, \.\.\.\] with N=4, T=6"):
        train.fit(_model(False, head="step"), x, np.zeros((4, 6, 1), np.float32), progress=False)


def test_x_features_are_checked():
    with pytest.raises(ValueError, match=r"x: expected \[T, N, input_size\] .*input_size 2.*got shape \(6, 4, 3\)"):
        train.fit(_model(False), np.zeros((6, 4, 3), np.float32), np.zeros((4, 1)), progress=False)


def test_fit_is_keyword_only_after_the_data():
    with pytest.raises(TypeError):
        train.fit(_model(True), np.zeros((4, 3, 2), np.float32), np.zeros((4, 1)), "mse")


def test_tbptt_takes_fits_loss_names():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 3, 2)).astype(np.float32)
    y = rng.standard_normal((20, 3, 1)).astype(np.float32)
    a, b = _model(False, head="step"), _model(False, head="step")
    la, _ = train.tbptt(a, "mse", x, y, 5)
    lb, _ = train.tbptt(b, train.MSELoss(), x, y, 5)
    assert la == lb
    np.testing.assert_array_equal(a.grads, b.grads)
    with pytest.raises(ValueError, match="loss: expected one of"):
        train.tbptt(a, "l1", x, y, 5)
    with pytest.raises(ValueError, match=r"y: expected per-step targets"):
        train.tbptt(a, "mse", x, np.swapaxes(y, 0, 1), 5)


def test_teacher_forcing_follows_the_layout():
    t = np.arange(12, dtype=np.float32).reshape(2, 3, 2)   # [B, T, F]
    tf = train.teacher_forcing_inputs(t, batch_first=True)
    np.testing.assert_array_equal(tf[:, 1:], t[:, :-1])
    np.testing.assert_array_equal(tf[:, 0], 0)
