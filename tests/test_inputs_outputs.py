"""What a layer or cell takes and gives: torch in, torch out; float16/bfloat16 tensors,
PackedSequence and lists of ragged sequences; keyword-only options; cells' backward and
to_torch against torch itself; the message when the source tree shadows the package."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastseq

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_narrow_and_wide_float_tensors_are_converted(dtype):
    layer = fastseq.GRU(3, 5, seed=0)
    x = torch.randn(6, 2, 3).to(dtype)
    y, h = layer(x)
    ref, ref_h = layer(x.float().numpy())
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(h.numpy(), ref_h)


def test_numpy_in_numpy_out_torch_in_torch_out():
    lstm = fastseq.LSTM(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    y, (h, c) = lstm(x)
    assert all(type(v) is np.ndarray for v in (y, h, c))
    yt, (ht, ct) = lstm(torch.from_numpy(x), lengths=[5, 3])
    assert all(isinstance(v, torch.Tensor) for v in (yt, ht, ct))
    cell = fastseq.GRUCell(3, 4, seed=0)
    assert type(cell(x[0])) is np.ndarray and isinstance(cell(torch.from_numpy(x[0])), torch.Tensor)


@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_sequence_like_torch(batch_first):
    torch.manual_seed(0)
    tm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    layer = fastseq.from_torch(tm)
    seqs = [torch.randn(n, 3) for n in (4, 7, 1)]
    packed = pack_sequence(seqs, enforce_sorted=False)
    y, (h, c) = layer(packed)
    with torch.no_grad():
        ry, (rh, rc) = tm(packed)
    assert type(y).__name__ == "PackedSequence"
    ours, lens = pad_packed_sequence(y, batch_first=batch_first)
    ref, ref_lens = pad_packed_sequence(ry, batch_first=batch_first)
    assert lens.tolist() == ref_lens.tolist() == [4, 7, 1]
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(h.numpy(), rh.numpy(), atol=1e-5)
    np.testing.assert_allclose(c.numpy(), rc.numpy(), atol=1e-5)


def test_list_of_ragged_arrays_becomes_lengths():
    torch.manual_seed(1)
    tm = torch.nn.GRU(3, 4)
    layer = fastseq.from_torch(tm)
    seqs = [np.random.default_rng(i).standard_normal((n, 3)).astype(np.float32) for i, n in enumerate((2, 6, 3))]
    y, h = layer(seqs)
    assert type(y) is np.ndarray and y.shape == (6, 3, 4)
    with torch.no_grad():
        ry, rh = tm(pack_sequence([torch.from_numpy(s) for s in seqs], enforce_sorted=False))
    ref, _ = pad_packed_sequence(ry)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(h, rh.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="carries its own lengths"):
        layer(seqs, lengths=[2, 6, 3])
    with pytest.raises(ValueError, match=r"expected a list of \[T_i, features\] sequences"):
        layer([np.zeros((2, 3)), np.zeros((2, 4))])


def test_ragged_nested_lists_get_a_clear_error_or_work():
    layer = fastseq.RNN(2, 3, seed=0)
    y, _ = layer([[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]])       # two sequences: 1 and 2 steps
    assert y.shape == (2, 2, 3)
    np.testing.assert_array_equal(y[1, 0], 0)                     # past the first one's end


@pytest.mark.parametrize("make, args", [
    (fastseq.LSTM, (3, 4, 1, True, False, 0.0, False, 0, True)),   # peephole positionally
    (fastseq.GRU, (3, 4, 1, True, False, 0.0, False, False)),      # reset_after positionally
    (fastseq.FastRNN, (3, 4, 1, True, False, False, "relu")),
    (fastseq.LSTMCell, (3, 4, True, 0)),                          # seed positionally
])
def test_options_beyond_torchs_are_keyword_only(make, args):
    with pytest.raises(TypeError):
        make(*args)


def test_dropout_message_does_not_claim_inference_only():
    with pytest.raises(ValueError, match=r"dropout: expected 0 \(fastseq trains without dropout"):
        fastseq.LSTM(3, 4, 2, dropout=0.5)


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_backward_and_to_torch_match_autograd(cls, batched):
    cell = getattr(fastseq, cls)(3, 5, seed=0)
    tc = cell.to_torch()
    assert type(tc) is getattr(torch.nn, cls)
    rng = np.random.default_rng(0)
    lead = (4,) if batched else ()
    x = rng.standard_normal(lead + (3,)).astype(np.float32)
    h = rng.standard_normal(lead + (5,)).astype(np.float32)
    gh = rng.standard_normal(lead + (5,)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    ht = torch.from_numpy(h).requires_grad_()
    if cls == "LSTMCell":
        c = rng.standard_normal(lead + (5,)).astype(np.float32)
        gc = rng.standard_normal(lead + (5,)).astype(np.float32)
        ct = torch.from_numpy(c).requires_grad_()
        rh, rc = tc(xt, (ht, ct))
        ((rh * torch.from_numpy(gh)).sum() + (rc * torch.from_numpy(gc)).sum()).backward()
        np.testing.assert_allclose(cell(x, (h, c))[0], rh.detach().numpy(), atol=1e-5)
        g = cell.backward(x, (gh, gc), hx=(h, c))
        np.testing.assert_allclose(g["hx"][1], ct.grad.numpy(), atol=1e-5)
        g_h0 = g["hx"][0]
    else:
        rh = tc(xt, ht)
        (rh * torch.from_numpy(gh)).sum().backward()
        np.testing.assert_allclose(cell(x, h), rh.detach().numpy(), atol=1e-5)
        g = cell.backward(x, gh, hx=h)
        g_h0 = g["hx"]
    np.testing.assert_allclose(g["input"], xt.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(g_h0, ht.grad.numpy(), atol=1e-5)
    for name, p in tc.named_parameters():
        np.testing.assert_allclose(g[name], p.grad.numpy(), atol=1e-5, err_msg=name)


def test_importing_the_unbuilt_source_tree_says_what_to_do():
    if any((ROOT / "fastseq").glob("_core*.so")):
        pytest.skip("the source tree holds an in-place build")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import fastseq"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Run `pip install .` and import fastseq from outside the source tree" in proc.stderr


def test_submodules_are_reachable_lazily():
    code = ("import sys, fastseq; assert 'fastseq.train' not in sys.modules; "
            "assert fastseq.train.fit and fastseq.torch.FastRNN; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_py_typed_is_installed():
    assert (Path(fastseq.__file__).parent / "py.typed").is_file()
