"""fit's progress (tqdm, imported lazily) and its plottable history."""
import sys

import numpy as np
import pytest

import fastseq
from fastseq import train


def _fit(**kw):
    model = train.SequenceModel(fastseq.GRU(2, 4, batch_first=True, seed=0), train.LastStepLinear(4, 1, seed=0))
    x = np.random.default_rng(0).standard_normal((8, 3, 2)).astype(np.float32)
    return train.fit(model, x, np.zeros((8, 1), np.float32), epochs=2, batch_size=4, **kw)


def test_progress_is_a_tqdm_bar_per_epoch(capsys):
    pytest.importorskip("tqdm")
    _fit(progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "2/2 [" in err and "loss=" in err


def test_without_tqdm_one_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    _fit(progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" loss ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]


def test_history_plots_with_matplotlib():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    h = _fit(progress=False)
    ax = h.plot()
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_ydata(), h["batch_loss"])
    np.testing.assert_array_equal(lines[1].get_ydata(), h["loss"])


def test_history_plot_without_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        _fit(progress=False).plot()
