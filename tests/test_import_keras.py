"""fastseq.from_keras against Keras 3 itself (torch backend): LSTM, GRU (reset_after True
and False), SimpleRNN, Bidirectional, Sequential stacks, use_bias=False, .keras files and
`fastseq convert`. Target: |fastseq - Keras| <= 1e-5 * max(1, |Keras|)."""
import os

import numpy as np
import pytest

import fastseq
from _requires import require

os.environ.setdefault("KERAS_BACKEND", "torch")
require("torch")
keras = require("keras")
if keras.backend.backend() != "torch":
    pytest.skip(f"these tests run Keras on the torch backend, not {keras.backend.backend()}",
                allow_module_level=True)
from keras import layers as kl  # noqa: E402

T, B, I = 9, 3, 5


def close(got, ref):
    ref = keras.ops.convert_to_numpy(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert np.all(np.abs(got - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))


def perturbed(model, seed):
    """Random weights everywhere, biases included (Keras initialises biases to 0 and 1)."""
    rng = np.random.default_rng(seed)
    model.set_weights([(0.4 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return model


def built(*layers, seed=0):
    model = keras.Sequential([keras.Input((T, I)), *layers])
    return perturbed(model, seed)


def x_input(seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)


RECURRENT = [
    lambda: kl.LSTM(7, return_sequences=True),
    lambda: kl.LSTM(7, return_sequences=True, use_bias=False),
    lambda: kl.GRU(7, return_sequences=True),                    # reset_after=True
    lambda: kl.GRU(7, return_sequences=True, reset_after=False),
    lambda: kl.GRU(7, return_sequences=True, use_bias=False),
    lambda: kl.SimpleRNN(7, return_sequences=True),
    lambda: kl.SimpleRNN(7, return_sequences=True, activation="relu"),
    lambda: kl.Bidirectional(kl.LSTM(7, return_sequences=True)),
    lambda: kl.Bidirectional(kl.GRU(7, return_sequences=True, reset_after=False)),
]


@pytest.mark.parametrize("make", RECURRENT)
def test_single_layers(make):
    model = built(make())
    layer = fastseq.from_keras(model.layers[-1])
    assert layer.batch_first
    x = x_input()
    close(layer(x)[0], model(x))


def test_last_step_output_is_h_n():
    model = built(kl.GRU(6, reset_after=False))
    x = x_input()
    close(fastseq.from_keras(model)(x)[1][0], model(x))


def test_sequential_stacks_become_one_layer_and_other_layers_split_them():
    model = built(kl.Bidirectional(kl.LSTM(6, return_sequences=True)),
                  kl.Bidirectional(kl.LSTM(6, return_sequences=True)), kl.LSTM(6, return_sequences=True))
    got = fastseq.from_keras(model)
    assert isinstance(got, list) and [g.num_layers for g in got] == [2, 1]
    x = x_input()
    close(got[1](got[0](x)[0])[0], model(x))
    stack = built(kl.GRU(6, return_sequences=True), kl.GRU(6, return_sequences=True), kl.GRU(4, return_sequences=True),
                  kl.Dense(3), kl.SimpleRNN(5, return_sequences=True))
    got = fastseq.from_keras(stack)
    assert [(type(g).__name__, g.num_layers) for g in got] == [("GRU", 2), ("GRU", 1), ("RNN", 1)]


def test_what_fastseq_cannot_run_is_a_clear_error():
    with pytest.raises(ValueError, match="'lstm_x'.*recurrent_activation='hard_silu' has no fastseq form"):
        fastseq.from_keras(built(kl.LSTM(4, recurrent_activation="hard_silu", name="lstm_x")).layers[-1])
    with pytest.raises(ValueError, match="activation='elu' has no fastseq form"):
        fastseq.from_keras(built(kl.SimpleRNN(4, activation="elu")).layers[-1])
    with pytest.raises(ValueError, match="go_backwards"):
        fastseq.from_keras(built(kl.GRU(4, go_backwards=True)).layers[-1])
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        fastseq.from_keras(built(kl.Bidirectional(kl.GRU(4), merge_mode="sum")).layers[-1])
    with pytest.raises(ValueError, match="no LSTM, GRU, SimpleRNN"):
        fastseq.from_keras(built(kl.Dense(3)))


def test_keras_files_and_convert(tmp_path):
    from fastseq.cli import main
    model = built(kl.Bidirectional(kl.GRU(6, return_sequences=True)), kl.Bidirectional(kl.GRU(6, return_sequences=True)))
    model.save(tmp_path / "m.keras")
    x = x_input()
    close(fastseq.from_keras(tmp_path / "m.keras")(x)[0], model(x))
    assert main(["convert", str(tmp_path / "m.keras"), str(tmp_path / "m.fsq")]) == 0
    layer = fastseq.load(tmp_path / "m.fsq")
    assert layer.num_layers == 2 and layer.bidirectional and layer.batch_first
    close(layer(x)[0], model(x))
