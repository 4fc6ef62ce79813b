"""TorchScript in from_torch, and checkpoints (fastseq.convert.from_checkpoint, `fastseq
convert`): scripted and traced modules and cells, pickled cells and cell state_dicts,
several recurrent submodules, and pickles that would run code (refused unless trusted).
Parity against torch computed here: |fastseq - torch| <= 1e-5 * max(1, |torch|)."""
import warnings

import numpy as np
import pytest

import fastseq
from _requires import require
from fastseq.cli import main
from fastseq.convert import from_checkpoint

torch = require("torch")
nn = torch.nn


def close(got, ref):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    assert got.shape == ref.shape
    assert np.all(np.abs(got - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))


def seq_input(module, T=6, B=3):
    shape = (B, T, module.input_size) if getattr(module, "batch_first", False) else (T, B, module.input_size)
    return torch.randn(shape)


SEQUENCES = [lambda: nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True),
             lambda: nn.LSTM(5, 8, proj_size=3), lambda: nn.GRU(4, 6, bias=False),
             lambda: nn.RNN(5, 7, nonlinearity="relu", num_layers=2)]
CELLS = [lambda: nn.LSTMCell(5, 7), lambda: nn.GRUCell(5, 7, bias=False),
         lambda: nn.RNNCell(5, 7, nonlinearity="relu"), lambda: nn.RNNCell(5, 7)]


@pytest.mark.parametrize("how", ["script", "trace", "saved"])
@pytest.mark.parametrize("make", SEQUENCES)
def test_torchscript_sequence_modules(tmp_path, how, make):
    torch.manual_seed(0)
    module = make().eval()
    x = seq_input(module)
    ts = torch.jit.script(module) if how == "script" else torch.jit.trace(module, (x,))
    if how == "saved":   # a traced module saved and loaded again keeps no attributes
        ts.save(str(tmp_path / "m.jit"))
        ts = torch.jit.load(str(tmp_path / "m.jit"))
    layer = fastseq.from_torch(ts)
    assert layer.batch_first == module.batch_first and layer.num_layers == module.num_layers
    with torch.no_grad():
        ref, _ = module(x)
    close(layer(x.numpy())[0], ref)


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("make", CELLS)
def test_torchscript_cells(how, make):
    torch.manual_seed(1)
    cell = make()
    x = torch.randn(3, 5)
    ts = torch.jit.script(cell) if how == "script" else torch.jit.trace(cell, (x,))
    ours = fastseq.from_torch(ts)
    assert type(ours).__name__ == type(cell).__name__
    with torch.no_grad():
        ref = cell(x)
    got = ours(x.numpy())
    if isinstance(ref, tuple):
        close(got[0], ref[0])
        close(got[1], ref[1])
    else:
        close(got, ref)


def test_torchscript_of_other_modules_is_refused():
    with pytest.raises(TypeError, match="a TorchScript Linear"):
        fastseq.from_torch(torch.jit.script(nn.Linear(2, 2)))


class VoiceActivity(nn.Module):
    """A shipped model's shape: the recurrent part a scripted nn.LSTMCell inside."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 5)
        self.rnn = nn.LSTMCell(5, 7)

    def forward(self, x, h, c):
        return self.rnn(self.proj(x), (h, c))


def test_convert_torchscript_archive_of_a_model_with_a_cell(tmp_path):
    torch.manual_seed(2)
    model = torch.jit.script(VoiceActivity())
    model.save(str(tmp_path / "vad.jit"))
    assert main(["convert", str(tmp_path / "vad.jit"), str(tmp_path / "vad.fsq")]) == 0
    layer = fastseq.load(tmp_path / "vad.fsq")   # a cell's file holds the one-layer LSTM
    assert type(layer) is fastseq.LSTM and layer.num_layers == 1
    x = torch.randn(6, 2, 5)
    h = c = torch.zeros(2, 7)
    steps = []
    with torch.no_grad():
        for t in range(6):
            h, c = model.rnn(x[t], (h, c))
            steps.append(h)
    close(layer(x.numpy())[0], torch.stack(steps))


def test_pickled_cells_and_cell_state_dicts(tmp_path):
    torch.manual_seed(3)
    cell = nn.GRUCell(4, 6)
    torch.save(cell, tmp_path / "cell.pt")
    torch.save(cell.state_dict(), tmp_path / "cell_sd.pt")
    x = torch.randn(5, 2, 4)
    h, steps = torch.zeros(2, 6), []
    with torch.no_grad():
        for t in range(5):
            h = cell(x[t], h)
            steps.append(h)
    close(from_checkpoint(tmp_path / "cell.pt")(x.numpy())[0], torch.stack(steps))
    with pytest.raises(ValueError, match="batch_first"):
        from_checkpoint(tmp_path / "cell_sd.pt")
    layer = from_checkpoint(tmp_path / "cell_sd.pt", batch_first=False)
    assert type(layer) is fastseq.GRU
    close(layer(x.numpy())[0], torch.stack(steps))
    rnn_cell = nn.RNNCell(4, 6, nonlinearity="relu")
    torch.save(rnn_cell.state_dict(), tmp_path / "rnn_sd.pt")
    with pytest.raises(ValueError, match=r"nonlinearity \(--nonlinearity\)"):
        from_checkpoint(tmp_path / "rnn_sd.pt", batch_first=False)
    assert from_checkpoint(tmp_path / "rnn_sd.pt", batch_first=False, nonlinearity="relu").nonlinearity == "relu"


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.LSTM(4, 5))
        self.decoder = nn.ModuleDict({"rnn": nn.GRU(5, 6), "out": nn.Linear(6, 2)})


def test_several_recurrent_submodules_are_listed_and_one_is_picked(tmp_path, capsys):
    torch.manual_seed(4)
    model = Seq2Seq()
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.jit.save(torch.jit.script(model), str(tmp_path / "m.jit"))
    for path in ("sd.pt", "m.jit"):
        assert main(["convert", str(tmp_path / path), str(tmp_path / "x.fsq"), "--kind", "GRU",
                     "--time-major"]) == 1
        err = capsys.readouterr().err
        assert "'encoder.1'" in err and "'decoder.rnn'" in err and "--module NAME" in err
        assert main(["convert", str(tmp_path / path), str(tmp_path / "d.fsq"), "--module", "decoder.rnn",
                     "--kind", "GRU", "--time-major"]) == 0, capsys.readouterr().err
        layer = fastseq.load(tmp_path / "d.fsq")
        x = torch.randn(4, 2, 5)
        with torch.no_grad():
            close(layer(x.numpy())[0], model.decoder["rnn"](x)[0])


class Payload:
    """Unpickling this opens (so creates) a file: a stand-in for any code a pickle runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"weight_ih_l0": torch.zeros(4, 2), "x": Payload(str(marker))}, tmp_path / "evil.pt")
    assert not marker.exists()
    assert main(["convert", str(tmp_path / "evil.pt"), str(tmp_path / "out.fsq")]) == 1
    err = capsys.readouterr().err
    assert "io.open" in err and "--trust-pickle" in err
    assert not marker.exists() and not (tmp_path / "out.fsq").exists()
    with pytest.raises(ValueError, match="trusted=True"):
        from_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # trusted: the user's call; it warns, and the payload does run
    with pytest.warns(UserWarning, match="can run any code"), pytest.raises(ValueError):
        from_checkpoint(tmp_path / "evil.pt", trusted=True)
    assert marker.exists()


def test_trust_pickle_loads_a_custom_module_with_a_warning(tmp_path, capsys):
    torch.save(Seq2Seq(), tmp_path / "custom.pt")
    assert main(["convert", str(tmp_path / "custom.pt"), str(tmp_path / "c.fsq"), "--module", "decoder.rnn"]) == 1
    assert "Seq2Seq" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["convert", str(tmp_path / "custom.pt"), str(tmp_path / "c.fsq"), "--module",
                     "decoder.rnn", "--trust-pickle"]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "max |fastseq - torch|" in captured.out


def test_module_facts_are_checked_not_overridden(tmp_path):
    torch.save(nn.LSTM(3, 4, batch_first=True), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="batch_first=False, but the module says batch_first=True"):
        from_checkpoint(tmp_path / "m.pt", batch_first=False)
    with pytest.raises(ValueError, match="nonlinearity='relu': the module holds a LSTM, which has no such option"):
        from_checkpoint(tmp_path / "m.pt", nonlinearity="relu")
    with pytest.raises(ValueError, match="kind='GRU', but the module says kind='LSTM'"):
        from_checkpoint(tmp_path / "m.pt", kind="GRU")
    assert from_checkpoint(tmp_path / "m.pt", batch_first=True, hidden_size=4).batch_first
