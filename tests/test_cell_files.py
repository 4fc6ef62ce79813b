"""A single-step cell is saved and exported as its one-layer sequence layer: loading the
file gives that layer, which runs a sequence exactly as torch's cell stepped over it."""
import numpy as np
import pytest

import fastseq
from fastseq.export_c import export_c

torch = pytest.importorskip("torch")


def _torch_steps(cell, x):
    """torch's cell stepped over x [T, B, I]: the hidden state after every step."""
    state, hs = None, []
    with torch.no_grad():
        for x_t in torch.from_numpy(x):
            state = cell(x_t, state)
            hs.append((state[0] if isinstance(state, tuple) else state).numpy().copy())
    return np.stack(hs), state


@pytest.mark.parametrize("make", [
    lambda: torch.nn.LSTMCell(5, 7),
    lambda: torch.nn.GRUCell(5, 7),
    lambda: torch.nn.RNNCell(5, 7, nonlinearity="relu"),
    lambda: torch.nn.RNNCell(5, 7, bias=False),
], ids=["lstm", "gru", "rnn_relu", "rnn_nobias"])
@pytest.mark.parametrize("via", ["torch_cell", "fastseq_cell"])
def test_saved_cell_loads_as_its_layer(make, via, tmp_path):
    torch.manual_seed(0)
    cell = make()
    with torch.no_grad():
        for p in cell.parameters():
            p.mul_(2.0)  # weights that look trained
    src = cell if via == "torch_cell" else fastseq.from_torch(cell)
    path = fastseq.save(src, tmp_path / "cell.fsq")
    layer = fastseq.load(path)
    assert type(layer).__name__ == type(cell).__name__.replace("Cell", "")
    x = np.random.default_rng(1).standard_normal((9, 3, 5)).astype(np.float32)
    ref_y, ref_state = _torch_steps(cell, x)
    y, state = layer(x)
    tol = 1e-5 * max(1.0, float(np.abs(ref_y).max()))
    assert np.max(np.abs(y - ref_y)) <= tol
    if isinstance(ref_state, tuple):
        assert np.max(np.abs(state[1][0] - ref_state[1].numpy())) <= 1e-5 * max(1.0, float(ref_state[1].abs().max()))


def test_exporting_a_cell_writes_what_its_layer_writes(tmp_path):
    cell = fastseq.GRUCell(4, 9, seed=3)
    a = export_c(cell, tmp_path / "cell", name="m")
    b = export_c(cell.as_layer(), tmp_path / "layer", name="m")
    for pa, pb in zip(a, b):
        assert open(pa).read() == open(pb).read()


def test_as_layer_copies_the_weights():
    cell = fastseq.RNNCell(3, 4, nonlinearity="relu", seed=2)
    layer = cell.as_layer()
    assert layer.nonlinearity == "relu" and cell.nonlinearity == "relu"
    sd = cell.state_dict()
    assert all(np.array_equal(layer.state_dict()[k + "_l0"], v) for k, v in sd.items())
    layer.load_state_dict({k: np.zeros_like(v) for k, v in layer.state_dict().items()})
    assert all(np.array_equal(cell.state_dict()[k], v) for k, v in sd.items())
